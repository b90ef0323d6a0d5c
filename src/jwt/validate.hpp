// jwt: validate(token, keys, requirements, now), the whole decision on one token.
// Must not depend on Asio or on anything above crypto; the clock is passed in.
#pragma once

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
};
using VerifiedTokenPtr = std::shared_ptr<const VerifiedToken>;
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

// Only the claim checks (lifetime, issuer, audience, client, required claims).
core::Result<int, ValidationError> check_claims(const core::Json& claims, const Requirements& req,
                                                double now);

}  // namespace mcpgate::jwt
