// core: a strict, bounded JSON reader and compact writer for JOSE headers, claims and JWKS.
// Must not depend on anything but the standard library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/result.hpp"

namespace mcpgate::core {

class Json;
using JsonArray = std::vector<Json>;
using JsonMember = std::pair<std::string, Json>;
using JsonObject = std::vector<JsonMember>;  // keeps document order

// A number keeps its source text (so it is written back unchanged) and its double value.
// Values beyond the range of a double parse as ±infinity; callers that need a finite value
// (NumericDate) check is_finite().
struct JsonNumber {
  double value = 0;
  std::string text;
};

class Json {
 public:
  enum class Type : std::uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

  Json() = default;
  explicit Json(bool b) : v_(b) {}
  explicit Json(JsonNumber n) : v_(std::move(n)) {}
  explicit Json(std::string s) : v_(std::move(s)) {}
  // A string literal is a string, not a bool (the pointer-to-bool conversion would win).
  explicit Json(const char* s) : v_(std::string(s)) {}
  explicit Json(JsonArray a) : v_(std::move(a)) {}
  explicit Json(JsonObject o) : v_(std::move(o)) {}
  static Json number(double value);

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_number() const { return type() == Type::kNumber; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  bool as_bool() const { return std::get<bool>(v_); }
  const JsonNumber& as_number() const { return std::get<JsonNumber>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const JsonArray& as_array() const { return std::get<JsonArray>(v_); }
  const JsonObject& as_object() const { return std::get<JsonObject>(v_); }
  JsonObject& as_object() { return std::get<JsonObject>(v_); }

  // Object member lookup; nullptr when absent or when this is not an object.
  const Json* find(std::string_view key) const;
  // The member as a string, or nullptr when absent or not a string.
  const std::string* find_string(std::string_view key) const;

  // Compact form with JSON.stringify's escaping (", \ and control characters only).
  std::string dump() const;
  void dump_to(std::string& out) const;
  // Indented form for people.
  std::string pretty(int indent = 2) const;

 private:
  std::variant<std::monostate, bool, JsonNumber, std::string, JsonArray, JsonObject> v_;
};

struct JsonLimits {
  std::size_t max_bytes = 64 * 1024;
  std::size_t max_depth = 32;
  bool reject_duplicate_keys = true;  // RFC 7515 §4 / RFC 7519 §4: duplicates are an error
};

// Parses exactly one RFC 8259 value (surrounding whitespace allowed, nothing else). Strings must
// be valid UTF-8 and escapes must not produce lone surrogates. The error message says what and
// where ("at byte 17: ...").
Result<Json, std::string> parse_json(std::string_view text, const JsonLimits& limits = {});

// Reads one JSON object member by member without building it: true when `text` is exactly one
// object that parse_json would accept under `limits` — except that member names are compared at
// its top level only (a name twice there fails, whatever reject_duplicate_keys says; deeper,
// names are checked but not compared). `member` gets each top-level member's name, unescaped and
// good during the call, and its value's exact text (a view into `text`: checked, not built). On
// false, `member` has seen some members only: throw away what it kept; `error` says why.
bool scan_object(std::string_view text, const JsonLimits& limits,
                 const std::function<void(std::string_view name, std::string_view value)>& member,
                 std::string* error = nullptr);

// The text a JSON string literal stands for (escapes decoded); nullopt when `raw` is not exactly
// one valid string literal. For values scan_object gives.
std::optional<std::string> json_string(std::string_view raw);

void append_json_string(std::string& out, std::string_view s);

}  // namespace mcpgate::core
