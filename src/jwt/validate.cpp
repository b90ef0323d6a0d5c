#include "jwt/validate.hpp"

#include <algorithm>
#include <cmath>

#include "core/strings.hpp"
#include "core/time.hpp"
#include "jwt/cache.hpp"

namespace mcpgate::jwt {
namespace {

using core::fail;

core::Failure<ValidationError> error(Reason reason, std::string message) {
  return fail(ValidationError{reason, std::move(message)});
}

std::string format_time(double t) { return core::format_utc(t); }

// RFC 7519 §2 NumericDate: a JSON number of seconds; fractions allowed. Strings, negatives,
// non-finite and absurdly large values are refused.
core::Result<double, ValidationError> numeric_date(const core::Json& v, const char* name) {
  if (!v.is_number()) {
    return error(Reason::kJwtInvalid,
                 std::string(name) + " is not a NumericDate (it must be a JSON number of seconds)");
  }
  const double d = v.as_number().value;
  if (!std::isfinite(d) || d < 0 || d > kMaxNumericDate) {
    return error(Reason::kJwtInvalid, std::string(name) + " is out of range (" +
                                          core::printable(v.as_number().text, 30) + ")");
  }
  return d;
}

struct SignatureCheck {
  const Jwk* key = nullptr;
  bool graph_nonce = false;
};

std::string describe_key(const Jwk& k) {
  return k.kid.empty() ? std::string("the key without kid")
                       : "key \"" + core::printable(k.kid, 60) + "\"";
}

core::Result<SignatureCheck, ValidationError> check_signature(const Token& t, const KeySet& keys,
                                                              const Requirements& req) {
  if (t.alg == Algorithm::kNone) {
    if (req.require_signed) {
      return error(Reason::kTokenSignatureInvalid,
                   "token is not signed (alg \"none\") and signed tokens are required");
    }
    return SignatureCheck{};
  }
  if (!req.algorithms.contains(t.alg)) {
    return error(Reason::kTokenSignatureInvalid, "algorithm " + std::string(algorithm_name(t.alg)) +
                                                     " is not allowed by this policy");
  }
  std::vector<const Jwk*> candidates;
  const auto sel = keys.select(t.alg, t.kid(), t.x5t(), req.try_all_keys_on_kid_miss, candidates);
  if (sel == KeySet::Selection::kKidNotFound) {
    const std::string_view name = t.kid().empty() ? t.x5t() : t.kid();
    for (const auto& k : keys.keys()) {
      if (k.kid == name) {
        return error(Reason::kTokenSignatureInvalid, describe_key(k) + " cannot verify " +
                                                         std::string(algorithm_name(t.alg)) +
                                                         " (its type or alg does not fit)");
      }
    }
    return error(Reason::kTokenSignatureKeyNotFound,
                 "no signing key with kid \"" + core::printable(name, 60) + "\" among " +
                     std::to_string(keys.keys().size()) + " keys (unknown or rotated key)");
  }
  if (sel == KeySet::Selection::kNoKeyFitsAlgorithm) {
    return error(Reason::kTokenSignatureKeyNotFound,
                 "no signing key can verify " + std::string(algorithm_name(t.alg)) + " tokens");
  }
  std::optional<std::string> graph_input;
  if (req.allow_graph_nonce) graph_input = graph_nonce_signing_input(t.header_json, t.payload_b64);
  const std::string_view input = graph_input ? std::string_view(*graph_input) : t.signing_input;
  const AlgorithmSpec spec = algorithm_spec(t.alg);
  for (const Jwk* k : candidates) {
    if (crypto::verify(k->key, spec.scheme, spec.hash, input, t.signature)) {
      return SignatureCheck{k, graph_input.has_value()};
    }
  }
  std::string message = candidates.size() == 1
                            ? "signature does not verify with " + describe_key(*candidates.front())
                            : "signature does not verify with any of the " +
                                  std::to_string(candidates.size()) + " candidate keys";
  if (t.header.find("nonce") && !req.allow_graph_nonce) {
    message +=
        " (the token has a \"nonce\" header: Microsoft Graph tokens cannot be validated here)";
  }
  return error(Reason::kTokenSignatureInvalid, std::move(message));
}

// Entra publishes a per-key issuer (possibly the {tenantid} template); a v2 token must come from
// the issuer its key is published for (entra-id.md §2.4.3).
std::optional<ValidationError> check_key_issuer(const Jwk* key, const core::Json& claims,
                                                const Requirements& req, int version) {
  if (!key || !req.entra || version != 2 || key->issuer.empty()) return std::nullopt;
  const std::string* iss = claims.find_string("iss");
  const std::string* tid = claims.find_string("tid");
  std::string expected = key->issuer;
  if (const auto p = expected.find("{tenantid}"); p != std::string::npos && tid) {
    expected.replace(p, 10, *tid);
  }
  if (!iss || *iss != expected) {
    return ValidationError{Reason::kTokenIssuerNotAllowed,
                           "signing key is published for issuer \"" + core::printable(expected) +
                               "\", not \"" + (iss ? core::printable(*iss) : std::string()) + "\""};
  }
  return std::nullopt;
}

std::vector<std::string> claim_values(const core::Json& v, const std::string& separator) {
  std::vector<std::string> out;
  auto add_scalar = [&](const core::Json& x) {
    if (x.is_string()) {
      if (separator.empty()) {
        out.push_back(x.as_string());
      } else {
        for (auto part : core::split(x.as_string(), separator)) {
          if (!part.empty()) out.emplace_back(part);
        }
      }
    } else if (x.is_number()) {
      out.push_back(x.as_number().text);
    } else if (x.is_bool()) {
      out.emplace_back(x.as_bool() ? "true" : "false");
    }
  };
  if (v.is_array()) {
    for (const auto& item : v.as_array()) add_scalar(item);
  } else {
    add_scalar(v);
  }
  return out;
}

const Jwk* find_by_fingerprint(const KeySet& keys, std::string_view fingerprint) {
  for (const auto& k : keys.keys()) {
    if (k.key.fingerprint() == fingerprint) return &k;
  }
  return nullptr;
}

}  // namespace

std::string_view client_application(const VerifiedToken& token) {
  const std::string* app = token.claims.find_string(token.entra_version == 1 ? "appid" : "azp");
  if (!app) app = token.claims.find_string("appid");
  return app ? std::string_view(*app) : std::string_view();
}

core::Result<int, ValidationError> check_claims(const core::Json& claims, const Requirements& req,
                                                double now) {
  const double skew = req.clock_skew_seconds;
  if (const core::Json* exp = claims.find("exp")) {
    auto e = numeric_date(*exp, "exp");
    if (!e) return fail(std::move(e).error());
    if (now >= *e + skew) {
      return error(Reason::kTokenExpired, "token expired at " + format_time(*e) + " (now " +
                                              format_time(now) + ", clock skew " +
                                              std::to_string(static_cast<long>(skew)) + "s)");
    }
  } else if (req.require_expiration) {
    return error(Reason::kJwtInvalid,
                 "token has no expiration time (exp) and this policy requires one");
  }
  if (const core::Json* nbf = claims.find("nbf")) {
    auto n = numeric_date(*nbf, "nbf");
    if (!n) return fail(std::move(n).error());
    if (now + skew < *n) {
      return error(Reason::kJwtInvalid, "token is not valid before " + format_time(*n) + " (now " +
                                            format_time(now) + ")");
    }
  }
  if (const core::Json* iat = claims.find("iat")) {
    auto i = numeric_date(*iat, "iat");
    if (!i) return fail(std::move(i).error());
  }

  int version = 0;
  if (req.entra) {
    auto v = req.entra->check(claims);
    if (!v) return fail(std::move(v).error());
    version = *v;
  }
  if (!req.issuers.empty()) {
    const std::string* iss = claims.find_string("iss");
    if (!iss) return error(Reason::kTokenIssuerNotAllowed, "token has no issuer (iss)");
    bool ok = false;
    for (const auto& allowed : req.issuers) ok = ok || allowed == *iss;
    if (!ok)
      return error(Reason::kTokenIssuerNotAllowed,
                   "issuer \"" + core::printable(*iss) + "\" is not allowed");
  }

  if (!req.audiences.empty()) {
    const core::Json* aud = claims.find("aud");
    if (!aud) return error(Reason::kTokenAudienceNotAllowed, "token has no audience (aud)");
    const auto allowed = [&](const core::Json& a) {
      if (!a.is_string()) return false;
      for (const auto& want : req.audiences) {
        if (a.as_string() == want) return true;
      }
      return false;
    };
    bool ok = false;
    if (aud->is_array()) {
      for (const auto& a : aud->as_array()) ok = ok || allowed(a);
    } else {
      ok = allowed(*aud);
    }
    if (!ok) {
      const core::Json* first =
          aud->is_array() && !aud->as_array().empty() ? &aud->as_array()[0] : aud;
      return error(Reason::kTokenAudienceNotAllowed,
                   "audience " +
                       (first->is_string() ? "\"" + core::printable(first->as_string()) + "\""
                                           : std::string("(none)")) +
                       " is not one of the " + std::to_string(req.audiences.size()) +
                       " allowed audiences");
    }
  }

  if (!req.client_app_ids.empty()) {
    std::string_view claim_name;
    if (version) {
      claim_name = EntraRule::client_claim(version);
    } else {
      const std::string* ver = claims.find_string("ver");
      claim_name = ver && *ver == "1.0"   ? "appid"
                   : ver && *ver == "2.0" ? "azp"
                   : claims.find("azp")   ? "azp"
                                          : "appid";
    }
    const std::string* client = claims.find_string(claim_name);
    if (!client) {
      return error(Reason::kTokenClaimNotFound, "token has no " + std::string(claim_name) +
                                                    " claim naming the client application");
    }
    bool ok = false;
    for (const auto& id : req.client_app_ids) ok = ok || core::iequals(id, *client);
    if (!ok) {
      return error(Reason::kTokenClaimValueNotAllowed,
                   "client application " + std::string(claim_name) + " \"" +
                       core::printable(*client, 60) + "\" is not allowed");
    }
  }

  std::vector<std::string> missing;
  for (const auto& rc : req.claims) {
    const core::Json* v = claims.find(rc.name);
    if (!v) {
      missing.push_back(rc.name);
      continue;
    }
    if (rc.values.empty()) continue;
    const auto have = claim_values(*v, rc.separator);
    auto has = [&](const std::string& want) {
      for (const auto& h : have) {
        if (h == want) return true;
      }
      return false;
    };
    bool ok = rc.match == ClaimRequirement::Match::kAll;
    for (const auto& want : rc.values) {
      if (rc.match == ClaimRequirement::Match::kAll) {
        ok = ok && has(want);
      } else {
        ok = ok || has(want);
      }
    }
    if (!ok) {
      std::string shown;
      for (const auto& h : have) shown += (shown.empty() ? "" : ",") + h;
      return error(Reason::kTokenClaimValueNotAllowed,
                   "claim " + rc.name + " value of " + core::printable(shown, 120) +
                       " is not allowed (needs " +
                       (rc.match == ClaimRequirement::Match::kAll ? "all" : "any") +
                       " of the listed values)");
    }
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + core::printable(m, 60);
    return error(Reason::kTokenClaimNotFound, "token is missing the following claims: " + list);
  }
  return version;
}

namespace {

// `owned` tokens give their header and claims to the result instead of copying them.
ValidationResult validate_token(const Token& token, Token* owned, const KeySet& keys,
                                const Requirements& req, double now) {
  auto sig = check_signature(token, keys, req);
  if (!sig) return fail(std::move(sig).error());
  auto version = check_claims(token.claims, req, now);
  if (!version) return fail(std::move(version).error());
  if (auto e = check_key_issuer(sig->key, token.claims, req, *version)) return fail(std::move(*e));
  auto out = std::make_shared<VerifiedToken>();
  if (owned) {
    out->header = std::move(owned->header);
    out->claims = std::move(owned->claims);
  } else {
    out->header = token.header;
    out->claims = token.claims;
  }
  out->alg = token.alg;
  out->key_fingerprint = sig->key ? sig->key->key.fingerprint() : std::string();
  out->graph_nonce = sig->graph_nonce;
  out->entra_version = *version;
  // check_claims has read both as NumericDates by now.
  if (const core::Json* exp = out->claims.find("exp")) out->expires = exp->as_number().value;
  if (const core::Json* nbf = out->claims.find("nbf")) out->not_before = nbf->as_number().value;
  return VerifiedTokenPtr(std::move(out));
}

}  // namespace

ValidationResult validate(const Token& token, const KeySet& keys, const Requirements& req,
                          double now) {
  return validate_token(token, nullptr, keys, req, now);
}

ValidationResult validate(std::string_view compact, const KeySet& keys, const Requirements& req,
                          double now, const ParseLimits& limits) {
  auto token = parse(compact, limits);
  if (!token) return fail(std::move(token).error());
  return validate_token(*token, &token.value(), keys, req, now);
}

namespace {

// check_claims' lifetime test, on the numbers a passed token kept: the same comparisons.
bool within_lifetime(const VerifiedToken& t, const Requirements& req, double now) {
  const double skew = req.clock_skew_seconds;
  return !(now >= t.expires + skew) && !(now + skew < t.not_before);
}

ValidationResult validate_cached(std::string_view compact, const KeySet& keys,
                                 const Requirements& req, VerifiedTokenCache::Memo memo, double now,
                                 VerifiedTokenCache& cache, const ParseLimits& limits) {
  bool remembered = false;
  if (VerifiedTokenPtr hit = cache.find(compact, memo, remembered)) {
    // Passed before under these very requirements and keys: only the time has moved.
    if (remembered && within_lifetime(*hit, req, now)) return hit;
    // A hit stands for "these bytes verified under key K". It counts only if K is still trusted
    // here and this policy accepts how it was verified; every claim is checked again.
    const Jwk* key = find_by_fingerprint(keys, hit->key_fingerprint);
    if (key && req.algorithms.contains(hit->alg) && (!hit->graph_nonce || req.allow_graph_nonce) &&
        key_fits(key->key, hit->alg)) {
      auto version = check_claims(hit->claims, req, now);
      if (!version) return fail(std::move(version).error());
      if (auto e = check_key_issuer(key, hit->claims, req, *version)) return fail(std::move(*e));
      if (memo.requirements) cache.remember(compact, hit.get(), memo);
      return hit;
    }
  }
  auto result = validate(compact, keys, req, now, limits);
  if (result && !(*result)->key_fingerprint.empty())
    cache.insert(compact, *result, std::min((*result)->expires, kMaxNumericDate), memo);
  return result;
}

}  // namespace

ValidationResult validate_cached(std::string_view compact, const KeySet& keys,
                                 const Requirements& req, double now, VerifiedTokenCache& cache,
                                 const ParseLimits& limits) {
  return validate_cached(compact, keys, req, VerifiedTokenCache::Memo{}, now, cache, limits);
}

ValidationResult validate_cached(std::string_view compact, const KeySet& keys,
                                 const FixedRequirements& req, double now,
                                 VerifiedTokenCache& cache, const ParseLimits& limits) {
  return validate_cached(compact, keys, req.get(), {req.identity(), keys.identity()}, now, cache,
                         limits);
}

}  // namespace mcpgate::jwt
