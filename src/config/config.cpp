#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

namespace mcpgate::config {
namespace {

class Reader {
 public:
  Reader(std::string file, std::vector<Diagnostic>& errors)
      : file_(std::move(file)), errors_(errors) {}

  void error(const YAML::Node& at, std::string message) {
    errors_.push_back({file_, at.IsDefined() ? at.Mark().line + 1 : 0, std::move(message)});
  }
  void error_line(int line, std::string message) {
    errors_.push_back({file_, line, std::move(message)});
  }

  // Checks that a mapping has only `known` keys.
  bool mapping(const YAML::Node& node, const std::string& where,
               std::initializer_list<const char*> known) {
    if (!node.IsMap()) {
      error(node, where + " must be a mapping");
      return false;
    }
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok) {
        std::string list;
        for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + k;
        error(kv.first, "unknown key \"" + key + "\" in " + where + " (known: " + list + ")");
      }
    }
    return true;
  }

  std::optional<std::string> string(const YAML::Node& node, const std::string& what) {
    if (!node.IsScalar()) {
      error(node, what + " must be a string");
      return std::nullopt;
    }
    return node.as<std::string>();
  }

  template <class T>
  std::optional<T> number(const YAML::Node& node, const std::string& what, T min, T max) {
    try {
      const long long v = node.as<long long>();
      if (v < static_cast<long long>(min) || v > static_cast<long long>(max)) {
        error(node,
              what + " must be between " + std::to_string(min) + " and " + std::to_string(max));
        return std::nullopt;
      }
      return static_cast<T>(v);
    } catch (const YAML::Exception&) {
      error(node, what + " must be a whole number");
      return std::nullopt;
    }
  }

  std::optional<bool> boolean(const YAML::Node& node, const std::string& what) {
    try {
      return node.as<bool>();
    } catch (const YAML::Exception&) {
      error(node, what + " must be true or false");
      return std::nullopt;
    }
  }

  void millis(const YAML::Node& node, const std::string& what, std::chrono::milliseconds& out,
              long long min = 1) {
    if (auto v = number<long long>(node, what, min, 24LL * 3600 * 1000))
      out = std::chrono::milliseconds(*v);
  }

  // A file or folder name; relative ones are taken from the configuration file's folder.
  std::string path(const YAML::Node& node, const std::string& what) {
    auto v = string(node, what);
    if (!v || v->empty()) {
      if (v) error(node, what + " must name a file");
      return {};
    }
    if ((*v)[0] == '/') return *v;
    const auto slash = file_.rfind('/');
    return slash == std::string::npos ? *v : file_.substr(0, slash + 1) + *v;
  }

  std::vector<std::string> strings(const YAML::Node& node, const std::string& what,
                                   const std::string& example) {
    std::vector<std::string> out;
    if (!node.IsSequence()) {
      error(node, what + " must be a list, e.g. " + example);
      return out;
    }
    for (const auto& item : node) {
      if (auto v = string(item, what + " entries")) out.push_back(*v);
    }
    return out;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::vector<Diagnostic>& errors_;
};

void read_listener(Reader& r, const YAML::Node& n, const std::string& where, Listener& out) {
  if (!r.mapping(n, where, {"address", "port", "tls"})) return;
  if (n["address"]) {
    if (auto v = r.string(n["address"], where + ".address")) out.address = *v;
  }
  if (n["port"]) {
    if (auto v = r.number<int>(n["port"], where + ".port", 0, 65535))
      out.port = static_cast<std::uint16_t>(*v);
  } else {
    r.error(n, where + " needs a port (0 picks a free one)");
  }
  if (n["tls"]) {
    const auto& t = n["tls"];
    if (r.mapping(t, where + ".tls", {"cert", "key"})) {
      TlsFiles files;
      if (t["cert"]) files.cert_file = r.string(t["cert"], "tls.cert").value_or("");
      if (t["key"]) files.key_file = r.string(t["key"], "tls.key").value_or("");
      if (files.cert_file.empty() || files.key_file.empty())
        r.error(t, where + ".tls needs both cert and key (PEM files)");
      out.tls = files;
    }
  }
}

bool valid_path_prefix(const std::string& p) {
  return !p.empty() && p[0] == '/' && p.find_first_of(" ?#\t") == std::string::npos &&
         (p.size() == 1 || p.back() != '/');
}

}  // namespace

