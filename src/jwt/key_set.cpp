#include "jwt/key_set.hpp"

#include "core/json.hpp"
#include "core/strings.hpp"
#include "crypto/base64.hpp"
#include "crypto/digest.hpp"

namespace mcpgate::jwt {
namespace {

using core::fail;

std::string str_member(const core::Json& obj, std::string_view name) {
  const std::string* v = obj.find_string(name);
  return v ? *v : std::string();
}

core::Result<Jwk, std::string> read_key(const core::Json& k) {
  if (!k.is_object()) return fail(std::string("entry is not an object"));
  const std::string* kty = k.find_string("kty");
  if (!kty) return fail(std::string("no \"kty\""));
  Jwk jwk{crypto::PublicKey::oct("")};
  jwk.kid = str_member(k, "kid");
  jwk.use = str_member(k, "use");
  jwk.alg = str_member(k, "alg");
  jwk.x5t = str_member(k, "x5t");
  jwk.x5t_s256 = str_member(k, "x5t#S256");
  jwk.issuer = str_member(k, "issuer");
  if (!jwk.use.empty() && jwk.use != "sig")
    return fail("use \"" + core::printable(jwk.use) + "\" is not \"sig\"");
  if (const core::Json* ops = k.find("key_ops")) {
    bool verify = false;
    if (ops->is_array()) {
      for (const auto& op : ops->as_array()) verify |= op.is_string() && op.as_string() == "verify";
    }
    if (!verify) return fail(std::string("key_ops does not include \"verify\""));
  }
  if (!jwk.alg.empty() && !algorithm_from_name(jwk.alg)) {
    return fail("unsupported alg \"" + core::printable(jwk.alg) + "\"");
  }

  // Leaf certificate, if any: standard base64 DER (RFC 7517 §4.7); some publishers wrap lines.
  if (const core::Json* x5c = k.find("x5c")) {
    if (!x5c->is_array() || x5c->as_array().empty() || !x5c->as_array()[0].is_string()) {
      return fail(std::string("x5c is not a non-empty array of strings"));
    }
    auto der = crypto::base64_decode(x5c->as_array()[0].as_string(), {.skip_whitespace = true});
    if (!der) return fail(std::string("x5c[0] is not base64"));
    jwk.certificate_der = std::move(*der);
    // x5t / x5t#S256 must name this certificate when both are present.
    if (!jwk.x5t.empty()) {
      auto x5t = crypto::base64url_decode(jwk.x5t);
      if (!x5t || *x5t != crypto::sha1(jwk.certificate_der)) {
        return fail(std::string("x5t does not match the x5c certificate"));
      }
    }
    if (!jwk.x5t_s256.empty()) {
      auto x5t = crypto::base64url_decode(jwk.x5t_s256);
      if (!x5t || *x5t != crypto::sha256(jwk.certificate_der)) {
        return fail(std::string("x5t#S256 does not match the x5c certificate"));
      }
    }
  }

  auto b64 = [&](const char* name) -> std::optional<std::string> {
    const std::string* v = k.find_string(name);
    if (!v) return std::nullopt;
    return crypto::base64url_decode(*v);
  };

  if (*kty == "RSA") {
    const bool has_ne = k.find("n") || k.find("e");
    if (has_ne) {
      auto n = b64("n");
      auto e = b64("e");
      if (!n || !e) return fail(std::string("n or e missing or not base64url"));
      auto key = crypto::PublicKey::rsa(*n, *e);
      if (!key) return fail(key.error());
      jwk.key = std::move(key.value());
      if (!jwk.certificate_der.empty()) {
        auto cert_key = crypto::PublicKey::from_certificate_der(jwk.certificate_der);
        if (!cert_key || cert_key->fingerprint() != jwk.key.fingerprint()) {
          return fail(std::string("n/e and the x5c certificate are different keys"));
        }
      }
    } else if (!jwk.certificate_der.empty()) {
      auto key = crypto::PublicKey::from_certificate_der(jwk.certificate_der);
      if (!key) return fail(key.error());
      jwk.key = std::move(key.value());
    } else {
      return fail(std::string("RSA key without n/e or x5c"));
    }
    if (jwk.key.type() != crypto::KeyType::kRsa)
      return fail(std::string("x5c certificate is not RSA"));
  } else if (*kty == "EC") {
    const std::string crv = str_member(k, "crv");
    crypto::Curve curve = crv == "P-256"   ? crypto::Curve::kP256
                          : crv == "P-384" ? crypto::Curve::kP384
                          : crv == "P-521" ? crypto::Curve::kP521
                                           : crypto::Curve::kNone;
    if (curve == crypto::Curve::kNone)
      return fail("unsupported curve \"" + core::printable(crv) + "\"");
    auto x = b64("x");
    auto y = b64("y");
    if (!x || !y) return fail(std::string("x or y missing or not base64url"));
    // RFC 7518 §6.2.1.2 wants full-size coordinates, but some publishers (PyJWT 2.6, for one)
    // drop leading zero bytes; P-521's top byte is zero half of the time. Padding them back
    // names the same point, so accept it.
    const std::size_t size = crypto::curve_size(curve);
    for (auto* c : {&*x, &*y}) {
      if (c->size() < size) c->insert(0, size - c->size(), '\0');
    }
    auto key = crypto::PublicKey::ec(curve, *x, *y);
    if (!key) return fail(key.error());
    jwk.key = std::move(key.value());
  } else if (*kty == "oct") {
    auto secret = b64("k");
    if (!secret || secret->empty()) return fail(std::string("k missing, empty or not base64url"));
    jwk.key = crypto::PublicKey::oct(std::move(*secret));
  } else {
    return fail("unknown kty \"" + core::printable(*kty) + "\"");
  }
  return jwk;
}

}  // namespace

core::Result<KeySet, std::string> KeySet::from_jwks(std::string_view json,
                                                    std::vector<std::string>* warnings,
                                                    const JwksLimits& limits) {
  core::JsonLimits jl;
  jl.max_bytes = limits.max_bytes;
  jl.max_depth = 8;
  auto doc = core::parse_json(json, jl);
  if (!doc) return fail("JWKS is not valid JSON: " + doc.error());
  const core::Json* keys = doc->find("keys");
  if (!keys || !keys->is_array()) return fail(std::string("JWKS has no \"keys\" array"));
  if (keys->as_array().size() > limits.max_keys) {
    return fail("JWKS has " + std::to_string(keys->as_array().size()) +
                " keys, more than the limit of " + std::to_string(limits.max_keys));
  }
  KeySet set;
  std::size_t index = 0;
  for (const auto& entry : keys->as_array()) {
    auto jwk = read_key(entry);
    if (jwk) {
      set.add(std::move(jwk.value()));
    } else if (warnings) {
      const std::string* kid = entry.is_object() ? entry.find_string("kid") : nullptr;
      warnings->push_back("key " + std::to_string(index) +
                          (kid ? " (kid \"" + core::printable(*kid) + "\")" : "") +
                          " skipped: " + jwk.error());
    }
    ++index;
  }
  return set;
}

void KeySet::add(Jwk jwk) {
  keys_.push_back(std::move(jwk));
  identity_.renew();
}

bool KeySet::contains_fingerprint(std::string_view fingerprint) const {
  for (const auto& k : keys_) {
    if (k.key.fingerprint() == fingerprint) return true;
  }
  return false;
}

KeySet::Selection KeySet::select(Algorithm alg, std::string_view kid, std::string_view x5t,
                                 bool try_all_on_kid_miss, std::vector<const Jwk*>& out) const {
  out.clear();
  auto fits = [&](const Jwk& k) {
    return key_fits(k.key, alg) && (k.alg.empty() || k.alg == algorithm_name(alg));
  };
  if (!kid.empty() || !x5t.empty()) {
    for (const auto& k : keys_) {
      const bool named =
          !kid.empty() ? k.kid == kid : (k.x5t == x5t || (k.kid == x5t && !k.kid.empty()));
      if (named && fits(k)) out.push_back(&k);
    }
    if (!out.empty()) return Selection::kFound;
    if (!try_all_on_kid_miss) return Selection::kKidNotFound;
  }
  for (const auto& k : keys_) {
    if (fits(k)) out.push_back(&k);
  }
  return out.empty() ? Selection::kNoKeyFitsAlgorithm : Selection::kFound;
}

std::string KeySet::to_jwks() const {
  core::JsonArray arr;
  for (const auto& k : keys_) {
    if (k.key.type() == crypto::KeyType::kOct) continue;
    core::JsonObject o;
    auto put = [&](const char* name, const std::string& value) {
      if (!value.empty()) o.emplace_back(name, core::Json(value));
    };
    if (k.key.type() == crypto::KeyType::kRsa) {
      put("kty", "RSA");
      put("use", k.use.empty() ? "sig" : k.use);
      put("kid", k.kid);
      put("x5t", k.x5t);
      put("n", crypto::base64url_encode(k.key.rsa_n()));
      put("e", crypto::base64url_encode(k.key.rsa_e()));
    } else {
      put("kty", "EC");
      put("use", k.use.empty() ? "sig" : k.use);
      put("kid", k.kid);
      put("crv", crypto::curve_name(k.key.curve()));
      put("x", crypto::base64url_encode(k.key.ec_x()));
      put("y", crypto::base64url_encode(k.key.ec_y()));
    }
    if (!k.certificate_der.empty()) {
      core::JsonArray x5c;
      x5c.emplace_back(crypto::base64_encode(k.certificate_der));
      o.emplace_back("x5c", core::Json(std::move(x5c)));
    }
    put("alg", k.alg);
    put("issuer", k.issuer);
    arr.emplace_back(std::move(o));
  }
  core::JsonObject doc;
  doc.emplace_back("keys", core::Json(std::move(arr)));
  return core::Json(std::move(doc)).dump();
}

}  // namespace mcpgate::jwt
