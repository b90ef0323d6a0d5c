#include "http/head.hpp"

#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MCPGATE_AVX2_SCAN 1
#endif

#include "core/strings.hpp"

namespace mcpgate::http {
namespace {

// tchar (RFC 9110 §5.6.2): a method or a field name.
constexpr std::array<bool, 256> kToken = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool token_char(char c) { return kToken[static_cast<unsigned char>(c)]; }

bool control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

#if defined(MCPGATE_AVX2_SCAN)
// Past the printable ASCII at p, 64 bytes at a time, on CPUs with AVX2: stops at the first block
// holding anything else (the exact loops of first_control take it from there).
__attribute__((target("avx2"))) const char* printable_avx2(const char* p, const char* end) {
  const __m256i below_space = _mm256_set1_epi8(0x1f);
  const __m256i del = _mm256_set1_epi8(0x7f);
  for (; end - p >= 64; p += 64) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    const __m256i ok = _mm256_and_si256(
        _mm256_and_si256(_mm256_cmpgt_epi8(a, below_space), _mm256_cmpgt_epi8(del, a)),
        _mm256_and_si256(_mm256_cmpgt_epi8(b, below_space), _mm256_cmpgt_epi8(del, b)));
    if (_mm256_movemask_epi8(ok) != -1) break;
  }
  return p;
}

const char* printable_none(const char* p, const char*) { return p; }

// Chosen once: whether this CPU (and its OS) can run the AVX2 loop.
const char* skip_printable(const char* p, const char* end) {
  static const auto run = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? printable_avx2 : printable_none;
  }();
  return run(p, end);
}
#endif

// The first byte in [p, end) a field value cannot hold (a control other than HTAB, or DEL: RFC
// 9110 §5.5), which ends the value when it is the CR of its CRLF. A bearer token is most of a
// request's head: this is the one loop that goes over it, 64 (AVX2) or 32 and 16 bytes at a time.
const char* first_control(const char* p, const char* end) {
#if defined(MCPGATE_AVX2_SCAN)
  if (end - p >= 64) p = skip_printable(p, end);
#endif
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  // Printable ASCII, 32 bytes at a time (a token is all of it): signed compares, so bytes above
  // 0x7f fail here too and are left to the exact loop below.
  const __m128i below_space = _mm_set1_epi8(0x1f);
  for (; end - p >= 32; p += 32) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
    const __m128i ok =
        _mm_and_si128(_mm_and_si128(_mm_cmpgt_epi8(a, below_space), _mm_cmplt_epi8(a, del)),
                      _mm_and_si128(_mm_cmpgt_epi8(b, below_space), _mm_cmplt_epi8(b, del)));
    if (_mm_movemask_epi8(ok) != 0xffff) break;
  }
  for (; end - p >= 16; p += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i printable = _mm_cmpeq_epi8(_mm_max_epu8(x, space), x);  // x >= 0x20
    const __m128i allowed =
        _mm_andnot_si128(_mm_cmpeq_epi8(x, del), _mm_or_si128(printable, _mm_cmpeq_epi8(x, tab)));
    const unsigned bad = ~static_cast<unsigned>(_mm_movemask_epi8(allowed)) & 0xffffu;
    if (bad != 0) return p + __builtin_ctz(bad);
  }
#endif
  for (; p < end; ++p)
    if (control(static_cast<unsigned char>(*p))) return p;
  return end;
}

bool is_ows(char c) { return c == ' ' || c == '\t'; }

// 1*DIGIT, at most 19 of them (no overflow of 64 bits).
std::optional<std::uint64_t> decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

