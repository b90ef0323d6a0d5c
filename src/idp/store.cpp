#include "idp/store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>

#include "core/strings.hpp"
#include "crypto/digest.hpp"

namespace mcpgate::idp {
namespace {

using core::fail;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One prepared statement; binds by position (1-based), steps, reads columns.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Stmt& bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_blob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // SQLITE_ROW -> true; SQLITE_DONE -> false; errors -> false with last_error set.
  bool step() {
    if (!stmt_) return false;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) error_ = sqlite3_errmsg(db_);
    return false;
  }
  bool run() {
    step();
    return stmt_ && error_.empty();
  }
  std::string text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
             : std::string();
  }
  std::string blob(int i) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
             : std::string();
  }
  std::int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  bool is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  const std::string& error() const { return error_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string error_;
};

bool exec(sqlite3* db, const char* sql, std::string* error = nullptr) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
  if (rc != SQLITE_OK && error) *error = msg ? msg : "sqlite error";
  sqlite3_free(msg);
  return rc == SQLITE_OK;
}

// Each entry moves the schema one version forward; never edit one that has shipped.
constexpr const char* kMigrations[] = {
    // 1: the directory.
    R"sql(
CREATE TABLE tenants (id TEXT PRIMARY KEY COLLATE NOCASE, display_name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE tenant_domains (domain TEXT PRIMARY KEY COLLATE NOCASE,
  tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE);
CREATE TABLE applications (object_id TEXT PRIMARY KEY, app_id TEXT NOT NULL COLLATE NOCASE,
  tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE, display_name TEXT NOT NULL,
  token_version INTEGER, assignment_required INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
  UNIQUE (tenant_id, app_id));
CREATE TABLE identifier_uris (app_object_id TEXT NOT NULL REFERENCES applications(object_id) ON DELETE CASCADE,
  tenant_id TEXT NOT NULL, uri TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (tenant_id, uri));
CREATE TABLE app_roles (id TEXT PRIMARY KEY, app_object_id TEXT NOT NULL REFERENCES applications(object_id) ON DELETE CASCADE,
  value TEXT NOT NULL, display_name TEXT NOT NULL, description TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,
  UNIQUE (app_object_id, value));
CREATE TABLE service_principals (object_id TEXT PRIMARY KEY,
  app_object_id TEXT NOT NULL UNIQUE REFERENCES applications(object_id) ON DELETE CASCADE);
CREATE TABLE client_secrets (key_id TEXT PRIMARY KEY,
  app_object_id TEXT NOT NULL REFERENCES applications(object_id) ON DELETE CASCADE,
  display_name TEXT NOT NULL, hint TEXT NOT NULL, salt BLOB NOT NULL, hash BLOB NOT NULL,
  start_at INTEGER NOT NULL, end_at INTEGER NOT NULL);
CREATE TABLE key_credentials (key_id TEXT PRIMARY KEY,
  app_object_id TEXT NOT NULL REFERENCES applications(object_id) ON DELETE CASCADE,
  display_name TEXT NOT NULL, certificate BLOB NOT NULL, sha1 BLOB NOT NULL, sha256 BLOB NOT NULL,
  start_at INTEGER NOT NULL, end_at INTEGER NOT NULL);
CREATE TABLE role_assignments (id TEXT PRIMARY KEY,
  principal_id TEXT NOT NULL REFERENCES service_principals(object_id) ON DELETE CASCADE,
  resource_id TEXT NOT NULL REFERENCES service_principals(object_id) ON DELETE CASCADE,
  app_role_id TEXT NOT NULL REFERENCES app_roles(id) ON DELETE CASCADE, created_at INTEGER NOT NULL,
  UNIQUE (principal_id, resource_id, app_role_id));
CREATE TABLE signing_keys (kid TEXT PRIMARY KEY, private_pem TEXT NOT NULL, certificate BLOB NOT NULL,
  created_at INTEGER NOT NULL, state TEXT NOT NULL);
)sql",
};

