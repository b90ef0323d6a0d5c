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

TEST(Cache, RemembersAPassUnderFixedRequirementsAndKeysOnly) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  Requirements base;
  base.audiences = {"a"};
  const FixedRequirements req(base);
  const std::string t =
      testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100,"nbf":1799999900,"aud":"a"})");
  const VerifiedTokenCache::Memo memo{req.identity(), keys.identity()};
  bool remembered = true;
  EXPECT_EQ(cache.find(t, memo, remembered), nullptr);
  EXPECT_FALSE(remembered);
  auto first = validate_cached(t, keys, req, kNow, cache);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->expires, 1800000100);
  EXPECT_EQ((*first)->not_before, 1799999900);
  // Inserted with the memo: the next hit needs only its lifetime.
  ASSERT_NE(cache.find(t, memo, remembered), nullptr);
  EXPECT_TRUE(remembered);
  auto again = validate_cached(t, keys, req, kNow, cache);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->get(), again->get());
  // The lifetime is still checked, on both edges, with the refusal the whole path gives.
  auto late = validate_cached(t, keys, req, 1800000100, cache);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().reason, Reason::kTokenExpired);
  EXPECT_NE(late.error().message.find("expired"), std::string::npos);
  auto early = validate_cached(t, keys, req, 1799999899, cache);
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().message.find("not valid before"), std::string::npos);
  EXPECT_TRUE(validate_cached(t, keys, req, 1799999900, cache).ok());
  EXPECT_TRUE(validate_cached(t, keys, req, 1800000099.5, cache).ok());

  // Other requirements, even a copy of these: a new identity, so the claims are checked again.
  Requirements other_base = base;
  other_base.audiences = {"b"};
  const FixedRequirements other(other_base);
  EXPECT_NE(other.identity(), req.identity());
  auto refused = validate_cached(t, keys, other, kNow, cache);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, Reason::kTokenAudienceNotAllowed);
  const FixedRequirements copy = req;
  EXPECT_NE(copy.identity(), req.identity());
  EXPECT_FALSE(cache.find(t, {copy.identity(), keys.identity()}, remembered) && remembered);
  EXPECT_TRUE(validate_cached(t, keys, copy, kNow, cache).ok());  // and now it is remembered
  ASSERT_NE(cache.find(t, {copy.identity(), keys.identity()}, remembered), nullptr);
  EXPECT_TRUE(remembered);
  // One memo per token: the copy's pass replaced the first one's, which is checked in full again.
  ASSERT_NE(cache.find(t, memo, remembered), nullptr);
  EXPECT_FALSE(remembered);

  // Keys that changed (a key added) or were rotated away are other keys.
  KeySet grown = keys;
  EXPECT_NE(grown.identity(), keys.identity());
  const std::uint64_t before = grown.identity();
  grown.add(testing::jwk(testing::rsa_b(), "rsa-b2"));
  EXPECT_NE(grown.identity(), before);
  KeySet rotated;
  rotated.add(testing::jwk(testing::rsa_b(), "rsa-b"));
  // Each side of a move is another key set too (what was moved from is empty now).
  KeySet moved_from = keys;
  const std::uint64_t was = moved_from.identity();
  KeySet moved_to = std::move(moved_from);
  EXPECT_NE(moved_from.identity(), was);  // NOLINT(bugprone-use-after-move): the point
  EXPECT_NE(moved_to.identity(), was);
  ASSERT_TRUE(validate_cached(t, keys, req, kNow, cache).ok());
  auto gone = validate_cached(t, rotated, req, kNow, cache);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().reason, Reason::kTokenSignatureKeyNotFound);

  // A memo is kept only on the entry it was found on: a stale object changes nothing.
  VerifiedToken stranger;
  cache.remember(t, &stranger, {other.identity(), keys.identity()});
  ASSERT_NE(cache.find(t, {other.identity(), keys.identity()}, remembered), nullptr);
  EXPECT_FALSE(remembered);
}

TEST(Cache, ARememberedPassKeepsTheClockSkewAndAbsentTimes) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  Requirements skewed;
  skewed.clock_skew_seconds = 60;
  const FixedRequirements req(skewed);
  const std::string t =
      testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100,"nbf":1800000050})");
  ASSERT_TRUE(validate_cached(t, keys, req, kNow, cache).ok());  // nbf - 60 <= now
  bool remembered = false;
  ASSERT_NE(cache.find(t, {req.identity(), keys.identity()}, remembered), nullptr);
  ASSERT_TRUE(remembered);
  EXPECT_TRUE(validate_cached(t, keys, req, 1800000159, cache).ok());  // exp + 60 > now
  EXPECT_EQ(validate_cached(t, keys, req, 1800000160, cache).error().reason, Reason::kTokenExpired);
  EXPECT_TRUE(validate_cached(t, keys, req, 1799999990, cache).ok());
  EXPECT_EQ(validate_cached(t, keys, req, 1799999989, cache).error().reason, Reason::kJwtInvalid);
  // Neither exp nor nbf, where the policy does not require exp: any time passes, remembered.
  Requirements lax;
  lax.require_expiration = false;
  const FixedRequirements lax_req(lax);
  const std::string timeless = testing::token(R"({"kid":"rsa-a"})", R"({"sub":"x"})");
  ASSERT_TRUE(validate_cached(timeless, keys, lax_req, kNow, cache).ok());
  ASSERT_NE(cache.find(timeless, {lax_req.identity(), keys.identity()}, remembered), nullptr);
  ASSERT_TRUE(remembered);
  EXPECT_TRUE(validate_cached(timeless, keys, lax_req, 253402300799.0, cache).ok());
  EXPECT_TRUE(validate_cached(timeless, keys, lax_req, 0, cache).ok());
  // The same token where exp is required: refused, not remembered into a pass.
  EXPECT_EQ(validate_cached(timeless, keys, req, kNow, cache).error().reason, Reason::kJwtInvalid);
}

TEST(Cache, AMemoNeverOutlivesItsEntry) {
  KeySet keys = testing::standard_keys();
  VerifiedTokenCache cache(64);
  const FixedRequirements req{Requirements{}};
  const std::string t = testing::token(R"({"kid":"rsa-a"})", R"({"exp":1800000100})");
  ASSERT_TRUE(validate_cached(t, keys, req, kNow, cache).ok());
  bool remembered = false;
  ASSERT_NE(cache.find(t, {req.identity(), keys.identity()}, remembered), nullptr);
  EXPECT_TRUE(remembered);
  // The same token inserted again (another validation without a memo) starts without one.
  auto plain = validate(t, keys, req.get(), kNow);
  ASSERT_TRUE(plain.ok());
  cache.insert(t, *plain, 1800000100);
  ASSERT_NE(cache.find(t, {req.identity(), keys.identity()}, remembered), nullptr);
  EXPECT_FALSE(remembered);
  // A memo of zeros is none.
  ASSERT_NE(cache.find(t, {0, 0}, remembered), nullptr);
  EXPECT_FALSE(remembered);
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
