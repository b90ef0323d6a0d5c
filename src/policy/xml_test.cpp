#include "policy/xml.hpp"

#include <gtest/gtest.h>

namespace mcpgate::policy {
namespace {

// What follows the expression at the start of `s` ("<none>" when it never ends).
std::string after(std::string_view s) {
  const auto end = find_expression_end(s, 0);
  return end == std::string_view::npos ? "<none>" : std::string(s.substr(end));
}

TEST(PolicyXml, ExpressionEndsSkipCSharpLiterals) {
  EXPECT_EQ(after("@(a)|"), "|");
  EXPECT_EQ(after("@(f(\")\") + g('(') )|"), "|");
  EXPECT_EQ(after("@{ return \"}\"; }|"), "|");
  EXPECT_EQ(after("@(@\"a\"\")\" + 1)|"), "|");             // verbatim: "" is a quote
  EXPECT_EQ(after("@($\"a{b(\")\")}c\")|"), "|");           // a hole with a string
  EXPECT_EQ(after("@($\"{{x}} {d:yyyy-MM-dd)}\")|"), "|");  // {{ }} and a format clause
  EXPECT_EQ(after("@($\"{(a ? b : c)}\")|"), "|");          // ':' inside parentheses
  EXPECT_EQ(after("@($@\"{x}\"\"\")|"), "|");               // verbatim interpolated
  EXPECT_EQ(after("@(a // )\n)|"), "|");                    // line comment
  EXPECT_EQ(after("@(a /* ) */ )|"), "|");                  // block comment
  EXPECT_EQ(after("@('\\'' + ')')|"), "|");                 // char literals
  EXPECT_EQ(after("@(a\n)|"), "|");                         // code may span lines
  EXPECT_EQ(after("@(\"a\nb\")|"), "<none>");               // a regular string may not
  EXPECT_EQ(after("@(a"), "<none>");
  EXPECT_EQ(after("@(\"a)"), "<none>");
  EXPECT_EQ(after("x"), "<none>");
}

Element read(std::string_view text, std::vector<Diagnostic>& errors,
             NamedValueLookup named = nullptr) {
  return read_policy_xml(text, "p.xml", named, errors);
}

TEST(PolicyXml, RawQuotesInsideExpressionsAsApimAcceptsThem) {
  std::vector<Diagnostic> errors;
  const auto root = read(
      R"X(<when condition="@(context.Request.Headers.GetValueOrDefault("X","") == "a<b")">
  <set-body>@(context.Request.Body.As<string>())</set-body>
  <set-header name="x"><value>@{ return "&quot;" + 1 &lt; 2; }</value></set-header>
</when>)X",
      errors);
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  const auto* cond = root.attribute("condition");
  ASSERT_NE(cond, nullptr);
  EXPECT_EQ(cond->value.kind, Value::Kind::kExpression);
  EXPECT_EQ(cond->value.text, R"X(context.Request.Headers.GetValueOrDefault("X","") == "a<b")X");
  EXPECT_EQ(root.children[0].text->text, "context.Request.Body.As<string>()");
  EXPECT_EQ(root.children[0].text->line, 2);
  const auto& value = root.children[1].children[0];
  EXPECT_EQ(value.text->kind, Value::Kind::kBlock);
  EXPECT_EQ(value.text->text, R"( return """ + 1 < 2; )");  // entities decoded in code too
}

TEST(PolicyXml, ConstantsEntitiesCommentsAndCdata) {
  std::vector<Diagnostic> errors;
  const auto root = read(R"(<?xml version="1.0"?>
<!-- a comment -->
<a x='say "hi" &amp; &#x263A;' y="">
  <!-- inside -->
  <b><![CDATA[<raw> & text]]></b>
  <c>  plain &lt;text&gt;  </c>
</a>
)",
                         errors);
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  EXPECT_EQ(root.line, 3);
  EXPECT_EQ(root.attribute("x")->value.text, "say \"hi\" & \xE2\x98\xBA");
  EXPECT_EQ(root.attribute("y")->value.text, "");
  EXPECT_EQ(root.children[0].text->text, "<raw> & text");
  EXPECT_EQ(root.children[1].text->text, "  plain <text>  ");
  EXPECT_FALSE(root.children[1].text->kind == Value::Kind::kExpression);
}

