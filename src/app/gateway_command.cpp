// app: `mcpgate gateway` — load and check the configuration, run the data plane, drain on SIGTERM.
#include <signal.h>
#include <sys/stat.h>
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <mutex>

#include "app/commands.hpp"
#include "app/files.hpp"
#include "config/config.hpp"
#include "core/json.hpp"
#include "net/http_server.hpp"
#include "oidc/key_provider.hpp"
#include "proxy/gateway.hpp"
#include "proxy/runtime.hpp"

namespace mcpgate::app {
namespace {

struct GatewayCommand {
  std::string config_path = "mcpgate.yaml";
  bool check = false;
  bool watch = true;
  std::string ready_file;
};

// What tells a changed file from an unchanged one without reading it: the file the path leads
// to now (symlinks followed), its size and its modification time.
struct FileStamp {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator!=(const FileStamp& o) const {
    return exists != o.exists || dev != o.dev || ino != o.ino || size != o.size ||
           mtime.tv_sec != o.mtime.tv_sec || mtime.tv_nsec != o.mtime.tv_nsec;
  }
};

FileStamp file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

int run_gateway(const GatewayCommand& o) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto loaded = config::load(o.config_path);
  for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
  if (!loaded.ok()) {
    std::cerr << "mcpgate gateway: " << loaded.errors.size() << " error(s) in " << o.config_path
              << "\n";
    return 2;
  }
  if (o.check) {
    // Also what only building the runtime reads: certificates, keys and CA bundles.
    oidc::KeyService keys({});  // providers are made, nothing is fetched
    policy::CompileEnv env;
    env.key_source = [&keys](const std::string& url) -> std::shared_ptr<jwt::KeySource> {
      return keys.provider(url);
    };
    env.token_cache = std::make_shared<jwt::VerifiedTokenCache>(16);
    env.counters = policy::make_local_counters(16);
    auto rt = proxy::build_runtime(
        loaded.config, [](const std::string&) { return 0; }, env);
    if (!rt) {
      std::cerr << rt.error() << "\n";
      return 2;
    }
    std::cout << o.config_path << ": ok (" << loaded.config.apis.size() << " APIs, "
              << loaded.config.backends.size() << " backends)\n";
    return 0;
  }
  std::mutex log_mu;
  std::ofstream log_file;
  proxy::GatewayOptions options;
  const std::string& sink = loaded.config.access_log;
  if (sink != "off") {
    if (sink != "stdout") {
      log_file.open(sink, std::ios::app);
      if (!log_file) {
        std::cerr << "mcpgate gateway: cannot open access log " << sink << "\n";
        return 2;
      }
    }
    std::ostream* out = sink == "stdout" ? &std::cout : &log_file;
    options.access_log = [&log_mu, out](const std::string& line) {
      std::lock_guard lock(log_mu);
      *out << line << '\n';
      out->flush();
    };
  }
  auto gw = proxy::Gateway::start(loaded.config, std::move(options));
  if (!gw) {
    std::cerr << "mcpgate gateway: " << gw.error() << "\n";
    return 2;
  }
  // The admin listener: health, readiness (503 while draining) and Prometheus metrics.
  std::unique_ptr<net::HttpServer> admin;
  if (loaded.config.admin) {
    net::HttpServerOptions admin_options;
    admin_options.listen.push_back(
        {loaded.config.admin->address, loaded.config.admin->port, false});
    proxy::Gateway* g = gw->get();
    auto started = net::HttpServer::start(std::move(admin_options), [g](http::Request&& req) {
      http::Response res;
      res.headers.add("Content-Type", "text/plain; charset=utf-8");
      const auto path = req.path();
      if (req.method != "GET" && req.method != "HEAD") {
        res.status = 405;
        res.body = "method not allowed\n";
      } else if (path == "/healthz") {
        res.body = "ok\n";
      } else if (path == "/readyz") {
        res.status = g->ready() ? 200 : 503;
        res.body = g->ready() ? "ready\n" : "draining\n";
      } else if (path == "/metrics") {
        res.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        res.body = g->metrics_text();
      } else {
        res.status = 404;
        res.body = "not found\n";
      }
      return res;
    });
    if (!started) {
      std::cerr << "mcpgate gateway: admin listener: " << started.error() << "\n";
      return 2;
    }
    admin = std::move(started.value());
  }
  core::JsonArray listeners;
  for (const auto& b : (*gw)->bound()) {
    const std::string host = b.host.find(':') != std::string::npos ? "[" + b.host + "]" : b.host;
    listeners.emplace_back(std::string(b.tls ? "https://" : "http://") + host + ":" +
                           std::to_string(b.port));
  }
  core::JsonObject ready;
  ready.emplace_back("listeners", core::Json(std::move(listeners)));
  if (admin) {
    const auto& b = admin->bound().at(0);
    ready.emplace_back("admin", core::Json("http://" + b.host + ":" + std::to_string(b.port)));
  }
  const std::string ready_json = core::Json(std::move(ready)).dump();
  write_ready_file(o.ready_file, ready_json);
  {
    std::lock_guard lock(log_mu);
    std::cerr << "mcpgate gateway: ready " << ready_json << std::endl;
  }
  // Reload on SIGHUP, and when the file changes (checked once a second: cheap, and it follows
  // editors that replace the file and Kubernetes' symlink swaps alike).
  const auto say = [&log_mu](const std::string& line) {
    std::lock_guard lock(log_mu);
    std::cerr << "mcpgate gateway: " << line << std::endl;
  };
  const auto reload = [&](const char* why) {
    auto next = config::load(o.config_path);
    if (!next.ok()) {
      (*gw)->reload_rejected();
      std::string all;
      for (const auto& e : next.errors) all += "\n  " + e.to_string();
      say(std::string("reload (") + why +
          ") rejected, still serving the previous configuration:" + all);
      return;
    }
    if (auto refused = (*gw)->reload(next.config)) {
      say(std::string("reload (") + why +
          ") rejected, still serving the previous configuration: " + *refused);
      return;
    }
    say(std::string("reloaded ") + o.config_path + " (" + why + "; " +
        std::to_string(next.config.apis.size()) + " APIs, " +
        std::to_string(next.config.backends.size()) + " backends)");
  };
  FileStamp stamp = file_stamp(o.config_path);
  int sig = 0;
  while (true) {
    const timespec second{1, 0};
    sig = o.watch ? sigtimedwait(&signals, nullptr, &second) : sigwaitinfo(&signals, nullptr);
    if (sig == SIGHUP) {
      stamp = file_stamp(o.config_path);
      reload("SIGHUP");
    } else if (sig == SIGINT || sig == SIGTERM) {
      break;
    } else if (o.watch) {
      if (const FileStamp now = file_stamp(o.config_path); now != stamp) {
        stamp = now;
        if (now.exists) reload("file changed");
      }
    }
  }
  say("draining (signal " + std::to_string(sig) + ")");
  (*gw)->stop(std::chrono::seconds(10));
  if (admin) admin->stop();
  return 0;
}

}  // namespace

void add_gateway_commands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<GatewayCommand>();
  auto* gw = app.add_subcommand("gateway",
                                "Run the gateway (reverse proxy for MCP servers and HTTP APIs)");
  gw->add_option("-c,--config", o->config_path, "Configuration file")->capture_default_str();
  gw->add_flag("--check", o->check,
               "Load and check the configuration, print every problem, and exit");
  gw->add_flag("!--no-watch", o->watch,
               "Reload on SIGHUP only, not when the configuration file changes");
  gw->add_option("--ready-file", o->ready_file,
                 "Write {\"listeners\":[URL...]} here once listening");
  gw->callback([o, &exit_code] { exit_code = run_gateway(*o); });
}

}  // namespace mcpgate::app
