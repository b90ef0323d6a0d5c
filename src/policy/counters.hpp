// policy: the counters behind rate-limit-by-key, quota-by-key and limit-concurrency. One store per
// gateway, shared by every worker and kept across reloads; the interface is what a shared store
// (Redis, for scale-out) will implement too.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace mcpgate::policy {

class CounterStore {
 public:
  virtual ~CounterStore() = default;

  struct Verdict {
    bool allowed = false;
    std::int64_t remaining = 0;  // calls left in the window after this one
    double retry_after = 0;      // seconds until `amount` more would be admitted (when refused)
  };

  // A sliding window of `period` seconds: admits `amount` more calls unless the window would then
  // hold more than `limit`; counts them only when `count`.
  virtual Verdict sliding(std::string_view key, std::int64_t limit, int period, std::int64_t amount,
                          bool count, double now) = 0;

  // Fixed windows of `period` seconds from `origin` (period 0: one window that never renews).
  virtual Verdict fixed(std::string_view key, std::int64_t limit, std::int64_t period,
                        double origin, std::int64_t amount, bool count, double now) = 0;

  // Adds `amount` to a fixed-window counter whatever its limit (bytes known only at the end).
  virtual void add_fixed(std::string_view key, std::int64_t period, double origin,
                         std::int64_t amount, double now) = 0;

  // Takes one of `limit` concurrent slots for `key`; false when all are taken.
  virtual bool acquire(std::string_view key, std::int64_t limit) = 0;
  virtual void release(std::string_view key) = 0;
};

// In this process. At most `max_keys` counters: idle ones are dropped to make room, and when
// none is idle a new key is refused (fail closed).
std::shared_ptr<CounterStore> make_local_counters(std::size_t max_keys = 100'000);

}  // namespace mcpgate::policy
