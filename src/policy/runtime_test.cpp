#include "policy/runtime.hpp"

#include <gtest/gtest.h>

#include "core/strings.hpp"
#include "jwt/test_keys.hpp"

namespace mcpgate::policy {
namespace {

class Fields final : public HeaderMap {
 public:
  std::vector<std::pair<std::string, std::string>> f;
  std::vector<std::string> values(std::string_view name) const override {
    std::vector<std::string> out;
    for (const auto& [n, v] : f) {
      if (core::iequals(n, name)) out.push_back(v);
    }
    return out;
  }
  std::optional<std::string_view> first(std::string_view name) const override {
    for (const auto& [n, v] : f) {
      if (core::iequals(n, name)) return std::string_view(v);
    }
    return std::nullopt;
  }
  void erase(std::string_view name) override {
    std::erase_if(f, [&](const auto& x) { return core::iequals(x.first, name); });
  }
  void add(std::string_view name, std::string_view value) override {
    f.emplace_back(std::string(name), std::string(value));
  }
};

std::shared_ptr<const PolicyDocument> doc(const std::string& text, Scope scope) {
  std::vector<Diagnostic> errors;
  auto d = load_policy(text, "t.xml", scope, {}, errors);
  EXPECT_TRUE(errors.empty()) << errors[0].to_string();
  return d;
}

std::shared_ptr<const Program> program(
    const std::vector<std::shared_ptr<const PolicyDocument>>& docs) {
  auto p = compile(resolve(docs));
  EXPECT_TRUE(p) << (p ? "" : p.error()[0].to_string());
  return p ? p.value() : nullptr;
}

// apim-policies.md §7 case 38: append order follows <base/>.
TEST(PolicyRun, SetHeaderAppendFollowsBase) {
  const auto global = doc(
      R"(<policies><inbound><set-header name="X-Order" exists-action="append"><value>g</value></set-header></inbound></policies>)",
      Scope::kGlobal);
  for (
      const auto& [api_inbound, want] : std::vector<std::pair<std::string, std::string>>{
          {R"(<set-header name="X-Order" exists-action="append"><value>a</value></set-header><base/>)",
           "a,g"},
          {R"(<base/><set-header name="X-Order" exists-action="append"><value>a</value></set-header>)",
           "g,a"},
          {R"(<set-header name="X-Order" exists-action="append"><value>a</value></set-header>)",
           "a"}}) {
    const auto api =
        doc("<policies><inbound>" + api_inbound + "</inbound></policies>", Scope::kApi);
    const auto p = program({global, api});
    Fields h;
    Context ctx;
    ctx.request_headers = &h;
    EXPECT_EQ(run_section(*p, kInbound, ctx), Flow::kContinue);
    EXPECT_EQ(h.values("x-order"), std::vector<std::string>{want}) << api_inbound;
  }
}

TEST(PolicyRun, SetHeaderActionsAndMultiLineHeaders) {
  const auto p = program({doc(R"(<policies><outbound>
    <set-header name="A"><value>1</value><value>2</value></set-header>
    <set-header name="B" exists-action="skip"><value>new</value></set-header>
    <set-header name="C" exists-action="skip"><value>new</value></set-header>
    <set-header name="Server" exists-action="delete"/>
    <set-header name="Set-Cookie" exists-action="append"><value>b=2</value></set-header>
  </outbound></policies>)",
                              Scope::kApi)});
  Fields h;
  h.add("A", "0");
  h.add("B", "old");
  h.add("Server", "x");
  h.add("Set-Cookie", "a=1");
  Context ctx;
  ctx.response_headers = &h;
  EXPECT_EQ(run_section(*p, kOutbound, ctx), Flow::kContinue);
  EXPECT_EQ(h.values("A"), std::vector<std::string>{"1,2"});
  EXPECT_EQ(h.values("B"), std::vector<std::string>{"old"});
  EXPECT_EQ(h.values("C"), std::vector<std::string>{"new"});
  EXPECT_TRUE(h.values("Server").empty());
  EXPECT_EQ(h.values("Set-Cookie"), (std::vector<std::string>{"a=1", "b=2"}));
}

TEST(PolicyRun, CheckHeaderErrorsCarryLastError) {
  const auto p = program({doc(R"(<policies><inbound>
    <check-header name="Authorization" failed-check-httpcode="401" failed-check-error-message="Not authorized" ignore-case="false" id="auth"/>
    <check-header name="X-Mode" failed-check-httpcode="400" failed-check-error-message="Bad mode" ignore-case="true"><value>fast</value><value>slow</value></check-header>
  </inbound></policies>)",
                              Scope::kApi)});
  Fields h;
  Context ctx;
  ctx.request_headers = &h;
  ASSERT_EQ(run_section(*p, kInbound, ctx), Flow::kError);
  EXPECT_EQ(ctx.error->source, "check-header");
  EXPECT_EQ(ctx.error->reason, "HeaderNotFound");
  EXPECT_EQ(ctx.error->message, "Header Authorization wasn't found in the request. Access denied.");
  EXPECT_EQ((ctx.error->status), 401);
  EXPECT_EQ(ctx.error->response_message, "Not authorized");
  EXPECT_EQ(ctx.error->section, "inbound");
  EXPECT_EQ(ctx.error->scope, "api");
  EXPECT_EQ(ctx.error->path, "check-header[1]");
  EXPECT_EQ(ctx.error->policy_id, "auth");
  h.add("Authorization", "anything");
  h.add("X-Mode", "FAST");
  ctx.error.reset();
  EXPECT_EQ(run_section(*p, kInbound, ctx), Flow::kContinue);
  h.erase("X-Mode");
  h.add("X-Mode", "medium");
  ASSERT_EQ(run_section(*p, kInbound, ctx), Flow::kError);
  EXPECT_EQ(ctx.error->reason, "HeaderValueNotAllowed");
  EXPECT_EQ(ctx.error->path, "check-header[2]");
  EXPECT_EQ(ctx.error->status, 400);
}

