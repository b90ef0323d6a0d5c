// http: the head of an HTTP/1.x message (RFC 9112 §2-§6), parsed in place: the start line and the
// fields as views into the bytes received, and the body's framing. No sockets, no Beast.
//
// Strict where leniency lets two parsers disagree on where a message ends (request smuggling,
// response splitting): obs-fold, bare LF, a space before a field's colon, Content-Length with
// Transfer-Encoding, differing Content-Length values, and Transfer-Encoding in HTTP/1.0 are
// errors; so are an HTTP/1.1 request without Host and any request with two (RFC 9112 §3.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace mcpgate::http {

struct HeadField {
  std::string_view name;
  std::string_view value;  // without leading and trailing whitespace
};

struct RequestHead {
  std::string_view method;
  std::string_view target;
  unsigned version = 11;  // 10 or 11 (HTTP/1.2 and later minors are read as 1.1, RFC 9112 §2.3)
  std::vector<HeadField> fields;  // in arrival order; cleared (its capacity kept) by each parse
  std::size_t size = 0;           // bytes of the head, its empty line included
  // Framing (RFC 9112 §6): Transfer-Encoding present (all its lines), its last coding
  // `chunked`, or a Content-Length.
  bool transfer_encoding = false;
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
};

// A response's head. Its body's framing (RFC 9112 §6.3) also depends on the request (HEAD) and
// the status (1xx, 204, 304 have none): the caller decides with `status`.
struct ResponseHead {
  unsigned version = 11;  // 10 or 11
  unsigned status = 0;    // 100-999
  std::string_view reason;
  std::vector<HeadField> fields;   // in arrival order; cleared (its capacity kept) by each parse
  std::size_t size = 0;            // bytes of the head, its empty line included
  bool transfer_encoding = false;  // a body then ends with its chunked coding, or at close
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
};

enum class HeadStatus {
  kComplete,
  kIncomplete,  // no empty line yet: read more (unless `limit` bytes are in)
  kBad,         // 400 (a response: 502)
  kTooLarge,    // 431: the head is longer than `limit`
  kBadVersion,  // 505: not HTTP/1.x (a response: 502)
};

// Where the head in `data` ends (one past its empty line), or 0 when it has not ended yet.
// `from`: bytes already searched (the next search starts a little before them).
std::size_t find_head_end(std::string_view data, std::size_t from);

// Empty lines a client may send before a request line (RFC 9112 §2.2): how many bytes of them
// start `data`.
std::size_t leading_empty_lines(std::string_view data);

// Parses the head at the start of `data` (which may hold more: the body, a next request).
// `searched`: bytes of `data` an earlier call already found no end of the head in (kIncomplete).
HeadStatus parse_request_head(std::string_view data, std::size_t limit, RequestHead& out,
                              std::size_t searched = 0);

// Likewise a response's head. Content-Length may repeat one value in a list ("5, 5"), which
// RFC 9110 §8.6 lets a recipient read as one; a list of differing values is an error.
HeadStatus parse_response_head(std::string_view data, std::size_t limit, ResponseHead& out,
                               std::size_t searched = 0);

}  // namespace mcpgate::http
