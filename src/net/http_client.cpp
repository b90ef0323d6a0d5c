#include "net/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string_view>

#include "net/upstream.hpp"

namespace mcpgate::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

struct Target {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;
};

template <class Stream>
asio::awaitable<std::optional<std::string>> exchange(Stream& stream, const Target& t,
                                                     const FetchOptions& options,
                                                     FetchResult& out) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(options.method);
  req.target(t.path);
  req.version(11);
  const bool default_port = (t.tls && t.port == "443") || (!t.tls && t.port == "80");
  req.set(bhttp::field::host, default_port ? t.host : t.host + ":" + t.port);
  req.set(bhttp::field::user_agent, "mcpgate");
  req.set(bhttp::field::accept, "application/json");
  for (const auto& [name, value] : options.headers) req.set(name, value);
  req.set(bhttp::field::connection, "close");
  if (!options.body.empty()) {
    if (!options.content_type.empty()) req.set(bhttp::field::content_type, options.content_type);
    req.body() = options.body;
    req.prepare_payload();
  }
  auto [wec, wn] = co_await bhttp::async_write(stream, req, kTuple);
  (void)wn;
  if (wec) co_return "sending the request: " + wec.message();
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(options.max_body_bytes);
  auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
  (void)rn;
  if (rec == bhttp::error::body_limit) {
    co_return "the response is larger than " + std::to_string(options.max_body_bytes) + " bytes";
  }
  if (rec) co_return "reading the response: " + rec.message();
  auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  out.content_type = std::string(res[bhttp::field::content_type]);
  out.body = std::move(res.body());
  for (const auto& f : res) out.headers.emplace_back(f.name_string(), f.value());
  co_return std::nullopt;
}

asio::awaitable<std::optional<std::string>> run(asio::io_context& ioc, const Target& t,
                                                const FetchOptions& options, FetchResult& out) {
  std::string host = t.host, port = t.port;
  if (!options.connect_to.empty()) {
    const auto colon = options.connect_to.rfind(':');
    if (colon == std::string::npos) co_return "connect_to wants host:port";
    host = options.connect_to.substr(0, colon);
    port = options.connect_to.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);  // [::1]:8443
  }
  auto [rec, endpoints] = co_await resolve(ioc, host, port);
  if (rec) co_return "resolving " + host + ": " + rec.message();
  beast::tcp_stream tcp_stream(ioc);
  tcp_stream.expires_after(options.timeout);
  auto [cec, ep] = co_await tcp_stream.async_connect(endpoints, kTuple);
  (void)ep;
  if (cec) co_return "connecting to " + host + ":" + port + ": " + cec.message();
  if (!t.tls) co_return co_await exchange(tcp_stream, t, options, out);

  asio::ssl::context ctx(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                  asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  if (options.ca_file.empty()) {
    ctx.set_default_verify_paths(ec);
  } else {
    ctx.load_verify_file(options.ca_file, ec);
  }
  if (ec) co_return "loading trusted certificates: " + ec.message();
  ctx.set_verify_mode(asio::ssl::verify_peer);
  ctx.set_verify_callback(asio::ssl::host_name_verification(t.host));
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), ctx);
  SSL_set_tlsext_host_name(stream.native_handle(), t.host.c_str());  // SNI (RFC 6066)
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) co_return "TLS handshake with " + t.host + ":" + t.port + ": " + hec.message();
  co_return co_await exchange(stream, t, options, out);
}

}  // namespace

core::Result<FetchResult, std::string> fetch(const std::string& url, const FetchOptions& options) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return core::fail("\"" + url + "\" is not a URL");
  Target t;
  const std::string scheme(parsed->scheme());
  if (scheme == "https") {
    t.tls = true;
  } else if (scheme != "http") {
    return core::fail("\"" + url + "\": only http and https URLs can be fetched");
  }
  t.host = std::string(parsed->host_address());
  if (t.host.empty()) return core::fail("\"" + url + "\" has no host");
  if (t.host.size() > 2 && t.host.front() == '[') t.host = t.host.substr(1, t.host.size() - 2);
  t.port = parsed->has_port() ? std::string(parsed->port()) : (t.tls ? "443" : "80");
  t.path = std::string(parsed->encoded_target());
  if (t.path.empty()) t.path = "/";
  const auto token_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  };
  if (options.method.empty() ||
      !std::all_of(options.method.begin(), options.method.end(), token_char))
    return core::fail("\"" + options.method + "\" is not an HTTP method");
  for (const auto& [name, value] : options.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), token_char) ||
        value.find_first_of("\r\n") != std::string::npos || value.find('\0') != std::string::npos)
      return core::fail("the header \"" + name + "\" cannot be sent as given");
  }

  asio::io_context ioc;
  FetchResult out;
  std::optional<std::string> error;
  bool done = false;
  asio::co_spawn(ioc, run(ioc, t, options, out),
                 [&](std::exception_ptr e, std::optional<std::string> r) {
                   done = true;
                   error = e ? std::optional<std::string>("internal error") : std::move(r);
                 });
  ioc.run_for(options.timeout + std::chrono::seconds(1));
  if (!done) return core::fail("fetching " + url + " timed out");
  if (error) return core::fail(*error);
  return out;
}

}  // namespace mcpgate::net
