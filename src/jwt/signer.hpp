// jwt: signing compact JWS tokens (the emulator's token issuer, test vectors, benchmarks).
// Must not depend on Asio or on anything above crypto.
#pragma once

#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/result.hpp"
#include "crypto/key.hpp"
#include "jwt/algorithm.hpp"

namespace mcpgate::jwt {

// `header` is a JSON object; its "alg" is set (or replaced) to `alg`. Returns the compact token.
core::Result<std::string, std::string> sign(core::Json header, const core::Json& claims,
                                            Algorithm alg, const crypto::PrivateKey& key);
core::Result<std::string, std::string> sign_hmac(core::Json header, const core::Json& claims,
                                                 Algorithm alg, std::string_view secret);

// Microsoft Graph style (entra-id.md addendum): the header sent carries `nonce`, the signature
// covers the same header with the nonce replaced by base64url(SHA-256(nonce)).
core::Result<std::string, std::string> sign_graph_style(core::Json header, const core::Json& claims,
                                                        const crypto::PrivateKey& key);

}  // namespace mcpgate::jwt
