#include "core/json.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <forward_list>
#include <functional>
#include <set>
#include <string_view>

#include "core/strings.hpp"

namespace mcpgate::core {
namespace {

// Bytes that stand for themselves inside a JSON string: printable ASCII but '"' and '\\'.
constexpr auto kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

// Where a string's characters go when the string is only checked (scan_object).
struct Discard {
  void append(std::string_view) {}
  void operator+=(char) {}
};
void put_utf8(Discard&, unsigned) {}
void put_utf8(std::string& out, unsigned cp) { append_utf8(out, cp); }

class Parser {
 public:
  Parser(std::string_view text, const JsonLimits& limits) : s_(text), limits_(limits) {}

  Result<Json, std::string> run() {
    if (!fits()) return fail(std::move(error_));
    skip_ws();
    Json value;
    if (!parse_value(value, 0)) return fail(std::move(error_));
    skip_ws();
    if (pos_ != s_.size()) return fail(where() + "unexpected data after the JSON value");
    return value;
  }

  // See scan_object(): the top level read member by member, every value checked as parse_value
  // would read it, but not built.
  bool scan(const std::function<void(std::string_view, std::string_view)>& member) {
    if (!fits()) return false;
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] != '{') return error("expected an object");
    if (limits_.max_depth < 1) return error("nesting is deeper than the limit");
    ++pos_;
    // Names seen at this level (views into the text, or into `decoded` for a name written with
    // escapes): compared one by one while few, then kept sorted in a set (a body of many members
    // must not cost a comparison with each of the others).
    std::array<std::string_view, kFewNames> few;
    std::size_t count = 0;
    std::set<std::string_view> many;
    std::forward_list<std::string> decoded;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
    } else {
      while (true) {
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != '"') return error("expected a member name");
        std::string_view name;
        if (!read_name(name, decoded) || !expect_colon()) return false;
        const std::size_t start = pos_;
        if (!skip_value(1)) return false;
        if (count < kFewNames) {
          for (std::size_t i = 0; i < count; ++i) {
            if (few[i] == name) return duplicate(name);
          }
          few[count++] = name;
        } else {
          if (many.empty()) many.insert(few.begin(), few.end());
          if (!many.insert(name).second) return duplicate(name);
        }
        member(name, s_.substr(start, pos_ - start));
        bool more = false;
        if (!after_item('}', more)) return false;
        if (!more) break;
      }
    }
    skip_ws();
    if (pos_ != s_.size()) return error("unexpected data after the JSON value");
    return true;
  }
  const std::string& error_text() const { return error_; }

 private:
  static constexpr std::size_t kFewNames = 32;

  // The member name at pos_: a view into the text when it is written plainly (no escapes, ASCII),
  // else decoded into a new string in `decoded`.
  bool read_name(std::string_view& name, std::forward_list<std::string>& decoded) {
    std::size_t end = pos_ + 1;
    while (end < s_.size() && kPlain[static_cast<unsigned char>(s_[end])]) ++end;
    if (end < s_.size() && s_[end] == '"') {
      name = s_.substr(pos_ + 1, end - pos_ - 1);
      pos_ = end + 1;
      return true;
    }
    std::string& out = decoded.emplace_front();
    if (!parse_string(out)) return false;
    name = out;
    return true;
  }
  // Between a member's name and its value.
  bool expect_colon() {
    skip_ws();
    if (pos_ >= s_.size() || s_[pos_] != ':') return error("expected ':'");
    ++pos_;
    skip_ws();
    return true;
  }
  // After an object's member or an array's item: ',' (`more` follow) or the closing `close`.
  bool after_item(char close, bool& more) {
    skip_ws();
    const bool object = close == '}';
    if (pos_ >= s_.size()) {
      return error(object ? "unexpected end of input in an object"
                          : "unexpected end of input in an array");
    }
    more = s_[pos_] == ',';
    if (!more && s_[pos_] != close)
      return error(object ? "expected ',' or '}'" : "expected ',' or ']'");
    ++pos_;
    return true;
  }
  bool fits() {
    if (s_.size() <= limits_.max_bytes) return true;
    error_ = "document is larger than " + std::to_string(limits_.max_bytes) + " bytes";
    return false;
  }
  std::string where() const { return "at byte " + std::to_string(pos_) + ": "; }
  bool error(const char* what) {
    if (error_.empty()) error_ = where() + what;
    return false;
  }
  void skip_ws() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return error("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool parse_value(Json& out, std::size_t depth) {
    if (pos_ >= s_.size()) return error("unexpected end of input");
    switch (s_[pos_]) {
      case '{':
        return parse_object(out, depth + 1);
      case '[':
        return parse_array(out, depth + 1);
      case '"': {
        std::string str;
        if (!parse_string(str)) return false;
        out = Json(std::move(str));
        return true;
      }
      case 't':
        if (!literal("true")) return false;
        out = Json(true);
        return true;
      case 'f':
        if (!literal("false")) return false;
        out = Json(false);
        return true;
      case 'n':
        if (!literal("null")) return false;
        out = Json();
        return true;
      default:
        return parse_number(out);
    }
  }

  // As parse_value, but nothing is built. Member names are checked, not compared: duplicates
  // below the scanned level pass.
  bool skip_value(std::size_t depth) {
    if (pos_ >= s_.size()) return error("unexpected end of input");
    switch (s_[pos_]) {
      case '{':
        return skip_container(depth + 1, '}');
      case '[':
        return skip_container(depth + 1, ']');
      case '"': {
        Discard text;
        return parse_string(text);
      }
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return scan_number();
    }
  }
  bool skip_container(std::size_t depth, char close) {
    if (depth > limits_.max_depth) return error("nesting is deeper than the limit");
    const bool object = close == '}';
    ++pos_;  // '{' or '['
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == close) {
      ++pos_;
      return true;
    }
    while (true) {
      skip_ws();
      if (object) {
        if (pos_ >= s_.size() || s_[pos_] != '"') return error("expected a member name");
        Discard name;
        if (!parse_string(name) || !expect_colon()) return false;
      }
      if (!skip_value(depth)) return false;
      bool more = false;
      if (!after_item(close, more)) return false;
      if (!more) return true;
    }
  }

  bool parse_object(Json& out, std::size_t depth) {
    if (depth > limits_.max_depth) return error("nesting is deeper than the limit");
    ++pos_;  // '{'
    JsonObject members;
    members.reserve(8);
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      out = Json(std::move(members));
      return true;
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return error("expected a member name");
      std::string key;
      if (!parse_string(key) || !expect_colon()) return false;
      Json value;
      if (!parse_value(value, depth)) return false;
      members.emplace_back(std::move(key), std::move(value));
      bool more = false;
      if (!after_item('}', more)) return false;
      if (!more) break;
    }
    if (limits_.reject_duplicate_keys && !check_unique(members)) return false;
    out = Json(std::move(members));
    return true;
  }

  bool check_unique(const JsonObject& members) {
    if (members.size() <= 32) {
      for (std::size_t i = 1; i < members.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j) {
          if (members[i].first == members[j].first) return duplicate(members[i].first);
        }
      }
      return true;
    }
    std::vector<std::string_view> keys;
    keys.reserve(members.size());
    for (const auto& m : members) keys.emplace_back(m.first);
    std::sort(keys.begin(), keys.end());
    const auto it = std::adjacent_find(keys.begin(), keys.end());
    return it == keys.end() || duplicate(*it);
  }
  bool duplicate(std::string_view key) {
    error_ = "duplicate member name \"" + std::string(key.substr(0, 64)) + "\"";
    return false;
  }

  bool parse_array(Json& out, std::size_t depth) {
    if (depth > limits_.max_depth) return error("nesting is deeper than the limit");
    ++pos_;  // '['
    JsonArray items;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      out = Json(std::move(items));
      return true;
    }
    while (true) {
      skip_ws();
      Json value;
      if (!parse_value(value, depth)) return false;
      items.push_back(std::move(value));
      bool more = false;
      if (!after_item(']', more)) return false;
      if (!more) break;
    }
    out = Json(std::move(items));
    return true;
  }

  bool parse_number(Json& out) {
    const std::size_t start = pos_;
    if (!scan_number()) return false;
    JsonNumber n;
    n.text.assign(s_.substr(start, pos_ - start));
    // strtod on the validated text: overflow gives ±HUGE_VAL (infinity), underflow 0.
    n.value = std::strtod(n.text.c_str(), nullptr);
    out = Json(std::move(n));
    return true;
  }
  bool scan_number() {
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size()) return error("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return error("invalid value");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return error("invalid number: digits expected after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return error("invalid number: digits expected in the exponent");
    }
    return true;
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool read_hex4(unsigned& out) {
    if (s_.size() - pos_ < 4) return error("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_value(s_[pos_++]);
      if (h < 0) return error("invalid \\u escape");
      out = out * 16 + static_cast<unsigned>(h);
    }
    return true;
  }

  // Validates one UTF-8 sequence starting at pos_ (RFC 3629: no overlongs, no surrogates,
  // nothing above U+10FFFF) and copies it.
  template <class Out>
  bool copy_utf8(Out& out) {
    const auto b0 = static_cast<unsigned char>(s_[pos_]);
    std::size_t len;
    unsigned cp;
    if (b0 < 0x80) {
      out += static_cast<char>(b0);
      ++pos_;
      return true;
    } else if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2;
      cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3;
      cp = b0 & 0x0f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4;
      cp = b0 & 0x07;
    } else {
      return error("invalid UTF-8");
    }
    if (s_.size() - pos_ < len) return error("invalid UTF-8 (truncated sequence)");
    for (std::size_t i = 1; i < len; ++i) {
      const auto b = static_cast<unsigned char>(s_[pos_ + i]);
      if ((b & 0xc0) != 0x80) return error("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return error("invalid UTF-8 (overlong, surrogate or out of range)");
    }
    out.append(s_.substr(pos_, len));
    pos_ += len;
    return true;
  }

  template <class Out>
  bool parse_string(Out& out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) return error("unterminated string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return error("control character in a string");
      if (c != '\\') {
        // Fast path for runs of plain ASCII.
        std::size_t end = pos_;
        while (end < s_.size() && kPlain[static_cast<unsigned char>(s_[end])]) ++end;
        if (end > pos_) {
          out.append(s_.substr(pos_, end - pos_));
          pos_ = end;
          continue;
        }
        if (!copy_utf8(out)) return false;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) return error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = 0;
          if (!read_hex4(cp)) return false;
          if (cp >= 0xdc00 && cp <= 0xdfff) return error("lone low surrogate in \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (s_.substr(pos_, 2) != "\\u") return error("lone high surrogate in \\u escape");
            pos_ += 2;
            unsigned lo = 0;
            if (!read_hex4(lo)) return false;
            if (lo < 0xdc00 || lo > 0xdfff) return error("invalid surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          return error("invalid escape");
      }
    }
  }

  std::string_view s_;
  const JsonLimits& limits_;
  std::size_t pos_ = 0;
  std::string error_;
};

