// policy: loading a policy document (`<policies>` with inbound/backend/outbound/on-error),
// checking it against the schema with every error reported at once, and resolving `<base/>`
// across scopes (global → API → operation) into flat pipelines, once, at load.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policy/schema.hpp"
#include "policy/xml.hpp"

namespace mcpgate::policy {

enum class Scope { kGlobal, kProduct, kApi, kOperation };
std::string_view scope_name(Scope s);

struct LoadOptions {
  NamedValueLookup named_values;
  std::string fragments_dir;  // <include-fragment fragment-id="x"/> reads <dir>/x.xml
  // False until the expression interpreter exists: every @(…)/@{…} is a load error then.
  bool expressions_supported = false;
};

// Index of a section in the arrays below: inbound, backend, outbound, on-error.
constexpr std::array<Section, 4> kSections = {kInbound, kBackend, kOutbound, kOnError};

struct PolicyDocument {
  std::string file;
  Scope scope = Scope::kApi;
  Element root;
  // The policies of each section in document order; nothing when the section is absent (which
  // behaves as <base/>). <include-fragment> elements carry their fragment's policies as children.
  std::array<std::optional<std::vector<const Element*>>, 4> sections;
};

std::shared_ptr<const PolicyDocument> load_policy(std::string_view text, const std::string& file,
                                                  Scope scope, const LoadOptions& options,
                                                  std::vector<Diagnostic>& errors);
std::shared_ptr<const PolicyDocument> load_policy_file(const std::string& path, Scope scope,
                                                       const LoadOptions& options,
                                                       std::vector<Diagnostic>& errors);

// One policy to run, and the scope whose document it came from (context.LastError.Scope).
struct Step {
  const Element* element = nullptr;
  Scope scope = Scope::kApi;
};

// The effective sections for one API (or operation): the narrowest document's sections with
// each <base/> replaced by the next broader scope's effective section; an absent section is
// <base/>; <base/> at the broadest scope adds nothing, except in backend, where the built-in
// global default (<forward-request/>) applies. Fragments are inlined.
struct Pipeline {
  std::array<std::vector<Step>, 4> sections;
  std::vector<std::shared_ptr<const PolicyDocument>> documents;  // keeps the elements alive
  const std::vector<Step>& section(Section s) const;
};

// `documents` from broadest to narrowest; null entries (a scope without a document) are skipped.
Pipeline resolve(const std::vector<std::shared_ptr<const PolicyDocument>>& documents);

}  // namespace mcpgate::policy
