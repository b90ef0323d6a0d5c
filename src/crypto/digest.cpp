#include "crypto/digest.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <stdexcept>

#include "crypto/ossl_internal.hpp"

namespace mcpgate::crypto {

std::size_t digest_size(Hash hash) {
  switch (hash) {
    case Hash::kSha1:
      return 20;
    case Hash::kSha256:
      return 32;
    case Hash::kSha384:
      return 48;
    case Hash::kSha512:
      return 64;
  }
  return 0;
}

const EVP_MD* evp_md(Hash hash) {
  // Fetched once: in OpenSSL 3 an implicit fetch on every call costs a lock and a lookup.
  static EVP_MD* const kSha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static EVP_MD* const kSha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  static EVP_MD* const kSha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  switch (hash) {
    case Hash::kSha1:
      return kSha1;
    case Hash::kSha256:
      return kSha256;
    case Hash::kSha384:
      return kSha384;
    case Hash::kSha512:
      return kSha512;
  }
  return nullptr;
}

std::string digest(Hash hash, std::string_view data) {
  std::string out(digest_size(hash), '\0');
  unsigned len = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                 evp_md(hash), nullptr) != 1) {
    throw std::runtime_error("EVP_Digest failed");  // only on allocation failure: a bug
  }
  out.resize(len);
  return out;
}

std::string hex(std::string_view bytes, bool upper) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  const char* digits = upper ? kUpper : kLower;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");  // no entropy: nothing safe to do
  }
  return out;
}

}  // namespace mcpgate::crypto
