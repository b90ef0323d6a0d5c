// net: a TCP socket with deadlines, for every server and upstream connection. Includes Asio: for
// net/ and proxy/ sources only.
#pragma once

#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <utility>

namespace mcpgate::net {

// Memory for an operation that may stay pending for long (a timer, an idle stream's wait), sized
// to it. Asio's default reuses a thread's last freed block — often a larger read or write
// operation's — and keeps it for as long as the operation is pending.
template <class T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  template <class U>
  bool operator==(const ExactAllocator<U>&) const noexcept {
    return true;
  }
};
template <class Handler>
auto exact_memory(Handler&& h) {
  return boost::asio::bind_allocator(ExactAllocator<void>(), std::forward<Handler>(h));
}

// The deadline rules of Beast's tcp_stream — a read or write pending when the deadline passes
// fails with beast::error::timeout and the socket is closed; one started after it fails at once —
// for a fraction of the cost. tcp_stream arms and cancels a timer around every read and write
// (several per proxied request); here one timer per connection stays armed, and is moved only
// when a deadline comes earlier than it would fire. When it fires with nothing pending, or with
// the deadline moved later, it does nothing or waits again.
class TimedSocket {
  struct State;

 public:
  // The io_context's own executor, not the type-erased one the socket carries: Beast's composed
  // reads and writes copy their stream's executor several times per operation, and copying
  // any_io_executor goes through its type erasure (about 6 % of a proxied request).
  using executor_type = boost::asio::io_context::executor_type;
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  explicit TimedSocket(boost::asio::ip::tcp::socket socket)
      : st_(std::make_shared<State>(std::move(socket))) {}
  TimedSocket(TimedSocket&&) noexcept = default;
  TimedSocket& operator=(TimedSocket&& other) noexcept {
    if (this != &other) {
      shut(st_);
      st_ = std::move(other.st_);
    }
    return *this;
  }
  ~TimedSocket() { shut(st_); }

  executor_type get_executor() { return st_->executor; }
  boost::asio::ip::tcp::socket& socket() { return st_->socket; }
  using lowest_layer_type = boost::asio::ip::tcp::socket;  // what asio::ssl::stream asks for
  lowest_layer_type& lowest_layer() { return st_->socket; }

  // The deadline of the operations that follow, and of those pending.
  void expires_at(time_point t) {
    st_->deadline = t;
    if (st_->pending > 0 && st_->armed > t) arm(st_);  // earlier than the timer would fire
  }
  void expires_after(clock::duration d) { expires_at(clock::now() + d); }
  void expires_never() { st_->deadline = time_point::max(); }
  // No deadline from now on, and no timer operation left pending for an earlier one: for a
  // connection that may stay open for hours (an event stream), at the cost of arming anew
  // should a deadline come back.
  void disarm() {
    st_->deadline = time_point::max();
    if (st_->armed != time_point::max()) {
      st_->armed = time_point::max();  // the cancelled wait finds it changed and does nothing
      st_->timer.cancel();
    }
  }
  void close() {
    boost::system::error_code ignored;
    st_->socket.close(ignored);
  }