TEST(PolicyRun, IpFilter) {
  const auto allow = program({doc(R"(<policies><inbound><ip-filter action="allow">
    <address>10.0.0.1</address><address-range from="192.168.1.0" to="192.168.1.255"/><address>::1</address>
  </ip-filter></inbound></policies>)",
                                  Scope::kApi)});
  const auto forbid = program({doc(R"(<policies><inbound><ip-filter action="forbid">
    <address>10.0.0.1</address></ip-filter></inbound></policies>)",
                                   Scope::kApi)});
  const auto run = [](const Program& p, const char* ip) {
    Context ctx;
    ctx.client_ip = ip;
    const Flow f = run_section(p, kInbound, ctx);
    return f == Flow::kContinue ? std::string("pass") : ctx.error->reason;
  };
  EXPECT_EQ(run(*allow, "10.0.0.1"), "pass");
  EXPECT_EQ(run(*allow, "192.168.1.77"), "pass");
  EXPECT_EQ(run(*allow, "::1"), "pass");
  EXPECT_EQ(run(*allow, "10.0.0.2"), "CallerIpNotAllowed");  // case 48
  EXPECT_EQ(run(*allow, "garbage"), "FailedToParseCallerIP");
  EXPECT_EQ(run(*forbid, "10.0.0.2"), "pass");
  EXPECT_EQ(run(*forbid, "10.0.0.1"), "CallerIpBlocked");
}

TEST(PolicyRun, ReturnResponseRewriteAndQuery) {
  const auto p = program({doc(R"(<policies>
  <inbound>
    <rewrite-uri template="/v2/mcp?fixed=1"/>
    <set-query-parameter name="api-version" exists-action="override"><value>2025 06</value></set-query-parameter>
    <set-query-parameter name="drop" exists-action="delete"/>
    <set-variable name="tier" value="gold"/>
    <return-response>
      <set-status code="401" reason="Unauthorized"/>
      <set-header name="WWW-Authenticate"><value>Bearer realm="mcp"</value></set-header>
    </return-response>
    <set-header name="never"><value>x</value></set-header>
  </inbound>
</policies>)",
                              Scope::kApi)});
  Fields h;
  Context ctx;
  ctx.request_headers = &h;
  ctx.path = "/old";
  ctx.query = "drop=1&keep=2";
  ASSERT_EQ(run_section(*p, kInbound, ctx), Flow::kRespond);
  EXPECT_EQ(ctx.path, "/v2/mcp");
  EXPECT_EQ(ctx.query, "fixed=1&keep=2&api-version=2025%2006");
  EXPECT_EQ(ctx.variables.at("tier"), "gold");
  EXPECT_EQ(ctx.respond->status, 401);
  EXPECT_EQ(ctx.respond->reason, "Unauthorized");
  EXPECT_FALSE(ctx.respond->body.has_value());
  ASSERT_EQ(ctx.respond->headers.size(), 1u);
  EXPECT_EQ(ctx.respond->headers[0].second, "Bearer realm=\"mcp\"");
  EXPECT_TRUE(h.values("never").empty());  // the pipeline stopped
}

