#include "idp/service.hpp"

#include <chrono>
#include <cmath>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/time.hpp"
#include "crypto/base64.hpp"
#include "crypto/digest.hpp"
#include "jwt/validate.hpp"

namespace mcpgate::idp {
namespace {

using core::Json;
using core::JsonArray;
using core::JsonObject;

constexpr std::string_view kJwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

Json str(std::string s) { return Json(std::move(s)); }

Json str_array(const std::vector<std::string>& values) {
  JsonArray a;
  for (const auto& v : values) a.emplace_back(v);
  return Json(std::move(a));
}

bool is_dns_name(std::string_view s) {
  return !s.empty() && s.size() <= 253 && s.find('.') != std::string_view::npos &&
         s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
             std::string_view::npos;
}

bool valid_host(std::string_view host) {
  return !host.empty() && host.size() <= 255 &&
         host.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") ==
             std::string_view::npos;
}

std::string_view host_without_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') return host.substr(0, host.find(']') + 1);
  return host.substr(0, host.find(':'));
}

}  // namespace

// Everything about one request the handlers need.
struct IdpService::Call {
  const http::Request& req;
  std::vector<std::string_view> segments;
  std::string authority;  // scheme://host[:port] as the client addressed us
  std::string correlation_id;
  std::string trace_id;
  double now = 0;
  std::string log_detail;

  // Entra's error body (entra-id.md §1.6).
  http::Response error(int status, std::string_view error, long code, const std::string& message) {
    const std::string ts = core::format_utc(now, "%Y-%m-%d %H:%M:%SZ");
    JsonObject o;
    o.emplace_back("error", str(std::string(error)));
    o.emplace_back("error_description",
                   str("AADSTS" + std::to_string(code) + ": " + message + " Trace ID: " + trace_id +
                       " Correlation ID: " + correlation_id + " Timestamp: " + ts));
    JsonArray codes;
    codes.push_back(Json::number(static_cast<double>(code)));
    o.emplace_back("error_codes", Json(std::move(codes)));
    o.emplace_back("timestamp", str(ts));
    o.emplace_back("trace_id", str(trace_id));
    o.emplace_back("correlation_id", str(correlation_id));
    o.emplace_back("error_uri", str(authority + "/error?code=" + std::to_string(code)));
    log_detail += " error=AADSTS" + std::to_string(code);
    auto res = http::json_response(status, Json(std::move(o)).dump());
    res.headers.add("Cache-Control", "no-store, no-cache");
    return res;
  }
};

