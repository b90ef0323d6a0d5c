#include "jwt/cache.hpp"

#include "core/hash.hpp"

namespace mcpgate::jwt {

VerifiedTokenCache::VerifiedTokenCache(std::size_t capacity)
    : sets_(capacity ? std::max<std::size_t>(1, capacity / (kShards * kWays)) : 0),
      shards_(new Shard[kShards]) {
  // A shard's slots are made by its first insert: a gateway without token policies, or with
  // few tokens, does not hold the whole capacity's memory (80 bytes a slot) from the start.
}

VerifiedTokenCache::~VerifiedTokenCache() = default;

namespace {

// Only verified tokens are ever stored, and a compact JWS ends with its signature: its last bytes
// spread tokens over the sets as well as all of them would, at a twentieth of the cost for a
// 1.2 KB token. A lookup still compares the whole token.
std::uint64_t token_hash(std::string_view token) {
  constexpr std::size_t kTail = 64;
  return core::fast_hash(token.size() > kTail ? token.substr(token.size() - kTail) : token);
}

}  // namespace

VerifiedTokenCache::Slot* VerifiedTokenCache::set_for(Shard& shard, std::uint64_t hash) const {
  return &shard.slots[((hash >> 4) % sets_) * kWays];
}

// The slot holding `token` in its set, with the shard's lock held by the caller.
VerifiedTokenCache::Slot* VerifiedTokenCache::find_slot(Shard& shard, std::uint64_t h,
                                                        std::string_view token) const {
  if (!shard.slots) return nullptr;
  Slot* set = set_for(shard, h);
  for (std::size_t i = 0; i < kWays; ++i) {
    if (set[i].hash == h && set[i].value && set[i].token == token) return &set[i];
  }
  return nullptr;
}

VerifiedTokenPtr VerifiedTokenCache::find(std::string_view token) const {
  bool remembered = false;
  return find(token, Memo{}, remembered);
}

VerifiedTokenPtr VerifiedTokenCache::find(std::string_view token, Memo memo,
                                          bool& remembered) const {
  remembered = false;
  if (sets_ == 0 || token.size() > kMaxTokenBytes) return nullptr;
  const std::uint64_t h = token_hash(token);
  Shard& shard = shards_[h % kShards];
  std::lock_guard lock(shard.mu);
  const Slot* slot = find_slot(shard, h, token);
  if (!slot) return nullptr;
  remembered = memo.requirements != 0 && memo.keys != 0 &&
               slot->passed.requirements == memo.requirements && slot->passed.keys == memo.keys;
  return slot->value;
}

void VerifiedTokenCache::remember(std::string_view token, const VerifiedToken* value, Memo memo) {
  if (sets_ == 0 || token.size() > kMaxTokenBytes || !value) return;
  const std::uint64_t h = token_hash(token);
  Shard& shard = shards_[h % kShards];
  std::lock_guard lock(shard.mu);
  // Only while the slot still holds the very object that passed: the entry may have been
  // replaced since (the caller's own reference keeps `value` from being another's address).
  if (Slot* slot = find_slot(shard, h, token); slot && slot->value.get() == value)
    slot->passed = memo;
}

void VerifiedTokenCache::insert(std::string_view token, VerifiedTokenPtr value, double expires_at,
                                Memo memo) {
  if (sets_ == 0 || token.size() > kMaxTokenBytes || !value) return;
  const std::uint64_t h = token_hash(token);
  Shard& shard = shards_[h % kShards];
  VerifiedTokenPtr evicted;  // released outside the lock
  std::lock_guard lock(shard.mu);
  if (!shard.slots) shard.slots.reset(new Slot[sets_ * kWays]);
  Slot* set = set_for(shard, h);
  Slot* victim = &set[0];
  for (std::size_t i = 0; i < kWays; ++i) {
    Slot& s = set[i];
    if (s.value && s.hash == h && s.token == token) {
      victim = &s;
      break;
    }
    if (!s.value) {
      victim = &s;
      break;
    }
    if (s.expires_at < victim->expires_at) victim = &s;
  }
  evicted = std::move(victim->value);
  victim->hash = h;
  victim->expires_at = expires_at;
  victim->token.assign(token);
  victim->value = std::move(value);
  victim->passed = memo;
}

std::size_t VerifiedTokenCache::size() const {
  std::size_t n = 0;
  for (std::size_t s = 0; s < kShards; ++s) {
    std::lock_guard lock(shards_[s].mu);
    if (!shards_[s].slots) continue;
    for (std::size_t i = 0; i < sets_ * kWays; ++i) n += shards_[s].slots[i].value ? 1 : 0;
  }
  return n;
}

}  // namespace mcpgate::jwt
