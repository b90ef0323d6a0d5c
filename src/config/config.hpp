// config: the gateway's YAML configuration as plain structs, parsed and checked in one pass that
// reports every problem with file, line and what to do. No sockets, no policies.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mcpgate::config {

struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  std::string message;
  std::string to_string() const;
};

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
};

struct Listener {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::optional<TlsFiles> tls;
};

struct NamedValue {
  std::string value;
  bool secret = false;
};

struct Backend {
  std::string name;
  std::string url;              // http://host:port[/base] or https://…
  std::string ca_file;          // https: trust this bundle instead of the system store
  std::string tls_server_name;  // https: SNI and certificate name instead of the URL's host
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds response_timeout{60'000};  // until the response head arrives
  std::size_t max_idle_connections = 64;               // per worker
};

// RFC 9728 protected resource metadata for an MCP API: what a client needs to find the
// authorization server before it has a token.
struct ResourceMetadata {
  std::string resource;  // the canonical URL clients call, e.g. https://gw/mcp
  std::vector<std::string> authorization_servers;  // empty: the API's Entra tenant (v2 authority)
  std::vector<std::string> scopes_supported;
  std::vector<std::string> bearer_methods_supported{"header"};
  std::string resource_name;
};

struct Api {
  std::string name;
  std::string path;           // prefix, "/" or "/mcp"
  std::string type = "http";  // "http" or "mcp"
  std::string backend;
  bool strip_prefix = false;
  std::vector<std::string> allowed_origins;       // MCP DNS-rebinding protection when not empty
  std::vector<std::string> allowed_hosts;         // likewise for Host ("name" or "name:port")
  std::chrono::milliseconds request_timeout{-1};  // -1: limits.request_timeout; 0: none
  std::chrono::milliseconds sse_keepalive{0};     // 0: no keep-alive comments
  std::string policy;  // an API Management policy document (API scope); empty: none
  std::optional<ResourceMetadata> resource_metadata;
};

struct Limits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{75'000};
  std::size_t max_connections_per_worker = 10'000;
  // From the request head to the end of the response (event streams: to the response head).
  std::chrono::milliseconds request_timeout{0};  // 0: none
};

// Where Entra ID is for validate-azure-ad-token, and how its keys are kept.
struct Entra {
  // The authority of policies without authentication-endpoint.
  std::string authority = "https://login.microsoftonline.com";
  std::string ca_file;  // trust for the key fetches (an emulator's CA); empty: the system store
  std::chrono::milliseconds key_refresh{3'600'000};    // background refresh of every key set
  std::chrono::milliseconds key_refetch_min{300'000};  // unknown kid: at most one fetch per this
  std::size_t token_cache_entries = 4096;  // tokens that passed, kept until they expire; 0: off
  // Authority hosts served from another address (a sovereign cloud's emulator, offline): the
  // host name still goes in SNI and Host and must be in the certificate.
  struct HostRoute {
    std::string address;  // host:port
    std::string ca_file;  // empty: ca_file above
    bool operator==(const HostRoute&) const = default;
  };
  std::map<std::string, HostRoute> hosts;  // by lower-case host name
};

struct Config {
  std::string file;
  std::vector<Listener> listeners;
  std::optional<Listener> admin;
  std::map<std::string, NamedValue> named_values;
  std::vector<Backend> backends;
  std::vector<Api> apis;
  Limits limits;
  std::string policy;            // the global-scope policy document; empty: none
  std::string policy_fragments;  // folder of <fragment> documents for <include-fragment>
  Entra entra;
  std::size_t workers = 0;            // 0: one per core
  std::string access_log = "stdout";  // "stdout", "off", or a file path
};

struct LoadResult {
  Config config;
  std::vector<Diagnostic> errors;
  bool ok() const { return errors.empty(); }
};

// Reads and checks `path`. Every unknown key, missing key, bad value and dangling reference is an
// error with its line; all are reported, none stops the others.
LoadResult load(const std::string& path);
LoadResult parse(const std::string& text, const std::string& file_name);

}  // namespace mcpgate::config
