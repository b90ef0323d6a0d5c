// crypto: public and private keys (RSA, EC P-256/384/521, symmetric) over OpenSSL 3.
// Must not depend on Asio; OpenSSL types stay behind forward declarations.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "crypto/digest.hpp"

struct evp_pkey_st;

namespace mcpgate::crypto {

enum class KeyType { kRsa, kEc, kOct };
enum class Curve { kNone, kP256, kP384, kP521 };

// Coordinate size in bytes (32, 48, 66); 0 for kNone.
std::size_t curve_size(Curve curve);
const char* curve_name(Curve curve);  // "P-256", ...

// RSA keys smaller than this are refused: NIST SP 800-131A disallows < 2048-bit RSA signatures,
// and Entra ID signs with 2048-bit keys. Larger than kMaxRsaBits bounds the cost of one verify.
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 8192;

using KeyResult = core::Result<class PublicKey, std::string>;

// Immutable and cheap to copy (shares the OpenSSL key); safe to use from many threads.
class PublicKey {
 public:
  // n and e are unsigned big-endian bytes (already base64url-decoded).
  static core::Result<PublicKey, std::string> rsa(std::string_view n, std::string_view e);
  // x and y are the full-size big-endian coordinates (RFC 7518 §6.2.1.2); the point must be on
  // the curve (invalid-curve attacks).
  static core::Result<PublicKey, std::string> ec(Curve curve, std::string_view x,
                                                 std::string_view y);
  static core::Result<PublicKey, std::string> from_certificate_der(std::string_view der);
  // "BEGIN PUBLIC KEY" or "BEGIN CERTIFICATE" PEM.
  static core::Result<PublicKey, std::string> from_pem(std::string_view pem);
  static PublicKey oct(std::string secret);

  KeyType type() const { return type_; }
  Curve curve() const { return curve_; }
  int bits() const { return bits_; }
  evp_pkey_st* pkey() const { return pkey_.get(); }
  const std::string& secret() const { return secret_; }
  // SHA-256 over the DER SubjectPublicKeyInfo (or over the secret for symmetric keys): names a
  // key independent of kid, so caches can ask "is the key that verified this still trusted?".
  const std::string& fingerprint() const { return fingerprint_; }
  // RSA modulus and exponent / EC coordinates as big-endian bytes (for writing JWKS).
  std::string rsa_n() const;
  std::string rsa_e() const;
  std::string ec_x() const;  // full-size big-endian coordinates
  std::string ec_y() const;

 private:
  friend class PrivateKey;
  static core::Result<PublicKey, std::string> adopt(evp_pkey_st* pkey);
  KeyType type_ = KeyType::kOct;
  Curve curve_ = Curve::kNone;
  int bits_ = 0;
  std::shared_ptr<evp_pkey_st> pkey_;
  std::string secret_;
  std::string fingerprint_;
};

class PrivateKey {
 public:
  static core::Result<PrivateKey, std::string> from_pem(std::string_view pem);
  static core::Result<PrivateKey, std::string> generate_rsa(int bits);
  static core::Result<PrivateKey, std::string> generate_ec(Curve curve);

  KeyType type() const { return public_.type(); }
  Curve curve() const { return public_.curve(); }
  const PublicKey& public_key() const { return public_; }
  evp_pkey_st* pkey() const { return pkey_.get(); }
  std::string to_pem() const;  // PKCS#8

 private:
  static core::Result<PrivateKey, std::string> adopt(evp_pkey_st* pkey);  // takes ownership
  std::shared_ptr<evp_pkey_st> pkey_;
  PublicKey public_;
};

enum class Scheme { kRsaPkcs1, kRsaPss, kEcdsa, kHmac };

// Verifies `signature` over `data`. ECDSA signatures are JOSE's raw R||S (RFC 7518 §3.4);
// PSS uses MGF1 with the same hash and a salt as long as the hash (RFC 7518 §3.5). HMAC compares
// in constant time. Returns false on any mismatch between key and scheme.
bool verify(const PublicKey& key, Scheme scheme, Hash hash, std::string_view data,
            std::string_view signature);

// Signs `data`; ECDSA output is raw R||S.
core::Result<std::string, std::string> sign(const PrivateKey& key, Scheme scheme, Hash hash,
                                            std::string_view data);
std::string hmac(Hash hash, std::string_view key, std::string_view data);

// The last OpenSSL error as text (and clears the queue).
std::string openssl_error();

}  // namespace mcpgate::crypto
