#include "proxy/runtime.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <set>

#include "core/json.hpp"
#include "policy/validate.hpp"

namespace mcpgate::proxy {

const Route* Runtime::match(std::string_view path) const {
  for (const auto& r : routes) {
    const std::string& p = r.api.path;
    if (p == "/" || path == p ||
        (path.size() > p.size() && path.starts_with(p) && path[p.size()] == '/'))
      return &r;
  }
  return nullptr;
}

namespace {

constexpr std::string_view kWellKnown = "/.well-known/oauth-protected-resource";

core::Json strings(const std::vector<std::string>& items) {
  core::JsonArray a;
  for (const auto& i : items) a.emplace_back(i);
  return core::Json(std::move(a));
}

// The API's protected resource metadata document (RFC 9728 §2) and where it is served: the
// well-known path inserted between the resource's host and its path (§3.1).
core::Result<int, std::string> add_resource_metadata(Runtime& rt, Route& r,
                                                     const std::string& default_authority) {
  const config::ResourceMetadata& md = *r.api.resource_metadata;
  std::vector<std::string> servers = md.authorization_servers;
  if (servers.empty()) {
    const std::string authority = policy::entra_v2_authority(r.policies, default_authority);
    if (authority.empty())
      return core::fail("API " + r.api.name +
                        ": resource_metadata needs authorization_servers, or a "
                        "validate-azure-ad-token in the API's inbound policies to name its tenant");
    servers.push_back(authority);
  }
  const auto host_start = md.resource.find("://") + 3;
  const auto path_start = md.resource.find('/', host_start);
  std::string resource_path =
      path_start == std::string::npos ? std::string() : md.resource.substr(path_start);
  if (resource_path == "/") resource_path.clear();
  const std::string well_known = std::string(kWellKnown) + resource_path;
  core::JsonObject doc;
  doc.emplace_back("resource", core::Json(md.resource));
  doc.emplace_back("authorization_servers", strings(servers));
  if (!md.scopes_supported.empty())
    doc.emplace_back("scopes_supported", strings(md.scopes_supported));
  doc.emplace_back("bearer_methods_supported", strings(md.bearer_methods_supported));
  if (!md.resource_name.empty()) doc.emplace_back("resource_name", core::Json(md.resource_name));
  if (!rt.resource_metadata.emplace(well_known, core::Json(std::move(doc)).dump()).second)
    return core::fail("API " + r.api.name + ": another API already serves " + well_known);
  r.challenge =
      "resource_metadata=\"" +
      md.resource.substr(0, path_start == std::string::npos ? md.resource.size() : path_start) +
      well_known + "\"";
  if (!md.scopes_supported.empty()) {
    std::string scope;
    for (const auto& s : md.scopes_supported) scope += (scope.empty() ? "" : " ") + s;
    r.challenge += ", scope=\"" + scope + "\"";
  }
  return 0;
}

// A backend as the relay uses it: where to connect, how to trust it, what Host to send.
core::Result<Upstream, std::string> make_upstream(const config::Backend& b) {
  auto url = boost::urls::parse_uri(b.url);
  if (!url || (url->scheme() != "http" && url->scheme() != "https") || url->host().empty())
    return core::fail("backend " + b.name + ": \"" + b.url + "\" is not an http(s) URL");
  const bool https = url->scheme() == "https";
  Upstream u;
  u.name = b.name;
  u.target.host = std::string(url->host_address());
  if (u.target.host.size() > 2 && u.target.host.front() == '[')
    u.target.host = u.target.host.substr(1, u.target.host.size() - 2);
  u.target.port = url->has_port() ? std::string(url->port()) : https ? "443" : "80";
  u.target.connect_timeout = b.connect_timeout;
  if (https) {
    auto ctx = net::TlsClientContext::create(b.ca_file);
    if (!ctx) return core::fail("backend " + b.name + ": " + ctx.error());
    u.tls = std::move(ctx.value());
    u.target.tls = u.tls.get();
    u.target.tls_name = b.tls_server_name;
  } else if (!b.ca_file.empty() || !b.tls_server_name.empty()) {
    return core::fail("backend " + b.name +
                      ": ca_file and tls_server_name are for https:// URLs only");
  }
  u.host_line = "Host: " + std::string(url->encoded_host_and_port()) + "\r\n";
  u.base_path = std::string(url->encoded_path());
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  u.response_timeout = b.response_timeout;
  u.max_idle = b.max_idle_connections;
  // A new CA bundle means new trust: connections made under the old one are not reused.
  u.pool_key = b.url + '\n' + b.ca_file + '\n' + b.tls_server_name + '\n' +
               std::to_string(b.connect_timeout.count());
  return u;
}

core::Result<std::string, std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::fail("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

core::Result<std::shared_ptr<const Runtime>, std::string> build_runtime(
    const config::Config& c, const std::function<std::size_t(const std::string&)>& slot_for,
    policy::CompileEnv env) {
  auto rt = std::make_shared<Runtime>();
  rt->entra = c.entra;
  env.default_authority = c.entra.authority;
  rt->limits = c.limits;
  rt->listeners = c.listeners;
  rt->admin = c.admin;
  rt->workers = c.workers;
  rt->access_log = c.access_log;
  for (const auto& b : c.backends) {
    auto u = make_upstream(b);
    if (!u) return core::fail(u.error());
    rt->upstream_by_name[b.name] = rt->upstreams.size();
    rt->upstreams.push_back(std::move(u.value()));
  }
  // Policy documents: every diagnostic of every document, all at once.
  policy::LoadOptions load;
  load.named_values = [&c](std::string_view name) -> std::optional<std::string> {
    const auto it = c.named_values.find(std::string(name));
    if (it == c.named_values.end()) return std::nullopt;
    return it->second.value;
  };
  load.fragments_dir = c.policy_fragments;
  std::vector<policy::Diagnostic> errors;
  std::shared_ptr<const policy::PolicyDocument> global;
  if (!c.policy.empty())
    global = policy::load_policy_file(c.policy, policy::Scope::kGlobal, load, errors);
  for (const auto& api : c.apis) {
    Route r{api, rt->upstream_by_name.at(api.backend), slot_for(api.name), api.request_timeout, {}};
    if (r.request_timeout.count() < 0) r.request_timeout = c.limits.request_timeout;
    std::shared_ptr<const policy::PolicyDocument> own;
    if (!api.policy.empty())
      own = policy::load_policy_file(api.policy, policy::Scope::kApi, load, errors);
    r.policies = policy::resolve({global, own});
    rt->routes.push_back(std::move(r));
  }
  // set-backend-service: names must be backends; base URLs become upstreams of their own
  // (trusting the system store), made once per URL.
  std::set<std::string> base_urls;
  env.backend_known = [&](bool by_id, const std::string& v) -> std::string {
    if (by_id) return rt->upstream_by_name.contains(v) ? "" : "no backend named \"" + v + "\"";
    auto url = boost::urls::parse_uri(v);
    if (!url || (url->scheme() != "http" && url->scheme() != "https") || url->host().empty() ||
        url->has_query() || url->has_fragment())
      return "base-url \"" + v + "\" is not an http(s) URL without query or fragment";
    base_urls.insert(v);
    return "";
  };
  // Compiled policies: one that cannot run yet refuses the configuration (fail closed), so an
  // API is never served without the checks its document asks for.
  for (auto& r : rt->routes) {
    auto program = policy::compile(r.policies, env);
    if (!program) {
      errors.insert(errors.end(), program.error().begin(), program.error().end());
      continue;
    }
    r.program = std::move(program.value());
    const auto& backend = r.program->sections[1];
    r.plain = r.program->sections[0].empty() && r.program->sections[2].empty() &&
              r.program->sections[3].empty() && backend.size() == 1 &&
              backend[0]->name == "forward-request" &&
              r.policies.sections[1][0].element->attributes.empty();
  }
  std::string report;
  for (const auto& e : errors) report += (report.empty() ? "" : "\n") + e.to_string();
  if (!report.empty()) return core::fail(report);
  for (const auto& url : base_urls) {
    config::Backend b;
    b.name = url;
    b.url = url;
    auto u = make_upstream(b);
    if (!u) return core::fail(u.error());
    rt->upstream_by_url[url] = rt->upstreams.size();
    rt->upstreams.push_back(std::move(u.value()));
  }
  std::size_t with_metadata = 0;
  for (auto& r : rt->routes) {
    if (!r.api.resource_metadata) continue;
    ++with_metadata;
    if (auto added = add_resource_metadata(*rt, r, c.entra.authority); !added)
      report += (report.empty() ? "" : "\n") + added.error();
  }
  if (!report.empty()) return core::fail(report);
  // The root well-known URL is a client's last try (MCP authorization, discovery order): it
  // names the only resource there is, never one of several.
  if (with_metadata == 1 && !rt->resource_metadata.contains(kWellKnown))
    rt->resource_metadata.emplace(std::string(kWellKnown), rt->resource_metadata.begin()->second);
  for (const auto& l : c.listeners) {
    if (!l.tls) continue;
    auto chain = read_file(l.tls->cert_file);
    if (!chain) return core::fail(chain.error());
    auto key = read_file(l.tls->key_file);
    if (!key) return core::fail(key.error());
    auto ctx = net::TlsServerContext::from_pem(chain.value(), key.value());
    if (!ctx) return core::fail(l.tls->cert_file + ": " + ctx.error());
    rt->tls_server = std::move(ctx.value());
    break;  // one certificate for all TLS listeners (SNI per listener comes later)
  }
  return std::shared_ptr<const Runtime>(std::move(rt));
}

std::string restart_needed(const Runtime& a, const Runtime& b) {
  const auto same_listener = [](const config::Listener& x, const config::Listener& y) {
    return x.address == y.address && x.port == y.port && x.tls.has_value() == y.tls.has_value();
  };
  std::vector<std::string> changed;
  if (a.listeners.size() != b.listeners.size() ||
      !std::equal(a.listeners.begin(), a.listeners.end(), b.listeners.begin(), same_listener))
    changed.emplace_back("listeners");
  if (a.admin.has_value() != b.admin.has_value() || (a.admin && !same_listener(*a.admin, *b.admin)))
    changed.emplace_back("admin");
  if (a.workers != b.workers) changed.emplace_back("workers");
  if (a.access_log != b.access_log) changed.emplace_back("access_log");
  if (a.entra.ca_file != b.entra.ca_file || a.entra.key_refresh != b.entra.key_refresh ||
      a.entra.key_refetch_min != b.entra.key_refetch_min || a.entra.hosts != b.entra.hosts ||
      a.entra.token_cache_entries != b.entra.token_cache_entries)
    changed.emplace_back(
        "entra (ca_file, key_refresh_ms, key_refetch_min_ms, token_cache_entries, hosts)");
  std::string out;
  for (const auto& c : changed) out += (out.empty() ? "" : ", ") + c;
  return out;
}

}  // namespace mcpgate::proxy
