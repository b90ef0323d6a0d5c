// mcp: `mcpgate sample-server`, a real MCP server over Streamable HTTP (2025-06-18 and 2025-11-25)
// to put behind the gateway: sessions, JSON answers, event-stream answers for calls that send
// notifications first (logging, progress) or ask the client something (sampling, elicitation:
// the stream stays open until the client POSTs its answer), DELETE; tools, resources and prompts
// for the demo and for the conformance suite's server scenarios. A request → response handler:
// the app serves it with net::HttpServer.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "http/message.hpp"

namespace mcpgate::mcp {

struct SampleServerOptions {
  std::string path = "/mcp";
  std::size_t max_sessions = 10'000;  // beyond: the least recently used session ends
  // DNS-rebinding protection (MCP transport security): Host names (any port) and Origin hosts
  // accepted. Empty: any.
  std::vector<std::string> allowed_hosts{"localhost", "127.0.0.1", "[::1]"};
};

class SampleServer {
 public:
  explicit SampleServer(SampleServerOptions options = {});
  ~SampleServer();
  // Thread-safe.
  http::Response handle(const http::Request& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mcpgate::mcp