using crypto::random_bytes;

// Entra-like secret text: 40 characters, "xxxNQ~" followed by 34 more (the "Q~" marks the
// current format); the first three characters are the hint Entra shows.
std::string new_secret_text() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~";
  const std::string bytes = random_bytes(40);
  std::string out;
  for (std::size_t i = 0; i < 40; ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (i == 3)
      out += static_cast<char>('0' + b % 10);
    else if (i == 4)
      out += 'Q';
    else if (i == 5)
      out += '~';
    else
      out += kAlphabet[b % (i < 3 ? 62 : 66)];
  }
  return out;
}

std::string secret_hash(std::string_view salt, std::string_view secret) {
  std::string input(salt);
  input.append(secret);
  return crypto::sha256(input);
}

}  // namespace

std::string new_guid() {
  std::string b = random_bytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  const std::string h = crypto::hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

Result<std::unique_ptr<Store>, std::string> Store::open(const std::string& path) {
  std::unique_ptr<Store> store(new Store());
  if (sqlite3_open_v2(path.c_str(), &store->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    return fail("cannot open database " + path + ": " +
                (store->db_ ? sqlite3_errmsg(store->db_) : "out of memory"));
  }
  sqlite3* db = store->db_;
  sqlite3_busy_timeout(db, 5000);  // the admin CLI and the server may write at the same time
  std::string error;
  if (!exec(db, "PRAGMA foreign_keys = ON;", &error)) return fail(error);
  if (path != ":memory:") exec(db, "PRAGMA journal_mode = WAL;");
  if (!exec(db,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at "
            "INTEGER NOT NULL);",
            &error)) {
    return fail(error);
  }
  const int have = store->schema_version();
  const int want = static_cast<int>(std::size(kMigrations));
  if (have > want) {
    return fail("database schema version " + std::to_string(have) +
                " is newer than this mcpgate (" + std::to_string(want) + ")");
  }
  for (int v = have; v < want; ++v) {
    if (!exec(db, "BEGIN IMMEDIATE;", &error)) return fail(error);
    // Another process may have migrated while we waited for the lock.
    if (store->schema_version() > v) {
      exec(db, "COMMIT;");
      continue;
    }
    if (!exec(db, kMigrations[v], &error)) {
      exec(db, "ROLLBACK;");
      return fail("migration " + std::to_string(v + 1) + ": " + error);
    }
    Stmt ins(db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)");
    ins.bind(1, static_cast<std::int64_t>(v + 1)).bind(2, unix_now());
    if (!ins.run() || !exec(db, "COMMIT;", &error)) {
      exec(db, "ROLLBACK;");
      return fail("migration " + std::to_string(v + 1) + " could not be recorded");
    }
  }
  return store;
}

Store::~Store() { sqlite3_close_v2(db_); }

int Store::schema_version() {
  Stmt s(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  return s.step() ? static_cast<int>(s.integer(0)) : 0;
}

Result<Tenant, std::string> Store::create_tenant(std::string id, std::string display_name,
                                                 std::vector<std::string> domains) {
  std::lock_guard lock(mu_);
  if (id.empty()) id = new_guid();
  if (!core::is_guid(id)) return fail("tenant id \"" + core::printable(id) + "\" is not a GUID");
  id = core::to_lower(id);
  for (auto& d : domains) {
    d = core::to_lower(d);
    if (d.empty() ||
        d.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos ||
        d.find('.') == std::string::npos) {
      return fail("domain \"" + core::printable(d) + "\" is not a DNS name");
    }
  }
  exec(db_, "BEGIN IMMEDIATE;");
  Stmt t(db_, "INSERT INTO tenants (id, display_name, created_at) VALUES (?, ?, ?)");
  t.bind(1, id).bind(2, display_name).bind(3, unix_now());
  if (!t.run()) {
    exec(db_, "ROLLBACK;");
    return fail("tenant " + id + " already exists");
  }
  for (const auto& d : domains) {
    Stmt s(db_, "INSERT INTO tenant_domains (domain, tenant_id) VALUES (?, ?)");
    s.bind(1, d).bind(2, id);
    if (!s.run()) {
      exec(db_, "ROLLBACK;");
      return fail("domain " + d + " already belongs to a tenant");
    }
  }
  exec(db_, "COMMIT;");
  return Tenant{id, std::move(display_name), std::move(domains)};
}

std::optional<Tenant> Store::find_tenant(std::string_view id_or_domain) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT id, display_name FROM tenants WHERE id = ?1 "
         "UNION SELECT t.id, t.display_name FROM tenants t JOIN tenant_domains d ON d.tenant_id = "
         "t.id WHERE d.domain = ?1");
  s.bind(1, id_or_domain);
  if (!s.step()) return std::nullopt;
  Tenant t{s.text(0), s.text(1), {}};
  Stmt d(db_, "SELECT domain FROM tenant_domains WHERE tenant_id = ? ORDER BY domain");
  d.bind(1, t.id);
  while (d.step()) t.domains.push_back(d.text(0));
  return t;
}

std::vector<Tenant> Store::list_tenants() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    Stmt s(db_, "SELECT id FROM tenants ORDER BY created_at, id");
    while (s.step()) ids.push_back(s.text(0));
  }
  std::vector<Tenant> out;
  for (const auto& id : ids) {
    if (auto t = find_tenant(id)) out.push_back(std::move(*t));
  }
  return out;
}

