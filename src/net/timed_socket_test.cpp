#include "net/timed_socket.hpp"

#include "net/upstream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace mcpgate::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// A connected loopback pair: `ours` wrapped, `peer` plain.
struct Pair {
  asio::io_context ioc{1};
  std::optional<TimedSocket> ours;
  tcp::socket peer{ioc};
  Pair() {
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket client(ioc);
    client.connect(acceptor.local_endpoint());
    peer = acceptor.accept();
    ours.emplace(std::move(client));
  }
  template <class F>
  void run(F f) {
    asio::co_spawn(ioc, std::move(f), asio::detached);
    ioc.run_for(5s);
  }
};

TEST(TimedSocket, APendingReadPastItsDeadlineIsATimeoutAndClosesTheSocket) {
  Pair p;
  boost::system::error_code got;
  const auto started = std::chrono::steady_clock::now();
  p.run([&]() -> asio::awaitable<void> {
    char c;
    p.ours->expires_after(50ms);
    auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    got = ec;
  });
  EXPECT_EQ(got, boost::beast::error::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 50ms);
  EXPECT_FALSE(p.ours->socket().is_open());
}

TEST(TimedSocket, AnOperationStartedAfterTheDeadlineFailsAtOnce) {
  Pair p;
  boost::system::error_code got;
  p.run([&]() -> asio::awaitable<void> {
    p.ours->expires_at(std::chrono::steady_clock::now() - 1ms);
    auto [ec, n] = co_await asio::async_write(*p.ours, asio::buffer("x", 1), kTuple);
    got = ec;
  });
  EXPECT_EQ(got, boost::beast::error::timeout);
}

TEST(TimedSocket, ADeadlineMovedLaterOrPassedWithNothingPendingDoesNotFire) {
  Pair p;
  boost::system::error_code first, second;
  std::size_t got = 0;
  p.run([&]() -> asio::awaitable<void> {
    char c;
    // The timer is armed for 30 ms; the read completes before it (the peer writes at once).
    p.ours->expires_after(30ms);
    asio::write(p.peer, asio::buffer("a", 1));
    auto [ec1, n1] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    first = ec1;
    got += n1;
    // Nothing pending when it fires; then the deadline moves to 200 ms, and the peer answers
    // after 80 ms: the read must succeed although the first wait ended before that.
    asio::steady_timer t(p.ioc);
    t.expires_after(50ms);
    co_await t.async_wait(kTuple);
    p.ours->expires_after(200ms);
    asio::steady_timer later(p.ioc);
    later.expires_after(80ms);
    later.async_wait([&](auto) { asio::write(p.peer, asio::buffer("b", 1)); });
    auto [ec2, n2] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    second = ec2;
    got += n2;
  });
  EXPECT_FALSE(first) << first.message();
  EXPECT_FALSE(second) << second.message();
  EXPECT_EQ(got, 2u);
  EXPECT_TRUE(p.ours->socket().is_open());
}

TEST(TimedSocket, ADeadlineMovedLaterWhileAReadIsPendingWaitsAgain) {
  Pair p;
  boost::system::error_code got;
  std::size_t n_read = 0;
  p.run([&]() -> asio::awaitable<void> {
    char c;
    p.ours->expires_after(30ms);
    asio::steady_timer extend(p.ioc), answer(p.ioc);
    extend.expires_after(10ms);
    extend.async_wait([&](auto) { p.ours->expires_after(300ms); });
    answer.expires_after(80ms);
    answer.async_wait([&](auto) { asio::write(p.peer, asio::buffer("a", 1)); });
    auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    got = ec;
    n_read = n;
  });
  EXPECT_FALSE(got) << got.message();
  EXPECT_EQ(n_read, 1u);
}

