// http: plain request/response values for handlers (the emulator, admin endpoints, the sample MCP
// server; a body may also be a BodyStream written later), form and query parsing, URL decoding.
// No sockets and no Beast types here.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mcpgate::http {

// Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1).
class Headers {
 public:
  void add(std::string name, std::string value) {
    fields_.emplace_back(std::move(name), std::move(value));
  }
  void set(std::string_view name, std::string value);
  // The first field with this name, or nullopt.
  std::optional<std::string_view> get(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

struct Request {
  std::string method;
  std::string target;  // origin-form as received: path and query
  Headers headers;
  std::string body;
  std::string remote_address;
  bool tls = false;

  std::string_view path() const;   // target without the query
  std::string_view query() const;  // after '?', without it
};

// A response body produced after the handler has returned (an event stream that waits for
// something else to happen): its owner writes chunks and closes it from any thread; the server
// sends each chunk as it comes and ends the response on close.
class BodyStream {
 public:
  // `heartbeat`: written when nothing else was for the server's idle timeout (": \n\n" keeps an
  // event stream open); empty: such a silence ends the response. At most `max_pending` bytes
  // wait for a slow client; beyond, the stream is cut.
  explicit BodyStream(std::string heartbeat = {}, std::size_t max_pending = 1 << 20)
      : heartbeat_(std::move(heartbeat)), max_pending_(max_pending) {}

  // False once the stream is closed or the client is gone: nothing more will be sent.
  bool write(std::string chunk);
  void close();
  bool open() const;
  const std::string& heartbeat() const { return heartbeat_; }

  // For the server: takes what has been written so far (all of it), and whether the stream is
  // closed; `wake` runs (on the writer's thread) whenever there is more to take.
  bool take(std::string& out);
  void on_data(std::function<void()> wake);
  void detach();  // the client is gone

 private:
  const std::string heartbeat_;
  const std::size_t max_pending_;
  mutable std::mutex mu_;
  std::string pending_;
  bool closed_ = false;
  bool detached_ = false;
  std::function<void()> wake_;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  std::shared_ptr<BodyStream> stream;  // when set: sent after `body`, chunked, until closed
};

// application/x-www-form-urlencoded (also query strings): '+' is a space, %XX escapes. Returns
// nullopt on a malformed escape. Repeated names are kept in order.
using Params = std::vector<std::pair<std::string, std::string>>;
std::optional<Params> parse_form(std::string_view body);
std::optional<std::string> url_decode(std::string_view s, bool plus_is_space);
std::string url_encode(std::string_view s);
// The first value of `name`, or nullptr.
const std::string* find_param(const Params& params, std::string_view name);

Response json_response(int status, std::string body);
std::string_view reason_phrase(int status);

}  // namespace mcpgate::http
