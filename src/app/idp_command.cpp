// app: `mcpgate idp` — the Entra ID emulator's server and its admin CLI (shaped like `az ad app`).
#include <signal.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>

#include "app/commands.hpp"
#include "app/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/time.hpp"
#include "crypto/digest.hpp"
#include "crypto/x509.hpp"
#include "idp/data_dir.hpp"
#include "idp/service.hpp"
#include "net/http_server.hpp"

namespace mcpgate::app {
namespace {

using core::Json;
using core::JsonArray;
using core::JsonObject;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Json str(std::string s) { return Json(std::move(s)); }
std::string iso(std::int64_t t) { return core::format_utc(static_cast<double>(t)); }

void print(const Json& j) { std::cout << j.pretty() << "\n"; }

int fail(const std::string& message) {
  std::cerr << "mcpgate idp: " << message << "\n";
  return 2;
}

Json tenant_json(const idp::Tenant& t) {
  JsonObject o;
  o.emplace_back("id", str(t.id));
  o.emplace_back("displayName", str(t.display_name));
  JsonArray domains;
  for (const auto& d : t.domains) domains.emplace_back(d);
  o.emplace_back("domains", Json(std::move(domains)));
  return Json(std::move(o));
}

Json role_json(const idp::AppRole& r) {
  JsonObject o;
  o.emplace_back("id", str(r.id));
  o.emplace_back("value", str(r.value));
  o.emplace_back("displayName", str(r.display_name));
  o.emplace_back("description", str(r.description));
  o.emplace_back("isEnabled", Json(r.enabled));
  JsonArray types;
  types.emplace_back(std::string("Application"));
  o.emplace_back("allowedMemberTypes", Json(std::move(types)));
  return Json(std::move(o));
}

// Field names as in Microsoft Graph's application resource.
Json app_json(const idp::Application& a) {
  JsonObject o;
  o.emplace_back("id", str(a.object_id));
  o.emplace_back("appId", str(a.app_id));
  o.emplace_back("displayName", str(a.display_name));
  o.emplace_back("tenantId", str(a.tenant_id));
  JsonArray uris;
  for (const auto& u : a.identifier_uris) uris.emplace_back(u);
  o.emplace_back("identifierUris", Json(std::move(uris)));
  JsonObject api;
  api.emplace_back(
      "requestedAccessTokenVersion",
      a.requested_access_token_version ? Json::number(*a.requested_access_token_version) : Json());
  o.emplace_back("api", Json(std::move(api)));
  JsonArray roles;
  for (const auto& r : a.app_roles) roles.push_back(role_json(r));
  o.emplace_back("appRoles", Json(std::move(roles)));
  o.emplace_back("appRoleAssignmentRequired", Json(a.app_role_assignment_required));
  o.emplace_back("servicePrincipalId", str(a.service_principal_id));
  return Json(std::move(o));
}

Json secret_json(const idp::ClientSecret& s, const std::string* text) {
  JsonObject o;
  o.emplace_back("keyId", str(s.key_id));
  o.emplace_back("displayName", str(s.display_name));
  o.emplace_back("hint", str(s.hint));
  o.emplace_back("startDateTime", str(iso(s.start)));
  o.emplace_back("endDateTime", str(iso(s.end)));
  if (text) o.emplace_back("secretText", str(*text));
  return Json(std::move(o));
}

Json cert_json(const idp::KeyCredential& c) {
  JsonObject o;
  o.emplace_back("keyId", str(c.key_id));
  o.emplace_back("displayName", str(c.display_name));
  o.emplace_back("customKeyIdentifier", str(crypto::hex(c.sha1, true)));
  o.emplace_back("type", str("AsymmetricX509Cert"));
  o.emplace_back("usage", str("Verify"));
  o.emplace_back("startDateTime", str(iso(c.start)));
  o.emplace_back("endDateTime", str(iso(c.end)));
  return Json(std::move(o));
}

struct Common {
  std::string data = idp::default_data_dir();
  std::string tenant;  // GUID or domain; may be omitted when there is exactly one tenant
};

// Opens the store (no TLS material needed for admin commands).
core::Result<idp::DataDir, std::string> open(const Common& c) {
  return idp::open_data_dir(c.data, false);
}

core::Result<idp::Tenant, std::string> pick_tenant(idp::Store& store, const std::string& name);

// The directory and the tenant an admin command works in.
struct TenantScope {
  idp::DataDir dir;
  idp::Tenant tenant;
  idp::Store* store = nullptr;
};

core::Result<std::unique_ptr<TenantScope>, std::string> open_tenant(const Common& c) {
  auto dir = open(c);
  if (!dir) return core::fail(dir.error());
  auto scope = std::make_unique<TenantScope>();
  scope->dir = std::move(dir.value());
  scope->store = scope->dir.store.get();
  auto t = pick_tenant(*scope->store, c.tenant);
  if (!t) return core::fail(t.error());
  scope->tenant = std::move(t.value());
  return scope;
}

core::Result<idp::Tenant, std::string> pick_tenant(idp::Store& store, const std::string& name) {
  if (!name.empty()) {
    auto t = store.find_tenant(name);
    if (!t) return core::fail("no tenant \"" + name + "\" (see `mcpgate idp tenant list`)");
    return *t;
  }
  auto all = store.list_tenants();
  if (all.size() == 1) return all[0];
  return core::fail(std::string(all.empty()
                                    ? "no tenant yet: create one with `mcpgate idp tenant create`"
                                    : "several tenants: say which with --tenant"));
}

core::Result<idp::Application, std::string> pick_app(idp::Store& store, const idp::Tenant& t,
                                                     const std::string& id,
                                                     const char* what = "application") {
  auto app = store.find_application(t.id, id);
  if (!app) app = store.find_resource(t.id, id);
  if (!app) return core::fail(std::string("no ") + what + " \"" + id + "\" in tenant " + t.id);
  return *app;
}

// ---- serve ----------------------------------------------------------------------------------

struct ServeOptions {
  std::vector<std::string> listen{"127.0.0.1:0"};
  std::vector<std::string> http_listen;
  std::vector<std::string> names;
  std::int64_t token_lifetime = 3600;
  std::string ready_file;
  std::size_t threads = 1;
};

int run_serve(const Common& c, const ServeOptions& o) {
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto dir = idp::open_data_dir(c.data, !o.listen.empty(), o.names);
  if (!dir) return fail(dir.error());
  idp::TokenIssuer issuer(*dir->store);
  if (auto k = issuer.ensure_keys(); !k) return fail(k.error());

  net::HttpServerOptions options;
  options.threads = o.threads;
  options.max_body_bytes = 64 * 1024;
  for (const auto& spec : o.listen) {
    const auto a = net::parse_listen_address(spec, true);
    if (!a) return fail("--listen wants HOST:PORT, not \"" + spec + "\"");
    options.listen.push_back(*a);
  }
  for (const auto& spec : o.http_listen) {
    const auto a = net::parse_listen_address(spec, false);
    if (!a) return fail("--http-listen wants HOST:PORT, not \"" + spec + "\"");
    options.listen.push_back(*a);
  }
  if (options.listen.empty()) return fail("nothing to listen on");
  if (!o.listen.empty()) {
    auto tls = net::TlsServerContext::from_pem(dir->server_chain_pem, dir->server_key_pem);
    if (!tls) return fail(tls.error());
    options.tls = std::move(tls.value());
  }
  std::mutex log_mu;
  idp::IdpSettings settings;
  settings.token_lifetime_seconds = o.token_lifetime;
  settings.log = [&log_mu](const std::string& line) {
    std::lock_guard lock(log_mu);
    std::cerr << line << std::endl;
  };
  idp::IdpService service(*dir->store, issuer, settings);
  auto server = net::HttpServer::start(std::move(options),
                                       [&service](http::Request&& r) { return service.handle(r); });
  if (!server) return fail(server.error());

  JsonObject ready;
  std::cout << "mcpgate idp: data in " << dir->path << "\n";
  for (const auto& b : (*server)->bound()) {
    const std::string host = b.host.find(':') != std::string::npos ? "[" + b.host + "]" : b.host;
    const std::string url =
        std::string(b.tls ? "https://" : "http://") + host + ":" + std::to_string(b.port);
    std::cout << "mcpgate idp: listening on " << url << "\n";
    if (!ready.empty() && ready.back().first == (b.tls ? "https" : "http")) continue;
    ready.emplace_back(b.tls ? "https" : "http", str(url));
  }
  if (!dir->ca_path.empty()) {
    ready.emplace_back("ca", str(dir->ca_path));
    std::cout << "mcpgate idp: clients must trust the CA in " << dir->ca_path << ":\n"
              << "  Python requests / MSAL:   export REQUESTS_CA_BUNDLE=" << dir->ca_path
              << "  (a bundle with it)\n"
              << "  Node.js (msal-node, @azure/identity): export NODE_EXTRA_CA_CERTS="
              << dir->ca_path << "\n"
              << "  the system store:         cp " << dir->ca_path
              << " /usr/local/share/ca-certificates/mcpgate-idp.crt && update-ca-certificates\n";
  }
  const std::string ready_json = Json(std::move(ready)).dump();
  write_ready_file(o.ready_file, ready_json);
  std::cout << "mcpgate idp: ready " << ready_json << std::endl;

  int sig = 0;
  sigwait(&signals, &sig);
  std::cout << "mcpgate idp: stopping (signal " << sig << ")" << std::endl;
  (*server)->stop();
  return 0;
}

}  // namespace

void add_idp_commands(CLI::App& app, int& exit_code) {
  auto common = std::make_shared<Common>();
  auto serve = std::make_shared<ServeOptions>();
  auto* idp = app.add_subcommand(
      "idp", "Entra ID emulator: serve tokens, discovery and keys; manage its directory");
  idp->add_option("--data", common->data, "Data directory (database, CA, keys)")
      ->capture_default_str()
      ->envname("MCPGATE_IDP_DATA");
  idp->add_option("--listen", serve->listen,
                  "HTTPS address HOST:PORT (repeatable; port 0 picks one)")
      ->capture_default_str();
  idp->add_option("--http-listen", serve->http_listen, "Also serve plain HTTP on HOST:PORT");
  idp->add_option("--name", serve->names,
                  "Extra DNS name or IP for the server certificate (repeatable)");
  idp->add_option("--token-lifetime", serve->token_lifetime,
                  "Seconds from issue to exp (Entra: 3600); negative makes expired tokens")
      ->capture_default_str();
  idp->add_option("--ready-file", serve->ready_file,
                  "Write {\"https\":URL,\"ca\":PATH} here once listening");
  idp->add_option("--threads", serve->threads, "Worker threads")->capture_default_str();
  idp->callback([idp, common, serve, &exit_code] {
    if (idp->get_subcommands().empty()) exit_code = run_serve(*common, *serve);
  });

  auto tenant_opt = [common](CLI::App* cmd) {
    cmd->add_option("--tenant", common->tenant,
                    "Tenant GUID or domain (may be left out when there is one)");
  };

  // tenant
  auto* tenant = idp->add_subcommand("tenant", "Tenants");
  tenant->require_subcommand(1);
  {
    auto o = std::make_shared<std::tuple<std::string, std::string, std::vector<std::string>>>();
    auto* create = tenant->add_subcommand("create", "Create a tenant");
    create->add_option("--id", std::get<0>(*o), "Tenant GUID (default: a new one)");
    create->add_option("--name", std::get<1>(*o), "Display name")->default_str("Contoso");
    create->add_option("--domain", std::get<2>(*o),
                       "Domain name, e.g. contoso.onmicrosoft.com (repeatable)");
    create->callback([common, o, &exit_code] {
      auto dir = open(*common);
      if (!dir) return void(exit_code = fail(dir.error()));
      auto t = dir->store->create_tenant(
          std::get<0>(*o), std::get<1>(*o).empty() ? "Contoso" : std::get<1>(*o), std::get<2>(*o));
      if (!t) return void(exit_code = fail(t.error()));
      print(tenant_json(*t));
    });
    auto* list = tenant->add_subcommand("list", "List tenants");
    list->callback([common, &exit_code] {
      auto dir = open(*common);
      if (!dir) return void(exit_code = fail(dir.error()));
      JsonArray arr;
      for (const auto& t : dir->store->list_tenants()) arr.push_back(tenant_json(t));
      print(Json(std::move(arr)));
    });
  }

  // app
  auto* appcmd = idp->add_subcommand("app", "App registrations");
  appcmd->require_subcommand(1);
  {
    struct CreateOptions {
      std::string name;
      std::vector<std::string> uris;
      int version = 0;
      bool assignment_required = false;
    };
    auto o = std::make_shared<CreateOptions>();
    auto* create =
        appcmd->add_subcommand("create", "Register an application (and its service principal)");
    tenant_opt(create);
    create->add_option("--name", o->name, "Display name")->required();
    create->add_option("--identifier-uri", o->uris,
                       "App ID URI, e.g. api://my-mcp-server (repeatable)");
    create
        ->add_option("--access-token-version", o->version,
                     "requestedAccessTokenVersion: 1 or 2 (default null: v1)")
        ->check(CLI::IsMember({1, 2}));
    create->add_flag("--assignment-required", o->assignment_required,
                     "Callers need an app role assignment");
    create->callback([common, o, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = (*scope)->store->create_application(
          (*scope)->tenant.id, o->name, o->uris,
          o->version ? std::optional<int>(o->version) : std::nullopt, o->assignment_required);
      if (!a) return void(exit_code = fail(a.error()));
      print(app_json(*a));
    });
    auto* list = appcmd->add_subcommand("list", "List applications");
    tenant_opt(list);
    list->callback([common, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      JsonArray arr;
      for (const auto& a : (*scope)->store->list_applications((*scope)->tenant.id))
        arr.push_back(app_json(a));
      print(Json(std::move(arr)));
    });
    auto id = std::make_shared<std::string>();
    auto* show = appcmd->add_subcommand("show", "Show an application");
    tenant_opt(show);
    show->add_option("--id", *id, "appId, object id or App ID URI")->required();
    show->callback([common, id, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = pick_app(*(*scope)->store, (*scope)->tenant, *id);
      if (!a) return void(exit_code = fail(a.error()));
      print(app_json(*a));
    });
    auto* del = appcmd->add_subcommand(
        "delete", "Delete an application, its secrets, certificates and roles");
    tenant_opt(del);
    del->add_option("--id", *id, "appId or object id")->required();
    del->callback([common, id, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      if (!(*scope)->store->delete_application((*scope)->tenant.id, *id))
        return void(exit_code = fail("no application \"" + *id + "\""));
    });
  }

  // secret
  auto* secret = idp->add_subcommand("secret", "Client secrets");
  secret->require_subcommand(1);
  {
    struct Options {
      std::string app, name = "mcpgate", key_id;
      double years = 0.5;
      std::optional<std::int64_t> expires_in;
    };
    auto o = std::make_shared<Options>();
    auto* add = secret->add_subcommand("add", "Add a secret; its text is shown this once");
    tenant_opt(add);
    add->add_option("--app", o->app, "appId")->required();
    add->add_option("--name", o->name, "Display name")->capture_default_str();
    add->add_option("--years", o->years, "Lifetime in years (Entra's default: 180 days)")
        ->capture_default_str();
    add->add_option("--expires-in", o->expires_in,
                    "Lifetime in seconds instead (negative: already expired)");
    add->callback([common, o, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = pick_app(*(*scope)->store, (*scope)->tenant, o->app);
      if (!a) return void(exit_code = fail(a.error()));
      const std::int64_t end =
          unix_now() +
          (o->expires_in ? *o->expires_in : static_cast<std::int64_t>(o->years * 365.25 * 86400));
      auto s = (*scope)->store->add_secret(*a, o->name, end);
      if (!s) return void(exit_code = fail(s.error()));
      print(secret_json(s->first, &s->second));
    });
    auto* list = secret->add_subcommand("list", "List secrets (never their text)");
    tenant_opt(list);
    list->add_option("--app", o->app, "appId")->required();
    list->callback([common, o, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = pick_app(*(*scope)->store, (*scope)->tenant, o->app);
      if (!a) return void(exit_code = fail(a.error()));
      JsonArray arr;
      for (const auto& s : (*scope)->store->list_secrets(*a))
        arr.push_back(secret_json(s, nullptr));
      print(Json(std::move(arr)));
    });
    auto* remove = secret->add_subcommand("remove", "Remove a secret");
    tenant_opt(remove);
    remove->add_option("--app", o->app, "appId")->required();
    remove->add_option("--key-id", o->key_id, "The secret's keyId")->required();
    remove->callback([common, o, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = pick_app(*(*scope)->store, (*scope)->tenant, o->app);
      if (!a) return void(exit_code = fail(a.error()));
      if (!(*scope)->store->remove_secret(*a, o->key_id))
        return void(exit_code = fail("no secret " + o->key_id));
    });
  }

  // certificate
  auto* cert = idp->add_subcommand("certificate", "Certificate credentials");
  cert->require_subcommand(1);
  {
    auto o = std::make_shared<std::tuple<std::string, std::string, std::string>>();
    auto* add = cert->add_subcommand("add", "Upload a certificate's public part (PEM)");
    tenant_opt(add);
    add->add_option("--app", std::get<0>(*o), "appId")->required();
    add->add_option("--cert", std::get<1>(*o), "PEM certificate file")->required();
    add->add_option("--name", std::get<2>(*o), "Display name");
    add->callback([common, o, &exit_code] {
      std::ifstream in(std::get<1>(*o));
      if (!in) return void(exit_code = fail("cannot read " + std::get<1>(*o)));
      const std::string pem{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      auto parsed = crypto::certificate_from_pem(pem);
      if (!parsed) return void(exit_code = fail(std::get<1>(*o) + ": " + parsed.error()));
      if (auto key = crypto::PublicKey::from_certificate_der(parsed->der); !key) {
        return void(exit_code = fail(std::get<1>(*o) + ": " + key.error()));
      }
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = pick_app(*(*scope)->store, (*scope)->tenant, std::get<0>(*o));
      if (!a) return void(exit_code = fail(a.error()));
      auto kc = (*scope)->store->add_certificate(*a, parsed->der, std::get<2>(*o));
      if (!kc) return void(exit_code = fail(kc.error()));
      print(cert_json(*kc));
    });
  }

  // role
  auto* role = idp->add_subcommand("role", "App roles and their assignments");
  role->require_subcommand(1);
  {
    struct Options {
      std::string app, value, name, description, client, resource;
    };
    auto o = std::make_shared<Options>();
    auto* add =
        role->add_subcommand("add", "Define an app role (allowed member type: Application)");
    tenant_opt(add);
    add->add_option("--app", o->app, "appId of the API")->required();
    add->add_option("--value", o->value, "Role value, e.g. Tools.Call")->required();
    add->add_option("--name", o->name, "Display name");
    add->add_option("--description", o->description, "Description");
    add->callback([common, o, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto a = pick_app(*(*scope)->store, (*scope)->tenant, o->app);
      if (!a) return void(exit_code = fail(a.error()));
      auto r = (*scope)->store->add_app_role(*a, o->value, o->name, o->description);
      if (!r) return void(exit_code = fail(r.error()));
      print(role_json(*r));
    });
    auto* grant =
        role->add_subcommand("grant", "Assign an app role of a resource to a client application");
    tenant_opt(grant);
    grant->add_option("--client", o->client, "appId of the client")->required();
    grant->add_option("--resource", o->resource, "appId or App ID URI of the API")->required();
    grant->add_option("--role", o->value, "Role value")->required();
    grant->callback([common, o, &exit_code] {
      auto scope = open_tenant(*common);
      if (!scope) return void(exit_code = fail(scope.error()));
      auto client = pick_app(*(*scope)->store, (*scope)->tenant, o->client, "client application");
      if (!client) return void(exit_code = fail(client.error()));
      auto resource =
          pick_app(*(*scope)->store, (*scope)->tenant, o->resource, "resource application");
      if (!resource) return void(exit_code = fail(resource.error()));
      auto a = (*scope)->store->grant_role(*client, *resource, o->value);
      if (!a) return void(exit_code = fail(a.error()));
      JsonObject j;
      j.emplace_back("id", str(a->id));
      j.emplace_back("principalId", str(a->principal_id));
      j.emplace_back("resourceId", str(a->resource_id));
      j.emplace_back("appRoleId", str(a->app_role_id));
      print(Json(std::move(j)));
    });
  }

  // keys
  auto* keys = idp->add_subcommand("keys", "Token-signing keys");
  keys->require_subcommand(1);
  {
    auto kid = std::make_shared<std::string>();
    auto list_keys = [](idp::Store& store) {
      JsonArray arr;
      for (const auto& k : store.signing_keys()) {
        JsonObject o;
        o.emplace_back("kid", str(k.kid));
        o.emplace_back("state", str(k.state));
        o.emplace_back("created", str(iso(k.created_at)));
        arr.emplace_back(std::move(o));
      }
      return Json(std::move(arr));
    };
    keys->add_subcommand("list", "List published keys")->callback([common, list_keys, &exit_code] {
      auto dir = open(*common);
      if (!dir) return void(exit_code = fail(dir.error()));
      idp::TokenIssuer issuer(*dir->store);
      if (auto k = issuer.ensure_keys(); !k) return void(exit_code = fail(k.error()));
      print(list_keys(*dir->store));
    });
    keys->add_subcommand("rotate", "Add a key and sign with it; older keys stay published")
        ->callback([common, list_keys, &exit_code] {
          auto dir = open(*common);
          if (!dir) return void(exit_code = fail(dir.error()));
          idp::TokenIssuer issuer(*dir->store);
          if (auto k = issuer.ensure_keys(); !k) return void(exit_code = fail(k.error()));
          auto k = issuer.rotate();
          if (!k) return void(exit_code = fail(k.error()));
          print(list_keys(*dir->store));
        });
    auto* retire = keys->add_subcommand("retire", "Stop publishing a key that no longer signs");
    retire->add_option("--kid", *kid, "Key id")->required();
    retire->callback([common, kid, list_keys, &exit_code] {
      auto dir = open(*common);
      if (!dir) return void(exit_code = fail(dir.error()));
      for (const auto& k : dir->store->signing_keys()) {
        if (k.kid == *kid && k.state == "active")
          return void(exit_code = fail("key " + *kid + " signs: rotate first"));
      }
      if (!dir->store->set_signing_key_state(*kid, "retired"))
        return void(exit_code = fail("no key " + *kid));
      print(list_keys(*dir->store));
    });
  }
}

}  // namespace mcpgate::app
