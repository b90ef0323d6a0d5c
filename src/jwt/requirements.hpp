// jwt: Requirements, everything a policy demands of a token beyond a good signature.
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/identity.hpp"
#include "jwt/algorithm.hpp"
#include "jwt/entra.hpp"

namespace mcpgate::jwt {

// APIM's <required-claims><claim name match separator><value>...</value></claim>.
struct ClaimRequirement {
  enum class Match { kAll, kAny };
  std::string name;
  Match match = Match::kAll;
  std::string separator;            // splits a string claim into values (e.g. " " for scp)
  std::vector<std::string> values;  // empty: the claim only has to be present
};

struct Requirements {
  AlgorithmSet algorithms = AlgorithmSet::all_signed();
  bool require_signed = true;               // false only where a policy allows alg "none"
  std::vector<std::string> issuers;         // exact, any-of; empty and no entra: not checked
  std::optional<EntraRule> entra;           // Entra issuer/tenant/version rules
  std::vector<std::string> audiences;       // any-of against aud (string or array)
  std::vector<std::string> client_app_ids;  // appid (v1) / azp (v2); case-insensitive GUIDs
  std::vector<ClaimRequirement> claims;
  bool require_expiration = true;
  double clock_skew_seconds = 0;          // APIM validate-jwt's default
  bool try_all_keys_on_kid_miss = false;  // APIM issuer-signing-keys
  bool allow_graph_nonce = false;         // validate-azure-ad-token only
};

// Requirements that can no longer change, under their own Identity: a policy's, fixed at load,
// or those made once for a discovery document's issuer (IssuerRequirements).
// What passed under one FixedRequirements and one KeySet is remembered by the token cache, so a
// token seen again has only its lifetime checked (validate_cached).
class FixedRequirements {
 public:
  explicit FixedRequirements(Requirements req) : req_(std::move(req)) {}
  const Requirements& get() const { return req_; }
  std::uint64_t identity() const { return identity_.value(); }

 private:
  Requirements req_;
  core::Identity identity_;
};

}  // namespace mcpgate::jwt
