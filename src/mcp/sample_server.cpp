#include "mcp/sample_server.hpp"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <variant>

#include "core/json.hpp"
#include "core/strings.hpp"
#include "core/time.hpp"

namespace mcpgate::mcp {

namespace {

using core::Json;
using core::JsonArray;
using core::JsonObject;

constexpr std::string_view kVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
constexpr std::string_view kLatest = kVersions[0];

// A 1×1 PNG and a short 8 kHz WAV, made for this server.
constexpr std::string_view kPng =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgqLgCAAHIAU3MyLxFAAAAAElFTkSuQmCC";
constexpr std::string_view kWav =
    "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YRAAAACAoIBggKCAYICggGCAoIBg";

Json obj(std::initializer_list<std::pair<std::string, Json>> members) {
  JsonObject o;
  for (const auto& m : members) o.emplace_back(m.first, m.second);
  return Json(std::move(o));
}
Json str(std::string_view s) { return Json(std::string(s)); }
Json num(double v) { return Json::number(v); }
Json arr(JsonArray a) { return Json(std::move(a)); }
Json schema(std::string_view text) { return core::parse_json(text).value(); }

Json text_content(std::string_view t) { return obj({{"type", str("text")}, {"text", str(t)}}); }
Json image_content() {
  return obj({{"type", str("image")}, {"data", str(kPng)}, {"mimeType", str("image/png")}});
}
Json audio_content() {
  return obj({{"type", str("audio")}, {"data", str(kWav)}, {"mimeType", str("audio/wav")}});
}
Json text_resource(std::string_view uri, std::string_view text) {
  return obj({{"uri", str(uri)}, {"mimeType", str("text/plain")}, {"text", str(text)}});
}
Json blob_resource(std::string_view uri, std::string_view mime, std::string_view base64) {
  return obj({{"uri", str(uri)}, {"mimeType", str(mime)}, {"blob", str(base64)}});
}
Json embedded(Json resource) { return obj({{"type", str("resource")}, {"resource", resource}}); }

// What a handler may send before its answer: notifications that turn the answer into an event
// stream.
struct Call {
  const Json& params;
  JsonArray notifications;

