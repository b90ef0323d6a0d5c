// http: plain request/response values for handlers that need no streaming (the emulator, admin
// endpoints), form and query parsing, URL decoding. No sockets and no Beast types here.
#pragma once

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

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
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
