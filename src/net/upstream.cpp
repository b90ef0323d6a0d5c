#include "net/upstream.hpp"

#include <sys/socket.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>

namespace mcpgate::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

bool UpstreamConn::usable() {
  auto& socket = lowest().socket();
  if (!socket.is_open()) return false;
  char byte;
  const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  // TLS 1.3 servers may send session tickets after the handshake: bytes waiting are normal there.
  if (n > 0) return secure();
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

asio::awaitable<std::tuple<boost::system::error_code, tcp::resolver::results_type>> resolve(
    asio::io_context& ioc, const std::string& host, const std::string& port) {
  tcp::resolver resolver(ioc);
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (!ec) {
    // Numeric: getaddrinfo with AI_NUMERICHOST looks nothing up.
    auto results = resolver.resolve(host, port, tcp::resolver::numeric_host, ec);
    co_return std::tuple{ec, std::move(results)};
  }
  co_return co_await resolver.async_resolve(host, port, asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<ConnectResult> connect_upstream(asio::io_context& ioc, const UpstreamTarget& target,
                                                std::chrono::steady_clock::time_point deadline) {
  constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
  ConnectResult out;
  const auto until = std::min(std::chrono::steady_clock::now() + target.connect_timeout, deadline);
  auto [rec, endpoints] = co_await resolve(ioc, target.host, target.port);
  if (rec) {
    out.error = "resolving " + target.host + ": " + rec.message();
    co_return out;
  }
  // The connect races a timer; both live in one small block, which the timer's handler keeps
  // until it has run. (Beast's tcp_stream kept its whole state, with a timer wait, until the
  // connect timeout had passed — for every connection.)
  struct Connecting {
    explicit Connecting(asio::io_context& ioc) : socket(ioc), timer(ioc) {}
    tcp::socket socket;
    asio::steady_timer timer;
    bool timed_out = false;
  };
  auto c = std::make_shared<Connecting>(ioc);
  c->timer.expires_at(until);
  c->timer.async_wait([c](boost::system::error_code ec) {
    if (ec) return;  // cancelled: connected or failed first
    c->timed_out = true;
    boost::system::error_code ignored;
    c->socket.close(ignored);
  });
  // After the deadline no further address is tried.
  const auto in_time = [c](const boost::system::error_code&, const tcp::endpoint&) {
    return !c->timed_out;
  };
  auto [cec, ep] = co_await asio::async_connect(c->socket, endpoints, in_time, kTuple);
  (void)ep;
  c->timer.cancel();
  if (cec || c->timed_out) {
    out.timed_out = c->timed_out;
    out.error = "connecting to " + target.host + ":" + target.port + ": " +
                (out.timed_out ? std::string("timed out") : cec.message());
    co_return out;
  }
  boost::system::error_code ignored;
  c->socket.set_option(tcp::no_delay(true), ignored);
  TimedSocket socket(std::move(c->socket));
  if (!target.tls) {
    out.conn.emplace(std::move(socket));
    co_return out;
  }
  socket.expires_at(until);  // the handshake too
  auto& ctx = *static_cast<asio::ssl::context*>(target.tls->native());
  UpstreamConn::tls_stream tls(std::move(socket), ctx);
  SSL* ssl = tls.native_handle();
  const std::string& name = target.tls_name.empty() ? target.host : target.tls_name;
  boost::system::error_code ip_ec;
  asio::ip::make_address(name, ip_ec);
  if (ip_ec) {
    // A name: send it as SNI (RFC 6066 forbids IP literals there) and require it in the
    // certificate.
    SSL_set_tlsext_host_name(ssl, name.c_str());
    SSL_set1_host(ssl, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
  }
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) {
    out.timed_out = hec == beast::error::timeout;
    const long verify = SSL_get_verify_result(ssl);
    out.error = "TLS handshake with " + target.host + ":" + target.port + ": " +
                (verify != X509_V_OK ? std::string("certificate verify failed: ") +
                                           X509_verify_cert_error_string(verify)
                 : out.timed_out ? std::string("timed out")
                                 : hec.message());
    co_return out;
  }
  out.conn.emplace(std::move(tls));
  co_return out;
}

}  // namespace mcpgate::net
