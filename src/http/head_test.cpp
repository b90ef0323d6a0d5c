#include "http/head.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mcpgate::http {
namespace {

using namespace std::string_literals;

HeadStatus parse(std::string_view data, RequestHead& head, std::size_t limit = 8192) {
  return parse_request_head(data, limit, head);
}

TEST(RequestHead, ParsesLineFieldsAndFraming) {
  const std::string token(1200, 'x');
  const std::string data = "POST /mcp?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + token +
                           "\r\nContent-Length: 5\r\nX-Empty:\r\nX-Pad: \t a b \t\r\n\r\nhello";
  RequestHead h;
  ASSERT_EQ(parse(data, h), HeadStatus::kComplete);
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/mcp?x=1");
  EXPECT_EQ(h.version, 11u);
  ASSERT_EQ(h.fields.size(), 5u);
  EXPECT_EQ(h.fields[0].name, "Host");
  EXPECT_EQ(h.fields[0].value, "gw");
  EXPECT_EQ(h.fields[1].value, "Bearer " + token);
  EXPECT_EQ(h.fields[3].value, "");
  EXPECT_EQ(h.fields[4].value, "a b");  // OWS trimmed both sides, inner space kept
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_FALSE(h.transfer_encoding);
  EXPECT_EQ(data.substr(h.size), "hello");
}

TEST(RequestHead, VersionsAndChunked) {
  RequestHead h;
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(h.version, 10u);
  EXPECT_TRUE(h.fields.empty());
  ASSERT_EQ(parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(h.version, 11u);  // a later minor is read as the highest we know
  EXPECT_EQ(parse("GET / HTTP/2.0\r\n\r\n", h), HeadStatus::kBadVersion);
  EXPECT_EQ(parse("GET / HTTP/1\r\n\r\n", h), HeadStatus::kBad);
  EXPECT_EQ(parse("GET / http/1.1\r\n\r\n", h), HeadStatus::kBad);

  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", h),
            HeadStatus::kComplete);
  EXPECT_TRUE(h.transfer_encoding);
  EXPECT_TRUE(h.chunked);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                  "gzip\r\n\r\n",
                  h),
            HeadStatus::kComplete);
  EXPECT_TRUE(h.transfer_encoding);
  EXPECT_FALSE(h.chunked);  // the last coding frames the body
  ASSERT_EQ(
      parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", h),
      HeadStatus::kComplete);
  EXPECT_EQ(h.content_length, 7u);
}

TEST(RequestHead, RefusesWhatTwoParsersCouldReadTwoWays) {
  RequestHead h;
  for (const char* bad : {
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",  // obs-fold
           "GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n",            // space before the colon
           "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n",                // no name
           "GET / HTTP/1.1\r\nHost: a\r\nX-A 1\r\n\r\n",              // no colon
           "GET / HTTP/1.1\nX-A: 1\n\n",                              // bare LF
           "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\n\r\n",               // bare LF in a field line
           "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\r\n\r\n",           // CR without LF
           "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01"
           "b\r\n\r\n",  // a control in a value
           "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x7f"
           "b\r\n\r\n",                  // DEL
           "GET  / HTTP/1.1\r\n\r\n",    // two spaces
           "GET /a b HTTP/1.1\r\n\r\n",  // space in the target
           "G(T / HTTP/1.1\r\n\r\n",     // not a token
           " GET / HTTP/1.1\r\n\r\n",
           "GET / HTTP/1.1 \r\n\r\n",
       }) {
    EXPECT_EQ(parse(bad, h), HeadStatus::kBad) << bad;
  }
  // A NUL inside a value, which a C string cannot hold.
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"s, h), HeadStatus::kBad);
}

TEST(RequestHead, HostOnceInHttp11AtMostOnceInHttp10) {
  RequestHead h;  // RFC 9112 §3.2
  EXPECT_EQ(parse("GET / HTTP/1.1\r\n\r\n", h), HeadStatus::kBad);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", h), HeadStatus::kBad);
  EXPECT_EQ(parse("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", h), HeadStatus::kBad);
  EXPECT_EQ(parse("GET / HTTP/1.0\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHOST: a\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n", h), HeadStatus::kComplete);  // empty: allowed
}

TEST(RequestHead, ControlsAreFoundAtEveryOffsetOfALongValue) {
  // The value scan goes 64 (AVX2), 32 and 16 bytes at a time: a control at any position of a
  // value longer than a few blocks is seen.
  RequestHead h;
  for (std::size_t at = 0; at < 300; ++at) {
    std::string value(300, 'v');
    for (const char bad : {'\x1f', '\x7f', '\0'}) {
      value[at] = bad;
      EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: " + value + "\r\n\r\n", h),
                HeadStatus::kBad)
          << at;
    }
    value[at] = '\t';  // HTAB is allowed; bytes above 0x7f (obs-text) too
    value[(at + 7) % 300] = '\xe9';
    const std::string data =
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: z" + value + "z\r\n\r\n";  // outlives h
    ASSERT_EQ(parse(data, h), HeadStatus::kComplete);
    EXPECT_EQ(h.fields[1].value, "z" + value + "z");
  }
}

