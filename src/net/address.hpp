// net: listen addresses as configured and as bound. No Asio here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcpgate::net {

struct ListenAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see BoundAddress)
  bool tls = true;
};

// "HOST:PORT" ("[::1]:8443" for IPv6) as given on a command line; nullopt when malformed.
inline std::optional<ListenAddress> parse_listen_address(std::string_view spec, bool tls) {
  const auto colon = spec.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == spec.size()) return std::nullopt;
  std::string_view host = spec.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  for (const char c : spec.substr(colon + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
    if (port > 65535) return std::nullopt;
  }
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port), tls};
}

struct BoundAddress {
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
};

}  // namespace mcpgate::net
