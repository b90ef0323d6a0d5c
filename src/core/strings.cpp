#include "core/strings.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace mcpgate::core {

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

namespace {

// The eight bytes of x with ASCII A-Z made lowercase and every other byte (bytes above 0x7f
// included) as it is. Per byte, on its low seven bits: adding 0x80 - 'A' sets the top bit when
// it is at least 'A', adding 0x80 - '[' when it is past 'Z'; neither sum carries into the next
// byte. An upper-case letter's top-bit flag, shifted down to 0x20, is the bit to set.
std::uint64_t fold_case(std::uint64_t x) {
  constexpr std::uint64_t kEach = 0x0101010101010101ULL;
  constexpr std::uint64_t kTop = 0x8080808080808080ULL;
  const std::uint64_t low = x & ~kTop;
  const std::uint64_t from_a = low + kEach * (0x80 - 'A');
  const std::uint64_t past_z = low + kEach * (0x80 - 'Z' - 1);
  const std::uint64_t upper = from_a & ~past_z & ~x & kTop;
  return x | (upper >> 2);
}

std::uint64_t load8(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // Eight bytes at a time, case folded only where they differ as they are (what is compared is
  // mostly equal: issuers, tenant and client ids, header names).
  const std::size_t n = a.size();
  if (n < 8) {
    std::uint64_t x = 0;
    std::uint64_t y = 0;
    std::memcpy(&x, a.data(), n);
    std::memcpy(&y, b.data(), n);
    return x == y || fold_case(x) == fold_case(y);
  }
  for (std::size_t i = 0;; i += 8) {
    if (i + 8 > n) i = n - 8;  // the last block overlaps the one before
    const std::uint64_t x = load8(a.data() + i);
    const std::uint64_t y = load8(b.data() + i);
    if (x != y && fold_case(x) != fold_case(y)) return false;
    if (i + 8 == n) return true;
  }
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, std::string_view separator) {
  std::vector<std::string_view> parts;
  if (separator.empty()) {
    parts.push_back(s);
    return parts;
  }
  std::size_t start = 0;
  while (true) {
    const std::size_t pos = s.find(separator, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + separator.size();
  }
}

bool is_guid(std::string_view s) {
  // 8-4-4-4-12 hexadecimal digits.
  static constexpr auto kHex = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'f'; ++c) t[c] = t[c - 'a' + 'A'] = true;
    return t;
  }();
  if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return false;
  bool ok = true;
  for (std::size_t i = 0; i < 36; ++i)
    ok &= (i == 8 || i == 13 || i == 18 || i == 23) || kHex[static_cast<unsigned char>(s[i])];
  return ok;
}

std::string printable(std::string_view s, std::size_t max) {
  const auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x7f && c != '\\'; };
  if (s.size() <= max && std::all_of(s.begin(), s.end(), plain)) return std::string(s);
  std::string out;
  out.reserve(std::min(s.size(), max) + 3);
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (plain(c)) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

}  // namespace mcpgate::core