TEST(RequestHead, IncompleteAndTooLarge) {
  RequestHead h;
  const std::string full = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (std::size_t n = 0; n < full.size(); ++n)
    EXPECT_EQ(parse(full.substr(0, n), h), HeadStatus::kIncomplete) << n;
  EXPECT_EQ(parse(full, h), HeadStatus::kComplete);
  EXPECT_EQ(parse(full, h, full.size()), HeadStatus::kComplete);
  EXPECT_EQ(parse(full, h, full.size() - 1), HeadStatus::kTooLarge);
  EXPECT_EQ(parse(std::string(100, 'a'), h, 100), HeadStatus::kTooLarge);
  EXPECT_EQ(parse(std::string(99, 'a'), h, 100), HeadStatus::kIncomplete);
}

TEST(RequestHead, HeadEndIsFoundAcrossReads) {
  const std::string full = "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
  const std::size_t end = full.size() - 4;
  EXPECT_EQ(find_head_end(full, 0), end);
  // Whatever was searched before, the end is found once its bytes are all in.
  for (std::size_t searched = 0; searched <= end; ++searched)
    for (std::size_t have = searched; have <= full.size(); ++have)
      EXPECT_EQ(find_head_end(std::string_view(full).substr(0, have), searched),
                have >= end ? end : 0)
          << searched << " " << have;
  // The parser given what an earlier call searched agrees with one that searches it all.
  RequestHead h;
  EXPECT_EQ(parse_request_head(std::string_view(full).substr(0, 20), 8192, h, 0),
            HeadStatus::kIncomplete);
  ASSERT_EQ(parse_request_head(full, 8192, h, 20), HeadStatus::kComplete);
  EXPECT_EQ(h.size, end);
  EXPECT_EQ(h.fields.at(0).value, "a");
  EXPECT_EQ(leading_empty_lines("\r\n\r\nGET"), 4u);
  EXPECT_EQ(leading_empty_lines("\r\nGET"), 2u);
  EXPECT_EQ(leading_empty_lines("GET"), 0u);
  EXPECT_EQ(leading_empty_lines("\r"), 0u);
}

HeadStatus parse(std::string_view data, ResponseHead& head, std::size_t limit = 8192) {
  return parse_response_head(data, limit, head);
}

TEST(ResponseHead, ParsesStatusFieldsAndFraming) {
  const std::string data =
      "HTTP/1.1 201 Created Here\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
      "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n{}";
  ResponseHead h;
  ASSERT_EQ(parse(data, h), HeadStatus::kComplete);
  EXPECT_EQ(h.version, 11u);
  EXPECT_EQ(h.status, 201u);
  EXPECT_EQ(h.reason, "Created Here");
  ASSERT_EQ(h.fields.size(), 4u);
  EXPECT_EQ(h.fields[3].name, "Set-Cookie");
  EXPECT_EQ(h.fields[3].value, "b=2");
  EXPECT_EQ(h.content_length, 2u);
  EXPECT_FALSE(h.transfer_encoding);
  EXPECT_EQ(data.substr(h.size), "{}");

  ASSERT_EQ(parse("HTTP/1.0 200 OK\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(h.version, 10u);
  EXPECT_FALSE(h.content_length);  // a body that ends at close
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", h),
            HeadStatus::kComplete);
  EXPECT_TRUE(h.chunked);
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_TRUE(h.transfer_encoding);
  EXPECT_FALSE(h.chunked);  // read until close
}

TEST(ResponseHead, ReasonMayBeEmptyOrMissing) {
  ResponseHead h;
  ASSERT_EQ(parse("HTTP/1.1 204 \r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(h.status, 204u);
  EXPECT_EQ(h.reason, "");
  ASSERT_EQ(parse("HTTP/1.1 404\r\nX: y\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(h.status, 404u);
  EXPECT_EQ(h.reason, "");
  EXPECT_EQ(h.fields.at(0).value, "y");
  ASSERT_EQ(parse("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", h), HeadStatus::kComplete);
  EXPECT_EQ(h.status, 103u);
}

TEST(ResponseHead, ContentLengthListsOfOneValue) {
  ResponseHead h;
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n", h),
            HeadStatus::kComplete);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", h), HeadStatus::kBad);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", h), HeadStatus::kBad);
  // Requests take no lists at all.
  RequestHead q;
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", q),
            HeadStatus::kBad);
}

TEST(ResponseHead, RefusesWhatCouldEndTwoWays) {
  ResponseHead h;
  for (const char* bad : {
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
           "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
           "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
           "HTTP/1.1 200 OK\nX: a\n\n",
           "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
           "HTTP/1.1 200OK\r\n\r\n",
           "HTTP/1.1 2000 OK\r\n\r\n",
           "HTTP/1.1 20 OK\r\n\r\n",
           "HTTP/1.1 099 OK\r\n\r\n",
           "HTTP/1.1 200 O\x7fK\r\n\r\n",
           "HTTP/1.1  200 OK\r\n\r\n",
           "HTTX/1.1 200 OK\r\n\r\n",
       }) {
    EXPECT_EQ(parse(bad, h), HeadStatus::kBad) << bad;
  }
  EXPECT_EQ(parse("HTTP/2.0 200 OK\r\n\r\n", h), HeadStatus::kBadVersion);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nX: a\r\n", h), HeadStatus::kIncomplete);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nX: aaaa\r\n\r\n", h, 20), HeadStatus::kTooLarge);
}

}  // namespace
}  // namespace mcpgate::http
