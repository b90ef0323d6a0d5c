#include "http/message.hpp"

#include <gtest/gtest.h>

namespace mcpgate::http {
namespace {

TEST(Form, ParsesLikeBrowsersAndMsal) {
  auto p = parse_form(
      "client_id=abc&scope=api%3A%2F%2Fx%2F.default&client_secret=s3cr3t%2B%2F%3D&a+b=c+d&empty=&"
      "flag");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*find_param(*p, "scope"), "api://x/.default");
  EXPECT_EQ(*find_param(*p, "client_secret"), "s3cr3t+/=");
  EXPECT_EQ(*find_param(*p, "a b"), "c d");
  EXPECT_EQ(*find_param(*p, "empty"), "");
  EXPECT_EQ(*find_param(*p, "flag"), "");
  EXPECT_EQ(find_param(*p, "missing"), nullptr);
  EXPECT_FALSE(parse_form("a=%4").has_value());
  EXPECT_FALSE(parse_form("a=%").has_value());
  EXPECT_FALSE(parse_form("a=%zz").has_value());
  EXPECT_EQ(*url_decode("%41%2b+", false), "A++");
}

TEST(Form, EncodeRoundTrips) {
  const std::string s = "a b/c?d=e&f+g~h";
  EXPECT_EQ(*url_decode(url_encode(s), true), s);
}

TEST(Headers, CaseInsensitive) {
  Headers h;
  h.add("Content-Type", "a");
  EXPECT_EQ(*h.get("content-type"), "a");
  h.set("CONTENT-TYPE", "b");
  EXPECT_EQ(*h.get("Content-Type"), "b");
  EXPECT_EQ(h.fields().size(), 1u);
  EXPECT_FALSE(h.get("x").has_value());
}

TEST(Request, PathAndQuery) {
  Request r;
  r.target = "/t/oauth2/v2.0/token?client-request-id=1";
  EXPECT_EQ(r.path(), "/t/oauth2/v2.0/token");
  EXPECT_EQ(r.query(), "client-request-id=1");
  r.target = "/x";
  EXPECT_EQ(r.query(), "");
}

TEST(BodyStream, WritesWakeTheReaderUntilClosedOrDetached) {
  BodyStream s;
  int wakes = 0;
  s.on_data([&] { ++wakes; });
  EXPECT_TRUE(s.write("a"));
  EXPECT_TRUE(s.write("b"));
  std::string out;
  EXPECT_FALSE(s.take(out));  // not closed yet
  EXPECT_EQ(out, "ab");
  s.close();
  EXPECT_EQ(wakes, 3);
  EXPECT_FALSE(s.write("late"));  // nothing after close
  EXPECT_TRUE(s.take(out));
  EXPECT_EQ(out, "");
  BodyStream gone;
  gone.on_data([&] { ++wakes; });
  gone.detach();  // the client left: writers learn it, nobody is woken
  EXPECT_FALSE(gone.open());
  EXPECT_FALSE(gone.write("x"));
  EXPECT_EQ(wakes, 3);
  // A client that does not read: past the cap the stream is cut, not buffered without bound.
  BodyStream small(":\n\n", 4);
  EXPECT_EQ(small.heartbeat(), ":\n\n");
  EXPECT_TRUE(small.write("abc"));
  EXPECT_FALSE(small.write("de"));
  EXPECT_FALSE(small.open());
  EXPECT_TRUE(small.take(out));
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace mcpgate::http
