#include "crypto/key.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "crypto/ossl_internal.hpp"

namespace mcpgate::crypto {
namespace {

using core::fail;

std::shared_ptr<EVP_PKEY> share(EVP_PKEY* p) { return {p, EVP_PKEY_free}; }

const char* group_name(Curve curve) {
  switch (curve) {
    case Curve::kP256:
      return "prime256v1";
    case Curve::kP384:
      return "secp384r1";
    case Curve::kP521:
      return "secp521r1";
    case Curve::kNone:
      break;
  }
  return nullptr;
}

Curve curve_from_group(const char* name) {
  const std::string_view n(name);
  if (n == "prime256v1" || n == "P-256") return Curve::kP256;
  if (n == "secp384r1" || n == "P-384") return Curve::kP384;
  if (n == "secp521r1" || n == "P-521") return Curve::kP521;
  return Curve::kNone;
}

std::string spki_der(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string bn_param(EVP_PKEY* pkey, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) return {};
  BnPtr owned(bn);
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

}  // namespace

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

std::size_t curve_size(Curve curve) {
  switch (curve) {
    case Curve::kP256:
      return 32;
    case Curve::kP384:
      return 48;
    case Curve::kP521:
      return 66;
    case Curve::kNone:
      break;
  }
  return 0;
}

const char* curve_name(Curve curve) {
  switch (curve) {
    case Curve::kP256:
      return "P-256";
    case Curve::kP384:
      return "P-384";
    case Curve::kP521:
      return "P-521";
    case Curve::kNone:
      break;
  }
  return "none";
}

core::Result<PublicKey, std::string> PublicKey::adopt(EVP_PKEY* raw) {
  PkeyPtr owned(raw);
  PublicKey key;
  const int id = EVP_PKEY_get_base_id(raw);
  if (id == EVP_PKEY_RSA) {
    key.type_ = KeyType::kRsa;
    key.bits_ = EVP_PKEY_get_bits(raw);
    if (key.bits_ < kMinRsaBits) {
      return fail("RSA key of " + std::to_string(key.bits_) + " bits is too small (minimum " +
                  std::to_string(kMinRsaBits) + ")");
    }
    if (key.bits_ > kMaxRsaBits) {
      return fail("RSA key of " + std::to_string(key.bits_) + " bits is too large (maximum " +
                  std::to_string(kMaxRsaBits) + ")");
    }
  } else if (id == EVP_PKEY_EC) {
    key.type_ = KeyType::kEc;
    char group[64] = {0};
    std::size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(raw, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1) {
      return fail(std::string("EC key without a named curve"));
    }
    key.curve_ = curve_from_group(group);
    if (key.curve_ == Curve::kNone) return fail("unsupported EC curve " + std::string(group));
    key.bits_ = EVP_PKEY_get_bits(raw);
  } else {
    return fail(std::string("unsupported public key type (only RSA and EC are accepted)"));
  }
  key.fingerprint_ = sha256(spki_der(raw));
  key.pkey_ = share(owned.release());
  return key;
}

core::Result<PublicKey, std::string> PublicKey::rsa(std::string_view n, std::string_view e) {
  if (n.empty() || e.empty()) return fail(std::string("RSA key needs both n and e"));
  if (n.front() == '\0') return fail(std::string("RSA modulus has leading zero bytes"));
  if (e.size() > 8 || !(static_cast<unsigned char>(e.back()) & 1)) {
    return fail(std::string("RSA public exponent is not a small odd number"));
  }
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()),
                       nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()),
                       nullptr));
  if (!bn_n || !bn_e || BN_is_one(bn_e.get()) || BN_is_zero(bn_e.get())) {
    return fail(std::string("invalid RSA public exponent"));
  }
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get());
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return fail("invalid RSA key: " + openssl_error());
  }
  return adopt(pkey);
}

