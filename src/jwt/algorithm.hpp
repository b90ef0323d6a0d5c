// jwt: the JWS algorithms we verify, what key each one needs, and allow-lists of them.
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "crypto/key.hpp"

namespace mcpgate::jwt {

enum class Algorithm : std::uint8_t {
  kNone,
  kHS256,
  kHS384,
  kHS512,
  kRS256,
  kRS384,
  kRS512,
  kPS256,
  kPS384,
  kPS512,
  kES256,
  kES384,
  kES512,
};
inline constexpr int kAlgorithmCount = 13;

// Exact, case-sensitive names of RFC 7518 §3.1; "None" or "NONE" are not "none" and are
// reported as unsupported.
std::optional<Algorithm> algorithm_from_name(std::string_view name);
std::string_view algorithm_name(Algorithm alg);

struct AlgorithmSpec {
  crypto::Scheme scheme;
  crypto::Hash hash;
  crypto::KeyType key_type;
  crypto::Curve curve;  // ES only
};
AlgorithmSpec algorithm_spec(Algorithm alg);  // alg must not be kNone

// Whether `key` may verify `alg`: the key's type decides the family (no HS/RS confusion), the
// curve must match for ES (RFC 7518 §3.4), and an HMAC key must be at least as long as the
// hash output (RFC 7518 §3.2).
bool key_fits(const crypto::PublicKey& key, Algorithm alg);

class AlgorithmSet {
 public:
  constexpr AlgorithmSet() = default;
  constexpr AlgorithmSet(std::initializer_list<Algorithm> algs) {
    for (auto a : algs) bits_ |= bit(a);
  }
  static constexpr AlgorithmSet all_signed() {
    AlgorithmSet s;
    s.bits_ = static_cast<std::uint16_t>(((1u << kAlgorithmCount) - 1) & ~1u);
    return s;
  }
  // APIM validate-jwt's documented list: RS256, RS512, PS256, ES256 and the HS family for
  // inline keys (apim-policies.md §3.4).
  static constexpr AlgorithmSet apim_validate_jwt() {
    return {Algorithm::kRS256, Algorithm::kRS512, Algorithm::kPS256, Algorithm::kES256,
            Algorithm::kHS256, Algorithm::kHS384, Algorithm::kHS512};
  }
  // Entra ID signs access tokens with RS256 only.
  static constexpr AlgorithmSet entra() { return {Algorithm::kRS256}; }

  constexpr bool contains(Algorithm a) const { return (bits_ & bit(a)) != 0; }
  constexpr void add(Algorithm a) { bits_ |= bit(a); }
  constexpr void remove(Algorithm a) { bits_ &= static_cast<std::uint16_t>(~bit(a)); }
  constexpr bool empty() const { return bits_ == 0; }

 private:
  static constexpr std::uint16_t bit(Algorithm a) {
    return static_cast<std::uint16_t>(1u << static_cast<unsigned>(a));
  }
  std::uint16_t bits_ = 0;
};

}  // namespace mcpgate::jwt
