#include "crypto/base64.hpp"

#include <array>
#include <cstdint>

namespace mcpgate::crypto {
namespace {

constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::int8_t, 256> make_table(const char* alphabet) {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr auto kUrlTable = make_table(kUrlAlphabet);
constexpr auto kStdTable = make_table(kStdAlphabet);

// Decodes unpadded symbols (already stripped of padding/whitespace). Rejects 4n+1 lengths and
// non-zero leftover bits.
std::optional<std::string> decode_symbols(std::string_view in, const std::array<std::int8_t, 256>& table) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const std::int8_t v = table[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical
  return out;
}

std::string encode(std::string_view bytes, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    if (pad) out += '=';
  }
  return out;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view in) {
  return decode_symbols(in, kUrlTable);
}

std::string base64url_encode(std::string_view bytes) { return encode(bytes, kUrlAlphabet, false); }

std::optional<std::string> base64_decode(std::string_view in, Base64Options options) {
  std::string symbols;
  symbols.reserve(in.size());
  std::size_t padding = 0;
  for (const char c : in) {
    if (options.skip_whitespace && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding) return std::nullopt;  // data after padding
    symbols += c;
  }
  if (padding > 2) return std::nullopt;
  if (padding && (symbols.size() + padding) % 4 != 0) return std::nullopt;
  if (options.require_padding && symbols.size() % 4 != 0 && !padding) return std::nullopt;
  return decode_symbols(symbols, kStdTable);
}

std::string base64_encode(std::string_view bytes) { return encode(bytes, kStdAlphabet, true); }

}  // namespace mcpgate::crypto
