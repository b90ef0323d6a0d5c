#include "crypto/x509.hpp"

#include <gtest/gtest.h>

namespace mcpgate::crypto {
namespace {

TEST(X509, CaIssuesServerCertificate) {
  auto ca_key = PrivateKey::generate_ec(Curve::kP256).value();
  auto ca =
      self_signed_certificate(ca_key, {.common_name = "test CA", .valid_days = 30, .is_ca = true});
  ASSERT_TRUE(ca.ok()) << ca.error();
  auto leaf_key = PrivateKey::generate_ec(Curve::kP256).value();
  auto leaf = issue_certificate(leaf_key,
                                {.common_name = "localhost",
                                 .dns_names = {"localhost"},
                                 .ip_addresses = {"127.0.0.1", "::1"},
                                 .valid_days = 30},
                                ca_key, *ca);
  ASSERT_TRUE(leaf.ok()) << leaf.error();
  // The public key inside is the subject's.
  auto pub = PublicKey::from_certificate_der(leaf->der);
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(pub->fingerprint(), leaf_key.public_key().fingerprint());
  auto again = certificate_from_pem(leaf->pem());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->der, leaf->der);
  EXPECT_EQ(leaf->sha1_thumbprint().size(), 20u);
  EXPECT_EQ(leaf->sha256_thumbprint().size(), 32u);
  EXPECT_FALSE(certificate_from_pem("nope").ok());
}

}  // namespace
}  // namespace mcpgate::crypto
