// net: TLS contexts for listeners (certificate chain + key) over Asio's OpenSSL wrapper.
// All sockets and TLS live in net/; this header keeps Asio out of its includers.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace mcpgate::net {

class TlsServerContext {
 public:
  // PEM certificate chain (leaf first) and PEM private key. TLS 1.2 and 1.3 only.
  static core::Result<std::shared_ptr<TlsServerContext>, std::string> from_pem(
      std::string_view chain_pem, std::string_view key_pem);
  ~TlsServerContext();
  void* native() const;  // boost::asio::ssl::context*

 private:
  TlsServerContext();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Upstream side: verifies the server's chain against the system store, or against `ca_file` alone
// when one is given. Host name checks and SNI are set per connection by the caller. TLS 1.2 and
// 1.3 only.
class TlsClientContext {
 public:
  static core::Result<std::shared_ptr<TlsClientContext>, std::string> create(
      const std::string& ca_file);
  ~TlsClientContext();
  void* native() const;  // boost::asio::ssl::context*

 private:
  TlsClientContext();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mcpgate::net
