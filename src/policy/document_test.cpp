#include "policy/document.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace mcpgate::policy {
namespace {

const std::string kData = std::string(MCPGATE_SOURCE_DIR) + "/testdata/policy";

LoadOptions options() {
  LoadOptions o;
  o.named_values = [](std::string_view n) -> std::optional<std::string> {
    if (n == "tenant-id") return std::string("72f988bf-86f1-41af-91ab-2d7cd011db47");
    if (n == "mcp-client-id") return std::string("00000000-0000-0000-0000-0000000000c1");
    return std::nullopt;
  };
  o.fragments_dir = kData + "/fragments";
  return o;
}

// Golden files: testdata/policy/load/NAME.xml and NAME.expected, which lists the diagnostics
// one per line as "LINE: message" (file names left out), or says "ok".
TEST(PolicyLoad, GoldenDocuments) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kData + "/load")) {
    if (entry.path().extension() != ".xml") continue;
    ++files;
    const std::string xml = entry.path().string();
    std::ifstream want_in(entry.path().parent_path() /
                          (entry.path().stem().string() + ".expected"));
    ASSERT_TRUE(want_in) << "no .expected beside " << xml;
    std::stringstream want;
    want << want_in.rdbuf();
    std::vector<Diagnostic> errors;
    const auto doc = load_policy_file(xml, Scope::kApi, options(), errors);
    std::string got;
    for (const auto& e : errors) got += std::to_string(e.line) + ": " + e.message + "\n";
    for (auto at = got.find(options().fragments_dir); at != std::string::npos;
         at = got.find(options().fragments_dir))
      got.replace(at, options().fragments_dir.size(), "FRAGMENTS");
    if (errors.empty()) got = "ok\n";
    EXPECT_EQ(got, want.str()) << xml;
    EXPECT_EQ(doc != nullptr, errors.empty()) << xml;
  }
  EXPECT_GE(files, 10);
}

std::shared_ptr<const PolicyDocument> doc(const std::string& text, Scope scope) {
  std::vector<Diagnostic> errors;
  auto d = load_policy(text, "t.xml", scope, options(), errors);
  EXPECT_TRUE(errors.empty()) << errors[0].to_string();
  return d;
}

std::string names(const std::vector<Step>& steps) {
  std::string out;
  for (const auto& s : steps) {
    out += (out.empty() ? "" : " ") + s.element->name;
    if (const auto* a = s.element->attribute("name")) out += "=" + a->value.text;
    out += "@" + std::string(scope_name(s.scope));
  }
  return out;
}

TEST(PolicyLoad, BaseIsReplacedByTheBroaderScope) {
  const auto global = doc(R"(<policies>
  <inbound><set-header name="g1"/><base/><set-header name="g2"/></inbound>
  <outbound><set-header name="go"/></outbound>
</policies>)",
                          Scope::kGlobal);
  const auto api = doc(R"(<policies>
  <inbound><set-header name="a1"/><base/><set-header name="a2"/></inbound>
  <backend><base/></backend>
  <on-error><set-header name="ae"/></on-error>
</policies>)",
                       Scope::kApi);
  const auto op = doc(R"(<policies>
  <inbound><base/><set-header name="o1"/></inbound>
  <outbound><set-header name="oo"/></outbound>
</policies>)",
                      Scope::kOperation);
  const Pipeline p = resolve({global, api, op});
  // The global <base/> adds nothing; each narrower <base/> is the broader effective section.
  EXPECT_EQ(names(p.section(kInbound)),
            "set-header=a1@api set-header=g1@global set-header=g2@global set-header=a2@api "
            "set-header=o1@operation");
  EXPECT_EQ(names(p.section(kBackend)), "forward-request@global");
  // No <base/>: broader outbound policies do not run.
  EXPECT_EQ(names(p.section(kOutbound)), "set-header=oo@operation");
  // Absent in the operation: as if <base/>.
  EXPECT_EQ(names(p.section(kOnError)), "set-header=ae@api");
}

TEST(PolicyLoad, BackendDefaultsAndFragmentsInline) {
  const auto api = doc(R"(<policies>
  <inbound><include-fragment fragment-id="stamp"/><set-header name="after"/></inbound>
  <backend><forward-request timeout="30"/></backend>
</policies>)",
                       Scope::kApi);
  const Pipeline p = resolve({nullptr, api});
  EXPECT_EQ(names(p.section(kInbound)),
            "set-header=X-Stamp@api set-header=X-Tenant@api set-header=after@api");
  ASSERT_EQ(p.section(kBackend).size(), 1u);
  EXPECT_EQ(p.section(kBackend)[0].element->attribute("timeout")->value.text, "30");
  const Pipeline none = resolve({});
  EXPECT_EQ(names(none.section(kBackend)), "forward-request@global");
  EXPECT_TRUE(none.section(kInbound).empty());
}

}  // namespace
}  // namespace mcpgate::policy
