// net: listen addresses as configured and as bound. No Asio here.
#pragma once

#include <cstdint>
#include <string>

namespace mcpgate::net {

struct ListenAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see BoundAddress)
  bool tls = true;
};

struct BoundAddress {
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
};

}  // namespace mcpgate::net
