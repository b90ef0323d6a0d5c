#include "crypto/x509.hpp"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "crypto/base64.hpp"
#include "crypto/digest.hpp"
#include "crypto/ossl_internal.hpp"

namespace mcpgate::crypto {
namespace {

using core::fail;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

core::Result<Certificate, std::string> build(const PrivateKey& subject_key,
                                             const CertificateRequest& req,
                                             const PrivateKey& issuer_key, X509* issuer_cert) {
  X509Ptr cert(X509_new());
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  X509_set_version(cert.get(), 2);
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // tolerate small clock differences
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(req.valid_days) * 86400);
  X509_set_pubkey(cert.get(), subject_key.pkey());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(req.common_name.c_str()), -1,
                             -1, 0);
  X509* issuer = issuer_cert ? issuer_cert : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer));

  bool ok = add_ext(cert.get(), issuer, NID_basic_constraints,
                    req.is_ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE") &&
            add_ext(cert.get(), issuer, NID_key_usage,
                    req.is_ca ? "critical,keyCertSign,cRLSign"
                              : "critical,digitalSignature,keyEncipherment") &&
            add_ext(cert.get(), issuer, NID_subject_key_identifier, "hash");
  if (ok && issuer_cert)
    ok = add_ext(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  if (ok && !req.is_ca)
    ok = add_ext(cert.get(), issuer, NID_ext_key_usage, "serverAuth,clientAuth");
  std::string san;
  for (const auto& d : req.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  for (const auto& ip : req.ip_addresses) san += (san.empty() ? "IP:" : ",IP:") + ip;
  if (ok && !san.empty()) ok = add_ext(cert.get(), issuer, NID_subject_alt_name, san);
  if (!ok) return fail("certificate extensions: " + openssl_error());
  if (X509_sign(cert.get(), issuer_key.pkey(), EVP_sha256()) <= 0)
    return fail("certificate signing: " + openssl_error());

  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return fail("certificate encoding: " + openssl_error());
  Certificate out{std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(len))};
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::string Certificate::pem() const {
  std::string b64 = base64_encode(der);
  std::string out = "-----BEGIN CERTIFICATE-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END CERTIFICATE-----\n";
}

std::string Certificate::sha1_thumbprint() const { return sha1(der); }
std::string Certificate::sha256_thumbprint() const { return sha256(der); }

core::Result<Certificate, std::string> self_signed_certificate(const PrivateKey& key,
                                                               const CertificateRequest& req) {
  return build(key, req, key, nullptr);
}

core::Result<Certificate, std::string> issue_certificate(const PrivateKey& subject_key,
                                                         const CertificateRequest& req,
                                                         const PrivateKey& issuer_key,
                                                         const Certificate& issuer) {
  const auto* p = reinterpret_cast<const unsigned char*>(issuer.der.data());
  X509Ptr issuer_cert(d2i_X509(nullptr, &p, static_cast<long>(issuer.der.size())));
  if (!issuer_cert) return fail(std::string("issuer certificate is not DER"));
  return build(subject_key, req, issuer_key, issuer_cert.get());
}

core::Result<Certificate, std::string> certificate_from_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return fail("not a PEM certificate: " + openssl_error());
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return fail(std::string("certificate encoding failed"));
  Certificate out{std::string(reinterpret_cast<char*>(der), static_cast<std::size_t>(len))};
  OPENSSL_free(der);
  return out;
}

}  // namespace mcpgate::crypto