TEST(PolicyRun, UnsupportedPoliciesFailCompilation) {
  std::vector<Diagnostic> errors;
  auto d = load_policy(R"(<policies><inbound>
  <return-response response-variable-name="saved"/>
</inbound><backend><forward-request follow-redirects="true"/></backend>
<outbound><set-body template="liquid">x</set-body></outbound></policies>)",
                       "u.xml", Scope::kApi, {}, errors);
  ASSERT_TRUE(errors.empty());
  auto p = compile(resolve({d}));
  ASSERT_FALSE(p);
  ASSERT_EQ(p.error().size(), 3u);
  EXPECT_EQ(p.error()[0].to_string(),
            "u.xml:2: response-variable-name of <return-response> is not supported yet");
  EXPECT_EQ(p.error()[1].message, "follow-redirects=\"true\" is not supported yet");
  EXPECT_EQ(p.error()[2].line, 4);
  // Nothing a policy writes may split a header: line breaks are refused at load.
  errors.clear();
  d = load_policy(
      "<policies><outbound><set-header name=\"X\"><value>a&#13;&#10;Injected: 1</value>"
      "</set-header><set-header name=\"Bad Name\"/></outbound></policies>",
      "h.xml", Scope::kApi, {}, errors);
  ASSERT_TRUE(errors.empty());
  p = compile(resolve({d}));
  ASSERT_FALSE(p);
  ASSERT_EQ(p.error().size(), 2u);
  EXPECT_EQ(p.error()[0].message, "header values may not hold line breaks");
  EXPECT_EQ(p.error()[1].message, "\"Bad Name\" is not a valid header name");
  // The default pipeline is just the built-in forward-request.
  auto empty = compile(resolve({}));
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty.value()->sections[1].size(), 1u);
}

TEST(PolicyRun, APolicyThatThrowsFailsClosedWith500) {
  struct Throws final : Policy {
    Flow apply(Context&) const override { throw std::runtime_error("boom"); }
  };
  Program program;
  auto p = std::make_shared<Throws>();
  p->name = "set-header";
  program.sections[0].push_back(p);
  Context ctx;
  EXPECT_EQ(run_section(program, kInbound, ctx), Flow::kError);
  ASSERT_TRUE(ctx.error);
  EXPECT_EQ(ctx.error->status, 500);
  EXPECT_EQ(ctx.error->response_message, "Internal server error");
  EXPECT_EQ(ctx.error->reason, "InternalError");
  EXPECT_EQ(ctx.error->message, "boom");
  EXPECT_EQ(ctx.error->path, "set-header[1]");
  EXPECT_TRUE(ctx.error->unexpected);
}

// Keys in memory, whose snapshot a test replaces (no keys: they never arrive; the same keys
// under another issuer).
class MemoryKeys final : public jwt::KeySource {
 public:
  MemoryKeys(std::shared_ptr<const jwt::KeySet> keys, std::string issuer) {
    set(std::move(keys), std::move(issuer));
  }
  void set(std::shared_ptr<const jwt::KeySet> keys, std::string issuer) {
    auto s = std::make_shared<jwt::KeySnapshot>();
    s->keys = std::move(keys);
    s->issuer = std::move(issuer);
    snap_ = std::move(s);
  }
  const std::string& url() const override { return url_; }
  const std::shared_ptr<const jwt::KeySnapshot>& snapshot() const override { return snap_; }
  void refresh(std::function<void()> done) override {
    if (done) done();
  }

 private:
  std::string url_ = "https://login.test/contoso.example/v2.0/.well-known/openid-configuration";
  std::shared_ptr<const jwt::KeySnapshot> snap_;
};

