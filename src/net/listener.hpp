// net: the listening side shared by every server (the emulator's HTTP server and the gateway):
// acceptors on every worker's io_context with SO_REUSEPORT, and the per-connection start
// (TCP_NODELAY, TLS handshake under a timeout, orderly shutdown). Includes Asio: for net/ and
// proxy/ sources only.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "net/address.hpp"
#include "net/timed_socket.hpp"
#include "net/tls.hpp"

namespace mcpgate::net {

class Acceptors {
 public:
  // Runs on the accepting context's thread for each new connection.
  using OnAccept =
      std::function<void(boost::asio::ip::tcp::socket socket, bool tls, std::size_t worker)>;

  // Binds every address on every context (a port-0 address gets one port, shared by all) and
  // starts accepting. Fails with the address and the reason when one cannot be bound.
  static core::Result<std::unique_ptr<Acceptors>, std::string> open(
      const std::vector<ListenAddress>& listen,
      const std::vector<boost::asio::io_context*>& contexts, OnAccept on_accept);
  ~Acceptors();
  const std::vector<BoundAddress>& bound() const { return bound_; }
  // Stops accepting; safe from any thread (posted to each context).
  void close();

 private:
  Acceptors() = default;
  struct Entry {
    std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor;
    std::size_t worker = 0;
    bool tls = false;
  };
  std::vector<Entry> entries_;
  std::vector<BoundAddress> bound_;
  OnAccept on_accept_;
};

// Counts one open connection for as long as it lives (move-only; the count drops when the last
// owner goes, whether the connection ended in the TLS handshake or after many requests).
class ConnectionGuard {
 public:
  explicit ConnectionGuard(std::atomic<std::size_t>& count) : count_(&count) {}
  ConnectionGuard(ConnectionGuard&& other) noexcept
      : count_(std::exchange(other.count_, nullptr)) {}
  ConnectionGuard& operator=(ConnectionGuard&&) = delete;
  ~ConnectionGuard() {
    if (count_) --*count_;
  }

 private:
  std::atomic<std::size_t>* count_;
};

// An accepted socket made ready for requests (TCP_NODELAY); the peer's address, or "" when the
// socket no longer has one.
inline std::string accepted_remote(boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ignored;
  const auto ep = socket.remote_endpoint(ignored);
  std::string remote = ignored ? std::string() : ep.address().to_string();
  socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  return remote;
}

// Takes an accepted socket through TLS when `tls` is set (handshake within `handshake_timeout`)
// and calls `serve(stream, remote_address, secure)` with a TimedSocket or a
// beast::ssl_stream<TimedSocket>; shuts the connection down after.
template <class Serve>
boost::asio::awaitable<void> run_connection(boost::asio::ip::tcp::socket socket,
                                            [[maybe_unused]] ConnectionGuard guard,
                                            const TlsServerContext* tls,
                                            std::chrono::milliseconds handshake_timeout,
                                            Serve serve) {
  namespace beast = boost::beast;
  constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);
  boost::system::error_code ignored;
  const std::string remote = accepted_remote(socket);
  if (!tls) {
    TimedSocket stream(std::move(socket));
    co_await serve(stream, remote, false);
    stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
    co_return;
  }
  auto* ctx = static_cast<boost::asio::ssl::context*>(tls->native());
  beast::ssl_stream<TimedSocket> stream(TimedSocket(std::move(socket)), *ctx);
  beast::get_lowest_layer(stream).expires_after(handshake_timeout);
  auto [ec] = co_await stream.async_handshake(boost::asio::ssl::stream_base::server, kTuple);
  if (ec) co_return;
  co_await serve(stream, remote, true);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(kTuple);
}

}  // namespace mcpgate::net
