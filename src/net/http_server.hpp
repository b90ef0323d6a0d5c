// net: an HTTP/1.1 server (plain and TLS listeners, keep-alive, bounded heads and bodies,
// timeouts) for handlers that answer at once: the emulator, admin endpoints and the sample MCP
// server, whose answer may end with an http::BodyStream sent chunked as it is written. The
// gateway's streaming loop reuses the listener and TLS parts (DESIGN.md §2).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "http/message.hpp"
#include "net/address.hpp"
#include "net/tls.hpp"

namespace mcpgate::net {

struct HttpServerOptions {
  std::vector<ListenAddress> listen;
  std::shared_ptr<const TlsServerContext> tls;  // required when a listener has tls
  std::size_t threads = 1;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 1024 * 1024;
  std::chrono::milliseconds read_timeout{10'000};  // to read one request once it has started
  std::chrono::milliseconds idle_timeout{60'000};  // between requests on a kept-alive connection
  std::size_t max_connections = 1024;
  // The body of errors the server answers itself (400, 413, 431, 500), in the caller's format.
  std::function<http::Response(int status, std::string message)> local_error;
};

class HttpServer {
 public:
  using Handler = std::function<http::Response(http::Request&&)>;

  // Binds every listener (so a port-0 listener has its port when this returns) and starts the
  // worker threads. Each thread has its own io_context and its own SO_REUSEPORT acceptors.
  static core::Result<std::unique_ptr<HttpServer>, std::string> start(HttpServerOptions options,
                                                                      Handler handler);
  ~HttpServer();

  const std::vector<BoundAddress>& bound() const;
  // Stops accepting and ends every connection; returns when the threads have finished.
  void stop();

 private:
  HttpServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mcpgate::net
