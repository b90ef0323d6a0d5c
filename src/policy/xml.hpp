// policy: reads API Management policy documents as APIM does. They are not strict XML: inside
// `@(...)` and `@{...}` expressions raw `"`, `<` and `&` are allowed (apim-expressions.md §1.3),
// so a C#-aware scan finds each expression's end before XML rules apply again. Named values
// `{{name}}` are substituted into the raw text first (§1.4). No Asio, no I/O.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::policy {

struct Diagnostic {
  std::string file;
  int line = 0;
  std::string message;
  std::string to_string() const;
};

// An attribute's or an element's text: a constant, or the C# source of an expression
// (entity-decoded, without the `@(`/`)` or `@{`/`}` around it).
struct Value {
  enum class Kind { kConstant, kExpression, kBlock };  // constant, @( ), @{ }
  Kind kind = Kind::kConstant;
  std::string text;
  int line = 0;
  bool constant() const { return kind == Kind::kConstant; }
};

struct Attribute {
  std::string name;
  Value value;
};

struct Element {
  std::string name;
  std::shared_ptr<const std::string> file;  // the document (or fragment) it was read from
  int line = 0;
  std::vector<Attribute> attributes;
  std::vector<Element> children;
  std::optional<Value> text;  // non-blank character data, when there is any

  const Attribute* attribute(std::string_view name) const;
};

// Looks a named value up: its text, or nothing when there is no such name.
using NamedValueLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Parses one document. Every problem goes to `errors` with its line; the element tree returned is
// whatever could be read (empty root name when nothing could).
Element read_policy_xml(std::string_view text, const std::string& file,
                        const NamedValueLookup& named_values, std::vector<Diagnostic>& errors);

// The end of the expression that starts at text[at] ('@' followed by '(' or '{'): the index
// just past its closing bracket, or npos when it never closes. Skips C# string, verbatim,
// interpolated and character literals and comments.
std::size_t find_expression_end(std::string_view text, std::size_t at);

}  // namespace mcpgate::policy