TEST(PolicyXml, NamedValuesAreTextualAndKeepLines) {
  std::vector<Diagnostic> errors;
  const auto lookup = [](std::string_view n) -> std::optional<std::string> {
    if (n == "tenant") return std::string("contoso.onmicrosoft.com");
    if (n == "multi") return std::string("line1\nline2\nline3");
    return std::nullopt;
  };
  const auto root = read(R"X(<a t="{{tenant}}" m="{{multi}}">
<b u="https://login/{{tenant}}/v2.0">@($"{{tenant}}")</b>
<c k="{{missing}}"/>
<d j='$"{{ "a": 1 }}"'/>
</a>)X",
                         errors, lookup);
  ASSERT_EQ(errors.size(), 1u) << errors.back().to_string();
  EXPECT_EQ(errors[0].to_string(),
            "p.xml:3: unknown named value {{missing}}: define it under named_values in the "
            "gateway configuration");
  EXPECT_EQ(root.attribute("t")->value.text, "contoso.onmicrosoft.com");
  EXPECT_EQ(root.attribute("m")->value.text, "line1\nline2\nline3");
  EXPECT_EQ(root.children[0].line, 2);  // a three-line value above does not move the lines
  EXPECT_EQ(root.children[0].attribute("u")->value.text,
            "https://login/contoso.onmicrosoft.com/v2.0");
  EXPECT_EQ(root.children[0].text->text, "$\"contoso.onmicrosoft.com\"");
  EXPECT_EQ(root.children[2].line, 4);
  EXPECT_EQ(root.children[2].attribute("j")->value.text, "$\"{{ \"a\": 1 }}\"");  // not a name
}

TEST(PolicyXml, BrokenDocumentsSayWhereAndWhy) {
  const struct {
    const char* text;
    const char* error;
  } cases[] = {
      {"<a>", "p.xml:1: <a> is not closed"},
      {"<a></b>", "p.xml:1: </b> does not close <a>"},
      {"<a x=1/>", "p.xml:1: the value of x must be quoted"},
      {"<a x=\"1\" x=\"2\"/>", "p.xml:1: attribute x appears twice in <a>"},
      {"<a x=\"a < b\"/>", "p.xml:1: '<' must be written &lt; in the value of x"},
      {"<a>\n\n R&D</a>", "p.xml:3: '&' must be written &amp; outside policy expressions"},
      {"<a\n x=\"@(\"unterminated)\"/>", "p.xml:2: a policy expression does not end"},
      {"<a/><b/>", "p.xml:1: text after the root element"},
      {"<!DOCTYPE x><a/>", "p.xml:1: document type declarations are not allowed"},
      {"", "p.xml:1: expected a <policies> element"},
      {"<a>@(x) and more</a>", "p.xml:1: <a> mixes a policy expression with other text"},
  };
  for (const auto& c : cases) {
    std::vector<Diagnostic> errors;
    read(c.text, errors);
    ASSERT_FALSE(errors.empty()) << c.text;
    EXPECT_EQ(errors[0].to_string().rfind(c.error, 0), 0u)
        << c.text << "\n  got: " << errors[0].to_string();
  }
}

TEST(PolicyXml, DepthAndSizeAreBounded) {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "<a>";
  std::vector<Diagnostic> errors;
  read(deep, errors);
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].message.find("nest too deeply"), std::string::npos);
  errors.clear();
  read(std::string(2 << 20, ' '), errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("larger than 1 MiB"), std::string::npos);
}

}  // namespace
}  // namespace mcpgate::policy
