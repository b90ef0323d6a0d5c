// core: Identity, a process-unique number naming one object as it is now, so that a memo keyed
// by it can never be taken for another object's, or for this one's after it changed.
// Must not depend on anything but the standard library.
#pragma once

#include <atomic>
#include <cstdint>

namespace mcpgate::core {

// Never 0 and never reused (a 64-bit counter does not wrap). A copy is another object and gets
// its own number, and so does each side of a move (what was moved from has changed); an owner
// that changes in place calls renew().
class Identity {
 public:
  Identity() noexcept : value_(next()) {}
  Identity(const Identity&) noexcept : value_(next()) {}
  Identity(Identity&& from) noexcept : value_(next()) { from.renew(); }
  Identity& operator=(const Identity&) noexcept {
    renew();
    return *this;
  }
  Identity& operator=(Identity&& from) noexcept {
    renew();
    from.renew();
    return *this;
  }
  void renew() noexcept { value_ = next(); }
  std::uint64_t value() const noexcept { return value_; }

 private:
  static std::uint64_t next() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  std::uint64_t value_;
};

}  // namespace mcpgate::core
