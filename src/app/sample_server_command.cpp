// app: `mcpgate sample-server` — the MCP server the demo and the tests put behind the gateway.
#include <signal.h>

#include <CLI/CLI.hpp>

#include <iostream>

#include "app/commands.hpp"
#include "app/files.hpp"
#include "core/json.hpp"
#include "mcp/sample_server.hpp"
#include "net/http_server.hpp"

namespace mcpgate::app {
namespace {

struct SampleOptions {
  std::vector<std::string> listen{"127.0.0.1:3000"};
  std::string path = "/mcp";
  std::string ready_file;
  std::size_t threads = 1;
};

int run_sample(const SampleOptions& o) {
  sigset_t signals;  // taken by sigwait below; blocked before any thread starts
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  net::HttpServerOptions options;
  options.threads = o.threads;
  options.max_body_bytes = 1024 * 1024;
  for (const auto& spec : o.listen) {
    const auto a = net::parse_listen_address(spec, false);
    if (!a) {
      std::cerr << "mcpgate sample-server: --listen wants HOST:PORT, not \"" << spec << "\"\n";
      return 2;
    }
    options.listen.push_back(*a);
  }
  if (o.path.empty() || o.path[0] != '/') {
    std::cerr << "mcpgate sample-server: --path must start with '/'\n";
    return 2;
  }
  mcp::SampleServerOptions so;
  so.path = o.path;
  mcp::SampleServer server(so);
  auto http = net::HttpServer::start(std::move(options),
                                     [&server](http::Request&& r) { return server.handle(r); });
  if (!http) {
    std::cerr << "mcpgate sample-server: " << http.error() << "\n";
    return 1;
  }
  core::JsonArray urls;
  for (const auto& b : (*http)->bound()) {
    const std::string host = b.host.find(':') != std::string::npos ? "[" + b.host + "]" : b.host;
    urls.emplace_back("http://" + host + ":" + std::to_string(b.port) + o.path);
  }
  core::JsonObject ready;
  ready.emplace_back("mcp", core::Json(std::move(urls)));
  const std::string ready_json = core::Json(std::move(ready)).dump();
  write_ready_file(o.ready_file, ready_json);
  std::cout << "mcpgate sample-server: ready " << ready_json << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  (*http)->stop();
  return 0;
}

}  // namespace

void add_sample_server_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<SampleOptions>();
  auto* cmd = app.add_subcommand("sample-server",
                                 "A sample MCP server (Streamable HTTP) to put behind the gateway");
  cmd->add_option("--listen", o->listen, "HOST:PORT (port 0: any free port)")
      ->capture_default_str();
  cmd->add_option("--path", o->path, "The MCP endpoint's path")->capture_default_str();
  cmd->add_option("--ready-file", o->ready_file, "Write {\"mcp\": [URL…]} here once listening");
  cmd->add_option("--threads", o->threads, "Worker threads")->capture_default_str();
  cmd->callback([o, &exit_code] { exit_code = run_sample(*o); });
}

}  // namespace mcpgate::app
