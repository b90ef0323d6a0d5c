// net: one connection to an upstream, plain TCP or TLS, behind a single stream type so the relay
// templates are instantiated once for both. Includes Asio: for net/ and proxy/ sources only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "net/timed_socket.hpp"
#include "net/tls.hpp"

namespace mcpgate::net {

// The addresses of host:port. An IP literal is read at once, in the caller's thread (Asio's
// asynchronous resolve runs getaddrinfo on a thread of its own: two thread hops per new
// connection); a name goes through that resolver.
boost::asio::awaitable<
    std::tuple<boost::system::error_code, boost::asio::ip::tcp::resolver::results_type>>
resolve(boost::asio::io_context& ioc, const std::string& host, const std::string& port);

class UpstreamConn {
 public:
  using tcp_stream = TimedSocket;
  using tls_stream = boost::beast::ssl_stream<tcp_stream>;
  using executor_type = tcp_stream::executor_type;
  using time_point = std::chrono::steady_clock::time_point;

  explicit UpstreamConn(tcp_stream s) : tcp_(std::move(s)) {}
  explicit UpstreamConn(tls_stream s) : tls_(std::move(s)) {}

  executor_type get_executor() { return lowest().get_executor(); }
  tcp_stream& lowest() { return tls_ ? boost::beast::get_lowest_layer(*tls_) : *tcp_; }
  bool secure() const { return tls_.has_value(); }

  // Deadlines for the next operations (the socket closes when one passes).
  void expires_at(time_point t) { lowest().expires_at(t); }
  void expires_never() { lowest().expires_never(); }
  void disarm() { lowest().disarm(); }
  void close() {
    boost::system::error_code ignored;
    lowest().socket().close(ignored);
  }

  // Before a pooled connection is reused: false when the upstream has closed it meanwhile (or,
  // on plain TCP, sent bytes nobody asked for). One non-blocking peek; no I/O is consumed.
  bool usable();

  // What the socket takes at once (TimedSocket::write_now); over TLS, nothing: the caller
  // writes it all with async_write.
  template <class Buffers>
  std::size_t write_now(const Buffers& b, boost::system::error_code& ec) {
    if (tls_) {
      ec = {};
      return 0;
    }
    return tcp_->write_now(b, ec);
  }
  template <class Buffers, class Token>
  auto async_read_some(const Buffers& b, Token&& token) {
    if (tls_) return tls_->async_read_some(b, std::forward<Token>(token));
    return tcp_->async_read_some(b, std::forward<Token>(token));
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& b, Token&& token) {
    if (tls_) return tls_->async_write_some(b, std::forward<Token>(token));
    return tcp_->async_write_some(b, std::forward<Token>(token));
  }

 private:
  std::optional<tcp_stream> tcp_;
  std::optional<tls_stream> tls_;
};

struct UpstreamTarget {
  std::string host;  // name or IP literal, without brackets
  std::string port;
  std::string tls_name;  // SNI and the name the certificate must hold; empty: `host`
  const TlsClientContext* tls = nullptr;  // null: plain HTTP
  std::chrono::milliseconds connect_timeout{5000};
};

struct ConnectResult {
  std::optional<UpstreamConn> conn;
  bool timed_out = false;
  std::string error;  // why there is no connection, for the access log
};

// Resolves, connects and (for TLS) handshakes with SNI and a host name (or IP address) check,
// all before min(now + connect_timeout, deadline).
boost::asio::awaitable<ConnectResult> connect_upstream(
    boost::asio::io_context& ioc, const UpstreamTarget& target,
    std::chrono::steady_clock::time_point deadline);

}  // namespace mcpgate::net
