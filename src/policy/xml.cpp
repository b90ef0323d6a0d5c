#include "policy/xml.hpp"

#include <algorithm>
#include <cstdint>

#include "core/strings.hpp"

namespace mcpgate::policy {

std::string Diagnostic::to_string() const {
  return file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + message;
}

const Attribute* Element::attribute(std::string_view n) const {
  for (const auto& a : attributes) {
    if (a.name == n) return &a;
  }
  return nullptr;
}

namespace {

constexpr std::size_t npos = std::string_view::npos;
constexpr std::size_t kMaxDocument = 1 << 20;
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxElements = 20000;

// Past the closing quote of a regular ("…") or verbatim (@"…") C# string whose opening quote is
// at `q`; npos when it does not close (a regular string may not span lines).
std::size_t skip_string(std::string_view t, std::size_t q, bool verbatim) {
  for (std::size_t i = q + 1; i < t.size(); ++i) {
    const char c = t[i];
    if (verbatim) {
      if (c == '"') {
        if (i + 1 < t.size() && t[i + 1] == '"') {
          ++i;
          continue;
        }
        return i + 1;
      }
    } else if (c == '\\') {
      ++i;
    } else if (c == '"') {
      return i + 1;
    } else if (c == '\n') {
      return npos;
    }
  }
  return npos;
}

std::size_t skip_char_literal(std::string_view t, std::size_t q) {
  for (std::size_t i = q + 1; i < t.size() && i < q + 12; ++i) {
    if (t[i] == '\\') {
      ++i;
    } else if (t[i] == '\'') {
      return i + 1;
    } else if (t[i] == '\n') {
      return npos;
    }
  }
  return npos;
}

std::size_t skip_code(std::string_view t, std::size_t i, char open, char close, int depth,
                      bool in_hole);

// An interpolated string ($"…" or $@"…") whose opening quote is at `q`: literal text, `{{` and
// `}}` escapes, and holes `{expr[,align][:format]}` whose code may hold strings of its own.
std::size_t skip_interpolated(std::string_view t, std::size_t q, bool verbatim) {
  for (std::size_t i = q + 1; i < t.size();) {
    const char c = t[i];
    if (c == '{') {
      if (i + 1 < t.size() && t[i + 1] == '{') {
        i += 2;
        continue;
      }
      i = skip_code(t, i + 1, '{', '}', 1, true);
      if (i == npos) return npos;
      continue;
    }
    if (c == '"') {
      if (verbatim && i + 1 < t.size() && t[i + 1] == '"') {
        i += 2;
        continue;
      }
      return i + 1;
    }
    if (!verbatim && c == '\\') {
      i += 2;
      continue;
    }
    if (!verbatim && c == '\n') return npos;
    ++i;
  }
  return npos;
}

// C# code from `i` at bracket depth `depth` (of `open`/`close`): the index just past the bracket
// that takes the depth to 0. In an interpolation hole, a top-level ':' starts the format clause,
// which runs to the hole's '}'.
std::size_t skip_code(std::string_view t, std::size_t i, char open, char close, int depth,
                      bool in_hole) {
  int parens = 0;  // inside a hole: ( and [ nesting, where ':' is code, not a format clause
  while (i < t.size()) {
    const char c = t[i];
    const char next = i + 1 < t.size() ? t[i + 1] : '\0';
    if (c == '"') {
      i = skip_string(t, i, false);
    } else if (c == '@' && next == '"') {
      i = skip_string(t, i + 1, true);
    } else if (c == '$' && next == '"') {
      i = skip_interpolated(t, i + 1, false);
    } else if ((c == '$' && next == '@') || (c == '@' && next == '$')) {
      if (i + 2 >= t.size() || t[i + 2] != '"') return npos;
      i = skip_interpolated(t, i + 2, true);
    } else if (c == '\'') {
      i = skip_char_literal(t, i);
    } else if (c == '/' && next == '/') {
      const auto nl = t.find('\n', i);
      i = nl == npos ? t.size() : nl + 1;
    } else if (c == '/' && next == '*') {
      const auto end = t.find("*/", i + 2);
      i = end == npos ? npos : end + 2;
    } else {
      if (in_hole) {
        if (c == '(' || c == '[') ++parens;
        if ((c == ')' || c == ']') && parens > 0) --parens;
        if (c == ':' && parens == 0 && depth == 1) {
          const auto end = t.find('}', i);
          return end == npos ? npos : end + 1;
        }
      }
      if (c == open) ++depth;
      if (c == close && --depth == 0) return i + 1;
      ++i;
    }
    if (i == npos) return npos;
  }
  return npos;
}

// The entity at t[i] == '&': its decoded text and length, or nothing when it is not one.
std::optional<std::pair<std::string, std::size_t>> entity_at(std::string_view t, std::size_t i) {
  const auto semi = t.find(';', i);
  if (semi == npos || semi - i > 10) return std::nullopt;
  const std::string_view name = t.substr(i + 1, semi - i - 1);
  const std::size_t len = semi - i + 1;
  if (name == "quot") return std::pair{std::string("\""), len};
  if (name == "apos") return std::pair{std::string("'"), len};
  if (name == "lt") return std::pair{std::string("<"), len};
  if (name == "gt") return std::pair{std::string(">"), len};
  if (name == "amp") return std::pair{std::string("&"), len};
  if (name.size() >= 2 && name[0] == '#') {
    const bool hex = name[1] == 'x';
    const std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty()) return std::nullopt;
    std::uint32_t cp = 0;
    for (const char d : digits) {
      int v = -1;
      if (d >= '0' && d <= '9') v = d - '0';
      if (hex && d >= 'a' && d <= 'f') v = d - 'a' + 10;
      if (hex && d >= 'A' && d <= 'F') v = d - 'A' + 10;
      if (v < 0) return std::nullopt;
      cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
      if (cp > 0x10FFFF) return std::nullopt;
    }
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    std::string out;
    core::append_utf8(out, cp);
    return std::pair{out, len};
  }
  return std::nullopt;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == ':';
}

class Reader {
 public:
  Reader(std::string_view original, const std::string& file, const NamedValueLookup& named,
         std::vector<Diagnostic>& errors)
      : original_(original),
        file_(file),
        errors_(errors),
        file_ptr_(std::make_shared<const std::string>(file)) {
    for (std::size_t i = 0; i < original.size(); ++i) {
      if (original[i] == '\n') newlines_.push_back(i);
    }
    substitute(named);
  }

