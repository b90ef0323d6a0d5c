// jwt (tests only): keys and token builders shared by the jwt unit tests.
#pragma once

#include <string>

#include "core/json.hpp"
#include "crypto/key.hpp"
#include "jwt/key_set.hpp"
#include "jwt/signer.hpp"

namespace mcpgate::jwt::testing {

inline const crypto::PrivateKey& rsa_a() {
  static const auto k = crypto::PrivateKey::generate_rsa(2048).value();
  return k;
}
inline const crypto::PrivateKey& rsa_b() {
  static const auto k = crypto::PrivateKey::generate_rsa(2048).value();
  return k;
}
inline const crypto::PrivateKey& ec256() {
  static const auto k = crypto::PrivateKey::generate_ec(crypto::Curve::kP256).value();
  return k;
}
inline const std::string& hs_secret() {
  static const std::string s(64, 'h');
  return s;
}

inline Jwk jwk(const crypto::PrivateKey& key, std::string kid) {
  Jwk j{key.public_key()};
  j.kid = std::move(kid);
  return j;
}

// rsa-a, rsa-b, ec-256, and the symmetric key "hs".
inline KeySet standard_keys() {
  KeySet ks;
  ks.add(jwk(rsa_a(), "rsa-a"));
  ks.add(jwk(rsa_b(), "rsa-b"));
  ks.add(jwk(ec256(), "ec-256"));
  Jwk hs{crypto::PublicKey::oct(hs_secret())};
  hs.kid = "hs";
  ks.add(std::move(hs));
  return ks;
}

inline core::Json obj(std::string_view text) { return core::parse_json(text).value(); }

inline std::string token(std::string_view header, std::string_view claims,
                         const crypto::PrivateKey& key = rsa_a(),
                         Algorithm alg = Algorithm::kRS256) {
  return sign(obj(header), obj(claims), alg, key).value();
}

}  // namespace mcpgate::jwt::testing
