#include "core/json.hpp"

#include <cmath>
#include <string>

#include <gtest/gtest.h>

namespace mcpgate::core {
namespace {

TEST(Json, ParsesEveryType) {
  auto r = parse_json(R"( {"a":1,"b":[true,false,null],"c":"x\u00e9\ud83d\ude00","d":-1.5e2} )");
  ASSERT_TRUE(r.ok()) << r.error();
  const Json& v = *r;
  EXPECT_EQ(v.find("a")->as_number().value, 1);
  EXPECT_EQ(v.find("b")->as_array().size(), 3u);
  EXPECT_EQ(*v.find_string("c"), "x\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.find("d")->as_number().value, -150);
  EXPECT_EQ(v.find("d")->as_number().text, "-1.5e2");
  EXPECT_EQ(v.find("missing"), nullptr);
}

TEST(Json, KeepsMemberOrderWhenWritten) {
  auto r = parse_json(R"({"typ":"JWT","nonce":"a\/b","alg":"RS256","n":1.50})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->dump(), R"({"typ":"JWT","nonce":"a/b","alg":"RS256","n":1.50})");
}

TEST(Json, RejectsDuplicateMemberNames) {
  auto r = parse_json(R"({"exp":1,"exp":2})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("duplicate member name \"exp\""), std::string::npos);
  // Also in large objects (sorted path) and nested objects.
  std::string big = "{";
  for (int i = 0; i < 40; ++i) big += "\"k" + std::to_string(i) + "\":0,";
  big += "\"k7\":1}";
  EXPECT_FALSE(parse_json(big).ok());
  EXPECT_FALSE(parse_json(R"({"a":{"x":1,"x":1}})").ok());
  JsonLimits lax;
  lax.reject_duplicate_keys = false;
  EXPECT_TRUE(parse_json(R"({"exp":1,"exp":2})", lax).ok());
}

TEST(Json, EnforcesDepthAndSize) {
  std::string deep(40, '[');
  deep += std::string(40, ']');
  auto r = parse_json(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("nesting"), std::string::npos);
  JsonLimits small;
  small.max_bytes = 10;
  EXPECT_FALSE(parse_json(R"({"a":"0123456789"})", small).ok());
  std::string ok_depth(32, '[');
  ok_depth += std::string(32, ']');
  EXPECT_TRUE(parse_json(ok_depth).ok());
}

TEST(Json, RejectsInvalidDocuments) {
  for (const char* bad : {"",
                          "{",
                          "{\"a\"}",
                          "{\"a\":}",
                          "[1,]",
                          "{\"a\":1,}",
                          "01",
                          "1.",
                          "-",
                          "1e",
                          "+1",
                          "tru",
                          "nul",
                          "\"abc",
                          "\"\\x\"",
                          "\"\\u12\"",
                          "\"\\ud800\"",
                          "\"\\udc00\"",
                          "\"\\ud800\\u0041\"",
                          "{} x",
                          "[1] [2]",
                          "\"a\x01\"",
                          "NaN",
                          "Infinity",
                          "'a'"}) {
    EXPECT_FALSE(parse_json(bad).ok()) << bad;
  }
}

TEST(Json, RejectsInvalidUtf8) {
  for (const char* bad : {"\"\xff\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"", "\"\xc3\"", "\"\x80\""}) {
    EXPECT_FALSE(parse_json(bad).ok()) << bad;
  }
  EXPECT_TRUE(parse_json("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"").ok());
}

TEST(Json, HugeNumbersBecomeInfinityNotUndefinedBehaviour) {
  auto r = parse_json("[1e400,-1e400,1e-400]");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::isinf(r->as_array()[0].as_number().value));
  EXPECT_TRUE(std::isinf(r->as_array()[1].as_number().value));
  EXPECT_EQ(r->as_array()[2].as_number().value, 0);
}

TEST(Json, EscapesLikeJsonStringify) {
  std::string out;
  append_json_string(out, std::string("a\"b\\c\n\x01/\xc3\xa9", 10));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\"");
  EXPECT_EQ(Json::number(1700000000).dump(), "1700000000");
}

}  // namespace
}  // namespace mcpgate::core