void dump_value(const Json& v, std::string& out, int indent, int level) {
  const auto newline = [&](int lvl) {
    if (indent <= 0) return;
    out += '\n';
    out.append(static_cast<std::size_t>(indent * lvl), ' ');
  };
  switch (v.type()) {
    case Json::Type::kNull:
      out += "null";
      break;
    case Json::Type::kBool:
      out += v.as_bool() ? "true" : "false";
      break;
    case Json::Type::kNumber:
      out += v.as_number().text;
      break;
    case Json::Type::kString:
      append_json_string(out, v.as_string());
      break;
    case Json::Type::kArray: {
      const auto& a = v.as_array();
      out += '[';
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        newline(level + 1);
        dump_value(a[i], out, indent, level + 1);
      }
      if (!a.empty()) newline(level);
      out += ']';
      break;
    }
    case Json::Type::kObject: {
      const auto& o = v.as_object();
      out += '{';
      for (std::size_t i = 0; i < o.size(); ++i) {
        if (i) out += ',';
        newline(level + 1);
        append_json_string(out, o[i].first);
        out += indent > 0 ? ": " : ":";
        dump_value(o[i].second, out, indent, level + 1);
      }
      if (!o.empty()) newline(level);
      out += '}';
      break;
    }
  }
}

}  // namespace

