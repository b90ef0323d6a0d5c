// jwt: why a token was refused, with APIM's reason names (context.LastError.Reason).
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <string>
#include <string_view>

namespace mcpgate::jwt {

// APIM's validate-jwt reasons (apim-policies.md §1.4). Every failure maps to one of them; the
// message says exactly what was wrong so a person can fix it.
enum class Reason {
  kTokenNotPresent,
  kJwtInvalid,
  kTokenSignatureInvalid,
  kTokenSignatureKeyNotFound,
  kTokenExpired,
  kTokenIssuerNotAllowed,
  kTokenAudienceNotAllowed,
  kTokenClaimNotFound,
  kTokenClaimValueNotAllowed,
};

std::string_view reason_name(Reason reason);

struct ValidationError {
  Reason reason;
  std::string message;
};

}  // namespace mcpgate::jwt