  const Json* arg(std::string_view name) const {
    const Json* args = params.find("arguments");
    return args && args->is_object() ? args->find(name) : nullptr;
  }
  void notify(std::string method, Json p) {
    notifications.push_back(
        obj({{"jsonrpc", str("2.0")}, {"method", Json(std::move(method))}, {"params", p}}));
  }
  void log(std::string_view level, std::string_view message) {
    notify("notifications/message",
           obj({{"level", str(level)}, {"logger", str("sample-server")}, {"data", str(message)}}));
  }
  void progress(double done, double total, std::string_view message) {
    const Json* meta = params.find("_meta");
    const Json* token = meta && meta->is_object() ? meta->find("progressToken") : nullptr;
    if (!token) return;
    notify("notifications/progress", obj({{"progressToken", *token},
                                          {"progress", num(done)},
                                          {"total", num(total)},
                                          {"message", str(message)}}));
  }
};

struct RpcError {
  int code;
  std::string message;
};
struct Deferred;
// A result, an error, or a question for the client whose answer finishes the call.
using Outcome = std::variant<Json, RpcError, std::shared_ptr<Deferred>>;
struct Deferred {
  std::string method;  // sampling/createMessage, elicitation/create
  Json params;
  std::function<Outcome(const Json& reply)> finish;  // given the client's JSON-RPC response
};

Outcome ask(std::string method, Json params, std::function<Outcome(const Json&)> finish) {
  return std::make_shared<Deferred>(
      Deferred{std::move(method), std::move(params), std::move(finish)});
}

Outcome tool_result(JsonArray content, bool is_error = false) {
  JsonObject o;
  o.emplace_back("content", Json(std::move(content)));
  if (is_error) o.emplace_back("isError", Json(true));
  return Json(std::move(o));
}

struct Tool {
  std::string name;
  std::string description;
  Json input_schema;
  std::function<Outcome(Call&)> run;
};

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<Tool> make_tools() {
  const Json no_args = schema(R"({"type":"object","properties":{}})");
  std::vector<Tool> t;
  // For the demo.
  t.push_back({"echo", "Returns the message it is given.",
               schema(R"({"type":"object","properties":{"message":{"type":"string",)"
                      R"("description":"What to echo"}},"required":["message"]})"),
               [](Call& c) -> Outcome {
                 const Json* m = c.arg("message");
                 if (!m || !m->is_string()) return RpcError{-32602, "echo needs a string message"};
                 return tool_result({text_content(m->as_string())});
               }});
  t.push_back({"add", "Adds two numbers.",
               schema(R"({"type":"object","properties":{"a":{"type":"number"},)"
                      R"("b":{"type":"number"}},"required":["a","b"]})"),
               [](Call& c) -> Outcome {
                 const Json* a = c.arg("a");
                 const Json* b = c.arg("b");
                 if (!a || !b || !a->is_number() || !b->is_number())
                   return RpcError{-32602, "add needs numbers a and b"};
                 return tool_result({text_content(
                     Json::number(a->as_number().value + b->as_number().value).dump())});
               }});
  t.push_back({"time", "The server's time, UTC, ISO 8601.", no_args, [](Call&) -> Outcome {
                 return tool_result({text_content(core::format_utc(now_seconds()))});
               }});
  // The conformance suite's server scenarios.
  t.push_back({"test_simple_text", "Returns simple text content.", no_args, [](Call&) -> Outcome {
                 return tool_result({text_content("This is a simple text response for testing.")});
               }});
  t.push_back({"test_image_content", "Returns an image.", no_args,
               [](Call&) -> Outcome { return tool_result({image_content()}); }});
  t.push_back({"test_audio_content", "Returns audio.", no_args,
               [](Call&) -> Outcome { return tool_result({audio_content()}); }});
  t.push_back(
      {"test_embedded_resource", "Returns an embedded resource.", no_args, [](Call&) -> Outcome {
         return tool_result({embedded(
             text_resource("test://embedded-resource", "This is an embedded resource content."))});
       }});
  t.push_back({"test_multiple_content_types", "Returns text, an image and a resource.", no_args,
               [](Call&) -> Outcome {
                 return tool_result({text_content("Multiple content types test:"), image_content(),
                                     embedded(text_resource("test://mixed-content-resource",
                                                            "{\"test\":\"data\",\"value\":123}"))});
               }});
  t.push_back({"test_tool_with_logging", "Sends log messages while it runs.", no_args,
               [](Call& c) -> Outcome {
                 c.log("info", "Tool execution started");
                 c.log("info", "Tool processing data");
                 c.log("info", "Tool execution completed");
                 return tool_result({text_content("Tool with logging executed successfully")});
               }});
  t.push_back({"test_tool_with_progress", "Reports progress while it runs.", no_args,
               [](Call& c) -> Outcome {
                 c.progress(0, 100, "Starting");
                 c.progress(50, 100, "Halfway");
                 c.progress(100, 100, "Done");
                 return tool_result({text_content("Progress test completed")});
               }});
  // Tools that ask the client something (sampling, elicitation) before they answer.
  t.push_back({"test_sampling", "Asks the client's model to complete a prompt (sampling).",
               schema(R"({"type":"object","properties":{"prompt":{"type":"string",)"
                      R"("description":"The prompt to send"}},"required":["prompt"]})"),
               [](Call& c) -> Outcome {
                 const Json* p = c.arg("prompt");
                 const std::string prompt = p && p->is_string() ? p->as_string() : "Hello";
                 return ask(
                     "sampling/createMessage",
                     obj({{"messages",
                           arr({obj({{"role", str("user")}, {"content", text_content(prompt)}})})},
                          {"maxTokens", num(100)}}),
                     [](const Json& reply) -> Outcome {
                       const Json* result = reply.find("result");
                       const Json* content = result ? result->find("content") : nullptr;
                       const std::string* text =
                           content && content->is_object() ? content->find_string("text") : nullptr;
                       if (!text)
                         return tool_result(
                             {text_content("Sampling not supported or error: " +
                                           (reply.find("error") ? reply.find("error")->dump()
                                                                : std::string("no text")))});
                       return tool_result({text_content("LLM response: " + *text)});
                     });
               }});
  const auto elicited = [](const Json& reply) -> Outcome {
    const Json* result = reply.find("result");
    if (!result || !result->is_object())
      return tool_result({text_content("Elicitation failed: " + (reply.find("error")
                                                                     ? reply.find("error")->dump()
                                                                     : std::string("no result")))});
    const std::string* action = result->find_string("action");
    const Json* content = result->find("content");
    return tool_result({text_content("User response: action=" + (action ? *action : "?") +
                                     ", content=" + (content ? content->dump() : "{}"))});
  };
  t.push_back({"test_elicitation", "Asks the user for information (elicitation).",
               schema(R"({"type":"object","properties":{"message":{"type":"string",)"
                      R"("description":"What to ask"}},"required":["message"]})"),
               [elicited](Call& c) -> Outcome {
                 const Json* m = c.arg("message");
                 return ask(
                     "elicitation/create",
                     obj({{"message", str(m && m->is_string() ? m->as_string() : "Please respond")},
                          {"requestedSchema",
                           schema(R"({"type":"object","properties":{"response":)"
                                  R"({"type":"string","description":"User's response"}},)"
                                  R"("required":["response"]})")}}),
                     elicited);
               }});
  t.push_back(
      {"test_elicitation_sep1034_defaults",
       "Asks for a form whose fields have defaults (SEP-1034).", no_args,
       [elicited](Call&) -> Outcome {
         return ask(
             "elicitation/create",
             obj({{"message", str("Please review and update the form fields with defaults")},
                  {"requestedSchema",
                   schema(
                       R"({"type":"object","required":[],"properties":{)"
                       R"("name":{"type":"string","description":"User name","default":"John Doe"},)"
                       R"("age":{"type":"integer","description":"User age","default":30},)"
                       R"("score":{"type":"number","description":"User score","default":95.5},)"
                       R"("status":{"type":"string","description":"User status",)"
                       R"("enum":["active","inactive","pending"],"default":"active"},)"
                       R"("verified":{"type":"boolean","description":"Verification status",)"
                       R"("default":true}}})")}}),
             elicited);
       }});
  t.push_back(
      {"test_elicitation_sep1330_enums", "Asks to choose from enums of every shape (SEP-1330).",
       no_args, [elicited](Call&) -> Outcome {
         return ask(
             "elicitation/create",
             obj({{"message", str("Please select options from the enum fields")},
                  {"requestedSchema",
                   schema(
                       R"({"type":"object","required":[],"properties":{)"
                       R"("untitledSingle":{"type":"string","description":"Select one option",)"
                       R"("enum":["option1","option2","option3"]},)"
                       R"("titledSingle":{"type":"string","description":"Select one titled option",)"
                       R"("oneOf":[{"const":"value1","title":"First Option"},)"
                       R"({"const":"value2","title":"Second Option"},)"
                       R"({"const":"value3","title":"Third Option"}]},)"
                       R"("legacyEnum":{"type":"string","description":"Select one, legacy names",)"
                       R"("enum":["opt1","opt2","opt3"],"enumNames":["Option One","Option Two","Option Three"]},)"
                       R"("untitledMulti":{"type":"array","description":"Select several options",)"
                       R"("minItems":1,"maxItems":3,"items":{"type":"string","enum":["option1","option2","option3"]}},)"
                       R"("titledMulti":{"type":"array","description":"Select several titled options",)"
                       R"("minItems":1,"maxItems":3,"items":{"anyOf":[{"const":"value1","title":"First Choice"},)"
                       R"({"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}}})")}}),
             elicited);
       }});
  t.push_back(
      {"json_schema_2020_12_tool",
       "A tool whose input schema uses JSON Schema 2020-12 "
       "($schema, $defs, $ref; SEP-1613).",
       schema(R"({"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",)"
              R"("$defs":{"address":{"type":"object","properties":{"street":{"type":"string"},)"
              R"("city":{"type":"string"}}}},"properties":{"name":{"type":"string"},)"
              R"("address":{"$ref":"#/$defs/address"}},"additionalProperties":false})"),
       [](Call& c) -> Outcome {
         const Json* args = c.params.find("arguments");
         return tool_result({text_content("JSON Schema 2020-12 tool called with: " +
                                          (args ? args->dump() : std::string("{}")))});
       }});
  t.push_back(
      {"test_error_handling", "Always fails, as a tool error.", no_args, [](Call&) -> Outcome {
         return tool_result({text_content("This tool intentionally returns an error for "
                                          "testing")},
                            true);
       }});
  return t;
}

struct Resource {
  Json listing;
  Json contents;
};

std::vector<Resource> make_resources() {
  return {
      {obj({{"uri", str("test://static-text")},
            {"name", str("Static text resource")},
            {"mimeType", str("text/plain")}}),
       text_resource("test://static-text", "This is the content of the static text resource.")},
      {obj({{"uri", str("test://static-binary")},
            {"name", str("Static binary resource")},
            {"mimeType", str("image/png")}}),
       blob_resource("test://static-binary", "image/png", kPng)},
      {obj({{"uri", str("test://watched-resource")},
            {"name", str("Watched resource")},
            {"mimeType", str("text/plain")}}),
       text_resource("test://watched-resource", "Watched resource content")},
  };
}

struct Prompt {
  Json listing;
  std::function<Outcome(const Json& args)> get;
};

Json user_message(Json content) {
  return obj({{"role", str("user")}, {"content", std::move(content)}});
}

std::vector<Prompt> make_prompts() {
  const auto arg = [](std::string_view name, std::string_view description) {
    return obj({{"name", str(name)}, {"description", str(description)}, {"required", Json(true)}});
  };
  const auto string_arg = [](const Json& args,
                             std::string_view name) -> std::optional<std::string> {
    const Json* v = args.is_object() ? args.find(name) : nullptr;
    if (!v || !v->is_string()) return std::nullopt;
    return v->as_string();
  };
  std::vector<Prompt> p;
  p.push_back({obj({{"name", str("test_simple_prompt")}, {"description", str("A simple prompt")}}),
               [](const Json&) -> Outcome {
                 return obj(
                     {{"messages",
                       arr({user_message(text_content("This is a simple prompt for testing."))})}});
               }});
  p.push_back(
      {obj({{"name", str("test_prompt_with_arguments")},
            {"description", str("A prompt with two arguments")},
            {"arguments", arr({arg("arg1", "First argument"), arg("arg2", "Second argument")})}}),
       [string_arg](const Json& args) -> Outcome {
         const auto a = string_arg(args, "arg1");
         const auto b = string_arg(args, "arg2");
         if (!a || !b) return RpcError{-32602, "arg1 and arg2 are required"};
         return obj({{"messages", arr({user_message(text_content("Prompt with arguments: arg1='" +
                                                                 *a + "', arg2='" + *b + "'"))})}});
       }});
  p.push_back(
      {obj({{"name", str("test_prompt_with_embedded_resource")},
            {"description", str("A prompt with an embedded resource")},
            {"arguments", arr({arg("resourceUri", "URI of the resource to embed")})}}),
       [string_arg](const Json& args) -> Outcome {
         const auto uri = string_arg(args, "resourceUri");
         if (!uri) return RpcError{-32602, "resourceUri is required"};
         return obj(
             {{"messages",
               arr({user_message(
                        embedded(text_resource(*uri, "Embedded resource content for testing."))),
                    user_message(text_content("Please process the embedded resource above."))})}});
       }});
  p.push_back(
      {obj({{"name", str("test_prompt_with_image")},
            {"description", str("A prompt with an image")}}),
       [](const Json&) -> Outcome {
         return obj(
             {{"messages", arr({user_message(image_content()),
                                user_message(text_content("Please analyze the image above."))})}});
       }});
  return p;
}

struct Session {
  std::string protocol_version;
  std::string log_level = "info";
  std::list<std::string>::iterator lru;
  // Our requests to the client, by id, and what finishes when the answer comes.
  struct Question {
    std::function<void(const Json& reply)> answered;
    std::function<void()> cancel;  // the session ended first
    std::shared_ptr<http::BodyStream> stream;
  };
  std::map<std::int64_t, Question> waiting;
  bool client_samples = false;  // the client declared the sampling capability
  bool client_elicits = false;  // … and elicitation
  std::int64_t next_request = 1;
  // The standalone GET stream, while the client holds it open; and its event count.
  std::shared_ptr<http::BodyStream> listener;
  int listener_events = 0;
};

constexpr std::size_t kMaxWaiting = 32;  // open questions per session

std::string event(int id, const Json& message) {
  return "id: " + std::to_string(id) + "\nevent: message\ndata: " + message.dump() + "\n\n";
}

// 128 bits from the kernel's CSPRNG: a session id is a bearer of the session.
std::string new_session_id() {
  unsigned char bytes[16];
  for (std::size_t got = 0; got < sizeof bytes;) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno != EINTR) throw std::runtime_error("getrandom failed");
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  char buf[33];
  for (std::size_t i = 0; i < sizeof bytes; ++i) std::snprintf(buf + 2 * i, 3, "%02x", bytes[i]);
  return buf;
}

// An event stream's heartbeat: a comment line every idle timeout keeps it open.
std::shared_ptr<http::BodyStream> event_stream() {
  return std::make_shared<http::BodyStream>(":\n\n");
}

// A JSON-RPC id of ours echoed back: an integer we could have issued, or nullopt.
std::optional<std::int64_t> our_id(const Json* id) {
  if (!id || !id->is_number()) return std::nullopt;
  const double v = id->as_number().value;
  if (!std::isfinite(v) || v != std::floor(v) || v < 1 || v > 9.0e15) return std::nullopt;
  return static_cast<std::int64_t>(v);
}

http::Response json_answer(int status, const Json& body) {
  http::Response r;
  r.status = status;
  r.headers.set("Content-Type", "application/json");
  r.body = body.dump();
  return r;
}

Json rpc_error(const Json& id, int code, std::string_view message) {
  return obj({{"jsonrpc", str("2.0")},
              {"id", id},
              {"error", obj({{"code", num(code)}, {"message", str(message)}})}});
}

http::Response transport_error(int status, int code, std::string_view message) {
  return json_answer(status, rpc_error(Json(), code, message));
}

// The host part of a Host header value or an origin's authority ("[::1]:3000" → "[::1]").
std::string host_of(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    const auto end = authority.find(']');
    return std::string(authority.substr(0, end == std::string_view::npos ? end : end + 1));
  }
  return std::string(authority.substr(0, authority.find(':')));
}

}  // namespace

