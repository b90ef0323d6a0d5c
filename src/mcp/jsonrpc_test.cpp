#include "mcp/jsonrpc.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mcpgate::mcp