Json Json::number(double value) {
  JsonNumber n;
  n.value = value;
  char buf[32];
  if (std::isfinite(value) && value == std::floor(value) &&
      std::fabs(value) < 9.007199254740992e15) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else if (std::isfinite(value)) {
    std::snprintf(buf, sizeof buf, "%.17g", value);
  } else {
    std::snprintf(buf, sizeof buf, "null");
  }
  n.text = buf;
  return Json(std::move(n));
}

const Json* Json::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  // Claims are mostly three letters long (iss, aud, exp, tid...): the first byte tells most of
  // them apart without a call to memcmp.
  for (const auto& m : as_object()) {
    const std::string& k = m.first;
    if (k.size() == key.size() &&
        (key.empty() || (k[0] == key[0] && std::memcmp(k.data(), key.data(), key.size()) == 0)))
      return &m.second;
  }
  return nullptr;
}

const std::string* Json::find_string(std::string_view key) const {
  const Json* v = find(key);
  return v && v->is_string() ? &v->as_string() : nullptr;
}

std::string Json::dump() const {
  std::string out;
  dump_value(*this, out, 0, 0);
  return out;
}
void Json::dump_to(std::string& out) const { dump_value(*this, out, 0, 0); }

std::string Json::pretty(int indent) const {
  std::string out;
  dump_value(*this, out, indent, 0);
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

Result<Json, std::string> parse_json(std::string_view text, const JsonLimits& limits) {
  return Parser(text, limits).run();
}

std::optional<std::string> json_string(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') return std::nullopt;
  const std::string_view inside = raw.substr(1, raw.size() - 2);
  bool plain = true;
  for (const char c : inside) plain = plain && kPlain[static_cast<unsigned char>(c)];
  if (plain) return std::string(inside);
  JsonLimits limits;
  limits.max_bytes = raw.size();
  auto parsed = Parser(raw, limits).run();
  if (!parsed || !parsed->is_string()) return std::nullopt;
  return parsed->as_string();
}

bool scan_object(std::string_view text, const JsonLimits& limits,
                 const std::function<void(std::string_view, std::string_view)>& member,
                 std::string* error) {
  Parser parser(text, limits);
  if (parser.scan(member)) return true;
  if (error) *error = parser.error_text();
  return false;
}

}  // namespace mcpgate::core
