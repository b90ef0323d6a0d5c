#include "mcp/jsonrpc.hpp"

#include "core/json.hpp"

namespace mcpgate::mcp {

RequestInfo inspect_request(std::string_view body) {
  RequestInfo info;
  core::JsonLimits limits;
  limits.max_bytes = body.size();  // the caller has already bounded the body
  limits.max_depth = 64;
  auto parsed = core::parse_json(body, limits);
  if (!parsed) return info;
  const core::Json& msg = parsed.value();
  if (msg.is_array()) {
    info.kind = RequestInfo::Kind::kBatch;
    return info;
  }
  const auto* version = msg.is_object() ? msg.find_string("jsonrpc") : nullptr;
  if (!version || *version != "2.0") return info;
  if (const auto* method = msg.find_string("method")) {
    info.method = *method;
    info.kind = msg.find("id") ? RequestInfo::Kind::kRequest : RequestInfo::Kind::kNotification;
    if (*method == "tools/call") {
      if (const auto* params = msg.find("params"); params && params->is_object()) {
        if (const auto* name = params->find_string("name")) info.tool = *name;
      }
    }
    return info;
  }
  if (msg.find("result") || msg.find("error")) info.kind = RequestInfo::Kind::kResponse;
  return info;
}

std::string_view method_label(const RequestInfo& info) {
  switch (info.kind) {
    case RequestInfo::Kind::kNotJsonRpc:
      return "(none)";
    case RequestInfo::Kind::kResponse:
      return "(response)";
    case RequestInfo::Kind::kBatch:
      return "(batch)";
    default:
      break;
  }
  // Client-to-server methods and notifications of MCP 2025-03-26 through 2025-11-25.
  static constexpr std::string_view kKnown[] = {
      "initialize",
      "ping",
      "tools/list",
      "tools/call",
      "resources/list",
      "resources/templates/list",
      "resources/read",
      "resources/subscribe",
      "resources/unsubscribe",
      "prompts/list",
      "prompts/get",
      "completion/complete",
      "logging/setLevel",
      "tasks/get",
      "tasks/result",
      "tasks/list",
      "tasks/cancel",
      "notifications/initialized",
      "notifications/cancelled",
      "notifications/progress",
      "notifications/roots/list_changed",
      "notifications/tasks/status",
      "notifications/elicitation/complete",
      "notifications/message",
  };
  for (const auto m : kKnown) {
    if (m == info.method) return m;
  }
  return "(other)";
}

}  // namespace mcpgate::mcp
