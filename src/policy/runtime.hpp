// policy: running a resolved pipeline. Policies are compiled once from the loaded elements
// (registry in runtime.cpp), immutable and shared by every request; each request has its own
// Context. No sockets: the proxy hands header access in through HeaderMap.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "policy/document.hpp"

namespace mcpgate::policy {

// The header fields of a request or response as the proxy holds them.
class HeaderMap {
 public:
  virtual ~HeaderMap() = default;
  virtual std::vector<std::string> values(std::string_view name) const = 0;  // one per field line
  virtual void erase(std::string_view name) = 0;
  virtual void add(std::string_view name, std::string_view value) = 0;
};

// Header fields as a plain list, for responses the pipeline makes itself.
class FieldList final : public HeaderMap {
 public:
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<std::string> values(std::string_view name) const override;
  void erase(std::string_view name) override;
  void add(std::string_view name, std::string_view value) override;
};

// APIM's context.LastError, plus the answer the caller gets when on-error does not replace it.
struct LastError {
  std::string source;   // the policy name, or a built-in step
  std::string reason;   // e.g. HeaderNotFound
  std::string message;  // for on-error and the log, not the response body
  std::string scope;    // global, api, …
  std::string section;  // inbound, backend, outbound, on-error
  std::string path;     // the policy's place, e.g. "check-header[1]"
  std::string policy_id;
  int status = 500;              // the answer's status …
  std::string response_message;  // … and its body's message
};

// A response the pipeline makes itself (return-response, mock-response).
struct LocalResponse {
  int status = 200;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> body;
};

struct Context {
  // The request (inbound, backend).
  std::string method;
  std::string path;   // the backend path after the API's prefix rule; rewrite-uri changes it
  std::string query;  // without '?'
  std::string client_ip;
  HeaderMap* request_headers = nullptr;
  // The response (outbound, on-error).
  int status = 0;
  std::string reason;
  HeaderMap* response_headers = nullptr;
  std::optional<std::string> response_body;  // set-body: replaces the body
  // Flow.
  std::optional<LocalResponse> respond;
  std::optional<LastError> error;
  std::map<std::string, std::string, std::less<>> variables;
  // The backend section's forward-request, when one runs.
  bool forward = false;
  std::chrono::milliseconds forward_timeout{0};  // 0: the backend's own response timeout
};

enum class Flow { kContinue, kRespond, kError };

class Policy {
 public:
  virtual ~Policy() = default;
  virtual Flow apply(Context& ctx) const = 0;
  std::string name;
  std::string id;
  Scope scope = Scope::kApi;
  int index = 1;  // 1-based position among same-named siblings, for LastError.Path
};

struct Program {
  std::array<std::vector<std::shared_ptr<const Policy>>, 4> sections;
  bool empty() const;
};

// Compiles every step; a policy mcpgate cannot run yet is a diagnostic (fail closed). The
// built-in default <forward-request/> compiles like any other.
core::Result<std::shared_ptr<const Program>, std::vector<Diagnostic>> compile(
    const Pipeline& pipeline);

// Runs one section. On kError, ctx.error holds LastError with section, scope and path filled.
Flow run_section(const Program& program, Section section, Context& ctx);

// The header names APIM writes as separate lines rather than joining values with commas.
bool multi_line_header(std::string_view name);

}  // namespace mcpgate::policy
