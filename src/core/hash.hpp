// core: a fast, process-seeded 64-bit hash for in-memory lookups (not a cryptographic digest).
// Must not depend on anything but the standard library.
#pragma once

#include <cstdint>
#include <string_view>

namespace mcpgate::core {

// Reads 16 bytes per step with 64x64->128 folded multiplies. The seed is random per process so
// an attacker cannot aim many inputs at one bucket. Lookups that use it must still compare the
// whole key: equal hashes prove nothing.
std::uint64_t fast_hash(std::string_view data);
std::uint64_t fast_hash(std::string_view data, std::uint64_t seed);

}  // namespace mcpgate::core