Result<Application, std::string> Store::create_application(const std::string& tenant_id,
                                                           std::string display_name,
                                                           std::vector<std::string> identifier_uris,
                                                           std::optional<int> token_version,
                                                           bool assignment_required) {
  if (token_version && *token_version != 1 && *token_version != 2) {
    return fail(std::string("requestedAccessTokenVersion must be 1 or 2"));
  }
  for (const auto& uri : identifier_uris) {
    if (uri.empty() || uri.find_first_of(" \t\r\n") != std::string::npos ||
        uri.find(':') == std::string::npos) {
      return fail("identifier URI \"" + core::printable(uri) +
                  "\" is not a URI (e.g. api://my-api)");
    }
  }
  std::lock_guard lock(mu_);
  Application app;
  app.object_id = new_guid();
  app.app_id = new_guid();
  app.tenant_id = tenant_id;
  app.display_name = std::move(display_name);
  app.identifier_uris = std::move(identifier_uris);
  app.requested_access_token_version = token_version;
  app.app_role_assignment_required = assignment_required;
  app.service_principal_id = new_guid();
  exec(db_, "BEGIN IMMEDIATE;");
  Stmt a(db_,
         "INSERT INTO applications (object_id, app_id, tenant_id, display_name, token_version, "
         "assignment_required, "
         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  a.bind(1, app.object_id).bind(2, app.app_id).bind(3, tenant_id).bind(4, app.display_name);
  if (token_version)
    a.bind(5, static_cast<std::int64_t>(*token_version));
  else
    a.bind_null(5);
  a.bind(6, static_cast<std::int64_t>(assignment_required)).bind(7, unix_now());
  if (!a.run()) {
    exec(db_, "ROLLBACK;");
    return fail("cannot create the application: " + a.error());
  }
  for (const auto& uri : app.identifier_uris) {
    Stmt u(db_, "INSERT INTO identifier_uris (app_object_id, tenant_id, uri) VALUES (?, ?, ?)");
    u.bind(1, app.object_id).bind(2, tenant_id).bind(3, uri);
    if (!u.run()) {
      exec(db_, "ROLLBACK;");
      return fail("identifier URI " + uri +
                  " is already used by another application in this tenant");
    }
  }
  Stmt sp(db_, "INSERT INTO service_principals (object_id, app_object_id) VALUES (?, ?)");
  sp.bind(1, app.service_principal_id).bind(2, app.object_id);
  if (!sp.run()) {
    exec(db_, "ROLLBACK;");
    return fail("cannot create the service principal: " + sp.error());
  }
  exec(db_, "COMMIT;");
  return app;
}

void Store::load_children(Application& app) {
  Stmt u(db_, "SELECT uri FROM identifier_uris WHERE app_object_id = ? ORDER BY rowid");
  u.bind(1, app.object_id);
  while (u.step()) app.identifier_uris.push_back(u.text(0));
  Stmt r(db_,
         "SELECT id, value, display_name, description, enabled FROM app_roles WHERE app_object_id "
         "= ? ORDER BY rowid");
  r.bind(1, app.object_id);
  while (r.step())
    app.app_roles.push_back({r.text(0), r.text(1), r.text(2), r.text(3), r.integer(4) != 0});
  Stmt sp(db_, "SELECT object_id FROM service_principals WHERE app_object_id = ?");
  sp.bind(1, app.object_id);
  if (sp.step()) app.service_principal_id = sp.text(0);
}

namespace {
constexpr const char* kAppColumns =
    "SELECT object_id, app_id, tenant_id, display_name, token_version, assignment_required FROM "
    "applications ";

Application read_app(const Stmt& s) {
  Application app;
  app.object_id = s.text(0);
  app.app_id = s.text(1);
  app.tenant_id = s.text(2);
  app.display_name = s.text(3);
  if (!s.is_null(4)) app.requested_access_token_version = static_cast<int>(s.integer(4));
  app.app_role_assignment_required = s.integer(5) != 0;
  return app;
}
}  // namespace

std::optional<Application> Store::find_application(const std::string& tenant_id,
                                                   std::string_view id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         (std::string(kAppColumns) + "WHERE tenant_id = ?1 AND (app_id = ?2 OR object_id = ?2)")
             .c_str());
  s.bind(1, tenant_id).bind(2, core::to_lower(id));
  if (!s.step()) return std::nullopt;
  Application app = read_app(s);
  load_children(app);
  return app;
}