std::string Diagnostic::to_string() const {
  return file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + message;
}

// Text that goes into a quoted header parameter: printable ASCII, no quote or backslash.
static bool quotable(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c > 0x20 && c < 0x7f && c != '"' && c != '\\'; });
}

static void read_resource_metadata(Reader& r, const YAML::Node& m, const std::string& api_where,
                                   Api& api) {
  const std::string where = api_where + ".resource_metadata";
  if (!r.mapping(m, where,
                 {"resource", "authorization_servers", "scopes_supported",
                  "bearer_methods_supported", "resource_name"}))
    return;
  ResourceMetadata md;
  if (!m["resource"]) {
    r.error(m, where + " needs the resource: the URL clients call, e.g. https://gw.example.com" +
                   (api.path == "/" ? std::string() : api.path));
  } else if (auto v = r.string(m["resource"], where + ".resource")) {
    md.resource = *v;
    const bool scheme = v->rfind("https://", 0) == 0 || v->rfind("http://", 0) == 0;
    const auto host_start = v->find("://") + 3;
    if (!scheme || v->size() <= host_start || v->find_first_of("?#") != std::string::npos ||
        !quotable(*v) || (*v)[host_start] == '/')
      r.error(m["resource"], where +
                                 ".resource must be an http(s) URL with a host and no query or "
                                 "fragment (RFC 9728 §1.2)");
  }
  const auto urls = [&](const char* key, std::vector<std::string>& out) {
    if (!m[key]) return;
    out = r.strings(m[key], where + "." + key,
                    "[\"https://login.microsoftonline.com/<tenant>/v2.0\"]");
    for (const auto& u : out) {
      if (u.rfind("https://", 0) != 0 && u.rfind("http://", 0) != 0)
        r.error(m[key], where + "." + key + ": \"" + u + "\" is not an http(s) URL");
    }
  };
  urls("authorization_servers", md.authorization_servers);
  if (m["scopes_supported"])
    md.scopes_supported = r.strings(m["scopes_supported"], where + ".scopes_supported",
                                    "[\"api://<client id>/.default\"]");
  for (const auto& s : md.scopes_supported) {
    if (s.empty() || !quotable(s))
      r.error(m["scopes_supported"],
              where + ".scopes_supported: \"" + s + "\" is not a scope (no spaces or quotes)");
  }
  if (m["bearer_methods_supported"]) {
    md.bearer_methods_supported =
        r.strings(m["bearer_methods_supported"], where + ".bearer_methods_supported", "[header]");
    for (const auto& b : md.bearer_methods_supported) {
      if (b != "header" && b != "body" && b != "query")
        r.error(m["bearer_methods_supported"],
                where + ".bearer_methods_supported: \"" + b + "\" is not header, body or query");
    }
  }
  if (m["resource_name"])
    md.resource_name = r.string(m["resource_name"], where + ".resource_name").value_or("");
  api.resource_metadata = std::move(md);
}

