// policy: what each supported API Management policy may hold — sections, attributes with their
// kinds and defaults, child elements — as data, so the loader checks every document the same way
// and reports every misplaced or unknown piece (apim-policies.md, per-policy references).
#pragma once

#include <string_view>
#include <vector>

namespace mcpgate::policy {

enum Section : unsigned {
  kInbound = 1,
  kBackend = 2,
  kOutbound = 4,
  kOnError = 8,
  kAllSections = 15,
};

std::string_view section_name(Section s);

struct AttributeSpec {
  enum class Kind { kString, kInteger, kBoolean, kChoice };
  std::string_view name;
  Kind kind = Kind::kString;
  bool required = false;
  bool expressions = true;     // false: APIM says "policy expressions aren't allowed"
  std::string_view choices;    // kChoice: values separated by '|'
  long long min = 0, max = 0;  // kInteger: inclusive bounds (max 0: none)
};

struct ElementSpec {
  enum class Text { kNone, kOptional, kRequired };
  std::string_view name;
  unsigned sections = 0;  // policies only: where they may appear
  std::vector<AttributeSpec> attributes;
  std::vector<const ElementSpec*> children;  // allowed child elements (any number, any order)
  Text text = Text::kNone;
  bool text_expressions = true;
  bool holds_policies = false;  // choose/when, limit-concurrency: children are policies
};

// The policy named `name`, or null when mcpgate does not know it.
const ElementSpec* find_policy(std::string_view name);

}  // namespace mcpgate::policy
