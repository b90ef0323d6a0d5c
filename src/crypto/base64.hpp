// crypto: base64url (RFC 4648 §5, strict, as JWS needs) and standard base64 (x5c, PEM bodies).
// Must not depend on OpenSSL or Asio.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace mcpgate::crypto {

// Strict base64url without padding (RFC 7515 §2): rejects '=', '+', '/', whitespace, a length
// of 4n+1, and non-zero unused trailing bits (so each byte string has exactly one encoding).
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view bytes);

struct Base64Options {
  bool skip_whitespace = false;  // x5c values from some clients carry line breaks
  bool require_padding = false;  // false: padding optional, but if present it must be right
};
// Standard alphabet. Trailing bits must be zero here too.
std::optional<std::string> base64_decode(std::string_view in, Base64Options options = {});
std::string base64_encode(std::string_view bytes);

}  // namespace mcpgate::crypto
