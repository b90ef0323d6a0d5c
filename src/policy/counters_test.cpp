#include "policy/counters.hpp"

#include <gtest/gtest.h>

namespace mcpgate::policy {
namespace {

TEST(Counters, SlidingWindowAdmitsLimitThenRetriesWhenTheOldestCallLeaves) {
  auto c = make_local_counters();
  const double t0 = 1'000'000.25;
  for (int i = 0; i < 3; ++i) {
    auto v = c->sliding("k", 3, 60, 1, true, t0 + i);
    EXPECT_TRUE(v.allowed);
    EXPECT_EQ(v.remaining, 2 - i);
  }
  auto v = c->sliding("k", 3, 60, 1, true, t0 + 10);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.remaining, 0);
  // The first call's one-second slot [1000000, 1000001) leaves the window 60 s after it began.
  EXPECT_NEAR(v.retry_after, 1'000'060.0 - (t0 + 10), 1e-6);
  EXPECT_FALSE(c->sliding("k", 3, 60, 1, true, t0 + 59.5).allowed);
  EXPECT_TRUE(c->sliding("k", 3, 60, 1, true, t0 + 60).allowed);  // the first call has left
  EXPECT_FALSE(c->sliding("k", 3, 60, 1, true, t0 + 60.5).allowed);
  EXPECT_TRUE(c->sliding("k", 3, 60, 3, true, t0 + 500).allowed);  // long idle: empty again
  // Other keys count apart; refused calls are not counted; amounts count in full.
  EXPECT_TRUE(c->sliding("other", 1, 60, 1, true, t0).allowed);
  EXPECT_FALSE(c->sliding("big", 2, 60, 3, true, t0).allowed);
  EXPECT_TRUE(c->sliding("big", 2, 60, 2, true, t0).allowed);
  EXPECT_TRUE(c->sliding("nocount", 1, 60, 1, false, t0).allowed);
  EXPECT_TRUE(c->sliding("nocount", 1, 60, 1, false, t0).allowed);
}

TEST(Counters, LongPeriodsUseSixtySlots) {
  auto c = make_local_counters();
  EXPECT_TRUE(c->sliding("k", 1, 300, 1, true, 3000.0).allowed);  // slot [3000, 3005)
  const auto v = c->sliding("k", 1, 300, 1, true, 3100.0);
  EXPECT_FALSE(v.allowed);
  EXPECT_NEAR(v.retry_after, 200.0, 1e-6);
  EXPECT_TRUE(c->sliding("k", 1, 300, 1, true, 3300.0).allowed);
}

TEST(Counters, FixedWindowsRenewAtTheirBoundary) {
  auto c = make_local_counters();
  EXPECT_TRUE(c->fixed("q", 2, 3600, 0, 1, true, 7200.0 + 10).allowed);
  EXPECT_TRUE(c->fixed("q", 2, 3600, 0, 1, true, 7200.0 + 20).allowed);
  const auto v = c->fixed("q", 2, 3600, 0, 1, true, 7200.0 + 30);
  EXPECT_FALSE(v.allowed);
  EXPECT_NEAR(v.retry_after, 3570.0, 1e-6);
  EXPECT_TRUE(c->fixed("q", 2, 3600, 0, 1, true, 10800.0).allowed);  // the next window
  c->add_fixed("bytes", 3600, 0, 5000, 100.0);  // past any limit: counted all the same
  EXPECT_FALSE(c->fixed("bytes", 4096, 3600, 0, 1, false, 101.0).allowed);
  EXPECT_TRUE(c->fixed("bytes", 4096, 3600, 0, 1, false, 3600.0).allowed);
  EXPECT_TRUE(c->fixed("forever", 1, 0, 0, 1, true, 5.0).allowed);
  EXPECT_FALSE(c->fixed("forever", 1, 0, 0, 1, true, 1e9).allowed);
}

TEST(Counters, ConcurrencySlots) {
  auto c = make_local_counters();
  EXPECT_TRUE(c->acquire("c", 2));
  EXPECT_TRUE(c->acquire("c", 2));
  EXPECT_FALSE(c->acquire("c", 2));
  c->release("c");
  EXPECT_TRUE(c->acquire("c", 2));
}

TEST(Counters, AFullStoreDropsIdleCountersAndFailsClosedWithout) {
  auto c = make_local_counters(2);
  EXPECT_TRUE(c->sliding("a", 5, 10, 1, true, 100.0).allowed);
  EXPECT_TRUE(c->sliding("b", 5, 10, 1, true, 100.0).allowed);
  EXPECT_FALSE(c->sliding("c", 5, 10, 1, true, 105.0).allowed);  // a and b still live
  EXPECT_TRUE(c->sliding("c", 5, 10, 1, true, 111.0).allowed);   // both idle now
}

}  // namespace
}  // namespace mcpgate::policy
