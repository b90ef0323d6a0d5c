#include "jwt/entra.hpp"

#include <gtest/gtest.h>

#include "crypto/base64.hpp"
#include "crypto/digest.hpp"
#include "jwt/test_keys.hpp"
#include "jwt/validate.hpp"

namespace mcpgate::jwt {
namespace {

using testing::obj;

constexpr double kNow = 1'800'000'000;
const std::string kTid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const std::string kOther = "aaaaaaaa-86f1-41af-91ab-2d7cd011db47";

std::string claims_json(const std::string& iss, const std::string& tid, const std::string& ver,
                        const std::string& extra = "") {
  return R"({"exp":1800000100,"iss":")" + iss + R"(","tid":")" + tid + R"(","ver":")" + ver + "\"" +
         extra + "}";
}

core::Result<int, ValidationError> check(const EntraRule& rule, const std::string& claims) {
  return rule.check(obj(claims));
}

TEST(EntraRule, ParsesApimTenantForms) {
  EXPECT_EQ(EntraRule::tenant_name("https://contoso.onmicrosoft.com"), "contoso.onmicrosoft.com");
  EXPECT_EQ(EntraRule::tenant_name("https://login.microsoftonline.com/organizations/"),
            "organizations");
  EXPECT_EQ(EntraRule::tenant_name(kTid), kTid);
  EXPECT_EQ(EntraRule::make("organizations")->kind(), EntraRule::Kind::kOrganizations);
  EXPECT_EQ(EntraRule::make("https://login.microsoftonline.com/common")->kind(),
            EntraRule::Kind::kCommon);
  EXPECT_EQ(EntraRule::make("72F988BF-86F1-41AF-91AB-2D7CD011DB47")->tenant_id(), kTid);
  auto domain = EntraRule::make("contoso.onmicrosoft.com");
  ASSERT_FALSE(domain.ok());
  EXPECT_NE(domain.error().find("resolved"), std::string::npos);
  EXPECT_EQ(EntraRule::make("contoso.onmicrosoft.com", kPublicCloudAuthority, kTid)->tenant_id(),
            kTid);
  EXPECT_FALSE(EntraRule::make("consumers").ok());
}

TEST(EntraRule, IssuersPerCloud) {
  auto pub = EntraRule::make(kTid).value();
  EXPECT_EQ(pub.v1_issuer(kTid), "https://sts.windows.net/" + kTid + "/");
  EXPECT_EQ(pub.v2_issuer(kTid), "https://login.microsoftonline.com/" + kTid + "/v2.0");
  EXPECT_EQ(pub.openid_configuration_url(),
            "https://login.microsoftonline.com/" + kTid + "/v2.0/.well-known/openid-configuration");
  auto gov = EntraRule::make(kTid, "login.microsoftonline.us/").value();
  EXPECT_EQ(gov.v2_issuer(kTid), "https://login.microsoftonline.us/" + kTid + "/v2.0");
  EXPECT_EQ(gov.v1_issuer(kTid), "https://sts.windows.net/" + kTid + "/");
  auto china = EntraRule::make(kTid, "https://login.partner.microsoftonline.cn").value();
  EXPECT_EQ(china.v1_issuer(kTid), "https://sts.chinacloudapi.cn/" + kTid + "/");
  auto local = EntraRule::make(kTid, "https://localhost:8443").value();
  EXPECT_EQ(local.v2_issuer(kTid), "https://localhost:8443/" + kTid + "/v2.0");
}

TEST(EntraRule, SingleTenant) {
  auto rule = EntraRule::make(kTid).value();
  EXPECT_EQ(*check(rule, claims_json("https://sts.windows.net/" + kTid + "/", kTid, "1.0")), 1);
  EXPECT_EQ(
      *check(rule, claims_json("https://login.microsoftonline.com/" + kTid + "/v2.0", kTid, "2.0")),
      2);
  // Wrong tenant, even with a matching issuer for it.
  auto wrong = check(rule, claims_json("https://sts.windows.net/" + kOther + "/", kOther, "1.0"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().reason, Reason::kTokenIssuerNotAllowed);
  EXPECT_NE(wrong.error().message.find("tenant " + kOther), std::string::npos);
  // iss of another tenant with our tid.
  EXPECT_FALSE(
      check(rule, claims_json("https://sts.windows.net/" + kOther + "/", kTid, "1.0")).ok());
  // v1/v2 swap: issuer shape and ver disagree.
  EXPECT_FALSE(check(rule, claims_json("https://sts.windows.net/" + kTid + "/", kTid, "2.0")).ok());
  EXPECT_FALSE(
      check(rule, claims_json("https://login.microsoftonline.com/" + kTid + "/v2.0", kTid, "1.0"))
          .ok());
  // Another cloud's v2 issuer.
  EXPECT_FALSE(
      check(rule, claims_json("https://login.microsoftonline.us/" + kTid + "/v2.0", kTid, "2.0"))
          .ok());
  // Not Entra at all.
  EXPECT_FALSE(rule.check(obj(R"({"iss":"https://sts.windows.net/x/"})")).ok());
  // Trailing slash differences are not forgiven.
  EXPECT_FALSE(check(rule, claims_json("https://sts.windows.net/" + kTid, kTid, "1.0")).ok());
}

TEST(EntraRule, OrganizationsAndCommon) {
  auto orgs = EntraRule::make("organizations").value();
  EXPECT_TRUE(check(orgs, claims_json("https://login.microsoftonline.com/" + kOther + "/v2.0",
                                      kOther, "2.0"))
                  .ok());
  const std::string msa(kMsaTenantId);
  auto personal =
      check(orgs, claims_json("https://login.microsoftonline.com/" + msa + "/v2.0", msa, "2.0"));
  ASSERT_FALSE(personal.ok());
  EXPECT_NE(personal.error().message.find("personal"), std::string::npos);
  auto common = EntraRule::make("common").value();
  EXPECT_TRUE(
      check(common, claims_json("https://login.microsoftonline.com/" + msa + "/v2.0", msa, "2.0"))
          .ok());
  // The {tenantid} template must be filled with the token's own tid.
  EXPECT_FALSE(check(common, claims_json("https://login.microsoftonline.com/" + kTid + "/v2.0",
                                         kOther, "2.0"))
                   .ok());
  EXPECT_FALSE(check(common, claims_json("https://login.microsoftonline.com/{tenantid}/v2.0",
                                         "{tenantid}", "2.0"))
                   .ok());
}

TEST(EntraRule, PerKeyIssuerForV2Tokens) {
  KeySet keys;
  auto j = testing::jwk(testing::rsa_a(), "k");
  j.issuer = "https://login.microsoftonline.com/{tenantid}/v2.0";
  keys.add(j);
  Requirements req;
  req.entra = EntraRule::make("common").value();
  const auto good =
      claims_json("https://login.microsoftonline.com/" + kOther + "/v2.0", kOther, "2.0");
  EXPECT_TRUE(validate(testing::token(R"({"kid":"k"})", good), keys, req, kNow).ok());
  KeySet pinned;
  j.issuer = "https://login.microsoftonline.com/" + kTid + "/v2.0";
  pinned.add(j);
  auto r = validate(testing::token(R"({"kid":"k"})", good), pinned, req, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, Reason::kTokenIssuerNotAllowed);
}

// A Graph-shaped token built by hand from the public description, independent of sign_graph_style:
// the signature covers the header with nonce := base64url(SHA-256(nonce)).
TEST(GraphNonce, VerifiesOnlyWhereAllowed) {
  const std::string nonce = "AbCdEf0123456789-nonce";
  const std::string sent_header =
      R"({"typ":"JWT","nonce":")" + nonce + R"(","alg":"RS256","kid":"g"})";
  const std::string signed_header = R"({"typ":"JWT","nonce":")" +
                                    crypto::base64url_encode(crypto::sha256(nonce)) +
                                    R"(","alg":"RS256","kid":"g"})";
  const std::string payload =
      crypto::base64url_encode(claims_json("https://sts.windows.net/" + kTid + "/", kTid, "1.0",
                                           R"(,"aud":"https://graph.microsoft.com")"));
  const std::string input = crypto::base64url_encode(signed_header) + "." + payload;
  const std::string sig =
      crypto::sign(testing::rsa_a(), crypto::Scheme::kRsaPkcs1, crypto::Hash::kSha256, input)
          .value();
  const std::string graph_token =
      crypto::base64url_encode(sent_header) + "." + payload + "." + crypto::base64url_encode(sig);

  KeySet keys;
  keys.add(testing::jwk(testing::rsa_a(), "g"));
  Requirements req;
  req.entra = EntraRule::make(kTid).value();
  auto plain = validate(graph_token, keys, req, kNow);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.error().reason, Reason::kTokenSignatureInvalid);
  EXPECT_NE(plain.error().message.find("Microsoft Graph"), std::string::npos);
  req.allow_graph_nonce = true;
  auto graph = validate(graph_token, keys, req, kNow);
  ASSERT_TRUE(graph.ok()) << graph.error().message;
  EXPECT_TRUE((*graph)->graph_nonce);

  // Our signer produces the same construction.
  auto ours = sign_graph_style(obj(sent_header), obj(crypto::base64url_decode(payload).value()),
                               testing::rsa_a())
                  .value();
  EXPECT_TRUE(validate(ours, keys, req, kNow).ok());
  // A changed nonce breaks it.
  const std::string tampered_header = R"({"typ":"JWT","nonce":"other","alg":"RS256","kid":"g"})";
  EXPECT_FALSE(validate(crypto::base64url_encode(tampered_header) + "." + payload + "." +
                            crypto::base64url_encode(sig),
                        keys, req, kNow)
                   .ok());
}

}  // namespace
}  // namespace mcpgate::jwt
