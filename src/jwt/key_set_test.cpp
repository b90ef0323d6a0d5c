#include "jwt/key_set.hpp"

#include <gtest/gtest.h>

#include "crypto/base64.hpp"
#include "jwt/test_keys.hpp"

namespace mcpgate::jwt {
namespace {

using crypto::base64url_encode;

std::string rsa_jwk(const crypto::PrivateKey& k, const std::string& kid,
                    const std::string& extra = "") {
  return R"({"kty":"RSA","kid":")" + kid + R"(","n":")" + base64url_encode(k.public_key().rsa_n()) +
         R"(","e":")" + base64url_encode(k.public_key().rsa_e()) + "\"" + extra + "}";
}

TEST(KeySet, ReadsRsaEcOctAndSkipsUnknown) {
  const std::string doc =
      R"({"keys":[)" +
      rsa_jwk(testing::rsa_a(), "a", R"(,"use":"sig","issuer":"https://x/{tenantid}/v2.0")") +
      R"(,{"kty":"OKP","crv":"Ed25519","x":"abc","kid":"ed"})" + R"(,{"kty":"oct","k":")" +
      base64url_encode(std::string(32, 's')) + R"(","kid":"h"})" +
      R"(,{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"})" + "]}";
  std::vector<std::string> warnings;
  auto ks = KeySet::from_jwks(doc, &warnings);
  ASSERT_TRUE(ks.ok()) << ks.error();
  ASSERT_EQ(ks->keys().size(), 2u);
  EXPECT_EQ(ks->keys()[0].issuer, "https://x/{tenantid}/v2.0");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("unknown kty \"OKP\""), std::string::npos);
  EXPECT_NE(warnings[1].find("\"enc\""), std::string::npos);
}

TEST(KeySet, EcKeys) {
  // RFC 7517 Appendix A.1 example EC key.
  const std::string doc = R"({"keys":[{"kty":"EC","crv":"P-256",
      "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
      "use":"enc","kid":"1"},{"kty":"EC","crv":"P-256",
      "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"2"}]})";
  std::vector<std::string> warnings;
  auto ks = KeySet::from_jwks(doc, &warnings);
  ASSERT_TRUE(ks.ok());
  ASSERT_EQ(ks->keys().size(), 1u);
  EXPECT_EQ(ks->keys()[0].key.curve(), crypto::Curve::kP256);
  // Same point with one coordinate changed is off the curve.
  auto bad = KeySet::from_jwks(
      R"({"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
      "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyA"}]})",
      &warnings);
  ASSERT_TRUE(bad.ok());
  EXPECT_TRUE(bad->empty());
}

TEST(KeySet, EcCoordinatesWithoutLeadingZerosArePadded) {
  // Find a P-256 key whose x starts with a zero byte and publish x without it, as PyJWT 2.6 does.
  for (int attempt = 0; attempt < 20000; ++attempt) {
    auto key = crypto::PrivateKey::generate_ec(crypto::Curve::kP256).value();
    const std::string x = key.public_key().ec_x();
    if (x[0] != '\0') continue;
    const std::string doc = R"({"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":")" +
                            base64url_encode(x.substr(1)) + R"(","y":")" +
                            base64url_encode(key.public_key().ec_y()) + R"("}]})";
    auto r = KeySet::from_jwks(doc);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->keys().size(), 1u);
    EXPECT_EQ(r->keys()[0].key.fingerprint(), key.public_key().fingerprint());
    auto too_long = KeySet::from_jwks(R"({"keys":[{"kty":"EC","crv":"P-256","x":")" +
                                      base64url_encode("\x01" + x) + R"(","y":")" +
                                      base64url_encode(key.public_key().ec_y()) + R"("}]})");
    ASSERT_TRUE(too_long.ok());
    EXPECT_TRUE(too_long->empty());
    return;
  }
  FAIL() << "no key with a leading zero byte in 20000 attempts";
}

TEST(KeySet, RejectsDocumentsNotKeys) {
  EXPECT_FALSE(KeySet::from_jwks("not json").ok());
  EXPECT_FALSE(KeySet::from_jwks(R"({"keys":{}})").ok());
  EXPECT_FALSE(KeySet::from_jwks(R"({"kid":"x"})").ok());
  EXPECT_FALSE(KeySet::from_jwks(R"({"keys":[],"keys":[]})").ok());
  std::string many = R"({"keys":[)";
  for (int i = 0; i < 101; ++i) many += std::string(i ? "," : "") + "{}";
  EXPECT_FALSE(KeySet::from_jwks(many + "]}").ok());
  EXPECT_FALSE(KeySet::from_jwks(std::string(600 * 1024, ' ')).ok());
}

TEST(KeySet, SelectionRules) {
  KeySet ks = testing::standard_keys();
  std::vector<const Jwk*> out;
  EXPECT_EQ(ks.select(Algorithm::kRS256, "rsa-b", "", false, out), KeySet::Selection::kFound);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->kid, "rsa-b");
  EXPECT_EQ(ks.select(Algorithm::kRS256, "", "", false, out), KeySet::Selection::kFound);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(ks.select(Algorithm::kES256, "", "", false, out), KeySet::Selection::kFound);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(ks.select(Algorithm::kES384, "", "", false, out),
            KeySet::Selection::kNoKeyFitsAlgorithm);
  EXPECT_EQ(ks.select(Algorithm::kRS256, "../../etc/passwd", "", false, out),
            KeySet::Selection::kKidNotFound);
  EXPECT_EQ(ks.select(Algorithm::kRS256, "' OR 1=1 --", "", true, out), KeySet::Selection::kFound);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(ks.select(Algorithm::kHS256, "rsa-a", "", false, out), KeySet::Selection::kKidNotFound);
}

TEST(KeySet, JwksRoundTripKeepsFingerprints) {
  KeySet ks = testing::standard_keys();
  auto again = KeySet::from_jwks(ks.to_jwks());
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->keys().size(), 3u);  // secrets (oct) are never exported
  for (const auto& k : again->keys())
    EXPECT_TRUE(ks.contains_fingerprint(k.key.fingerprint())) << k.kid;
  EXPECT_FALSE(ks.contains_fingerprint("nope"));
}

}  // namespace
}  // namespace mcpgate::jwt
