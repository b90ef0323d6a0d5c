// proxy: the immutable snapshot a request runs against — upstreams, routes, limits and the TLS
// certificate — built from one configuration. A reload builds a new one and swaps it in; requests
// in flight keep the snapshot they started with.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"
#include "net/tls.hpp"
#include "net/upstream.hpp"
#include "policy/document.hpp"
#include "policy/runtime.hpp"

namespace mcpgate::proxy {

struct Upstream {
  std::string name;
  net::UpstreamTarget target;
  std::shared_ptr<const net::TlsClientContext> tls;  // target.tls points into it
  std::string host_line;  // "Host: host[:port]\r\n", as every upstream request head carries it
  std::string base_path;  // without a trailing '/'
  std::chrono::milliseconds response_timeout;
  std::size_t max_idle;
  std::string pool_key;  // equal keys may share idle connections across reloads
};

struct Route {
  config::Api api;
  std::size_t upstream = 0;
  std::size_t slot = 0;  // the API's row in the metrics
  std::chrono::milliseconds request_timeout{0};
  policy::Pipeline policies;  // global → API, <base/> resolved
  std::shared_ptr<const policy::Program> program;
  bool plain = true;  // no policy but the default forward-request: the relay skips the engine
  // With resource metadata: the parameters a 401 from token validation carries after "Bearer"
  // (`resource_metadata="…"[, scope="…"]`), as the MCP authorization spec asks. Empty: none.
  std::string challenge;
};

struct Runtime {
  std::vector<Upstream> upstreams;  // the configured backends, then set-backend-service URLs
  std::map<std::string, std::size_t, std::less<>> upstream_by_name;  // backends by name
  std::map<std::string, std::size_t, std::less<>> upstream_by_url;   // base-url targets
  std::vector<Route> routes;                                         // longest prefix first
  // RFC 9728 documents by well-known path (/.well-known/oauth-protected-resource[/path]).
  std::map<std::string, std::string, std::less<>> resource_metadata;
  config::Limits limits;
  std::shared_ptr<const net::TlsServerContext> tls_server;  // null without TLS listeners
  // What only a restart changes, to refuse reloads that try.
  std::vector<config::Listener> listeners;
  std::optional<config::Listener> admin;
  std::size_t workers = 0;
  std::string access_log;
  config::Entra entra;

  const Route* match(std::string_view path) const;
};

// `slot_for(api name)` gives the API's metrics row; rows are never reused for another name.
// `env` gives policies their keys and token cache (its default_authority comes from config).
core::Result<std::shared_ptr<const Runtime>, std::string> build_runtime(
    const config::Config& config, const std::function<std::size_t(const std::string&)>& slot_for,
    policy::CompileEnv env);

// Why `next` cannot replace `current` without a restart; empty when it can.
std::string restart_needed(const Runtime& current, const Runtime& next);

}  // namespace mcpgate::proxy
