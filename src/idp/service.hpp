// idp: the emulator's HTTP endpoints as one pure function of a request: token endpoints (v1/v2,
// client credentials with a secret or a certificate assertion), OpenID discovery, JWKS,
// instance discovery, and Entra-shaped errors. The HTTP server in net/ only carries bytes.
// Must not depend on Asio.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "http/message.hpp"
#include "idp/store.hpp"
#include "idp/token_issuer.hpp"

namespace mcpgate::idp {

inline constexpr std::string_view kGraphAppId = "00000003-0000-0000-c000-000000000000";
inline constexpr std::string_view kGraphResource = "https://graph.microsoft.com";

struct IdpSettings {
  // exp = issue time + lifetime. Entra's app-only tokens live 60 minutes (entra-id.md §2.3);
  // a negative value makes tokens that are already expired (for tests and the demo).
  std::int64_t token_lifetime_seconds = 3600;
  std::function<double()> clock;  // seconds since the epoch; the wall clock when empty
  std::function<void(const std::string&)> log;  // one line per request; never secrets or tokens
};

class IdpService {
 public:
  IdpService(Store& store, TokenIssuer& issuer, IdpSettings settings)
      : store_(store), issuer_(issuer), settings_(std::move(settings)) {}

  http::Response handle(const http::Request& request);

 private:
  struct Call;
  http::Response route(Call& call);
  http::Response discovery(Call& call, bool v2);
  http::Response keys(Call& call, bool v2);
  http::Response instance_discovery(Call& call);
  http::Response token(Call& call, bool v2);
  double now() const;

  Store& store_;
  TokenIssuer& issuer_;
  IdpSettings settings_;
};

}  // namespace mcpgate::idp
