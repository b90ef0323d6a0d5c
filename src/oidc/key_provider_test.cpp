#include "oidc/key_provider.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <sstream>

namespace mcpgate::oidc {
namespace {

std::string jwks_text() {
  std::ifstream in(std::string(MCPGATE_SOURCE_DIR) + "/testdata/jwt/jwks.json");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// An issuer in memory: counts fetches, and can be taken down.
struct FakeIssuer {
  std::atomic<int> config_fetches{0}, jwks_fetches{0};
  std::atomic<bool> down{false};
  std::string jwks = jwks_text();

  FetchFn fn() {
    return [this](const std::string& url) -> core::Result<Fetched, std::string> {
      if (down) return core::fail(std::string("connecting to issuer: refused"));
      if (url == "https://issuer/.well-known/openid-configuration") {
        ++config_fetches;
        return Fetched{200, R"({"issuer":"https://issuer/","jwks_uri":"https://issuer/keys"})"};
      }
      if (url == "https://issuer/keys") {
        ++jwks_fetches;
        return Fetched{200, jwks};
      }
      return Fetched{404, ""};
    };
  }
};

void refresh_and_wait(jwt::KeySource& p) {
  std::promise<void> done;
  p.refresh([&] { done.set_value(); });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

TEST(KeyProvider, FetchesOnceThenLimitsRefetches) {
  FakeIssuer issuer;
  ServiceOptions o;
  o.fetch = issuer.fn();
  o.min_refetch_interval = std::chrono::milliseconds(300);
  KeyService service(o);
  auto p = service.provider("https://issuer/.well-known/openid-configuration");
  EXPECT_EQ(p, service.provider("https://issuer/.well-known/openid-configuration"));
  EXPECT_EQ(p->snapshot()->keys, nullptr);  // nothing trusted before the first fetch
  refresh_and_wait(*p);
  const auto first = p->snapshot();
  ASSERT_NE(first->keys, nullptr);
  EXPECT_EQ(first->issuer, "https://issuer/");
  EXPECT_EQ(issuer.jwks_fetches.load(), 1);
  // An unknown kid right after: no second fetch within the interval.
  for (int i = 0; i < 5; ++i) refresh_and_wait(*p);
  EXPECT_EQ(issuer.jwks_fetches.load(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  refresh_and_wait(*p);
  EXPECT_EQ(issuer.jwks_fetches.load(), 2);
  EXPECT_GT(p->snapshot()->generation, first->generation);
}

TEST(KeyProvider, KeepsTheLastGoodKeysWhileTheIssuerIsDown) {
  FakeIssuer issuer;
  ServiceOptions o;
  o.fetch = issuer.fn();
  o.min_refetch_interval = std::chrono::milliseconds(0);
  KeyService service(o);
  auto p = service.provider("https://issuer/.well-known/openid-configuration");
  refresh_and_wait(*p);
  const auto keys = p->snapshot()->keys;
  issuer.down = true;
  refresh_and_wait(*p);
  EXPECT_EQ(p->snapshot()->keys, keys);
  EXPECT_EQ(p->snapshot()->error, "connecting to issuer: refused");
  issuer.down = false;
  refresh_and_wait(*p);
  EXPECT_EQ(p->snapshot()->error, "");
}

TEST(KeyProvider, NeverHadKeysMeansNoKeys) {
  FakeIssuer issuer;
  issuer.down = true;
  ServiceOptions o;
  o.fetch = issuer.fn();
  KeyService service(o);
  auto p = service.provider("https://issuer/.well-known/openid-configuration");
  refresh_and_wait(*p);
  EXPECT_EQ(p->snapshot()->keys, nullptr);
  EXPECT_EQ(p->snapshot()->error, "connecting to issuer: refused");
  auto missing = service.provider("https://issuer/missing");
  issuer.down = false;
  refresh_and_wait(*missing);
  EXPECT_EQ(missing->snapshot()->error, "GET https://issuer/missing: HTTP 404");
}

TEST(KeyProvider, RefreshesOnTheInterval) {
  FakeIssuer issuer;
  ServiceOptions o;
  o.fetch = issuer.fn();
  o.refresh_interval = std::chrono::milliseconds(100);
  KeyService service(o);
  auto p = service.provider("https://issuer/.well-known/openid-configuration");
  refresh_and_wait(*p);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (issuer.jwks_fetches.load() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(issuer.jwks_fetches.load(), 3);
}

}  // namespace
}  // namespace mcpgate::oidc