// The last coding of one Transfer-Encoding line is `chunked` (RFC 9112 §6.1: only the final
// coding frames the body). An empty element (", ,") does not count.
std::optional<bool> last_coding_chunked(std::string_view value) {
  std::optional<bool> last;
  while (!value.empty()) {
    const auto comma = value.find(',');
    const std::string_view item = core::trim(value.substr(0, comma));
    if (!item.empty()) last = core::iequals(item, "chunked");
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return last;
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// "HTTP/" DIGIT "." DIGIT at p (8 bytes there).
bool http_version(const char* p) {
  return std::memcmp(p, "HTTP/", 5) == 0 && digit(p[5]) && p[6] == '.' && digit(p[7]);
}

// A Content-Length value; with `lists`, also a list of one value repeated ("5, 5").
std::optional<std::uint64_t> length_value(std::string_view value, bool lists) {
  if (!lists || value.find(',') == std::string_view::npos) return decimal(value);
  std::optional<std::uint64_t> length;
  for (const auto item : core::split(value, ",")) {  // an empty item ("5,") fails decimal
    const auto n = decimal(core::trim(item));
    if (!n || (length && *length != *n)) return std::nullopt;
    length = n;
  }
  return length;
}

// *( field-line CRLF ) CRLF, from p to e (one past the head's last LF), into `fields`, and what
// the lines say of the body's framing.
struct FieldLines {
  std::vector<HeadField>& fields;
  bool length_lists;  // Content-Length "5, 5" read as 5 (responses)
  bool transfer_encoding = false;
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
  int hosts = 0;

  template <class Head>
  void framing_into(Head& out) const {
    out.transfer_encoding = transfer_encoding;
    out.chunked = chunked;
    out.content_length = content_length;
  }

  bool parse(const char* p, const char* const e) {
    for (;;) {
      if (p >= e) return false;
      if (*p == '\r') return p + 2 == e && p[1] == '\n';
      const char* const n = p;
      while (token_char(*p)) ++p;
      // An empty name is also where obs-fold (a line starting with SP or HTAB) lands: refused,
      // as RFC 9112 §5.2 allows; so is a space before the colon (§5.1 requires it).
      if (p == n || *p != ':') return false;
      const std::string_view name(n, static_cast<std::size_t>(p - n));
      ++p;
      while (is_ows(*p)) ++p;
      const char* const v = p;
      p = first_control(p, e);
      if (p + 1 >= e || p[0] != '\r' || p[1] != '\n') return false;
      const char* ve = p;
      while (ve > v && is_ows(ve[-1])) --ve;
      const std::string_view value(v, static_cast<std::size_t>(ve - v));
      p += 2;
      fields.push_back({name, value});

      if (name.size() == 14 && core::iequals(name, "content-length")) {
        // Repeated lines must agree (RFC 9110 §8.6).
        const auto length = length_value(value, length_lists);
        if (!length || (content_length && *content_length != *length)) return false;
        content_length = length;
      } else if (name.size() == 17 && core::iequals(name, "transfer-encoding")) {
        transfer_encoding = true;
        if (const auto last = last_coding_chunked(value)) chunked = *last;
      } else if (name.size() == 4 && core::iequals(name, "host")) {
        ++hosts;
      }
    }
  }
};

// A parse's start: `out` emptied, and where the head in `data` ends — 0 when the parse ends here,
// with `status` saying why.
template <class Head>
std::size_t start_head(std::string_view data, std::size_t limit, std::size_t searched, Head& out,
                       HeadStatus& status) {
  out.fields.clear();
  out.transfer_encoding = false;
  out.chunked = false;
  out.content_length.reset();
  out.size = 0;
  const std::size_t end = find_head_end(data, searched);
  if (end == 0) status = data.size() >= limit ? HeadStatus::kTooLarge : HeadStatus::kIncomplete;
  if (end > limit) status = HeadStatus::kTooLarge;
  return end > limit ? 0 : end;
}

}  // namespace

std::size_t find_head_end(std::string_view data, std::size_t from) {
  // The empty line after the fields: "\r\n\r\n", or a bare LF in it or before it ("\n\n",
  // "\n\r\n"), which the parser then refuses rather than waiting for more.
  std::size_t i = from > 2 ? from - 2 : 0;
  while (i < data.size()) {
    const void* nl = std::memchr(data.data() + i, '\n', data.size() - i);
    if (nl == nullptr) return 0;
    const std::size_t k = static_cast<std::size_t>(static_cast<const char*>(nl) - data.data());
    if (k >= 1 && data[k - 1] == '\n') return k + 1;
    if (k >= 2 && data[k - 1] == '\r' && data[k - 2] == '\n') return k + 1;
    i = k + 1;
  }
  return 0;
}

std::size_t leading_empty_lines(std::string_view data) {
  std::size_t i = 0;
  while (i + 1 < data.size() && data[i] == '\r' && data[i + 1] == '\n') i += 2;
  return i;
}

HeadStatus parse_request_head(std::string_view data, std::size_t limit, RequestHead& out,
                              std::size_t searched) {
  HeadStatus status = HeadStatus::kIncomplete;
  const std::size_t end = start_head(data, limit, searched, out, status);
  if (end == 0) return status;
  const char* p = data.data();
  const char* const e = p + end;  // e[-1] is '\n', which ends every scan below

  // request-line = method SP request-target SP HTTP-version CRLF
  const char* const m = p;
  while (token_char(*p)) ++p;
  if (p == m || *p != ' ') return HeadStatus::kBad;
  out.method = std::string_view(m, static_cast<std::size_t>(p - m));
  const char* const t = ++p;
  while (static_cast<unsigned char>(*p) > 0x20 && *p != 0x7f) ++p;
  if (p == t || *p != ' ') return HeadStatus::kBad;
  out.target = std::string_view(t, static_cast<std::size_t>(p - t));
  ++p;
  if (e - p < 10 || !http_version(p) || p[8] != '\r' || p[9] != '\n') return HeadStatus::kBad;
  if (p[5] != '1') return HeadStatus::kBadVersion;
  out.version = p[7] == '0' ? 10 : 11;
  p += 10;

  FieldLines lines{out.fields, /*length_lists=*/false};
  if (!lines.parse(p, e)) return HeadStatus::kBad;
  lines.framing_into(out);
  // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host line; none has two.
  if (lines.hosts > 1 || (lines.hosts == 0 && out.version == 11)) return HeadStatus::kBad;
  // RFC 9112 §6.1: Transfer-Encoding with Content-Length may be refused (and is: two framings,
  // two answers for where the body ends); in HTTP/1.0 its framing is faulty.
  if (out.transfer_encoding && (out.content_length || out.version == 10)) return HeadStatus::kBad;
  out.size = end;
  return HeadStatus::kComplete;
}

HeadStatus parse_response_head(std::string_view data, std::size_t limit, ResponseHead& out,
                               std::size_t searched) {
  HeadStatus status = HeadStatus::kIncomplete;
  const std::size_t end = start_head(data, limit, searched, out, status);
  if (end == 0) return status;
  const char* p = data.data();
  const char* const e = p + end;

  // status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF; a missing SP before an
  // empty reason is read as if it were there (RFC 9112 §4 asks recipients to accept an empty
  // reason, and nothing about where the message ends hangs on it).
  if (e - p < 14 || !http_version(p) || p[8] != ' ') return HeadStatus::kBad;
  if (p[5] != '1') return HeadStatus::kBadVersion;
  out.version = p[7] == '0' ? 10 : 11;
  p += 9;
  if (!digit(p[0]) || !digit(p[1]) || !digit(p[2]) || p[0] == '0') return HeadStatus::kBad;
  out.status = static_cast<unsigned>((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
  p += 3;
  if (*p == ' ') ++p;
  const char* const r = p;
  p = first_control(p, e);
  if (p + 1 >= e || p[0] != '\r' || p[1] != '\n' || (p > r && r[-1] != ' '))
    return HeadStatus::kBad;
  out.reason = std::string_view(r, static_cast<std::size_t>(p - r));
  p += 2;

  FieldLines lines{out.fields, /*length_lists=*/true};
  if (!lines.parse(p, e)) return HeadStatus::kBad;
  lines.framing_into(out);
  // Two framings (RFC 9112 §6.3 asks to treat this as an error), or Transfer-Encoding in an
  // HTTP/1.0 answer (§6.1: faulty framing).
  if (out.transfer_encoding && (out.content_length || out.version == 10)) return HeadStatus::kBad;
  out.size = end;
  return HeadStatus::kComplete;
}

}  // namespace mcpgate::http
