#include "jwt/issuer_requirements.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace mcpgate::jwt {
namespace {

// Requirements allowing `issuer`, counting how often they were made.
auto maker(const std::string& issuer, int& made) {
  return [&issuer, &made]() -> core::Result<Requirements, std::string> {
    ++made;
    Requirements r;
    r.issuers = {issuer};
    return r;
  };
}

TEST(IssuerRequirements, KeptPerIssuerAndFoundAgain) {
  IssuerRequirements kept;
  std::optional<FixedRequirements> spare;
  int made = 0;
  const std::string a = "https://login.test/a/v2.0", b = "https://login.test/b/v2.0";
  const auto* first = kept.get(a, maker(a, made), spare).value();
  EXPECT_EQ(kept.get(a, maker(a, made), spare).value(), first);  // the same object, not remade
  EXPECT_EQ(made, 1);
  const auto* other = kept.get(b, maker(b, made), spare).value();
  EXPECT_NE(other, first);
  EXPECT_NE(other->identity(), first->identity());
  EXPECT_EQ(other->get().issuers, std::vector<std::string>{b});
  EXPECT_EQ(kept.get(a, maker(a, made), spare).value(), first);  // back to the first issuer
  EXPECT_EQ(made, 2);
  EXPECT_FALSE(spare);
}

TEST(IssuerRequirements, AFailureKeepsNothing) {
  IssuerRequirements kept;
  std::optional<FixedRequirements> spare;
  const auto r = kept.get(
      "x",
      []() -> core::Result<Requirements, std::string> { return core::fail(std::string("no")); },
      spare);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "no");
  EXPECT_EQ(kept.kept(), 0u);
}

TEST(IssuerRequirements, PastTheKeptIssuersEachCallMakesItsOwn) {
  IssuerRequirements kept;
  std::optional<FixedRequirements> spare;
  int made = 0;
  std::vector<std::string> issuers;
  for (std::size_t i = 0; i <= IssuerRequirements::kKept; ++i)
    issuers.push_back("https://login.test/" + std::to_string(i));
  std::vector<const FixedRequirements*> first;
  for (std::size_t i = 0; i < IssuerRequirements::kKept; ++i)
    first.push_back(kept.get(issuers[i], maker(issuers[i], made), spare).value());
  const auto& extra = issuers.back();
  const auto* once = kept.get(extra, maker(extra, made), spare).value();
  ASSERT_TRUE(spare);
  EXPECT_EQ(once, &*spare);
  const auto identity = once->identity();
  const auto* twice = kept.get(extra, maker(extra, made), spare).value();
  EXPECT_NE(twice->identity(), identity);  // made again: nothing remembered carries over
  EXPECT_EQ(twice->get().issuers, std::vector<std::string>{extra});
  EXPECT_EQ(kept.kept(), IssuerRequirements::kKept);
  for (std::size_t i = 0; i < IssuerRequirements::kKept; ++i) {
    std::optional<FixedRequirements> unused;
    EXPECT_EQ(kept.get(issuers[i], maker(issuers[i], made), unused).value(), first[i]);
    EXPECT_FALSE(unused);
  }
}

TEST(IssuerRequirements, ThreadsAgreeOnWhatIsKept) {
  IssuerRequirements kept;
  const std::vector<std::string> issuers = {"https://login.test/a", "https://login.test/b"};
  std::vector<std::vector<std::uint64_t>> seen(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&, t] {
      int made = 0;
      for (int i = 0; i < 2000; ++i) {
        std::optional<FixedRequirements> spare;
        const auto& issuer = issuers[(i + t) % issuers.size()];
        const auto* r = kept.get(issuer, maker(issuer, made), spare).value();
        EXPECT_EQ(r->get().issuers, std::vector<std::string>{issuer});
        seen[t].push_back(r->identity());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> identities;
  for (const auto& s : seen) identities.insert(s.begin(), s.end());
  EXPECT_EQ(identities.size(), issuers.size());  // one set of requirements per issuer, for all
  EXPECT_EQ(kept.kept(), issuers.size());
}

}  // namespace
}  // namespace mcpgate::jwt
