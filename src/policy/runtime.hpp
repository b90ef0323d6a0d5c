// policy: running a resolved pipeline. Policies are compiled once from the loaded elements
// (registry in runtime.cpp), immutable and shared by every request; each request has its own
// Context. No sockets: the proxy hands header access in through HeaderMap.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "core/result.hpp"
#include "jwt/cache.hpp"
#include "jwt/key_source.hpp"
#include "policy/counters.hpp"
#include "policy/document.hpp"

namespace mcpgate::policy {

// The header fields of a request or response as the proxy holds them.
class HeaderMap {
 public:
  virtual ~HeaderMap() = default;
  virtual std::vector<std::string> values(std::string_view name) const = 0;  // one per field line
  // The first line's value, without a copy: valid until the fields change.
  virtual std::optional<std::string_view> first(std::string_view name) const = 0;
  virtual void erase(std::string_view name) = 0;
  virtual void add(std::string_view name, std::string_view value) = 0;
};

// Header fields as a plain list, for responses the pipeline makes itself.
class FieldList final : public HeaderMap {
 public:
  std::vector<std::pair<std::string, std::string>> fields;
  std::vector<std::string> values(std::string_view name) const override;
  std::optional<std::string_view> first(std::string_view name) const override;
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
  bool log_message = false;      // the message is safe for the access log (no header values)
  bool unexpected = false;       // not a policy's verdict: the answer carries an activityId
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
  std::string activity_id;  // the request's id, for unexpected failures' answers
  // The request (inbound, backend).
  std::string method;
  std::string path;   // the backend path after the API's prefix rule; rewrite-uri changes it
  std::string query;  // without '?'
  std::string client_ip;
  HeaderMap* request_headers = nullptr;
  std::optional<std::string> request_body;  // set-body in inbound/backend: replaces the body
  // The response (outbound, on-error).
  int status = 0;
  std::string reason;
  HeaderMap* response_headers = nullptr;
  std::optional<std::string> response_body;  // set-body: replaces the body
  // Flow.
  std::optional<LocalResponse> respond;
  std::optional<LastError> error;
  std::map<std::string, std::string, std::less<>> variables;
  // Token validation: each validating policy's outcome (its name, and "valid" or APIM's reason:
  // static text), the last token that passed (its claims: the client application for the log),
  // and the wait a policy asks for when it needs keys it does not have yet (Flow::kPending): the
  // proxy calls `pending` with a callback that resumes the request, then runs the policy again.
  using Validations =
      boost::container::small_vector<std::pair<std::string_view, std::string_view>, 2>;
  Validations validations;
  jwt::VerifiedTokenPtr token;
  std::function<void(std::function<void()> resume)> pending;
  int key_waits = 0;  // at most one wait for keys per request
  // The backend section's forward-request, when one runs.
  bool forward = false;
  std::chrono::milliseconds forward_timeout{0};  // 0: the backend's own response timeout
  bool fail_on_error_status = false;             // a 4xx/5xx answer runs on-error
  // set-backend-service: a backend by name, or a base URL the gateway prepared at load.
  std::string backend_id;
  std::string backend_url;
  // Header fields every answer to the caller carries (rate-limit and CORS headers), whoever
  // makes it: the backend, return-response or on-error. A field the answer has already wins.
  std::vector<std::pair<std::string, std::string>> answer_headers;
  // CORS: the request is a preflight (OPTIONS with Origin and Access-Control-Request-Method);
  // inbound then runs only its cors policies, as APIM does.
  bool preflight = false;
  // Called once the answer is sent, with the bytes of the request body and the answer
  // (bandwidth quotas).
  std::vector<std::function<void(std::uint64_t bytes)>> on_done;
  // Where a policy holding others (limit-concurrency) resumes after a wait for keys.
  std::map<const void*, std::size_t> resume_at;  // by the holding policy
  // Held until the request ends (limit-concurrency slots): released when the Context goes.
  std::vector<std::shared_ptr<void>> holds;
};

enum class Flow { kContinue, kRespond, kError, kPending };

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
  bool inbound_cors = false;       // a cors policy in inbound: preflights run only those
  bool sets_request_body = false;  // set-body in inbound or backend: the proxy reads bodies whole
};

// What compiled policies may use from the gateway.
struct CompileEnv {
  // Keys behind an OpenID configuration URL, shared by every policy naming it.
  std::function<std::shared_ptr<jwt::KeySource>(const std::string& url)> key_source;
  // validate-azure-ad-token's authority when the policy names no authentication-endpoint.
  std::string default_authority = "https://login.microsoftonline.com";
  std::shared_ptr<jwt::VerifiedTokenCache> token_cache;  // shared by every validating policy
  std::function<double()> now;                           // seconds since the epoch
  std::shared_ptr<CounterStore> counters;  // rate-limit-by-key, quota-by-key, limit-concurrency
  // set-backend-service: why a backend-id (by_id) or base-url cannot be used; empty when it can.
  std::function<std::string(bool by_id, const std::string& value)> backend_known;
};

// Compiles every step; a policy mcpgate cannot run yet is a diagnostic (fail closed). The
// built-in default <forward-request/> compiles like any other.
core::Result<std::shared_ptr<const Program>, std::vector<Diagnostic>> compile(
    const Pipeline& pipeline, const CompileEnv& env = {});

// Runs one section from `position` (0 to start). On kError, ctx.error holds LastError with
// section, scope and path filled; on kPending, `position` is where to run again after the wait.
Flow run_section(const Program& program, Section section, Context& ctx, std::size_t& position);
inline Flow run_section(const Program& program, Section section, Context& ctx) {
  std::size_t position = 0;
  return run_section(program, section, ctx, position);
}

// The header names APIM writes as separate lines rather than joining values with commas.
bool multi_line_header(std::string_view name);

}  // namespace mcpgate::policy
