#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "crypto/key.hpp"
#include "crypto/ossl_internal.hpp"

namespace mcpgate::crypto {
namespace {

using core::fail;

// One digest context per thread, reset between uses: allocating a fresh one per verify is
// measurable next to a ~16 µs RSA verify.
EVP_MD_CTX* thread_md_ctx() {
  thread_local MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_MD_CTX_reset(ctx.get());
  return ctx.get();
}

bool scheme_fits(const PublicKey& key, Scheme scheme) {
  switch (scheme) {
    case Scheme::kRsaPkcs1:
    case Scheme::kRsaPss:
      return key.type() == KeyType::kRsa;
    case Scheme::kEcdsa:
      return key.type() == KeyType::kEc;
    case Scheme::kHmac:
      return key.type() == KeyType::kOct;
  }
  return false;
}

bool set_pss(EVP_PKEY_CTX* pctx, Hash hash) {
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, static_cast<int>(digest_size(hash))) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, evp_md(hash)) == 1;
}

// JOSE R||S (RFC 7518 §3.4) -> DER ECDSA-Sig-Value for OpenSSL.
std::string raw_to_der(std::string_view raw) {
  const std::size_t half = raw.size() / 2;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(half),
                        nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + half),
                        static_cast<int>(half), nullptr);
  if (!r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return {};
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return {};
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string der_to_raw(std::string_view der, std::size_t coord) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return {};
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(2 * coord, '\0');
  if (BN_bn2binpad(r, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(coord)) < 0 ||
      BN_bn2binpad(s, reinterpret_cast<unsigned char*>(out.data() + coord),
                   static_cast<int>(coord)) < 0) {
    return {};
  }
  return out;
}

}  // namespace

std::string hmac(Hash hash, std::string_view key, std::string_view data) {
  std::string out(EVP_MAX_MD_SIZE, '\0');
  unsigned len = 0;
  HMAC(evp_md(hash), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       reinterpret_cast<unsigned char*>(out.data()), &len);
  out.resize(len);
  return out;
}

bool verify(const PublicKey& key, Scheme scheme, Hash hash, std::string_view data,
            std::string_view signature) {
  if (!scheme_fits(key, scheme)) return false;
  if (scheme == Scheme::kHmac) {
    const std::string expected = hmac(hash, key.secret(), data);
    return signature.size() == expected.size() &&
           CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) == 0;
  }
  std::string der;
  if (scheme == Scheme::kEcdsa) {
    if (signature.size() != 2 * curve_size(key.curve())) return false;
    der = raw_to_der(signature);
    if (der.empty()) return false;
    signature = der;
  } else if (signature.size() != static_cast<std::size_t>((key.bits() + 7) / 8)) {
    return false;  // RFC 8017 §8.2.2 step 1: the signature is exactly k octets
  }
  EVP_MD_CTX* ctx = thread_md_ctx();
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(ctx, &pctx, evp_md(hash), nullptr, key.pkey()) != 1) {
    ERR_clear_error();
    return false;
  }
  if (scheme == Scheme::kRsaPss && !set_pss(pctx, hash)) {
    ERR_clear_error();
    return false;
  }
  const int rc = EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                                  signature.size(),
                                  reinterpret_cast<const unsigned char*>(data.data()), data.size());
  if (rc != 1) ERR_clear_error();
  return rc == 1;
}

core::Result<std::string, std::string> sign(const PrivateKey& key, Scheme scheme, Hash hash,
                                            std::string_view data) {
  if (!scheme_fits(key.public_key(), scheme) || scheme == Scheme::kHmac) {
    return fail(std::string("key type does not fit the signature scheme"));
  }
  EVP_MD_CTX* ctx = thread_md_ctx();
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx, &pctx, evp_md(hash), nullptr, key.pkey()) != 1 ||
      (scheme == Scheme::kRsaPss && !set_pss(pctx, hash))) {
    return fail("sign init failed: " + openssl_error());
  }
  std::size_t len = 0;
  if (EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return fail("sign failed: " + openssl_error());
  }
  std::string out(len, '\0');
  if (EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return fail("sign failed: " + openssl_error());
  }
  out.resize(len);
  if (scheme == Scheme::kEcdsa) {
    out = der_to_raw(out, curve_size(key.curve()));
    if (out.empty()) return fail(std::string("could not convert the ECDSA signature"));
  }
  return out;
}

}  // namespace mcpgate::crypto
