#include "jwt/token.hpp"

#include <gtest/gtest.h>

#include "crypto/base64.hpp"
#include "jwt/test_keys.hpp"

namespace mcpgate::jwt {
namespace {

using crypto::base64url_encode;

std::string raw(std::string_view header, std::string_view claims, std::string_view sig = "c2ln") {
  return base64url_encode(header) + "." + base64url_encode(claims) + "." + std::string(sig);
}

TEST(Parse, SplitsAndDecodes) {
  const std::string t = testing::token(R"({"typ":"JWT","kid":"rsa-a"})", R"({"sub":"x","exp":1})");
  auto r = parse(t);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->alg, Algorithm::kRS256);
  EXPECT_EQ(r->kid(), "rsa-a");
  EXPECT_EQ(*r->claims.find_string("sub"), "x");
  EXPECT_EQ(r->signing_input, t.substr(0, t.rfind('.')));
  EXPECT_EQ(r->signature.size(), 256u);
}

void expect_invalid(const std::string& t, std::string_view fragment) {
  auto r = parse(t);
  ASSERT_FALSE(r.ok()) << t;
  EXPECT_EQ(r.error().reason, Reason::kJwtInvalid);
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
}

TEST(Parse, RejectsMalformedStructure) {
  expect_invalid("", "empty");
  expect_invalid("abc", "three");
  expect_invalid("a.b", "three");
  expect_invalid("a.b.c.d", "three");
  expect_invalid("a.b.c.d.e", "encrypted tokens (JWE, five parts) are not supported yet");
  expect_invalid("a.b.c.d.e.f", "more than five");
  expect_invalid(raw(R"({"alg":"RS256"})", "{}") + " ", "canonical base64url");
  expect_invalid(" " + raw(R"({"alg":"RS256"})", "{}"), "canonical base64url");
  expect_invalid(raw(R"({"alg":"RS256"})", "{}") + "=", "canonical base64url");
  expect_invalid(std::string(40000, 'a'), "limit");
}

TEST(Parse, RejectsBadHeaders) {
  expect_invalid(raw("[]", "{}"), "not a JSON object");
  expect_invalid(raw("{}", "{}"), "no \"alg\"");
  expect_invalid(raw(R"({"alg":1})", "{}"), "not a string");
  expect_invalid(raw(R"({"alg":"None"})", "{}"), "unsupported algorithm");
  expect_invalid(raw(R"({"alg":"NONE"})", "{}"), "unsupported algorithm");
  expect_invalid(raw(R"({"alg":"RSA-OAEP"})", "{}"), "unsupported algorithm");
  expect_invalid(raw(R"({"alg":"RS256","alg":"HS256"})", "{}"), "duplicate");
  expect_invalid(raw(R"({"alg":"RS256","crit":["exp"],"exp":1})", "{}"), "critical");
  expect_invalid(raw(R"({"alg":"RS256","kid":7})", "{}"), "\"kid\" is not a string");
  expect_invalid(raw("{\"alg\":\"RS256\",\"kid\":\"\xff\"}", "{}"), "UTF-8");
}

TEST(Parse, RejectsBadClaimsAndSignatures) {
  expect_invalid(raw(R"({"alg":"RS256"})", "[1]"), "not a JSON object");
  expect_invalid(raw(R"({"alg":"RS256"})", R"({"sub":"a","sub":"b"})"), "duplicate");
  expect_invalid(raw(R"({"alg":"RS256"})", "{}", ""), "signature is empty");
  expect_invalid(raw(R"({"alg":"none"})", "{}", "c2ln"), "empty signature");
  expect_invalid(raw(R"({"alg":"RS256"})", "{}", "QR"), "signature is not canonical");
  std::string deep = "{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}";
  expect_invalid(raw(R"({"alg":"RS256"})", deep), "nesting");
  EXPECT_TRUE(parse(raw(R"({"alg":"none"})", "{}", "")).ok());
}

}  // namespace
}  // namespace mcpgate::jwt