std::optional<Application> Store::find_resource(const std::string& tenant_id,
                                                std::string_view identifier) {
  std::string object_id;
  {
    std::lock_guard lock(mu_);
    Stmt s(db_,
           "SELECT object_id FROM applications WHERE tenant_id = ?1 AND app_id = ?2 "
           "UNION SELECT app_object_id FROM identifier_uris WHERE tenant_id = ?1 AND uri = ?2");
    s.bind(1, tenant_id).bind(2, identifier);
    if (!s.step()) return std::nullopt;
    object_id = s.text(0);
  }
  return find_application(tenant_id, object_id);
}

std::vector<Application> Store::list_applications(const std::string& tenant_id) {
  std::lock_guard lock(mu_);
  std::vector<Application> out;
  Stmt s(
      db_,
      (std::string(kAppColumns) + "WHERE tenant_id = ? ORDER BY created_at, display_name").c_str());
  s.bind(1, tenant_id);
  while (s.step()) out.push_back(read_app(s));
  for (auto& app : out) load_children(app);
  return out;
}

bool Store::delete_application(const std::string& tenant_id, std::string_view id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM applications WHERE tenant_id = ?1 AND (app_id = ?2 OR object_id = ?2)");
  s.bind(1, tenant_id).bind(2, core::to_lower(id));
  return s.run() && sqlite3_changes(db_) > 0;
}

Result<AppRole, std::string> Store::add_app_role(const Application& app, std::string value,
                                                 std::string display_name,
                                                 std::string description) {
  if (value.empty() || value.find_first_of(" \t\r\n,\"") != std::string::npos) {
    return fail("app role value \"" + core::printable(value) +
                "\" must be one word (e.g. Tools.Call)");
  }
  std::lock_guard lock(mu_);
  AppRole role{new_guid(), std::move(value), std::move(display_name), std::move(description), true};
  if (role.display_name.empty()) role.display_name = role.value;
  Stmt s(db_,
         "INSERT INTO app_roles (id, app_object_id, value, display_name, description) VALUES (?, "
         "?, ?, ?, ?)");
  s.bind(1, role.id)
      .bind(2, app.object_id)
      .bind(3, role.value)
      .bind(4, role.display_name)
      .bind(5, role.description);
  if (!s.run()) return fail("the application already has an app role with value " + role.value);
  return role;
}

