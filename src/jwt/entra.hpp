// jwt: Microsoft Entra ID issuer rules (v1/v2 issuers, tenants, clouds) and the Graph nonce rule.
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/result.hpp"
#include "jwt/error.hpp"

namespace mcpgate::jwt {

inline constexpr std::string_view kPublicCloudAuthority = "https://login.microsoftonline.com";
// The tenant of personal Microsoft accounts; `organizations` excludes it, `common` allows it.
inline constexpr std::string_view kMsaTenantId = "9188040d-6c67-4c5b-b112-36a304b66dad";

// Who may have issued a token, Entra-style (entra-id.md §2.4, apim-policies.md §2.4.3):
//   v1 tokens: iss = https://sts.windows.net/{tid}/ (sts.chinacloudapi.cn in Azure China),
//              client application in `appid`;
//   v2 tokens: iss = {authority}/{tid}/v2.0, client application in `azp`.
// The token's `ver` must agree with the shape of its `iss`, and `tid` must be the tenant's GUID.
class EntraRule {
 public:
  enum class Kind { kTenant, kOrganizations, kCommon };

  // `tenant` is what APIM's tenant-id takes: a GUID, a domain, `organizations`, `common`, or a URL
  // ending in one of them. A domain must be resolved to its GUID (OpenID discovery) and passed as
  // `resolved_tenant_id`. `authentication_endpoint` names the cloud or a local emulator
  // ("https://" is optional).
  static core::Result<EntraRule, std::string> make(
      std::string_view tenant, std::string_view authentication_endpoint = kPublicCloudAuthority,
      std::string_view resolved_tenant_id = {});

  // Splits APIM's tenant-id forms into the tenant name: "https://contoso.onmicrosoft.com" ->
  // "contoso.onmicrosoft.com", ".../organizations" -> "organizations".
  static std::string tenant_name(std::string_view tenant);

  Kind kind() const { return kind_; }
  const std::string& tenant_id() const { return tenant_id_; }     // GUID, kTenant only
  const std::string& authority() const { return authority_; }     // "https://host[:port]"
  const std::string& v1_issuer_base() const { return v1_base_; }  // "https://sts.windows.net"
  std::string v2_issuer(std::string_view tid) const {
    return authority_ + "/" + std::string(tid) + "/v2.0";
  }
  std::string v1_issuer(std::string_view tid) const {
    return v1_base_ + "/" + std::string(tid) + "/";
  }
  // The OpenID configuration URL for this tenant (v2).
  std::string openid_configuration_url() const;

  // Checks iss, tid and ver. On success returns the token version (1 or 2).
  core::Result<int, ValidationError> check(const core::Json& claims) const;

  // The claim that names the client application for this token version.
  static std::string_view client_claim(int version) { return version == 1 ? "appid" : "azp"; }

 private:
  Kind kind_ = Kind::kTenant;
  std::string tenant_id_;
  std::string authority_;
  std::string v1_base_;
};

// Microsoft Graph tokens carry a `nonce` header and are signed over a header in which the nonce
// was replaced by base64url(SHA-256(nonce)) (public reports; entra-id.md addendum). Returns the
// signing input to verify for such a token, or nullopt when the header has no string nonce.
std::optional<std::string> graph_nonce_signing_input(std::string_view header_json,
                                                     std::string_view payload_b64);

}  // namespace mcpgate::jwt
