#include "core/hash.hpp"

#include <cstring>
#include <random>

namespace mcpgate::core {
namespace {

constexpr std::uint64_t kP0 = 0x9e3779b97f4a7c15ull;
constexpr std::uint64_t kP1 = 0xd6e8feb86659fd93ull;
constexpr std::uint64_t kP2 = 0xa0761d6478bd642full;

inline std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) {
  __extension__ using U128 = unsigned __int128;
  const U128 r = static_cast<U128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t load64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::uint64_t process_seed() {
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

}  // namespace

std::uint64_t fast_hash(std::string_view data, std::uint64_t seed) {
  const char* p = data.data();
  std::size_t n = data.size();
  std::uint64_t a = seed ^ kP0;
  std::uint64_t b = seed ^ kP1 ^ n;
  while (n >= 16) {
    a = fold_mul(load64(p) ^ a, load64(p + 8) ^ kP2 ^ b);
    b += kP0;
    p += 16;
    n -= 16;
  }
  std::uint64_t tail[2] = {0, 0};
  std::memcpy(tail, p, n);
  a = fold_mul(tail[0] ^ a ^ kP1, tail[1] ^ b ^ kP2);
  return fold_mul(a ^ kP0, data.size() ^ kP1);
}

std::uint64_t fast_hash(std::string_view data) { return fast_hash(data, process_seed()); }

}  // namespace mcpgate::core
