#include "crypto/base64.hpp"

#include <gtest/gtest.h>

namespace mcpgate::crypto {
namespace {

TEST(Base64Url, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 70; ++i) {
    const std::string enc = base64url_encode(bytes);
    EXPECT_EQ(enc.find('='), std::string::npos);
    auto dec = base64url_decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, bytes);
    bytes += static_cast<char>(i * 37 + 250);
  }
}

TEST(Base64Url, IsStrict) {
  EXPECT_TRUE(base64url_decode("eyJhbGciOiJSUzI1NiJ9").has_value());
  EXPECT_FALSE(base64url_decode("eyJhbGciOiJSUzI1NiJ9=").has_value());  // padding
  EXPECT_FALSE(base64url_decode("ab+/").has_value());                   // std alphabet
  EXPECT_FALSE(base64url_decode("ab cd").has_value());                  // whitespace
  EXPECT_FALSE(base64url_decode("abcde").has_value());                  // 4n+1
  EXPECT_FALSE(base64url_decode("ab\ncd").has_value());
  // "QQ" is canonical for "A"; "QR" has non-zero unused bits.
  EXPECT_EQ(*base64url_decode("QQ"), "A");
  EXPECT_FALSE(base64url_decode("QR").has_value());
  EXPECT_EQ(*base64url_decode("QUI"), "AB");
  EXPECT_FALSE(base64url_decode("QUJ").has_value());
  EXPECT_EQ(*base64url_decode(""), "");
}

TEST(Base64, StandardWithOptionalPaddingAndWhitespace) {
  EXPECT_EQ(base64_encode("AB"), "QUI=");
  EXPECT_EQ(*base64_decode("QUI="), "AB");
  EXPECT_EQ(*base64_decode("QUI"), "AB");
  EXPECT_FALSE(base64_decode("QUI", {.require_padding = true}).has_value());
  EXPECT_FALSE(base64_decode("QU=I").has_value());
  EXPECT_FALSE(base64_decode("QUI==").has_value());
  EXPECT_FALSE(base64_decode("QU\nI=").has_value());
  EXPECT_EQ(*base64_decode("QU\nI=", {.skip_whitespace = true}), "AB");
  EXPECT_FALSE(base64_decode("QU-_").has_value());
}

}  // namespace
}  // namespace mcpgate::crypto