TEST(PolicyRun, LimitConcurrencyResumesAfterAWaitForKeys) {
  std::vector<Diagnostic> errors;
  auto d = load_policy(R"(<policies><inbound>
  <limit-concurrency key="k" max-count="5">
    <set-header name="X-Count" exists-action="append"><value>1</value></set-header>
    <validate-jwt header-name="Authorization">
      <openid-config url="https://issuer.test/.well-known/openid-configuration"/>
    </validate-jwt>
  </limit-concurrency>
</inbound></policies>)",
                       "c.xml", Scope::kApi, {}, errors);
  ASSERT_TRUE(errors.empty()) << errors[0].to_string();
  CompileEnv env;
  auto keys = std::make_shared<MemoryKeys>(nullptr, "");
  env.key_source = [keys](const std::string&) { return keys; };
  env.token_cache = std::make_shared<jwt::VerifiedTokenCache>(16);
  env.counters = make_local_counters();
  auto p = compile(resolve({d}), env);
  ASSERT_TRUE(p) << p.error()[0].to_string();
  Fields h;
  h.f.emplace_back("Authorization", "Bearer a.b.c");
  Context ctx;
  ctx.request_headers = &h;
  std::size_t position = 0;
  EXPECT_EQ(run_section(*p.value(), kInbound, ctx, position), Flow::kPending);
  EXPECT_EQ(run_section(*p.value(), kInbound, ctx, position), Flow::kError);  // still no keys
  // The step before the validator ran once, not again after the wait.
  EXPECT_EQ(h.values("X-Count"), std::vector<std::string>{"1"});
  EXPECT_EQ(ctx.error->reason, "TokenSignatureKeyNotFound");
}

// Runs `program`'s inbound section on a request carrying `token`: "" when it passes, else the
// refusal's reason.
std::string inbound_outcome(const Program& program, const std::string& token) {
  Fields h;
  h.f.emplace_back("Authorization", "Bearer " + token);
  Context ctx;
  ctx.request_headers = &h;
  if (run_section(program, kInbound, ctx) == Flow::kContinue) return "";
  return ctx.error ? ctx.error->reason : "no error";
}

// Requirements made from the discovery document's issuer are kept per issuer, never per key set:
// the same keys under another issuer refuse a token that passed (and was remembered) before.
TEST(PolicyRun, RequirementsFromTheIssuerFollowTheIssuer) {
  const double now = 1'800'000'000;
  const std::string tid_a = "11111111-1111-1111-1111-111111111111";
  const std::string tid_b = "22222222-2222-2222-2222-222222222222";
  const std::string base = "https://login.test/";
  auto keys = std::make_shared<const jwt::KeySet>(jwt::testing::standard_keys());
  auto source = std::make_shared<MemoryKeys>(keys, base + tid_a + "/v2.0");
  CompileEnv env;
  env.key_source = [source](const std::string&) { return source; };
  env.token_cache = std::make_shared<jwt::VerifiedTokenCache>(16);
  env.now = [now] { return now; };
  env.default_authority = "https://login.test";
  auto claims = [&](const std::string& tid) {
    return R"({"iss":")" + base + tid + R"(/v2.0","tid":")" + tid +
           R"(","ver":"2.0","aud":"api://app","azp":"client","exp":)" +
           std::to_string(static_cast<long>(now) + 600) + "}";
  };
  const auto token_a = jwt::testing::token(R"({"kid":"rsa-a"})", claims(tid_a));
  const auto token_b = jwt::testing::token(R"({"kid":"rsa-a"})", claims(tid_b));

  for (const std::string policy : {
           R"(<policies><inbound>
  <validate-azure-ad-token tenant-id="contoso.example">
    <audiences><audience>api://app</audience></audiences>
  </validate-azure-ad-token></inbound></policies>)",
           R"(<policies><inbound>
  <validate-jwt header-name="Authorization">
    <openid-config url="https://login.test/contoso.example/v2.0/.well-known/openid-configuration"/>
    <audiences><audience>api://app</audience></audiences>
  </validate-jwt></inbound></policies>)"}) {
    SCOPED_TRACE(policy);
    source->set(keys, base + tid_a + "/v2.0");
    auto p = compile(resolve({doc(policy, Scope::kApi)}), env);
    ASSERT_TRUE(p) << p.error()[0].to_string();
    EXPECT_EQ(inbound_outcome(*p.value(), token_a), "");
    EXPECT_EQ(inbound_outcome(*p.value(), token_a), "");  // remembered
    EXPECT_NE(inbound_outcome(*p.value(), token_b), "");
    source->set(keys, base + tid_b + "/v2.0");  // the same keys, another tenant's issuer
    EXPECT_EQ(inbound_outcome(*p.value(), token_a), "TokenIssuerNotAllowed");
    EXPECT_EQ(inbound_outcome(*p.value(), token_b), "");
    EXPECT_EQ(inbound_outcome(*p.value(), token_b), "");
    source->set(keys, base + tid_a + "/v2.0");
    EXPECT_EQ(inbound_outcome(*p.value(), token_a), "");
    EXPECT_EQ(inbound_outcome(*p.value(), token_b), "TokenIssuerNotAllowed");
  }
}

}  // namespace
}  // namespace mcpgate::policy
