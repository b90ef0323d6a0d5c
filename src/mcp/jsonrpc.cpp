#include "mcp/jsonrpc.hpp"

#include "core/json.hpp"

namespace mcpgate::mcp {

RequestInfo inspect_request(std::string_view body) {
  RequestInfo info;
  core::JsonLimits limits;
  limits.max_bytes = body.size();  // the caller has already bounded the body
  limits.max_depth = 64;
  const auto first = body.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && body[first] == '[') {
    if (core::parse_json(body, limits)) info.kind = RequestInfo::Kind::kBatch;
    return info;
  }
  // The envelope's members as written (empty: absent), read without building the rest: a
  // tools/call's arguments may be large. A name twice in the envelope (or in a tools/call's
  // params) makes the body unreadable, so the gateway never reads another method or tool than a
  // server keeping the last member would.
  struct Envelope {
    std::string_view jsonrpc, method, id, params, result, error;
  } m;
  const auto keep = [&m](std::string_view name, std::string_view value) {
    if (name == "jsonrpc") m.jsonrpc = value;
    if (name == "method") m.method = value;
    if (name == "id") m.id = value;
    if (name == "params") m.params = value;
    if (name == "result") m.result = value;
    if (name == "error") m.error = value;
  };
  if (!core::scan_object(body, limits, keep)) return info;
  const auto version = core::json_string(m.jsonrpc);
  if (!version || *version != "2.0") return info;
  if (auto method = core::json_string(m.method)) {
    if (*method == "tools/call" && !m.params.empty() && m.params.front() == '{') {
      std::string_view name;
      if (!core::scan_object(m.params, limits, [&name](std::string_view n, std::string_view v) {
            if (n == "name") name = v;
          }))
        return info;
      if (auto tool = core::json_string(name)) info.tool = std::move(*tool);
    }
    info.kind = m.id.empty() ? RequestInfo::Kind::kNotification : RequestInfo::Kind::kRequest;
    info.method = std::move(*method);
    return info;
  }
  if (!m.result.empty() || !m.error.empty()) info.kind = RequestInfo::Kind::kResponse;
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
