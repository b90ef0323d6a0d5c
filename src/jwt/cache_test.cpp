#include "jwt/cache.hpp"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "jwt/test_keys.hpp"

namespace mcpgate::jwt {
namespace {

constexpr double kNow = 1'800'000'000;

TEST(Cache, HitSkipsSignatureButRechecksClaims) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  Requirements req;
  const std::string t = testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100,"aud":"a"})");
  auto first = validate_cached(t, keys, req, kNow, cache);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(cache.size(), 1u);
  auto second = validate_cached(t, keys, req, kNow, cache);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->get(), second->get());  // the same verified object: served from the cache
  // Time moves on: the hit still expires.
  auto late = validate_cached(t, keys, req, 1800000100, cache);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().reason, Reason::kTokenExpired);
  // Another policy with other requirements gets its own answer.
  Requirements strict = req;
  strict.audiences = {"b"};
  EXPECT_EQ(validate_cached(t, keys, strict, kNow, cache).error().reason,
            Reason::kTokenAudienceNotAllowed);
  Requirements es_only = req;
  es_only.algorithms = {Algorithm::kES256};
  EXPECT_FALSE(validate_cached(t, keys, es_only, kNow, cache).ok());
}

TEST(Cache, CapacityZeroKeepsNothing) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(0);
  EXPECT_EQ(cache.capacity(), 0u);
  Requirements req;
  const std::string t = testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100,"aud":"a"})");
  auto first = validate_cached(t, keys, req, kNow, cache);
  auto second = validate_cached(t, keys, req, kNow, cache);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok());
  EXPECT_NE(first->get(), second->get());  // verified twice: nothing was kept
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.find(t), nullptr);
}

TEST(Cache, HitNeedsTheVerifyingKeyStillTrusted) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  Requirements req;
  const std::string t = testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100})");
  ASSERT_TRUE(validate_cached(t, keys, req, kNow, cache).ok());
  KeySet rotated;
  rotated.add(testing::jwk(testing::rsa_b(), "rsa-b"));
  auto r = validate_cached(t, rotated, req, kNow, cache);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().reason, Reason::kTokenSignatureKeyNotFound);
}

TEST(Cache, NeverHoldsFailuresAndComparesWholeToken) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  Requirements req;
  const std::string t = testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100})");
  const std::string bad = t.substr(0, t.size() - 2) + (t[t.size() - 2] == 'A' ? "BA" : "AA");
  EXPECT_FALSE(validate_cached(bad, keys, req, kNow, cache).ok());
  EXPECT_EQ(cache.size(), 0u);
  ASSERT_TRUE(validate_cached(t, keys, req, kNow, cache).ok());
  // Same prefix and length, different signature: not a hit.
  EXPECT_FALSE(validate_cached(bad, keys, req, kNow, cache).ok());
  EXPECT_EQ(cache.find(bad), nullptr);
  // The cache hashes a token's last bytes (its signature): a forged payload under a cached
  // token's signature lands in the same set, and is still not a hit.
  const std::string other = testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000200})");
  const std::string forged = other.substr(0, other.rfind('.')) + t.substr(t.rfind('.'));
  EXPECT_EQ(cache.find(forged), nullptr);
  EXPECT_FALSE(validate_cached(forged, keys, req, kNow, cache).ok());
  EXPECT_EQ(cache.size(), 1u);
}

TEST(Cache, StaysBoundedAndThreadSafe) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  Requirements req;
  std::vector<std::string> tokens;
  for (int i = 0; i < 200; ++i) {
    tokens.push_back(sign_hmac(testing::obj(R"({"kid":"hs"})"),
                               testing::obj(R"({"exp":1800000100,"i":)" + std::to_string(i) + "}"),
                               Algorithm::kHS256, testing::hs_secret())
                         .value());
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = th; i < tokens.size(); i += 3) {
          if (!validate_cached(tokens[i], keys, req, kNow, cache).ok()) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(cache.size(), cache.capacity());
  EXPECT_EQ(cache.capacity(), 64u);
}

}  // namespace
}  // namespace mcpgate::jwt
