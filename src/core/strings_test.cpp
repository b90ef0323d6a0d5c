#include "core/strings.hpp"

#include "core/hash.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>

namespace mcpgate::core {
namespace {

TEST(Strings, CaseInsensitiveHelpers) {
  EXPECT_TRUE(iequals("Contoso.OnMicrosoft.com", "contoso.onmicrosoft.COM"));
  EXPECT_FALSE(iequals("abc", "abcd"));
  // Blocks of eight bytes equal as they are, then a difference of case or of letter anywhere.
  const std::string issuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab/v2.0";
  EXPECT_TRUE(iequals(issuer, issuer));
  for (std::size_t i = 0; i < issuer.size(); ++i) {
    std::string other = issuer;
    other[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(other[i])));
    EXPECT_TRUE(iequals(issuer, other)) << i;
    other[i] = other[i] == '~' ? '!' : '~';
    EXPECT_FALSE(iequals(issuer, other)) << i;
  }
  // Against the letter-by-letter definition: every pair of bytes, at every place of strings of
  // every length up to three blocks (the short path, whole blocks and the overlapping tail).
  const auto reference = [](std::string_view x, std::string_view y) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (ascii_lower(x[i]) != ascii_lower(y[i])) return false;
    return true;
  };
  for (int c = 0; c < 256; ++c) {
    for (int d = 0; d < 256; ++d) {
      const std::string x(1, static_cast<char>(c));
      const std::string y(1, static_cast<char>(d));
      ASSERT_EQ(iequals(x, y), reference(x, y)) << c << " " << d;
    }
  }
  const std::string base = "Content-Type: Application/JSON; charset=UTF-8";
  for (std::size_t len = 0; len <= 24; ++len) {
    for (std::size_t at = 0; at < len; ++at) {
      for (const int c :
           {0x41, 0x5a, 0x61, 0x7a, 0x40, 0x5b, 0x60, 0x7b, 0x00, 0x7f, 0x80, 0xc1, 0xe1, 0xff}) {
        std::string x = base.substr(0, len);
        std::string y = x;
        y[at] = static_cast<char>(c);
        ASSERT_EQ(iequals(x, y), reference(x, y)) << len << " " << at << " " << c;
        ASSERT_EQ(iequals(y, x), reference(y, x)) << len << " " << at << " " << c;
      }
    }
  }
  EXPECT_TRUE(istarts_with("Bearer abc", "bearer "));
  EXPECT_EQ(to_lower("AbC"), "abc");
  EXPECT_EQ(trim(" \t x y \r\n"), "x y");
}

TEST(Strings, SplitKeepsEmptyParts) {
  auto parts = split("a,,b", ",");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1], "");
  EXPECT_EQ(split("a b", " ").size(), 2u);
  EXPECT_EQ(split("abc", "").size(), 1u);
}

TEST(Strings, Guid) {
  EXPECT_TRUE(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
  EXPECT_TRUE(is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
  EXPECT_FALSE(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4"));
  EXPECT_FALSE(is_guid("72f988bf_86f1-41af-91ab-2d7cd011db47"));
  EXPECT_FALSE(is_guid("contoso.onmicrosoft.com"));
}

TEST(Strings, PrintableEscapesAndCuts) {
  EXPECT_EQ(printable("a\x01\\"), "a\\x01\\x5c");
  EXPECT_EQ(printable(std::string(100, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(Strings, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("secret", "secret"));
  EXPECT_FALSE(constant_time_equals("secret", "secreT"));
  EXPECT_FALSE(constant_time_equals("secret", "secret2"));
}

TEST(Hash, DependsOnEveryByteAndLength) {
  std::string a(1500, 'a');
  const auto h = fast_hash(a);
  for (std::size_t i : {0u, 7u, 8u, 15u, 16u, 777u, 1499u}) {
    std::string b = a;
    b[i] = 'b';
    EXPECT_NE(fast_hash(b), h) << i;
  }
  EXPECT_NE(fast_hash(a.substr(0, 1499)), h);
  EXPECT_EQ(fast_hash(a), h);
  EXPECT_NE(fast_hash("x", 1), fast_hash("x", 2));
}

}  // namespace
}  // namespace mcpgate::core

#include "core/time.hpp"

namespace mcpgate::core {
namespace {

TEST(Time, FormatsUtcAndRefusesOutOfRange) {
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(format_utc(1800000000.9), "2027-01-15T08:00:00Z");
  EXPECT_EQ(format_utc(253402300799.0), "9999-12-31T23:59:59Z");
  EXPECT_EQ(format_utc(253402300800.0), "(out of range)");
  EXPECT_EQ(format_utc(-1), "(out of range)");
  EXPECT_EQ(format_utc(0.0 / 0.0), "(out of range)");
}

}  // namespace
}  // namespace mcpgate::core
