#include "jwt/signer.hpp"

#include "crypto/base64.hpp"
#include "jwt/entra.hpp"

namespace mcpgate::jwt {
namespace {

using core::fail;

core::Result<std::string, std::string> set_alg(core::Json& header, Algorithm alg) {
  if (!header.is_object()) return fail(std::string("header must be a JSON object"));
  auto& members = header.as_object();
  for (auto& [name, value] : members) {
    if (name == "alg") {
      value = core::Json(std::string(algorithm_name(alg)));
      return std::string();
    }
  }
  members.insert(members.begin(), {"alg", core::Json(std::string(algorithm_name(alg)))});
  return std::string();
}

std::string signing_input(const core::Json& header, const core::Json& claims) {
  return crypto::base64url_encode(header.dump()) + "." + crypto::base64url_encode(claims.dump());
}

}  // namespace

core::Result<std::string, std::string> sign(core::Json header, const core::Json& claims,
                                            Algorithm alg, const crypto::PrivateKey& key) {
  if (alg == Algorithm::kNone || algorithm_spec(alg).scheme == crypto::Scheme::kHmac) {
    return fail(std::string("use sign_hmac for HS algorithms; none is never signed"));
  }
  if (auto r = set_alg(header, alg); !r) return fail(r.error());
  std::string input = signing_input(header, claims);
  const AlgorithmSpec spec = algorithm_spec(alg);
  auto sig = crypto::sign(key, spec.scheme, spec.hash, input);
  if (!sig) return fail(sig.error());
  return input + "." + crypto::base64url_encode(*sig);
}

core::Result<std::string, std::string> sign_hmac(core::Json header, const core::Json& claims,
                                                 Algorithm alg, std::string_view secret) {
  if (alg != Algorithm::kHS256 && alg != Algorithm::kHS384 && alg != Algorithm::kHS512) {
    return fail(std::string("sign_hmac needs an HS algorithm"));
  }
  if (auto r = set_alg(header, alg); !r) return fail(r.error());
  std::string input = signing_input(header, claims);
  return input + "." +
         crypto::base64url_encode(crypto::hmac(algorithm_spec(alg).hash, secret, input));
}

core::Result<std::string, std::string> sign_graph_style(core::Json header, const core::Json& claims,
                                                        const crypto::PrivateKey& key) {
  if (auto r = set_alg(header, Algorithm::kRS256); !r) return fail(r.error());
  const std::string header_json = header.dump();
  const std::string payload_b64 = crypto::base64url_encode(claims.dump());
  auto input = graph_nonce_signing_input(header_json, payload_b64);
  if (!input) return fail(std::string("a Graph-style header needs a string \"nonce\""));
  auto sig = crypto::sign(key, crypto::Scheme::kRsaPkcs1, crypto::Hash::kSha256, *input);
  if (!sig) return fail(sig.error());
  return crypto::base64url_encode(header_json) + "." + payload_b64 + "." +
         crypto::base64url_encode(*sig);
}

}  // namespace mcpgate::jwt
