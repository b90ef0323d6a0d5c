// crypto: X.509 certificates the emulator needs: its own CA, server certificates signed by it,
// and self-signed certificates that wrap token-signing keys (x5c/x5t in JWKS).
// Must not depend on Asio.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "crypto/key.hpp"

namespace mcpgate::crypto {

struct Certificate {
  std::string der;
  std::string pem() const;
  std::string sha1_thumbprint() const;    // raw bytes
  std::string sha256_thumbprint() const;  // raw bytes
};

struct CertificateRequest {
  std::string common_name;
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries (v4 or v6)
  int valid_days = 365;
  bool is_ca = false;
};

// Self-signed (issuer = subject), signed with SHA-256 by `key`.
core::Result<Certificate, std::string> self_signed_certificate(const PrivateKey& key,
                                                               const CertificateRequest& req);
// Signed by `issuer_key`, whose certificate is `issuer`.
core::Result<Certificate, std::string> issue_certificate(const PrivateKey& subject_key,
                                                         const CertificateRequest& req,
                                                         const PrivateKey& issuer_key,
                                                         const Certificate& issuer);
core::Result<Certificate, std::string> certificate_from_pem(std::string_view pem);

}  // namespace mcpgate::crypto