Result<std::pair<ClientSecret, std::string>, std::string> Store::add_secret(
    const Application& app, std::string display_name, std::int64_t end) {
  std::lock_guard lock(mu_);
  const std::string text = new_secret_text();
  const std::string salt = random_bytes(16);
  ClientSecret secret{new_guid(), std::move(display_name), text.substr(0, 3), unix_now(), end};
  Stmt s(db_,
         "INSERT INTO client_secrets (key_id, app_object_id, display_name, hint, salt, hash, "
         "start_at, end_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, secret.key_id).bind(2, app.object_id).bind(3, secret.display_name).bind(4, secret.hint);
  s.bind_blob(5, salt)
      .bind_blob(6, secret_hash(salt, text))
      .bind(7, secret.start)
      .bind(8, secret.end);
  if (!s.run()) return fail("cannot store the secret: " + s.error());
  return std::pair{secret, text};
}

std::vector<ClientSecret> Store::list_secrets(const Application& app) {
  std::lock_guard lock(mu_);
  std::vector<ClientSecret> out;
  Stmt s(db_,
         "SELECT key_id, display_name, hint, start_at, end_at FROM client_secrets WHERE "
         "app_object_id = ? ORDER BY start_at");
  s.bind(1, app.object_id);
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.integer(3), s.integer(4)});
  return out;
}

bool Store::remove_secret(const Application& app, std::string_view key_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "DELETE FROM client_secrets WHERE app_object_id = ? AND key_id = ?");
  s.bind(1, app.object_id).bind(2, core::to_lower(key_id));
  return s.run() && sqlite3_changes(db_) > 0;
}

SecretCheck Store::check_secret(const Application& app, std::string_view secret, std::int64_t now) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT salt, hash, end_at FROM client_secrets WHERE app_object_id = ?");
  s.bind(1, app.object_id);
  SecretCheck result = SecretCheck::kWrong;
  while (s.step()) {
    // Every stored secret is compared, in constant time, whatever matched before.
    const bool match = core::constant_time_equals(secret_hash(s.blob(0), secret), s.blob(1));
    if (match)
      result = now < s.integer(2)
                   ? SecretCheck::kValid
                   : (result == SecretCheck::kValid ? result : SecretCheck::kExpired);
  }
  return result;
}

