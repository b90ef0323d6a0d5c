// app: `mcpgate token` — the lab's Step 3 as a command: a client-credentials token from Entra ID
// (or the emulator), with a client secret or a certificate, written to a file.
#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "app/commands.hpp"
#include "app/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "crypto/base64.hpp"
#include "crypto/digest.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"
#include "http/message.hpp"
#include "jwt/signer.hpp"
#include "jwt/token.hpp"
#include "net/http_client.hpp"

namespace mcpgate::app {
namespace {

struct TokenOptions {
  std::string tenant;
  std::string client_id;
  std::string client_secret;
  std::string secret_file;
  std::string certificate;  // PEM certificate registered on the app
  std::string key;          // its PEM private key
  std::string scope = "https://graph.microsoft.com/.default";  // the lab's scope
  std::string authority = "https://login.microsoftonline.com";
  std::string ca_file;
  std::string output = "token.jwt";
  bool show = false;
};

bool read_text(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

int usage(const std::string& message) {
  std::cerr << "mcpgate token: " << message << "\n";
  return 2;
}

int refused(const std::string& message) {
  std::cerr << "mcpgate token: " << message << "\n";
  return 1;
}

// A client assertion (RFC 7523) signed with the app's certificate key, as MSAL sends it.
core::Result<std::string, std::string> client_assertion(const TokenOptions& o,
                                                        const std::string& token_url) {
  std::string cert_pem, key_pem;
  if (!read_text(o.certificate, cert_pem)) return core::fail("cannot read " + o.certificate);
  if (!read_text(o.key, key_pem)) return core::fail("cannot read " + o.key);
  auto cert = crypto::certificate_from_pem(cert_pem);
  if (!cert) return core::fail(o.certificate + ": " + cert.error());
  auto key = crypto::PrivateKey::from_pem(key_pem);
  if (!key) return core::fail(o.key + ": " + key.error());
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto t = static_cast<double>(static_cast<long long>(now));
  core::JsonObject header;
  header.emplace_back("typ", core::Json("JWT"));
  header.emplace_back("x5t#S256", core::Json(crypto::base64url_encode(cert->sha256_thumbprint())));
  core::JsonObject claims;
  claims.emplace_back("aud", core::Json(token_url));
  claims.emplace_back("iss", core::Json(o.client_id));
  claims.emplace_back("sub", core::Json(o.client_id));
  claims.emplace_back("jti", core::Json(crypto::base64url_encode(crypto::random_bytes(16))));
  claims.emplace_back("nbf", core::Json::number(t));
  claims.emplace_back("iat", core::Json::number(t));
  claims.emplace_back("exp", core::Json::number(t + 600));
  return jwt::sign(core::Json(std::move(header)), core::Json(std::move(claims)),
                   jwt::Algorithm::kRS256, *key);
}

int run_token(const TokenOptions& o) {
  if (o.tenant.empty() || o.tenant.find_first_of("/?# ") != std::string::npos)
    return usage("--tenant must be a tenant id or domain");
  std::string secret = o.client_secret;
  if (!o.secret_file.empty()) {
    if (!read_text(o.secret_file, secret)) return usage("cannot read " + o.secret_file);
    secret = std::string(core::trim(secret));
  }
  const bool with_cert = !o.certificate.empty() || !o.key.empty();
  if (secret.empty() && !with_cert) {
    if (const char* env = std::getenv("MCPGATE_CLIENT_SECRET")) secret = env;
  }
  if (with_cert && (o.certificate.empty() || o.key.empty()))
    return usage("a certificate needs both --certificate and --key");
  if (with_cert == !secret.empty())
    return usage(
        "give one credential: --client-secret, --client-secret-file or MCPGATE_CLIENT_SECRET, "
        "or --certificate with --key");
  std::string authority = o.authority;
  while (!authority.empty() && authority.back() == '/') authority.pop_back();
  if (authority.rfind("https://", 0) != 0 && authority.rfind("http://", 0) != 0)
    return usage("--authority must be a URL, e.g. https://login.microsoftonline.com");
  const std::string token_url = authority + "/" + o.tenant + "/oauth2/v2.0/token";

  std::string form = "grant_type=client_credentials&client_id=" + http::url_encode(o.client_id) +
                     "&scope=" + http::url_encode(o.scope);
  if (with_cert) {
    auto assertion = client_assertion(o, token_url);
    if (!assertion) return usage(assertion.error());
    form += "&client_assertion_type=" +
            http::url_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
            "&client_assertion=" + assertion.value();
  } else {
    form += "&client_secret=" + http::url_encode(secret);
  }
  net::FetchOptions fo;
  fo.method = "POST";
  fo.content_type = "application/x-www-form-urlencoded";
  fo.body = std::move(form);
  fo.ca_file = o.ca_file;
  auto r = net::fetch(token_url, fo);
  if (!r) return refused("cannot reach " + token_url + ": " + r.error());
  auto body = core::parse_json(r->body);
  if (r->status != 200) {
    // Entra's error: error, error_description (which starts with the AADSTS code).
    const std::string* err = body ? body->find_string("error") : nullptr;
    const std::string* desc = body ? body->find_string("error_description") : nullptr;
    if (!err)
      return refused(token_url + " answered " + std::to_string(r->status) + ": " +
                     core::printable(r->body, 300));
    std::string first_line = desc ? *desc : std::string();
    if (const auto nl = first_line.find_first_of("\r\n"); nl != std::string::npos)
      first_line.resize(nl);
    return refused("the identity provider refused (" + std::to_string(r->status) + " " + *err +
                   "): " + first_line);
  }
  const std::string* token = body ? body->find_string("access_token") : nullptr;
  if (!token) return refused(token_url + " answered 200 without an access_token");
  if (o.output == "-") {
    std::cout << *token << "\n";
  } else {
    // A bearer token is a credential: owner only, even over an older, readable file.
    if (!write_private_file(o.output, *token)) return refused("cannot write " + o.output);
  }
  auto parsed = jwt::parse(*token);
  std::string what = "a token";
  if (parsed) {
    const std::string* aud = parsed->claims.find_string("aud");
    const std::string* ver = parsed->claims.find_string("ver");
    what = "a v" + (ver ? *ver : std::string("?")) + " token for " + (aud ? *aud : "?");
  }
  const core::Json* expires = body.value().find("expires_in");
  std::cerr << "mcpgate token: " << what;
  if (expires && expires->is_number())
    std::cerr << ", valid " << static_cast<long long>(expires->as_number().value) << " s";
  if (o.output != "-") std::cerr << ", written to " << o.output;
  std::cerr << "\n";
  if (o.show && parsed) {
    core::JsonObject shown;
    shown.emplace_back("header", parsed->header);
    shown.emplace_back("claims", parsed->claims);
    std::cout << core::Json(std::move(shown)).pretty() << "\n";
  }
  return 0;
}

}  // namespace

void add_token_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<TokenOptions>();
  auto* cmd = app.add_subcommand(
      "token", "Get an access token with the client-credentials flow (the lab's Step 3)");
  cmd->add_option("--tenant", o->tenant, "Directory (tenant) ID or domain")->required();
  cmd->add_option("--client-id", o->client_id, "Application (client) ID")->required();
  cmd->add_option("--client-secret", o->client_secret,
                  "Client secret (visible to other local users: prefer the file or "
                  "MCPGATE_CLIENT_SECRET)");
  cmd->add_option("--client-secret-file", o->secret_file, "File holding the client secret");
  cmd->add_option("--certificate", o->certificate, "PEM certificate registered on the app");
  cmd->add_option("--key", o->key, "PEM private key of that certificate");
  cmd->add_option("--scope", o->scope, "Scope to ask for")->capture_default_str();
  cmd->add_option("--authority", o->authority, "Authority (an emulator: https://127.0.0.1:PORT)")
      ->capture_default_str();
  cmd->add_option("--ca-file", o->ca_file, "Trust this PEM bundle (the emulator's CA)");
  cmd->add_option("-o,--output", o->output, "Where to write the token ('-': stdout)")
      ->capture_default_str();
  cmd->add_flag("--show", o->show, "Print the token's decoded header and claims");
  cmd->callback([o, &exit_code] { exit_code = run_token(*o); });
}

}  // namespace mcpgate::app
