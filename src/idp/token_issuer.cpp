#include "idp/token_issuer.hpp"

#include "crypto/base64.hpp"
#include "crypto/digest.hpp"
#include "crypto/x509.hpp"
#include "jwt/signer.hpp"

namespace mcpgate::idp {

using core::fail;

Result<SigningKey, std::string> TokenIssuer::create_key(const std::string& state) {
  auto key = crypto::PrivateKey::generate_rsa(2048);
  if (!key) return fail(key.error());
  // Entra's signing certificates are self-signed, CN=accounts.accesscontrol.windows.net, 5 years.
  auto cert = crypto::self_signed_certificate(
      *key, {.common_name = "mcpgate idp token signing", .valid_days = 5 * 365});
  if (!cert) return fail(cert.error());
  const std::string kid = crypto::base64url_encode(cert->sha1_thumbprint());
  return store_.add_signing_key(kid, key->to_pem(), cert->der, state);
}

Result<bool, std::string> TokenIssuer::ensure_keys() {
  auto existing = store_.signing_keys();
  bool has_active = false;
  for (const auto& k : existing) has_active |= k.state == "active";
  if (!has_active) {
    auto k = create_key("active");
    if (!k) return fail(k.error());
    existing.push_back(*k);
  }
  if (existing.size() < 2) {
    auto k = create_key("published");
    if (!k) return fail(k.error());
  }
  return true;
}

Result<std::string, std::string> TokenIssuer::rotate() {
  auto k = create_key("published");
  if (!k) return fail(k.error());
  if (!store_.activate_signing_key(k->kid))
    return fail(std::string("could not activate the new key"));
  return k->kid;
}

const std::vector<TokenIssuer::Loaded>& TokenIssuer::keys() {
  const auto stored = store_.signing_keys();
  std::string fingerprint;
  for (const auto& k : stored) fingerprint += k.kid + ":" + k.state + ";";
  if (fingerprint != loaded_fingerprint_) {
    std::vector<Loaded> fresh;
    for (const auto& k : stored) {
      auto key = crypto::PrivateKey::from_pem(k.private_pem);
      if (key) fresh.push_back({k, std::move(key.value())});
    }
    loaded_ = std::move(fresh);
    loaded_fingerprint_ = fingerprint;
  }
  return loaded_;
}

std::string TokenIssuer::jwks(const std::string& issuer) {
  std::lock_guard lock(mu_);
  core::JsonArray arr;
  for (const auto& k : keys()) {
    const auto& pub = k.key.public_key();
    core::JsonObject o;
    o.emplace_back("kty", core::Json(std::string("RSA")));
    o.emplace_back("use", core::Json(std::string("sig")));
    o.emplace_back("kid", core::Json(k.stored.kid));
    o.emplace_back("x5t", core::Json(k.stored.kid));
    o.emplace_back("n", core::Json(crypto::base64url_encode(pub.rsa_n())));
    o.emplace_back("e", core::Json(crypto::base64url_encode(pub.rsa_e())));
    core::JsonArray x5c;
    x5c.emplace_back(crypto::base64_encode(k.stored.certificate_der));
    o.emplace_back("x5c", core::Json(std::move(x5c)));
    if (!issuer.empty()) o.emplace_back("issuer", core::Json(issuer));
    arr.emplace_back(std::move(o));
  }
  core::JsonObject doc;
  doc.emplace_back("keys", core::Json(std::move(arr)));
  return core::Json(std::move(doc)).dump();
}

jwt::KeySet TokenIssuer::key_set() {
  std::lock_guard lock(mu_);
  jwt::KeySet ks;
  for (const auto& k : keys()) {
    jwt::Jwk j{k.key.public_key()};
    j.kid = k.stored.kid;
    j.x5t = k.stored.kid;
    ks.add(std::move(j));
  }
  return ks;
}

Result<std::string, std::string> TokenIssuer::sign(const core::Json& claims, bool with_x5t,
                                                   bool graph_nonce) {
  std::lock_guard lock(mu_);
  for (const auto& k : keys()) {
    if (k.stored.state != "active") continue;
    core::JsonObject header;
    header.emplace_back("typ", core::Json(std::string("JWT")));
    if (graph_nonce) {
      header.emplace_back("nonce", core::Json(crypto::base64url_encode(crypto::random_bytes(32))));
    }
    header.emplace_back("alg", core::Json(std::string("RS256")));
    if (with_x5t) header.emplace_back("x5t", core::Json(k.stored.kid));
    header.emplace_back("kid", core::Json(k.stored.kid));
    if (graph_nonce) return jwt::sign_graph_style(core::Json(std::move(header)), claims, k.key);
    return jwt::sign(core::Json(std::move(header)), claims, jwt::Algorithm::kRS256, k.key);
  }
  return fail(std::string("no active signing key"));
}

}  // namespace mcpgate::idp
