#include "jwt/validate.hpp"

#include <gtest/gtest.h>

#include "crypto/base64.hpp"
#include "jwt/test_keys.hpp"

namespace mcpgate::jwt {
namespace {

using testing::obj;
using testing::token;

constexpr double kNow = 1'800'000'000;

class Validate : public ::testing::Test {
 protected:
  KeySet keys_ = testing::standard_keys();
  Requirements req_;

  ValidationResult run(const std::string& t) { return validate(t, keys_, req_, kNow); }
  void expect_reason(const std::string& t, Reason reason, std::string_view fragment = {}) {
    auto r = run(t);
    ASSERT_FALSE(r.ok()) << "accepted " << t;
    EXPECT_EQ(reason_name(r.error().reason), reason_name(reason)) << r.error().message;
    if (!fragment.empty()) {
      EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
    }
  }
};

TEST_F(Validate, AcceptsEveryAlgorithmWithItsKey) {
  const std::string claims = R"({"exp":1800000100})";
  for (auto alg : {Algorithm::kRS256, Algorithm::kRS384, Algorithm::kRS512, Algorithm::kPS256,
                   Algorithm::kPS384, Algorithm::kPS512}) {
    EXPECT_TRUE(run(token(R"({"kid":"rsa-a"})", claims, testing::rsa_a(), alg)).ok())
        << algorithm_name(alg);
  }
  EXPECT_TRUE(run(token(R"({"kid":"ec-256"})", claims, testing::ec256(), Algorithm::kES256)).ok());
  for (auto alg : {Algorithm::kHS256, Algorithm::kHS384, Algorithm::kHS512}) {
    auto t = sign_hmac(obj(R"({"kid":"hs"})"), obj(claims), alg, testing::hs_secret()).value();
    EXPECT_TRUE(run(t).ok()) << algorithm_name(alg);
  }
}

TEST_F(Validate, KeySelectionByKid) {
  const std::string claims = R"({"exp":1800000100})";
  // Signed by B but naming A: only A is tried.
  expect_reason(token(R"({"kid":"rsa-a"})", claims, testing::rsa_b()),
                Reason::kTokenSignatureInvalid, "key \"rsa-a\"");
  expect_reason(token(R"({"kid":"nope"})", claims), Reason::kTokenSignatureKeyNotFound,
                "kid \"nope\"");
  // Without kid every RSA key is tried.
  EXPECT_TRUE(run(token("{}", claims, testing::rsa_b())).ok());
  // APIM issuer-signing-keys: unmatched kid falls back to every key only when asked.
  const std::string wrong_kid = token(R"({"kid":"old"})", claims, testing::rsa_b());
  expect_reason(wrong_kid, Reason::kTokenSignatureKeyNotFound);
  req_.try_all_keys_on_kid_miss = true;
  EXPECT_TRUE(run(wrong_kid).ok());
}

TEST_F(Validate, AlgorithmMustFitKeyType) {
  // HS256 with the RSA public key's bytes as the secret, naming the RSA key: the key type decides.
  const std::string pem_like = testing::rsa_a().public_key().rsa_n();
  auto forged = sign_hmac(obj(R"({"kid":"rsa-a"})"), obj(R"({"exp":1800000100})"),
                          Algorithm::kHS256, pem_like)
                    .value();
  expect_reason(forged, Reason::kTokenSignatureInvalid, "cannot verify HS256");
  // An ES256 key named with an RS256 token.
  expect_reason(token(R"({"kid":"ec-256"})", R"({"exp":1800000100})"),
                Reason::kTokenSignatureInvalid);
  // A JWK's alg pins it.
  KeySet pinned;
  auto j = testing::jwk(testing::rsa_a(), "rsa-a");
  j.alg = "PS256";
  pinned.add(j);
  EXPECT_FALSE(
      validate(token(R"({"kid":"rsa-a"})", R"({"exp":1800000100})"), pinned, req_, kNow).ok());
}

TEST_F(Validate, AllowListAndUnsignedTokens) {
  req_.algorithms = AlgorithmSet::entra();
  expect_reason(
      token(R"({"kid":"rsa-a"})", R"({"exp":1800000100})", testing::rsa_a(), Algorithm::kPS256),
      Reason::kTokenSignatureInvalid, "not allowed");
  const std::string unsigned_token = crypto::base64url_encode(R"({"alg":"none"})") + "." +
                                     crypto::base64url_encode(R"({"exp":1800000100})") + ".";
  expect_reason(unsigned_token, Reason::kTokenSignatureInvalid, "not signed");
  req_.require_signed = false;
  EXPECT_TRUE(run(unsigned_token).ok());
}

TEST_F(Validate, Lifetime) {
  expect_reason(token("{}", R"({"exp":1799999999})"), Reason::kTokenExpired,
                "expired at 2027-01-15T07:59:59Z");
  expect_reason(token("{}", R"({"exp":1800000000})"), Reason::kTokenExpired);  // exp is exclusive
  req_.clock_skew_seconds = 60;
  EXPECT_TRUE(run(token("{}", R"({"exp":1799999999})")).ok());
  req_.clock_skew_seconds = 0;
  expect_reason(token("{}", R"({"exp":1800000100,"nbf":1800000001})"), Reason::kJwtInvalid,
                "not valid before");
  EXPECT_TRUE(run(token("{}", R"({"exp":1800000100,"nbf":1800000000})")).ok());
  EXPECT_TRUE(run(token("{}", R"({"exp":1800000000.5})")).ok());  // fractions allowed
  expect_reason(token("{}", R"({"sub":"x"})"), Reason::kJwtInvalid, "no expiration");
  req_.require_expiration = false;
  EXPECT_TRUE(run(token("{}", R"({"sub":"x"})")).ok());
}

TEST_F(Validate, NumericDatesAreStrict) {
  for (const char* bad : {R"({"exp":"1800000100"})", R"({"exp":-1})", R"({"exp":1e400})",
                          R"({"exp":1e300})", R"({"exp":true})", R"({"exp":null})",
                          R"({"exp":1800000100,"nbf":"0"})", R"({"exp":1800000100,"iat":[]})"}) {
    expect_reason(token("{}", bad), Reason::kJwtInvalid);
  }
}

TEST_F(Validate, IssuersAndAudiences) {
  const std::string t =
      token("{}", R"({"exp":1800000100,"iss":"https://issuer/","aud":["api://x","other"]})");
  req_.issuers = {"https://issuer"};
  expect_reason(t, Reason::kTokenIssuerNotAllowed);
  req_.issuers = {"https://a", "https://issuer/"};
  EXPECT_TRUE(run(t).ok());
  req_.audiences = {"api://y"};
  expect_reason(t, Reason::kTokenAudienceNotAllowed);
  req_.audiences = {"API://X"};
  expect_reason(t, Reason::kTokenAudienceNotAllowed);  // exact comparison
  req_.audiences = {"other"};
  EXPECT_TRUE(run(t).ok());
  expect_reason(token("{}", R"({"exp":1800000100,"iss":"https://issuer/"})"),
                Reason::kTokenAudienceNotAllowed, "no audience");
}

TEST_F(Validate, RequiredClaims) {
  const std::string t =
      token("{}", R"({"exp":1800000100,"roles":["Read","Write"],"scp":"a b c","n":5})");
  req_.claims = {{"roles", ClaimRequirement::Match::kAll, "", {"Read", "Write"}}};
  EXPECT_TRUE(run(t).ok());
  req_.claims = {{"roles", ClaimRequirement::Match::kAll, "", {"Read", "Admin"}}};
  expect_reason(t, Reason::kTokenClaimValueNotAllowed, "claim roles value of Read,Write");
  req_.claims = {{"roles", ClaimRequirement::Match::kAny, "", {"Admin", "Write"}}};
  EXPECT_TRUE(run(t).ok());
  req_.claims = {{"scp", ClaimRequirement::Match::kAll, " ", {"c", "a"}}};
  EXPECT_TRUE(run(t).ok());
  req_.claims = {{"scp", ClaimRequirement::Match::kAll, "", {"a"}}};
  expect_reason(t, Reason::kTokenClaimValueNotAllowed);
  req_.claims = {{"n", ClaimRequirement::Match::kAll, "", {"5"}}};
  EXPECT_TRUE(run(t).ok());
  req_.claims = {{"tid", ClaimRequirement::Match::kAll, "", {}},
                 {"oid", ClaimRequirement::Match::kAll, "", {}}};
  expect_reason(t, Reason::kTokenClaimNotFound, "missing the following claims: tid, oid");
}

TEST_F(Validate, ClientApplicationByVersion) {
  req_.client_app_ids = {"11111111-1111-1111-1111-111111111111"};
  EXPECT_TRUE(
      run(token("{}",
                R"({"exp":1800000100,"ver":"1.0","appid":"11111111-1111-1111-1111-111111111111"})"))
          .ok());
  EXPECT_TRUE(
      run(token("{}",
                R"({"exp":1800000100,"ver":"2.0","azp":"11111111-1111-1111-1111-111111111111"})"))
          .ok());
  // appid-vs-azp confusion: a v2 token is judged by azp alone.
  expect_reason(
      token(
          "{}",
          R"({"exp":1800000100,"ver":"2.0","appid":"11111111-1111-1111-1111-111111111111","azp":"x"})"),
      Reason::kTokenClaimValueNotAllowed);
  expect_reason(
      token("{}", R"({"exp":1800000100,"ver":"1.0","azp":"11111111-1111-1111-1111-111111111111"})"),
      Reason::kTokenClaimNotFound);
}

TEST_F(Validate, SignatureIsCheckedBeforeClaims) {
  // An expired token with a bad signature reports the signature.
  expect_reason(token(R"({"kid":"rsa-a"})", R"({"exp":1})", testing::rsa_b()),
                Reason::kTokenSignatureInvalid);
}

TEST_F(Validate, EveryFlippedSignatureBitAndTruncationFails) {
  const std::string t =
      token(R"({"kid":"ec-256"})", R"({"exp":1800000100})", testing::ec256(), Algorithm::kES256);
  ASSERT_TRUE(run(t).ok());
  auto parsed = parse(t).value();
  const std::string head = t.substr(0, t.rfind('.') + 1);
  for (std::size_t bit = 0; bit < parsed.signature.size() * 8; ++bit) {
    std::string sig = parsed.signature;
    sig[bit / 8] = static_cast<char>(sig[bit / 8] ^ (1 << (bit % 8)));
    expect_reason(head + crypto::base64url_encode(sig), Reason::kTokenSignatureInvalid);
  }
  for (std::size_t len = 0; len < t.size(); ++len) EXPECT_FALSE(run(t.substr(0, len)).ok()) << len;
}

}  // namespace
}  // namespace mcpgate::jwt