struct SampleServer::Impl {
  SampleServerOptions options;
  std::vector<Tool> tools = make_tools();
  std::vector<Resource> resources = make_resources();
  std::vector<Prompt> prompts = make_prompts();
  std::mutex mu;
  std::unordered_map<std::string, Session> sessions;
  std::list<std::string> lru;  // most recently used first

  bool allowed_host(std::string_view host) const {
    if (options.allowed_hosts.empty()) return true;
    for (const auto& h : options.allowed_hosts) {
      if (core::iequals(h, host)) return true;
    }
    return false;
  }

  // DNS-rebinding protection: a Host (and an Origin, when sent) this server answers to.
  std::optional<http::Response> check_origin(const http::Request& req) const {
    const auto host = req.headers.get("Host");
    if (!host || !allowed_host(host_of(*host)))
      return transport_error(403, -32000, "Forbidden: Host not allowed");
    if (const auto origin = req.headers.get("Origin")) {
      const auto scheme_end = origin->find("://");
      if (scheme_end == std::string_view::npos ||
          !allowed_host(host_of(origin->substr(scheme_end + 3))))
        return transport_error(403, -32000, "Forbidden: Origin not allowed");
    }
    return std::nullopt;
  }

  std::optional<std::string> session_version(const std::string& id) {
    std::lock_guard lock(mu);
    const auto it = sessions.find(id);
    if (it == sessions.end()) return std::nullopt;
    lru.splice(lru.begin(), lru, it->second.lru);
    return it->second.protocol_version;
  }