  Element read() {
    Element root;
    std::size_t i = 0;
    if (t_.starts_with("\xEF\xBB\xBF")) i = 3;
    while (true) {
      while (i < t_.size() && is_space(t_[i])) ++i;
      if (t_.compare(i, 5, "<?xml") == 0) {
        const auto end = t_.find("?>", i);
        if (end == npos) return fail(i, "the XML declaration does not end"), root;
        i = end + 2;
      } else if (t_.compare(i, 4, "<!--") == 0) {
        const auto end = t_.find("-->", i);
        if (end == npos) return fail(i, "a comment does not end"), root;
        i = end + 3;
      } else if (t_.compare(i, 2, "<!") == 0) {
        return fail(i, "document type declarations are not allowed in policies"), root;
      } else {
        break;
      }
    }
    if (i >= t_.size() || t_[i] != '<') return fail(i, "expected a <policies> element"), root;
    if (!element(i, root, 0)) return root;
    while (i < t_.size()) {
      while (i < t_.size() && is_space(t_[i])) ++i;
      if (i >= t_.size()) break;
      if (t_.compare(i, 4, "<!--") == 0) {
        const auto end = t_.find("-->", i);
        if (end == npos) return fail(i, "a comment does not end"), root;
        i = end + 3;
        continue;
      }
      fail(i, "text after the root element");
      break;
    }
    return root;
  }

 private:
  // {{name}} → the named value, in the raw text (apim-expressions.md §1.4). Names hold letters,
  // digits, '.', '-' and '_'; other {{…}} (C# escaped braces) stay as they are.
  void substitute(const NamedValueLookup& named) {
    std::size_t i = 0;       // copied up to here
    std::size_t search = 0;  // look for the next {{ from here
    while (true) {
      const auto open = original_.find("{{", search);
      if (open == npos) break;
      const auto close = original_.find("}}", open + 2);
      if (close == npos) break;
      const std::string_view name = original_.substr(open + 2, close - open - 2);
      const bool is_name =
          !name.empty() && name.size() <= 256 && std::all_of(name.begin(), name.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.';
          });
      if (!is_name) {
        search = open + 2;
        continue;
      }
      t_.append(original_.substr(i, open - i));
      auto value = named ? named(name) : std::nullopt;
      if (!value) {
        errors_.push_back({file_, line_of_original(open),
                           "unknown named value {{" + std::string(name) +
                               "}}: define it under named_values in the gateway configuration"});
        value = std::string(original_.substr(open, close + 2 - open));  // no cascade of errors
      }
      // The substituted text reports the line of the {{ that stood there.
      map_.push_back({t_.size(), t_.size() + value->size(), open, close + 2});
      t_.append(*value);
      i = search = close + 2;
    }
    t_.append(original_.substr(i));
  }