core::Result<PublicKey, std::string> PublicKey::ec(Curve curve, std::string_view x,
                                                   std::string_view y) {
  const std::size_t size = curve_size(curve);
  if (size == 0) return fail(std::string("unsupported EC curve"));
  if (x.size() != size || y.size() != size) {
    return fail("EC coordinates must be " + std::to_string(size) + " bytes for " +
                curve_name(curve));
  }
  std::string point;
  point.reserve(1 + 2 * size);
  point += '\x04';
  point.append(x);
  point.append(y);
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name(curve), 0);
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return fail("invalid EC key: " + openssl_error());
  }
  PkeyPtr owned(pkey);
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return fail(std::string("EC point is not on the curve"));
  }
  return adopt(owned.release());
}

core::Result<PublicKey, std::string> PublicKey::from_certificate_der(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != reinterpret_cast<const unsigned char*>(der.data() + der.size())) {
    ERR_clear_error();
    return fail(std::string("not a DER X.509 certificate"));
  }
  EVP_PKEY* pkey = X509_get_pubkey(cert.get());
  if (!pkey) return fail("certificate without a usable public key: " + openssl_error());
  return adopt(pkey);
}

core::Result<PublicKey, std::string> PublicKey::from_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (pem.find("BEGIN CERTIFICATE") != std::string_view::npos) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) return fail("invalid certificate PEM: " + openssl_error());
    EVP_PKEY* pkey = X509_get_pubkey(cert.get());
    if (!pkey) return fail("certificate without a usable public key: " + openssl_error());
    return adopt(pkey);
  }
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (!pkey) return fail("invalid public key PEM: " + openssl_error());
  return adopt(pkey);
}

PublicKey PublicKey::oct(std::string secret) {
  PublicKey key;
  key.type_ = KeyType::kOct;
  key.bits_ = static_cast<int>(secret.size() * 8);
  key.fingerprint_ = sha256("oct:" + secret);
  key.secret_ = std::move(secret);
  return key;
}

std::string PublicKey::rsa_n() const { return bn_param(pkey_.get(), OSSL_PKEY_PARAM_RSA_N); }
std::string PublicKey::rsa_e() const { return bn_param(pkey_.get(), OSSL_PKEY_PARAM_RSA_E); }

namespace {
std::string ec_point(EVP_PKEY* pkey) {
  unsigned char buf[1 + 2 * 66];
  std::size_t len = 0;
  // Uncompressed form 04 || x || y.
  if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof buf,
                                      &len) != 1 ||
      len < 3 || buf[0] != 4) {
    ERR_clear_error();
    return {};
  }
  return std::string(reinterpret_cast<char*>(buf) + 1, len - 1);
}
}  // namespace

std::string PublicKey::ec_x() const {
  const std::string p = ec_point(pkey_.get());
  return p.substr(0, p.size() / 2);
}
std::string PublicKey::ec_y() const {
  const std::string p = ec_point(pkey_.get());
  return p.substr(p.size() / 2);
}

core::Result<PrivateKey, std::string> PrivateKey::adopt(evp_pkey_st* raw) {
  PrivateKey key;
  key.pkey_ = share(raw);
  // The public half goes through the same checks as any published key.
  EVP_PKEY_up_ref(raw);
  auto pub = PublicKey::adopt(raw);
  if (!pub) return fail(pub.error());
  key.public_ = std::move(pub.value());
  return key;
}

core::Result<PrivateKey, std::string> PrivateKey::from_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!raw) return fail("invalid private key PEM: " + openssl_error());
  return adopt(raw);
}

core::Result<PrivateKey, std::string> PrivateKey::generate_rsa(int bits) {
  EVP_PKEY* raw = EVP_RSA_gen(static_cast<unsigned>(bits));
  if (!raw) return fail("RSA key generation failed: " + openssl_error());
  return adopt(raw);
}

core::Result<PrivateKey, std::string> PrivateKey::generate_ec(Curve curve) {
  EVP_PKEY* raw = EVP_EC_gen(group_name(curve));
  if (!raw) return fail("EC key generation failed: " + openssl_error());
  return adopt(raw);
}

std::string PrivateKey::to_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace mcpgate::crypto
