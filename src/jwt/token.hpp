// jwt: parse(compact) -> Token, the syntax of a JWS compact token without any crypto.
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/result.hpp"
#include "jwt/algorithm.hpp"
#include "jwt/error.hpp"

namespace mcpgate::jwt {

struct ParseLimits {
  // Entra access tokens are 1-3 KB (more with many groups); anything this large is an attack or
  // a mistake. Bounds the work done on input nobody has authenticated yet.
  std::size_t max_token_bytes = 32 * 1024;
  std::size_t max_json_depth = 16;
};

// A parsed JWS in compact serialization (RFC 7515 §7.1). Holds views into the caller's string,
// which must outlive it, and the decoded header and claims.
struct Token {
  std::string_view compact;
  std::string_view signing_input;  // "header.payload", exactly the bytes that were signed
  std::string_view header_b64;
  std::string_view payload_b64;
  std::string header_json;  // decoded header bytes (for the Graph nonce rule)
  core::Json header;
  core::Json claims;
  std::string signature;
  Algorithm alg = Algorithm::kNone;

  std::string_view kid() const;
  std::string_view x5t() const;
};

// Rejects: anything but three base64url parts (five parts: "encrypted tokens are not supported
// yet"), non-canonical base64url, headers or claims that are not JSON objects, duplicate member
// names, unknown `alg`, any `crit` (RFC 7515 §4.1.11: we understand no extensions), and a
// signature on an `alg: none` token. Every failure is JwtInvalid.
core::Result<Token, ValidationError> parse(std::string_view compact,
                                           const ParseLimits& limits = {});

}  // namespace mcpgate::jwt
