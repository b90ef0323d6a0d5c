// jwt: KeySet, the verification keys of one issuer (from a JWKS document or configured keys).
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/identity.hpp"
#include "core/result.hpp"
#include "crypto/key.hpp"
#include "jwt/algorithm.hpp"

namespace mcpgate::jwt {

struct Jwk {
  crypto::PublicKey key;
  std::string kid;
  std::string use;              // "sig", "enc" or empty
  std::string alg;              // when set, the only algorithm this key may verify (RFC 7517 §4.4)
  std::string x5t;              // base64url SHA-1 of the certificate (Entra: equals kid)
  std::string x5t_s256;         // base64url SHA-256 of the certificate
  std::string issuer;           // Entra's per-key issuer, may hold the {tenantid} template
  std::string certificate_der;  // leaf of x5c when given
};

struct JwksLimits {
  std::size_t max_bytes = 512 * 1024;
  std::size_t max_keys = 100;
};

// Immutable once built; share it as shared_ptr<const KeySet> and swap the pointer to refresh.
class KeySet {
 public:
  // Reads {"keys":[...]}. RSA from n/e (or the leaf of x5c), EC from crv/x/y, oct from k. Keys of
  // unknown type, keys for encryption, and malformed keys are skipped with a warning, not fatal;
  // when x5c and n/e are both present they must be the same key (RFC 7517 §4.7).
  static core::Result<KeySet, std::string> from_jwks(std::string_view json,
                                                     std::vector<std::string>* warnings = nullptr,
                                                     const JwksLimits& limits = {});

  void add(Jwk jwk);
  const std::vector<Jwk>& keys() const { return keys_; }
  bool empty() const { return keys_.empty(); }
  // Whether a key with this fingerprint is (still) in the set.
  bool contains_fingerprint(std::string_view fingerprint) const;

  enum class Selection { kFound, kKidNotFound, kNoKeyFitsAlgorithm };
  // The keys that may verify a token with this alg and kid (x5t when the token has no kid):
  // with a kid, only keys with that kid; without one, every key whose type fits. With
  // `try_all_on_kid_miss` (APIM issuer-signing-keys: "if no keys match, each key is tried"), an
  // unmatched kid falls back to every fitting key.
  Selection select(Algorithm alg, std::string_view kid, std::string_view x5t,
                   bool try_all_on_kid_miss, std::vector<const Jwk*>& out) const;

  // The JWKS document for these keys (public parts only; oct keys are never written).
  std::string to_jwks() const;

  // Names these keys as they are now (add() renews it, a copy has its own): what passed under
  // them may be remembered by it (VerifiedTokenCache).
  std::uint64_t identity() const { return identity_.value(); }

 private:
  std::vector<Jwk> keys_;
  core::Identity identity_;
};

}  // namespace mcpgate::jwt
