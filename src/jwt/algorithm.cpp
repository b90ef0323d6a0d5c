#include "jwt/algorithm.hpp"

namespace mcpgate::jwt {
namespace {

struct Entry {
  std::string_view name;
  Algorithm alg;
};
constexpr Entry kNames[] = {
    {"none", Algorithm::kNone},   {"HS256", Algorithm::kHS256}, {"HS384", Algorithm::kHS384},
    {"HS512", Algorithm::kHS512}, {"RS256", Algorithm::kRS256}, {"RS384", Algorithm::kRS384},
    {"RS512", Algorithm::kRS512}, {"PS256", Algorithm::kPS256}, {"PS384", Algorithm::kPS384},
    {"PS512", Algorithm::kPS512}, {"ES256", Algorithm::kES256}, {"ES384", Algorithm::kES384},
    {"ES512", Algorithm::kES512},
};

}  // namespace

std::optional<Algorithm> algorithm_from_name(std::string_view name) {
  for (const auto& e : kNames) {
    if (e.name == name) return e.alg;
  }
  return std::nullopt;
}

std::string_view algorithm_name(Algorithm alg) { return kNames[static_cast<int>(alg)].name; }

AlgorithmSpec algorithm_spec(Algorithm alg) {
  using crypto::Curve;
  using crypto::Hash;
  using crypto::KeyType;
  using crypto::Scheme;
  switch (alg) {
    case Algorithm::kHS256:
      return {Scheme::kHmac, Hash::kSha256, KeyType::kOct, Curve::kNone};
    case Algorithm::kHS384:
      return {Scheme::kHmac, Hash::kSha384, KeyType::kOct, Curve::kNone};
    case Algorithm::kHS512:
      return {Scheme::kHmac, Hash::kSha512, KeyType::kOct, Curve::kNone};
    case Algorithm::kRS256:
      return {Scheme::kRsaPkcs1, Hash::kSha256, KeyType::kRsa, Curve::kNone};
    case Algorithm::kRS384:
      return {Scheme::kRsaPkcs1, Hash::kSha384, KeyType::kRsa, Curve::kNone};
    case Algorithm::kRS512:
      return {Scheme::kRsaPkcs1, Hash::kSha512, KeyType::kRsa, Curve::kNone};
    case Algorithm::kPS256:
      return {Scheme::kRsaPss, Hash::kSha256, KeyType::kRsa, Curve::kNone};
    case Algorithm::kPS384:
      return {Scheme::kRsaPss, Hash::kSha384, KeyType::kRsa, Curve::kNone};
    case Algorithm::kPS512:
      return {Scheme::kRsaPss, Hash::kSha512, KeyType::kRsa, Curve::kNone};
    case Algorithm::kES256:
      return {Scheme::kEcdsa, Hash::kSha256, KeyType::kEc, Curve::kP256};
    case Algorithm::kES384:
      return {Scheme::kEcdsa, Hash::kSha384, KeyType::kEc, Curve::kP384};
    case Algorithm::kES512:
      return {Scheme::kEcdsa, Hash::kSha512, KeyType::kEc, Curve::kP521};
    case Algorithm::kNone:
      break;
  }
  return {Scheme::kHmac, Hash::kSha256, KeyType::kOct, Curve::kNone};  // unreachable for kNone
}

bool key_fits(const crypto::PublicKey& key, Algorithm alg) {
  if (alg == Algorithm::kNone) return false;
  const AlgorithmSpec spec = algorithm_spec(alg);
  if (key.type() != spec.key_type) return false;
  if (spec.key_type == crypto::KeyType::kEc) return key.curve() == spec.curve;
  if (spec.key_type == crypto::KeyType::kOct)
    return key.secret().size() >= crypto::digest_size(spec.hash);
  return true;
}

}  // namespace mcpgate::jwt