Result<KeyCredential, std::string> Store::add_certificate(const Application& app, std::string der,
                                                          std::string display_name) {
  std::lock_guard lock(mu_);
  KeyCredential kc{new_guid(), std::move(display_name),   std::move(der), "", "",
                   unix_now(), unix_now() + 365LL * 86400};
  kc.sha1 = crypto::sha1(kc.certificate_der);
  kc.sha256 = crypto::sha256(kc.certificate_der);
  Stmt s(db_,
         "INSERT INTO key_credentials (key_id, app_object_id, display_name, certificate, sha1, "
         "sha256, start_at, end_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, kc.key_id)
      .bind(2, app.object_id)
      .bind(3, kc.display_name)
      .bind_blob(4, kc.certificate_der);
  s.bind_blob(5, kc.sha1).bind_blob(6, kc.sha256).bind(7, kc.start).bind(8, kc.end);
  if (!s.run()) return fail("cannot store the certificate: " + s.error());
  return kc;
}

std::vector<KeyCredential> Store::list_certificates(const Application& app) {
  std::lock_guard lock(mu_);
  std::vector<KeyCredential> out;
  Stmt s(db_,
         "SELECT key_id, display_name, certificate, sha1, sha256, start_at, end_at FROM "
         "key_credentials "
         "WHERE app_object_id = ? ORDER BY start_at");
  s.bind(1, app.object_id);
  while (s.step())
    out.push_back(
        {s.text(0), s.text(1), s.blob(2), s.blob(3), s.blob(4), s.integer(5), s.integer(6)});
  return out;
}

Result<RoleAssignment, std::string> Store::grant_role(const Application& client,
                                                      const Application& resource,
                                                      std::string_view role_value) {
  const AppRole* role = nullptr;
  for (const auto& r : resource.app_roles) {
    if (r.value == role_value) role = &r;
  }
  if (!role) {
    return fail("application " + resource.app_id + " has no app role with value \"" +
                core::printable(role_value) + "\"");
  }
  std::lock_guard lock(mu_);
  RoleAssignment a{new_guid(), client.service_principal_id, resource.service_principal_id,
                   role->id};
  Stmt s(db_,
         "INSERT INTO role_assignments (id, principal_id, resource_id, app_role_id, created_at) "
         "VALUES (?, ?, ?, ?, ?)");
  s.bind(1, a.id)
      .bind(2, a.principal_id)
      .bind(3, a.resource_id)
      .bind(4, a.app_role_id)
      .bind(5, unix_now());
  if (!s.run()) return fail("the role is already granted (or an id is unknown): " + s.error());
  return a;
}

std::vector<std::string> Store::granted_roles(const Application& client,
                                              const Application& resource) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  Stmt s(db_,
         "SELECT r.value FROM role_assignments a JOIN app_roles r ON r.id = a.app_role_id "
         "WHERE a.principal_id = ? AND a.resource_id = ? AND r.enabled = 1 ORDER BY r.value");
  s.bind(1, client.service_principal_id).bind(2, resource.service_principal_id);
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<SigningKey> Store::signing_keys() {
  std::lock_guard lock(mu_);
  std::vector<SigningKey> out;
  Stmt s(db_,
         "SELECT kid, private_pem, certificate, created_at, state FROM signing_keys WHERE state != "
         "'retired' "
         "ORDER BY created_at DESC, rowid DESC");
  while (s.step()) out.push_back({s.text(0), s.text(1), s.blob(2), s.integer(3), s.text(4)});
  return out;
}

Result<SigningKey, std::string> Store::add_signing_key(std::string kid, std::string private_pem,
                                                       std::string cert_der, std::string state) {
  std::lock_guard lock(mu_);
  SigningKey k{std::move(kid), std::move(private_pem), std::move(cert_der), unix_now(),
               std::move(state)};
  Stmt s(db_,
         "INSERT INTO signing_keys (kid, private_pem, certificate, created_at, state) VALUES (?, "
         "?, ?, ?, ?)");
  s.bind(1, k.kid)
      .bind(2, k.private_pem)
      .bind_blob(3, k.certificate_der)
      .bind(4, k.created_at)
      .bind(5, k.state);
  if (!s.run()) return fail("cannot store the signing key: " + s.error());
  return k;
}

bool Store::set_signing_key_state(std::string_view kid, std::string_view state) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE signing_keys SET state = ? WHERE kid = ?");
  s.bind(1, state).bind(2, kid);
  return s.run() && sqlite3_changes(db_) > 0;
}

bool Store::activate_signing_key(std::string_view kid) {
  std::lock_guard lock(mu_);
  exec(db_, "BEGIN IMMEDIATE;");
  Stmt a(db_, "UPDATE signing_keys SET state = 'published' WHERE state = 'active' AND kid != ?");
  a.bind(1, kid);
  Stmt b(db_, "UPDATE signing_keys SET state = 'active' WHERE kid = ?");
  b.bind(1, kid);
  const bool ok = a.run() && b.run() && sqlite3_changes(db_) > 0;
  exec(db_, ok ? "COMMIT;" : "ROLLBACK;");
  return ok;
}

}  // namespace mcpgate::idp