LoadResult parse(const std::string& text, const std::string& file_name) {
  LoadResult result;
  Config& c = result.config;
  c.file = file_name;
  Reader r(file_name, result.errors);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    r.error_line(e.mark.line + 1, "YAML syntax error: " + e.msg);
    return result;
  }
  if (!r.mapping(root, "the configuration",
                 {"listeners", "admin", "named_values", "backends", "apis", "limits", "workers",
                  "access_log", "policy", "policy_fragments", "entra"})) {
    return result;
  }

  if (const auto& ls = root["listeners"]; ls) {
    if (!ls.IsSequence() || ls.size() == 0) {
      r.error(ls, "listeners must be a non-empty list");
    } else {
      for (std::size_t i = 0; i < ls.size(); ++i) {
        Listener l;
        read_listener(r, ls[i], "listeners[" + std::to_string(i) + "]", l);
        c.listeners.push_back(l);
      }
    }
  } else {
    r.error_line(1,
                 "listeners is missing: add at least one, e.g. listeners: [{address: 127.0.0.1, "
                 "port: 8080}]");
  }
  if (const auto& a = root["admin"]; a) {
    Listener l;
    read_listener(r, a, "admin", l);
    if (l.tls) r.error(a["tls"], "the admin listener serves plain HTTP only; bind it to loopback");
    c.admin = l;
  }

  if (const auto& nv = root["named_values"]; nv) {
    if (!nv.IsMap()) {
      r.error(nv, "named_values must be a mapping of name: {value|env|file, secret}");
    } else {
      for (const auto& kv : nv) {
        const std::string name = kv.first.as<std::string>();
        const std::string where = "named value \"" + name + "\"";
        if (name.empty() ||
            name.find_first_not_of(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
                std::string::npos) {
          r.error(kv.first, where + ": names may hold letters, digits, '-', '_' and '.' only");
          continue;
        }
        NamedValue v;
        const auto& n = kv.second;
        if (n.IsScalar()) {
          v.value = n.as<std::string>();
        } else if (r.mapping(n, where, {"value", "env", "file", "secret"})) {
          const int sources = (n["value"] ? 1 : 0) + (n["env"] ? 1 : 0) + (n["file"] ? 1 : 0);
          if (sources != 1) r.error(n, where + " needs exactly one of value, env or file");
          if (n["secret"]) v.secret = r.boolean(n["secret"], where + ".secret").value_or(false);
          if (n["value"]) v.value = r.string(n["value"], where + ".value").value_or("");
          if (n["env"]) {
            const std::string env = r.string(n["env"], where + ".env").value_or("");
            const char* value = std::getenv(env.c_str());
            if (!value)
              r.error(n["env"], where + ": environment variable " + env + " is not set");
            else
              v.value = value;
          }
          if (n["file"]) {
            const std::string path = r.string(n["file"], where + ".file").value_or("");
            std::ifstream in(path, std::ios::binary);
            if (!in) {
              r.error(n["file"], where + ": cannot read " + path);
            } else {
              v.value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
              while (!v.value.empty() && (v.value.back() == '\n' || v.value.back() == '\r'))
                v.value.pop_back();
            }
          }
        }
        c.named_values[name] = std::move(v);
      }
    }
  }

  std::set<std::string> backend_names;
  if (const auto& bs = root["backends"]; bs) {
    if (!bs.IsMap()) {
      r.error(bs, "backends must be a mapping of name: {url, ...}");
    } else {
      for (const auto& kv : bs) {
        Backend b;
        b.name = kv.first.as<std::string>();
        const std::string where = "backend \"" + b.name + "\"";
        const auto& n = kv.second;
        if (!r.mapping(n, where,
                       {"url", "ca_file", "tls_server_name", "connect_timeout_ms",
                        "response_timeout_ms", "max_idle_connections"})) {
          continue;
        }
        if (!n["url"]) {
          r.error(n, where + " needs a url, e.g. http://127.0.0.1:3000");
        } else if (auto url = r.string(n["url"], where + ".url")) {
          if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0) {
            r.error(n["url"], where + ".url must start with http:// or https://");
          }
          b.url = *url;
        }
        if (n["ca_file"]) b.ca_file = r.string(n["ca_file"], where + ".ca_file").value_or("");
        if (n["tls_server_name"]) {
          b.tls_server_name =
              r.string(n["tls_server_name"], where + ".tls_server_name").value_or("");
          if (b.tls_server_name.empty() ||
              b.tls_server_name.find_first_of(" /:@\t") != std::string::npos)
            r.error(n["tls_server_name"], where + ".tls_server_name must be a host name");
        }
        if (b.url.rfind("http://", 0) == 0 && (n["ca_file"] || n["tls_server_name"]))
          r.error(n, where + ": ca_file and tls_server_name apply to https:// URLs only");
        if (n["connect_timeout_ms"])
          r.millis(n["connect_timeout_ms"], where + ".connect_timeout_ms", b.connect_timeout);
        if (n["response_timeout_ms"])
          r.millis(n["response_timeout_ms"], where + ".response_timeout_ms", b.response_timeout);
        if (n["max_idle_connections"]) {
          b.max_idle_connections = r.number<std::size_t>(n["max_idle_connections"],
                                                         where + ".max_idle_connections", 0, 100000)
                                       .value_or(64);
        }
        backend_names.insert(b.name);
        c.backends.push_back(std::move(b));
      }
    }
  }

  if (const auto& as = root["apis"]; as) {
    if (!as.IsSequence()) {
      r.error(as, "apis must be a list");
    } else {
      std::set<std::string> paths;
      for (std::size_t i = 0; i < as.size(); ++i) {
        const auto& n = as[i];
        const std::string where = "apis[" + std::to_string(i) + "]";
        if (!r.mapping(n, where,
                       {"name", "path", "type", "backend", "strip_prefix", "allowed_origins",
                        "allowed_hosts", "request_timeout_ms", "sse_keepalive_ms", "policy",
                        "resource_metadata"}))
          continue;
        Api api;
        api.name = n["name"] ? r.string(n["name"], where + ".name").value_or("")
                             : "api" + std::to_string(i);
        if (!n["path"]) {
          r.error(n, where + " needs a path prefix, e.g. /mcp");
        } else if (auto p = r.string(n["path"], where + ".path")) {
          api.path = *p;
          if (!valid_path_prefix(api.path)) {
            r.error(
                n["path"],
                where +
                    ".path must start with '/', have no '?', '#' or spaces, and not end with '/'");
          } else if (!paths.insert(api.path).second) {
            r.error(n["path"], where + ".path " + api.path + " is used by another API");
          }
        }
        if (n["type"]) {
          api.type = r.string(n["type"], where + ".type").value_or("http");
          if (api.type != "http" && api.type != "mcp")
            r.error(n["type"], where + ".type must be http or mcp");
        }
        if (!n["backend"]) {
          r.error(n, where + " needs a backend (one of the names under backends)");
        } else if (auto b = r.string(n["backend"], where + ".backend")) {
          api.backend = *b;
          if (!backend_names.count(api.backend))
            r.error(n["backend"], where + ": no backend named \"" + api.backend + "\"");
        }
        if (n["strip_prefix"])
          api.strip_prefix = r.boolean(n["strip_prefix"], where + ".strip_prefix").value_or(false);
        if (n["allowed_origins"]) {
          api.allowed_origins = r.strings(n["allowed_origins"], where + ".allowed_origins",
                                          "[\"https://app.example\"]");
        }
        if (n["allowed_hosts"]) {
          api.allowed_hosts = r.strings(n["allowed_hosts"], where + ".allowed_hosts",
                                        "[\"localhost\", \"mcp.example.com:8443\"]");
          for (const auto& h : api.allowed_hosts) {
            if (h.empty() || h.find_first_of(" /@\t") != std::string::npos)
              r.error(n["allowed_hosts"],
                      where + ".allowed_hosts: \"" + h + "\" is not a host name or host:port");
          }
        }
        if (n["request_timeout_ms"])
          r.millis(n["request_timeout_ms"], where + ".request_timeout_ms", api.request_timeout, 0);
        if (n["sse_keepalive_ms"]) {
          r.millis(n["sse_keepalive_ms"], where + ".sse_keepalive_ms", api.sse_keepalive, 0);
          if (api.sse_keepalive.count() > 0 && api.sse_keepalive.count() < 100)
            r.error(n["sse_keepalive_ms"],
                    where + ".sse_keepalive_ms must be 0 (off) or at least 100");
        }
        if (n["policy"]) api.policy = r.path(n["policy"], where + ".policy");
        if (const auto& m = n["resource_metadata"]; m) read_resource_metadata(r, m, where, api);
        c.apis.push_back(std::move(api));
      }
    }
  }

  if (const auto& l = root["limits"]; l) {
    if (r.mapping(l, "limits",
                  {"max_header_bytes", "max_body_bytes", "header_timeout_ms", "idle_timeout_ms",
                   "max_connections_per_worker", "request_timeout_ms"})) {
      if (l["max_header_bytes"]) {
        c.limits.max_header_bytes =
            r.number<std::size_t>(l["max_header_bytes"], "limits.max_header_bytes", 1024, 1 << 20)
                .value_or(c.limits.max_header_bytes);
      }
      if (l["max_body_bytes"]) {
        c.limits.max_body_bytes =
            r.number<std::size_t>(l["max_body_bytes"], "limits.max_body_bytes", 0,
                                  std::size_t(1) << 34)
                .value_or(c.limits.max_body_bytes);
      }
      if (l["header_timeout_ms"])
        r.millis(l["header_timeout_ms"], "limits.header_timeout_ms", c.limits.header_timeout);
      if (l["idle_timeout_ms"])
        r.millis(l["idle_timeout_ms"], "limits.idle_timeout_ms", c.limits.idle_timeout);
      if (l["request_timeout_ms"])
        r.millis(l["request_timeout_ms"], "limits.request_timeout_ms", c.limits.request_timeout, 0);
      if (l["max_connections_per_worker"]) {
        c.limits.max_connections_per_worker =
            r.number<std::size_t>(l["max_connections_per_worker"],
                                  "limits.max_connections_per_worker", 1, 1000000)
                .value_or(c.limits.max_connections_per_worker);
      }
    }
  }
  if (const auto& e = root["entra"]; e) {
    if (r.mapping(e, "entra",
                  {"authority", "ca_file", "key_refresh_ms", "key_refetch_min_ms",
                   "token_cache_entries", "hosts"})) {
      if (e["authority"]) {
        c.entra.authority = r.string(e["authority"], "entra.authority").value_or("");
        if (c.entra.authority.rfind("https://", 0) != 0 &&
            c.entra.authority.rfind("http://", 0) != 0)
          r.error(e["authority"],
                  "entra.authority must be a URL, e.g. https://login.microsoftonline.com");
        while (!c.entra.authority.empty() && c.entra.authority.back() == '/')
          c.entra.authority.pop_back();
      }
      if (e["ca_file"]) c.entra.ca_file = r.path(e["ca_file"], "entra.ca_file");
      if (e["key_refresh_ms"])
        r.millis(e["key_refresh_ms"], "entra.key_refresh_ms", c.entra.key_refresh);
      if (e["key_refetch_min_ms"])
        r.millis(e["key_refetch_min_ms"], "entra.key_refetch_min_ms", c.entra.key_refetch_min, 0);
      if (e["token_cache_entries"]) {
        c.entra.token_cache_entries =
            r.number<std::size_t>(e["token_cache_entries"], "entra.token_cache_entries", 0, 1000000)
                .value_or(c.entra.token_cache_entries);
      }
      if (const auto& hs = e["hosts"]; hs) {
        if (!hs.IsMap()) {
          r.error(hs, "entra.hosts must be a mapping of host name: {address, ca_file}");
        } else {
          for (const auto& kv : hs) {
            std::string host = kv.first.as<std::string>();
            for (auto& ch : host)
              ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            const std::string where = "entra.hosts." + host;
            if (host.empty() || host.find_first_of(":/ @") != std::string::npos)
              r.error(kv.first, where + ": the key is a host name, like login.microsoftonline.us");
            if (!r.mapping(kv.second, where, {"address", "ca_file"})) continue;
            Entra::HostRoute route;
            if (!kv.second["address"]) {
              r.error(kv.second, where + " needs an address, e.g. 127.0.0.1:8443");
            } else {
              route.address = r.string(kv.second["address"], where + ".address").value_or("");
              const auto colon = route.address.rfind(':');
              if (colon == std::string::npos || colon == 0 || colon + 1 == route.address.size())
                r.error(kv.second["address"], where + ".address must be host:port");
            }
            if (kv.second["ca_file"])
              route.ca_file = r.path(kv.second["ca_file"], where + ".ca_file");
            c.entra.hosts[host] = std::move(route);
          }
        }
      }
    }
  }
  if (root["policy"]) c.policy = r.path(root["policy"], "policy");
  if (root["policy_fragments"])
    c.policy_fragments = r.path(root["policy_fragments"], "policy_fragments");
  if (root["workers"])
    c.workers = r.number<std::size_t>(root["workers"], "workers", 0, 256).value_or(0);
  if (root["access_log"])
    c.access_log = r.string(root["access_log"], "access_log").value_or("stdout");
  if (c.apis.empty() && !root["apis"])
    r.error_line(1, "apis is missing: route at least one path prefix to a backend");
  return result;
}

LoadResult load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.errors.push_back({path, 0, "cannot read the configuration file"});
    return r;
  }
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return parse(text, path);
}

}  // namespace mcpgate::config
