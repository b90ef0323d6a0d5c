#include "policy/document.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>

namespace mcpgate::policy {

std::string_view scope_name(Scope s) {
  switch (s) {
    case Scope::kGlobal:
      return "global";
    case Scope::kProduct:
      return "product";
    case Scope::kApi:
      return "api";
    case Scope::kOperation:
      return "operation";
  }
  return "?";
}

const std::vector<Step>& Pipeline::section(Section s) const {
  for (std::size_t i = 0; i < kSections.size(); ++i) {
    if (kSections[i] == s) return sections[i];
  }
  return sections[0];
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class Checker {
 public:
  Checker(const std::string& file, const LoadOptions& options, std::vector<Diagnostic>& errors,
          int fragment_depth)
      : file_(file), options_(options), errors_(errors), fragment_depth_(fragment_depth) {}

  void error(int line, std::string message) {
    errors_.push_back({file_, line, std::move(message)});
  }

  // A value that may be an expression: refused while expressions are not supported, and where
  // the policy's reference forbids them.
  bool constant(const Value& v, bool allowed, const std::string& where) {
    if (v.constant()) return true;
    if (!allowed) {
      error(v.line, "policy expressions are not allowed in " + where);
    } else if (!options_.expressions_supported) {
      error(v.line, "policy expressions are not supported yet (" + where + ")");
    }
    return false;
  }

  void attributes(const Element& e, const ElementSpec& spec, bool is_policy) {
    for (const auto& a : e.attributes) {
      const std::string where = a.name + " of <" + e.name + ">";
      if (is_policy && a.name == "id") {
        constant(a.value, false, where);
        continue;
      }
      const AttributeSpec* as = nullptr;
      for (const auto& s : spec.attributes) {
        if (s.name == a.name) as = &s;
      }
      if (!as) {
        std::string known;
        for (const auto& s : spec.attributes)
          known += (known.empty() ? "" : ", ") + std::string(s.name);
        if (is_policy) known += std::string(known.empty() ? "" : ", ") + "id";
        error(a.value.line, "unknown attribute " + a.name + " on <" + e.name + ">" +
                                (known.empty() ? " (it takes none)" : " (known: " + known + ")"));
        continue;
      }
      if (!constant(a.value, as->expressions, where)) continue;
      check_value(a.value, *as, where);
    }
    for (const auto& s : spec.attributes) {
      if (s.required && !e.attribute(s.name))
        error(e.line, "<" + e.name + "> needs the attribute " + std::string(s.name));
    }
  }

  void check_value(const Value& v, const AttributeSpec& as, const std::string& where) {
    const std::string& t = v.text;
    switch (as.kind) {
      case AttributeSpec::Kind::kString:
        break;
      case AttributeSpec::Kind::kBoolean:
        if (!iequals(t, "true") && !iequals(t, "false"))
          error(v.line, where + " must be true or false, not \"" + t + "\"");
        break;
      case AttributeSpec::Kind::kInteger: {
        bool ok = !t.empty() && t.size() <= 12 &&
                  std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
        const long long n = ok ? std::stoll(t) : 0;
        if (ok && (n < as.min || (as.max && n > as.max))) ok = false;
        if (!ok)
          error(v.line, where + " must be a whole number from " + std::to_string(as.min) +
                            (as.max ? " to " + std::to_string(as.max) : std::string(" up")) +
                            ", not \"" + t + "\"");
        break;
      }
      case AttributeSpec::Kind::kChoice: {
        bool ok = false;
        std::string_view rest = as.choices;
        while (!rest.empty()) {
          const auto bar = rest.find('|');
          ok = ok || iequals(rest.substr(0, bar), t);
          rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
        }
        if (!ok) {
          std::string list(as.choices);
          std::replace(list.begin(), list.end(), '|', ',');
          error(v.line, where + " must be one of " + list + ", not \"" + t + "\"");
        }
        break;
      }
    }
  }

  void text(const Element& e, const ElementSpec& spec) {
    if (spec.text == ElementSpec::Text::kNone) {
      if (e.text) error(e.text->line, "<" + e.name + "> holds no text");
      return;
    }
    if (!e.text) {
      if (spec.text == ElementSpec::Text::kRequired)
        error(e.line, "<" + e.name + "> needs a value");
      return;
    }
    constant(*e.text, spec.text_expressions, "the text of <" + e.name + ">");
  }

  // A child element that is not a policy (e.g. <audiences> inside validate-jwt).
  void part(const Element& e, const ElementSpec& spec) {
    attributes(e, spec, false);
    text(e, spec);
    for (const auto& c : e.children) {
      const ElementSpec* cs = nullptr;
      for (const auto* s : spec.children) {
        if (s->name == c.name) cs = s;
      }
      if (!cs) {
        error(c.line, "<" + c.name + "> is not allowed inside <" + e.name + ">");
        continue;
      }
      part(c, *cs);
    }
  }

  void policy(Element& e, Section section) {
    if (e.name == "base") {
      if (!e.attributes.empty() || !e.children.empty() || e.text)
        error(e.line, "<base/> takes no attributes and holds nothing");
      return;
    }
    const ElementSpec* spec = find_policy(e.name);
    if (!spec) {
      if (e.name == "inbound" || e.name == "backend" || e.name == "outbound" ||
          e.name == "on-error") {
        error(e.line, "<" + e.name + "> belongs directly inside <policies>");
      } else {
        error(e.line,
              "unknown policy <" + e.name + "> (mcpgate does not support it, or it is misspelt)");
      }
      return;
    }
    if (!(spec->sections & section)) {
      std::string where;
      for (const auto s : kSections) {
        if (spec->sections & s) where += (where.empty() ? "" : ", ") + std::string(section_name(s));
      }
      error(e.line, "<" + e.name + "> is not allowed in <" + std::string(section_name(section)) +
                        "> (it may appear in: " + where + ")");
      return;
    }
    attributes(e, *spec, true);
    if (e.name == "choose") return choose(e, section);
    if (e.name == "include-fragment") return fragment(e, section);
    if (spec->holds_policies) {
      for (auto& c : e.children) policy(c, section);
      return;
    }
    text(e, *spec);
    for (const auto& c : e.children) {
      const ElementSpec* cs = nullptr;
      for (const auto* s : spec->children) {
        if (s->name == c.name) cs = s;
      }
      if (!cs) {
        error(c.line, "<" + c.name + "> is not allowed inside <" + e.name + ">");
        continue;
      }
      part(c, *cs);
    }
    rules(e);
  }

  // Rules that tie attributes together.
  void rules(const Element& e) {
    const auto count = [&](std::initializer_list<const char*> names) {
      int n = 0;
      for (const char* name : names) n += e.attribute(name) ? 1 : 0;
      return n;
    };
    if (e.name == "validate-azure-ad-token" &&
        count({"header-name", "query-parameter-name", "token-value"}) > 1)
      error(e.line,
            "<validate-azure-ad-token> takes at most one of header-name, "
            "query-parameter-name and token-value");
    if (e.name == "validate-jwt" &&
        count({"header-name", "query-parameter-name", "token-value"}) != 1)
      error(e.line,
            "<validate-jwt> needs exactly one of header-name, query-parameter-name and "
            "token-value");
    if (e.name == "set-backend-service" && count({"base-url", "backend-id"}) != 1)
      error(e.line, "<set-backend-service> needs exactly one of base-url and backend-id");
    if (e.name == "quota-by-key" && count({"calls", "bandwidth"}) == 0)
      error(e.line, "<quota-by-key> needs calls, bandwidth or both");
    if (e.name == "return-response") {
      for (const char* single : {"set-status", "set-body"}) {
        if (std::count_if(e.children.begin(), e.children.end(),
                          [&](const Element& c) { return c.name == single; }) > 1)
          error(e.line, std::string("<return-response> holds at most one <") + single + ">");
      }
    }
    if (e.name == "validate-jwt") {
      for (const auto& c : e.children) {
        if (c.name != "issuer-signing-keys") continue;
        for (const auto& k : c.children) {
          const int kinds = (k.text ? 1 : 0) + (k.attribute("certificate-id") ? 1 : 0) +
                            ((k.attribute("n") || k.attribute("e")) ? 1 : 0);
          if (kinds != 1 || (k.attribute("n") != nullptr) != (k.attribute("e") != nullptr))
            error(k.line,
                  "a signing <key> is one of: base64 text (a symmetric key), "
                  "certificate-id, or n and e (an RSA key)");
        }
      }
    }
  }

  void choose(Element& e, Section section) {
    bool otherwise = false;
    int whens = 0;
    for (auto& c : e.children) {
      if (c.name == "when") {
        if (otherwise) error(c.line, "<when> must come before <otherwise>");
        ++whens;
        const Attribute* cond = c.attribute("condition");
        if (!cond) {
          error(c.line, "<when> needs the attribute condition");
        } else if (constant(cond->value, true, "condition of <when>")) {
          if (!iequals(cond->value.text, "true") && !iequals(cond->value.text, "false"))
            error(cond->value.line, "condition of <when> must be a boolean expression or constant");
        }
        for (const auto& a : c.attributes) {
          if (a.name != "condition")
            error(a.value.line, "unknown attribute " + a.name + " on <when>");
        }
      } else if (c.name == "otherwise") {
        if (otherwise) error(c.line, "<choose> holds at most one <otherwise>");
        otherwise = true;
        if (!c.attributes.empty()) error(c.line, "<otherwise> takes no attributes");
      } else {
        error(c.line, "<choose> holds <when> and <otherwise> only, not <" + c.name + ">");
        continue;
      }
      for (auto& p : c.children) policy(p, section);
    }
    if (whens == 0) error(e.line, "<choose> needs at least one <when>");
  }

  void fragment(Element& e, Section section) {
    const Attribute* id = e.attribute("fragment-id");
    if (!id || !id->value.constant()) return;  // reported by attributes()
    const std::string& name = id->value.text;
    if (name.empty() || name.size() > 80 ||
        !std::all_of(name.begin(), name.end(),
                     [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                              c == '.';
                     }) ||
        name.front() == '.') {
      return error(id->value.line, "fragment-id \"" + name + "\" is not a fragment name");
    }
    if (fragment_depth_ >= 4) return error(e.line, "fragments include each other too deeply");
    if (options_.fragments_dir.empty())
      return error(e.line, "<include-fragment> needs policy_fragments set in the configuration");
    const std::string path = options_.fragments_dir + "/" + name + ".xml";
    const auto text = read_file(path);
    if (!text) return error(e.line, "fragment " + name + ": cannot read " + path);
    Element root = read_policy_xml(*text, path, options_.named_values, errors_);
    if (root.name.empty()) return;
    Checker inner(path, options_, errors_, fragment_depth_ + 1);
    if (root.name != "fragment") {
      inner.error(root.line,
                  "a policy fragment's root element is <fragment>, not <" + root.name + ">");
      return;
    }
    if (!root.attributes.empty()) inner.error(root.line, "<fragment> takes no attributes");
    if (root.text) inner.error(root.text->line, "<fragment> holds policies, not text");
    for (auto& c : root.children) {
      if (c.name == "base") {
        inner.error(c.line, "<base/> is not allowed in a fragment");
        continue;
      }
      inner.policy(c, section);
    }
    e.children = std::move(root.children);  // run in place of the include
  }

 private:
  const std::string& file_;
  const LoadOptions& options_;
  std::vector<Diagnostic>& errors_;
  int fragment_depth_;
};

}  // namespace

std::shared_ptr<const PolicyDocument> load_policy(std::string_view text, const std::string& file,
                                                  Scope scope, const LoadOptions& options,
                                                  std::vector<Diagnostic>& errors) {
  const std::size_t errors_before = errors.size();
  auto doc = std::make_shared<PolicyDocument>();
  doc->file = file;
  doc->scope = scope;
  doc->root = read_policy_xml(text, file, options.named_values, errors);
  if (doc->root.name.empty()) return nullptr;
  Checker check(file, options, errors, 0);
  Element& root = doc->root;
  if (root.name != "policies") {
    check.error(root.line,
                "the root element of a policy document is <policies>, not <" + root.name + ">");
    return nullptr;
  }
  if (!root.attributes.empty()) check.error(root.line, "<policies> takes no attributes");
  if (root.text) check.error(root.text->line, "<policies> holds sections, not text");
  for (auto& s : root.children) {
    std::size_t index = kSections.size();
    for (std::size_t i = 0; i < kSections.size(); ++i) {
      if (s.name == section_name(kSections[i])) index = i;
    }
    if (index == kSections.size()) {
      check.error(s.line,
                  "<policies> holds inbound, backend, outbound and on-error, not <" + s.name + ">");
      continue;
    }
    if (doc->sections[index]) {
      check.error(s.line, "<" + s.name + "> appears twice");
      continue;
    }
    if (!s.attributes.empty()) check.error(s.line, "<" + s.name + "> takes no attributes");
    if (s.text) check.error(s.text->line, "<" + s.name + "> holds policies, not text");
    const Section section = kSections[index];
    int bases = 0;
    for (auto& p : s.children) {
      if (p.name == "base" && ++bases > 1)
        check.error(p.line, "<base/> appears twice in <" + s.name + ">");
      check.policy(p, section);
    }
    if (section == kBackend && s.children.size() > 1)
      check.error(s.children[1].line, "<backend> holds one policy (or <base/>), not " +
                                          std::to_string(s.children.size()));
    doc->sections[index].emplace();
    for (const auto& p : s.children) doc->sections[index]->push_back(&p);
  }
  if (errors.size() != errors_before) return nullptr;
  return doc;
}

std::shared_ptr<const PolicyDocument> load_policy_file(const std::string& path, Scope scope,
                                                       const LoadOptions& options,
                                                       std::vector<Diagnostic>& errors) {
  const auto text = read_file(path);
  if (!text) {
    errors.push_back({path, 0, "cannot read the policy document"});
    return nullptr;
  }
  return load_policy(*text, path, scope, options, errors);
}

namespace {

const Element& default_forward_request() {
  static const Element e = [] {
    Element f;
    f.name = "forward-request";
    return f;
  }();
  return e;
}

void append_flat(std::vector<Step>& out, const Element* e, Scope scope) {
  if (e->name == "include-fragment") {
    for (const auto& c : e->children) append_flat(out, &c, scope);
    return;
  }
  out.push_back({e, scope});
}

}  // namespace

Pipeline resolve(const std::vector<std::shared_ptr<const PolicyDocument>>& documents) {
  Pipeline p;
  for (const auto& d : documents) {
    if (d) p.documents.push_back(d);
  }
  for (std::size_t i = 0; i < kSections.size(); ++i) {
    // The broadest scope's effective section first, each narrower one built around it.
    std::vector<Step> effective;
    if (kSections[i] == kBackend) effective.push_back({&default_forward_request(), Scope::kGlobal});
    for (std::size_t level = 0; level < p.documents.size(); ++level) {
      const PolicyDocument& d = *p.documents[level];
      const auto& section = d.sections[i];
      if (!section) continue;  // absent: <base/>, the broader section as it is
      std::vector<Step> next;
      const bool broadest = level == 0;
      for (const Element* e : *section) {
        if (e->name == "base") {
          // <base/> at the broadest scope: nothing, but backend keeps the built-in default.
          if (!broadest || kSections[i] == kBackend)
            next.insert(next.end(), effective.begin(), effective.end());
          continue;
        }
        append_flat(next, e, d.scope);
      }
      effective = std::move(next);
    }
    p.sections[i] = std::move(effective);
  }
  return p;
}

}  // namespace mcpgate::policy
