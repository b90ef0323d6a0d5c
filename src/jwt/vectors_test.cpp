// Vectors from scripts/make_jwt_vectors.py: tokens signed by the openssl CLI, an attack corpus,
// and for every valid vector each flipped signature bit and each truncation.
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "core/json.hpp"
#include "crypto/base64.hpp"
#include "jwt/validate.hpp"

namespace mcpgate::jwt {
namespace {

std::string read(const std::string& name) {
  std::ifstream in(std::string(MCPGATE_SOURCE_DIR) + "/testdata/jwt/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

core::Json load(const std::string& name) {
  core::JsonLimits limits;
  limits.max_bytes = 8 * 1024 * 1024;
  auto doc = core::parse_json(read(name), limits);
  EXPECT_TRUE(doc.ok()) << name << ": " << (doc.ok() ? "" : doc.error());
  return doc.ok() ? doc.value() : core::Json();
}

std::vector<std::string> strings(const core::Json* v) {
  std::vector<std::string> out;
  if (v && v->is_array()) {
    for (const auto& s : v->as_array()) out.push_back(s.as_string());
  }
  return out;
}

Requirements requirements_from(const core::Json& r) {
  Requirements req;
  req.issuers = strings(r.find("issuers"));
  req.audiences = strings(r.find("audiences"));
  req.client_app_ids = strings(r.find("client_ids"));
  if (const core::Json* e = r.find("entra")) {
    const std::string* authority = e->find_string("authority");
    req.entra =
        EntraRule::make(*e->find_string("tenant"), authority ? *authority : kPublicCloudAuthority)
            .value();
  }
  if (const core::Json* algs = r.find("algorithms")) {
    req.algorithms = {};
    for (const auto& a : strings(algs)) req.algorithms.add(*algorithm_from_name(a));
  }
  if (const core::Json* g = r.find("graph")) req.allow_graph_nonce = g->as_bool();
  if (const core::Json* claims = r.find("claims")) {
    for (const auto& c : claims->as_array()) {
      ClaimRequirement rc;
      rc.name = *c.find_string("name");
      rc.match = *c.find_string("match") == "any" ? ClaimRequirement::Match::kAny
                                                  : ClaimRequirement::Match::kAll;
      rc.values = strings(c.find("values"));
      req.claims.push_back(rc);
    }
  }
  return req;
}

struct Case {
  std::string name;
  std::string token;
  Requirements req;
  std::string expect;
  std::string message_contains;
};

std::vector<Case> cases(const core::Json& doc) {
  std::vector<Case> out;
  for (const auto& c : doc.find("cases")->as_array()) {
    Case k{*c.find_string("name"), *c.find_string("token"),
           requirements_from(*c.find("requirements")), *c.find_string("expect"), ""};
    if (const std::string* m = c.find_string("message_contains")) k.message_contains = *m;
    if (const core::Json* rep = c.find("append_repeated")) {
      for (double i = 0; i < rep->find("count")->as_number().value; ++i)
        k.token += *rep->find_string("text");
    }
    out.push_back(std::move(k));
  }
  return out;
}

class Vectors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<std::string> warnings;
    auto ks = KeySet::from_jwks(read("jwks.json"), &warnings);
    ASSERT_TRUE(ks.ok());
    keys_ = std::move(ks.value());
    ASSERT_EQ(keys_.keys().size(), 6u);
    ASSERT_EQ(warnings.size(), 1u);  // the Ed25519 key is skipped, not fatal
  }
  KeySet keys_;
};

TEST_F(Vectors, ValidTokensSignedByOpenSsl) {
  const core::Json doc = load("vectors.json");
  const double now = doc.find("now")->as_number().value;
  const auto all = cases(doc);
  ASSERT_GE(all.size(), 17u);
  for (const auto& c : all) {
    auto r = validate(c.token, keys_, c.req, now);
    EXPECT_TRUE(r.ok()) << c.name << ": " << (r.ok() ? "" : r.error().message);
  }
}

TEST_F(Vectors, EverySignatureBitFlipAndTruncationFails) {
  const core::Json doc = load("vectors.json");
  const double now = doc.find("now")->as_number().value;
  for (const auto& c : cases(doc)) {
    const auto dot = c.token.rfind('.');
    const std::string head = c.token.substr(0, dot + 1);
    const std::string sig = *crypto::base64url_decode(std::string_view(c.token).substr(dot + 1));
    for (std::size_t bit = 0; bit < sig.size() * 8; ++bit) {
      std::string flipped = sig;
      flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
      auto r = validate(head + crypto::base64url_encode(flipped), keys_, c.req, now);
      ASSERT_FALSE(r.ok()) << c.name << " bit " << bit;
      ASSERT_EQ(r.error().reason, Reason::kTokenSignatureInvalid) << c.name << " bit " << bit;
    }
    for (std::size_t len = 0; len < c.token.size(); ++len) {
      ASSERT_FALSE(validate(std::string_view(c.token).substr(0, len), keys_, c.req, now).ok())
          << c.name << " " << len;
    }
  }
}

TEST_F(Vectors, AttackCorpusIsRejectedForTheRightReason) {
  const core::Json doc = load("attacks.json");
  const double now = doc.find("now")->as_number().value;
  const auto all = cases(doc);
  ASSERT_GE(all.size(), 30u);
  for (const auto& c : all) {
    auto r = validate(c.token, keys_, c.req, now);
    ASSERT_FALSE(r.ok()) << c.name << " was accepted";
    EXPECT_EQ(reason_name(r.error().reason), c.expect) << c.name << ": " << r.error().message;
    if (!c.message_contains.empty()) {
      EXPECT_NE(r.error().message.find(c.message_contains), std::string::npos)
          << c.name << ": " << r.error().message;
    }
  }
}

}  // namespace
}  // namespace mcpgate::jwt
