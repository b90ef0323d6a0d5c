// libFuzzer target: the token parser and the whole validate() path on untrusted bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "jwt/validate.hpp"

using namespace mcpgate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const jwt::KeySet keys = [] {
    jwt::KeySet ks;
    jwt::Jwk hs{crypto::PublicKey::oct(std::string(32, 'k'))};
    hs.kid = "hs";
    ks.add(hs);
    return ks;
  }();
  static const jwt::Requirements req = [] {
    jwt::Requirements r;
    r.audiences = {"api://fuzz"};
    r.claims = {{"roles", jwt::ClaimRequirement::Match::kAny, " ", {"a", "b"}}};
    r.allow_graph_nonce = true;
    return r;
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto token = jwt::parse(input);
  if (token) {
    (void)token->kid();
    (void)token->header.dump();
    (void)jwt::validate(*token, keys, req, 1'800'000'000);
  }
  return 0;
}