  // Writes what the kernel takes at once, without an asynchronous operation: Asio queues the
  // completion of even a write that went through at once for a later turn of its loop (about
  // 1,700 instructions a write, by callgrind). Returns the bytes written — all of them, mostly,
  // for an answer or a request head; fewer (even 0) when the socket is full, which is no error:
  // the caller writes the rest with async_write. ec: a failure, or timeout once the deadline
  // has passed.
  template <class Buffers>
  std::size_t write_now(const Buffers& buffers, boost::system::error_code& ec) {
    ec = {};
    State& st = *st_;
    if (st.expired || (st.deadline != time_point::max() && clock::now() >= st.deadline)) {
      if (!st.expired) expire(st);
      ec = boost::beast::error::timeout;
      return 0;
    }
    constexpr std::size_t kMax = 8;
    iovec iov[kMax];
    std::size_t n = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      if (n == kMax) break;  // the rest goes with async_write
      iov[n++] = {const_cast<void*>(b.data()), b.size()};
    }
    if (n == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    const ssize_t r = ::sendmsg(st.socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      ec.assign(errno, boost::system::system_category());
    return 0;
  }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        Initiate<true>{st_}, token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        Initiate<false>{st_}, token, buffers);
  }

  // Completes an operation: the handler sees beast::error::timeout once the deadline closed the
  // socket. Forwards the handler's executor, allocator and cancellation slot (see below).
  template <class Handler>
  struct Done {
    std::shared_ptr<State> st;
    Handler handler;
    void operator()(boost::system::error_code ec, std::size_t n) {
      --st->pending;
      if (ec && st->expired) ec = boost::beast::error::timeout;
      std::move(handler)(ec, n);
    }
  };

 private:
  struct State {
    explicit State(boost::asio::ip::tcp::socket s)
        : socket(std::move(s)), timer(socket.get_executor()), executor(context_executor(socket)) {}
    // Every socket here belongs to an io_context (the workers', the clients').
    static executor_type context_executor(boost::asio::ip::tcp::socket& s) {
      const auto* ex = s.get_executor().target<executor_type>();
      if (!ex) throw std::logic_error("TimedSocket: the socket's executor is not an io_context's");
      return *ex;
    }
    boost::asio::ip::tcp::socket socket;
    boost::asio::steady_timer timer;
    executor_type executor;
    time_point deadline = time_point::max();
    time_point armed = time_point::max();  // when the timer's wait ends; max: none pending
    int pending = 0;
    bool expired = false;
  };
  template <bool kRead>
  struct Initiate {
    std::shared_ptr<State> st;
    template <class Handler, class Buffers>
    void operator()(Handler&& handler, const Buffers& buffers) {
      using H = std::decay_t<Handler>;
      if (!begin(st)) {
        const auto ex = boost::asio::get_associated_executor(handler, st->socket.get_executor());
        boost::asio::post(ex, [h = H(std::forward<Handler>(handler))]() mutable {
          std::move(h)(boost::beast::error::timeout, std::size_t{0});
        });
        return;
      }
      if constexpr (kRead) {
        st->socket.async_read_some(buffers, Done<H>{st, std::forward<Handler>(handler)});
      } else {
        st->socket.async_write_some(buffers, Done<H>{st, std::forward<Handler>(handler)});
      }
    }
  };

  // Before an operation: false (and the socket closed) when the deadline has passed.
  static bool begin(const std::shared_ptr<State>& st) {
    if (st->deadline != time_point::max()) {
      if (clock::now() >= st->deadline) {
        expire(*st);
        return false;
      }
      if (st->armed > st->deadline) arm(st);
    }
    ++st->pending;
    return true;
  }
  static void arm(const std::shared_ptr<State>& st) {
    const time_point when = st->deadline;
    st->armed = when;
    st->timer.expires_at(when);  // a wait still pending ends early and finds `armed` changed
    st->timer.async_wait(exact_memory([st, when](boost::system::error_code) { fired(st, when); }));
  }
  static void fired(const std::shared_ptr<State>& st, time_point when) {
    if (st->armed != when) return;  // re-armed or shut since
    st->armed = time_point::max();
    if (st->pending == 0 || st->deadline == time_point::max()) return;
    if (clock::now() >= st->deadline) {
      expire(*st);
    } else {
      arm(st);  // the deadline moved later meanwhile
    }
  }
  static void expire(State& st) {
    st.expired = true;
    boost::system::error_code ignored;
    st.socket.close(ignored);  // pending operations end now, as timeouts
  }
  static void shut(const std::shared_ptr<State>& st) {
    if (!st) return;
    st->armed = time_point::max();
    st->timer.cancel();
    boost::system::error_code ignored;
    st->socket.close(ignored);
  }

  std::shared_ptr<State> st_;
};

}  // namespace mcpgate::net

// A Done handler carries its inner handler's associations: the coroutine it resumes keeps its
// executor, allocator and cancellation slot.
template <template <class, class> class Associator, class Handler, class DefaultCandidate>
struct boost::asio::associator<Associator, mcpgate::net::TimedSocket::Done<Handler>,
                               DefaultCandidate> : Associator<Handler, DefaultCandidate> {
  static typename Associator<Handler, DefaultCandidate>::type get(
      const mcpgate::net::TimedSocket::Done<Handler>& h) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler);
  }
  static auto get(const mcpgate::net::TimedSocket::Done<Handler>& h,
                  const DefaultCandidate& c) noexcept
      -> decltype(Associator<Handler, DefaultCandidate>::get(h.handler, c)) {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};
