#include "crypto/base64.hpp"

#include <array>
#include <cstdint>

namespace mcpgate::crypto {
namespace {

constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<std::uint8_t, 256> make_table(const char* alphabet) {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int i = 0; i < 64; ++i)
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::uint8_t>(i);
  return t;
}
constexpr auto kUrlTable = make_table(kUrlAlphabet);
constexpr auto kStdTable = make_table(kStdAlphabet);

// Decodes unpadded symbols (already stripped of padding/whitespace). Rejects 4n+1 lengths and
// non-zero leftover bits. Four symbols at a time: invalid symbols map to 0xff, so one OR of the
// four table entries tells whether any of them was invalid.
std::optional<std::string> decode_symbols(std::string_view in,
                                          const std::array<std::uint8_t, 256>& t) {
  const std::size_t rem = in.size() % 4;
  if (rem == 1) return std::nullopt;
  const std::size_t full = in.size() / 4;
  std::string out(full * 3 + (rem ? rem - 1 : 0), '\0');
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  for (std::size_t i = 0; i < full; ++i, src += 4, dst += 3) {
    const std::uint32_t a = t[src[0]], b = t[src[1]], c = t[src[2]], d = t[src[3]];
    if ((a | b | c | d) & 0x80) return std::nullopt;
    const std::uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;
    dst[0] = static_cast<unsigned char>(v >> 16);
    dst[1] = static_cast<unsigned char>(v >> 8);
    dst[2] = static_cast<unsigned char>(v);
  }
  if (rem == 2) {
    const std::uint32_t a = t[src[0]], b = t[src[1]];
    if (((a | b) & 0x80) || (b & 0x0f)) return std::nullopt;  // 4 unused bits must be zero
    dst[0] = static_cast<unsigned char>((a << 2) | (b >> 4));
  } else if (rem == 3) {
    const std::uint32_t a = t[src[0]], b = t[src[1]], c = t[src[2]];
    if (((a | b | c) & 0x80) || (c & 0x03)) return std::nullopt;  // 2 unused bits must be zero
    dst[0] = static_cast<unsigned char>((a << 2) | (b >> 4));
    dst[1] = static_cast<unsigned char>((b << 4) | (c >> 2));
  }
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
