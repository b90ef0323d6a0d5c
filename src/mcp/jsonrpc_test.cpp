#include "mcp/jsonrpc.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/json.hpp"

namespace mcpgate::mcp {
namespace {

using Kind = RequestInfo::Kind;

TEST(JsonRpc, ToolsCallNamesTheTool) {
  const auto info = inspect_request(
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}})");
  EXPECT_EQ(info.kind, Kind::kRequest);
  EXPECT_EQ(info.method, "tools/call");
  EXPECT_EQ(info.tool, "echo");
  EXPECT_EQ(method_label(info), "tools/call");
}

TEST(JsonRpc, NotificationsHaveNoId) {
  const auto info = inspect_request(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(info.kind, Kind::kNotification);
  EXPECT_EQ(info.tool, "");
  EXPECT_EQ(method_label(info), "notifications/initialized");
}

TEST(JsonRpc, ResponsesBatchesAndOtherBodies) {
  EXPECT_EQ(inspect_request(R"({"jsonrpc":"2.0","id":1,"result":{}})").kind, Kind::kResponse);
  EXPECT_EQ(inspect_request(R"({"jsonrpc":"2.0","id":1,"error":{"code":1}})").kind,
            Kind::kResponse);
  EXPECT_EQ(inspect_request(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])").kind, Kind::kBatch);
  EXPECT_EQ(inspect_request(R"({"jsonrpc":"1.0","id":1,"method":"ping"})").kind, Kind::kNotJsonRpc);
  EXPECT_EQ(inspect_request("not json").kind, Kind::kNotJsonRpc);
  EXPECT_EQ(inspect_request("").kind, Kind::kNotJsonRpc);
  EXPECT_EQ(inspect_request(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]})").tool,
            "");
  // A duplicate "method" could make the gateway and the server disagree on what was called.
  EXPECT_EQ(
      inspect_request(R"({"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"})").kind,
      Kind::kNotJsonRpc);
}

TEST(JsonRpc, UnknownMethodsShareOneLabel) {
  EXPECT_EQ(method_label(inspect_request(R"({"jsonrpc":"2.0","id":1,"method":"x/y"})")), "(other)");
  EXPECT_EQ(method_label(inspect_request("[]")), "(batch)");
  EXPECT_EQ(method_label(inspect_request("{}")), "(none)");
}

TEST(JsonRpc, EscapesAreReadAsAServerReadsThem) {
  const auto info = inspect_request(
      R"({"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"n\u0061me":"ec\u0068o"}})");
  EXPECT_EQ(info.kind, Kind::kRequest);
  EXPECT_EQ(info.method, "tools/call");
  EXPECT_EQ(info.tool, "echo");
}

TEST(JsonRpc, ANameTwiceWhereTheGatewayReadsMakesTheBodyUnreadable) {
  // In the envelope, even when only unescaping shows the repeat.
  EXPECT_EQ(inspect_request(R"({"jsonrpc":"2.0","id":1,"method":"ping","m\u0065thod":"x"})").kind,
            Kind::kNotJsonRpc);
  // In a tools/call's params: which tool is called must not depend on the reader.
  const auto twice = inspect_request(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}})");
  EXPECT_EQ(twice.kind, Kind::kNotJsonRpc);
  EXPECT_EQ(twice.method, "");
  EXPECT_EQ(twice.tool, "");
  // Deeper (a tool's own arguments), names are not compared: the method and tool read the same
  // whichever member a server keeps.
  const auto deep = inspect_request(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}})");
  EXPECT_EQ(deep.kind, Kind::kRequest);
  EXPECT_EQ(deep.tool, "echo");
}

TEST(JsonRpc, ABodyThatIsNotWholeJsonIsNotRead) {
  for (
      const char* bad :
      {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"t":[1,]}}})",
       R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":"\ud800"}})",
       R"({"jsonrpc":"2.0","id":1,"method":"ping"} {"more":1})",
       R"({"jsonrpc":"2.0","id":01,"method":"ping"})",
       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}"}) {
    EXPECT_EQ(inspect_request(bad).kind, Kind::kNotJsonRpc) << bad;
  }
  std::string deep = R"({"jsonrpc":"2.0","id":1,"method":"ping","params":)";
  deep += std::string(64, '[') + std::string(64, ']') + "}";
  EXPECT_EQ(inspect_request(deep).kind, Kind::kNotJsonRpc);  // deeper than 64 levels
}

// How the envelope read when the whole body was parsed into a document first (the reading before
// the scan): the reference the scan is held to.
RequestInfo read_whole(std::string_view body, bool reject_duplicates) {
  RequestInfo info;
  core::JsonLimits limits;
  limits.max_bytes = body.size();
  limits.max_depth = 64;
  limits.reject_duplicate_keys = reject_duplicates;
  auto parsed = core::parse_json(body, limits);
  if (!parsed) return info;
  const core::Json& msg = parsed.value();
  if (msg.is_array()) {
    info.kind = Kind::kBatch;
    return info;
  }
  const auto* version = msg.is_object() ? msg.find_string("jsonrpc") : nullptr;
  if (!version || *version != "2.0") return info;
  if (const auto* method = msg.find_string("method")) {
    info.method = *method;
    info.kind = msg.find("id") ? Kind::kRequest : Kind::kNotification;
    if (*method == "tools/call") {
      if (const auto* params = msg.find("params"); params && params->is_object()) {
        if (const auto* name = params->find_string("name")) info.tool = *name;
      }
    }
    return info;
  }
  if (msg.find("result") || msg.find("error")) info.kind = Kind::kResponse;
  return info;
}

// Mutated bodies: where the whole-document reading accepts a body, the scan reads it the same;
// where the scan reads more, it is only because a name repeats below where the gateway reads
// (the document then parses with duplicates allowed, and reads the same).
TEST(JsonRpc, TheScanReadsAsTheWholeDocumentWould) {
  const std::vector<std::string> seeds = {
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,2.5e1]}}})",
      R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
      R"({"jsonrpc":"2.0","id":"x","result":{"content":[{"type":"text","text":"a\"b"}]}})",
      R"({"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"no"}})",
      R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])",
      R"({"jsonrpc":"2.0","id":2,"method":"tools\/call","params":{"name":"\u0065cho"}})",
  };
  const std::string alphabet = "{}[]\":,\\u0123456789aemnost/ \x80\xc3";
  std::mt19937 rng(7);
  int compared = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string body = seeds[rng() % seeds.size()];
    for (int edits = 1 + static_cast<int>(rng() % 2); edits > 0 && !body.empty(); --edits) {
      const std::size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          body.insert(body.begin() + static_cast<std::ptrdiff_t>(at),
                      alphabet[rng() % alphabet.size()]);
          break;
        default: {
          const std::size_t from = rng() % body.size();
          body.insert(at, body.substr(from, 1 + rng() % 16));
        }
      }
    }
    const auto got = inspect_request(body);
    core::JsonLimits strict;
    strict.max_bytes = body.size();
    strict.max_depth = 64;
    const RequestInfo want = core::parse_json(body, strict)  ? read_whole(body, true)
                             : got.kind != Kind::kNotJsonRpc ? read_whole(body, false)
                                                             : got;
    ASSERT_EQ(got.kind, want.kind) << body;
    ASSERT_EQ(got.method, want.method) << body;
    ASSERT_EQ(got.tool, want.tool) << body;
    compared += got.kind != Kind::kNotJsonRpc;
  }
  EXPECT_GT(compared, 1000);
}

}  // namespace
}  // namespace mcpgate::mcp
