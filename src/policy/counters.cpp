#include "policy/counters.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace mcpgate::policy {

namespace {

// A sliding window as a ring of slots, each 1/kSlots of the period (at least a second): the
// window holds the calls of the last kSlots slots, so it is exact to one slot's length.
constexpr std::int64_t kMaxSlots = 60;

struct Window {
  // Sliding: the ring, the absolute number of the newest slot, and the sum of the ring.
  std::vector<std::int64_t> slots;
  std::int64_t head = 0;
  // Fixed: which window the count belongs to.
  std::int64_t window = 0;
  std::int64_t total = 0;
  double last_used = 0;
  double idle_after = 0;    // the counter is empty (or renewed) once this much time has passed
  std::int64_t in_use = 0;  // concurrency slots taken
};

class LocalCounters final : public CounterStore {
 public:
  explicit LocalCounters(std::size_t max_keys) : max_keys_(max_keys) {}

  Verdict sliding(std::string_view key, std::int64_t limit, int period, std::int64_t amount,
                  bool count, double now) override {
    std::lock_guard lock(mu_);
    Window* w = find(key, now, period);
    if (!w) return {false, 0, static_cast<double>(period)};
    const std::int64_t n = std::min<std::int64_t>(kMaxSlots, period);
    const double slot_len = static_cast<double>(period) / static_cast<double>(n);
    const auto abs = static_cast<std::int64_t>(std::floor(now / slot_len));
    if (w->slots.size() != static_cast<std::size_t>(n)) {
      w->slots.assign(static_cast<std::size_t>(n), 0);
      w->head = abs;
      w->total = 0;
    }
    // Slots that left the window since the last call are emptied.
    for (std::int64_t s = std::max(w->head + 1, abs - n + 1); s <= abs; ++s) {
      auto& slot = w->slots[static_cast<std::size_t>(s % n)];
      w->total -= slot;
      slot = 0;
    }
    w->head = std::max(w->head, abs);
    Verdict v;
    v.allowed = w->total + amount <= limit;
    if (v.allowed && count) {
      w->slots[static_cast<std::size_t>(abs % n)] += amount;
      w->total += amount;
    }
    v.remaining = std::max<std::int64_t>(0, limit - w->total);
    if (!v.allowed) {
      // The oldest slots leave first: wait until enough of them have.
      const std::int64_t need = w->total + amount - limit;
      std::int64_t freed = 0;
      v.retry_after = period;
      if (amount <= limit) {
        for (std::int64_t s = abs - n + 1; s <= abs; ++s) {
          freed += w->slots[static_cast<std::size_t>(((s % n) + n) % n)];
          if (freed >= need) {
            v.retry_after = static_cast<double>(s + n) * slot_len - now;
            break;
          }
        }
      }
    }
    w->last_used = now;
    w->idle_after = period;
    return v;
  }

  Verdict fixed(std::string_view key, std::int64_t limit, std::int64_t period, double origin,
                std::int64_t amount, bool count, double now) override {
    std::lock_guard lock(mu_);
    Window* w = find(key, now, static_cast<double>(period));
    if (!w) return {false, 0, static_cast<double>(period)};
    const std::int64_t window =
        period > 0 ? static_cast<std::int64_t>(std::floor((now - origin) / period)) : 0;
    if (window != w->window) {
      w->window = window;
      w->total = 0;
    }
    Verdict v;
    v.allowed = w->total + amount <= limit;
    if (v.allowed && count) w->total += amount;
    v.remaining = std::max<std::int64_t>(0, limit - w->total);
    if (!v.allowed)
      v.retry_after = period > 0 ? origin + static_cast<double>((window + 1) * period) - now : 0;
    w->last_used = now;
    // A quota that never renews is never idle; one in a later window starts empty anyway.
    w->idle_after = period > 0 ? origin + static_cast<double>((window + 1) * period) - now : -1;
    return v;
  }

  void add_fixed(std::string_view key, std::int64_t period, double origin, std::int64_t amount,
                 double now) override {
    fixed(key, INT64_MAX, period, origin, amount, true, now);
  }

  bool acquire(std::string_view key, std::int64_t limit) override {
    std::lock_guard lock(mu_);
    Window* w = find(key, -1, 0);
    if (!w || w->in_use >= limit) return false;
    ++w->in_use;
    return true;
  }

  void release(std::string_view key) override {
    std::lock_guard lock(mu_);
    const auto it = counters_.find(std::string(key));
    if (it == counters_.end()) return;
    if (it->second.in_use > 0) --it->second.in_use;
    if (it->second.in_use == 0 && it->second.total == 0) counters_.erase(it);  // nothing to keep
  }

 private:
  // The counter for `key`, made when new; null when the store is full of live counters.
  Window* find(std::string_view key, double now, double idle_after) {
    std::string k(key);
    if (const auto it = counters_.find(k); it != counters_.end()) return &it->second;
    if (counters_.size() >= max_keys_) {
      std::erase_if(counters_, [now](const auto& kv) {
        const Window& w = kv.second;
        return w.in_use == 0 && w.idle_after >= 0 && now >= 0 && now - w.last_used >= w.idle_after;
      });
      if (counters_.size() >= max_keys_) return nullptr;
    }
    Window& w = counters_[std::move(k)];
    w.last_used = now;
    w.idle_after = idle_after;
    return &w;
  }

  std::mutex mu_;
  std::unordered_map<std::string, Window> counters_;
  std::size_t max_keys_;
};

}  // namespace

std::shared_ptr<CounterStore> make_local_counters(std::size_t max_keys) {
  return std::make_shared<LocalCounters>(max_keys);
}

}  // namespace mcpgate::policy
