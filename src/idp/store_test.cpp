#include "idp/store.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "core/strings.hpp"

namespace mcpgate::idp {
namespace {

constexpr const char* kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";

std::unique_ptr<Store> memory_store() { return Store::open(":memory:").value(); }

TEST(Store, MigratesOnceAndReopens) {
  const std::string path =
      ::testing::TempDir() + "store_test_" + std::to_string(::getpid()) + ".db";
  std::remove(path.c_str());
  {
    auto s = Store::open(path);
    ASSERT_TRUE(s.ok()) << s.error();
    EXPECT_EQ((*s)->schema_version(), 1);
    ASSERT_TRUE((*s)->create_tenant(kTenant, "Contoso", {"contoso.onmicrosoft.com"}).ok());
  }
  auto again = Store::open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->schema_version(), 1);
  EXPECT_TRUE((*again)->find_tenant(kTenant).has_value());
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

TEST(Store, TenantsMatchCaseInsensitively) {
  auto s = memory_store();
  ASSERT_TRUE(s->create_tenant("72F988BF-86F1-41AF-91AB-2D7CD011DB47", "Contoso",
                               {"Contoso.OnMicrosoft.com"})
                  .ok());
  EXPECT_EQ(s->find_tenant("CONTOSO.onmicrosoft.com")->id, kTenant);
  EXPECT_EQ(s->find_tenant(kTenant)->domains.at(0), "contoso.onmicrosoft.com");
  EXPECT_FALSE(s->find_tenant("fabrikam.onmicrosoft.com").has_value());
  EXPECT_FALSE(s->create_tenant(kTenant, "again", {}).ok());
  EXPECT_FALSE(s->create_tenant("not-a-guid", "x", {}).ok());
  EXPECT_FALSE(s->create_tenant("", "x", {"bad domain"}).ok());
  EXPECT_FALSE(s->create_tenant("", "x", {"contoso.onmicrosoft.com"}).ok());  // domain taken
}

TEST(Store, ApplicationsRolesAndAssignments) {
  auto s = memory_store();
  ASSERT_TRUE(s->create_tenant(kTenant, "Contoso", {}).ok());
  auto api = s->create_application(kTenant, "api", {"api://mcp"}, 2, false);
  ASSERT_TRUE(api.ok()) << api.error();
  EXPECT_TRUE(core::is_guid(api->app_id));
  EXPECT_FALSE(s->create_application(kTenant, "dup", {"API://MCP"}, std::nullopt, false).ok());
  EXPECT_FALSE(s->create_application(kTenant, "bad", {"no scheme"}, std::nullopt, false).ok());
  EXPECT_FALSE(s->create_application(kTenant, "bad", {}, 3, false).ok());
  auto client = s->create_application(kTenant, "client", {}, std::nullopt, false).value();
  ASSERT_TRUE(s->add_app_role(*api, "Tools.Call", "", "").ok());
  EXPECT_FALSE(s->add_app_role(*api, "Tools.Call", "", "").ok());
  EXPECT_FALSE(s->add_app_role(*api, "two words", "", "").ok());
  const auto api_now = s->find_resource(kTenant, "api://mcp").value();
  EXPECT_EQ(api_now.app_roles.size(), 1u);
  EXPECT_EQ(api_now.requested_access_token_version, 2);
  EXPECT_FALSE(s->grant_role(client, api_now, "Nope").ok());
  ASSERT_TRUE(s->grant_role(client, api_now, "Tools.Call").ok());
  EXPECT_FALSE(s->grant_role(client, api_now, "Tools.Call").ok());
  EXPECT_EQ(s->granted_roles(client, api_now), std::vector<std::string>{"Tools.Call"});
  EXPECT_EQ(s->find_resource(kTenant, api->app_id)->object_id, api->object_id);
  EXPECT_TRUE(s->delete_application(kTenant, api->app_id));
  EXPECT_FALSE(s->find_resource(kTenant, "api://mcp").has_value());
  EXPECT_TRUE(s->granted_roles(client, api_now).empty());  // assignments went with it
}

TEST(Store, SecretsAreHashedAndChecked) {
  auto s = memory_store();
  ASSERT_TRUE(s->create_tenant(kTenant, "Contoso", {}).ok());
  auto app = s->create_application(kTenant, "client", {}, std::nullopt, false).value();
  auto added = s->add_secret(app, "main", 2'000'000'000);
  ASSERT_TRUE(added.ok());
  const std::string text = added->second;
  EXPECT_EQ(text.size(), 40u);
  EXPECT_EQ(text.substr(4, 2), "Q~");
  EXPECT_EQ(added->first.hint, text.substr(0, 3));
  EXPECT_EQ(s->check_secret(app, text, 1'800'000'000), SecretCheck::kValid);
  EXPECT_EQ(s->check_secret(app, text + "x", 1'800'000'000), SecretCheck::kWrong);
  EXPECT_EQ(s->check_secret(app, text, 2'000'000'001), SecretCheck::kExpired);
  auto second = s->add_secret(app, "new", 2'100'000'000).value();
  EXPECT_EQ(s->check_secret(app, second.second, 2'000'000'001), SecretCheck::kValid);
  EXPECT_EQ(s->list_secrets(app).size(), 2u);
  EXPECT_TRUE(s->remove_secret(app, added->first.key_id));
  EXPECT_EQ(s->check_secret(app, text, 1'800'000'000), SecretCheck::kWrong);
}

TEST(Store, SigningKeyStates) {
  auto s = memory_store();
  ASSERT_TRUE(s->add_signing_key("a", "pem-a", "der-a", "active").ok());
  ASSERT_TRUE(s->add_signing_key("b", "pem-b", "der-b", "published").ok());
  EXPECT_TRUE(s->activate_signing_key("b"));
  for (const auto& k : s->signing_keys()) EXPECT_EQ(k.state, k.kid == "b" ? "active" : "published");
  EXPECT_TRUE(s->set_signing_key_state("a", "retired"));
  EXPECT_EQ(s->signing_keys().size(), 1u);
  EXPECT_FALSE(s->activate_signing_key("missing"));
  EXPECT_EQ(s->signing_keys().at(0).kid, "b");  // a failed activation changes nothing
}

}  // namespace
}  // namespace mcpgate::idp
