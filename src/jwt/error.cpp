#include "jwt/error.hpp"

namespace mcpgate::jwt {

std::string_view reason_name(Reason reason) {
  switch (reason) {
    case Reason::kTokenNotPresent:
      return "TokenNotPresent";
    case Reason::kJwtInvalid:
      return "JwtInvalid";
    case Reason::kTokenSignatureInvalid:
      return "TokenSignatureInvalid";
    case Reason::kTokenSignatureKeyNotFound:
      return "TokenSignatureKeyNotFound";
    case Reason::kTokenExpired:
      return "TokenExpired";
    case Reason::kTokenIssuerNotAllowed:
      return "TokenIssuerNotAllowed";
    case Reason::kTokenAudienceNotAllowed:
      return "TokenAudienceNotAllowed";
    case Reason::kTokenClaimNotFound:
      return "TokenClaimNotFound";
    case Reason::kTokenClaimValueNotAllowed:
      return "TokenClaimValueNotAllowed";
  }
  return "JwtInvalid";
}

}  // namespace mcpgate::jwt