  std::string open_session(std::string version, bool samples, bool elicits) {
    std::lock_guard lock(mu);
    if (sessions.size() >= options.max_sessions && !lru.empty()) {
      end(sessions[lru.back()]);
      sessions.erase(lru.back());
      lru.pop_back();
    }
    std::string id = new_session_id();
    lru.push_front(id);
    Session& session = sessions[id];
    session.protocol_version = std::move(version);
    session.lru = lru.begin();
    session.client_samples = samples;
    session.client_elicits = elicits;
    return id;
  }

  bool close_session(const std::string& id) {
    std::lock_guard lock(mu);
    const auto it = sessions.find(id);
    if (it == sessions.end()) return false;
    end(it->second);
    lru.erase(it->second.lru);
    sessions.erase(it);
    return true;
  }

  // GET: the session's stream for messages the server sends on its own. One at a time (409 for
  // a second while the first is open, as the transport allows).
  http::Response listen(const std::string& id) {
    auto stream = event_stream();
    {
      std::lock_guard lock(mu);
      const auto it = sessions.find(id);
      if (it == sessions.end()) return transport_error(404, -32001, "Session not found");
      auto& s = it->second;
      if (s.listener && s.listener->open())
        return transport_error(409, -32000, "Conflict: this session's stream is already open");
      s.listener = stream;
    }
    http::Response r;
    r.headers.set("Content-Type", "text/event-stream");
    r.headers.set("Cache-Control", "no-cache");
    r.stream = std::move(stream);
    return r;
  }

