#include "config/config.hpp"

#include <gtest/gtest.h>

namespace mcpgate::config {
namespace {

TEST(Config, ReadsAFullFile) {
  ::setenv("MCPGATE_TEST_SECRET", "s3cr3t", 1);
  auto r = parse(R"(
listeners:
  - {address: 127.0.0.1, port: 8080}
  - address: "::1"
    port: 8443
    tls: {cert: server.pem, key: server-key.pem}
admin: {address: 127.0.0.1, port: 9901}
named_values:
  aad-tenant-id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  client-secret: {env: MCPGATE_TEST_SECRET, secret: true}
backends:
  mcp: {url: "http://127.0.0.1:3000", response_timeout_ms: 1000}
apis:
  - {name: mcp, path: /mcp, type: mcp, backend: mcp, strip_prefix: true, allowed_origins: ["https://app.example"],
     allowed_hosts: [localhost, "127.0.0.1:8080"], sse_keepalive_ms: 15000, request_timeout_ms: 0}
  - {path: /, backend: mcp, policy: policies/api.xml}
policy: /etc/mcpgate/global.xml
policy_fragments: fragments
limits: {max_body_bytes: 1024, header_timeout_ms: 500, request_timeout_ms: 30000}
workers: 2
access_log: "off"
)",
                 "gw.yaml");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  const Config& c = r.config;
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[1].tls->cert_file, "server.pem");
  EXPECT_EQ(c.admin->port, 9901);
  EXPECT_EQ(c.named_values.at("client-secret").value, "s3cr3t");
  EXPECT_TRUE(c.named_values.at("client-secret").secret);
  EXPECT_EQ(c.backends[0].response_timeout.count(), 1000);
  EXPECT_EQ(c.apis[0].type, "mcp");
  EXPECT_TRUE(c.apis[0].strip_prefix);
  EXPECT_EQ(c.apis[0].allowed_origins.at(0), "https://app.example");
  EXPECT_EQ(c.apis[0].allowed_hosts.at(1), "127.0.0.1:8080");
  EXPECT_EQ(c.apis[0].sse_keepalive.count(), 15000);
  EXPECT_EQ(c.apis[0].request_timeout.count(), 0);
  EXPECT_EQ(c.apis[1].request_timeout.count(), -1);  // inherits limits.request_timeout_ms
  EXPECT_EQ(c.limits.request_timeout.count(), 30000);
  EXPECT_EQ(c.apis[1].name, "api1");
  EXPECT_EQ(c.apis[1].policy, "policies/api.xml");  // "gw.yaml" has no folder
  EXPECT_EQ(c.policy, "/etc/mcpgate/global.xml");
  EXPECT_EQ(c.policy_fragments, "fragments");
  EXPECT_EQ(c.limits.max_body_bytes, 1024u);
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.access_log, "off");
}

TEST(Config, ReportsEveryErrorWithItsLine) {
  auto r = parse(R"(listeners:
  - {address: 127.0.0.1, prot: 8080}
backends:
  mcp: {url: "ftp://x", timeout: 3}
apis:
  - {path: mcp/, backend: nope, type: grpc}
  - {path: /a, backend: mcp, policy: p.xml, allowed_hosts: "x", sse_keepalive_ms: 5}
named_values:
  bad name: x
  twice: {value: a, env: B}
limits: {max_header_bytes: 10}
colour: blue
)",
                 "bad.yaml");
  ASSERT_FALSE(r.ok());
  std::string all;
  for (const auto& d : r.errors) all += d.to_string() + "\n";
  for (const char* expected : {
           "bad.yaml:2: unknown key \"prot\" in listeners[0]",
           "bad.yaml:2: listeners[0] needs a port",
           "bad.yaml:4: unknown key \"timeout\" in backend \"mcp\"",
           "bad.yaml:4: backend \"mcp\".url must start with http:// or https://",
           "bad.yaml:6: apis[0].path must start with '/'",
           "bad.yaml:6: apis[0].type must be http or mcp",
           "bad.yaml:6: apis[0]: no backend named \"nope\"",
           "bad.yaml:7: apis[1].allowed_hosts must be a list",
           "bad.yaml:7: apis[1].sse_keepalive_ms must be 0 (off) or at least 100",
           "bad.yaml:9: named value \"bad name\": names may hold",
           "bad.yaml:10: named value \"twice\" needs exactly one of value, env or file",
           "bad.yaml:11: limits.max_header_bytes must be between 1024 and 1048576",
           "bad.yaml:12: unknown key \"colour\" in the configuration",
       }) {
    EXPECT_NE(all.find(expected), std::string::npos) << "missing: " << expected << "\nall:\n"
                                                     << all;
  }
}

TEST(Config, TokenCacheEntries) {
  const std::string base = R"(listeners: [{address: 127.0.0.1, port: 8080}]
backends: {b: {url: "http://127.0.0.1:3000"}}
apis: [{path: /, backend: b}]
)";
  auto defaults = parse(base, "a.yaml");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults.config.entra.token_cache_entries, 4096u);
  auto off = parse(base + "entra: {token_cache_entries: 0}\n", "a.yaml");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off.config.entra.token_cache_entries, 0u);
  auto bad = parse(base + "entra: {token_cache_entries: -1}\n", "a.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.errors.at(0).to_string().find("entra.token_cache_entries"), std::string::npos);
}

TEST(Config, SyntaxAndMissingSections) {
  auto r = parse("listeners: [\n", "x.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("YAML syntax error"), std::string::npos);
  r = parse("workers: 1\n", "y.yaml");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_NE(r.errors[0].message.find("listeners is missing"), std::string::npos);
  EXPECT_NE(r.errors[1].message.find("apis is missing"), std::string::npos);
  EXPECT_FALSE(load("/nonexistent/gw.yaml").ok());
}

}  // namespace
}  // namespace mcpgate::config
