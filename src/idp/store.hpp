// idp: the emulator's directory (tenants, applications, service principals, secrets,
// certificates, app roles and their assignments, signing keys) in SQLite with versioned
// migrations. Safe to share between the server and the admin CLI (WAL, busy timeout).
// Must not depend on Asio.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

struct sqlite3;

namespace mcpgate::idp {

using core::Result;

struct Tenant {
  std::string id;  // GUID
  std::string display_name;
  std::vector<std::string> domains;  // e.g. contoso.onmicrosoft.com
};

struct AppRole {
  std::string id;
  std::string value;
  std::string display_name;
  std::string description;
  bool enabled = true;
};

struct Application {
  std::string object_id;
  std::string app_id;
  std::string tenant_id;
  std::string display_name;
  std::vector<std::string> identifier_uris;
  std::optional<int> requested_access_token_version;  // null/1: v1 tokens, 2: v2 tokens
  bool app_role_assignment_required = false;
  std::vector<AppRole> app_roles;
  std::string service_principal_id;  // the app's service principal in its tenant
};

struct ClientSecret {
  std::string key_id;
  std::string display_name;
  std::string hint;  // first three characters, as Entra shows them
  std::int64_t start = 0;
  std::int64_t end = 0;
};

struct KeyCredential {  // an uploaded certificate (public part only)
  std::string key_id;
  std::string display_name;
  std::string certificate_der;
  std::string sha1;  // raw thumbprints
  std::string sha256;
  std::int64_t start = 0;
  std::int64_t end = 0;
};

struct RoleAssignment {
  std::string id;
  std::string principal_id;  // client's service principal
  std::string resource_id;   // resource's service principal
  std::string app_role_id;
};

struct SigningKey {
  std::string kid;
  std::string private_pem;
  std::string certificate_der;
  std::int64_t created_at = 0;
  std::string state;  // "active" (signs), "published" (in JWKS only), "retired"
};

enum class SecretCheck { kValid, kExpired, kWrong };

class Store {
 public:
  // `path` is a file, or ":memory:" for tests.
  static Result<std::unique_ptr<Store>, std::string> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int schema_version();

  // Tenants: ids and domains are matched case-insensitively.
  Result<Tenant, std::string> create_tenant(std::string id, std::string display_name,
                                            std::vector<std::string> domains);
  std::optional<Tenant> find_tenant(std::string_view id_or_domain);
  std::vector<Tenant> list_tenants();

  // Applications (and their service principal, created with them).
  Result<Application, std::string> create_application(const std::string& tenant_id,
                                                      std::string display_name,
                                                      std::vector<std::string> identifier_uris,
                                                      std::optional<int> token_version,
                                                      bool assignment_required);
  // By appId or object id.
  std::optional<Application> find_application(const std::string& tenant_id, std::string_view id);
  // By App ID URI (case-insensitive, trailing slash significant) or appId.
  std::optional<Application> find_resource(const std::string& tenant_id,
                                           std::string_view identifier);
  std::vector<Application> list_applications(const std::string& tenant_id);
  bool delete_application(const std::string& tenant_id, std::string_view id);
  Result<AppRole, std::string> add_app_role(const Application& app, std::string value,
                                            std::string display_name, std::string description);

  // Client secrets: stored as salted SHA-256; the text is returned once, here.
  Result<std::pair<ClientSecret, std::string>, std::string> add_secret(const Application& app,
                                                                       std::string display_name,
                                                                       std::int64_t end);
  std::vector<ClientSecret> list_secrets(const Application& app);
  bool remove_secret(const Application& app, std::string_view key_id);
  // Compares in constant time against every secret of the app.
  SecretCheck check_secret(const Application& app, std::string_view secret, std::int64_t now);

  Result<KeyCredential, std::string> add_certificate(const Application& app, std::string der,
                                                     std::string display_name);
  std::vector<KeyCredential> list_certificates(const Application& app);

  // Grants `role_value` of `resource` to `client`'s service principal.
  Result<RoleAssignment, std::string> grant_role(const Application& client,
                                                 const Application& resource,
                                                 std::string_view role_value);
  std::vector<std::string> granted_roles(const Application& client, const Application& resource);

  std::vector<SigningKey> signing_keys();  // active and published, newest first
  Result<SigningKey, std::string> add_signing_key(std::string kid, std::string private_pem,
                                                  std::string cert_der, std::string state);
  bool set_signing_key_state(std::string_view kid, std::string_view state);
  // Makes `kid` the only active key; the previous active keys stay published.
  bool activate_signing_key(std::string_view kid);

 private:
  Store() = default;
  void load_children(Application& app);
  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

// A random version-4 GUID, lower case.
std::string new_guid();

}  // namespace mcpgate::idp