  // A message the server sends on its own: on the session's GET stream when one is open.
  void push(const std::string& id, const Json& message) {
    std::lock_guard lock(mu);
    const auto it = sessions.find(id);
    if (it == sessions.end() || !it->second.listener) return;
    it->second.listener->write(event(++it->second.listener_events, message));
  }

  // A session ends (DELETE, or evicted): its streams end, its open questions get an error.
  static void end(Session& s) {
    if (s.listener) s.listener->close();
    for (auto& [id, q] : s.waiting) q.cancel();
    s.waiting.clear();
  }

  // Registers a question for the client; its id, or nullopt when the session is gone or has
  // too many open questions (those whose client left do not count).
  std::optional<std::int64_t> await_reply(const std::string& session, Session::Question q) {
    std::lock_guard lock(mu);
    const auto it = sessions.find(session);
    if (it == sessions.end()) return std::nullopt;
    auto& waiting = it->second.waiting;
    std::erase_if(waiting, [](const auto& w) { return !w.second.stream->open(); });
    if (waiting.size() >= kMaxWaiting) return std::nullopt;
    const std::int64_t id = it->second.next_request++;
    waiting.emplace(id, std::move(q));
    return id;
  }

  // The client's answer to one of our questions: true when it was awaited.
  bool deliver(const std::string& session, const Json& reply) {
    const auto id = our_id(reply.find("id"));
    if (!id) return false;
    std::function<void(const Json&)> answered;
    {
      std::lock_guard lock(mu);
      const auto it = sessions.find(session);
      if (it == sessions.end()) return false;
      const auto w = it->second.waiting.find(*id);
      if (w == it->second.waiting.end()) return false;
      answered = std::move(w->second.answered);
      it->second.waiting.erase(w);
    }
    answered(reply);
    return true;
  }

