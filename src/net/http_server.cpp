#include "net/http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include "core/json.hpp"
#include "net/listener.hpp"

namespace mcpgate::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto kTuple = asio::as_tuple(use_awaitable);

namespace {

http::Response default_local_error(int status, std::string message) {
  core::JsonObject o;
  o.emplace_back("statusCode", core::Json::number(status));
  o.emplace_back("message", core::Json(std::move(message)));
  return http::json_response(status, core::Json(std::move(o)).dump());
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  Handler handler;
  std::vector<BoundAddress> bound;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> stopped{false};

  bhttp::response<bhttp::string_body> to_beast(http::Response&& r, unsigned version,
                                               bool keep_alive) {
    bhttp::response<bhttp::string_body> res;
    res.version(version);
    res.result(static_cast<unsigned>(r.status));
    for (auto& [name, value] : r.headers.fields()) res.insert(name, value);
    res.body() = std::move(r.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
  }

  http::Response local_error(int status, std::string message) {
    return options.local_error ? options.local_error(status, std::move(message))
                               : default_local_error(status, std::move(message));
  }

  http::Response call_handler(http::Request&& req) {
    try {
      return handler(std::move(req));
    } catch (const std::exception& e) {
      std::cerr << "mcpgate: handler failed: " << e.what() << "\n";
      return local_error(500, "Internal server error");
    }
  }

  // A response whose body arrives later (http::BodyStream): the head, then each piece as it is
  // written, chunked (HTTP/1.0: until the connection closes), within the idle timeout between
  // pieces. False when the connection cannot serve another request.
  template <class Stream>
  awaitable<bool> stream_body(Stream& stream, http::Response answer, unsigned version,
                              bool keep_alive) {
    auto& lowest = beast::get_lowest_layer(stream);
    auto body = answer.stream;
    struct Detach {
      std::shared_ptr<http::BodyStream> s;
      ~Detach() { s->detach(); }
    } detach{body};
    const bool chunked = version >= 11;
    bhttp::response<bhttp::empty_body> head;
    head.version(version);
    head.result(static_cast<unsigned>(answer.status));
    for (auto& [name, value] : answer.headers.fields()) head.insert(name, value);
    head.keep_alive(keep_alive && chunked);
    if (chunked) head.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> sr{head};
    lowest.expires_after(options.read_timeout);
    auto [hec, hn] = co_await bhttp::async_write_header(stream, sr, kTuple);
    (void)hn;
    if (hec) co_return false;
    // Wake-ups come from the writer's thread: posted to this connection's thread, where they
    // cancel the wait below (a wake-up before the wait just makes the next wait return at once).
    auto timer = std::make_shared<asio::steady_timer>(co_await asio::this_coro::executor);
    body->on_data(
        [timer, ex = timer->get_executor()] { asio::post(ex, [timer] { timer->cancel(); }); });
    std::string piece = std::move(answer.body);
    for (;;) {
      std::string more;
      const bool closed = body->take(more);
      piece += more;
      if (!piece.empty()) {
        std::string wire = piece;
        if (chunked) {
          char size[20];
          std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
          wire = size + piece + "\r\n";
        }
        lowest.expires_after(options.idle_timeout);
        auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(wire), kTuple);
        (void)wn;
        if (wec) co_return false;
        piece.clear();
      }
      if (closed) break;
      timer->expires_after(options.idle_timeout);
      auto [tec] = co_await timer->async_wait(kTuple);
      if (!tec) {
        // Nothing for a whole idle timeout: a heartbeat (which also finds a client that left),
        // or the end of the response.
        if (body->heartbeat().empty()) co_return false;
        piece = body->heartbeat();
      }
    }
    if (!chunked) co_return false;
    lowest.expires_after(options.read_timeout);
    auto [eec, en] =
        co_await asio::async_write(stream, asio::buffer(std::string_view("0\r\n\r\n")), kTuple);
    (void)en;
    co_return !eec && keep_alive;
  }

  template <class Stream>
  awaitable<void> serve(Stream& stream, const std::string& remote, bool tls) {
    beast::flat_buffer buffer;
    auto& lowest = beast::get_lowest_layer(stream);
    for (bool first = true;; first = false) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      lowest.expires_after(first ? options.read_timeout : options.idle_timeout);
      // Wait for the first byte of the next request under the idle timeout, then give the
      // whole request the read timeout.
      if (!first && buffer.size() == 0) {
        auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
        if (ec) co_return;
        (void)n;
      }
      lowest.expires_after(options.read_timeout);
      auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
      (void)n;
      if (ec) {
        int status = 0;
        if (ec == bhttp::error::header_limit)
          status = 431;
        else if (ec == bhttp::error::body_limit)
          status = 413;
        else if (ec != bhttp::error::end_of_stream && ec != asio::error::eof &&
                 ec != beast::error::timeout && ec != asio::error::operation_aborted &&
                 ec != asio::ssl::error::stream_truncated && ec != asio::error::connection_reset)
          status = 400;
        if (status) {
          std::string message = status == 431   ? "Request header fields too large"
                                : status == 413 ? "Request body too large"
                                                : "Bad request: " + ec.message();
          auto res = to_beast(local_error(status, std::move(message)), 11, false);
          lowest.expires_after(options.read_timeout);
          auto [wec, wn] = co_await bhttp::async_write(stream, res, kTuple);
          (void)wn;
          // Lingering close: a client still sending the body we refused would see a reset
          // instead of our answer; read and drop what it sends, bounded in bytes and time.
          if (!wec) {
            lowest.expires_after(std::chrono::seconds(1));
            char sink[16384];
            for (std::size_t total = 0; total < (1u << 20);) {
              auto [rec, rn] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
              if (rec) break;
              total += rn;
            }
          }
        }
        co_return;
      }
      auto& breq = parser.get();
      http::Request req;
      req.method = std::string(breq.method_string());
      req.target = std::string(breq.target());
      for (const auto& field : breq)
        req.headers.add(std::string(field.name_string()), std::string(field.value()));
      req.body = std::move(breq.body());
      req.remote_address = remote;
      req.tls = tls;
      const bool keep_alive = breq.keep_alive() && !stopped.load();
      const unsigned version = breq.version();
      http::Response answer = call_handler(std::move(req));
      if (answer.stream) {
        if (!co_await stream_body(stream, std::move(answer), version, keep_alive)) co_return;
        continue;
      }
      auto res = to_beast(std::move(answer), version, keep_alive);
      lowest.expires_after(options.read_timeout);
      auto [wec, wn] = co_await bhttp::async_write(stream, res, kTuple);
      (void)wn;
      if (wec || !keep_alive) co_return;
    }
  }

