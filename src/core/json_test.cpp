#include "core/json.hpp"

#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

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

// Not JSON: each is refused by parse_json, and by scan_object as a member's value.
constexpr const char* kInvalidDocuments[] = {"",
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
                                             "'a'",
                                             "\"\xff\"",
                                             "\"\xc0\xaf\"",
                                             "\"\xed\xa0\x80\"",
                                             "\"\xc3\""};

TEST(Json, RejectsInvalidDocuments) {
  for (const char* bad : kInvalidDocuments) EXPECT_FALSE(parse_json(bad).ok()) << bad;
}

TEST(Json, RejectsInvalidUtf8) {
  for (const char* bad : {"\"\xff\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"", "\"\xc3\"", "\"\x80\""}) {
    EXPECT_FALSE(parse_json(bad).ok()) << bad;
  }
  EXPECT_TRUE(parse_json("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"").ok());
}

using Members = std::vector<std::pair<std::string, std::string>>;

// scan_object's members (name, value text), or nullopt when it refuses the text.
std::optional<Members> scanned(std::string_view text, const JsonLimits& limits = {}) {
  Members out;
  if (!scan_object(text, limits, [&out](std::string_view name, std::string_view value) {
        out.emplace_back(std::string(name), std::string(value));
      }))
    return std::nullopt;
  return out;
}

TEST(Json, ScanObjectGivesEachMemberAsWritten) {
  const auto m = scanned(R"( { "a" : [1, {"x": "y"}] ,"b\u0063":"\"q\"", "d":-1.5e2,"e":{}} )");
  ASSERT_TRUE(m);
  const Members want{
      {"a", R"([1, {"x": "y"}])"}, {"bc", R"("\"q\"")"}, {"d", "-1.5e2"}, {"e", "{}"}};
  EXPECT_EQ(*m, want);
  EXPECT_EQ(scanned("{}")->size(), 0u);
  std::string error;
  EXPECT_FALSE(scan_object(
      "[1]", {}, [](auto, auto) {}, &error));
  EXPECT_NE(error.find("expected an object"), std::string::npos);
  EXPECT_FALSE(scanned("\"a\""));
  EXPECT_FALSE(scanned("{} x"));
  EXPECT_FALSE(scanned(R"({"a":1} {"b":2})"));
}

TEST(Json, JsonStringReadsOneStringLiteral) {
  EXPECT_EQ(json_string(R"("tools/call")"), "tools/call");
  EXPECT_EQ(json_string(R"("tools\/c\u0061ll")"), "tools/call");
  EXPECT_EQ(json_string(R"("")"), "");
  EXPECT_EQ(json_string("\"\xc3\xa9\""), "\xc3\xa9");
  for (const char* bad : {"", "\"", "x", "1", "null", R"("a"b")", R"("a" )", R"("a\")", "\"\xff\"",
                          "\"a\x01\"", R"("\ud800")", R"(["a"])"}) {
    EXPECT_FALSE(json_string(bad)) << bad;
  }
}

TEST(Json, ScanObjectComparesNamesAtItsOwnLevelOnly) {
  EXPECT_FALSE(scanned(R"({"a":1,"a":2})"));
  EXPECT_FALSE(scanned(R"({"method":1,"m\u0065thod":2})"));  // the same name once unescaped
  // Below the top level names are checked as text, not compared.
  EXPECT_TRUE(scanned(R"({"a":{"b":1,"b":2}})"));
  EXPECT_FALSE(scanned(R"({"a":{"b\x":1}})"));
  // Past the first few names too: the 40th repeating the 7th, among 1,000 members.
  std::string many = "{";
  for (int i = 0; i < 1000; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":" + "0";
  EXPECT_EQ(scanned(many + "}")->size(), 1000u);
  std::string repeated = "{";
  for (int i = 0; i < 40; ++i) repeated += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  EXPECT_FALSE(scanned(repeated + ",\"k7\":1}"));
}

TEST(Json, ScanObjectKeepsParseJsonLimits) {
  for (const std::string bad : kInvalidDocuments) {
    if (bad.empty()) continue;  // "[]" is whole
    const std::string wrapped = R"({"k":[)" + bad + "]}";
    EXPECT_FALSE(scanned(wrapped)) << wrapped;
  }
  JsonLimits limits;
  limits.max_depth = 4;
  EXPECT_TRUE(scanned(R"({"a":[[[1]]]})", limits));  // depth 4, the object counting as 1
  EXPECT_FALSE(scanned(R"({"a":[[[[1]]]]})", limits));
  EXPECT_FALSE(parse_json(R"({"a":[[[[1]]]]})", limits));
  limits.max_bytes = 8;
  EXPECT_FALSE(scanned(R"({"a":123})", limits));
}

// Mutations of a few documents, read both ways: scan_object takes a text exactly when
// parse_json (duplicates allowed) takes it as an object with no name twice at its top level,
// and gives the same members.
TEST(Json, ScanObjectAgreesWithParseJsonOnMutatedDocuments) {
  const std::vector<std::string> seeds = {
      R"({"jsonrpc":"2.0","id":7,"method":"tools\/call","params":{"name":"ec\u0068o","arguments":{"t":[1,-2.5e3,true,null,"\ud83d\ude00"]}}})",
      R"({"a":{"b":{"c":[[],{}]}},"d":"x\"y\\z","e":0.5,"f":false})",
      "{\"k\":\"\xc3\xa9\xe2\x82\xac\",\"n\":-0,\"m\":1E+2}",
  };
  const std::string alphabet = "{}[]\":,\\u0123456789abcdefeEtrnl+-. \t\n\x01\x80\xc3\xff";
  std::mt19937 rng(20261128);
  JsonLimits lenient;
  lenient.reject_duplicate_keys = false;
  lenient.max_depth = 8;
  JsonLimits limits = lenient;
  limits.reject_duplicate_keys = true;
  int accepted = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string text = seeds[rng() % seeds.size()];
    for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0 && !text.empty(); --edits) {
      const std::size_t at = rng() % text.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        case 2:
          text.erase(at, 1 + rng() % 3);
          break;
        default: {
          const std::size_t from = rng() % text.size();
          text.insert(at, text.substr(from, 1 + rng() % 12));
        }
      }
    }
    const auto dom = parse_json(text, lenient);
    bool expect = dom && dom->is_object();
    Members want;
    if (expect) {
      for (const auto& [name, value] : dom->as_object()) {
        for (const auto& [seen, unused] : want) expect = expect && seen != name;
        want.emplace_back(name, value.dump());
      }
    }
    const auto got = scanned(text, limits);
    ASSERT_EQ(got.has_value(), expect) << text;
    if (!got) continue;
    ++accepted;
    ASSERT_EQ(got->size(), want.size()) << text;
    for (std::size_t m = 0; m < want.size(); ++m) {
      EXPECT_EQ((*got)[m].first, want[m].first) << text;
      const auto value = parse_json((*got)[m].second, lenient);
      ASSERT_TRUE(value) << text;
      EXPECT_EQ(value->dump(), want[m].second) << text;
      const auto string = json_string((*got)[m].second);
      EXPECT_EQ(string.has_value(), value->is_string()) << text;
      if (string && value->is_string()) {
        EXPECT_EQ(*string, value->as_string()) << text;
      }
    }
  }
  EXPECT_GT(accepted, 1000);  // the mutations leave enough documents whole to compare
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