TEST(TimedSocket, ADeadlineMovedEarlierWhileAReadIsPendingApplies) {
  Pair p;
  boost::system::error_code got;
  const auto started = std::chrono::steady_clock::now();
  p.run([&]() -> asio::awaitable<void> {
    char c;
    p.ours->expires_after(10s);
    asio::steady_timer shorten(p.ioc);
    shorten.expires_after(20ms);
    shorten.async_wait([&](auto) { p.ours->expires_after(30ms); });
    auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    got = ec;
  });
  EXPECT_EQ(got, boost::beast::error::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
}

TEST(TimedSocket, AnEarlierDeadlineReArmsTheTimer) {
  Pair p;
  boost::system::error_code got;
  const auto started = std::chrono::steady_clock::now();
  p.run([&]() -> asio::awaitable<void> {
    char c;
    p.ours->expires_after(10s);  // armed far out
    asio::write(p.peer, asio::buffer("a", 1));
    co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    p.ours->expires_after(40ms);  // earlier than the armed timer: it must move
    auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
    got = ec;
  });
  EXPECT_EQ(got, boost::beast::error::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s);
}

TEST(TimedSocket, DisarmLeavesNoTimerPending) {
  for (const bool disarm : {false, true}) {
    Pair p;
    bool read = false;
    asio::co_spawn(
        p.ioc,
        [&]() -> asio::awaitable<void> {
          char c;
          p.ours->expires_after(1h);  // the timer is armed for an hour
          auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
          read = !ec && n == 1;
        },
        asio::detached);
    p.peer.write_some(asio::buffer("x", 1));
    for (int i = 0; !read && i < 50; ++i) p.ioc.run_one_for(100ms);
    ASSERT_TRUE(read);
    if (disarm) p.ours->disarm();
    p.ioc.poll();
    // With nothing else pending, the context runs out of work only when no timer waits.
    EXPECT_EQ(p.ioc.stopped(), disarm);
    if (disarm) {
      // Still usable, with no deadline: a read waits until bytes come.
      bool again = false;
      p.ioc.restart();
      asio::co_spawn(
          p.ioc,
          [&]() -> asio::awaitable<void> {
            char c;
            auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
            again = !ec && n == 1;
          },
          asio::detached);
      p.peer.write_some(asio::buffer("y", 1));
      p.ioc.run_for(5s);
      EXPECT_TRUE(again);
    }
  }
}

TEST(TimedSocket, NoDeadlineWaitsAndDestructionEndsAPendingRead) {
  Pair p;
  bool completed = false;
  boost::system::error_code got;
  asio::co_spawn(
      p.ioc,
      [&]() -> asio::awaitable<void> {
        char c;
        p.ours->expires_never();
        auto [ec, n] = co_await p.ours->async_read_some(asio::buffer(&c, 1), kTuple);
        got = ec;
        completed = true;
      },
      asio::detached);
  p.ioc.run_for(100ms);
  EXPECT_FALSE(completed);
  p.ours.reset();  // the socket closes; the pending read ends, its state still valid
  p.ioc.run_for(1s);
  EXPECT_TRUE(completed);
  EXPECT_EQ(got, asio::error::operation_aborted);
}

TEST(TimedSocket, WriteNowSendsWhatTheSocketTakesAtOnceSkippingEmptyBuffers) {
  Pair p;
  const std::string a = "HTTP/1.1 200 OK\r\n\r\n", b = "{\"ok\":true}";
  const std::array<asio::const_buffer, 3> bufs{asio::buffer(a), asio::const_buffer(),
                                               asio::buffer(b)};
  boost::system::error_code ec;
  EXPECT_EQ(p.ours->write_now(bufs, ec), a.size() + b.size());
  EXPECT_FALSE(ec);
  std::string got(a.size() + b.size(), '\0');
  asio::read(p.peer, asio::buffer(got));
  EXPECT_EQ(got, a + b);
  // Nothing to write is no error.
  EXPECT_EQ(p.ours->write_now(asio::const_buffer(), ec), 0u);
  EXPECT_FALSE(ec);
}

TEST(TimedSocket, WriteNowOnAFullSocketWritesAPartWithoutErrorAndTheRestGoesAsync) {
  Pair p;
  p.ours->socket().set_option(asio::socket_base::send_buffer_size(4096));
  std::string big(1 << 20, 'x');  // more than the socket buffers hold while nobody reads
  for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>('a' + i % 26);
  boost::system::error_code ec;
  std::size_t now = 0;
  // The kernel takes a part, then (its buffers full) nothing: never an error.
  for (int i = 0; i < 1000; ++i) {
    const std::size_t n = p.ours->write_now(asio::buffer(big.data() + now, big.size() - now), ec);
    ASSERT_FALSE(ec) << ec.message();
    if (n == 0) break;
    now += n;
  }
  EXPECT_GT(now, 0u);
  ASSERT_LT(now, big.size());
  // The rest goes through async_write while the peer reads it all.
  std::string got(big.size(), '\0');
  boost::system::error_code rec;
  std::thread reader([&] { asio::read(p.peer, asio::buffer(got), rec); });
  boost::system::error_code wec = asio::error::would_block;
  p.run([&]() -> asio::awaitable<void> {
    auto [e, n] = co_await asio::async_write(
        *p.ours, asio::buffer(big.data() + now, big.size() - now), kTuple);
    wec = e;
  });
  // The reader would wait for bytes that never come: end its read (a shutdown touches only
  // the descriptor, which the reader's thread is blocked on).
  if (wec) ::shutdown(p.peer.native_handle(), SHUT_RDWR);
  reader.join();
  EXPECT_FALSE(wec) << wec.message() << " after " << now;
  EXPECT_FALSE(rec) << rec.message();
  EXPECT_TRUE(got == big);
}

TEST(TimedSocket, WriteNowPastTheDeadlineIsATimeoutAndClosesTheSocket) {
  Pair p;
  p.ours->expires_at(TimedSocket::clock::now() - 1ms);
  boost::system::error_code ec;
  EXPECT_EQ(p.ours->write_now(asio::buffer("x", 1), ec), 0u);
  EXPECT_EQ(ec, boost::beast::error::timeout);
  EXPECT_FALSE(p.ours->socket().is_open());
  EXPECT_EQ(p.ours->write_now(asio::buffer("x", 1), ec), 0u);
  EXPECT_EQ(ec, boost::beast::error::timeout);
}

TEST(TimedSocket, WriteNowToAPeerThatLeftIsAnErrorNotASignal) {
  Pair p;
  p.peer.set_option(asio::socket_base::linger(true, 0));  // an RST, not a FIN
  p.peer.close();
  boost::system::error_code ec;
  for (int i = 0; i < 100 && !ec; ++i) {
    p.ours->write_now(asio::buffer("x", 1), ec);
    if (!ec) std::this_thread::sleep_for(1ms);
  }
  EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
      << ec.message();
}

TEST(Resolve, LiteralsAtOnceAndNamesThroughTheResolver) {
  asio::io_context ioc;
  const auto run = [&](std::string host) {
    std::vector<tcp::endpoint> got;
    boost::system::error_code ec;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          auto [rec, results] = co_await resolve(ioc, host, "8080");
          ec = rec;
          for (const auto& r : results) got.push_back(r.endpoint());
        },
        asio::detached);
    ioc.restart();
    ioc.run_for(10s);
    EXPECT_FALSE(ec) << host << ": " << ec.message();
    return got;
  };
  const auto v4 = run("127.0.0.1");
  ASSERT_EQ(v4.size(), 1u);
  EXPECT_EQ(v4[0], tcp::endpoint(asio::ip::make_address("127.0.0.1"), 8080));
  const auto v6 = run("::1");
  ASSERT_EQ(v6.size(), 1u);
  EXPECT_EQ(v6[0], tcp::endpoint(asio::ip::make_address("::1"), 8080));
  const auto named = run("localhost");  // /etc/hosts
  ASSERT_FALSE(named.empty());
  for (const auto& e : named) {
    EXPECT_TRUE(e.address().is_loopback()) << e.address().to_string();
    EXPECT_EQ(e.port(), 8080);
  }
}

}  // namespace
}  // namespace mcpgate::net