  // What the client said it can do (initialize's capabilities).
  std::pair<bool, bool> client_can(const std::string& session) {
    std::lock_guard lock(mu);
    const auto it = sessions.find(session);
    if (it == sessions.end()) return {false, false};
    return {it->second.client_samples, it->second.client_elicits};
  }

  void set_log_level(const std::string& id, std::string level) {
    std::lock_guard lock(mu);
    if (const auto it = sessions.find(id); it != sessions.end())
      it->second.log_level = std::move(level);
  }

  Outcome dispatch(const std::string& method, const Json& params, Call& call,
                   const std::string& session) {
    if (method == "ping") return Json(JsonObject{});
    if (method == "tools/list") {
      JsonArray list;
      for (const auto& t : tools)
        list.push_back(obj({{"name", str(t.name)},
                            {"description", str(t.description)},
                            {"inputSchema", t.input_schema}}));
      return obj({{"tools", arr(std::move(list))}});
    }
    if (method == "tools/call") {
      const std::string* name = params.find_string("name");
      if (!name) return RpcError{-32602, "tools/call needs params.name"};
      for (const auto& t : tools) {
        if (t.name == *name) return t.run(call);
      }
      return RpcError{-32602, "Unknown tool: " + core::printable(*name, 100)};
    }
    if (method == "resources/list") {
      JsonArray list;
      for (const auto& r : resources) list.push_back(r.listing);
      return obj({{"resources", arr(std::move(list))}});
    }
    if (method == "resources/templates/list") {
      return obj({{"resourceTemplates", arr({obj({{"uriTemplate", str("test://template/{id}/data")},
                                                  {"name", str("Template resource")},
                                                  {"mimeType", str("application/json")}})})}});
    }
    if (method == "resources/read") {
      const std::string* uri = params.find_string("uri");
      if (!uri) return RpcError{-32602, "resources/read needs params.uri"};
      for (const auto& r : resources) {
        if (*r.listing.find_string("uri") == *uri) return obj({{"contents", arr({r.contents})}});
      }
      constexpr std::string_view prefix = "test://template/", suffix = "/data";
      if (uri->starts_with(prefix) && uri->ends_with(suffix) &&
          uri->size() > prefix.size() + suffix.size()) {
        const std::string id =
            uri->substr(prefix.size(), uri->size() - prefix.size() - suffix.size());
        return obj({{"contents", arr({obj({{"uri", str(*uri)},
                                           {"mimeType", str("application/json")},
                                           {"text", str(obj({{"id", str(id)},
                                                             {"templateTest", Json(true)},
                                                             {"data", str("Data for ID: " + id)}})
                                                            .dump())}})})}});
      }
      return RpcError{-32002, "Resource not found: " + core::printable(*uri, 200)};
    }
    if (method == "resources/subscribe" || method == "resources/unsubscribe") {
      const std::string* uri = params.find_string("uri");
      if (!uri) return RpcError{-32602, method + " needs params.uri"};
      // The watched resource "changes" as soon as someone subscribes: the update goes out on
      // the session's GET stream, if the client listens.
      if (method == "resources/subscribe" && *uri == "test://watched-resource")
        push(session, obj({{"jsonrpc", str("2.0")},
                           {"method", str("notifications/resources/updated")},
                           {"params", obj({{"uri", str(*uri)}})}}));
      return Json(JsonObject{});
    }
    if (method == "prompts/list") {
      JsonArray list;
      for (const auto& p : prompts) list.push_back(p.listing);
      return obj({{"prompts", arr(std::move(list))}});
    }
    if (method == "prompts/get") {
      const std::string* name = params.find_string("name");
      if (!name) return RpcError{-32602, "prompts/get needs params.name"};
      const Json* args = params.find("arguments");
      static const Json kNoArgs{JsonObject{}};
      for (const auto& p : prompts) {
        if (*p.listing.find_string("name") == *name) return p.get(args ? *args : kNoArgs);
      }
      return RpcError{-32602, "Unknown prompt: " + core::printable(*name, 100)};
    }
    if (method == "logging/setLevel") {
      const std::string* level = params.find_string("level");
      if (!level) return RpcError{-32602, "logging/setLevel needs params.level"};
      set_log_level(session, *level);
      return Json(JsonObject{});
    }
    if (method == "completion/complete") {
      return obj({{"completion",
                   obj({{"values", arr({})}, {"total", num(0)}, {"hasMore", Json(false)}})}});
    }
    return RpcError{-32601, "Method not found: " + core::printable(method, 100)};
  }

