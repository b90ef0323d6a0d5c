// net: a small HTTP(S) client for documents (OpenID configuration, JWKS) and the command-line
// clients (token requests, MCP calls): certificate verification against the system store or a
// given CA, SNI, host name check, timeouts and a body size limit. Blocking; one request per call
// on a connection of its own.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace mcpgate::net {

struct FetchOptions {
  std::string method = "GET";
  std::string body;          // sent with a Content-Length when not empty
  std::string content_type;  // of the body
  std::vector<std::pair<std::string, std::string>> headers;  // more request fields (or overrides)
  std::string ca_file;  // PEM bundle to trust instead of the system store (e.g. the emulator's CA)
  std::chrono::milliseconds timeout{10'000};  // whole request: resolve, connect, TLS, read
  std::size_t max_body_bytes = 1024 * 1024;
  // "host:port" to connect to instead of the URL's host, which still names the server (SNI,
  // Host, certificate check): a sovereign-cloud authority served from a local address.
  std::string connect_to;
};

struct FetchResult {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Sends `options.method` to `url` (http or https). Errors name the step that failed ("TLS handshake
// with host:port: certificate verify failed"). Non-2xx answers are results, not errors.
core::Result<FetchResult, std::string> fetch(const std::string& url,
                                             const FetchOptions& options = {});

}  // namespace mcpgate::net