  struct Span {
    std::size_t begin, end;            // in the substituted text
    std::size_t orig_begin, orig_end;  // in the original
  };

  int line_of_original(std::size_t offset) const {
    return static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), offset) -
                            newlines_.begin()) +
           1;
  }

  int line(std::size_t offset) const {
    std::size_t shift_from = 0, shift_to = 0;  // the last substitution before `offset`
    for (const auto& s : map_) {
      if (offset < s.begin) break;
      if (offset < s.end) return line_of_original(s.orig_begin);
      shift_from = s.end;
      shift_to = s.orig_end;
    }
    return line_of_original(offset - shift_from + shift_to);
  }

  void fail(std::size_t at, std::string message) {
    errors_.push_back({file_, line(std::min(at, t_.size())), std::move(message)});
  }

  // Decodes entities in a constant; a '&' that starts none is an error (XML requires &amp;).
  std::string decode(std::size_t from, std::size_t to, bool strict) {
    std::string out;
    for (std::size_t i = from; i < to; ++i) {
      if (t_[i] != '&') {
        out += t_[i];
        continue;
      }
      if (auto e = entity_at(view().substr(0, to), i)) {
        out += e->first;
        i += e->second - 1;
      } else {
        if (strict) fail(i, "'&' must be written &amp; outside policy expressions");
        out += '&';
      }
    }
    return out;
  }

  // A value (attribute or text) starting at `from`: when its first non-blank characters open an
  // expression, scans C# to its end and returns it; `end` is then just past the expression.
  std::optional<Value> expression(std::size_t from, std::size_t& end) {
    std::size_t at = from;
    while (at < t_.size() && is_space(t_[at])) ++at;
    if (at + 1 >= t_.size() || t_[at] != '@' || (t_[at + 1] != '(' && t_[at + 1] != '{'))
      return std::nullopt;
    const auto stop = find_expression_end(t_, at);
    if (stop == npos) {
      fail(at,
           "a policy expression does not end: an unclosed bracket, string or comment (strings "
           "that start with \" end on the same line; @\"…\" strings may span lines)");
      end = npos;
      return std::nullopt;
    }
    Value v;
    v.kind = t_[at + 1] == '(' ? Value::Kind::kExpression : Value::Kind::kBlock;
    v.text = decode(at + 2, stop - 1, false);
    v.line = line(at);
    end = stop;
    return v;
  }

  bool element(std::size_t& i, Element& out, int depth) {
    if (depth > kMaxDepth) return fail(i, "elements nest too deeply"), false;
    if (++elements_ > kMaxElements) return fail(i, "too many elements"), false;
    out.line = line(i);
    out.file = file_ptr_;
    std::size_t n = i + 1;
    while (n < t_.size() && is_name_char(t_[n])) ++n;
    out.name = std::string(view().substr(i + 1, n - i - 1));
    if (out.name.empty()) return fail(i, "expected an element name after '<'"), false;
    i = n;
    // Attributes.
    while (true) {
      while (i < t_.size() && is_space(t_[i])) ++i;
      if (i >= t_.size()) return fail(i, "<" + out.name + "> does not end"), false;
      if (t_.compare(i, 2, "/>") == 0) {
        i += 2;
        return true;
      }
      if (t_[i] == '>') {
        ++i;
        break;
      }
      std::size_t a = i;
      while (a < t_.size() && is_name_char(t_[a])) ++a;
      if (a == i)
        return fail(i, "unexpected '" + std::string(1, t_[i]) + "' in <" + out.name + ">"), false;
      Attribute attr;
      attr.name = std::string(view().substr(i, a - i));
      i = a;
      while (i < t_.size() && is_space(t_[i])) ++i;
      if (i >= t_.size() || t_[i] != '=')
        return fail(i, "attribute " + attr.name + " of <" + out.name + "> needs =\"value\""), false;
      ++i;
      while (i < t_.size() && is_space(t_[i])) ++i;
      if (i >= t_.size() || (t_[i] != '"' && t_[i] != '\''))
        return fail(i, "the value of " + attr.name + " must be quoted"), false;
      const char quote = t_[i++];
      attr.value.line = line(i);
      std::size_t end = 0;
      auto expr = expression(i, end);
      if (end == npos) return false;
      std::size_t after = end;
      while (expr && after < t_.size() && is_space(t_[after])) ++after;
      if (expr && after < t_.size() && t_[after] == quote) {
        attr.value = std::move(*expr);
        i = after + 1;
      } else {
        const auto close = t_.find(quote, i);
        if (close == npos) return fail(i, "the value of " + attr.name + " does not end"), false;
        if (view().substr(i, close - i).find('<') != npos)
          return fail(i, "'<' must be written &lt; in the value of " + attr.name), false;
        attr.value.kind = Value::Kind::kConstant;
        attr.value.text = decode(i, close, true);
        i = close + 1;
      }
      if (out.attribute(attr.name))
        fail(i, "attribute " + attr.name + " appears twice in <" + out.name + ">");
      out.attributes.push_back(std::move(attr));
    }
    // Content: text, comments, CDATA and child elements up to the end tag.
    std::string text;
    int text_line = 0;
    std::optional<Value> text_expr;
    bool mixed = false;
    while (true) {
      if (i >= t_.size()) return fail(i, "<" + out.name + "> is not closed"), false;
      if (t_[i] == '<') {
        if (t_.compare(i, 4, "<!--") == 0) {
          const auto end = t_.find("-->", i);
          if (end == npos) return fail(i, "a comment does not end"), false;
          i = end + 3;
        } else if (t_.compare(i, 9, "<![CDATA[") == 0) {
          const auto end = t_.find("]]>", i);
          if (end == npos) return fail(i, "a CDATA section does not end"), false;
          if (!text_line) text_line = line(i);
          text.append(view().substr(i + 9, end - i - 9));
          i = end + 3;
        } else if (t_.compare(i, 2, "</") == 0) {
          std::size_t n2 = i + 2;
          while (n2 < t_.size() && is_name_char(t_[n2])) ++n2;
          const std::string_view name = view().substr(i + 2, n2 - i - 2);
          while (n2 < t_.size() && is_space(t_[n2])) ++n2;
          if (name != out.name || n2 >= t_.size() || t_[n2] != '>')
            return fail(i, "</" + std::string(name) + "> does not close <" + out.name + ">"), false;
          i = n2 + 1;
          break;
        } else {
          Element child;
          if (!element(i, child, depth + 1)) return false;
          out.children.push_back(std::move(child));
        }
        continue;
      }
      // Character data up to the next markup; an expression may hold raw '<'.
      const bool blank_so_far =
          std::all_of(text.begin(), text.end(), [](char c) { return is_space(c); });
      std::size_t end = 0;
      auto expr = blank_so_far && !text_expr ? expression(i, end) : std::nullopt;
      if (end == npos) return false;
      if (expr) {
        text_expr = std::move(expr);
        i = end;
        continue;
      }
      const auto next = t_.find('<', i);
      const std::size_t stop = next == npos ? t_.size() : next;
      std::string piece = decode(i, stop, true);
      if (!std::all_of(piece.begin(), piece.end(), [](char c) { return is_space(c); })) {
        if (!text_line) text_line = line(i);
        if (text_expr) mixed = true;
      }
      text += piece;
      i = stop;
    }
    if (text_expr && !mixed) {
      out.text = std::move(text_expr);
    } else if (!std::all_of(text.begin(), text.end(), [](char c) { return is_space(c); })) {
      if (mixed) fail(i, "<" + out.name + "> mixes a policy expression with other text");
      Value v;
      v.text = std::move(text);
      v.line = text_line;
      out.text = std::move(v);
    }
    return true;
  }

  std::string_view original_;
  const std::string& file_;
  std::vector<Diagnostic>& errors_;
  std::vector<std::size_t> newlines_;
  std::string t_;  // the text with named values substituted
  std::string_view view() const { return t_; }
  std::vector<Span> map_;
  std::size_t elements_ = 0;
  std::shared_ptr<const std::string> file_ptr_;
};

}  // namespace

std::size_t find_expression_end(std::string_view text, std::size_t at) {
  if (at + 1 >= text.size() || text[at] != '@') return npos;
  const char open = text[at + 1];
  if (open != '(' && open != '{') return npos;
  return skip_code(text, at + 2, open, open == '(' ? ')' : '}', 1, false);
}

Element read_policy_xml(std::string_view text, const std::string& file,
                        const NamedValueLookup& named_values, std::vector<Diagnostic>& errors) {
  if (text.size() > kMaxDocument) {
    errors.push_back({file, 0, "the policy document is larger than 1 MiB"});
    return {};
  }
  Reader reader(text, file, named_values, errors);
  return reader.read();
}

}  // namespace mcpgate::policy
