#include "proxy/gateway.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <forward_list>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/time.hpp"
#include "crypto/digest.hpp"
#include "http/head.hpp"
#include "jwt/validate.hpp"
#include "mcp/jsonrpc.hpp"
#include "net/listener.hpp"
#include "net/upstream.hpp"
#include "oidc/key_provider.hpp"
#include "policy/runtime.hpp"
#include "proxy/local_reply.hpp"
#include "proxy/runtime.hpp"

namespace mcpgate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

// 32 hex digits: 64 random bits drawn once per worker, then a counter. Unique per process and
// cheap: a CSPRNG call per request costs more than the rest of the request's bookkeeping.
std::string new_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  // The first half, written once per worker; the counter's half after it on each call.
  thread_local char out[32] = {};
  thread_local std::uint64_t counter = 0;
  if (counter == 0) {
    std::uint64_t a;
    std::memcpy(&a, crypto::random_bytes(8).data(), 8);
    for (int i = 15; i >= 0; --i, a >>= 4) out[i] = kHex[a & 15];
  }
  std::uint64_t b = ++counter;
  for (int i = 31; i >= 16; --i, b >>= 4) out[i] = kHex[b & 15];
  return std::string(out, sizeof out);
}

bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// Legacy HTTP+SSE (MCP 2024-11-05): the first event names the URL to POST messages to, relative
// to the server's root (`event: endpoint` / `data: /message?sessionId=…`). When the gateway maps
// a prefix onto that root, the path must carry the prefix again or the client's POSTs miss.
struct EndpointRewriter {
  std::string prefix;   // the API's path, e.g. "/legacy"
  std::string pending;  // bytes of the first event seen so far
  std::string out;      // what to write instead of the bytes read
  bool done = false;
  static constexpr std::size_t kMaxFirstEvent = 8192;

  // Feeds bytes read from the upstream; returns the bytes to write (possibly none yet).
  std::string_view feed(std::string_view chunk, bool last) {
    if (done) return chunk;
    pending.append(chunk);
    auto end = pending.find("\n\n");
    const auto crlf = pending.find("\r\n\r\n");
    if (end == std::string::npos || (crlf != std::string::npos && crlf < end)) end = crlf;
    if (end == std::string::npos && pending.size() < kMaxFirstEvent && !last) return {};
    done = true;
    out = rewrite(std::move(pending));
    return out;
  }

  std::string rewrite(std::string s) const {
    const auto event_end = s.find("\n\n") != std::string::npos ? s.find("\n\n") : s.size();
    const std::string_view event = std::string_view(s).substr(0, event_end);
    if (event.find("event: endpoint") == std::string_view::npos &&
        event.find("event:endpoint") == std::string_view::npos) {
      return s;
    }
    for (const char* key : {"data: /", "data:/"}) {
      const auto at = s.find(key);
      if (at != std::string::npos && at < event_end) {
        const auto path_at = at + std::strlen(key) - 1;
        if (s.compare(path_at, prefix.size() + 1, prefix + "/") != 0) s.insert(path_at, prefix);
        break;
      }
    }
    return s;
  }
};

// While an event stream is relayed, the client sends nothing; the first sign of it reading
// ready is its going away (or a pipelined request, which nobody sends during an SSE response).
// While an event stream is relayed, the client sends nothing; the first sign of it reading
// ready is its going away (or a pipelined request, which nobody sends during an SSE response).
struct ClientWatch {
  bool active = true;
  bool client_gone = false;
  net::UpstreamConn* upstream = nullptr;
};

// A plain completion handler, not a coroutine: an idle stream keeps no frame for it.
void watch_client(tcp::socket& client, std::shared_ptr<ClientWatch> watch) {
  client.async_wait(tcp::socket::wait_read,
                    net::exact_memory([watch](boost::system::error_code ec) {
                      if (!watch->active || ec == asio::error::operation_aborted) return;
                      watch->client_gone = true;
                      watch->upstream->close();  // ends the relay's pending upstream read at once
                    }));
}

// SSE keep-alive comments (`:` lines) for silent streams, written between events only. The relay
// and the heartbeat take turns at the client: `writing` says one of them is at it.
struct Heartbeat {
  explicit Heartbeat(asio::io_context& ioc) : timer(ioc), wake(ioc) {}
  asio::steady_timer timer;  // the next comment is due
  asio::steady_timer wake;   // the relay waits here while a comment is being written
  Clock::time_point last_write = Clock::now();
  bool active = true;
  bool writing = false;
  bool chunked = false;  // the response to the client is chunked: comments go as chunks
  char tail[4] = {'\n', '\n', '\n', '\n'};  // the last bytes written

  bool at_event_boundary() const {
    return (tail[2] == '\n' && tail[3] == '\n') ||
           (tail[0] == '\r' && tail[1] == '\n' && tail[2] == '\r' && tail[3] == '\n') ||
           (tail[2] == '\r' && tail[3] == '\r');
  }
  void wrote(const char* data, std::size_t n) {
    for (std::size_t i = n > 4 ? n - 4 : 0; i < n; ++i) {
      std::memmove(tail, tail + 1, 3);
      tail[3] = data[i];
    }
    last_write = Clock::now();
  }
};

// Upper bounds of the latency histogram buckets, in seconds.
constexpr double kBuckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr std::size_t kBucketCount = std::size(kBuckets);
constexpr std::size_t kRelayBuffer = 16 * 1024;
// The application a token was issued to (appid/azp), as the access log shows it.
std::string logged_client(const jwt::VerifiedToken& token) {
  return core::printable(jwt::client_application(token), 64);
}
constexpr int kMaxInterim = 16;  // 1xx answers read past before the final one

// Relay buffers, one worker's: a request borrows one while a body passes through it and gives it
// back, so an idle connection (keep-alive between requests, an event stream between events)
// holds none.
class BufferPool {
 public:
  std::unique_ptr<char[]> take() {
    if (free_.empty()) return std::unique_ptr<char[]>(new char[kRelayBuffer]);
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::unique_ptr<char[]> b) {
    if (b && free_.size() < kMaxFree) free_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t kMaxFree = 64;
  std::vector<std::unique_ptr<char[]>> free_;
};

class RelayBuffer {
 public:
  explicit RelayBuffer(BufferPool& pool) : pool_(pool) {}
  RelayBuffer(const RelayBuffer&) = delete;
  RelayBuffer& operator=(const RelayBuffer&) = delete;
  ~RelayBuffer() { release(); }
  char* get() {
    if (!buf_) buf_ = pool_.take();
    return buf_.get();
  }
  void release() { pool_.give(std::move(buf_)); }

