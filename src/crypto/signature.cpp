#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include <array>

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

// Verify contexts by key, scheme and hash, per thread: a token's signature is checked with the
// few keys an issuer publishes, again and again. Setting a context up costs OpenSSL 3 an
// algorithm lookup under its locks (about a fifth of an RS256 verify); a cached one is reused.
// Each entry holds a reference to its key, so a key freed and another allocated at its address
// cannot meet a stale context.
class VerifyContexts {
 public:
  VerifyContexts() = default;
  VerifyContexts(const VerifyContexts&) = delete;
  VerifyContexts& operator=(const VerifyContexts&) = delete;
  ~VerifyContexts() {
    for (auto& e : entries_) drop(e);
  }

  // A context ready for EVP_PKEY_verify over a digest, or null when OpenSSL refuses the setup.
  EVP_PKEY_CTX* get(EVP_PKEY* key, Scheme scheme, Hash hash) {
    for (auto& e : entries_) {
      if (e.key == key && e.scheme == scheme && e.hash == hash) return e.ctx;
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
        (scheme == Scheme::kRsaPkcs1 &&
         EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) ||
        (scheme == Scheme::kRsaPss && !set_pss(ctx.get(), hash)) ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), evp_md(hash)) != 1) {
      ERR_clear_error();
      return nullptr;
    }
    Entry& e = entries_[next_];
    next_ = (next_ + 1) % entries_.size();
    drop(e);
    EVP_PKEY_up_ref(key);
    e = Entry{key, scheme, hash, ctx.release()};
    return e.ctx;
  }

  // After a failed verify: the context is set up afresh next time (a failure must not leave
  // state behind for the next token).
  void forget(EVP_PKEY_CTX* ctx) {
    for (auto& e : entries_) {
      if (e.ctx == ctx) drop(e);
    }
  }

 private:
  struct Entry {
    EVP_PKEY* key = nullptr;
    Scheme scheme = Scheme::kHmac;
    Hash hash = Hash::kSha256;
    EVP_PKEY_CTX* ctx = nullptr;
  };
  static void drop(Entry& e) {
    EVP_PKEY_CTX_free(e.ctx);
    EVP_PKEY_free(e.key);
    e = Entry{};
  }
  std::array<Entry, 8> entries_{};
  std::size_t next_ = 0;
};

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
  thread_local VerifyContexts contexts;
  EVP_PKEY_CTX* pctx = contexts.get(key.pkey(), scheme, hash);
  if (!pctx) return false;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned digest_len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &digest_len, evp_md(hash), nullptr) != 1) {
    ERR_clear_error();
    return false;
  }
  const int rc = EVP_PKEY_verify(pctx, reinterpret_cast<const unsigned char*>(signature.data()),
                                 signature.size(), digest, digest_len);
  if (rc != 1) {
    ERR_clear_error();
    contexts.forget(pctx);
  }
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
