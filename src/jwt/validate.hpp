// jwt: validate(token, keys, requirements, now), the whole decision on one token.
// Must not depend on Asio or on anything above crypto; the clock is passed in.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/result.hpp"
#include "jwt/error.hpp"
#include "jwt/key_set.hpp"
#include "jwt/requirements.hpp"
#include "jwt/token.hpp"

namespace mcpgate::jwt {

class VerifiedTokenCache;

// What a token that passed carries forward: its header and claims, and how it was verified, so a
// cache hit can ask whether that is still good enough for the policy asking.
struct VerifiedToken {
  core::Json header;
  core::Json claims;
  Algorithm alg = Algorithm::kNone;
  std::string key_fingerprint;  // the key that verified it (empty when unsigned)
  bool graph_nonce = false;     // verified through the Graph nonce rule
  int entra_version = 0;        // 1 or 2 when an Entra rule accepted it
  // exp and nbf as read when it passed (infinite when absent): a remembered pass (the cache)
  // needs only these compared with the time.
  double expires = std::numeric_limits<double>::infinity();
  double not_before = -std::numeric_limits<double>::infinity();
};
using VerifiedTokenPtr = std::shared_ptr<const VerifiedToken>;

// The application the token was issued to: appid (v1) or azp (v2); appid when azp is absent.
// Empty when the token names none; raw claim text (make it printable before logging it).
std::string_view client_application(const VerifiedToken& token);
using ValidationResult = core::Result<VerifiedTokenPtr, ValidationError>;

// Largest NumericDate we accept: 9999-12-31T23:59:59Z. Larger values are refused rather than
// compared, so no conversion anywhere can overflow.
inline constexpr double kMaxNumericDate = 253402300799.0;

// Order of checks: syntax, algorithm allow-list, key selection, signature (over the original
// header.payload bytes), then lifetime, issuer, audience, client application, required claims.
// Claims are looked at only after the signature holds.
ValidationResult validate(std::string_view compact, const KeySet& keys, const Requirements& req,
                          double now, const ParseLimits& limits = {});
ValidationResult validate(const Token& token, const KeySet& keys, const Requirements& req,
                          double now);

// As validate(), but a token that passed before (same bytes, and its key still in `keys`) skips
// parsing and signature checks; time and every claim requirement are checked again.
ValidationResult validate_cached(std::string_view compact, const KeySet& keys,
                                 const Requirements& req, double now, VerifiedTokenCache& cache,
                                 const ParseLimits& limits = {});
// The same decision, remembered: once a cached token passed under these requirements and these
// keys (their identities), a hit is checked for its lifetime only. Any other outcome takes the
// whole path above, so every refusal reads as it would without the memo.
ValidationResult validate_cached(std::string_view compact, const KeySet& keys,
                                 const FixedRequirements& req, double now,
                                 VerifiedTokenCache& cache, const ParseLimits& limits = {});

// Only the claim checks (lifetime, issuer, audience, client, required claims).
core::Result<int, ValidationError> check_claims(const core::Json& claims, const Requirements& req,
                                                double now);

}  // namespace mcpgate::jwt
