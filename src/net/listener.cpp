#include "net/listener.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

namespace mcpgate::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, bool tls, std::size_t worker,
                                  const Acceptors::OnAccept& on_accept) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      continue;  // EMFILE and friends: keep serving the connections we have
    }
    on_accept(std::move(socket), tls, worker);
  }
}

}  // namespace

core::Result<std::unique_ptr<Acceptors>, std::string> Acceptors::open(
    const std::vector<ListenAddress>& listen, const std::vector<asio::io_context*>& contexts,
    OnAccept on_accept) {
  std::unique_ptr<Acceptors> out(new Acceptors());
  out->on_accept_ = std::move(on_accept);
  for (const auto& l : listen) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(l.host, ec);
    if (ec) return core::fail("listen address \"" + l.host + "\" is not an IP address");
    std::uint16_t port = l.port;
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      auto acceptor = std::make_unique<tcp::acceptor>(*contexts[i]);
      const tcp::endpoint endpoint(address, port);
      acceptor->open(endpoint.protocol(), ec);
      if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec && contexts.size() > 1) {
        // Each worker has its own acceptor on the same port; the kernel spreads connections.
        const int one = 1;
        ::setsockopt(acceptor->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      }
      if (!ec && address.is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
      if (!ec) acceptor->bind(endpoint, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec)
        return core::fail("cannot listen on " + l.host + ":" + std::to_string(port) + ": " +
                          ec.message());
      port = acceptor->local_endpoint().port();
      out->entries_.push_back({std::move(acceptor), i, l.tls});
    }
    out->bound_.push_back({l.host, port, l.tls});
  }
  for (auto& e : out->entries_) {
    asio::co_spawn(e.acceptor->get_executor(),
                   accept_loop(*e.acceptor, e.tls, e.worker, out->on_accept_), asio::detached);
  }
  return out;
}

Acceptors::~Acceptors() = default;

void Acceptors::close() {
  for (auto& e : entries_) {
    asio::post(e.acceptor->get_executor(), [a = e.acceptor.get()] {
      boost::system::error_code ignored;
      a->close(ignored);
    });
  }
}

}  // namespace mcpgate::net
