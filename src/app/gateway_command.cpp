// app: `mcpgate gateway` — load and check the configuration, run the data plane, drain on SIGTERM.
#include <signal.h>
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <mutex>

#include "app/commands.hpp"
#include "config/config.hpp"
#include "core/json.hpp"
#include "net/http_server.hpp"
#include "proxy/gateway.hpp"

namespace mcpgate::app {
namespace {

struct GatewayCommand {
  std::string config_path = "mcpgate.yaml";
  bool check = false;
  std::string ready_file;
};

int run_gateway(const GatewayCommand& o) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto loaded = config::load(o.config_path);
  for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
  if (!loaded.ok()) {
    std::cerr << "mcpgate gateway: " << loaded.errors.size() << " error(s) in " << o.config_path
              << "\n";
    return 2;
  }
  if (o.check) {
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
  if (!o.ready_file.empty()) {
    const std::string tmp = o.ready_file + ".tmp";
    std::ofstream(tmp) << ready_json << "\n";
    std::rename(tmp.c_str(), o.ready_file.c_str());
  }
  {
    std::lock_guard lock(log_mu);
    std::cerr << "mcpgate gateway: ready " << ready_json << std::endl;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "mcpgate gateway: draining (signal " << sig << ")" << std::endl;
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
  gw->add_option("--ready-file", o->ready_file,
                 "Write {\"listeners\":[URL...]} here once listening");
  gw->callback([o, &exit_code] { exit_code = run_gateway(*o); });
}

}  // namespace mcpgate::app
