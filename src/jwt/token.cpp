#include "jwt/token.hpp"

#include "core/strings.hpp"
#include "crypto/base64.hpp"

namespace mcpgate::jwt {
namespace {

using core::fail;

core::Failure<ValidationError> invalid(std::string message) {
  return fail(ValidationError{Reason::kJwtInvalid, std::move(message)});
}

}  // namespace

std::string_view Token::kid() const {
  const std::string* v = header.find_string("kid");
  return v ? std::string_view(*v) : std::string_view();
}

std::string_view Token::x5t() const {
  const std::string* v = header.find_string("x5t");
  return v ? std::string_view(*v) : std::string_view();
}

core::Result<Token, ValidationError> parse(std::string_view compact, const ParseLimits& limits) {
  if (compact.empty()) return invalid("token is empty");
  if (compact.size() > limits.max_token_bytes) {
    return invalid("token is " + std::to_string(compact.size()) +
                   " bytes, more than the limit of " + std::to_string(limits.max_token_bytes));
  }
  // Find the dots; the base64url decoder below rejects every other character outside the
  // alphabet (whitespace, padding, trailing garbage).
  std::size_t dots[4];
  std::size_t ndots = 0;
  for (std::size_t from = 0;;) {
    const auto p = compact.find('.', from);
    if (p == std::string_view::npos) break;
    if (ndots == 4) return invalid("token has more than five dot-separated parts");
    dots[ndots++] = p;
    from = p + 1;
  }
  if (ndots == 4) return invalid("encrypted tokens (JWE, five parts) are not supported yet");
  if (ndots != 2) return invalid("a JWT must have three base64url parts separated by dots");

  Token t;
  t.compact = compact;
  t.header_b64 = compact.substr(0, dots[0]);
  t.payload_b64 = compact.substr(dots[0] + 1, dots[1] - dots[0] - 1);
  t.signing_input = compact.substr(0, dots[1]);
  const std::string_view sig_b64 = compact.substr(dots[1] + 1);

  auto header = crypto::base64url_decode(t.header_b64);
  if (!header)
    return invalid("header is not canonical base64url (invalid character, padding or whitespace)");
  core::JsonLimits jl;
  jl.max_bytes = limits.max_token_bytes;
  jl.max_depth = limits.max_json_depth;
  auto hj = core::parse_json(*header, jl);
  if (!hj) return invalid("header is not valid JSON: " + hj.error());
  if (!hj->is_object()) return invalid("header is not a JSON object");
  t.header_json = std::move(*header);
  t.header = std::move(hj.value());

  const core::Json* alg = t.header.find("alg");
  if (!alg) return invalid("header has no \"alg\"");
  if (!alg->is_string()) return invalid("header \"alg\" is not a string");
  auto parsed_alg = algorithm_from_name(alg->as_string());
  if (!parsed_alg)
    return invalid("unsupported algorithm \"" + core::printable(alg->as_string(), 20) + "\"");
  t.alg = *parsed_alg;

  if (const core::Json* crit = t.header.find("crit")) {
    std::string name =
        crit->is_array() && !crit->as_array().empty() && crit->as_array()[0].is_string()
            ? core::printable(crit->as_array()[0].as_string(), 40)
            : std::string("(malformed)");
    return invalid("header lists critical extension \"" + name +
                   "\", which is not supported (RFC 7515 §4.1.11)");
  }
  for (const char* member : {"kid", "x5t", "typ"}) {
    const core::Json* v = t.header.find(member);
    if (v && !v->is_string())
      return invalid(std::string("header \"") + member + "\" is not a string");
  }

  auto payload = crypto::base64url_decode(t.payload_b64);
  if (!payload)
    return invalid("payload is not canonical base64url (invalid character, padding or whitespace)");
  auto pj = core::parse_json(*payload, jl);
  if (!pj) return invalid("claims are not valid JSON: " + pj.error());
  if (!pj->is_object()) return invalid("claims are not a JSON object");
  t.claims = std::move(pj.value());

  auto sig = crypto::base64url_decode(sig_b64);
  if (!sig)
    return invalid(
        "signature is not canonical base64url (invalid character, padding or whitespace)");
  t.signature = std::move(*sig);
  if (t.alg == Algorithm::kNone && !t.signature.empty()) {
    return invalid("an unsigned (alg \"none\") token must have an empty signature");
  }
  if (t.alg != Algorithm::kNone && t.signature.empty()) return invalid("signature is empty");
  return t;
}

}  // namespace mcpgate::jwt
