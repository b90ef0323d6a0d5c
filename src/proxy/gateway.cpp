#include "proxy/gateway.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>
#include <unordered_map>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/time.hpp"
#include "crypto/digest.hpp"
#include "net/listener.hpp"
#include "proxy/local_reply.hpp"

namespace mcpgate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

struct Upstream {
  std::string name;
  std::string host;
  std::string port;
  std::string host_header;
  std::string base_path;  // without a trailing '/'
  std::chrono::milliseconds connect_timeout;
  std::chrono::milliseconds response_timeout;
  std::size_t max_idle;
};

struct Route {
  config::Api api;
  std::size_t upstream = 0;
};

// Everything a request needs, immutable once built.
struct Runtime {
  std::vector<Upstream> upstreams;
  std::vector<Route> routes;  // longest prefix first
  config::Limits limits;

  const Route* match(std::string_view path) const {
    for (const auto& r : routes) {
      const std::string& p = r.api.path;
      if (p == "/" || path == p ||
          (path.size() > p.size() && path.starts_with(p) && path[p.size()] == '/'))
        return &r;
    }
    return nullptr;
  }
};

core::Result<std::shared_ptr<const Runtime>, std::string> build_runtime(const config::Config& c) {
  auto rt = std::make_shared<Runtime>();
  rt->limits = c.limits;
  std::unordered_map<std::string, std::size_t> index;
  for (const auto& b : c.backends) {
    auto url = boost::urls::parse_uri(b.url);
    if (!url) return core::fail("backend " + b.name + ": \"" + b.url + "\" is not a URL");
    if (url->scheme() != "http") {
      return core::fail("backend " + b.name +
                        ": https upstreams are not supported yet (use http://)");
    }
    Upstream u;
    u.name = b.name;
    u.host = std::string(url->host_address());
    if (u.host.size() > 2 && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
    u.port = url->has_port() ? std::string(url->port()) : "80";
    u.host_header = std::string(url->encoded_host_and_port());
    u.base_path = std::string(url->encoded_path());
    while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
    u.connect_timeout = b.connect_timeout;
    u.response_timeout = b.response_timeout;
    u.max_idle = b.max_idle_connections;
    index[b.name] = rt->upstreams.size();
    rt->upstreams.push_back(std::move(u));
  }
  for (const auto& api : c.apis) rt->routes.push_back({api, index.at(api.backend)});
  std::stable_sort(rt->routes.begin(), rt->routes.end(), [](const Route& a, const Route& b) {
    return a.api.path.size() > b.api.path.size();
  });
  return std::shared_ptr<const Runtime>(std::move(rt));
}

// RFC 9110 §7.6.1: fields that describe one connection, not the message.
void strip_hop_by_hop(bhttp::fields& f) {
  std::vector<std::string> listed;
  for (auto part : core::split(f[bhttp::field::connection], ",")) {
    const auto name = core::trim(part);
    if (!name.empty()) listed.emplace_back(name);
  }
  for (const auto& name : listed) {
    if (!core::iequals(name, "transfer-encoding") && !core::iequals(name, "content-length"))
      f.erase(name);
  }
  for (auto field :
       {bhttp::field::connection, bhttp::field::keep_alive, bhttp::field::proxy_connection,
        bhttp::field::te, bhttp::field::upgrade, bhttp::field::trailer, bhttp::field::expect}) {
    f.erase(field);
  }
}

// 32 hex digits: 64 random bits drawn once per worker, then a counter. Unique per process and
// cheap: a CSPRNG call per request costs more than the rest of the request's bookkeeping.
std::string new_request_id() {
  thread_local const std::string prefix = crypto::hex(crypto::random_bytes(8));
  thread_local std::uint64_t counter = 0;
  char tail[17];
  std::snprintf(tail, sizeof tail, "%016llx", static_cast<unsigned long long>(++counter));
  return prefix + tail;
}

bool acceptable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

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
struct ClientWatch {
  bool active = true;
  bool client_gone = false;
  beast::tcp_stream* upstream = nullptr;
};

awaitable<void> watch_client(tcp::socket& client, std::shared_ptr<ClientWatch> watch) {
  auto [ec] = co_await client.async_wait(tcp::socket::wait_read, kTuple);
  if (!watch->active || ec == asio::error::operation_aborted) co_return;
  watch->client_gone = true;
  boost::system::error_code ignored;
  watch->upstream->socket().close(ignored);  // ends the relay's pending upstream read at once
}

// Upper bounds of the latency histogram buckets, in seconds.
constexpr double kBuckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
constexpr std::size_t kBucketCount = std::size(kBuckets);
constexpr std::size_t kRelayBuffer = 16 * 1024;

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

struct Gateway::Impl {
  struct Worker {
    asio::io_context ioc{1};
    std::unique_ptr<ApiStats[]> stats;  // one per route, and one for unmatched requests
    std::unordered_map<std::size_t, std::vector<beast::tcp_stream>>
        idle;  // upstream index -> connections
  };

  GatewayOptions options;
  std::shared_ptr<const Runtime> runtime;
  std::shared_ptr<const net::TlsServerContext> tls;
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  std::vector<net::BoundAddress> bound;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<std::size_t> active_streams{0};
  std::atomic<bool> stopping{false};

  void record(Worker& w, const Route* route, int status, double seconds, bool upstream_error) {
    ApiStats& st = w.stats[route ? static_cast<std::size_t>(route - runtime->routes.data())
                                 : runtime->routes.size()];
    const int cls = status >= 100 && status < 600 ? status / 100 - 1 : 5;
    bump(st.by_class[cls]);
    std::size_t b = 0;
    while (b < kBucketCount && seconds > kBuckets[b]) ++b;
    bump(st.buckets[b]);
    bump(st.duration_us, static_cast<std::uint64_t>(seconds * 1e6));
    if (upstream_error) bump(st.upstream_errors);
  }

  // ---- local replies ------------------------------------------------------------------------

  template <class Stream>
  awaitable<bool> reply(Stream& stream, unsigned version, bool keep_alive, int status,
                        std::string_view message, const std::string& request_id) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), version};
    res.set(bhttp::field::content_type, "application/json; charset=utf-8");
    res.set("X-Request-Id", request_id);
    res.body() = apim_error_body(status, message);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(runtime->limits.idle_timeout);
    auto [ec, n] = co_await bhttp::async_write(stream, res, kTuple);
    (void)n;
    co_return !ec && keep_alive;
  }

  // ---- upstream connections -----------------------------------------------------------------

  awaitable<std::pair<std::optional<beast::tcp_stream>, int>> connect(Worker& w, std::size_t index,
                                                                      bool& reused) {
    auto& idle = w.idle[index];
    while (!idle.empty()) {
      beast::tcp_stream s = std::move(idle.back());
      idle.pop_back();
      if (s.socket().is_open()) {
        reused = true;
        co_return std::pair{std::optional<beast::tcp_stream>(std::move(s)), 0};
      }
    }
    reused = false;
    const Upstream& u = runtime->upstreams[index];
    tcp::resolver resolver(w.ioc);
    auto [rec, endpoints] = co_await resolver.async_resolve(u.host, u.port, kTuple);
    if (rec) co_return std::pair{std::optional<beast::tcp_stream>(), 502};
    beast::tcp_stream s(w.ioc);
    s.expires_after(u.connect_timeout);
    auto [cec, ep] = co_await s.async_connect(endpoints, kTuple);
    (void)ep;
    if (cec)
      co_return std::pair{std::optional<beast::tcp_stream>(),
                          cec == beast::error::timeout ? 504 : 502};
    boost::system::error_code ignored;
    s.socket().set_option(tcp::no_delay(true), ignored);
    co_return std::pair{std::optional<beast::tcp_stream>(std::move(s)), 0};
  }

  void release(Worker& w, std::size_t index, beast::tcp_stream s) {
    auto& idle = w.idle[index];
    if (idle.size() < runtime->upstreams[index].max_idle && !stopping.load()) {
      s.expires_never();
      idle.push_back(std::move(s));
    }
  }

  // ---- one client connection ----------------------------------------------------------------

  template <class Stream>
  awaitable<void> serve(Stream& client, Worker& w, const std::string& remote, bool tls) {
    beast::flat_buffer cbuf;
    auto& client_socket = beast::get_lowest_layer(client);
    const auto& limits = runtime->limits;
    // Bodies pass through this buffer, one read at a time; requests on a connection are
    // sequential, so one allocation serves all of them.
    std::unique_ptr<char[]> relay_buf(new char[kRelayBuffer]);
    for (bool first = true;; first = false) {
      bhttp::request_parser<bhttp::buffer_body> req_p;
      req_p.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      req_p.body_limit(limits.max_body_bytes);
      client_socket.expires_after(first ? limits.header_timeout : limits.idle_timeout);
      if (!first && cbuf.size() == 0) {
        // Wait for the next request's first byte under the idle timeout, then give its head
        // the header timeout (slow clients are dropped).
        auto [wec, wn] = co_await client.async_read_some(cbuf.prepare(4096), kTuple);
        if (wec) co_return;
        cbuf.commit(wn);
        client_socket.expires_after(limits.header_timeout);
      }
      auto [hec, hn] = co_await bhttp::async_read_header(client, cbuf, req_p, kTuple);
      (void)hn;
      std::string request_id;
      if (hec) {
        request_id = new_request_id();
        if (hec == bhttp::error::header_limit) {
          co_await reply(client, 11, false, 431, kHeadersTooLarge, request_id);
        } else if (hec == bhttp::error::body_limit) {
          co_await reply(client, 11, false, 413, kPayloadTooLarge, request_id);
        } else if (hec != bhttp::error::end_of_stream && hec != asio::error::eof &&
                   hec != beast::error::timeout && hec != asio::error::connection_reset &&
                   hec != asio::ssl::error::stream_truncated &&
                   hec != asio::error::operation_aborted) {
          co_await reply(client, 11, false, 400, kBadRequest, request_id);
        }
        co_return;
      }
      ++in_flight;
      struct Done {
        std::atomic<std::size_t>& n;
        ~Done() { --n; }
      } done{in_flight};
      const auto started = Clock::now();
      auto& req = req_p.get();
      if (auto id = req["X-Request-Id"]; acceptable_request_id(id)) {
        request_id = std::string(id);
      } else {
        request_id = new_request_id();
      }
      const unsigned version = req.version();
      const bool client_keep_alive = req.keep_alive() && !stopping.load();
      const std::string target(req.target());
      const std::string_view path = std::string_view(target).substr(0, target.find('?'));
      const std::string method(req.method_string());
      int status = 0;
      std::uint64_t bytes_out = 0;
      double upstream_ms = 0;
      const Route* route = runtime->match(path);
      const auto log = [&] {
        record(w, route, status, std::chrono::duration<double>(Clock::now() - started).count(),
               status == 502 || status == 504);
        if (!options.access_log) return;
        core::JsonObject o;
        o.emplace_back(
            "time",
            core::Json(core::format_utc(
                std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                    .count())));
        o.emplace_back("request_id", core::Json(request_id));
        o.emplace_back("client", core::Json(remote));
        o.emplace_back("api", route ? core::Json(route->api.name) : core::Json());
        o.emplace_back("method", core::Json(core::printable(method, 20)));
        o.emplace_back("path", core::Json(core::printable(path, 200)));
        o.emplace_back("status", core::Json::number(status));
        o.emplace_back("bytes", core::Json::number(static_cast<double>(bytes_out)));
        o.emplace_back(
            "duration_ms",
            core::Json::number(
                std::chrono::duration<double, std::milli>(Clock::now() - started).count()));
        o.emplace_back("upstream_ms", core::Json::number(upstream_ms));
        options.access_log(core::Json(std::move(o)).dump());
      };

      // A body we will not read makes the connection unusable for another request.
      const bool body_pending = !req_p.is_done();
      if (!route) {
        status = 404;
        const bool keep = co_await reply(client, version, client_keep_alive && !body_pending, 404,
                                         kNotFound, request_id);
        log();
        if (!keep) co_return;
        continue;
      }
      if (!route->api.allowed_origins.empty()) {
        // MCP Streamable HTTP: refuse other origins against DNS rebinding (mcp.md, transport
        // security).
        const auto origin = req[bhttp::field::origin];
        bool allowed = origin.empty();
        for (const auto& o : route->api.allowed_origins)
          allowed = allowed || core::iequals(o, origin);
        if (!allowed) {
          status = 403;
          const bool keep = co_await reply(client, version, client_keep_alive && !body_pending, 403,
                                           kOriginNotAllowed, request_id);
          log();
          if (!keep) co_return;
          continue;
        }
      }

      // The request as the upstream sees it.
      const Upstream& up = runtime->upstreams[route->upstream];
      std::string rest = route->api.strip_prefix && route->api.path != "/"
                             ? target.substr(route->api.path.size())
                             : target;
      if (rest.empty() || rest[0] == '?') rest = "/" + rest;
      req.target(up.base_path + rest);
      strip_hop_by_hop(req);
      req.set(bhttp::field::host, up.host_header);
      req.set("X-Request-Id", request_id);
      req.set("X-Forwarded-For", remote);
      req.set("X-Forwarded-Proto", tls ? "https" : "http");
      req.version(11);
      req.keep_alive(true);
      const bool request_has_body = req_p.content_length().value_or(0) > 0 || req.chunked();

      std::optional<beast::tcp_stream> upstream;
      std::optional<bhttp::response_parser<bhttp::buffer_body>> res_holder;
      // A response to HEAD has a head only, whatever its Content-Length says (RFC 9110 §9.3.2).
      const auto new_response_parser = [&] {
        res_holder.emplace();
        if (method == "HEAD") res_holder->skip(true);
      };
      new_response_parser();
      beast::flat_buffer ubuf;
      const auto upstream_started = Clock::now();
      int failure = 0;
      for (int attempt = 0; attempt < 2; ++attempt) {
        bool reused = false;
        auto [conn, err] = co_await connect(w, route->upstream, reused);
        if (!conn) {
          failure = err;
          break;
        }
        upstream.reset();
        upstream.emplace(std::move(*conn));
        upstream->expires_after(up.response_timeout);
        bhttp::request_serializer<bhttp::buffer_body> sr{req};
        auto [wec, wn] = co_await bhttp::async_write_header(*upstream, sr, kTuple);
        (void)wn;
        boost::system::error_code relay_ec;
        if (!wec && request_has_body)
          relay_ec = co_await relay_body(client, cbuf, req_p, *upstream, sr, limits.idle_timeout,
                                         up.response_timeout, relay_buf.get());
        if (relay_ec) {
          // Either side broke while the body was in flight: nothing can be retried.
          failure = relay_ec == bhttp::error::body_limit ? 413 : 502;
          upstream.reset();
          break;
        }
        if (!wec) {
          auto [rec, rn] = co_await bhttp::async_read_header(*upstream, ubuf, *res_holder, kTuple);
          (void)rn;
          if (!rec) {
            failure = 0;
            break;
          }
          failure = rec == beast::error::timeout ? 504 : 502;
          // A reused keep-alive connection the upstream had closed: retry once on a new one,
          // which is safe only when no request body was sent.
          if (reused && !request_has_body && rec != beast::error::timeout) {
            upstream.reset();
            new_response_parser();
            ubuf.clear();
            continue;
          }
          upstream.reset();
          break;
        }
        failure = 502;
        upstream.reset();
        if (!(reused && !request_has_body)) break;
      }
      upstream_ms =
          std::chrono::duration<double, std::milli>(Clock::now() - upstream_started).count();
      if (failure) {
        status = failure;
        const std::string_view message =
            failure == 504 ? kGatewayTimeout
            : failure == 413
                ? kPayloadTooLarge
                : (failure == 502 && res_holder->got_some() ? kBadBackendResponse : kBadGateway);
        co_await reply(client, version, false, failure, message, request_id);
        log();
        co_return;
      }

      // Relay the response head and body, chunk by chunk as it arrives.
      auto& res_p = *res_holder;
      auto& res = res_p.get();
      status = static_cast<int>(res.result_int());
      const bool upstream_keep_alive = res.keep_alive();
      const bool event_stream =
          core::istarts_with(res[bhttp::field::content_type], "text/event-stream");
      strip_hop_by_hop(res);
      res.set("X-Request-Id", request_id);
      if (event_stream)
        res.set("X-Accel-Buffering", "no");  // proxies in front of us must not buffer it
      res.version(version);
      bool keep = client_keep_alive && req_p.is_done();
      if (version < 11 && res.chunked()) {
        res.chunked(false);  // HTTP/1.0 has no chunked coding: the body ends when we close
        keep = false;
      }
      res.keep_alive(keep);
      bhttp::response_serializer<bhttp::buffer_body> rs{res};
      client_socket.expires_after(limits.idle_timeout);
      auto [hwec, hwn] = co_await bhttp::async_write_header(client, rs, kTuple);
      bytes_out += hwn;
      if (hwec) {
        log();
        co_return;
      }
      // While the response streams, the upstream may be silent for long (SSE): no read timeout
      // then; a slow client still gets the idle timeout on each write.
      const auto upstream_read_timeout =
          event_stream ? std::chrono::milliseconds(0) : up.response_timeout;
      std::uint64_t body_bytes = 0;
      std::shared_ptr<ClientWatch> watch;
      if (event_stream && cbuf.size() == 0) {
        // When the client goes away mid-stream, the upstream request is cancelled at once.
        ++active_streams;
        watch = std::make_shared<ClientWatch>();
        watch->upstream = &*upstream;
        asio::co_spawn(w.ioc, watch_client(client_socket.socket(), watch), asio::detached);
      }
      std::optional<EndpointRewriter> rewriter;
      if (event_stream && route->api.type == "mcp" && route->api.strip_prefix &&
          route->api.path != "/") {
        rewriter.emplace();
        rewriter->prefix = route->api.path;
      }
      auto ec = co_await relay_body(*upstream, ubuf, res_p, client, rs, upstream_read_timeout,
                                    limits.idle_timeout, relay_buf.get(), &body_bytes,
                                    rewriter ? &*rewriter : nullptr);
      bytes_out += body_bytes;
      if (watch) {
        --active_streams;
        watch->active = false;
        if (watch->client_gone) status = 499;  // logged only: nobody is left to answer
        boost::system::error_code ignored;
        client_socket.socket().cancel(ignored);  // ends the watcher's wait
      }
      log();
      if (ec) co_return;  // the head is out: all we can do is close
      if (upstream_keep_alive && res_p.is_done()) release(w, route->upstream, std::move(*upstream));
      if (!keep) co_return;
    }
  }

  // Copies a message body from `in` (parsed by `p`) to `out` (serialized by `sr`) as it arrives:
  // each read is written before the next, so nothing is held back (SSE events go out at once).
  template <bool isRequest, class In, class Out>
  awaitable<boost::system::error_code> relay_body(
      In& in, beast::flat_buffer& inbuf, bhttp::parser<isRequest, bhttp::buffer_body>& p, Out& out,
      bhttp::serializer<isRequest, bhttp::buffer_body>& sr, std::chrono::milliseconds read_timeout,
      std::chrono::milliseconds write_timeout, char* buf, std::uint64_t* copied = nullptr,
      EndpointRewriter* rewriter = nullptr) {
    constexpr std::size_t buf_size = kRelayBuffer;
    while (true) {
      if (!p.is_done()) {
        p.get().body().data = buf;
        p.get().body().size = buf_size;
        if (read_timeout.count() > 0) {
          beast::get_lowest_layer(in).expires_after(read_timeout);
        } else {
          beast::get_lowest_layer(in).expires_never();
        }
        auto [rec, rn] = co_await bhttp::async_read_some(in, inbuf, p, kTuple);
        (void)rn;
        if (rec && rec != bhttp::error::need_buffer) co_return rec;
        p.get().body().size = buf_size - p.get().body().size;
        p.get().body().data = buf;
        p.get().body().more = !p.is_done();
        if (rewriter && !rewriter->done) {
          const auto bytes =
              rewriter->feed(std::string_view(buf, p.get().body().size), p.is_done());
          p.get().body().data = const_cast<char*>(bytes.data());
          p.get().body().size = bytes.size();
        }
        if (copied) *copied += p.get().body().size;
        if (p.get().body().size == 0 && !p.is_done()) continue;
      } else {
        p.get().body().data = nullptr;
        p.get().body().size = 0;
        p.get().body().more = false;
      }
      beast::get_lowest_layer(out).expires_after(write_timeout);
      auto [wec, wn] = co_await bhttp::async_write(out, sr, kTuple);
      (void)wn;
      if (wec && wec != bhttp::error::need_buffer) co_return wec;
      if (p.is_done() && sr.is_done()) co_return boost::system::error_code();
    }
  }

  std::unique_ptr<net::Acceptors> acceptors;
};

