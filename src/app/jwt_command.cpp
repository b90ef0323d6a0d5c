#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "app/commands.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/time.hpp"
#include "crypto/base64.hpp"
#include "jwt/entra.hpp"
#include "jwt/signer.hpp"
#include "jwt/validate.hpp"
#include "net/http_client.hpp"

namespace mcpgate::app {
namespace {

struct TokenSource {
  std::string token;  // argument, or "-" for stdin
  std::string file;
};

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path;
    return false;
  }
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Reads the token and trims the whitespace a file or pipe adds (inner whitespace stays, and the
// parser refuses it).
bool load_token(const TokenSource& src, std::string& token, std::string& error) {
  if (!src.file.empty()) {
    if (!read_file(src.file, token, error)) return false;
  } else if (src.token == "-") {
    token.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else if (!src.token.empty()) {
    token = src.token;
  } else {
    error = "no token: give it as an argument, with --token-file, or '-' for stdin";
    return false;
  }
  token = std::string(core::trim(token));
  if (core::istarts_with(token, "Bearer "))
    token = std::string(core::trim(std::string_view(token).substr(7)));
  return true;
}

std::string utc(double t) { return core::format_utc(t, "%Y-%m-%d %H:%M:%S UTC"); }

std::string relative(double t, double now) {
  const double d = t - now;
  const double a = std::fabs(d);
  std::string amount = a < 120      ? std::to_string(static_cast<long>(a)) + "s"
                       : a < 7200   ? std::to_string(static_cast<long>(a / 60)) + "m"
                       : a < 172800 ? std::to_string(static_cast<long>(a / 3600)) + "h"
                                    : std::to_string(static_cast<long>(a / 86400)) + "d";
  return d >= 0 ? "in " + amount : amount + " ago";
}

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int fail_usage(const std::string& message) {
  std::cerr << "mcpgate: " << message << "\n";
  return 2;
}

// ---- decode ---------------------------------------------------------------------------------

struct DecodeOptions {
  TokenSource source;
  bool json = false;
};

int run_decode(const DecodeOptions& o) {
  std::string token, error;
  if (!load_token(o.source, token, error)) return fail_usage(error);
  auto parsed = jwt::parse(token);
  if (!parsed) {
    if (o.json) {
      core::JsonObject out;
      out.emplace_back("error", core::Json(parsed.error().message));
      std::cout << core::Json(std::move(out)).pretty() << "\n";
    } else {
      std::cerr << "mcpgate: cannot decode: " << parsed.error().message << "\n";
    }
    return 1;
  }
  const double now = wall_now();
  if (o.json) {
    core::JsonObject out;
    out.emplace_back("header", parsed->header);
    out.emplace_back("claims", parsed->claims);
    out.emplace_back("signature_bytes",
                     core::Json::number(static_cast<double>(parsed->signature.size())));
    out.emplace_back("verified", core::Json(false));
    std::cout << core::Json(std::move(out)).pretty() << "\n";
    return 0;
  }
  std::cout << "Header:\n"
            << parsed->header.pretty() << "\n\nClaims:\n"
            << parsed->claims.pretty() << "\n\n";
  for (const char* name : {"iat", "nbf", "exp"}) {
    const core::Json* v = parsed->claims.find(name);
    if (!v) continue;
    if (v->is_number()) {
      std::cout << "  " << name << "  " << utc(v->as_number().value) << "  ("
                << relative(v->as_number().value, now) << ")\n";
    } else {
      std::cout << "  " << name << "  not a number\n";
    }
  }
  std::cout << "\nSignature: " << parsed->signature.size() << " bytes, NOT verified "
            << "(decode never checks it; use `mcpgate jwt verify`).\n";
  return 0;
}

// ---- verify ---------------------------------------------------------------------------------

struct VerifyOptions {
  TokenSource source;
  std::vector<std::string> jwks_files;
  std::vector<std::string> jwks_urls;
  std::string openid_config;
  std::string ca_file;
  std::vector<std::string> key_files;
  std::vector<std::string> hmac_secret_files;
  std::vector<std::string> issuers;
  std::vector<std::string> audiences;
  std::vector<std::string> client_ids;
  std::vector<std::string> algorithms;
  std::vector<std::string> require_all;
  std::vector<std::string> require_any;
  std::string claim_separator;
  std::string tenant;
  std::string authority = std::string(jwt::kPublicCloudAuthority);
  double clock_skew = 0;
  double now = 0;
  bool no_require_exp = false;
  bool allow_unsigned = false;
  bool graph = false;
  bool try_all_keys = false;
  bool json = false;
};

bool parse_claim_rule(const std::string& spec, jwt::ClaimRequirement::Match match,
                      const std::string& separator, jwt::Requirements& req, std::string& error) {
  jwt::ClaimRequirement rc;
  rc.match = match;
  rc.separator = separator;
  const auto eq = spec.find('=');
  rc.name = spec.substr(0, eq);
  if (rc.name.empty()) {
    error = "claim rule \"" + spec + "\" has no claim name (use NAME or NAME=V1,V2)";
    return false;
  }
  if (eq != std::string::npos) {
    for (auto v : core::split(std::string_view(spec).substr(eq + 1), ",")) {
      if (!v.empty()) rc.values.emplace_back(v);
    }
  }
  req.claims.push_back(std::move(rc));
  return true;
}

// Fetches a JSON document over HTTP(S); errors say what failed.
bool fetch_json(const std::string& url, const std::string& ca_file, core::Json& out,
                std::string& error) {
  net::FetchOptions options;
  options.ca_file = ca_file;
  auto r = net::fetch(url, options);
  if (!r) {
    error = r.error();
    return false;
  }
  if (r->status != 200) {
    error = url + " answered HTTP " + std::to_string(r->status);
    return false;
  }
  core::JsonLimits limits;
  limits.max_bytes = options.max_body_bytes;
  auto doc = core::parse_json(r->body, limits);
  if (!doc || !doc->is_object()) {
    error = url + " did not answer a JSON object";
    return false;
  }
  out = std::move(doc.value());
  return true;
}

bool add_jwks(const std::string& origin, std::string_view doc, jwt::KeySet& keys,
              std::string& error) {
  std::vector<std::string> warnings;
  auto ks = jwt::KeySet::from_jwks(doc, &warnings);
  if (!ks) {
    error = origin + ": " + ks.error();
    return false;
  }
  for (const auto& w : warnings) std::cerr << "mcpgate: " << origin << ": " << w << "\n";
  for (const auto& k : ks->keys()) keys.add(k);
  return true;
}

int run_verify(const VerifyOptions& o) {
  std::string token, error;
  if (!load_token(o.source, token, error)) return fail_usage(error);

  jwt::KeySet keys;
  for (const auto& path : o.jwks_files) {
    std::string doc;
    if (!read_file(path, doc, error)) return fail_usage(error);
    if (!add_jwks(path, doc, keys, error)) return fail_usage(error);
  }

  // Entra tenant: a domain is resolved to its GUID through the tenant's OpenID configuration,
  // which also names the keys when no other key source is given.
  std::string tenant_id;
  std::string discovered_jwks;
  std::string openid_issuer;
  const bool no_key_source = o.jwks_files.empty() && o.jwks_urls.empty() &&
                             o.openid_config.empty() && o.key_files.empty() &&
                             o.hmac_secret_files.empty();
  std::string config_url = o.openid_config;
  if (!o.tenant.empty()) {
    const std::string name = jwt::EntraRule::tenant_name(o.tenant);
    const bool alias = core::iequals(name, "organizations") || core::iequals(name, "common");
    if ((!core::is_guid(name) && !alias) || (no_key_source && config_url.empty())) {
      auto rule = jwt::EntraRule::make(alias || core::is_guid(name) ? name : "common", o.authority);
      if (!rule) return fail_usage("--tenant: " + rule.error());
      std::string authority = rule->authority();
      const std::string url = authority + "/" + name + "/v2.0/.well-known/openid-configuration";
      core::Json config;
      if (!fetch_json(url, o.ca_file, config, error))
        return fail_usage("tenant discovery: " + error);
      const std::string* issuer = config.find_string("issuer");
      const std::string* jwks_uri = config.find_string("jwks_uri");
      if (!issuer || !jwks_uri) return fail_usage(url + " has no issuer or jwks_uri");
      if (!alias && !core::is_guid(name)) {
        // {authority}/{tid}/v2.0 -> tid
        const auto parts = core::split(*issuer, "/");
        if (parts.size() < 2 || !core::is_guid(parts[parts.size() - 2])) {
          return fail_usage(url + ": issuer " + core::printable(*issuer) + " names no tenant GUID");
        }
        tenant_id = std::string(parts[parts.size() - 2]);
      }
      if (no_key_source && config_url.empty()) discovered_jwks = *jwks_uri;
    }
  }
  if (!config_url.empty()) {
    core::Json config;
    if (!fetch_json(config_url, o.ca_file, config, error))
      return fail_usage("--openid-config: " + error);
    const std::string* jwks_uri = config.find_string("jwks_uri");
    if (!jwks_uri) return fail_usage(config_url + " has no jwks_uri");
    discovered_jwks = *jwks_uri;
    if (const std::string* issuer = config.find_string("issuer")) openid_issuer = *issuer;
  }
  std::vector<std::string> urls = o.jwks_urls;
  if (!discovered_jwks.empty()) urls.push_back(discovered_jwks);
  for (const auto& url : urls) {
    net::FetchOptions options;
    options.ca_file = o.ca_file;
    auto r = net::fetch(url, options);
    if (!r) return fail_usage("keys: " + r.error());
    if (r->status != 200)
      return fail_usage("keys: " + url + " answered HTTP " + std::to_string(r->status));
    if (!add_jwks(url, r->body, keys, error)) return fail_usage(error);
  }
  for (const auto& path : o.key_files) {
    std::string pem;
    if (!read_file(path, pem, error)) return fail_usage(error);
    auto key = crypto::PublicKey::from_pem(pem);
    if (!key) return fail_usage(path + ": " + key.error());
    keys.add(jwt::Jwk{std::move(key.value())});
  }
  for (const auto& path : o.hmac_secret_files) {
    std::string secret;
    if (!read_file(path, secret, error)) return fail_usage(error);
    keys.add(jwt::Jwk{crypto::PublicKey::oct(std::string(core::trim(secret)))});
  }
  if (keys.empty() && !o.allow_unsigned) {
    return fail_usage(
        "no verification keys: give --jwks, --jwks-url, --openid-config, --tenant, --key or "
        "--hmac-secret-file");
  }

  jwt::Requirements req;
  if (!o.algorithms.empty()) {
    req.algorithms = {};
    for (const auto& a : o.algorithms) {
      auto alg = jwt::algorithm_from_name(a);
      if (!alg || *alg == jwt::Algorithm::kNone) return fail_usage("unknown algorithm " + a);
      req.algorithms.add(*alg);
    }
  }
  req.require_signed = !o.allow_unsigned;
  req.issuers = o.issuers;
  // validate-jwt's rule: without <issuers>, an openid-config's issuer is the one allowed.
  if (req.issuers.empty() && o.tenant.empty() && !openid_issuer.empty() &&
      openid_issuer.find("{tenantid}") == std::string::npos) {
    req.issuers.push_back(openid_issuer);
  }
  req.audiences = o.audiences;
  req.client_app_ids = o.client_ids;
  req.require_expiration = !o.no_require_exp;
  req.clock_skew_seconds = o.clock_skew;
  // PEM keys and secrets carry no kid, so a token naming one must still reach them.
  req.try_all_keys_on_kid_miss =
      o.try_all_keys || !o.key_files.empty() || !o.hmac_secret_files.empty();
  req.allow_graph_nonce = o.graph;
  if (!o.tenant.empty()) {
    auto rule = jwt::EntraRule::make(o.tenant, o.authority, tenant_id);
    if (!rule) return fail_usage("--tenant: " + rule.error());
    req.entra = std::move(rule.value());
  }
  for (const auto& spec : o.require_all) {
    if (!parse_claim_rule(spec, jwt::ClaimRequirement::Match::kAll, o.claim_separator, req,
                          error)) {
      return fail_usage(error);
    }
  }
  for (const auto& spec : o.require_any) {
    if (!parse_claim_rule(spec, jwt::ClaimRequirement::Match::kAny, o.claim_separator, req,
                          error)) {
      return fail_usage(error);
    }
  }

  const double now = o.now > 0 ? o.now : wall_now();
  auto result = jwt::validate(token, keys, req, now);
  if (o.json) {
    core::JsonObject out;
    out.emplace_back("valid", core::Json(result.ok()));
    if (result) {
      const auto& v = **result;
      out.emplace_back("alg", core::Json(std::string(jwt::algorithm_name(v.alg))));
      if (const std::string* kid = v.header.find_string("kid"))
        out.emplace_back("kid", core::Json(*kid));
      if (v.entra_version) out.emplace_back("entra_version", core::Json::number(v.entra_version));
      if (v.graph_nonce) out.emplace_back("graph_nonce_rule", core::Json(true));
      out.emplace_back("claims", v.claims);
    } else {
      out.emplace_back("reason", core::Json(std::string(jwt::reason_name(result.error().reason))));
      out.emplace_back("message", core::Json(result.error().message));
    }
    std::cout << core::Json(std::move(out)).pretty() << "\n";
  } else if (result) {
    const auto& v = **result;
    std::cout << "valid: " << jwt::algorithm_name(v.alg) << " token";
    if (const std::string* kid = v.header.find_string("kid"))
      std::cout << ", key \"" << core::printable(*kid) << "\"";
    if (const std::string* iss = v.claims.find_string("iss"))
      std::cout << ", issuer " << core::printable(*iss);
    if (const std::string* sub = v.claims.find_string("sub"))
      std::cout << ", subject " << core::printable(*sub);
    if (v.graph_nonce) std::cout << " (Microsoft Graph nonce rule)";
    std::cout << "\n";
  } else {
    std::cerr << "invalid: " << jwt::reason_name(result.error().reason) << ": "
              << result.error().message << "\n";
  }
  return result ? 0 : 1;
}

// ---- sign -----------------------------------------------------------------------------------

struct SignOptions {
  std::string key_file;
  std::string hmac_secret_file;
  std::string alg = "RS256";
  std::string kid;
  std::string header = "{}";
  std::string claims;
  bool graph = false;
};

int run_sign(const SignOptions& o) {
  std::string error;
  auto read_json = [&](const std::string& spec, const char* what, core::Json& out) {
    std::string text = spec;
    if (!spec.empty() && spec[0] == '@' && !read_file(spec.substr(1), text, error)) return false;
    auto j = core::parse_json(text);
    if (!j || !j->is_object()) {
      error = std::string(what) + " must be a JSON object" + (j ? "" : ": " + j.error());
      return false;
    }
    out = std::move(j.value());
    return true;
  };
  core::Json header, claims;
  if (!read_json(o.header, "--header", header) || !read_json(o.claims, "--claims", claims))
    return fail_usage(error);
  if (!o.kid.empty()) header.as_object().emplace_back("kid", core::Json(o.kid));
  auto alg = jwt::algorithm_from_name(o.alg);
  if (!alg || *alg == jwt::Algorithm::kNone)
    return fail_usage("unknown or unsigned algorithm " + o.alg);
  core::Result<std::string, std::string> token = std::string();
  if (!o.hmac_secret_file.empty()) {
    std::string secret;
    if (!read_file(o.hmac_secret_file, secret, error)) return fail_usage(error);
    token = jwt::sign_hmac(std::move(header), claims, *alg, core::trim(secret));
  } else {
    std::string pem;
    if (o.key_file.empty())
      return fail_usage("give --key (a PEM private key) or --hmac-secret-file");
    if (!read_file(o.key_file, pem, error)) return fail_usage(error);
    auto key = crypto::PrivateKey::from_pem(pem);
    if (!key) return fail_usage(o.key_file + ": " + key.error());
    token = o.graph ? jwt::sign_graph_style(std::move(header), claims, *key)
                    : jwt::sign(std::move(header), claims, *alg, *key);
  }
  if (!token) return fail_usage(token.error());
  std::cout << *token << "\n";
  return 0;
}

}  // namespace

void add_jwt_commands(CLI::App& app, int& exit_code) {
  auto* jwt = app.add_subcommand("jwt", "Decode, verify and sign JSON Web Tokens");
  jwt->require_subcommand(1);

  auto decode = std::make_shared<DecodeOptions>();
  auto* dec = jwt->add_subcommand("decode",
                                  "Show a token's header and claims (never checks the signature)");
  dec->add_option("token", decode->source.token, "The token, or - to read it from stdin");
  dec->add_option("--token-file", decode->source.file, "Read the token from this file");
  dec->add_flag("--json", decode->json, "Print JSON");
  dec->callback([decode, &exit_code] { exit_code = run_decode(*decode); });

  auto verify = std::make_shared<VerifyOptions>();
  auto* ver = jwt->add_subcommand(
      "verify", "Validate a token: signature, lifetime, issuer, audience, claims");
  ver->add_option("token", verify->source.token, "The token, or - to read it from stdin");
  ver->add_option("--token-file", verify->source.file, "Read the token from this file");
  ver->add_option("--jwks", verify->jwks_files,
                  "JWKS file with the verification keys (repeatable)");
  ver->add_option("--jwks-url", verify->jwks_urls, "JWKS URL (repeatable)");
  ver->add_option("--openid-config", verify->openid_config,
                  "OpenID configuration URL: keys from its jwks_uri; its issuer is required unless "
                  "--issuer/--tenant");
  ver->add_option("--ca-file", verify->ca_file,
                  "PEM bundle to trust for HTTPS fetches instead of the system store");
  ver->add_option("--key", verify->key_files,
                  "PEM public key or certificate (repeatable; tried whatever the kid)");
  ver->add_option("--hmac-secret-file", verify->hmac_secret_files,
                  "File holding an HS* secret (repeatable)");
  ver->add_option("--issuer", verify->issuers, "Allowed issuer, exact (repeatable)");
  ver->add_option("--audience", verify->audiences, "Allowed audience (repeatable)");
  ver->add_option("--client-id", verify->client_ids,
                  "Allowed client application id: appid (v1) or azp (v2)");
  ver->add_option("--tenant", verify->tenant,
                  "Entra tenant (GUID, domain, organizations or common): checks iss, tid and ver; "
                  "without another "
                  "key source the keys come from the tenant's OpenID configuration");
  ver->add_option("--authority", verify->authority, "Entra authority host for v2 issuers")
      ->capture_default_str();
  ver->add_option("--alg", verify->algorithms,
                  "Allowed algorithm (repeatable; default every signed one)");
  ver->add_option("--clock-skew", verify->clock_skew, "Allowed clock skew in seconds")
      ->capture_default_str();
  ver->add_option("--require-claim", verify->require_all,
                  "NAME or NAME=V1,V2: claim must hold all values");
  ver->add_option("--require-any-claim", verify->require_any,
                  "NAME=V1,V2: claim must hold one of the values");
  ver->add_option("--claim-separator", verify->claim_separator,
                  "Split string claims on this (e.g. ' ' for scp)");
  ver->add_flag("--no-require-exp", verify->no_require_exp, "Accept tokens without exp");
  ver->add_flag("--allow-unsigned", verify->allow_unsigned,
                "Accept alg none (never in production)");
  ver->add_flag("--graph-nonce", verify->graph, "Accept Microsoft Graph tokens by the nonce rule");
  ver->add_flag("--try-all-keys", verify->try_all_keys,
                "When no key matches the kid, try every key");
  ver->add_option("--now", verify->now, "Validate as of this Unix time (tests)")->group("");
  ver->add_flag("--json", verify->json, "Print JSON");
  ver->callback([verify, &exit_code] { exit_code = run_verify(*verify); });

  auto sign = std::make_shared<SignOptions>();
  auto* sg = jwt->add_subcommand("sign", "Sign claims into a token (tests and development)");
  sg->add_option("--key", sign->key_file, "PEM private key");
  sg->add_option("--hmac-secret-file", sign->hmac_secret_file, "File holding an HS* secret");
  sg->add_option("--alg", sign->alg, "Algorithm")->capture_default_str();
  sg->add_option("--kid", sign->kid, "Key id for the header");
  sg->add_option("--header", sign->header, "Extra header members: JSON object or @file");
  sg->add_option("--claims", sign->claims, "Claims: JSON object or @file")->required();
  sg->add_flag("--graph-nonce", sign->graph, "Sign Microsoft Graph style (header needs a nonce)");
  sg->callback([sign, &exit_code] { exit_code = run_sign(*sign); });
}

}  // namespace mcpgate::app