double IdpService::now() const {
  if (settings_.clock) return settings_.clock();
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

http::Response IdpService::handle(const http::Request& request) {
  Call call{request, {}, {}, {}, {}, now(), {}};
  call.trace_id = new_guid();
  // Entra echoes the caller's client-request-id as correlation_id when it is a GUID.
  std::string request_id;
  if (auto h = request.headers.get("client-request-id")) request_id = std::string(*h);
  if (request_id.empty()) {
    if (auto q = http::parse_form(request.query())) {
      if (const std::string* v = http::find_param(*q, "client-request-id")) request_id = *v;
    }
  }
  call.correlation_id = core::is_guid(request_id) ? core::to_lower(request_id) : new_guid();
  for (auto part : core::split(request.path(), "/")) {
    if (!part.empty()) call.segments.push_back(part);
  }
  const auto host = request.headers.get("Host");
  http::Response res;
  if (!host || !valid_host(*host)) {
    call.authority = "https://localhost";
    res = call.error(400, "invalid_request", 900971, "The request has no valid Host header.");
  } else {
    call.authority = std::string(request.tls ? "https://" : "http://") + std::string(*host);
    res = route(call);
  }
  res.headers.add("x-ms-request-id", call.trace_id);
  res.headers.add("client-request-id", call.correlation_id);
  if (settings_.log) {
    settings_.log("idp: " + request.method + " " + core::printable(request.path(), 200) + " " +
                  std::to_string(res.status) + call.log_detail);
  }
  return res;
}

http::Response IdpService::route(Call& call) {
  const auto& s = call.segments;
  const auto is = [&](std::initializer_list<std::string_view> tail) {
    if (s.size() != tail.size() + 1) return false;
    std::size_t i = 1;
    for (auto t : tail) {
      if (!core::iequals(s[i++], t)) return false;
    }
    return true;
  };
  if (is({"oauth2", "v2.0", "token"})) return token(call, true);
  if (is({"oauth2", "token"})) return token(call, false);
  enum class Doc { kNone, kDiscoveryV2, kDiscoveryV1, kKeysV2, kKeysV1, kInstance };
  Doc doc = Doc::kNone;
  if (is({"v2.0", ".well-known", "openid-configuration"}))
    doc = Doc::kDiscoveryV2;
  else if (is({".well-known", "openid-configuration"}))
    doc = Doc::kDiscoveryV1;
  else if (is({"discovery", "v2.0", "keys"}))
    doc = Doc::kKeysV2;
  else if (is({"discovery", "keys"}))
    doc = Doc::kKeysV1;
  else if (is({"discovery", "instance"}))
    doc = Doc::kInstance;
  if (doc == Doc::kNone)
    return call.error(404, "not_found", 90011, "The requested URL was not found on this server.");
  if (call.req.method != "GET" && call.req.method != "HEAD") {
    return call.error(405, "invalid_request", 900561,
                      "The endpoint only accepts GET requests. Received a " +
                          core::printable(call.req.method, 16) + " request.");
  }
  switch (doc) {
    case Doc::kDiscoveryV2:
      return discovery(call, true);
    case Doc::kDiscoveryV1:
      return discovery(call, false);
    case Doc::kKeysV2:
      return keys(call, true);
    case Doc::kKeysV1:
      return keys(call, false);
    default:
      return instance_discovery(call);
  }
}

namespace {

enum class TenantAlias { kNone, kCommon, kOrganizations, kConsumers };

TenantAlias alias_of(std::string_view t) {
  if (core::iequals(t, "common")) return TenantAlias::kCommon;
  if (core::iequals(t, "organizations")) return TenantAlias::kOrganizations;
  if (core::iequals(t, "consumers")) return TenantAlias::kConsumers;
  return TenantAlias::kNone;
}

std::string tenant_not_found(std::string_view t) {
  return "Tenant '" + core::printable(t, 80) +
         "' not found. Check to make sure you have the correct tenant ID and are signing into the "
         "correct cloud. "
         "Check with your subscription administrator, this may happen if there are no active "
         "subscriptions for the "
         "tenant.";
}

std::string malformed_tenant(std::string_view t) {
  return "Specified tenant identifier '" + core::printable(t, 80) +
         "' is neither a valid DNS name, nor a valid external domain.";
}

}  // namespace

http::Response IdpService::discovery(Call& call, bool v2) {
  const std::string_view t = call.segments[0];
  const TenantAlias alias = alias_of(t);
  std::string segment;  // the tenant as endpoints name it
  std::string tid;      // GUID, or the {tenantid} template for aliases
  if (alias != TenantAlias::kNone) {
    segment = core::to_lower(t);
    tid = "{tenantid}";
  } else {
    if (!core::is_guid(t) && !is_dns_name(t))
      return call.error(400, "invalid_request", 900023, malformed_tenant(t));
    auto tenant = store_.find_tenant(t);
    if (!tenant) return call.error(400, "invalid_tenant", 90002, tenant_not_found(t));
    segment = tenant->id;
    tid = tenant->id;
  }
  const std::string base = call.authority + "/" + segment;
  JsonObject o;
  if (v2) {
    o.emplace_back("token_endpoint", str(base + "/oauth2/v2.0/token"));
    o.emplace_back("token_endpoint_auth_methods_supported",
                   str_array({"client_secret_post", "private_key_jwt", "client_secret_basic"}));
    o.emplace_back("jwks_uri", str(base + "/discovery/v2.0/keys"));
    o.emplace_back("response_modes_supported", str_array({"query", "fragment", "form_post"}));
    o.emplace_back("subject_types_supported", str_array({"pairwise"}));
    o.emplace_back("id_token_signing_alg_values_supported", str_array({"RS256"}));
    o.emplace_back("response_types_supported",
                   str_array({"code", "id_token", "code id_token", "id_token token"}));
    o.emplace_back("scopes_supported", str_array({"openid", "profile", "email", "offline_access"}));
    o.emplace_back("issuer", str(call.authority + "/" + tid + "/v2.0"));
    o.emplace_back("request_uri_parameter_supported", Json(false));
    o.emplace_back("userinfo_endpoint", str("https://graph.microsoft.com/oidc/userinfo"));
    o.emplace_back("authorization_endpoint", str(base + "/oauth2/v2.0/authorize"));
    o.emplace_back("device_authorization_endpoint", str(base + "/oauth2/v2.0/devicecode"));
    o.emplace_back("http_logout_supported", Json(true));
    o.emplace_back("frontchannel_logout_supported", Json(true));
    o.emplace_back("end_session_endpoint", str(base + "/oauth2/v2.0/logout"));
  } else {
    o.emplace_back("token_endpoint", str(base + "/oauth2/token"));
    o.emplace_back("token_endpoint_auth_methods_supported",
                   str_array({"client_secret_post", "private_key_jwt", "client_secret_basic"}));
    o.emplace_back("jwks_uri", str(call.authority + "/common/discovery/keys"));
    o.emplace_back("response_modes_supported", str_array({"query", "fragment", "form_post"}));
    o.emplace_back("subject_types_supported", str_array({"pairwise"}));
    o.emplace_back("id_token_signing_alg_values_supported", str_array({"RS256"}));
    o.emplace_back("response_types_supported",
                   str_array({"code", "id_token", "code id_token", "token id_token", "token"}));
    o.emplace_back("scopes_supported", str_array({"openid"}));
    o.emplace_back("issuer", str("https://sts.windows.net/" + tid + "/"));
    o.emplace_back("microsoft_multi_refresh_token", Json(true));
    o.emplace_back("authorization_endpoint", str(base + "/oauth2/authorize"));
    o.emplace_back("device_authorization_endpoint", str(base + "/oauth2/devicecode"));
    o.emplace_back("http_logout_supported", Json(true));
    o.emplace_back("frontchannel_logout_supported", Json(true));
    o.emplace_back("end_session_endpoint", str(base + "/oauth2/logout"));
  }
  o.emplace_back("tenant_region_scope", alias == TenantAlias::kNone ? str("NA") : Json());
  o.emplace_back("cloud_instance_name", str("microsoftonline.com"));
  o.emplace_back("cloud_graph_host_name", str("graph.windows.net"));
  o.emplace_back("msgraph_host", str("graph.microsoft.com"));
  o.emplace_back("rbac_url", str("https://pas.windows.net"));
  auto res = http::json_response(200, Json(std::move(o)).dump());
  res.headers.add("Cache-Control", "max-age=86400, private");
  return res;
}

http::Response IdpService::keys(Call& call, bool v2) {
  const std::string_view t = call.segments[0];
  std::string issuer;
  if (alias_of(t) != TenantAlias::kNone) {
    if (v2) issuer = call.authority + "/{tenantid}/v2.0";
  } else {
    if (!core::is_guid(t) && !is_dns_name(t))
      return call.error(400, "invalid_request", 900023, malformed_tenant(t));
    auto tenant = store_.find_tenant(t);
    if (!tenant) return call.error(400, "invalid_tenant", 90002, tenant_not_found(t));
    if (v2) issuer = call.authority + "/" + tenant->id + "/v2.0";
  }
  auto res = http::json_response(200, issuer_.jwks(issuer));
  res.headers.add("Cache-Control", "max-age=86400, private");
  return res;
}

http::Response IdpService::instance_discovery(Call& call) {
  auto params = http::parse_form(call.req.query());
  const std::string* endpoint =
      params ? http::find_param(*params, "authorization_endpoint") : nullptr;
  const std::string_view request_host = *call.req.headers.get("Host");
  std::string_view rest = endpoint ? std::string_view(*endpoint) : std::string_view();
  bool ok = core::istarts_with(rest, "https://");
  std::string_view host;
  std::string tenant;
  if (ok) {
    rest.remove_prefix(8);
    host = rest.substr(0, rest.find('/'));
    rest.remove_prefix(host.size());
    for (auto part : core::split(rest, "/")) {
      if (!part.empty()) {
        tenant = std::string(part);
        break;
      }
    }
    // MSAL Python drops the port from the endpoint; compare host names only.
    ok = !tenant.empty() && core::iequals(host_without_port(host), host_without_port(request_host));
  }
  if (!ok) {
    JsonObject o;
    o.emplace_back("error", str("invalid_instance"));
    o.emplace_back("error_description",
                   str("AADSTS50049: Unknown or invalid instance. Trace ID: " + call.trace_id +
                       " Correlation ID: " + call.correlation_id));
    JsonArray codes;
    codes.push_back(Json::number(50049));
    o.emplace_back("error_codes", Json(std::move(codes)));
    o.emplace_back("timestamp", str(core::format_utc(call.now, "%Y-%m-%d %H:%M:%SZ")));
    o.emplace_back("trace_id", str(call.trace_id));
    o.emplace_back("correlation_id", str(call.correlation_id));
    return http::json_response(400, Json(std::move(o)).dump());
  }
  const std::string hostport(request_host);
  JsonObject meta;
  meta.emplace_back("preferred_network", str(hostport));
  meta.emplace_back("preferred_cache", str(hostport));
  meta.emplace_back("aliases", str_array({hostport}));
  JsonArray metadata;
  metadata.emplace_back(std::move(meta));
  JsonObject o;
  o.emplace_back("tenant_discovery_endpoint",
                 str(call.authority + "/" + tenant + "/v2.0/.well-known/openid-configuration"));
  o.emplace_back("api-version", str("1.1"));
  o.emplace_back("metadata", Json(std::move(metadata)));
  return http::json_response(200, Json(std::move(o)).dump());
}

namespace {

struct Client {
  Application app;
  std::string acr;  // "1" secret, "2" certificate
};

// The resource a client-credentials request names: an app of the tenant or Microsoft Graph.
struct Resource {
  std::optional<Application> app;  // empty for Graph
  std::string requested;           // as the request named it (v1 tokens' aud)
  bool graph = false;
};

std::string strip_padding(std::string s) {
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

}  // namespace

http::Response IdpService::token(Call& call, bool v2) {
  const http::Request& req = call.req;
  if (req.method != "POST") {
    return call.error(400, "invalid_request", 900561,
                      "The endpoint only accepts POST, OPTIONS requests. Received a " +
                          core::printable(req.method, 16) + " request.");
  }
  const std::string_view t = call.segments[0];
  switch (alias_of(t)) {
    case TenantAlias::kCommon:
    case TenantAlias::kConsumers:
      return call.error(
          400, "invalid_request", 9001023,
          "The grant type isn't supported over the /common or /consumers endpoints. Please use the "
          "/organizations or tenant-specific endpoint.");
    case TenantAlias::kOrganizations:
      return call.error(400, "invalid_request", 50059,
                        "No tenant-identifying information found in either the request or implied "
                        "by any provided "
                        "credentials.");
    case TenantAlias::kNone:
      break;
  }
  if (!core::is_guid(t) && !is_dns_name(t))
    return call.error(400, "invalid_request", 900023, malformed_tenant(t));
  auto tenant = store_.find_tenant(t);
  if (!tenant) return call.error(400, "invalid_request", 90002, tenant_not_found(t));

  // Only a form body carries parameters; a JSON body has none (entra-id.md §1.2).
  http::Params params;
  const auto content_type = req.headers.get("Content-Type");
  if (content_type && core::istarts_with(*content_type, "application/x-www-form-urlencoded")) {
    auto parsed = http::parse_form(req.body);
    if (!parsed)
      return call.error(400, "invalid_request", 900144, "The request body is not a valid form.");
    params = std::move(*parsed);
  }
  const auto param = [&](std::string_view name) { return http::find_param(params, name); };
  const auto missing = [&](std::string_view name) {
    return call.error(
        400, "invalid_request", 900144,
        "The request body must contain the following parameter: '" + std::string(name) + "'.");
  };

  const std::string* grant = param("grant_type");
  if (!grant) return missing("grant_type");
  if (*grant != "client_credentials") {
    return call.error(
        400, "unsupported_grant_type", 70003,
        "The app requested an unsupported grant type '" + core::printable(*grant, 60) + "'.");
  }

  // Client identity: the body, or HTTP Basic (RFC 6749 §2.3.1: form-encoded id and secret).
  std::string client_id = param("client_id") ? *param("client_id") : std::string();
  std::optional<std::string> basic_secret;
  if (auto auth = req.headers.get("Authorization"); auth && core::istarts_with(*auth, "Basic ")) {
    auto decoded = crypto::base64_decode(core::trim(auth->substr(6)));
    const auto colon = decoded ? decoded->find(':') : std::string::npos;
    auto id = colon != std::string::npos
                  ? http::url_decode(std::string_view(*decoded).substr(0, colon), true)
                  : std::nullopt;
    auto secret = colon != std::string::npos
                      ? http::url_decode(std::string_view(*decoded).substr(colon + 1), true)
                      : std::nullopt;
    if (!id || !secret)
      return call.error(401, "invalid_client", 50012,
                        "Authentication failed: malformed Basic credentials.");
    if (!client_id.empty() && !core::iequals(client_id, *id)) {
      return call.error(401, "invalid_client", 50012,
                        "Authentication failed: the client_id in the body differs from the one in "
                        "the Authorization header.");
    }
    client_id = *id;
    basic_secret = std::move(*secret);
  }
  if (client_id.empty()) return missing("client_id");
  call.log_detail += " client=" + core::printable(client_id, 40);
  auto app = store_.find_application(tenant->id, client_id);
  if (!app || !core::is_guid(client_id)) {
    return call.error(400, "unauthorized_client", 700016,
                      "Application with identifier '" + core::printable(client_id, 80) +
                          "' was not found in the directory '" + tenant->display_name +
                          "'. This can happen if the application has not been installed by the "
                          "administrator of the "
                          "tenant or consented to by any user in the tenant. You may have sent "
                          "your authentication "
                          "request to the wrong tenant.");
  }
  Client client{*app, ""};

  // Credential: a certificate assertion or a secret.
  const std::string* assertion = param("client_assertion");
  const std::string* secret = basic_secret ? &*basic_secret : param("client_secret");
  if (assertion) {
    const std::string* type = param("client_assertion_type");
    if (!type) return missing("client_assertion_type");
    if (*type != kJwtBearer) {
      return call.error(
          401, "invalid_client", 50027,
          "Invalid JWT token. The client_assertion_type must be " + std::string(kJwtBearer) + ".");
    }
    jwt::ParseLimits limits;
    limits.max_token_bytes = 16 * 1024;
    auto parsed = jwt::parse(*assertion, limits);
    if (!parsed)
      return call.error(401, "invalid_client", 50027,
                        "Invalid JWT token. " + parsed.error().message);
    const std::string* x5t = parsed->header.find_string("x5t");
    const std::string* x5t256 = parsed->header.find_string("x5t#S256");
    if (!x5t && !x5t256) {
      return call.error(401, "invalid_client", 50027,
                        "Invalid JWT token. No certificate thumbprint specified in token header.");
    }
    // MSAL Python sends x5t with '=' padding; accept it (entra-id.md §1.3).
    std::optional<std::string> thumb = x5t256 ? crypto::base64url_decode(strip_padding(*x5t256))
                                              : crypto::base64url_decode(strip_padding(*x5t));
    const KeyCredential* match = nullptr;
    const auto certs = store_.list_certificates(*app);
    for (const auto& c : certs) {
      if (thumb && (x5t256 ? c.sha256 == *thumb : c.sha1 == *thumb)) match = &c;
    }
    if (!match) {
      return call.error(
          401, "invalid_client", 700027,
          "Client assertion contains an invalid signature. [Reason - The key was not found., "
          "Thumbprint "
          "of key used by client: '" +
              (thumb ? crypto::hex(*thumb, true) : std::string("(unreadable)")) +
              "', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
              "configured keys for app Id '" +
              app->app_id + "'.]");
    }
    auto key = crypto::PublicKey::from_certificate_der(match->certificate_der);
    if (!key)
      return call.error(
          401, "invalid_client", 700027,
          "Client assertion contains an invalid signature. [Reason - " + key.error() + "]");
    jwt::KeySet ks;
    ks.add(jwt::Jwk{std::move(key.value())});
    jwt::Requirements areq;
    areq.algorithms = {jwt::Algorithm::kRS256, jwt::Algorithm::kPS256};
    areq.try_all_keys_on_kid_miss = true;
    areq.clock_skew_seconds = 300;
    auto verified = jwt::validate(*parsed, ks, areq, call.now);
    if (!verified) {
      const auto reason = verified.error().reason;
      if (reason == jwt::Reason::kTokenExpired ||
          verified.error().message.find("not valid before") != std::string::npos) {
        const core::Json* nbf = parsed->claims.find("nbf");
        const core::Json* exp = parsed->claims.find("exp");
        const auto when = [&](const core::Json* v) {
          return v && v->is_number() ? core::format_utc(v->as_number().value, "%m/%d/%Y %H:%M:%S")
                                     : std::string("01/01/1970 00:00:00");
        };
        return call.error(401, "invalid_client", 700024,
                          "Client assertion is not within its valid time range. Current time: " +
                              core::format_utc(call.now) + ", assertion valid from " + when(nbf) +
                              ", expiry time of assertion " + when(exp) + ".");
      }
      if (reason == jwt::Reason::kTokenSignatureInvalid) {
        return call.error(
            401, "invalid_client", 700027,
            "Client assertion contains an invalid signature. [Reason - The provided signature "
            "value did "
            "not match the expected signature value., Thumbprint of key used by client: '" +
                crypto::hex(match->sha1, true) + "']");
      }
      return call.error(401, "invalid_client", 50027,
                        "Invalid JWT token. " + verified.error().message);
    }
    const std::string* iss = parsed->claims.find_string("iss");
    const std::string* sub = parsed->claims.find_string("sub");
    if (!iss || !sub || !core::iequals(*iss, app->app_id) || !core::iequals(*sub, app->app_id)) {
      return call.error(
          401, "invalid_client", 700021,
          "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
          "documentation at "
          "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .");
    }
    // aud: this host's token endpoint for this tenant (GUID or any of its domains, any case).
    const core::Json* aud = parsed->claims.find("aud");
    bool aud_ok = false;
    if (aud && aud->is_string()) {
      std::vector<std::string> names{tenant->id};
      names.insert(names.end(), tenant->domains.begin(), tenant->domains.end());
      for (const auto& n : names) {
        for (const char* path : {"/oauth2/v2.0/token", "/oauth2/token", "/v2.0"}) {
          aud_ok = aud_ok || core::iequals(aud->as_string(), call.authority + "/" + n + path);
        }
      }
    }
    if (!aud_ok) {
      return call.error(401, "invalid_client", 50012,
                        "Client assertion audience claim does not match Realm issuer. Expected " +
                            call.authority + "/" + tenant->id + "/oauth2/v2.0/token.");
    }
    client.acr = "2";
  } else if (secret) {
    switch (store_.check_secret(*app, *secret, static_cast<std::int64_t>(call.now))) {
      case SecretCheck::kValid:
        break;
      case SecretCheck::kExpired:
        return call.error(
            401, "invalid_client", 7000222,
            "The provided client secret keys for app '" + app->app_id +
                "' are expired. Visit the Azure portal to create new keys for your app: "
                "https://aka.ms/NewClientSecret, or consider using certificate credentials for "
                "added "
                "security: https://aka.ms/certCreds.");
      case SecretCheck::kWrong:
        return call.error(401, "invalid_client", 7000215,
                          "Invalid client secret provided. Ensure the secret being sent in the "
                          "request is the client "
                          "secret value, not the client secret ID, for a secret added to app '" +
                              app->app_id + "'.");
    }
    client.acr = "1";
  } else {
    return call.error(401, "invalid_client", 7000218,
                      "The request body must contain the following parameter: 'client_assertion' "
                      "or 'client_secret'.");
  }

  // Which resource.
  Resource resource;
  if (v2) {
    const std::string* scope = param("scope");
    const std::string* res_param = param("resource");
    if (!scope && res_param) {
      return call.error(400, "invalid_request", 901002,
                        "The 'resource' request parameter isn't supported.");
    }
    if (!scope) {
      return call.error(
          400, "invalid_request", 90014,
          "The required field 'scope' is missing from the credential. Ensure that you have all the "
          "necessary parameters for the login request.");
    }
    if (res_param) {
      return call.error(400, "invalid_target", 9010010,
                        "The resource parameter provided in the request doesn't match with the "
                        "requested scopes.");
    }
    std::string identifier;
    for (auto part : core::split(*scope, " ")) {
      if (part.empty()) continue;
      constexpr std::string_view kDefault = "/.default";
      if (part.size() <= kDefault.size() || !part.ends_with(kDefault)) {
        return call.error(400, "invalid_scope", 1002012,
                          "The provided value for scope " + core::printable(part, 120) +
                              " is not valid. Client credential flows must have a scope value with "
                              "/.default suffixed "
                              "to the resource identifier (application ID URI).");
      }
      std::string id(part.substr(0, part.size() - kDefault.size()));
      if (!identifier.empty() && identifier != id) {
        return call.error(400, "invalid_scope", 700022,
                          "The provided value for the input parameter scope isn't valid because it "
                          "contains more than "
                          "one resource. Scope " +
                              core::printable(*scope, 200) + " isn't valid.");
      }
      identifier = std::move(id);
    }
    if (identifier.empty()) {
      return call.error(400, "invalid_scope", 1002012,
                        "The provided value for scope is not valid.");
    }
    resource.requested = identifier;
  } else {
    const std::string* res_param = param("resource");
    if (!res_param || res_param->empty()) return missing("resource");
    resource.requested = *res_param;
  }
  call.log_detail += " resource=" + core::printable(resource.requested, 80);
  std::string lookup = resource.requested;
  if (core::iequals(lookup, kGraphResource) ||
      core::iequals(lookup, std::string(kGraphResource) + "/") ||
      core::iequals(lookup, kGraphAppId)) {
    resource.graph = true;
  } else {
    resource.app = store_.find_resource(tenant->id, lookup);
    if (!resource.app && lookup.size() > 1 && lookup.back() == '/') {
      lookup.pop_back();
      resource.app = store_.find_resource(tenant->id, lookup);
    }
    if (!resource.app) {
      return call.error(400, "invalid_resource", 500011,
                        "The resource principal named " + core::printable(resource.requested, 120) +
                            " was not found in the tenant named " + tenant->display_name +
                            ". This can happen if the application has not been installed by the "
                            "administrator of the "
                            "tenant or consented to by any user in the tenant. You might have sent "
                            "your authentication "
                            "request to the wrong tenant.");
    }
  }
  std::vector<std::string> roles;
  if (resource.app) {
    roles = store_.granted_roles(client.app, *resource.app);
    if (resource.app->app_role_assignment_required && roles.empty()) {
      return call.error(400, "invalid_grant", 501051,
                        "Application '" + client.app.app_id + "'(" + client.app.display_name +
                            ") is not assigned to a role for the application '" +
                            resource.app->app_id + "'(" + resource.app->display_name + ").");
    }
  }

  // The token (entra-id.md §2): the resource's requestedAccessTokenVersion decides v1 or v2.
  const int version = resource.app && resource.app->requested_access_token_version == 2 ? 2 : 1;
  const std::int64_t issued = static_cast<std::int64_t>(std::floor(call.now));
  const std::int64_t iat = issued - 300;  // Entra backdates iat and nbf by five minutes
  const std::int64_t exp = issued + settings_.token_lifetime_seconds;
  const std::string v1_issuer = "https://sts.windows.net/" + tenant->id + "/";
  const std::string v2_issuer = call.authority + "/" + tenant->id + "/v2.0";
  std::string aud;
  if (resource.graph) {
    aud = std::string(kGraphResource);
  } else if (version == 2) {
    aud = resource.app->app_id;
  } else {
    aud = resource.requested;  // v1: the identifier as requested (App ID URI or appId)
  }
  JsonObject c;
  c.emplace_back("aud", str(aud));
  c.emplace_back("iss", str(version == 2 ? v2_issuer : v1_issuer));
  c.emplace_back("iat", Json::number(static_cast<double>(iat)));
  c.emplace_back("nbf", Json::number(static_cast<double>(iat)));
  c.emplace_back("exp", Json::number(static_cast<double>(exp)));
  c.emplace_back("aio", str(crypto::base64_encode(crypto::random_bytes(48))));
  if (resource.graph) c.emplace_back("app_displayname", str(client.app.display_name));
  if (version == 2) {
    c.emplace_back("azp", str(client.app.app_id));
    c.emplace_back("azpacr", str(client.acr));
  } else {
    c.emplace_back("appid", str(client.app.app_id));
    c.emplace_back("appidacr", str(client.acr));
    c.emplace_back("idp", str(v1_issuer));
  }
  if (resource.graph) c.emplace_back("idtyp", str("app"));
  c.emplace_back("oid", str(client.app.service_principal_id));
  c.emplace_back("rh", str("1." + crypto::base64url_encode(crypto::random_bytes(42)) + "."));
  if (!roles.empty()) c.emplace_back("roles", str_array(roles));
  c.emplace_back("sub", str(client.app.service_principal_id));
  c.emplace_back("tid", str(tenant->id));
  c.emplace_back("uti", str(crypto::base64url_encode(crypto::random_bytes(16))));
  c.emplace_back("ver", str(version == 2 ? "2.0" : "1.0"));
  auto token = issuer_.sign(Json(std::move(c)), version == 1, resource.graph);
  if (!token)
    return call.error(500, "server_error", 50000,
                      "There was an error issuing a token: " + token.error());

  const std::int64_t expires_in = std::max<std::int64_t>(0, exp - issued);
  JsonObject body;
  body.emplace_back("token_type", str("Bearer"));
  if (v2) {
    body.emplace_back("expires_in", Json::number(static_cast<double>(expires_in)));
    body.emplace_back("ext_expires_in", Json::number(static_cast<double>(expires_in)));
  } else {
    // The v1 endpoint answers numbers as strings (entra-id.md §6 case 18).
    body.emplace_back("expires_in", str(std::to_string(expires_in)));
    body.emplace_back("ext_expires_in", str(std::to_string(expires_in)));
    body.emplace_back("expires_on", str(std::to_string(exp)));
    body.emplace_back("not_before", str(std::to_string(iat)));
    body.emplace_back("resource", str(resource.requested));
  }
  body.emplace_back("access_token", str(std::move(token.value())));
  call.log_detail += " ver=" + std::to_string(version) + " roles=" + std::to_string(roles.size());
  auto res = http::json_response(200, Json(std::move(body)).dump());
  res.headers.add("Cache-Control", "no-store, no-cache");
  res.headers.add("Pragma", "no-cache");
  return res;
}

}  // namespace mcpgate::idp
