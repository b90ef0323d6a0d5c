// jwt: requirements that depend on an OpenID discovery document's issuer — a tenant named by its
// domain (the issuer carries its GUID), validate-jwt's openid-config without <issuers> (the
// issuer is the one allowed) — made once per issuer and kept, so that the token cache can
// remember what passed under them as it does for requirements fixed at load.
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "jwt/requirements.hpp"

namespace mcpgate::jwt {

// Kept by the issuer's text, never by a snapshot's address: another issuer always gets
// requirements of its own, with a new identity, so nothing remembered under the old can pass.
// The first kKept issuers' requirements live as long as this object and are found without a
// lock or a shared reference count (every worker thread reads them on every request); past
// them — an issuer that keeps changing — each call makes its own in `spare`, as if nothing were
// kept: correct, only slower.
class IssuerRequirements {
 public:
  static constexpr std::size_t kKept = 4;

  IssuerRequirements() { owned_.reserve(kKept); }
  IssuerRequirements(const IssuerRequirements&) = delete;
  IssuerRequirements& operator=(const IssuerRequirements&) = delete;

  // Those kept for `issuer`, else those `make()` returns (a core::Result<Requirements,
  // std::string>), kept. Good while this object lives (or, when in `spare`, while spare does).
  template <class Make>
  core::Result<const FixedRequirements*, std::string> get(
      std::string_view issuer, Make&& make, std::optional<FixedRequirements>& spare) const {
    if (const auto* kept = find(issuer)) return kept;
    auto made = make();
    if (!made) return core::fail(std::move(made).error());
    std::lock_guard lock(mutex_);
    if (const auto* kept = find(issuer)) return kept;  // another thread made them meanwhile
    if (owned_.size() == kKept) {
      spare.emplace(std::move(made.value()));
      return &*spare;
    }
    const auto& entry = owned_.emplace_back(std::make_unique<const Entry>(
        Entry{std::string(issuer), FixedRequirements(std::move(made.value()))}));
    kept_[owned_.size() - 1].store(entry.get(), std::memory_order_release);
    return &entry->requirements;
  }

  // How many issuers' requirements are kept.
  std::size_t kept() const {
    std::lock_guard lock(mutex_);
    return owned_.size();
  }

 private:
  struct Entry {
    std::string issuer;
    FixedRequirements requirements;
  };

  const FixedRequirements* find(std::string_view issuer) const {
    for (const auto& slot : kept_) {
      const Entry* entry = slot.load(std::memory_order_acquire);
      if (!entry) return nullptr;
      if (entry->issuer == issuer) return &entry->requirements;
    }
    return nullptr;
  }

  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<const Entry>> owned_;      // under mutex_; entries never move
  mutable std::array<std::atomic<const Entry*>, kKept> kept_{};  // owned_'s, published in order
};

}  // namespace mcpgate::jwt
