// libFuzzer target: the JWKS reader (JSON, base64, key construction in OpenSSL).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "jwt/key_set.hpp"

using namespace mcpgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> warnings;
  auto ks = jwt::KeySet::from_jwks(input, &warnings);
  if (ks) {
    std::vector<const jwt::Jwk*> out;
    (void)ks->select(jwt::Algorithm::kRS256, "k", "", true, out);
    (void)ks->to_jwks();
  }
  return 0;
}
