// idp: the emulator's signing keys (RSA-2048 in self-signed certificates, kid = x5t as Entra
// publishes them), rotation, JWKS, and signing of access tokens.
// Must not depend on Asio.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/result.hpp"
#include "crypto/key.hpp"
#include "idp/store.hpp"
#include "jwt/key_set.hpp"

namespace mcpgate::idp {

class TokenIssuer {
 public:
  explicit TokenIssuer(Store& store) : store_(store) {}

  // Makes sure there is an active key and a published spare (Entra always publishes more than
  // one key, entra-id.md §6 case 8).
  Result<bool, std::string> ensure_keys();
  // Adds a new key and makes it the one that signs; the old ones stay published.
  Result<std::string, std::string> rotate();

  // The keys in JWKS form; `issuer` (may hold "{tenantid}") is put on each key when not empty.
  std::string jwks(const std::string& issuer);
  // Signs header (typ, kid, and x5t when `with_x5t`) + claims with the active key.
  Result<std::string, std::string> sign(const core::Json& claims, bool with_x5t, bool graph_nonce);
  // The published keys as a KeySet (for tests and for validating our own tokens).
  jwt::KeySet key_set();

 private:
  struct Loaded {
    SigningKey stored;
    crypto::PrivateKey key;
  };
  const std::vector<Loaded>& keys();  // reloads when the stored set changed (the CLI may rotate)
  Result<SigningKey, std::string> create_key(const std::string& state);

  Store& store_;
  std::mutex mu_;
  std::vector<Loaded> loaded_;
  std::string loaded_fingerprint_;
};

}  // namespace mcpgate::idp