 private:
  BufferPool& pool_;
  std::unique_ptr<char[]> buf_;
};
// Metrics rows: one per API name ever configured (reloads included); row 0 counts requests that
// matched no API, the last row every API beyond the table.
constexpr std::size_t kMaxSlots = 256;
// Distinct (API, MCP method, tool) series per worker; tools beyond are counted as "(other)".
constexpr std::size_t kMaxMcpSeries = 1000;

// Counters of one API on one worker: written by that worker only (relaxed atomics, no sharing of
// cache lines between workers), summed when /metrics is scraped.
struct ApiStats {
  std::atomic<std::uint64_t> by_class[6] = {};  // 1xx..5xx, other
  std::atomic<std::uint64_t> buckets[kBucketCount + 1] = {};
  std::atomic<std::uint64_t> duration_us = 0;
  std::atomic<std::uint64_t> upstream_errors = 0;
};

void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::string prometheus_label(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Sets the stream's deadline for its next operations: `timeout` from now, but never past the
// request's `deadline` (Clock::time_point::max(): none — an event stream's upstream, whose timer
// is then let go).
template <class Stream>
void arm(Stream& s, std::chrono::milliseconds timeout, Clock::time_point deadline) {
  const auto until = timeout.count() > 0 ? std::min(Clock::now() + timeout, deadline) : deadline;
  auto& lowest = beast::get_lowest_layer(s);
  if (until == Clock::time_point::max()) {
    lowest.disarm();
  } else {
    lowest.expires_at(until);
  }
}

// A Host header against an API's allow-list: "name" entries match any port, "name:port" entries
// that port only; names compare case-insensitively.
bool host_allowed(std::string_view host, const std::vector<std::string>& allowed) {
  std::string_view name = host;
  if (host.starts_with('[')) {
    name = host.substr(0, host.find(']') + 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
  }
  for (const auto& a : allowed) {
    if (core::iequals(a, host) || core::iequals(a, name)) return true;
  }
  return false;
}

struct RelayOptions {
  std::chrono::milliseconds read_timeout{0};  // 0: none (event streams)
  std::chrono::milliseconds write_timeout{0};
  Clock::time_point deadline = Clock::time_point::max();
  std::uint64_t* copied = nullptr;   // body bytes read
  std::uint64_t* written = nullptr;  // bytes written: head, framing and body
  EndpointRewriter* rewriter = nullptr;
  Heartbeat* heartbeat = nullptr;
  // An event stream: between events, hold no relay buffer.
  bool idle_without_buffer = false;
  // ...and, from a plain-TCP upstream, wait for its next bytes on the socket itself: no read
  // buffer and no read operation held while it is silent.
  tcp::socket* idle_socket = nullptr;
  // ...or, rather than wait there, return `parked`: the caller waits on idle_socket with no
  // coroutine frame held, and calls again with `readable` set once bytes have come.
  bool park = false;
  bool readable = false;
};

struct RelayResult {
  boost::system::error_code ec;
  bool reading = false;  // the error came from the side being read
  bool parked = false;   // nothing to read: wait on the idle socket, then call again
};

// How a relayed body goes out: not at all (a head-only answer), as it is read (Content-Length,
// or until the connection closes), or in chunks of our own (RFC 9112 §7.1).
enum class Framing { kNone, kRaw, kChunked };

// A message head as it goes on the wire: start line, fields, empty line. Written by hand rather
// than by Beast's serializer, so a head and the first bytes of its body leave in one write.
void append_version(std::string& out, unsigned version) {
  out.append("HTTP/", 5);
  out.push_back(static_cast<char>('0' + version / 10 % 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + version % 10));
}
// core::iequals with the length compared first, inline: a field name is compared with several
// names per field on the request path, and most differ in length.
bool name_is(std::string_view name, std::string_view want) {
  return name.size() == want.size() && core::iequals(name, want);
}

// A message's first field of this name, in arrival order (nullptr if none).
const http::HeadField* find_field(const std::vector<http::HeadField>& fields,
                                  std::string_view name) {
  for (const auto& f : fields)
    if (name_is(f.name, name)) return &f;
  return nullptr;
}

// A message's fields as the policy engine and the proxy see them: views into its head as it
// arrived (an answer's: good until its upstream is read again; a request's: into its copy), and
// the lines a policy added, held here. Nothing is copied unless a policy adds a line.
class ViewFields final : public policy::HeaderMap {
 public:
  explicit ViewFields(std::vector<http::HeadField>& fields) : f_(fields) {}
  std::vector<std::string> values(std::string_view name) const override {
    std::vector<std::string> out;
    for (const auto& x : f_)
      if (name_is(x.name, name)) out.emplace_back(x.value);
    return out;
  }
  std::optional<std::string_view> first(std::string_view name) const override {
    const http::HeadField* x = find_field(f_, name);
    if (!x) return std::nullopt;
    return x->value;
  }
  void erase(std::string_view name) override {
    std::erase_if(f_, [&](const http::HeadField& x) { return name_is(x.name, name); });
  }
  void add(std::string_view name, std::string_view value) override {
    added_.emplace_front(name);
    const std::string_view n = added_.front();
    added_.emplace_front(value);
    f_.push_back({n, added_.front()});
  }
  const std::vector<http::HeadField>& list() const { return f_; }

 private:
  std::vector<http::HeadField>& f_;
  std::forward_list<std::string> added_;  // nodes never move: the views above stay good
};

// Whether a comma-separated list (#token, RFC 9110 §5.6.1) holds `token`, in any case.
bool lists_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (core::iequals(core::trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Hop-by-hop fields of a message (RFC 9110 §7.6.1): the standard ones and those its Connection
// lines name (`listed`: every Connection line, joined). Framing lines are the relay's to decide.
bool hop_by_hop(std::string_view name, std::string_view listed) {
  switch (name.size()) {
    case 2:
      if (core::iequals(name, "TE")) return true;
      break;
    case 6:
      if (core::iequals(name, "Expect")) return true;
      break;
    case 7:
      if (core::iequals(name, "Upgrade") || core::iequals(name, "Trailer")) return true;
      break;
    case 10:
      if (core::iequals(name, "Connection") || core::iequals(name, "Keep-Alive")) return true;
      break;
    case 14:
      if (core::iequals(name, "Content-Length")) return false;
      break;
    case 16:
      if (core::iequals(name, "Proxy-Connection")) return true;
      break;
    case 17:
      if (core::iequals(name, "Transfer-Encoding")) return false;
      break;
  }
  return lists_token(listed, name);
}

std::string connection_lines(const std::vector<http::HeadField>& fields) {
  std::string listed;
  for (const auto& f : fields)
    if (name_is(f.name, "Connection")) listed.append(listed.empty() ? "" : ",").append(f.value);
  return listed;
}

// Whether a message lets its connection be used again (RFC 9112 §9.3): HTTP/1.1 unless it says
// close, HTTP/1.0 only when it says keep-alive.
bool keeps_alive(unsigned version, std::string_view listed) {
  return !lists_token(listed, "close") && (version >= 11 || lists_token(listed, "keep-alive"));
}

// The answer: X-Request-Id is the gateway's; so are X-Accel-Buffering on event streams and the
// framing line of an answer with a body.
bool framing_name(std::string_view n) {
  return name_is(n, "Content-Length") || name_is(n, "Transfer-Encoding");
}
bool gateway_response_field(std::string_view n) { return name_is(n, "X-Request-Id"); }
bool gateway_body_response_field(std::string_view n) {
  return framing_name(n) || name_is(n, "X-Request-Id");
}
bool gateway_stream_field(std::string_view n) {
  return framing_name(n) || name_is(n, "X-Request-Id") || name_is(n, "X-Accel-Buffering");
}
bool gateway_stream_head_field(std::string_view n) {  // HEAD of a stream
  return name_is(n, "X-Request-Id") || name_is(n, "X-Accel-Buffering");
}

// The upstream request: Host, X-Request-Id and X-Forwarded-* are the gateway's, and so is the
// framing line (the relay decides how the body goes, from what the parser read).
bool gateway_request_field(std::string_view n) {
  return name_is(n, "Host") || framing_name(n) || name_is(n, "X-Request-Id") ||
         name_is(n, "X-Forwarded-For") || name_is(n, "X-Forwarded-Proto");
}

// The upstream request's head: HTTP/1.1 (keep-alive is its default: no Connection line), the
// client's fields but hop-by-hop ones (`listed`: its Connection lines) and the gateway's own;
// `lead` (the Host line) first and `extra` last, whole lines.
void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         const std::vector<http::HeadField>& fields, std::string_view listed,
                         std::string_view lead, std::string_view extra) {
  // One allocation, whatever the fields hold (a bearer token is most of them).
  std::size_t size = method.size() + target.size() + 13 + lead.size() + extra.size() + 2;
  for (const auto& f : fields) size += f.name.size() + f.value.size() + 4;
  out.reserve(out.size() + size);
  out.append(method).append(" ", 1).append(target).append(" HTTP/1.1\r\n", 11).append(lead);
  for (const auto& f : fields) {
    if (gateway_request_field(f.name) || hop_by_hop(f.name, listed)) continue;
    out.append(f.name).append(": ", 2).append(f.value).append("\r\n", 2);
  }
  out.append(extra).append("\r\n", 2);
}

// A field's first value, or empty.
std::string_view first_value(const std::vector<http::HeadField>& fields, std::string_view name) {
  const http::HeadField* x = find_field(fields, name);
  return x ? x->value : std::string_view();
}

// An answer's head for the client: the client's HTTP version, the status, the upstream's fields
// but hop-by-hop ones (`listed`: its Connection lines) and those `skip` names, then `extra`.
void append_answer_head(std::string& out, unsigned version, unsigned status,
                        std::string_view reason, const std::vector<http::HeadField>& fields,
                        std::string_view listed, bool (*skip)(std::string_view),
                        std::string_view extra) {
  if (reason.empty()) reason = bhttp::obsolete_reason(bhttp::int_to_status(status));
  std::size_t size = 17 + reason.size() + extra.size();
  for (const auto& f : fields) size += f.name.size() + f.value.size() + 4;
  out.reserve(out.size() + size);
  append_version(out, version);
  const char digits[] = {' ', static_cast<char>('0' + status / 100 % 10),
                         static_cast<char>('0' + status / 10 % 10),
                         static_cast<char>('0' + status % 10), ' '};
  out.append(digits, sizeof digits).append(reason).append("\r\n", 2);
  for (const auto& f : fields) {
    if (skip(f.name) || hop_by_hop(f.name, listed)) continue;
    out.append(f.name).append(": ", 2).append(f.value).append("\r\n", 2);
  }
  out.append(extra).append("\r\n", 2);
}

// Writes what a stream takes at once, without an asynchronous operation (see
// net::TimedSocket::write_now); a TLS stream takes nothing this way. Then write_rest, for what
// is left: a coroutine (and Asio's operation) only when there is a rest.
using WriteResult = std::tuple<boost::system::error_code, std::size_t>;
template <class Stream, class Buffers>
WriteResult write_now(Stream& s, const Buffers& bufs) {
  if constexpr (std::is_same_v<Stream, beast::ssl_stream<net::TimedSocket>>) {
    return {};
  } else {  // net::TimedSocket, net::UpstreamConn
    boost::system::error_code ec;
    const std::size_t n = s.write_now(bufs, ec);
    return {ec, n};
  }
}
// All written, or failed: nothing left to write.
template <class Buffers>
bool write_ended(const WriteResult& r, const Buffers& bufs) {
  return std::get<0>(r) || std::get<1>(r) == asio::buffer_size(bufs);
}
template <class Stream, class Buffers>
awaitable<WriteResult> write_rest(Stream& s, const Buffers& bufs, std::size_t done) {
  beast::buffers_suffix<Buffers> rest(bufs);
  rest.consume(done);
  auto [ec, n] = co_await asio::async_write(s, rest, kTuple);
  co_return WriteResult{ec, done + n};
}

// Copies a message body from `in` (parsed by `p`) to `out` as it arrives: each read is written
// before the next, so nothing is held back (SSE events go out at once). `head`, when not empty,
// leaves with the first bytes of the body: one write for a small answer, head and body.
template <bool isRequest, class In, class Out>
awaitable<RelayResult> relay_body(In& in, beast::flat_buffer& inbuf,
                                  bhttp::parser<isRequest, bhttp::buffer_body>& p, Out& out,
                                  std::string_view head, Framing framing, RelayBuffer& relay,
                                  RelayOptions& o) {
  auto& body = p.get().body();
  Heartbeat* hb = o.heartbeat;
  char size_line[24];
  static constexpr std::string_view kCrlf = "\r\n";
  static constexpr std::string_view kLastChunk = "0\r\n\r\n";
  while (true) {
    const char* data = nullptr;
    std::size_t size = 0;
    if (!p.is_done()) {
      if (o.idle_without_buffer) {
        // Wait for the next bytes holding no relay buffer: without one, the parser stops at the
        // first body bytes (need_buffer) and leaves them in `inbuf`, where the read below finds
        // them without I/O.
        // (This relies on the response parser having no body limit: Beast charges a body that
        // ends at close against the limit on every put, even one that consumed nothing.)
        relay.release();
        if (inbuf.size() == 0) inbuf.shrink_to_fit();  // nor an empty read buffer
        body.data = nullptr;
        body.size = 0;
        boost::system::error_code rec;
        while (!p.is_done() && rec != bhttp::error::need_buffer) {
          if (o.idle_socket) {
            // What is already here first (a chunk's CRLF, the next size line), without I/O;
            // then, with nothing left, the wait on the socket.
            while (inbuf.size() > 0 && !p.is_done() && rec != bhttp::error::need_buffer) {
              boost::system::error_code pec;
              const std::size_t used = p.put(inbuf.data(), pec);
              inbuf.consume(used);
              if (pec == bhttp::error::need_buffer)
                rec = pec;
              else if (pec == bhttp::error::need_more)
                break;
              else if (pec)
                co_return RelayResult{pec, true};
              if (used == 0) break;
            }
            if (p.is_done() || rec == bhttp::error::need_buffer) break;
            // A few bytes the parser cannot use yet (the CRLF after a chunk waits for the next
            // size line) wait here, not in a read buffer.
            std::array<char, 64> carry;
            if (inbuf.size() <= carry.size() && o.park) {
              // Bytes already waiting (a busy stream) are read at once, with no wait at all.
              boost::system::error_code aec;
              if (!std::exchange(o.readable, false) && o.idle_socket->available(aec) == 0) {
                arm(in, o.read_timeout, o.deadline);  // no deadline: no timer kept while parked
                inbuf.shrink_to_fit();                // down to those few bytes, if any
                co_return RelayResult{{}, false, true};
              }
            } else if (inbuf.size() <= carry.size()) {
              const std::size_t carried = inbuf.size();
              asio::buffer_copy(asio::buffer(carry.data(), carried), inbuf.data());
              inbuf.consume(carried);
              inbuf.shrink_to_fit();
              auto [wec] = co_await o.idle_socket->async_wait(tcp::socket::wait_read, kTuple);
              if (wec) co_return RelayResult{wec, true};
              inbuf.commit(
                  asio::buffer_copy(inbuf.prepare(carried), asio::buffer(carry.data(), carried)));
            }
          }
          arm(in, o.read_timeout, o.deadline);
          auto [ec, rn] = co_await bhttp::async_read_some(in, inbuf, p, kTuple);
          (void)rn;
          if (ec && ec != bhttp::error::need_buffer) co_return RelayResult{ec, true};
          rec = ec;
        }
      }
    }
    if (!p.is_done()) {
      char* const buf = relay.get();
      body.data = buf;
      body.size = kRelayBuffer;
      arm(in, o.read_timeout, o.deadline);
      auto [rec, rn] = co_await bhttp::async_read_some(in, inbuf, p, kTuple);
      (void)rn;
      if (rec && rec != bhttp::error::need_buffer) co_return RelayResult{rec, true};
      // What else the last read brought (more events, more chunks) goes out in the same write:
      // parse on from `inbuf` while it holds bytes and the buffer has room. No I/O here.
      while (!p.is_done() && inbuf.size() > 0 && body.size > 0) {
        boost::system::error_code pec;
        const std::size_t used = p.put(inbuf.data(), pec);
        inbuf.consume(used);
        if (pec == bhttp::error::need_more || pec == bhttp::error::need_buffer) break;
        if (pec) co_return RelayResult{pec, true};
        if (used == 0) break;
      }
      data = buf;
      size = kRelayBuffer - body.size;
      if (o.rewriter && !o.rewriter->done) {
        const auto bytes = o.rewriter->feed(std::string_view(buf, size), p.is_done());
        data = bytes.data();
        size = bytes.size();
      }
      if (o.copied) *o.copied += size;
      if (framing == Framing::kNone) size = 0;
    }
    const bool last = p.is_done();
    std::array<asio::const_buffer, 5> bufs;
    std::size_t n = 0;
    if (!head.empty()) bufs[n++] = asio::buffer(head.data(), head.size());
    if (size > 0) {
      if (framing == Framing::kChunked) {
        const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", size);
        bufs[n++] = asio::buffer(size_line, static_cast<std::size_t>(len));
      }
      bufs[n++] = asio::buffer(data, size);
      if (framing == Framing::kChunked) bufs[n++] = asio::buffer(kCrlf.data(), kCrlf.size());
    }
    if (last && framing == Framing::kChunked)
      bufs[n++] = asio::buffer(kLastChunk.data(), kLastChunk.size());
    if (n == 0) {
      if (last) co_return RelayResult{};
      continue;  // nothing to pass on yet (the rewriter holds a partial first event)
    }
    if (hb) {
      while (hb->writing) {
        hb->wake.expires_at(Clock::time_point::max());
        co_await hb->wake.async_wait(kTuple);
      }
      hb->writing = true;
    }
    arm(out, o.write_timeout, o.deadline);
    auto written = write_now(out, bufs);
    if (!write_ended(written, bufs)) written = co_await write_rest(out, bufs, std::get<1>(written));
    const auto [wec, wn] = written;
    if (o.written) *o.written += wn;
    head = {};
    if (hb) {
      hb->writing = false;
      if (size > 0) hb->wrote(data, size);
    }
    if (wec) co_return RelayResult{wec, false};
    if (last) co_return RelayResult{};
  }
}

template <class Stream>
awaitable<void> send_heartbeats(Stream& client, std::shared_ptr<Heartbeat> hb,
                                std::chrono::milliseconds every,
                                std::chrono::milliseconds write_timeout,
                                std::shared_ptr<ClientWatch> watch) {
  static constexpr std::string_view kChunk = "3\r\n:\n\n\r\n";
  static constexpr std::string_view kRaw = ":\n\n";
  while (hb->active) {
    hb->timer.expires_at(hb->last_write + every);
    co_await hb->timer.async_wait(kTuple);
    if (!hb->active) co_return;
    if (Clock::now() < hb->last_write + every) continue;  // something went out meanwhile
    if (hb->writing || !hb->at_event_boundary()) {
      hb->last_write = Clock::now();  // mid-event: try again a period later
      continue;
    }
    hb->writing = true;
    const auto bytes = hb->chunked ? kChunk : kRaw;
    beast::get_lowest_layer(client).expires_after(write_timeout);
    auto [ec, n] =
        co_await asio::async_write(client, asio::buffer(bytes.data(), bytes.size()), kTuple);
    (void)n;
    hb->writing = false;
    hb->last_write = Clock::now();
    hb->wake.cancel();
    if (ec) {
      // The client is gone: end the relay (it is waiting on the upstream) as the watcher would.
      if (hb->active && watch && watch->active) {
        watch->client_gone = true;
        watch->upstream->close();
      }
      co_return;
    }
  }
}

// A policy error for the access log: source and reason, and the message when it holds nothing
// a client sent (validation messages do not; check-header's would quote a header value).
std::string describe(const policy::LastError& e) {
  std::string out = e.source + ": " + e.reason;
  if (e.log_message && !e.message.empty()) out += ": " + e.message;
  return out;
}

// The answer to a connection beyond limits.max_connections_per_worker, written within a second.
awaitable<void> refuse_connection(tcp::socket socket) {
  static const std::string response = [] {
    const std::string body = apim_error_body(503, kTooManyConnections);
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; "
           "charset=utf-8\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + body;
  }();
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(std::chrono::seconds(1));
  co_await asio::async_write(stream, asio::buffer(response), kTuple);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

// An idle connection kept for reuse, and the connections of one upstream on one worker.
struct Pool {
  std::vector<net::UpstreamConn> idle;
  std::size_t max_idle = 0;
  bool retired = false;  // no longer in the configuration: connections close when released
};

// One worker's view of a runtime snapshot: the snapshot and the worker's pools for its upstreams.
// Requests hold it by a per-worker shared_ptr (no reference count shared between cores).
struct View {
  std::shared_ptr<const Runtime> rt;
  std::vector<Pool*> pools;  // by upstream index
};

struct McpSeries {
  std::size_t slot;
  std::string method;
  std::string tool;
  bool operator==(const McpSeries&) const = default;
};
// Looked up by views (no copies per request); stored as strings.
struct McpSeriesView {
  std::size_t slot;
  std::string_view method;
  std::string_view tool;
};
struct McpSeriesHash {
  using is_transparent = void;
  std::size_t operator()(const McpSeriesView& k) const {
    return std::hash<std::string_view>()(k.method) * 31 + std::hash<std::string_view>()(k.tool) +
           k.slot;
  }
  std::size_t operator()(const McpSeries& k) const {
    return (*this)(McpSeriesView{k.slot, k.method, k.tool});
  }
};
struct McpSeriesEq {
  using is_transparent = void;
  static McpSeriesView view(const McpSeries& k) { return {k.slot, k.method, k.tool}; }
  static McpSeriesView view(const McpSeriesView& k) { return k; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    const McpSeriesView x = view(a), y = view(b);
    return x.slot == y.slot && x.method == y.method && x.tool == y.tool;
  }
};
using McpSeriesMap = std::unordered_map<McpSeries, std::uint64_t, McpSeriesHash, McpSeriesEq>;

// An upstream answer's first read takes up to kAnswerHeadRead bytes: its head and, mostly, all of
// a small body (a request waiting for its answer holds no more than this). A body still coming
// after that is read kAnswerRead bytes at a time, each relayed in one write.
constexpr std::size_t kAnswerHeadRead = 4 * 1024;
constexpr std::size_t kAnswerRead = 16 * 1024;

// What a worker thread hands from one request to the next: a request's big buffers (its head's
// copy and the upstream request's head, 1-2 KB with a bearer token: past malloc's per-thread
// cache; the buffer its answer is read into), and its policy Context (about 1.2 KB). A few are
// kept per thread, bounded in number and size, so a busy worker makes them once instead of per
// request. Any thread may give one back (to its own store): nothing is shared.
class Spares {
 public:
  static beast::flat_buffer buffer() {
    auto& kept = buffers();
    if (kept.empty()) return beast::flat_buffer();
    beast::flat_buffer b = std::move(kept.back());
    kept.pop_back();
    return b;
  }
  // Kept when it can take a whole first read and is not unusually large (a moved-from or shrunk
  // buffer is not).
  static void give(beast::flat_buffer&& b) {
    auto& kept = buffers();
    if (b.capacity() < kAnswerHeadRead || b.capacity() > 4 * kAnswerRead ||
        kept.size() >= kKeepBuffers)
      return;
    b.clear();
    kept.push_back(std::move(b));
  }

  static std::string string() {
    auto& kept = strings();
    if (kept.empty()) return {};
    std::string s = std::move(kept.back());
    kept.pop_back();
    return s;
  }
  static void give(std::string&& s) {
    auto& kept = strings();
    if (s.capacity() < kMinStringBytes || s.capacity() > kMaxStringBytes || kept.size() >= kKeep)
      return;
    s.clear();
    kept.push_back(std::move(s));
  }

  struct GiveContext {
    void operator()(policy::Context* c) const noexcept {
      auto& kept = contexts();
      // Emptied as a new one is (what it held goes now, only its own block stays).
      std::destroy_at(c);
      std::construct_at(c);
      if (kept.size() < kKeep) {
        kept.emplace_back(c);
      } else {
        delete c;
      }
    }
  };
  using ContextPtr = std::unique_ptr<policy::Context, GiveContext>;
  static ContextPtr context() {
    auto& kept = contexts();
    if (kept.empty()) return ContextPtr(new policy::Context());
    ContextPtr c(kept.back().release());
    kept.pop_back();
    return c;
  }

 private:
  static constexpr std::size_t kKeep = 64;
  static constexpr std::size_t kKeepBuffers = 16;
  static constexpr std::size_t kMinStringBytes = 64;  // not the in-place ones (15)
  static constexpr std::size_t kMaxStringBytes = 16 * 1024;
  // Each store has room for all it may keep from the start: giving back never allocates (it
  // runs in destructors).
  template <class T, std::size_t N>
  static std::vector<T> store() {
    std::vector<T> v;
    v.reserve(N);
    return v;
  }
  static std::vector<beast::flat_buffer>& buffers() {
    thread_local std::vector<beast::flat_buffer> kept = store<beast::flat_buffer, kKeepBuffers>();
    return kept;
  }
  static std::vector<std::string>& strings() {
    thread_local std::vector<std::string> kept = store<std::string, kKeep>();
    return kept;
  }
  static std::vector<std::unique_ptr<policy::Context>>& contexts() {
    thread_local std::vector<std::unique_ptr<policy::Context>> kept =
        store<std::unique_ptr<policy::Context>, kKeep>();
    return kept;
  }
};

// A string or a read buffer from the thread's spares, for as long as this lives.
template <class T>
struct Spare {
  T value = taken();
  Spare() = default;
  Spare(const Spare&) = delete;
  Spare& operator=(const Spare&) = delete;
  ~Spare() { Spares::give(std::move(value)); }

 private:
  static T taken() {
    if constexpr (std::is_same_v<T, std::string>) {
      return Spares::string();
    } else {
      return Spares::buffer();
    }
  }
};

}  // namespace

struct Gateway::Impl {
  struct Worker {
    // Declared before the io_context: destroying it destroys suspended requests, which give
    // back their buffer and their connection count.
    BufferPool buffers;                       // this worker's thread only
    std::atomic<std::size_t> connections{0};  // open client connections on this worker
    // One thread runs it, and every socket and timer on it is touched from that thread only
    // (other threads post): its reactor needs no lock around each operation. Posting stays safe.
    asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    std::unique_ptr<ApiStats[]> stats{new ApiStats[kMaxSlots]};
    std::map<std::string, Pool> pools;  // by Upstream::pool_key; nodes never move
    std::shared_ptr<const View> view;   // this worker's thread only, once running
    McpSeriesMap mcp_calls;             // likewise
    // Token validations by (API, policy, outcome): "valid" or APIM's reason. Likewise.
    McpSeriesMap validations;
    // The series counted last, by where its names are (static text, so the same outcome again
    // is the same two pointers): a run of one outcome skips the hash. Entries are never erased.
    struct LastValidation {
      std::size_t slot = 0;
      std::string_view policy;
      std::string_view outcome;
      std::uint64_t* count = nullptr;
      bool same(std::size_t s, std::string_view p, std::string_view o) const {
        return count && slot == s && policy.data() == p.data() && policy.size() == p.size() &&
               outcome.data() == o.data() && outcome.size() == o.size();
      }
    } last_validation;
    // The request head being parsed: views into a connection's buffer, copied into its request
    // before anything suspends, so one per worker serves every connection (an idle connection
    // keeps no field list of its own).
    http::RequestHead head;
    // Likewise an upstream answer's head: its views are used before the exchange suspends again.
    http::ResponseHead answer_head;

    // Runs on the worker's thread (or before it starts).
    void install(std::shared_ptr<const Runtime> rt) {
      auto v = std::make_shared<View>();
      for (auto& [key, pool] : pools) pool.retired = true;
      for (const auto& u : rt->upstreams) {
        Pool& pool = pools[u.pool_key];
        pool.retired = false;
        pool.max_idle = u.max_idle;
        v->pools.push_back(&pool);
      }
      for (auto& [key, pool] : pools) {
        if (pool.retired) pool.idle.clear();
      }
      v->rt = std::move(rt);
      view = std::move(v);
    }
  };

  // One exchange as its access-log line and metrics see it. The connection's (serve's) to hold:
  // the answer's relay goes on with it after the exchange (and its large frame) has ended.
  struct Record {
    explicit Record(std::atomic<std::size_t>& in_flight) : counted(in_flight) {}
    // Counted in the gateway's in-flight requests from the head's arrival to the log line; a
    // moved record (an event stream handed to its relay) counts until both copies are gone.
    struct InFlight {
      explicit InFlight(std::atomic<std::size_t>& n) : n(&n) { ++n; }
      InFlight(InFlight&& o) noexcept : n(o.n) { ++*n; }
      InFlight& operator=(InFlight&&) = delete;
      ~InFlight() { --*n; }
      std::atomic<std::size_t>* n;
    } counted;
    Clock::time_point started = Clock::now();
    const std::string* remote = nullptr;  // the connection's, which outlives every exchange
    std::string request_id;
    std::string method;
    std::string target;
    const Route* route = nullptr;
    int status = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t bytes_in = 0;  // the request body, as read from the client
    double upstream_ms = -1;
    std::string error;
    mcp::RequestInfo mcp_info;
    // Set when the API runs policies; on the heap, so the frames stay small.
    Spares::ContextPtr pctx;
    // What an event stream keeps of pctx while it is open (see keep_for_stream).
    std::vector<std::function<void(std::uint64_t bytes)>> on_done;
    std::vector<std::shared_ptr<void>> holds;  // a concurrency slot, for one
    policy::Context::Validations validations;
    std::string client_app;  // printable: a stream keeps this, not its token

    // An event stream may stay open for hours: of the policies' state it keeps only what its
    // end needs (counters to settle, a slot to give back, what its log line and metrics say).
    void keep_for_stream() {
      if (!pctx) return;
      on_done = std::move(pctx->on_done);
      holds = std::move(pctx->holds);
      validations = std::move(pctx->validations);
      if (pctx->token) client_app = logged_client(*pctx->token);
      pctx.reset();
    }
  };

  // An upstream's answer whose head is ready, handed from the exchange to the relay.
  using ResponseParser = bhttp::response_parser<bhttp::buffer_body>;
  struct Answer {
    Answer() = default;
    Answer(Answer&&) = default;
    Answer& operator=(Answer&&) = default;
    ~Answer() { Spares::give(std::move(ubuf)); }  // a moved-from one has nothing to give

    std::optional<net::UpstreamConn> upstream;
    std::unique_ptr<ResponseParser> res;  // reads the body; made when it is needed (parser())
    beast::flat_buffer ubuf;              // what the upstream sent past the head
    std::string head;                     // the head as the client gets it
    Pool* pool = nullptr;                 // where the upstream connection goes back
    unsigned version = 11;                // the client's HTTP version
    Framing framing = Framing::kRaw;
    bool event_stream = false;
    bool bodiless = false;
    bool chunked_out = false;
    bool keep = false;               // the client connection stays open after
    bool upstream_reusable = false;  // keep-alive, and not a 101
    std::chrono::milliseconds response_timeout{0};
    Clock::time_point deadline = Clock::time_point::max();
    // The body as the upstream frames it (RFC 9112 §6.3): none (a HEAD request's answer, a 204
    // or 304), chunked, a length, or until the upstream closes.
    bool none_in = false;
    bool chunked_in = false;
    std::optional<std::uint64_t> length_in;

    // Beast's parser reads the body: primed with a head that holds only the framing.
    ResponseParser& parser() {
      if (res) return *res;
      res = std::make_unique<ResponseParser>();
      // Relayed as it arrives, never held: no size limit (Beast's default would end an event
      // stream after 8 MiB).
      res->body_limit(boost::none);
      char framing[80];
      std::string_view prime = "HTTP/1.1 200 OK\r\n\r\n";  // until the upstream closes
      if (none_in) {
        prime = "HTTP/1.1 204 No Content\r\n\r\n";
      } else if (chunked_in) {
        prime = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      } else if (length_in) {
        const int n = std::snprintf(framing, sizeof framing,
                                    "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                                    static_cast<unsigned long long>(*length_in));
        prime = std::string_view(framing, static_cast<std::size_t>(n));
      }
      boost::system::error_code ec;  // none: the prime is a head Beast reads
      res->put(asio::buffer(prime.data(), prime.size()), ec);
      return *res;
    }
  };

  // What relay_answer returns: close the client connection, keep it, or it is the stream's now.
  enum class After { kClose, kKeep, kParked };
  static After after(bool keep) { return keep ? After::kKeep : After::kClose; }

  // A plain client connection, on the heap: an event stream's relay can take it over while the
  // coroutines that served it end (see StreamRelay).
  struct PlainConnection {
    PlainConnection(tcp::socket socket, net::ConnectionGuard g)
        : guard(std::move(g)), remote(net::accepted_remote(socket)), stream(std::move(socket)) {}
    void shutdown() {
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    net::ConnectionGuard guard;
    std::string remote;
    net::TimedSocket stream;
  };

  // A relay's state beyond its answer: options, buffer, and what an event stream adds.
  struct Relaying {
    explicit Relaying(BufferPool& pool) : relay(pool) {}
    RelayBuffer relay;  // the body passes through it, one read at a time
    RelayOptions ro;
    std::shared_ptr<ClientWatch> watch;
    std::shared_ptr<Heartbeat> heartbeat;
    std::unique_ptr<EndpointRewriter> rewriter;  // legacy MCP streams under a prefix only
  };

  // An event stream from a plain upstream to a plain client, once its head is out: everything
  // its relay needs, so that between events nothing else is held — no coroutine frame, no
  // buffer; only a wait on the upstream's socket, which owns this (wait_for_stream).
  struct StreamRelay {
    StreamRelay(std::shared_ptr<PlainConnection> c, Worker& w, std::shared_ptr<const View> v,
                Record&& r, Answer&& a)
        : conn(std::move(c)),
          w(w),
          view(std::move(v)),
          record(std::move(r)),
          answer(std::move(a)),
          relaying(w.buffers) {}
    std::shared_ptr<PlainConnection> conn;
    Worker& w;
    std::shared_ptr<const View> view;  // the request's snapshot (its route, its limits)
    Record record;
    Answer answer;
    Relaying relaying;
  };

  GatewayOptions options;
  // Signing keys behind OpenID configurations, and tokens that passed: shared by every policy.
  std::unique_ptr<oidc::KeyService> keys;
  std::shared_ptr<jwt::VerifiedTokenCache> token_cache;  // sized by entra.token_cache_entries
  // Rate limits, quotas and concurrency slots: one store for every worker, kept across reloads.
  std::shared_ptr<policy::CounterStore> counters = policy::make_local_counters();
  std::shared_ptr<const Runtime> runtime;  // the newest snapshot (control thread)
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  std::vector<net::BoundAddress> bound;
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> active_streams{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> reloads_ok{0};
  std::atomic<std::uint64_t> reloads_rejected{0};

  std::mutex slots_mu;  // the control thread and /metrics only
  std::vector<std::string> slot_names{"(none)"};

  policy::CompileEnv compile_env() {
    policy::CompileEnv env;
    env.key_source = [this](const std::string& url) -> std::shared_ptr<jwt::KeySource> {
      auto p = keys->provider(url);
      p->refresh(nullptr);  // fetch now (a no-op when it ran recently), not on the first request
      return p;
    };
    env.token_cache = token_cache;
    env.counters = counters;
    return env;
  }

  // A section that stopped at `position` for keys (Flow::kPending): waits for them without
  // blocking the worker, then runs on, as often as a policy asks. The first run of a section is
  // the caller's, outside any coroutine: most requests never wait.
  awaitable<policy::Flow> run_on(Worker& w, const policy::Program& program, policy::Section section,
                                 policy::Context& ctx, std::size_t position) {
    auto flow = policy::Flow::kPending;
    while (flow == policy::Flow::kPending && ctx.pending) {
      auto timer = std::make_shared<asio::steady_timer>(w.ioc, Clock::time_point::max());
      auto pending = std::move(ctx.pending);
      ctx.pending = nullptr;
      pending([timer, ex = w.ioc.get_executor()] { asio::post(ex, [timer] { timer->cancel(); }); });
      co_await timer->async_wait(kTuple);
      flow = policy::run_section(program, section, ctx, position);
    }
    co_return flow;
  }

  std::size_t slot_for(const std::string& name) {
    std::lock_guard lock(slots_mu);
    for (std::size_t i = 1; i < slot_names.size(); ++i) {
      if (slot_names[i] == name) return i;
    }
    if (slot_names.size() + 1 >= kMaxSlots) {
      if (slot_names.size() + 1 == kMaxSlots) slot_names.emplace_back("(other)");
      return kMaxSlots - 1;
    }
    slot_names.push_back(name);
    return slot_names.size() - 1;
  }

  void record(Worker& w, const Route* route, int status, double seconds, bool upstream_error) {
    ApiStats& st = w.stats[route ? route->slot : 0];
    const int cls = status >= 100 && status < 600 ? status / 100 - 1 : 5;
    bump(st.by_class[cls]);
    std::size_t b = 0;
    while (b < kBucketCount && seconds > kBuckets[b]) ++b;
    bump(st.buckets[b]);
    bump(st.duration_us, static_cast<std::uint64_t>(seconds * 1e6));
    if (upstream_error) bump(st.upstream_errors);
  }

  void count_mcp(Worker& w, std::size_t slot, const mcp::RequestInfo& info) {
    McpSeries key{slot, std::string(mcp::method_label(info)), core::printable(info.tool, 64)};
    auto it = w.mcp_calls.find(key);
    if (it == w.mcp_calls.end()) {
      if (w.mcp_calls.size() >= kMaxMcpSeries && !key.tool.empty()) key.tool = "(other)";
      it = w.mcp_calls.try_emplace(std::move(key), 0).first;
    }
    ++it->second;
  }

  // ---- local replies ------------------------------------------------------------------------

  template <class Stream>
  awaitable<bool> reply(Stream& stream, unsigned version, bool keep_alive, int status,
                        std::string_view message, const std::string& request_id,
                        std::chrono::milliseconds write_timeout) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), version};
    res.set(bhttp::field::content_type, "application/json; charset=utf-8");
    res.set("X-Request-Id", request_id);
    res.body() = apim_error_body(status, message);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(write_timeout);
    auto [ec, n] = co_await bhttp::async_write(stream, res, kTuple);
    (void)n;
    co_return !ec && keep_alive;
  }

  // Writes a response the pipeline made (return-response, mock-response, on-error's answer).
  template <class Stream>
  awaitable<bool> write_local(Stream& stream, unsigned version, bool keep_alive,
                              const policy::LocalResponse& r, const std::string& request_id,
                              std::chrono::milliseconds write_timeout, std::uint64_t& bytes) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
    if (!r.reason.empty()) res.reason(r.reason);
    for (const auto& [name, value] : r.headers) res.insert(name, value);
    res.erase(bhttp::field::transfer_encoding);
    res.erase(bhttp::field::content_length);
    res.set("X-Request-Id", request_id);
    if (r.body) res.body() = *r.body;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(write_timeout);
    auto [ec, n] = co_await bhttp::async_write(stream, res, kTuple);
    bytes += n;
    co_return !ec && keep_alive;
  }

  // MCP authorization: a 401 from token validation tells the client where the resource's
  // metadata is, unless the policies wrote their own challenge. No error code when there was no
  // token at all (RFC 6750 §3.1).
  static void add_challenge(const Route& route, const policy::LastError& e,
                            policy::LocalResponse& r) {
    if (route.challenge.empty() || r.status != 401 ||
        (e.source != "validate-azure-ad-token" && e.source != "validate-jwt"))
      return;
    for (const auto& h : r.headers) {
      if (core::iequals(h.first, "WWW-Authenticate")) return;
    }
    r.headers.emplace_back("WWW-Authenticate",
                           e.reason == "TokenNotPresent"
                               ? "Bearer " + route.challenge
                               : "Bearer error=\"invalid_token\", " + route.challenge);
  }

  // Rate-limit and CORS fields go on every answer; a field the answer already has wins, except
  // Vary, which gains what it lacks (a cache must not serve one origin's answer to another).
  static void add_answer_headers(const policy::Context& ctx,
                                 std::vector<std::pair<std::string, std::string>>& headers) {
    for (const auto& [name, value] : ctx.answer_headers) {
      const auto it = std::find_if(headers.begin(), headers.end(),
                                   [&](const auto& h) { return core::iequals(h.first, name); });
      if (it == headers.end()) {
        headers.emplace_back(name, value);
      } else if (core::iequals(name, "Vary")) {
        it->second = vary_with(it->second, value);
      }
    }
  }
  static void add_answer_headers(const policy::Context& ctx, policy::HeaderMap& res) {
    for (const auto& [name, value] : ctx.answer_headers) {
      if (!res.first(name)) {
        res.add(name, value);
      } else if (core::iequals(name, "Vary")) {
        std::string all;  // every Vary line, joined, then ours
        for (const auto& v : res.values(name)) all.append(all.empty() ? "" : ", ").append(v);
        res.erase(name);
        res.add(name, vary_with(all, value));
      }
    }
  }
  static std::string vary_with(std::string_view vary, std::string_view add) {
    for (auto part : core::split(vary, ",")) {
      if (core::trim(part) == "*" || core::iequals(core::trim(part), add)) return std::string(vary);
    }
    return std::string(vary) + (vary.empty() ? "" : ", ") + std::string(add);
  }

  // After a policy error (ctx.error set): on-error runs with the error's status; without a
  // return-response there, the caller gets the error's APIM body with what on-error changed.
  static policy::LocalResponse on_error(const policy::Program& program, policy::Context& ctx) {
    policy::FieldList headers;
    ctx.response_headers = &headers;
    ctx.status = ctx.error->status;
    ctx.reason.clear();
    ctx.response_body.reset();
    ctx.respond.reset();
    const policy::LastError error = *ctx.error;
    const auto flow = policy::run_section(program, policy::kOnError, ctx);
    if (flow == policy::Flow::kRespond) return *ctx.respond;
    policy::LocalResponse out;
    if (flow == policy::Flow::kError) {  // on-error failed too: the first error's own answer
      out.status = error.status;
      out.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
      out.body = apim_error_body(error.status, error.response_message,
                                 error.unexpected ? ctx.activity_id : std::string());
      return out;
    }
    out.status = ctx.status;
    out.reason = ctx.reason;
    out.headers = std::move(headers.fields);
    if (ctx.response_body) {
      out.body = *ctx.response_body;
    } else {
      out.body = apim_error_body(ctx.status, error.response_message,
                                 error.unexpected ? ctx.activity_id : std::string());
      if (std::none_of(out.headers.begin(), out.headers.end(),
                       [](const auto& h) { return core::iequals(h.first, "Content-Type"); }))
        out.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
    }
    return out;
  }

  // ---- upstream connections -----------------------------------------------------------------

  void release(Pool& pool, net::UpstreamConn conn) {
    if (pool.retired || pool.idle.size() >= pool.max_idle || stopping.load()) return;
    conn.expires_never();
    pool.idle.push_back(std::move(conn));
  }

  // ---- one client connection ----------------------------------------------------------------

  struct HeadRead {
    http::HeadStatus status = http::HeadStatus::kIncomplete;
    boost::system::error_code ec;  // reading, or priming the body's parser
  };

  // Reads until the head has ended (or `max` bytes are in) and parses it into `head`: views into
  // cbuf, good until cbuf changes. Beast's parser would go over a field value a byte at a time,
  // and a bearer token is most of a request.
  template <class Stream>
  static awaitable<HeadRead> read_request_head(Stream& client, beast::flat_buffer& cbuf,
                                               http::RequestHead& head, std::size_t max) {
    HeadRead r;
    for (std::size_t searched = 0, skipped = 0;;) {
      std::string_view data(static_cast<const char*>(cbuf.data().data()), cbuf.size());
      if (!data.empty() && data[0] == '\r') {
        const std::size_t empty = http::leading_empty_lines(data);  // RFC 9112 §2.2
        cbuf.consume(empty);
        skipped += empty;
        data.remove_prefix(empty);
        searched = searched > empty ? searched - empty : 0;
      }
      r.status = http::parse_request_head(data, max - std::min(skipped, max), head, searched);
      if (r.status != http::HeadStatus::kIncomplete) co_return r;
      searched = data.size();
      auto [ec, n] = co_await client.async_read_some(cbuf.prepare(4096), kTuple);
      if (ec) {
        r.ec = ec;
        co_return r;
      }
      cbuf.commit(n);
    }
  }

  // Reads until an upstream answer's head has ended (or `max` bytes are in) and parses it into
  // `head`: views into ubuf, good until ubuf changes. Each read takes up to kAnswerHeadRead bytes
  // (or what room the buffer has beyond that), so a small answer's body comes in the same read.
  static awaitable<HeadRead> read_answer_head(net::UpstreamConn& upstream, beast::flat_buffer& ubuf,
                                              http::ResponseHead& head, std::size_t max) {
    HeadRead r;
    for (std::size_t searched = 0;;) {
      const std::string_view data(static_cast<const char*>(ubuf.data().data()), ubuf.size());
      r.status = http::parse_response_head(data, max, head, searched);
      if (r.status != http::HeadStatus::kIncomplete) co_return r;
      searched = data.size();
      const std::size_t room = std::max(ubuf.capacity() - ubuf.size(), kAnswerHeadRead);
      auto [ec, n] = co_await upstream.async_read_some(ubuf.prepare(room), kTuple);
      if (ec) {
        r.ec = ec;
        co_return r;
      }
      ubuf.commit(n);
    }
  }

  // Beast's parser reads the body (Content-Length or chunked, with its limit), primed with a head
  // that holds only the framing. `ec`: body_limit when the Content-Length is over it.
  static void prime_request_parser(bhttp::request_parser<bhttp::buffer_body>& req_p,
                                   const http::RequestHead& head, boost::system::error_code& ec) {
    char framing[96];
    std::string_view prime = "GET / HTTP/1.1\r\n\r\n";
    if (head.chunked) {
      prime = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    } else if (head.content_length && !head.transfer_encoding) {
      const int n =
          std::snprintf(framing, sizeof framing, "POST / HTTP/1.1\r\nContent-Length: %llu\r\n\r\n",
                        static_cast<unsigned long long>(*head.content_length));
      prime = std::string_view(framing, static_cast<std::size_t>(n));
    }
    req_p.eager(false);
    req_p.put(asio::buffer(prime.data(), prime.size()), ec);
  }

  // A request's head for as long as its exchange runs: its bytes, copied out of the connection's
  // buffer (which the body and the next request reuse), and its parse as views into them.
  struct RequestCopy {
    Spare<std::string> bytes;
    http::RequestHead head;
    // `parsed`: views into `data`, which starts with the head.
    RequestCopy(const http::RequestHead& parsed, std::string_view data) {
      bytes.value.assign(data.substr(0, parsed.size));
      const auto rebase = [&](std::string_view v) {
        return std::string_view(bytes.value.data() + (v.data() - data.data()), v.size());
      };
      head.method = rebase(parsed.method);
      head.target = rebase(parsed.target);
      head.version = parsed.version;
      head.size = parsed.size;
      head.transfer_encoding = parsed.transfer_encoding;
      head.chunked = parsed.chunked;
      head.content_length = parsed.content_length;
      head.fields.reserve(parsed.fields.size());
      for (const auto& f : parsed.fields) head.fields.push_back({rebase(f.name), rebase(f.value)});
    }
  };

  // The answer to a head that could not be read; the connection then closes. A client that
  // went away or was too slow gets nothing.
  template <class Stream>
  awaitable<void> refuse_head(Stream& client, HeadRead r, std::chrono::milliseconds timeout) {
    const std::string request_id = new_request_id();
    const auto& ec = r.ec;
    if (r.status == http::HeadStatus::kTooLarge) {
      co_await reply(client, 11, false, 431, kHeadersTooLarge, request_id, timeout);
    } else if (r.status == http::HeadStatus::kBadVersion) {
      co_await reply(client, 11, false, 505, kVersionNotSupported, request_id, timeout);
    } else if (ec == bhttp::error::body_limit) {
      co_await reply(client, 11, false, 413, kPayloadTooLarge, request_id, timeout);
    } else if (r.status == http::HeadStatus::kBad ||
               (ec && ec != asio::error::eof && ec != beast::error::timeout &&
                ec != asio::error::connection_reset && ec != asio::ssl::error::stream_truncated &&
                ec != asio::error::operation_aborted)) {
      co_await reply(client, 11, false, 400, kBadRequest, request_id, timeout);
    }
  }

  // A connection's requests, one after another. `owner`, for a plain connection, lets an event
  // stream take the connection over (see StreamRelay); `fresh`: no request has come on it yet.
  template <class Stream>
  awaitable<void> serve(Stream& client, Worker& w, const std::string& remote, bool tls,
                        std::shared_ptr<PlainConnection>* owner, bool fresh) {
    beast::flat_buffer cbuf;
    auto& client_socket = beast::get_lowest_layer(client);
    // One request at a time. Its log record and answer are made in place (no allocation per
    // request); its parser is on the heap and goes before the answer is relayed: an event
    // stream keeps neither its request fields (a bearer token among them) nor their room.
    std::unique_ptr<bhttp::request_parser<bhttp::buffer_body>> request;
    std::optional<RequestCopy> head;
    std::optional<Record> rec;
    std::optional<Answer> answer;
    for (bool first = fresh;; first = false) {
      std::shared_ptr<const View> view = w.view;
      const auto& limits = view->rt->limits;
      client_socket.expires_after(first ? limits.header_timeout : limits.idle_timeout);
      if (!first && cbuf.size() == 0) {
        // Wait for the next request's first byte under the idle timeout, then give its head
        // the header timeout (slow clients are dropped).
        auto [wec, wn] = co_await client.async_read_some(cbuf.prepare(4096), kTuple);
        if (wec) co_return;
        cbuf.commit(wn);
        client_socket.expires_after(limits.header_timeout);
      }
      // The head, read whole and parsed by our own parser, in frames of their own: an event
      // stream's connection then keeps none of their state while it is open.
      HeadRead got = co_await read_request_head(client, cbuf, w.head, limits.max_header_bytes);
      if (got.status == http::HeadStatus::kComplete) {
        const std::uint64_t length = w.head.content_length.value_or(0);
        // A body that came whole with its head (an MCP message, mostly) is the exchange's to
        // take from cbuf as it is; any other is read by Beast's parser (a request without one
        // needs none).
        const bool whole = !w.head.transfer_encoding && length <= limits.max_body_bytes &&
                           cbuf.size() - w.head.size >= length;
        if (w.head.transfer_encoding || (length > 0 && !whole)) {
          request = std::make_unique<bhttp::request_parser<bhttp::buffer_body>>();
          request->body_limit(limits.max_body_bytes);
          prime_request_parser(*request, w.head, got.ec);
        }
        head.emplace(w.head,
                     std::string_view(static_cast<const char*>(cbuf.data().data()), cbuf.size()));
        cbuf.consume(w.head.size);
      }
      w.head.fields.clear();
      if (got.status != http::HeadStatus::kComplete || got.ec) {
        head.reset();
        co_await refuse_head(client, got, limits.idle_timeout);
        co_return;
      }
      view = w.view;  // the newest snapshot for this request, kept until it ends
      rec.emplace(in_flight);
      rec->remote = &remote;
      bool keep =
          co_await exchange(client, w, *view, *head, request.get(), cbuf, tls, *rec, answer);
      request.reset();
      head.reset();
      if (answer) {
        // An event stream's client sends nothing more: its read buffer goes (a stream that is
        // not parked keeps this frame for as long as it is open).
        if (answer->event_stream && cbuf.size() == 0) cbuf.shrink_to_fit();
        std::shared_ptr<StreamRelay> park;
        if constexpr (std::is_same_v<Stream, net::TimedSocket>) {
          if (owner && answer->event_stream && !answer->upstream->secure() && cbuf.size() == 0) {
            park = std::make_shared<StreamRelay>(std::move(*owner), w, view, std::move(*rec),
                                                 std::move(*answer));
          }
        }
        Record& r = park ? park->record : *rec;
        Answer& a = park ? park->answer : *answer;
        const After next = co_await relay_answer(client, w, view->rt->limits, cbuf, r, a, park);
        if (next == After::kParked) co_return;  // the connection is the stream's now
        if (park) *owner = std::move(park->conn);
        park.reset();
        answer.reset();
        keep = next == After::kKeep;
      }
      rec.reset();
      if (!keep) co_return;
    }
  }

  // The access-log line and the metrics of one exchange, when it ends.
  void log_exchange(Worker& w, const Record& rec) {
    const std::string_view path = std::string_view(rec.target).substr(0, rec.target.find('?'));
    const auto& pctx = rec.pctx;
    record(w, rec.route, rec.status,
           std::chrono::duration<double>(Clock::now() - rec.started).count(),
           rec.status == 502 || rec.status == 504);
    for (const auto& done : pctx ? pctx->on_done : rec.on_done) done(rec.bytes_in + rec.bytes_out);
    if (rec.route) {
      for (const auto& [policy_name, outcome] : pctx ? pctx->validations : rec.validations) {
        auto& last = w.last_validation;
        if (last.same(rec.route->slot, policy_name, outcome)) {
          ++*last.count;
          continue;
        }
        // Bounded: 2 x 10 x APIs.
        const McpSeriesView key{rec.route->slot, policy_name, outcome};
        auto it = w.validations.find(key);
        if (it == w.validations.end()) {
          it = w.validations
                   .emplace(McpSeries{key.slot, std::string(policy_name), std::string(outcome)}, 0)
                   .first;
        }
        ++it->second;
        last = {key.slot, policy_name, outcome, &it->second};
      }
    }
    if (!options.access_log) return;
    core::JsonObject o;
    o.emplace_back(
        "time", core::Json(core::format_utc(std::chrono::duration<double>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count())));
    o.emplace_back("request_id", core::Json(rec.request_id));
    o.emplace_back("client", core::Json(*rec.remote));
    o.emplace_back("api", rec.route ? core::Json(rec.route->api.name) : core::Json());
    o.emplace_back("method", core::Json(core::printable(rec.method, 20)));
    o.emplace_back("path", core::Json(core::printable(path, 200)));
    o.emplace_back("status", core::Json::number(rec.status));
    o.emplace_back("bytes", core::Json::number(static_cast<double>(rec.bytes_out)));
    o.emplace_back(
        "duration_ms",
        core::Json::number(
            std::chrono::duration<double, std::milli>(Clock::now() - rec.started).count()));
    o.emplace_back("upstream_ms",
                   rec.upstream_ms < 0 ? core::Json() : core::Json::number(rec.upstream_ms));
    if (!rec.mcp_info.method.empty()) {
      o.emplace_back("mcp_method", core::Json(core::printable(rec.mcp_info.method, 100)));
      if (!rec.mcp_info.tool.empty())
        o.emplace_back("mcp_tool", core::Json(core::printable(rec.mcp_info.tool, 100)));
    }
    if (const std::string app = pctx && pctx->token ? logged_client(*pctx->token) : rec.client_app;
        !app.empty())
      o.emplace_back("client_app", core::Json(app));
    if (!rec.error.empty()) o.emplace_back("error", core::Json(rec.error));
    options.access_log(core::Json(std::move(o)).dump());
  }

  // The answer when the backend failed before anything reached the client.
  template <class Stream>
  awaitable<bool> answer_backend_failure(Stream& client, Worker& w, Record& rec, unsigned version,
                                         std::chrono::milliseconds write_timeout, int failure,
                                         bool got_some) {
    rec.status = failure;
    const std::string_view text =
        failure == 504   ? kGatewayTimeout
        : failure == 413 ? kPayloadTooLarge
                         : (failure == 502 && got_some ? kBadBackendResponse : kBadGateway);
    if (rec.pctx && failure != 413) {
      // Backend failures are errors on-error sees (apim-policies.md §1.4).
      policy::LastError e;
      e.source = "forward-request";
      e.reason = failure == 504 ? "Timeout" : "BackendConnectionFailure";
      e.message = rec.error;
      e.scope = "global";
      e.section = "backend";
      e.path = "forward-request[1]";
      e.status = failure;
      e.response_message = std::string(text);
      rec.pctx->error = std::move(e);
      auto r = on_error(*rec.route->program, *rec.pctx);
      add_answer_headers(*rec.pctx, r.headers);
      rec.status = r.status;
      co_await write_local(client, version, false, r, rec.request_id, write_timeout, rec.bytes_out);
      log_exchange(w, rec);
      co_return false;
    }
    co_await reply(client, version, false, failure, text, rec.request_id, write_timeout);
    log_exchange(w, rec);
    co_return false;
  }

  // ---- one request ----------------------------------------------------------------------------
  //
  // An exchange runs in steps: plain functions for what never waits, coroutines of their own for
  // what does (the request body's read, the upstream leg). Its frame holds the state the steps
  // share (Exchange) and little else: GCC gives every local of a coroutine a place in its frame,
  // and Asio recycles frames of up to 1,020 bytes only; a larger one is allocated and freed on
  // every request, and takes a smaller one's place in the thread's cache as it goes.

  using RequestParser = bhttp::request_parser<bhttp::buffer_body>;

  // How an exchange ends.
  enum class Ending {
    kRelay,           // an upstream answered: its answer goes on to relay_answer
    kReply,           // an APIM error body: the record's status, reply_message
    kLocal,           // a response made here (the policies', the metadata document): local
    kBackendFailure,  // the upstream failed before anything reached the client: failure
    kSilent,          // nobody to answer (the client left): the log line only
  };

  // One request's state, shared by the exchange's steps.
  struct Exchange {
    Exchange(Worker& w, const View& view, RequestCopy& rq, RequestParser* parser,
             beast::flat_buffer& cbuf, bool tls, Record& rec)
        : w(w),
          view(view),
          rt(*view.rt),
          limits(view.rt->limits),
          rq(rq),
          parser(parser),
          cbuf(cbuf),
          tls(tls),
          rec(rec),
          req_fields(rq.head.fields),
          relay(w.buffers) {}
    Exchange(const Exchange&) = delete;
    Exchange& operator=(const Exchange&) = delete;

    Worker& w;
    const View& view;
    const Runtime& rt;
    const config::Limits& limits;
    RequestCopy& rq;
    RequestParser* parser;  // reads the body; null when none is left to read
    beast::flat_buffer& cbuf;
    const bool tls;
    Record& rec;
    const Route* route = nullptr;
    unsigned version = 11;
    bool client_keep_alive = false;
    bool body_pending = false;  // a body was left to read when the head came
    bool owe_continue = false;  // the client waits for a 100 before it sends its body
    bool request_has_body = false;
    bool is_mcp_message = false;
    bool buffer_message = false;  // the body is read whole into `message` before it goes on
    Clock::time_point deadline = Clock::time_point::max();
    std::string message;
    std::string rest;       // the target as the upstream gets it (past an API's prefix)
    ViewFields req_fields;  // the request's fields as the policies leave them
    RelayBuffer relay;      // a request body passes through it, one read at a time
    std::size_t upstream_index = 0;
    Pool* pool = nullptr;
    std::chrono::milliseconds response_timeout{0};
    Spare<std::string> upstream_head;
    std::optional<net::UpstreamConn> upstream;
    // The answer's head is parsed in place here (into w.answer_head): good until the next read
    // from the upstream or the next suspension. Moved into the answer when there is one.
    Spare<beast::flat_buffer> ubuf;
    bool got_some = false;            // bytes of an answer came (a failure then is a bad response)
    Ending ending = Ending::kSilent;  // until a step says how (a path that forgets closes)
    bool keep = false;                // the client connection stays open after
    std::string_view reply_message;
    int failure = 0;
    std::optional<policy::LocalResponse> local;

    bool body_done() const { return !parser || parser->is_done(); }
    bool timed_out() const { return Clock::now() >= deadline; }
    // The ways to end here; each returns false (the exchange goes no further).
    bool reply(int status, std::string_view text, bool keep_open) {
      rec.status = status;
      reply_message = text;
      keep = keep_open;
      ending = Ending::kReply;
      return false;
    }
    bool refuse(int status, std::string_view text) {
      return reply(status, text, client_keep_alive && !body_pending);
    }
    bool silent(int status) {
      rec.status = status;
      keep = false;
      ending = Ending::kSilent;
      return false;
    }
    bool answer_locally(policy::LocalResponse r, bool keep_open) {
      rec.status = r.status;
      local = std::move(r);
      keep = keep_open;
      ending = Ending::kLocal;
      return false;
    }
  };

  // One request: route, check, forward. False when the connection must close. An upstream's
  // answer leaves in `answer` for relay_answer, once this frame is gone.
  template <class Stream>
  awaitable<bool> exchange(Stream& client, Worker& w, const View& view, RequestCopy& rq,
                           RequestParser* parser, beast::flat_buffer& cbuf, bool tls, Record& rec,
                           std::optional<Answer>& answer) {
    Exchange x(w, view, rq, parser, cbuf, tls, rec);
    bool on = begin_exchange(x);
    // An MCP message is read whole before it goes on: its JSON-RPC method and tool are known to
    // the log, the metrics and (later) the policies. So is a body a policy may replace.
    if (on && x.buffer_message && x.parser) on = co_await read_message(client, x);
    if (on && x.buffer_message) take_message(x);
    // Policies: inbound, then backend (whose forward-request decides the forwarding). A section
    // that stops for signing keys goes on in run_on; most never do.
    if (on && !x.route->plain) {
      policy::Context& ctx = start_policies(x);
      const policy::Program& program = *x.route->program;
      std::size_t at = 0;
      auto flow = policy::run_section(program, policy::kInbound, ctx, at);
      if (flow == policy::Flow::kPending)
        flow = co_await run_on(w, program, policy::kInbound, ctx, at);
      if (flow == policy::Flow::kContinue) {
        at = 0;
        flow = policy::run_section(program, policy::kBackend, ctx, at);
        if (flow == policy::Flow::kPending)
          flow = co_await run_on(w, program, policy::kBackend, ctx, at);
      }
      on = after_policies(x, flow);
    }
    if (on) {
      make_upstream_head(x);
      on = co_await forward(client, x);
    }
    if (on) answer_ready(x, answer);
    switch (x.ending) {
      case Ending::kRelay:
        co_return x.keep;
      case Ending::kReply: {
        const bool keep = co_await reply(client, x.version, x.keep, rec.status, x.reply_message,
                                         rec.request_id, x.limits.idle_timeout);
        log_exchange(w, rec);
        co_return keep;
      }
      case Ending::kLocal: {
        const bool keep = co_await write_local(client, x.version, x.keep, *x.local, rec.request_id,
                                               x.limits.idle_timeout, rec.bytes_out);
        log_exchange(w, rec);
        co_return keep;
      }
      case Ending::kBackendFailure:
        co_return co_await answer_backend_failure(client, w, rec, x.version, x.limits.idle_timeout,
                                                  x.failure, x.got_some);
      case Ending::kSilent:
        break;
    }
    log_exchange(w, rec);
    co_return false;
  }

  // What the request asks, and the answers that need neither its body nor the upstream. False
  // when the exchange ends here.
  bool begin_exchange(Exchange& x) {
    Record& rec = x.rec;
    const http::RequestHead& rq = x.rq.head;
    const std::vector<http::HeadField>& fields = rq.fields;  // as the client sent them
    if (auto id = first_value(fields, "X-Request-Id"); acceptable_request_id(id)) {
      rec.request_id = std::string(id);
    } else {
      rec.request_id = new_request_id();
    }
    x.version = rq.version;
    x.client_keep_alive = keeps_alive(x.version, connection_lines(fields)) && !stopping.load();
    rec.target = std::string(rq.target);
    rec.method = std::string(rq.method);
    const std::string_view path = std::string_view(rec.target).substr(0, rec.target.find('?'));
    const std::string_view method = rec.method;
    const Route* route = x.route = rec.route = x.rt.match(path);

    // A body that came whole with its head (serve() made no parser for it) is taken out of the
    // connection's buffer now, so that no early answer can leave it there for the next request.
    const bool body_in_hand = !x.parser && rq.content_length.value_or(0) > 0;
    if (body_in_hand) {
      x.message.assign(static_cast<const char*>(x.cbuf.data().data()),
                       static_cast<std::size_t>(*rq.content_length));
      x.cbuf.consume(x.message.size());
      rec.bytes_in = x.message.size();
    }
    // A body we will not read makes the connection unusable for another request.
    x.body_pending = !x.body_done();
    // RFC 9110 §10.1.1: a client that sent Expect: 100-continue may wait for an interim 100
    // before it sends its body. It goes out when the body is first read: a request refused
    // before that gets its final answer instead, and the client keeps its body.
    x.owe_continue = x.body_pending && x.version >= 11 &&
                     core::iequals(core::trim(first_value(fields, "Expect")), "100-continue");
    // RFC 9112 §6.1: a request whose Transfer-Encoding is anything but `chunked` alone has no
    // length we can trust (or a coding we do not apply): 400, and the connection closes.
    if (rq.transfer_encoding) {
      std::string codings;
      for (const auto& f : fields)
        if (name_is(f.name, "Transfer-Encoding"))
          codings.append(codings.empty() ? "" : ",").append(f.value);
      if (!rq.chunked || !core::iequals(core::trim(codings), "chunked"))
        return x.reply(400, kBadRequest, false);
    }
    // RFC 9728 metadata: public, cacheable, readable from any origin (browser-based clients).
    if (const auto md = x.rt.resource_metadata.find(path); md != x.rt.resource_metadata.end()) {
      policy::LocalResponse r;
      r.headers.emplace_back("Access-Control-Allow-Origin", "*");
      if (method == "GET") {
        r.headers.emplace_back("Content-Type", "application/json");
        r.headers.emplace_back("Cache-Control", "public, max-age=3600");
        r.body = md->second;
      } else if (method == "OPTIONS") {
        r.status = 204;
        r.headers.emplace_back("Access-Control-Allow-Methods", "GET, OPTIONS");
        r.headers.emplace_back("Access-Control-Allow-Headers", "*");
        r.headers.emplace_back("Access-Control-Max-Age", "86400");
      } else {
        r.status = 405;
        r.headers.emplace_back("Allow", "GET, OPTIONS");
        r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
        r.body = apim_error_body(405, kMethodNotAllowed);
      }
      return x.answer_locally(std::move(r), x.client_keep_alive && !x.body_pending);
    }
    if (!route) return x.refuse(404, kNotFound);
    // MCP Streamable HTTP: refuse other origins and hosts against DNS rebinding (mcp.md,
    // transport security).
    if (!route->api.allowed_origins.empty()) {
      const auto origin = first_value(fields, "Origin");
      bool allowed = origin.empty();
      for (const auto& o : route->api.allowed_origins)
        allowed = allowed || core::iequals(o, origin);
      if (!allowed) return x.refuse(403, kOriginNotAllowed);
    }
    if (!route->api.allowed_hosts.empty() &&
        !host_allowed(first_value(fields, "Host"), route->api.allowed_hosts))
      return x.refuse(403, kHostNotAllowed);

    x.deadline = route->request_timeout.count() > 0 ? rec.started + route->request_timeout
                                                    : Clock::time_point::max();
    // Other bodies stream, but for one that came whole with its head, which goes on with the
    // upstream head in one write.
    x.request_has_body =
        body_in_hand ||
        (x.parser && (x.parser->content_length().value_or(0) > 0 || x.parser->chunked()));
    x.is_mcp_message = route->api.type == "mcp" && method == "POST" && x.request_has_body;
    x.buffer_message =
        x.request_has_body &&
        (body_in_hand || x.is_mcp_message || (route->program && route->program->sets_request_body));

    // The target as the upstream sees it.
    x.upstream_index = route->upstream;
    x.rest = route->api.strip_prefix && route->api.path != "/"
                 ? rec.target.substr(route->api.path.size())
                 : rec.target;
    if (x.rest.empty() || x.rest[0] == '?') x.rest = "/" + x.rest;
    return true;
  }

  // RFC 9110 §10.1.1: the interim 100 the client waits for before it sends its body.
  template <class Stream>
  static awaitable<bool> send_continue(Stream& client, Exchange& x) {
    x.owe_continue = false;
    static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
    arm(client, x.limits.idle_timeout, Clock::time_point::max());
    auto [ec, n] =
        co_await asio::async_write(client, asio::buffer(k100.data(), k100.size()), kTuple);
    (void)n;
    co_return !ec;
  }

  // Reads the request body whole into x.message. False when the exchange ends here.
  template <class Stream>
  static awaitable<bool> read_message(Stream& client, Exchange& x) {
    auto& req_p = *x.parser;
    auto& body = req_p.get().body();
    if (x.owe_continue && !co_await send_continue(client, x))
      co_return x.silent(499);  // the client left before its body was in
    while (!req_p.is_done()) {
      body.data = x.relay.get();
      body.size = kRelayBuffer;
      arm(client, x.limits.idle_timeout, x.deadline);
      auto [ec, n] = co_await bhttp::async_read_some(client, x.cbuf, req_p, kTuple);
      (void)n;
      if (ec && ec != bhttp::error::need_buffer) {
        if (ec == bhttp::error::body_limit) co_return x.refuse(413, kPayloadTooLarge);
        // Too slow (the idle timeout, or the API's request deadline first): the timeout closed
        // the connection, so the status is the log's only, as nginx does with its 408.
        if (ec == beast::error::timeout) co_return x.silent(x.timed_out() ? 504 : 408);
        co_return x.silent(499);  // the client left before its body was in
      }
      x.message.append(x.relay.get(), kRelayBuffer - body.size);
    }
    body.data = x.message.data();
    body.size = x.message.size();
    body.more = false;
    co_return true;
  }

  // A body read whole: counted, and an MCP message's envelope read.
  void take_message(Exchange& x) {
    x.rec.bytes_in = x.message.size();
    if (x.is_mcp_message) {
      x.rec.mcp_info = mcp::inspect_request(x.message);
      count_mcp(x.w, x.route->slot, x.rec.mcp_info);
    }
  }

  // The policy context of a request whose API runs policies.
  static policy::Context& start_policies(Exchange& x) {
    Record& rec = x.rec;
    rec.pctx = Spares::context();
    policy::Context& ctx = *rec.pctx;
    ctx.activity_id = rec.request_id;
    ctx.method = rec.method;
    const auto q = x.rest.find('?');
    ctx.path = x.rest.substr(0, q);
    if (q != std::string::npos) ctx.query = x.rest.substr(q + 1);
    ctx.client_ip = *rec.remote;
    ctx.request_headers = &x.req_fields;
    ctx.preflight = rec.method == "OPTIONS" && x.req_fields.first("Origin") &&
                    x.req_fields.first("Access-Control-Request-Method");
    return ctx;
  }

  // A response the policies made, with what every answer of theirs carries.
  static bool policy_answer(Exchange& x, policy::LocalResponse r) {
    const auto& pctx = x.rec.pctx;
    if (pctx && pctx->error) {
      x.rec.error = describe(*pctx->error);
      add_challenge(*x.route, *pctx->error, r);
    }
    if (pctx) add_answer_headers(*pctx, r.headers);
    return x.answer_locally(std::move(r), x.client_keep_alive && x.body_done());
  }

  // Where inbound and backend left the request: answered, or forwarded (to which backend, with
  // which target and body). False when the exchange ends here.
  static bool after_policies(Exchange& x, policy::Flow flow) {
    policy::Context& ctx = *x.rec.pctx;
    const policy::Program& program = *x.route->program;
    if (flow == policy::Flow::kRespond) return policy_answer(x, *ctx.respond);
    if (flow == policy::Flow::kError) return policy_answer(x, on_error(program, ctx));
    if (!ctx.forward) {
      // Nothing forwards: outbound runs at once on an empty 200 (apim-policies.md §1.1).
      policy::FieldList headers;
      if (ctx.status == 0) ctx.status = 200;  // set-status in inbound may have chosen one
      ctx.response_headers = &headers;
      flow = policy::run_section(program, policy::kOutbound, ctx);
      ctx.response_headers = nullptr;  // `headers` goes with this call
      if (flow == policy::Flow::kRespond) return policy_answer(x, *ctx.respond);
      if (flow == policy::Flow::kError) return policy_answer(x, on_error(program, ctx));
      policy::LocalResponse r;
      r.status = ctx.status;
      r.reason = ctx.reason;
      r.headers = std::move(headers.fields);
      r.body = ctx.response_body.value_or(std::string());
      return policy_answer(x, std::move(r));
    }
    if (ctx.request_body) {
      // set-body: the backend gets this body instead (the client's was read whole).
      x.message = std::move(*ctx.request_body);
      ctx.request_body.reset();
      x.buffer_message = true;
      x.request_has_body = !x.message.empty();
    }
    if (!ctx.backend_id.empty()) x.upstream_index = x.rt.upstream_by_name.at(ctx.backend_id);
    if (!ctx.backend_url.empty()) x.upstream_index = x.rt.upstream_by_url.at(ctx.backend_url);
    x.rest = ctx.path + (ctx.query.empty() ? std::string() : "?" + ctx.query);
    return true;
  }

  // The request's head as the upstream gets it.
  static void make_upstream_head(Exchange& x) {
    const Record& rec = x.rec;
    const Upstream& up = x.rt.upstreams[x.upstream_index];
    x.pool = x.view.pools[x.upstream_index];
    x.response_timeout = up.response_timeout;
    if (rec.pctx && rec.pctx->forward_timeout.count() > 0)
      x.response_timeout = rec.pctx->forward_timeout;
    std::string ours;
    ours.reserve(128);
    ours.append("X-Request-Id: ").append(rec.request_id);
    ours.append("\r\nX-Forwarded-For: ").append(*rec.remote);
    ours.append(x.tls ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n");
    // One framing line, from what our parser read (or the whole body we hold). A client's
    // `Content-Length: 0` goes on too: some servers want a length on every POST.
    if (x.buffer_message) {
      ours.append("Content-Length: ").append(std::to_string(x.message.size())).append("\r\n");
    } else if (x.rq.head.chunked) {
      ours.append("Transfer-Encoding: chunked\r\n");
    } else if (const auto n = x.rq.head.content_length) {
      ours.append("Content-Length: ").append(std::to_string(*n)).append("\r\n");
    }
    // Hop by hop: the Connection lines as the policies left them.
    append_request_head(x.upstream_head.value, rec.method, up.base_path + x.rest,
                        x.req_fields.list(), connection_lines(x.req_fields.list()), up.host_line,
                        ours);
  }

  // The upstream leg: a connection (pooled or new), the request, and the answer's head, read
  // into x.ubuf and parsed into w.answer_head. False when the exchange ends here.
  template <class Stream>
  awaitable<bool> forward(Stream& client, Exchange& x) {
    Record& rec = x.rec;
    const Upstream& up = x.rt.upstreams[x.upstream_index];
    Pool& pool = *x.pool;
    std::optional<net::UpstreamConn>& upstream = x.upstream;
    beast::flat_buffer& ubuf = x.ubuf.value;
    http::ResponseHead& ah = x.w.answer_head;
    const auto upstream_started = Clock::now();
    int failure = 0;
    bool client_left = false;
    // A request that cannot have reached the upstream's application (no body, or the connection
    // was reused and failed before any answer) is retried once on a fresh connection; a request
    // with a body never is (RFC 9110 §9.2.2).
    for (int attempt = 0; attempt < 2; ++attempt) {
      bool reused = false;
      while (!pool.idle.empty() && !upstream) {
        net::UpstreamConn c = std::move(pool.idle.back());
        pool.idle.pop_back();
        if (c.usable()) {
          upstream.emplace(std::move(c));
          reused = true;
        }
      }
      if (!upstream) {
        auto connected = co_await net::connect_upstream(x.w.ioc, up.target, x.deadline);
        if (!connected.conn) {
          failure = connected.timed_out ? 504 : 502;
          rec.error = std::move(connected.error);
          break;
        }
        upstream.emplace(std::move(*connected.conn));
      }
      arm(*upstream, x.response_timeout, x.deadline);
      boost::system::error_code wec;
      if (x.buffer_message) {
        // Head and body in one write.
        const std::array<asio::const_buffer, 2> bufs{asio::buffer(x.upstream_head.value),
                                                     asio::buffer(x.message)};
        auto written = write_now(*upstream, bufs);
        if (!write_ended(written, bufs))
          written = co_await write_rest(*upstream, bufs, std::get<1>(written));
        wec = std::get<0>(written);
      } else {
        const auto bufs = asio::buffer(x.upstream_head.value);
        auto written = write_now(*upstream, bufs);
        if (!write_ended(written, bufs))
          written = co_await write_rest(*upstream, bufs, std::get<1>(written));
        wec = std::get<0>(written);
        if (!wec && x.request_has_body) {
          if (x.owe_continue && !co_await send_continue(client, x)) {
            upstream.reset();
            client_left = true;
            break;
          }
          RelayOptions ro;
          ro.read_timeout = x.limits.idle_timeout;
          ro.write_timeout = x.response_timeout;
          ro.deadline = x.deadline;
          ro.copied = &rec.bytes_in;
          const auto relayed = co_await relay_body(
              client, x.cbuf, *x.parser, *upstream, {},
              x.parser->chunked() ? Framing::kChunked : Framing::kRaw, x.relay, ro);
          if (relayed.ec) {
            // Either side broke while the body was in flight: nothing can be retried.
            upstream.reset();
            if (relayed.ec == bhttp::error::body_limit) {
              failure = 413;
            } else if (relayed.ec == beast::error::timeout && x.timed_out()) {
              failure = 504;
            } else if (relayed.reading) {
              client_left = true;
            } else {
              failure = 502;
              rec.error = "sending the body upstream: " + relayed.ec.message();
            }
            break;
          }
        }
      }
      if (!wec) {
        arm(*upstream, x.response_timeout, x.deadline);
        auto hr = co_await read_answer_head(*upstream, ubuf, ah, x.limits.max_header_bytes);
        // Interim answers (1xx, such as 103 Early Hints) are not relayed: the final one follows
        // on the same connection. (101 cannot come: Upgrade never reaches the upstream.) At most
        // kMaxInterim of them: an upstream that sends them without end is a bad response.
        int interim = 0;
        while (hr.status == http::HeadStatus::kComplete && ah.status / 100 == 1 &&
               ah.status != 101) {
          if (++interim > kMaxInterim) {
            hr.status = http::HeadStatus::kBad;
            break;
          }
          ubuf.consume(ah.size);
          arm(*upstream, x.response_timeout, x.deadline);
          hr = co_await read_answer_head(*upstream, ubuf, ah, x.limits.max_header_bytes);
        }
        x.got_some = interim > 0 || ubuf.size() > 0;
        if (hr.status == http::HeadStatus::kComplete) {
          failure = 0;
          break;
        }
        const bool timeout = hr.ec == beast::error::timeout;
        failure = timeout ? 504 : 502;
        rec.error = "reading the response head: " + head_failure(hr, timeout, x.limits);
        upstream.reset();
        if (reused && !x.request_has_body && !timeout && !x.got_some) {
          ubuf.clear();
          continue;
        }
        break;
      }
      failure = 502;
      rec.error = "sending the request upstream: " + wec.message();
      upstream.reset();
      if (!(reused && !x.request_has_body)) break;
    }
    rec.upstream_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - upstream_started).count();
    if (client_left) co_return x.silent(499);  // logged only: nobody is left to answer
    if (failure) {
      x.failure = failure;
      x.ending = Ending::kBackendFailure;
      co_return false;
    }
    co_return true;
  }

  static std::string head_failure(const HeadRead& hr, bool timeout, const config::Limits& limits) {
    if (timeout) return "timed out";
    if (hr.ec) return hr.ec.message();
    if (hr.status == http::HeadStatus::kTooLarge)
      return "longer than " + std::to_string(limits.max_header_bytes) + " bytes";
    return "malformed";
  }

  // The upstream's answer head, through outbound, as the client gets it: into `answer_out` for
  // relay_answer, or a response made here instead (false). Nothing in here suspends: the views
  // of w.answer_head into x.ubuf stay good until its copy for the client is made.
  bool answer_ready(Exchange& x, std::optional<Answer>& answer_out) {
    Record& rec = x.rec;
    const http::ResponseHead& ah = x.w.answer_head;
    int& status = rec.status;
    status = static_cast<int>(ah.status);
    const int upstream_status = status;
    std::string_view reason = ah.reason;
    const std::string_view method = rec.method;
    // Its Connection lines as they came: whether the upstream connection can be used again, and
    // (unless a policy changes them) which of its fields go no further than this hop (RFC 9110
    // §7.6.1).
    const std::string listed = connection_lines(ah.fields);
    const bool upstream_keep_alive = keeps_alive(ah.version, listed);
    ViewFields res_fields(x.w.answer_head.fields);
    const auto& pctx = rec.pctx;
    if (pctx) {
      // Outbound runs on the response head; a replaced body or a local answer drops the
      // upstream's body (and its connection).
      policy::Context& ctx = *pctx;
      const policy::Program& program = *x.route->program;
      ctx.status = status;
      ctx.response_headers = &res_fields;
      policy::Flow flow;
      if (ctx.fail_on_error_status && status >= 400) {
        // forward-request fail-on-error-status-code: on-error runs on the backend's answer
        // instead of outbound; what it leaves alone reaches the caller as the backend sent it.
        policy::LastError e;
        e.source = "forward-request";
        e.reason = "BackendErrorStatusCode";
        e.message = "The backend answered " + std::to_string(status);
        e.log_message = true;
        e.scope = "global";
        e.section = "backend";
        e.path = "forward-request[1]";
        e.status = status;
        e.response_message = std::string(reason);
        ctx.error = std::move(e);
        ctx.response_body.reset();
        flow = policy::run_section(program, policy::kOnError, ctx);
        if (flow == policy::Flow::kError) {
          // on-error failed on the backend's answer: that failure's own answer, not a second
          // run of on-error.
          policy::LocalResponse r;
          r.status = ctx.error->status;
          r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
          r.body = apim_error_body(r.status, ctx.error->response_message,
                                   ctx.error->unexpected ? ctx.activity_id : std::string());
          ctx.respond = std::move(r);
          flow = policy::Flow::kRespond;
        }
      } else {
        flow = policy::run_section(program, policy::kOutbound, ctx);
      }
      if (flow != policy::Flow::kContinue || ctx.response_body) {
        x.upstream->close();
        policy::LocalResponse r;
        if (flow == policy::Flow::kRespond) {
          r = *ctx.respond;
        } else if (flow == policy::Flow::kError) {
          r = on_error(program, ctx);
        } else {
          r.status = ctx.status;
          r.reason = ctx.reason;
          const std::string now_listed = connection_lines(res_fields.list());
          for (const auto& f : res_fields.list())
            if (!hop_by_hop(f.name, now_listed)) r.headers.emplace_back(f.name, f.value);
          r.body = *ctx.response_body;
        }
        if (ctx.error) rec.error = describe(*ctx.error);
        add_answer_headers(ctx, r.headers);
        ctx.response_headers = nullptr;  // its views are not read past here (r holds copies)
        return x.answer_locally(std::move(r), x.client_keep_alive && x.body_done());
      }
      if (ctx.status != status) {
        status = ctx.status;
        reason = {};  // the new status's own phrase, unless the policy gave one
      }
      if (!ctx.reason.empty()) reason = ctx.reason;
      if (ctx.error) rec.error = describe(*ctx.error);
      add_answer_headers(ctx, res_fields);
    }
    const bool event_stream = core::istarts_with(
        res_fields.first("Content-Type").value_or(std::string_view()), "text/event-stream");
    bool keep = x.client_keep_alive && x.body_done();
    const unsigned version = x.version;
    const bool bodiless = method == "HEAD" || status / 100 == 1 || status == 204 || status == 304;
    // The body as the upstream frames it (RFC 9112 §6.3): a response to HEAD has a head only,
    // whatever its Content-Length says (RFC 9110 §9.3.2).
    const bool none_in = method == "HEAD" || upstream_status / 100 == 1 || upstream_status == 204 ||
                         upstream_status == 304;
    const bool chunked_in = !none_in && ah.chunked;
    const std::optional<std::uint64_t> length_in =
        none_in || ah.transfer_encoding ? std::nullopt : ah.content_length;
    // How the body goes to the client: decided from what the parser read, never from the fields
    // (the upstream's lines may disagree with each other, an outbound policy may have set them).
    // A body the upstream ends by closing goes to HTTP/1.1 clients chunked, so the connection
    // can stay open; HTTP/1.0 has no chunked coding: its body ends when we close.
    bool chunked_out = !bodiless && (chunked_in || !length_in);
    if (chunked_out && version < 11) {
      chunked_out = false;
      keep = false;
    }
    const Framing framing = bodiless      ? Framing::kNone
                            : chunked_out ? Framing::kChunked
                                          : Framing::kRaw;
    std::string head;
    {
      std::string ours;
      ours.reserve(160);
      ours.append("X-Request-Id: ", 14).append(rec.request_id).append("\r\n", 2);
      if (event_stream) ours += "X-Accel-Buffering: no\r\n";  // proxies in front must not buffer
      // The client connection's own fate (the upstream's Connection lines went with its hop).
      if (version >= 11 && !keep) ours += "Connection: close\r\n";
      if (version < 11 && keep) ours += "Connection: keep-alive\r\n";
      if (framing == Framing::kChunked) {
        // Transfer codings other than chunked stay (they end in chunked when the parser says so).
        // A body read until close under a coding of its own (`gzip`) keeps it, then our chunks.
        std::string codings;
        if (ah.transfer_encoding) {
          for (const auto& f : res_fields.list())
            if (name_is(f.name, "Transfer-Encoding"))
              codings.append(codings.empty() ? "" : ", ").append(f.value);
        }
        if (!chunked_in) codings.append(codings.empty() ? "chunked" : ", chunked");
        ours.append("Transfer-Encoding: ").append(codings).append("\r\n");
      } else if (framing == Framing::kRaw && length_in) {
        ours.append("Content-Length: ").append(std::to_string(*length_in));
        ours.append("\r\n");
      }
      const auto skip = framing == Framing::kNone
                            ? (event_stream ? gateway_stream_head_field : gateway_response_field)
                            : (event_stream ? gateway_stream_field : gateway_body_response_field);
      // Hop by hop: the Connection lines as the policies left them.
      const std::string now_listed = pctx ? connection_lines(res_fields.list()) : std::string();
      append_answer_head(head, version, static_cast<unsigned>(status), reason, res_fields.list(),
                         pctx ? std::string_view(now_listed) : std::string_view(listed), skip,
                         ours);
    }
    x.ubuf.value.consume(ah.size);  // the views into it are done with
    if (event_stream) rec.keep_for_stream();
    if (pctx) {
      // The request and these views of it go with the exchange: what runs after (on-error, when
      // the body fails before a byte of it reached the client) sees no request fields.
      pctx->request_headers = nullptr;
      pctx->response_headers = nullptr;
    }
    Answer& ans = answer_out.emplace();
    ans.upstream = std::move(x.upstream);
    ans.ubuf = std::move(x.ubuf.value);
    ans.head = std::move(head);
    ans.pool = x.pool;
    ans.version = version;
    ans.framing = framing;
    ans.event_stream = event_stream;
    ans.bodiless = bodiless;
    ans.chunked_out = chunked_out;
    ans.keep = keep;
    ans.upstream_reusable = upstream_keep_alive && upstream_status != 101;
    ans.response_timeout = x.response_timeout;
    ans.deadline = x.deadline;
    ans.none_in = none_in;
    ans.chunked_in = chunked_in;
    ans.length_in = length_in;
    x.keep = keep;
    x.ending = Ending::kRelay;
    return true;
  }

  // Relays an upstream's answer: the head, then the body as it arrives. Its own coroutine, so an
  // event stream open for hours holds this small frame and not the exchange's — or none at all:
  // given `park` (a plain connection's event stream, whose record and answer `park` holds), it
  // returns kParked at the stream's first silence, and the stream goes on from resume_stream.
  template <class Stream>
  awaitable<After> relay_answer(Stream& client, Worker& w, const config::Limits& limits,
                                beast::flat_buffer& cbuf, Record& rec, Answer& a,
                                std::shared_ptr<StreamRelay> park = nullptr) {
    const bool event_stream = a.event_stream;
    const auto length = a.length_in;
    if (!event_stream && a.framing == Framing::kRaw && length && a.ubuf.size() >= *length) {
      // The common answer — small, and here whole with its head (a JSON reply): one write, no
      // relay loop, no body parser.
      const std::array<asio::const_buffer, 2> bufs{
          asio::buffer(a.head),
          asio::buffer(a.ubuf.data().data(), static_cast<std::size_t>(*length))};
      arm(client, limits.idle_timeout, a.deadline);
      auto written = write_now(client, bufs);
      if (!write_ended(written, bufs))
        written = co_await write_rest(client, bufs, std::get<1>(written));
      const auto [wec, wn] = written;
      rec.bytes_out += wn;
      log_exchange(w, rec);
      if (wec) co_return After::kClose;
      // An upstream that sent more than its answer is not asked again.
      if (a.upstream_reusable && a.ubuf.size() == *length) release(*a.pool, std::move(*a.upstream));
      co_return after(a.keep);
    }
    auto& res_p = a.parser();
    // The head goes with the first body bytes when they are already here (a small answer: one
    // write); otherwise at once — an event stream's client learns its stream is open before
    // the first event, and a slow body's client sees the head before the body.
    if (event_stream || !(res_p.is_done() || a.ubuf.size() > 0)) {
      arm(client, limits.idle_timeout, event_stream ? Clock::time_point::max() : a.deadline);
      auto [hwec, hwn] = co_await asio::async_write(client, asio::buffer(a.head), kTuple);
      rec.bytes_out += hwn;
      if (hwec) {
        log_exchange(w, rec);
        co_return After::kClose;
      }
      std::string().swap(a.head);
    }
    // A body still coming is read kAnswerRead bytes at a time (Beast reads as much as the buffer
    // has room for); an event stream's reads stay small (it parks between events).
    if (!event_stream && !res_p.is_done()) a.ubuf.reserve(kAnswerRead);
    std::optional<Relaying> here;  // the relay's state: in this frame, or in `park`
    Relaying& r = park ? park->relaying : here.emplace(w.buffers);
    start_relay(client, w, limits, cbuf, rec, a, r);
    r.ro.park = park != nullptr;
    const auto relayed =
        co_await relay_body(*a.upstream, a.ubuf, res_p, client, a.head, a.framing, r.relay, r.ro);
    if (relayed.parked) {
      wait_for_stream(park);
      co_return After::kParked;
    }
    co_return co_await finish_relay(client, w, limits, rec, a, r, relayed);
  }

  // The relay's state beyond the answer: options, buffer, and what an event stream adds.
  template <class Stream>
  void start_relay(Stream& client, Worker& w, const config::Limits& limits,
                   const beast::flat_buffer& cbuf, Record& rec, Answer& a, Relaying& r) {
    const bool event_stream = a.event_stream;
    RelayOptions& ro = r.ro;
    // While an event stream is relayed, the upstream may be silent for long: no read timeout and
    // no request deadline then; a slow client still gets the idle timeout on each write.
    ro.read_timeout = event_stream ? std::chrono::milliseconds(0) : a.response_timeout;
    ro.write_timeout = limits.idle_timeout;
    ro.deadline = event_stream ? Clock::time_point::max() : a.deadline;
    ro.written = &rec.bytes_out;
    ro.idle_without_buffer = event_stream;  // streams wait for their next event holding none
    if (event_stream && !a.upstream->secure()) ro.idle_socket = &a.upstream->lowest().socket();
    const auto& api = rec.route->api;
    if (event_stream && cbuf.size() == 0) {
      // When the client goes away mid-stream, the upstream request is cancelled at once.
      ++active_streams;
      r.watch = std::make_shared<ClientWatch>();
      r.watch->upstream = &*a.upstream;
      watch_client(beast::get_lowest_layer(client).socket(), r.watch);
      if (api.sse_keepalive.count() > 0 && !a.bodiless && (a.chunked_out || !a.length_in)) {
        r.heartbeat = std::make_shared<Heartbeat>(w.ioc);
        r.heartbeat->chunked = a.chunked_out;
        ro.heartbeat = r.heartbeat.get();
        asio::co_spawn(
            w.ioc,
            send_heartbeats(client, r.heartbeat, api.sse_keepalive, limits.idle_timeout, r.watch),
            asio::detached);
      }
    }
    if (event_stream && api.type == "mcp" && api.strip_prefix && api.path != "/") {
      r.rewriter = std::make_unique<EndpointRewriter>();
      r.rewriter->prefix = api.path;
      ro.rewriter = r.rewriter.get();
    }
  }

  // After the body: the heartbeat and the client watch stopped, the failure answered or logged,
  // the upstream connection pooled. Whether the client connection stays open.
  template <class Stream>
  awaitable<After> finish_relay(Stream& client, Worker& w, const config::Limits& limits,
                                Record& rec, Answer& a, Relaying& r, RelayResult relayed) {
    if (r.heartbeat) {
      r.heartbeat->active = false;
      r.heartbeat->timer.cancel();
      while (r.heartbeat->writing) {  // a comment is on its way out: the stream is the client's
        r.heartbeat->wake.expires_at(Clock::time_point::max());
        co_await r.heartbeat->wake.async_wait(kTuple);
      }
    }
    if (r.watch) {
      --active_streams;
      r.watch->active = false;
      if (r.watch->client_gone) rec.status = 499;  // logged only: nobody is left to answer
      boost::system::error_code ignored;
      beast::get_lowest_layer(client).socket().cancel(ignored);  // ends the watcher's wait
    }
    if (relayed.ec && relayed.reading && rec.status != 499) {
      rec.error = "reading the response body: " + relayed.ec.message();
      if (rec.bytes_out == 0) {
        // Nothing reached the client yet (its head was to go with the first body bytes): it
        // gets the answer of a backend that failed before its head.
        a.upstream.reset();
        co_return after(co_await answer_backend_failure(
            client, w, rec, a.version, limits.idle_timeout,
            relayed.ec == beast::error::timeout ? 504 : 502, a.parser().got_some()));
      }
    }
    log_exchange(w, rec);
    if (relayed.ec) co_return After::kClose;  // the head is out: all we can do is close
    // Bytes past the answer (a stray body after a HEAD, 204 or 304 answer, more than its
    // length or its last chunk) would be read as the next answer's: the connection goes.
    if (a.upstream_reusable && a.parser().is_done() && a.ubuf.size() == 0)
      release(*a.pool, std::move(*a.upstream));
    co_return after(a.keep);
  }

  // A parked stream waits for its upstream's next bytes with only this wait pending: no
  // coroutine frame, no buffer. They resume it in a coroutine of its own.
  void wait_for_stream(std::shared_ptr<StreamRelay> s) {
    tcp::socket& upstream = *s->relaying.ro.idle_socket;
    upstream.async_wait(
        tcp::socket::wait_read,
        net::exact_memory([this, s = std::move(s)](boost::system::error_code ec) mutable {
          s->relaying.ro.readable = !ec;
          asio::io_context& ioc = s->w.ioc;
          asio::co_spawn(ioc, resume_stream(std::move(s), ec), asio::detached);
        }));
  }

  // `waited`: how the wait for the upstream's bytes ended.
  awaitable<void> resume_stream(std::shared_ptr<StreamRelay> s, boost::system::error_code waited) {
    Relaying& r = s->relaying;
    Answer& a = s->answer;
    const auto& limits = s->view->rt->limits;
    RelayResult relayed{waited, true};
    if (!waited) {
      relayed = co_await relay_body(*a.upstream, a.ubuf, a.parser(), s->conn->stream, {}, a.framing,
                                    r.relay, r.ro);
    }
    if (relayed.parked) {
      wait_for_stream(std::move(s));
      co_return;
    }
    const After next =
        co_await finish_relay(s->conn->stream, s->w, limits, s->record, a, r, relayed);
    // The stream's record and answer go now; its connection serves on when it is kept.
    std::shared_ptr<PlainConnection> conn = std::move(s->conn);
    Worker& w = s->w;
    s.reset();
    if (next == After::kKeep) co_await serve(conn->stream, w, conn->remote, false, &conn, false);
    if (conn) conn->shutdown();
  }

  // A plain connection, on the heap: an event stream's relay can take it over (see StreamRelay).
  awaitable<void> run_plain(Worker& w, tcp::socket socket, net::ConnectionGuard guard) {
    auto conn = std::make_shared<PlainConnection>(std::move(socket), std::move(guard));
    co_await serve(conn->stream, w, conn->remote, false, &conn, true);
    if (conn) conn->shutdown();
  }

  std::unique_ptr<net::Acceptors> acceptors;
};

Gateway::Gateway() : impl_(std::make_unique<Impl>()) {}
Gateway::~Gateway() {
  stop(std::chrono::milliseconds(0));
  impl_->acceptors.reset();  // Asio objects go before their contexts
  impl_->keys.reset();       // no key fetch may post to a context after it is gone
  impl_->workers.clear();    // suspended sessions are destroyed while Impl is whole
}
const std::vector<net::BoundAddress>& Gateway::bound() const { return impl_->bound; }

core::Result<std::unique_ptr<Gateway>, std::string> Gateway::start(const config::Config& config,
                                                                   GatewayOptions options) {
  std::unique_ptr<Gateway> gw(new Gateway());
  Impl& impl = *gw->impl_;
  impl.options = std::move(options);
  oidc::ServiceOptions key_options;
  key_options.ca_file = config.entra.ca_file;
  key_options.refresh_interval = config.entra.key_refresh;
  key_options.min_refetch_interval = config.entra.key_refetch_min;
  for (const auto& [host, route] : config.entra.hosts)
    key_options.hosts[host] = oidc::HostRoute{route.address, route.ca_file};
  impl.keys = std::make_unique<oidc::KeyService>(std::move(key_options));
  impl.token_cache = std::make_shared<jwt::VerifiedTokenCache>(config.entra.token_cache_entries);
  auto rt = build_runtime(
      config, [&impl](const std::string& n) { return impl.slot_for(n); }, impl.compile_env());
  if (!rt) return core::fail(rt.error());
  impl.runtime = std::move(rt.value());
  const std::size_t n =
      config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < n; ++i) {
    impl.workers.push_back(std::make_unique<Impl::Worker>());
    impl.workers.back()->install(impl.runtime);
  }
  std::vector<net::ListenAddress> listen;
  for (const auto& l : config.listeners) listen.push_back({l.address, l.port, l.tls.has_value()});
  std::vector<asio::io_context*> contexts;
  for (auto& w : impl.workers) contexts.push_back(&w->ioc);
  auto acceptors = net::Acceptors::open(
      listen, contexts, [&impl](tcp::socket socket, bool secure, std::size_t worker) {
        Impl::Worker& w = *impl.workers[worker];
        const std::shared_ptr<const View> view = w.view;
        const Runtime& rt = *view->rt;
        if (w.connections.load(std::memory_order_relaxed) >= rt.limits.max_connections_per_worker ||
            (secure && !rt.tls_server)) {
          // Full: a plain connection is told so (503, then closed); a TLS one is closed, as an
          // answer would need a handshake first.
          if (!secure) asio::co_spawn(w.ioc, refuse_connection(std::move(socket)), asio::detached);
          return;
        }
        ++w.connections;  // the guard below takes it back when the connection ends
        if (!secure) {
          asio::co_spawn(w.ioc,
                         impl.run_plain(w, std::move(socket), net::ConnectionGuard(w.connections)),
                         asio::detached);
          return;
        }
        // A TLS connection keeps the certificate it was accepted with, across reloads.
        // Not a coroutine itself (one frame fewer per connection): run_connection holds it, and
        // with it the certificate, for as long as the connection lives.
        auto serve = [&impl, &w, tls_server = rt.tls_server](auto& stream,
                                                             const std::string& remote, bool tls) {
          return impl.serve(stream, w, remote, tls, nullptr, true);
        };
        asio::co_spawn(
            w.ioc,
            net::run_connection(std::move(socket), net::ConnectionGuard(w.connections),
                                rt.tls_server.get(), rt.limits.header_timeout, std::move(serve)),
            asio::detached);
      });
  if (!acceptors) return core::fail(acceptors.error());
  impl.acceptors = std::move(acceptors.value());
  impl.bound = impl.acceptors->bound();
  for (auto& w : impl.workers) impl.threads.emplace_back([c = &w->ioc] { c->run(); });
  return gw;
}

std::optional<std::string> Gateway::reload(const config::Config& config) {
  Impl& impl = *impl_;
  auto rt = build_runtime(
      config, [&impl](const std::string& n) { return impl.slot_for(n); }, impl.compile_env());
  if (!rt) {
    ++impl.reloads_rejected;
    return rt.error();
  }
  if (const auto changed = restart_needed(*impl.runtime, *rt.value()); !changed.empty()) {
    ++impl.reloads_rejected;
    return changed + " changed: restart the gateway to apply that";
  }
  impl.runtime = rt.value();
  for (auto& w : impl.workers)
    asio::post(w->ioc, [worker = w.get(), next = rt.value()] { worker->install(next); });
  ++impl.reloads_ok;
  return std::nullopt;
}

void Gateway::reload_rejected() { ++impl_->reloads_rejected; }

bool Gateway::ready() const { return !impl_->stopping.load(); }

std::string Gateway::metrics_text() const {
  Impl& impl = *impl_;
  std::vector<std::string> names;
  {
    std::lock_guard lock(impl.slots_mu);
    names = impl.slot_names;
  }
  const auto sum = [&](auto field) {
    std::uint64_t total = 0;
    for (const auto& w : impl.workers) total += field(*w);
    return total;
  };
  std::string out;
  out +=
      "# HELP mcpgate_requests_total Requests by API and status class.\n# TYPE "
      "mcpgate_requests_total counter\n";
  static const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string api = prometheus_label(names[i]);
    for (int c = 0; c < 6; ++c) {
      const auto n = sum([&](const Impl::Worker& w) {
        return w.stats[i].by_class[c].load(std::memory_order_relaxed);
      });
      if (n)
        out += "mcpgate_requests_total{api=\"" + api + "\",code=\"" + kClasses[c] + "\"} " +
               std::to_string(n) + "\n";
    }
  }
  out +=
      "# HELP mcpgate_request_duration_seconds Time from request head to the end of the response.\n"
      "# TYPE mcpgate_request_duration_seconds histogram\n";
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::uint64_t cumulative = 0;
    const std::string label = "api=\"" + prometheus_label(names[i]) + "\"";
    for (std::size_t b = 0; b <= kBucketCount; ++b) {
      cumulative += sum([&](const Impl::Worker& w) {
        return w.stats[i].buckets[b].load(std::memory_order_relaxed);
      });
      char le[32];
      if (b < kBucketCount)
        std::snprintf(le, sizeof le, "%g", kBuckets[b]);
      else
        std::snprintf(le, sizeof le, "+Inf");
      out += "mcpgate_request_duration_seconds_bucket{" + label + ",le=\"" + le + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    const double seconds = static_cast<double>(sum([&](const Impl::Worker& w) {
                             return w.stats[i].duration_us.load(std::memory_order_relaxed);
                           })) /
                           1e6;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", seconds);
    out += "mcpgate_request_duration_seconds_sum{" + label + "} " + buf + "\n";
    out += "mcpgate_request_duration_seconds_count{" + label + "} " + std::to_string(cumulative) +
           "\n";
  }
  out +=
      "# HELP mcpgate_upstream_errors_total Requests answered 502 or 504 by the gateway.\n# TYPE "
      "mcpgate_upstream_errors_total counter\n";
  for (std::size_t i = 1; i < names.size(); ++i) {
    out += "mcpgate_upstream_errors_total{api=\"" + prometheus_label(names[i]) + "\"} " +
           std::to_string(sum([&](const Impl::Worker& w) {
             return w.stats[i].upstream_errors.load(std::memory_order_relaxed);
           })) +
           "\n";
  }
  // MCP calls and token validations live in each worker's own tables: each worker copies its
  // tables on its own thread.
  using Rows = std::vector<std::pair<McpSeries, std::uint64_t>>;
  std::map<std::tuple<std::size_t, std::string, std::string>, std::uint64_t> calls, validations;
  if (!impl.stopping.load()) {
    std::vector<std::future<std::pair<Rows, Rows>>> copies;
    for (auto& w : impl.workers) {
      auto task = std::make_shared<std::packaged_task<std::pair<Rows, Rows>()>>([worker = w.get()] {
        return std::pair{Rows(worker->mcp_calls.begin(), worker->mcp_calls.end()),
                         Rows(worker->validations.begin(), worker->validations.end())};
      });
      copies.push_back(task->get_future());
      asio::post(w->ioc, [task] { (*task)(); });
    }
    for (auto& f : copies) {
      if (f.wait_for(std::chrono::seconds(2)) != std::future_status::ready) continue;
      auto [c, v] = f.get();
      for (auto& [k, n] : c) calls[{k.slot, k.method, k.tool}] += n;
      for (auto& [k, n] : v) validations[{k.slot, k.method, k.tool}] += n;
    }
  }
  out +=
      "# HELP mcpgate_token_validations_total Token validations by API, policy and outcome "
      "(valid, or APIM's reason).\n# TYPE mcpgate_token_validations_total counter\n";
  for (const auto& [k, n] : validations) {
    const auto& [slot, policy_name, outcome] = k;
    out += "mcpgate_token_validations_total{api=\"" +
           prometheus_label(slot < names.size() ? names[slot] : "(new)") + "\",policy=\"" +
           prometheus_label(policy_name) + "\",outcome=\"" + prometheus_label(outcome) + "\"} " +
           std::to_string(n) + "\n";
  }
  const auto fetches = impl.keys->fetches();
  out +=
      "# HELP mcpgate_key_fetches_total Signing-key fetches (OpenID configuration and JWKS) by "
      "result.\n# TYPE mcpgate_key_fetches_total counter\n";
  out += "mcpgate_key_fetches_total{result=\"ok\"} " + std::to_string(fetches.first) + "\n";
  out += "mcpgate_key_fetches_total{result=\"failed\"} " + std::to_string(fetches.second) + "\n";
  out +=
      "# HELP mcpgate_mcp_requests_total MCP messages by API, JSON-RPC method and tool.\n# TYPE "
      "mcpgate_mcp_requests_total counter\n";
  for (const auto& [k, n] : calls) {
    const auto& [slot, m, tool] = k;
    out += "mcpgate_mcp_requests_total{api=\"" +
           prometheus_label(slot < names.size() ? names[slot] : "(new)") + "\",method=\"" +
           prometheus_label(m) + "\",tool=\"" + prometheus_label(tool) + "\"} " +
           std::to_string(n) + "\n";
  }
  out +=
      "# HELP mcpgate_active_connections Open client connections.\n# TYPE "
      "mcpgate_active_connections gauge\n";
  out += "mcpgate_active_connections " +
         std::to_string(sum([](const Impl::Worker& w) { return w.connections.load(); })) + "\n";
  out +=
      "# HELP mcpgate_active_sse_streams Event streams being relayed.\n# TYPE "
      "mcpgate_active_sse_streams gauge\n";
  out += "mcpgate_active_sse_streams " + std::to_string(impl.active_streams.load()) + "\n";
  out +=
      "# HELP mcpgate_config_reloads_total Configuration reloads by result.\n# TYPE "
      "mcpgate_config_reloads_total counter\n";
  out += "mcpgate_config_reloads_total{result=\"applied\"} " +
         std::to_string(impl.reloads_ok.load()) + "\n";
  out += "mcpgate_config_reloads_total{result=\"rejected\"} " +
         std::to_string(impl.reloads_rejected.load()) + "\n";
  return out;
}

void Gateway::stop(std::chrono::milliseconds grace) {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->acceptors) impl_->acceptors->close();
  const auto deadline = Clock::now() + grace;
  while (impl_->in_flight.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (auto& w : impl_->workers) w->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace mcpgate::proxy