  static Json answer_for(const Json& id, const Outcome& outcome) {
    if (const auto* result = std::get_if<Json>(&outcome))
      return obj({{"jsonrpc", str("2.0")}, {"id", id}, {"result", *result}});
    if (const auto* error = std::get_if<RpcError>(&outcome))
      return rpc_error(id, error->code, error->message);
    return rpc_error(id, -32603, "Internal error: a call asked the client twice");
  }

  // A call that needs the client's answer first: an event stream with our request, kept open
  // until the client POSTs its answer, then the call's result, and the end.
  http::Response ask_client(const std::string& session, const Json& call_id, const Call& call,
                            const Deferred& deferred) {
    const auto [samples, elicits] = client_can(session);
    if (deferred.method == "sampling/createMessage" ? !samples : !elicits)
      return json_answer(
          200,
          answer_for(
              call_id,
              tool_result({text_content("The client does not support " + deferred.method)}, true)));
    auto stream = event_stream();
    auto events = std::make_shared<int>(0);
    Session::Question q;
    q.stream = stream;
    q.answered = [stream, events, call_id, finish = deferred.finish](const Json& reply) {
      stream->write(event(++*events, answer_for(call_id, finish(reply))));
      stream->close();
    };
    q.cancel = [stream, events, call_id] {
      stream->write(event(++*events, rpc_error(call_id, -32603, "The session ended")));
      stream->close();
    };
    const auto asked = await_reply(session, std::move(q));
    if (!asked) return json_answer(200, rpc_error(call_id, -32603, "Too many open requests"));
    http::Response r;
    r.headers.set("Content-Type", "text/event-stream");
    r.headers.set("Cache-Control", "no-cache");
    for (const auto& n : call.notifications) r.body += event(++*events, n);
    r.body += event(++*events, obj({{"jsonrpc", str("2.0")},
                                    {"id", num(static_cast<double>(*asked))},
                                    {"method", str(deferred.method)},
                                    {"params", deferred.params}}));
    r.stream = std::move(stream);
    return r;
  }

