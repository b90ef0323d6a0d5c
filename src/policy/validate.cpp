#include "policy/validate.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <optional>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "crypto/base64.hpp"
#include "http/message.hpp"
#include "jwt/issuer_requirements.hpp"
#include "jwt/validate.hpp"

namespace mcpgate::policy {

namespace {

const std::string* attr(const Element& e, std::string_view name) {
  const Attribute* a = e.attribute(name);
  return a ? &a->value.text : nullptr;
}

const Element* child(const Element& e, std::string_view name) {
  for (const auto& c : e.children) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> texts(const Element& e, std::string_view list, std::string_view item) {
  std::vector<std::string> out;
  for (const auto& c : e.children) {
    if (c.name != list) continue;
    for (const auto& i : c.children) {
      if (i.name == item && i.text) out.emplace_back(core::trim(i.text->text));
    }
  }
  return out;
}

std::vector<jwt::ClaimRequirement> claims(const Element& e) {
  std::vector<jwt::ClaimRequirement> out;
  const Element* rc = child(e, "required-claims");
  if (!rc) return out;
  for (const auto& c : rc->children) {
    jwt::ClaimRequirement r;
    r.name = *attr(c, "name");
    if (const auto* m = attr(c, "match"); m && core::iequals(*m, "any"))
      r.match = jwt::ClaimRequirement::Match::kAny;
    if (const auto* s = attr(c, "separator")) r.separator = *s;
    for (const auto& v : c.children) r.values.push_back(v.text ? v.text->text : std::string());
    out.push_back(std::move(r));
  }
  return out;
}

// Where the token is and how it is written there.
struct TokenSource {
  std::string header;  // empty: from the query
  std::string query;
  std::string scheme;        // require-scheme (validate-jwt, Authorization only)
  bool bearer_only = false;  // validate-azure-ad-token: Authorization must say Bearer
};

// The token, nothing when none was sent; `malformed` when the header is there but unusable. A
// token from a header is a view of the request's field (no copy: it is a kilobyte or more); one
// from the query is decoded into `storage`.
std::optional<std::string_view> extract(const Context& ctx, const TokenSource& src, bool& malformed,
                                        std::string& storage) {
  malformed = false;
  if (!src.header.empty()) {
    if (!ctx.request_headers) return std::nullopt;
    const auto line = ctx.request_headers->first(src.header);
    if (!line) return std::nullopt;
    std::string_view v = core::trim(*line);
    if (v.empty()) return std::nullopt;
    if (core::iequals(src.header, "Authorization")) {
      const std::string_view scheme =
          src.scheme.empty() ? std::string_view("Bearer") : std::string_view(src.scheme);
      if (v.size() > scheme.size() && core::istarts_with(v, scheme) && v[scheme.size()] == ' ') {
        v = core::trim(v.substr(scheme.size() + 1));
      } else if (!src.scheme.empty() || src.bearer_only) {
        malformed = true;
        return std::string_view();
      }
    }
    if (v.empty()) return std::nullopt;
    return v;
  }
  for (auto part : core::split(ctx.query, "&")) {
    const auto eq = part.find('=');
    const auto name = http::url_decode(part.substr(0, eq), true);
    if (!name || *name != src.query) continue;
    if (eq == std::string_view::npos) return std::nullopt;
    auto value = http::url_decode(part.substr(eq + 1), true);
    if (!value) {
      malformed = true;
      return std::string_view();
    }
    if (value->empty()) return std::nullopt;
    storage = std::move(*value);
    return std::string_view(storage);
  }
  return std::nullopt;
}

double now_seconds(const CompileEnv& env) {
  if (env.now) return env.now();
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The parts both policies share: where the token is, how failures answer, what success leaves.
class Validator : public Policy {
 protected:
  Validator(const Element& e, const CompileEnv& env, std::string_view source)
      : env_(env), source_name_(source) {
    if (const auto* c = attr(e, "failed-validation-httpcode")) status_ = std::stoi(*c);
    if (const auto* m = attr(e, "failed-validation-error-message")) message_ = *m;
    if (const auto* v = attr(e, "output-token-variable-name")) output_ = *v;
  }

  Flow refuse(Context& ctx, jwt::Reason reason, std::string message) const {
    LastError e;
    e.source = std::string(source_name_);
    e.reason = std::string(jwt::reason_name(reason));
    e.message = std::move(message);  // the token core's messages never hold the token
    e.log_message = true;
    e.status = status_;
    e.response_message = !message_.empty()                         ? message_
                         : reason == jwt::Reason::kTokenNotPresent ? "JWT not present."
                                                                   : "Invalid JWT.";
    ctx.validations.emplace_back(source_name_, jwt::reason_name(reason));
    ctx.error = std::move(e);
    return Flow::kError;
  }

  Flow accept(Context& ctx, jwt::VerifiedTokenPtr token) const {
    ctx.validations.emplace_back(source_name_, "valid");
    if (!output_.empty()) ctx.variables[output_] = token->claims.dump();
    ctx.token = std::move(token);
    return Flow::kContinue;
  }

  // What neither policy can take yet: refused at load.
  static core::Result<int, std::string> unsupported_inputs(const Element& e) {
    if (attr(e, "token-value"))
      return core::fail(
          std::string("token-value takes a policy expression, and expressions are "
                      "not supported yet"));
    if (child(e, "decryption-keys"))
      return core::fail(std::string("decryption-keys (encrypted tokens) are not supported yet"));
    return 0;
  }

  // The token, or the refusal when there is none (or it cannot be read) in `flow`. A view:
  // into the request's fields, or into `storage`.
  std::optional<std::string_view> token_or_refuse(Context& ctx, Flow& flow,
                                                  std::string& storage) const {
    bool malformed = false;
    auto token = extract(ctx, token_, malformed, storage);
    if (malformed) {
      flow = refuse(ctx, jwt::Reason::kJwtInvalid,
                    token_.header + " does not carry a " +
                        (token_.scheme.empty() ? std::string("Bearer") : token_.scheme) + " token");
      return std::nullopt;
    }
    if (!token) flow = refuse(ctx, jwt::Reason::kTokenNotPresent, "JWT not present.");
    return token;
  }

  // Waits once per request for fresh keys from every source in `sources`.
  static Flow wait_for(Context& ctx, std::vector<std::shared_ptr<jwt::KeySource>> sources) {
    ++ctx.key_waits;
    ctx.pending = [sources = std::move(sources)](std::function<void()> resume) {
      auto left = std::make_shared<std::atomic<std::size_t>>(sources.size());
      auto shared_resume = std::make_shared<std::function<void()>>(std::move(resume));
      for (const auto& s : sources) {
        s->refresh([left, shared_resume] {
          if (--*left == 0) (*shared_resume)();
        });
      }
    };
    return Flow::kPending;
  }

  CompileEnv env_;                // a copy: policies outlive the compile call
  std::string_view source_name_;  // a literal
  TokenSource token_;
  int status_ = 401;
  std::string message_;
  std::string output_;
};

class ValidateAzureAdToken final : public Validator {
 public:
  ValidateAzureAdToken(const Element& e, const CompileEnv& env)
      : Validator(e, env, "validate-azure-ad-token") {}

  core::Result<int, std::string> init(const Element& e) {
    if (auto r = unsupported_inputs(e); !r) return r;
    token_.header = "Authorization";
    token_.bearer_only = true;
    if (const auto* h = attr(e, "header-name")) token_.header = *h;
    if (const auto* q = attr(e, "query-parameter-name")) {
      token_.header.clear();
      token_.query = *q;
    }
    endpoint_ = attr(e, "authentication-endpoint") ? *attr(e, "authentication-endpoint")
                                                   : env_.default_authority;
    tenant_ = jwt::EntraRule::tenant_name(*attr(e, "tenant-id"));
    const bool alias = core::iequals(tenant_, "organizations") || core::iequals(tenant_, "common");
    auto authority = jwt::EntraRule::make("common", endpoint_);
    if (!authority) return core::fail("authentication-endpoint: " + authority.error());
    if (alias || core::is_guid(tenant_)) {
      auto rule = jwt::EntraRule::make(tenant_, endpoint_);
      if (!rule) return core::fail("tenant-id: " + rule.error());
      rule_ = std::move(rule.value());
      base_.entra = rule_;
    } else if (tenant_.empty() || tenant_.find_first_of("/?# ") != std::string::npos) {
      return core::fail("tenant-id \"" + *attr(e, "tenant-id") +
                        "\" is not a tenant GUID, domain, organizations or common");
    }
    const std::string url =
        authority->authority() + "/" + tenant_ + "/v2.0/.well-known/openid-configuration";
    if (!env_.key_source || !env_.token_cache)
      return core::fail(std::string("token validation needs the gateway's key service"));
    keys_ = env_.key_source(url);
    base_.algorithms = jwt::AlgorithmSet::entra();
    base_.audiences = texts(e, "audiences", "audience");
    const auto backend_ids = texts(e, "backend-application-ids", "application-id");
    base_.audiences.insert(base_.audiences.end(), backend_ids.begin(), backend_ids.end());
    base_.client_app_ids = texts(e, "client-application-ids", "application-id");
    base_.claims = claims(e);
    base_.allow_graph_nonce = true;
    if (base_.audiences.empty() && base_.client_app_ids.empty())
      return core::fail(
          std::string("<validate-azure-ad-token> needs client-application-ids or "
                      "audiences: without them any application's token would pass"));
    if (rule_) fixed_.emplace(base_);
    return 0;
  }

  Flow apply(Context& ctx) const override {
    Flow refused = Flow::kError;
    std::string storage;
    const auto token = token_or_refuse(ctx, refused, storage);
    if (!token) return refused;
    const auto& snap = keys_->snapshot();
    if (!snap->keys) {
      if (ctx.key_waits == 0) return wait_for(ctx, {keys_});
      return refuse(ctx, jwt::Reason::kTokenSignatureKeyNotFound,
                    "no signing keys from " + keys_->url() +
                        (snap->error.empty() ? std::string() : ": " + snap->error));
    }
    const double now = now_seconds(env_);
    // A tenant GUID or alias: the requirements are fixed at load, and what passed under them is
    // remembered with the token.
    if (fixed_)
      return decide(ctx,
                    jwt::validate_cached(*token, *snap->keys, *fixed_, now, *env_.token_cache));
    // A domain: the tenant's GUID is in its discovery document's issuer ({authority}/{tid}/v2.0).
    std::optional<jwt::FixedRequirements> spare;
    const auto for_domain = for_issuer_.get(
        snap->issuer,
        [&]() -> core::Result<jwt::Requirements, std::string> {
          const auto parts = core::split(snap->issuer, "/");
          const std::string tid = parts.size() >= 2 ? std::string(parts[parts.size() - 2]) : "";
          auto rule = jwt::EntraRule::make(tenant_, endpoint_, tid);
          if (!rule) return core::fail("tenant " + tenant_ + ": " + rule.error());
          jwt::Requirements r = base_;
          r.entra = std::move(rule.value());
          return r;
        },
        spare);
    if (!for_domain) return refuse(ctx, jwt::Reason::kTokenIssuerNotAllowed, for_domain.error());
    return decide(ctx,
                  jwt::validate_cached(*token, *snap->keys, **for_domain, now, *env_.token_cache));
  }

 private:
  Flow decide(Context& ctx, jwt::ValidationResult result) const {
    if (!result) {
      if (result.error().reason == jwt::Reason::kTokenSignatureKeyNotFound && ctx.key_waits == 0)
        return wait_for(ctx, {keys_});
      return refuse(ctx, result.error().reason, result.error().message);
    }
    return accept(ctx, std::move(result.value()));
  }

  std::string endpoint_;
  std::string tenant_;
  std::optional<jwt::EntraRule> rule_;  // set unless the tenant is a domain
  std::shared_ptr<jwt::KeySource> keys_;
  jwt::Requirements base_;
  std::optional<jwt::FixedRequirements> fixed_;  // base_, when rule_ is set
  jwt::IssuerRequirements for_issuer_;           // base_ for a domain's tenant, when it is not
};

class ValidateJwt final : public Validator {
 public:
  ValidateJwt(const Element& e, const CompileEnv& env) : Validator(e, env, "validate-jwt") {}

  core::Result<int, std::string> init(const Element& e) {
    if (auto r = unsupported_inputs(e); !r) return r;
    if (const auto* h = attr(e, "header-name")) token_.header = *h;
    if (const auto* q = attr(e, "query-parameter-name")) token_.query = *q;
    // require-scheme applies to the Authorization header only (ignored for custom headers).
    if (const auto* s = attr(e, "require-scheme");
        s && core::iequals(token_.header, "Authorization"))
      token_.scheme = *s;
    base_.algorithms = jwt::AlgorithmSet::apim_validate_jwt();
    if (const auto* v = attr(e, "require-expiration-time"))
      base_.require_expiration = core::iequals(*v, "true");
    if (const auto* v = attr(e, "require-signed-tokens"))
      base_.require_signed = core::iequals(*v, "true");
    if (const auto* v = attr(e, "clock-skew")) base_.clock_skew_seconds = std::stod(*v);
    base_.audiences = texts(e, "audiences", "audience");
    base_.issuers = texts(e, "issuers", "issuer");
    base_.claims = claims(e);
    // Inline keys: base64 text is a symmetric key; n and e an RSA key (apim-policies.md §3.3).
    core::JsonArray jwks;
    for (const auto& c : e.children) {
      if (c.name == "openid-config") {
        if (!env_.key_source || !env_.token_cache)
          return core::fail(std::string("token validation needs the gateway's key service"));
        sources_.emplace_back().keys = env_.key_source(*attr(c, "url"));
        continue;
      }
      if (c.name != "issuer-signing-keys") continue;
      for (const auto& k : c.children) {
        core::JsonObject jwk;
        if (k.attribute("certificate-id"))
          return core::fail(
              std::string("certificate-id keys need a certificate store, which "
                          "mcpgate does not have yet; use n and e"));
        if (k.attribute("n")) {
          jwk.emplace_back("kty", core::Json(std::string("RSA")));
          jwk.emplace_back("n", core::Json(*attr(k, "n")));
          jwk.emplace_back("e", core::Json(*attr(k, "e")));
        } else {
          crypto::Base64Options o;
          o.skip_whitespace = true;
          const auto secret = crypto::base64_decode(core::trim(k.text->text), o);
          if (!secret || secret->empty())
            return core::fail("line " + std::to_string(k.line) +
                              ": a symmetric <key> must be base64 text");
          jwk.emplace_back("kty", core::Json(std::string("oct")));
          jwk.emplace_back("k", core::Json(crypto::base64url_encode(*secret)));
        }
        if (const auto* id = attr(k, "id")) jwk.emplace_back("kid", core::Json(*id));
        jwks.emplace_back(core::Json(std::move(jwk)));
      }
    }
    if (!jwks.empty()) {
      core::JsonObject doc;
      doc.emplace_back("keys", core::Json(std::move(jwks)));
      std::vector<std::string> warnings;
      auto ks = jwt::KeySet::from_jwks(core::Json(std::move(doc)).dump(), &warnings);
      if (!ks) return core::fail("issuer-signing-keys: " + ks.error());
      if (!warnings.empty()) return core::fail("issuer-signing-keys: " + warnings.front());
      inline_keys_ = std::make_shared<const jwt::KeySet>(std::move(ks.value()));
      base_.try_all_keys_on_kid_miss = true;
    }
    if (!inline_keys_ && sources_.empty())
      return core::fail(std::string("<validate-jwt> needs openid-config or issuer-signing-keys"));
    if (!env_.token_cache)
      return core::fail(std::string("token validation needs the gateway's key service"));
    fixed_.emplace(base_);
    return 0;
  }

  Flow apply(Context& ctx) const override {
    Flow refused = Flow::kError;
    std::string storage;
    const auto token = token_or_refuse(ctx, refused, storage);
    if (!token) return refused;
    const double now = now_seconds(env_);
    std::optional<jwt::ValidationError> last;
    if (inline_keys_) {
      auto r = jwt::validate_cached(*token, *inline_keys_, *fixed_, now, *env_.token_cache);
      if (r) return accept(ctx, std::move(r.value()));
      last = r.error();
    }
    std::vector<std::shared_ptr<jwt::KeySource>> stale;
    for (const auto& s : sources_) {
      const auto& snap = s.keys->snapshot();
      if (!snap->keys) {
        stale.push_back(s.keys);
        continue;
      }
      std::optional<jwt::FixedRequirements> spare;
      auto r = jwt::validate_cached(*token, *snap->keys, requirements_for(s, snap->issuer, spare),
                                    now, *env_.token_cache);
      if (r) return accept(ctx, std::move(r.value()));
      if (r.error().reason == jwt::Reason::kTokenSignatureKeyNotFound) stale.push_back(s.keys);
      if (!last || last->reason == jwt::Reason::kTokenSignatureKeyNotFound) last = r.error();
    }
    if (!stale.empty() && ctx.key_waits == 0) return wait_for(ctx, std::move(stale));
    if (!last) {
      std::string why = "no signing keys";
      for (const auto& s : sources_) {
        const auto& snap = s.keys->snapshot();
        if (!snap->error.empty()) why += " (" + s.keys->url() + ": " + snap->error + ")";
      }
      return refuse(ctx, jwt::Reason::kTokenSignatureKeyNotFound, why);
    }
    return refuse(ctx, last->reason, last->message);
  }

 private:
  struct Source {
    std::shared_ptr<jwt::KeySource> keys;
    jwt::IssuerRequirements for_issuer;  // used when <issuers> is absent
  };

  // Without <issuers>, the configuration's issuer is the one allowed (apim-policies.md §3.5).
  // `spare` holds requirements made for this call only (see IssuerRequirements).
  const jwt::FixedRequirements& requirements_for(
      const Source& s, const std::string& issuer,
      std::optional<jwt::FixedRequirements>& spare) const {
    if (!base_.issuers.empty() || issuer.empty()) return *fixed_;
    const auto allow_issuer = [&]() -> core::Result<jwt::Requirements, std::string> {
      jwt::Requirements r = base_;
      r.issuers.push_back(issuer);
      return r;
    };
    return *s.for_issuer.get(issuer, allow_issuer, spare).value();
  }

  std::shared_ptr<const jwt::KeySet> inline_keys_;
  std::deque<Source> sources_;  // a deque: a Source does not move
  jwt::Requirements base_;
  std::optional<jwt::FixedRequirements> fixed_;  // base_ as loaded
};

}  // namespace

core::Result<std::shared_ptr<Policy>, std::string> make_validate_azure_ad_token(
    const Element& e, const CompileEnv& env) {
  auto p = std::make_shared<ValidateAzureAdToken>(e, env);
  if (auto r = p->init(e); !r) return core::fail(r.error());
  return std::shared_ptr<Policy>(std::move(p));
}

core::Result<std::shared_ptr<Policy>, std::string> make_validate_jwt(const Element& e,
                                                                     const CompileEnv& env) {
  auto p = std::make_shared<ValidateJwt>(e, env);
  if (auto r = p->init(e); !r) return core::fail(r.error());
  return std::shared_ptr<Policy>(std::move(p));
}

std::string entra_v2_authority(const Pipeline& pipeline, std::string_view default_authority) {
  for (const auto& step : pipeline.sections[0]) {
    const Element& e = *step.element;
    if (e.name != "validate-azure-ad-token") continue;
    const std::string* endpoint = attr(e, "authentication-endpoint");
    auto authority =
        jwt::EntraRule::make("common", endpoint ? *endpoint : std::string(default_authority));
    const std::string* tenant = attr(e, "tenant-id");
    if (!authority || !tenant) return {};
    return authority->authority() + "/" + jwt::EntraRule::tenant_name(*tenant) + "/v2.0";
  }
  return {};
}

}  // namespace mcpgate::policy
