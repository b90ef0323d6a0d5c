// proxy: the gateway data plane: listeners, routing by longest path prefix, and a streaming
// relay to HTTP upstreams with a keep-alive pool per worker. Policies plug in later (policy/).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"
#include "net/http_server.hpp"

namespace mcpgate::proxy {

struct GatewayOptions {
  // One JSON line per request (access log); empty: no access log.
  std::function<void(const std::string&)> access_log;
};

class Gateway {
 public:
  static core::Result<std::unique_ptr<Gateway>, std::string> start(const config::Config& config,
                                                                   GatewayOptions options);
  ~Gateway();
  const std::vector<net::BoundAddress>& bound() const;
  // Swaps in a snapshot built from `config`: new requests use it, requests in flight finish on
  // theirs. Refused (the running configuration stays) when it cannot be built, or when it
  // changes what only a restart can (listeners, admin, workers, access_log): then the reason.
  std::optional<std::string> reload(const config::Config& config);
  // Counts a reload refused before it reached reload() (the file did not parse or check).
  void reload_rejected();
  // Prometheus text exposition of the gateway's counters (for the admin listener's /metrics).
  std::string metrics_text() const;
  // False once draining has begun (the admin listener's /readyz).
  bool ready() const;
  // Stops accepting, lets in-flight requests finish for up to `grace`, then ends the rest.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  Gateway();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mcpgate::proxy
