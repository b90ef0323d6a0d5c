// jwt: VerifiedTokenCache, so a token seen again costs a hash and a compare, not an RSA verify.
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "jwt/validate.hpp"

namespace mcpgate::jwt {

// Bounded and set-associative: a fast 64-bit hash picks one of 16 shards and a set of 4 slots;
// a hit needs the whole token to compare equal (never the hash, signature or a prefix alone).
// Each shard has its own small mutex held only for the compare and a shared_ptr copy, so there
// is no global lock. A full set evicts the entry that expires first. Holds only tokens that
// passed; validate_cached() re-checks time, key and claims on every hit, unless the slot
// remembers that the token passed under the same fixed requirements and key set (a Memo), when
// it checks the time alone.
class VerifiedTokenCache {
 public:
  // Identities of a FixedRequirements and a KeySet (never 0; Memo{} is none).
  struct Memo {
    std::uint64_t requirements;
    std::uint64_t keys;
  };

  // capacity 0: the cache is off (find never hits, insert keeps nothing).
  explicit VerifiedTokenCache(std::size_t capacity = 4096);
  ~VerifiedTokenCache();
  VerifiedTokenCache(const VerifiedTokenCache&) = delete;
  VerifiedTokenCache& operator=(const VerifiedTokenCache&) = delete;

  VerifiedTokenPtr find(std::string_view token) const;
  // As find(); `remembered` tells whether the token passed under `memo` (see remember()).
  VerifiedTokenPtr find(std::string_view token, Memo memo, bool& remembered) const;
  // A new entry remembers `memo` when given (the token has just passed under it).
  void insert(std::string_view token, VerifiedTokenPtr value, double expires_at, Memo memo = {});
  // `value`, found for `token`, has passed under `memo`: kept while the slot holds that value.
  void remember(std::string_view token, const VerifiedToken* value, Memo memo);
  std::size_t size() const;
  std::size_t capacity() const { return kShards * sets_ * kWays; }

  // Tokens larger than this are not cached (bounds memory at capacity x this).
  static constexpr std::size_t kMaxTokenBytes = 8 * 1024;

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kWays = 4;
  struct Slot {
    std::uint64_t hash = 0;
    double expires_at = 0;
    std::string token;
    VerifiedTokenPtr value;
    Memo passed{};  // the one pair of requirements and keys it is known to pass
  };
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unique_ptr<Slot[]> slots;  // made by the shard's first insert
  };
  Slot* set_for(Shard& shard, std::uint64_t hash) const;
  Slot* find_slot(Shard& shard, std::uint64_t hash, std::string_view token) const;

  std::size_t sets_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace mcpgate::jwt
