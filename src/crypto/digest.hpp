// crypto: message digests (SHA-1 for x5t thumbprints, SHA-2 for everything else).
// Must not depend on Asio.
#pragma once

#include <string>
#include <string_view>

namespace mcpgate::crypto {

enum class Hash { kSha1, kSha256, kSha384, kSha512 };

std::size_t digest_size(Hash hash);
// Raw digest bytes.
std::string digest(Hash hash, std::string_view data);
inline std::string sha256(std::string_view data) { return digest(Hash::kSha256, data); }
inline std::string sha1(std::string_view data) { return digest(Hash::kSha1, data); }

std::string hex(std::string_view bytes, bool upper = false);

// Bytes from OpenSSL's CSPRNG.
std::string random_bytes(std::size_t n);

}  // namespace mcpgate::crypto