  std::unique_ptr<Acceptors> acceptors;
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}

HttpServer::~HttpServer() { stop(); }

const std::vector<BoundAddress>& HttpServer::bound() const { return impl_->bound; }

core::Result<std::unique_ptr<HttpServer>, std::string> HttpServer::start(HttpServerOptions options,
                                                                         Handler handler) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  Impl& impl = *server->impl_;
  impl.options = std::move(options);
  impl.handler = std::move(handler);
  const std::size_t threads = std::max<std::size_t>(1, impl.options.threads);
  for (std::size_t i = 0; i < threads; ++i)
    impl.contexts.push_back(std::make_unique<asio::io_context>(1));

  for (const auto& listen : impl.options.listen) {
    if (listen.tls && !impl.options.tls)
      return core::fail(std::string("a TLS listener needs a certificate"));
  }
  std::vector<asio::io_context*> contexts;
  for (auto& c : impl.contexts) contexts.push_back(c.get());
  auto acceptors = Acceptors::open(
      impl.options.listen, contexts, [&impl](tcp::socket socket, bool tls, std::size_t worker) {
        if (++impl.connections > impl.options.max_connections) {
          --impl.connections;
          boost::system::error_code ignored;
          socket.close(ignored);
          return;
        }
        auto serve = [&impl](auto& stream, const std::string& remote, bool secure) {
          return impl.serve(stream, remote, secure);
        };
        asio::co_spawn(*impl.contexts[worker],
                       run_connection(std::move(socket), ConnectionGuard(impl.connections),
                                      tls ? impl.options.tls.get() : nullptr,
                                      impl.options.read_timeout, serve),
                       asio::detached);
      });
  if (!acceptors) return core::fail(acceptors.error());
  impl.acceptors = std::move(acceptors.value());
  impl.bound = impl.acceptors->bound();
  for (auto& ctx : impl.contexts) {
    impl.threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  return server;
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  for (auto& ctx : impl_->contexts) ctx->stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  // Destroy the contexts (and with them the suspended sessions) while Impl is still whole;
  // Asio objects go before the context they belong to.
  impl_->acceptors.reset();
  impl_->contexts.clear();
}

}  // namespace mcpgate::net
