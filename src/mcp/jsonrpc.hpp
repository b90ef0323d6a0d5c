// mcp: what the gateway reads of an MCP message body: the JSON-RPC 2.0 envelope of a client's
// POST (method, and the tool a tools/call names). The body is never changed here.
#pragma once

#include <string>
#include <string_view>

namespace mcpgate::mcp {

struct RequestInfo {
  enum class Kind {
    kNotJsonRpc,    // not JSON, or not a JSON-RPC 2.0 object
    kRequest,       // has a method and an id
    kNotification,  // has a method and no id
    kResponse,      // result or error: the client answering a server request
    kBatch,         // a JSON array (MCP 2025-03-26 allowed batches; later revisions do not)
  };
  Kind kind = Kind::kNotJsonRpc;
  std::string method;  // as sent (requests and notifications)
  std::string tool;    // tools/call: params.name
};

// Reads the envelope of one POST body. Never fails: what it cannot read is kNotJsonRpc.
RequestInfo inspect_request(std::string_view body);

// The method as a metrics label: the methods the MCP specification defines keep their name,
// anything else (client-chosen, so unbounded) is "(other)".
std::string_view method_label(const RequestInfo& info);

}  // namespace mcpgate::mcp