Gateway::Gateway() : impl_(std::make_unique<Impl>()) {}
Gateway::~Gateway() {
  stop(std::chrono::milliseconds(0));
  impl_->acceptors.reset();  // Asio objects go before their contexts
  impl_->workers.clear();    // suspended sessions are destroyed while Impl is whole
}
const std::vector<net::BoundAddress>& Gateway::bound() const { return impl_->bound; }

core::Result<std::unique_ptr<Gateway>, std::string> Gateway::start(const config::Config& config,
                                                                   GatewayOptions options) {
  std::unique_ptr<Gateway> gw(new Gateway());
  Impl& impl = *gw->impl_;
  impl.options = std::move(options);
  auto rt = build_runtime(config);
  if (!rt) return core::fail(rt.error());
  impl.runtime = std::move(rt.value());
  for (const auto& l : config.listeners) {
    if (!l.tls) continue;
    std::string chain, key;
    for (auto [path, out] :
         {std::pair{l.tls->cert_file, &chain}, std::pair{l.tls->key_file, &key}}) {
      std::ifstream in(path, std::ios::binary);
      if (!in) return core::fail("cannot read " + path);
      out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto ctx = net::TlsServerContext::from_pem(chain, key);
    if (!ctx) return core::fail(l.tls->cert_file + ": " + ctx.error());
    impl.tls = std::move(ctx.value());
    break;  // one certificate for all TLS listeners (SNI per listener comes later)
  }
  const std::size_t n =
      config.workers ? config.workers : std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < n; ++i) {
    impl.workers.push_back(std::make_unique<Impl::Worker>());
    impl.workers.back()->stats.reset(new ApiStats[impl.runtime->routes.size() + 1]);
  }
  std::vector<net::ListenAddress> listen;
  for (const auto& l : config.listeners) listen.push_back({l.address, l.port, l.tls.has_value()});
  std::vector<asio::io_context*> contexts;
  for (auto& w : impl.workers) contexts.push_back(&w->ioc);
  auto acceptors = net::Acceptors::open(
      listen, contexts, [&impl](tcp::socket socket, bool secure, std::size_t worker) {
        if (++impl.connections >
            impl.runtime->limits.max_connections_per_worker * impl.workers.size()) {
          --impl.connections;
          boost::system::error_code ignored;
          socket.close(ignored);
          return;
        }
        Impl::Worker& w = *impl.workers[worker];
        auto serve = [&impl, &w](auto& stream, const std::string& remote,
                                 bool tls) -> awaitable<void> {
          co_await impl.serve(stream, w, remote, tls);
        };
        asio::co_spawn(
            w.ioc,
            net::run_connection(std::move(socket), net::ConnectionGuard(impl.connections),
                                secure ? impl.tls.get() : nullptr,
                                impl.runtime->limits.header_timeout, serve),
            asio::detached);
      });
  if (!acceptors) return core::fail(acceptors.error());
  impl.acceptors = std::move(acceptors.value());
  impl.bound = impl.acceptors->bound();
  for (auto& w : impl.workers) impl.threads.emplace_back([c = &w->ioc] { c->run(); });
  return gw;
}