  http::Response post(const http::Request& req) {
    const auto accept = req.headers.get("Accept").value_or("");
    if (accept.find("application/json") == std::string_view::npos ||
        accept.find("text/event-stream") == std::string_view::npos)
      return transport_error(
          406, -32000,
          "Not Acceptable: the client must accept application/json and text/event-stream");
    if (!core::istarts_with(req.headers.get("Content-Type").value_or(""), "application/json"))
      return transport_error(415, -32000, "Unsupported Media Type: send application/json");
    core::JsonLimits limits;
    limits.max_bytes =
        std::max<std::size_t>(req.body.size(), limits.max_bytes);  // the server's cap
    auto parsed = core::parse_json(req.body, limits);
    if (!parsed) return transport_error(400, -32700, "Parse error: " + parsed.error());
    const Json& msg = parsed.value();
    if (msg.is_array())
      return transport_error(400, -32600, "Invalid Request: batches are not supported");
    const std::string* jsonrpc = msg.is_object() ? msg.find_string("jsonrpc") : nullptr;
    if (!jsonrpc || *jsonrpc != "2.0")
      return transport_error(400, -32600, "Invalid Request: not a JSON-RPC 2.0 message");
    const std::string* method = msg.find_string("method");
    const Json* id = msg.find("id");
    static const Json kEmpty{JsonObject{}};
    const Json* params = msg.find("params");
    if (params && !params->is_object())
      return transport_error(400, -32602, "params must be an object");
    if (!params) params = &kEmpty;

    if (method && *method == "initialize") {
      if (!id) return transport_error(400, -32600, "Invalid Request: initialize needs an id");
      const std::string* asked = params->find_string("protocolVersion");
      std::string version(kLatest);
      for (const auto v : kVersions) {
        if (asked && *asked == v) version = *asked;
      }
      const Json* caps = params->find("capabilities");
      const std::string session =
          open_session(version, caps && caps->is_object() && caps->find("sampling"),
                       caps && caps->is_object() && caps->find("elicitation"));
      Json result = obj(
          {{"protocolVersion", str(version)},
           {"capabilities",
            obj({{"tools", obj({{"listChanged", Json(true)}})},
                 {"resources", obj({{"subscribe", Json(true)}, {"listChanged", Json(true)}})},
                 {"prompts", obj({{"listChanged", Json(true)}})},
                 {"logging", Json(JsonObject{})},
                 {"completions", Json(JsonObject{})}})},
           {"serverInfo", obj({{"name", str("mcpgate-sample-server")}, {"version", str("1")}})},
           {"instructions", str("A sample MCP server from mcpgate: echo, add and time, plus the "
                                "conformance suite's tools, resources and prompts.")}});
      auto r = json_answer(200, obj({{"jsonrpc", str("2.0")}, {"id", *id}, {"result", result}}));
      r.headers.set("Mcp-Session-Id", session);
      return r;
    }

    // Everything after initialize belongs to a session.
    const auto session_header = req.headers.get("Mcp-Session-Id");
    if (!session_header)
      return transport_error(400, -32000, "Bad Request: Mcp-Session-Id header is required");
    const std::string session(*session_header);
    const auto version = session_version(session);
    if (!version) return transport_error(404, -32001, "Session not found");
    if (const auto v = req.headers.get("MCP-Protocol-Version")) {
      bool known = false;
      for (const auto k : kVersions) known = known || *v == k;
      if (!known)
        return transport_error(
            400, -32000,
            "Bad Request: unsupported MCP-Protocol-Version " + core::printable(*v, 40));
    }
    if (!method || !id) {
      // A notification, or the client's answer to a request of ours: accepted, no body.
      if (!method && id) deliver(session, msg);
      http::Response r;
      r.status = 202;
      return r;
    }
    Call call{*params, {}};
    auto outcome = dispatch(*method, *params, call, session);
    if (auto* deferred = std::get_if<std::shared_ptr<Deferred>>(&outcome))
      return ask_client(session, *id, call, **deferred);
    const Json answer = answer_for(*id, outcome);
    if (call.notifications.empty()) return json_answer(200, answer);
    // Notifications first, then the answer, as one event stream that ends with it.
    http::Response r;
    r.headers.set("Content-Type", "text/event-stream");
    r.headers.set("Cache-Control", "no-cache");
    int event = 0;
    for (const auto& n : call.notifications)
      r.body += "id: " + std::to_string(++event) + "\nevent: message\ndata: " + n.dump() + "\n\n";
    r.body +=
        "id: " + std::to_string(++event) + "\nevent: message\ndata: " + answer.dump() + "\n\n";
    return r;
  }

  http::Response handle(const http::Request& req) {
    const auto path = req.path();
    if (path == "/health" && req.method == "GET")
      return json_answer(200, obj({{"status", str("ok")}}));
    if (path != options.path)
      return transport_error(404, -32000, "Not found: the MCP endpoint is " + options.path);
    if (auto refused = check_origin(req)) return *refused;
    if (req.method == "POST") return post(req);
    if (req.method == "DELETE") {
      const auto id = req.headers.get("Mcp-Session-Id");
      if (!id)
        return transport_error(400, -32000, "Bad Request: Mcp-Session-Id header is required");
      if (!close_session(std::string(*id)))
        return transport_error(404, -32001, "Session not found");
      http::Response r;
      r.status = 200;
      return r;
    }
    if (req.method == "GET") {
      if (req.headers.get("Accept").value_or("").find("text/event-stream") ==
          std::string_view::npos)
        return transport_error(406, -32000, "Not Acceptable: the stream is text/event-stream");
      const auto id = req.headers.get("Mcp-Session-Id");
      if (!id)
        return transport_error(400, -32000, "Bad Request: Mcp-Session-Id header is required");
      return listen(std::string(*id));
    }
    auto r = transport_error(405, -32000, "Method not allowed");
    r.headers.set("Allow", "GET, POST, DELETE");
    return r;
  }
};

SampleServer::SampleServer(SampleServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}
SampleServer::~SampleServer() = default;

http::Response SampleServer::handle(const http::Request& request) { return impl_->handle(request); }

}  // namespace mcpgate::mcp
