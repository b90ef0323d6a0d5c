// jwt: where a policy's verification keys come from, seen from the policy: an immutable snapshot
// to read on the request path, and a way to ask for fresh keys (an unknown `kid`, no keys yet).
// oidc/ implements it over OpenID discovery; tests implement it in memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "jwt/key_set.hpp"

namespace mcpgate::jwt {

struct KeySnapshot {
  std::shared_ptr<const KeySet> keys;  // null until the first good fetch
  std::string issuer;                  // the discovery document's
  std::string error;                   // why the last fetch failed ("" when it did not)
  std::uint64_t generation = 0;
};

class KeySource {
 public:
  virtual ~KeySource() = default;
  virtual const std::string& url() const = 0;
  // The newest snapshot; the reference stays valid until this thread's next call.
  virtual const std::shared_ptr<const KeySnapshot>& snapshot() const = 0;
  // Asks for a fetch; `done` runs (on any thread) once it finished, or at once when one ran too
  // recently to fetch again.
  virtual void refresh(std::function<void()> done) = 0;
};

}  // namespace mcpgate::jwt