bool Gateway::ready() const { return !impl_->stopping.load(); }

std::string Gateway::metrics_text() const {
  const Impl& impl = *impl_;
  const auto& routes = impl.runtime->routes;
  const auto api_name = [&](std::size_t i) {
    return i < routes.size() ? prometheus_label(routes[i].api.name) : std::string("(none)");
  };
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
  for (std::size_t i = 0; i <= routes.size(); ++i) {
    for (int c = 0; c < 6; ++c) {
      const auto n = sum([&](const Impl::Worker& w) {
        return w.stats[i].by_class[c].load(std::memory_order_relaxed);
      });
      if (n)
        out += "mcpgate_requests_total{api=\"" + api_name(i) + "\",code=\"" + kClasses[c] + "\"} " +
               std::to_string(n) + "\n";
    }
  }
  out +=
      "# HELP mcpgate_request_duration_seconds Time from request head to the end of the response.\n"
      "# TYPE mcpgate_request_duration_seconds histogram\n";
  for (std::size_t i = 0; i <= routes.size(); ++i) {
    std::uint64_t cumulative = 0;
    const std::string label = "api=\"" + api_name(i) + "\"";
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
  for (std::size_t i = 0; i < routes.size(); ++i) {
    out += "mcpgate_upstream_errors_total{api=\"" + api_name(i) + "\"} " +
           std::to_string(sum([&](const Impl::Worker& w) {
             return w.stats[i].upstream_errors.load(std::memory_order_relaxed);
           })) +
           "\n";
  }
  out +=
      "# HELP mcpgate_active_connections Open client connections.\n# TYPE "
      "mcpgate_active_connections gauge\n";
  out += "mcpgate_active_connections " + std::to_string(impl.connections.load()) + "\n";
  out +=
      "# HELP mcpgate_active_sse_streams Event streams being relayed.\n# TYPE "
      "mcpgate_active_sse_streams gauge\n";
  out += "mcpgate_active_sse_streams " + std::to_string(impl.active_streams.load()) + "\n";
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
