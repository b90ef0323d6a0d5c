#include "jwt/entra.hpp"

#include "core/strings.hpp"
#include "crypto/base64.hpp"
#include "crypto/digest.hpp"

namespace mcpgate::jwt {
namespace {

using core::fail;

std::string_view host_of(std::string_view url) {
  if (auto p = url.find("://"); p != std::string_view::npos) url.remove_prefix(p + 3);
  return url.substr(0, url.find('/'));
}

ValidationError issuer_error(std::string message) {
  return {Reason::kTokenIssuerNotAllowed, std::move(message)};
}

}  // namespace

std::string EntraRule::tenant_name(std::string_view tenant) {
  tenant = core::trim(tenant);
  const bool url = tenant.find("://") != std::string_view::npos;
  if (url) tenant.remove_prefix(tenant.find("://") + 3);
  while (!tenant.empty() && tenant.back() == '/') tenant.remove_suffix(1);
  const auto slash = tenant.rfind('/');
  if (slash != std::string_view::npos) return std::string(tenant.substr(slash + 1));
  return std::string(tenant);
}

core::Result<EntraRule, std::string> EntraRule::make(std::string_view tenant,
                                                     std::string_view endpoint,
                                                     std::string_view resolved_tenant_id) {
  EntraRule rule;
  std::string_view ep = core::trim(endpoint);
  if (ep.empty()) ep = kPublicCloudAuthority;
  while (!ep.empty() && ep.back() == '/') ep.remove_suffix(1);
  rule.authority_ =
      ep.find("://") == std::string_view::npos ? "https://" + std::string(ep) : std::string(ep);
  const std::string host = core::to_lower(host_of(rule.authority_));
  if (host.empty() || host.find_first_of(" \t\"") != std::string::npos) {
    return fail("authentication endpoint \"" + core::printable(endpoint) +
                "\" is not a URL or host name");
  }
  // v1 issuers name the security token service, not the login host (entra-id.md §4.3.6).
  const bool china = host == "login.partner.microsoftonline.cn" || host == "login.chinacloudapi.cn";
  rule.v1_base_ = china ? "https://sts.chinacloudapi.cn" : "https://sts.windows.net";

  const std::string name = tenant_name(tenant);
  if (name.empty()) return fail(std::string("tenant-id is empty"));
  if (core::iequals(name, "organizations")) {
    rule.kind_ = Kind::kOrganizations;
  } else if (core::iequals(name, "common")) {
    rule.kind_ = Kind::kCommon;
  } else if (core::is_guid(name)) {
    rule.tenant_id_ = core::to_lower(name);
  } else if (core::iequals(name, "consumers")) {
    return fail(std::string(
        "tenant \"consumers\" is not supported: it issues no tokens for organisations' APIs"));
  } else if (!resolved_tenant_id.empty()) {
    if (!core::is_guid(resolved_tenant_id))
      return fail(std::string("resolved tenant id is not a GUID"));
    rule.tenant_id_ = core::to_lower(resolved_tenant_id);
  } else {
    return fail("tenant \"" + core::printable(name) +
                "\" is a domain name: it must be resolved to its tenant GUID through OpenID "
                "discovery first");
  }
  return rule;
}

std::string EntraRule::openid_configuration_url() const {
  const std::string segment = kind_ == Kind::kOrganizations ? "organizations"
                              : kind_ == Kind::kCommon      ? "common"
                                                            : tenant_id_;
  return authority_ + "/" + segment + "/v2.0/.well-known/openid-configuration";
}

core::Result<int, ValidationError> EntraRule::check(const core::Json& claims) const {
  const std::string* iss = claims.find_string("iss");
  if (!iss) return fail(issuer_error("token has no issuer (iss)"));
  const std::string* tid = claims.find_string("tid");
  if (!tid || !core::is_guid(*tid)) {
    return fail(
        issuer_error("token has no tenant id (tid) GUID, so it was not issued by Entra ID"));
  }
  switch (kind_) {
    case Kind::kTenant:
      if (!core::iequals(*tid, tenant_id_)) {
        return fail(issuer_error("token is from tenant " + core::printable(*tid, 40) +
                                 ", not the allowed tenant " + tenant_id_));
      }
      break;
    case Kind::kOrganizations:
      if (core::iequals(*tid, kMsaTenantId)) {
        return fail(
            issuer_error("token is from the personal Microsoft account tenant, which "
                         "\"organizations\" excludes"));
      }
      break;
    case Kind::kCommon:
      break;
  }
  const std::string* ver = claims.find_string("ver");
  int version = 0;
  // iss == base + "/" + tid + suffix, compared in pieces (no allocation on the hot path).
  const auto is = [&](const std::string& base, std::string_view suffix) {
    const std::string_view i(*iss);
    return i.size() == base.size() + 1 + tid->size() + suffix.size() && i.starts_with(base) &&
           i[base.size()] == '/' && i.substr(base.size() + 1, tid->size()) == *tid &&
           i.ends_with(suffix);
  };
  if (is(v1_base_, "/")) {
    version = 1;
  } else if (is(authority_, "/v2.0")) {
    version = 2;
  } else {
    return fail(issuer_error("issuer \"" + core::printable(*iss) + "\" is not " + v1_issuer(*tid) +
                             " (v1) or " + v2_issuer(*tid) + " (v2)"));
  }
  const char* expected_ver = version == 1 ? "1.0" : "2.0";
  if (!ver || *ver != expected_ver) {
    return fail(issuer_error("token version (ver \"" +
                             (ver ? core::printable(*ver, 10) : std::string()) +
                             "\") does not match its v" + std::to_string(version) + " issuer"));
  }
  return version;
}

std::optional<std::string> graph_nonce_signing_input(std::string_view header_json,
                                                     std::string_view payload_b64) {
  auto header = core::parse_json(header_json);
  if (!header || !header->is_object()) return std::nullopt;
  bool found = false;
  for (auto& [name, value] : header->as_object()) {
    if (name == "nonce" && value.is_string()) {
      value = core::Json(crypto::base64url_encode(crypto::sha256(value.as_string())));
      found = true;
    }
  }
  if (!found) return std::nullopt;
  std::string input = crypto::base64url_encode(header->dump());
  input += '.';
  input.append(payload_b64);
  return input;
}

}  // namespace mcpgate::jwt
