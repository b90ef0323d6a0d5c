// app: `mcpgate mcp URL` — a small MCP client over Streamable HTTP (the lab's Step 4 as a
// command): initialize, then tools/list or tools/call, with a bearer token; answers as JSON.
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <variant>
#include <vector>

#include "app/commands.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "net/http_client.hpp"

namespace mcpgate::app {
namespace {

constexpr std::string_view kProtocolVersion = "2025-11-25";

struct McpOptions {
  std::string url;
  std::string action = "list";  // list, call, ping
  std::string tool;
  std::string arguments = "{}";
  std::string token_file;
  std::vector<std::string> headers;
  std::string ca_file;
  bool verbose = false;
};

struct Session {
  const McpOptions& o;
  std::vector<std::pair<std::string, std::string>> base_headers;
  std::string session_id;
  std::string protocol_version;
  int next_id = 1;
};

// The JSON-RPC answer to request `id` in a POST's response: a JSON body, or the matching
// message among an event stream's events (RFC: data lines joined with "\n").
std::optional<core::Json> find_answer(const net::FetchResult& r, int id) {
  const auto matches = [id](const core::Json& m) {
    const core::Json* mid = m.find("id");
    return mid && mid->is_number() && mid->as_number().value == id &&
           (m.find("result") || m.find("error"));
  };
  if (core::istarts_with(r.content_type, "application/json")) {
    auto j = core::parse_json(r.body);
    if (j && matches(j.value())) return j.value();
    return std::nullopt;
  }
  if (!core::istarts_with(r.content_type, "text/event-stream")) return std::nullopt;
  std::string data;
  const auto flush = [&]() -> std::optional<core::Json> {
    if (data.empty()) return std::nullopt;
    auto j = core::parse_json(data);
    data.clear();
    if (j && matches(j.value())) return j.value();
    return std::nullopt;
  };
  for (auto line : core::split(r.body, "\n")) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (auto j = flush()) return j;
    } else if (line.starts_with("data:")) {
      auto v = line.substr(5);
      if (!v.empty() && v[0] == ' ') v.remove_prefix(1);
      if (!data.empty()) data += "\n";
      data += v;
    }
  }
  return flush();
}

struct Failure {
  int code;
  std::string message;
};

std::string header(const net::FetchResult& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (core::iequals(n, name)) return v;
  }
  return {};
}

net::FetchOptions options_for(const Session& s, std::string method, std::string body) {
  net::FetchOptions fo;
  fo.method = std::move(method);
  fo.body = std::move(body);
  fo.content_type = fo.body.empty() ? "" : "application/json";
  fo.ca_file = s.o.ca_file;
  fo.timeout = std::chrono::seconds(60);
  fo.max_body_bytes = 16 * 1024 * 1024;
  fo.headers = s.base_headers;
  fo.headers.emplace_back("Accept", "application/json, text/event-stream");
  if (!s.session_id.empty()) fo.headers.emplace_back("Mcp-Session-Id", s.session_id);
  if (!s.protocol_version.empty())
    fo.headers.emplace_back("MCP-Protocol-Version", s.protocol_version);
  return fo;
}

// One request and its answer's `result`, or why there is none.
std::variant<core::Json, Failure> call(Session& s, const std::string& method, core::Json params) {
  const int id = s.next_id++;
  core::JsonObject m;
  m.emplace_back("jsonrpc", core::Json("2.0"));
  m.emplace_back("id", core::Json::number(id));
  m.emplace_back("method", core::Json(method));
  m.emplace_back("params", std::move(params));
  auto r = net::fetch(s.o.url, options_for(s, "POST", core::Json(std::move(m)).dump()));
  if (!r) return Failure{1, method + ": " + r.error()};
  if (s.o.verbose)
    std::cerr << "mcpgate mcp: " << method << " -> " << r->status << " " << r->content_type << "\n";
  if (r->status == 401 || r->status == 403) {
    std::string why =
        method + ": " + std::to_string(r->status) + " " + core::printable(r->body, 300);
    if (const auto challenge = header(*r, "WWW-Authenticate"); !challenge.empty())
      why += "\n  WWW-Authenticate: " + core::printable(challenge, 300);
    return Failure{1, why};
  }
  if (r->status / 100 != 2)
    return Failure{
        1, method + ": HTTP " + std::to_string(r->status) + " " + core::printable(r->body, 300)};
  if (const auto sid = header(*r, "Mcp-Session-Id"); !sid.empty()) s.session_id = sid;
  auto answer = find_answer(*r, id);
  if (!answer) return Failure{1, method + ": no JSON-RPC answer with id " + std::to_string(id)};
  if (const core::Json* err = answer->find("error")) return Failure{1, method + ": " + err->dump()};
  return *answer->find("result");
}

int run_mcp(const McpOptions& o) {
  Session s{o, {}, {}, {}, 1};
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file, std::ios::binary);
    if (!in) {
      std::cerr << "mcpgate mcp: cannot read " << o.token_file << "\n";
      return 2;
    }
    std::string token{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    token = std::string(core::trim(token));
    if (token.empty() || token.find_first_of(" \r\n\t") != std::string::npos) {
      std::cerr << "mcpgate mcp: " << o.token_file << " does not hold one token\n";
      return 2;
    }
    s.base_headers.emplace_back("Authorization", "Bearer " + token);
  }
  for (const auto& h : o.headers) {
    const auto colon = h.find(':');
    if (colon == std::string::npos || colon == 0 || h.find_first_of("\r\n") != std::string::npos) {
      // Not echoed: it may hold a credential.
      std::cerr << "mcpgate mcp: --header wants \"Name: value\" (no ':' found, or a line break)\n";
      return 2;
    }
    s.base_headers.emplace_back(std::string(core::trim(h.substr(0, colon))),
                                std::string(core::trim(h.substr(colon + 1))));
  }
  std::optional<core::Json> arguments;
  if (o.action == "call") {
    auto a = core::parse_json(o.arguments);
    if (!a || !a->is_object()) {
      std::cerr << "mcpgate mcp: the arguments must be a JSON object, e.g. '{\"text\": \"hi\"}'\n";
      return 2;
    }
    arguments = std::move(a.value());
  }
  const auto failed = [](const Failure& f) {
    std::cerr << "mcpgate mcp: " << f.message << "\n";
    return f.code;
  };

  core::JsonObject client;
  client.emplace_back("name", core::Json("mcpgate"));
  client.emplace_back("version", core::Json("1"));
  core::JsonObject init;
  init.emplace_back("protocolVersion", core::Json(std::string(kProtocolVersion)));
  init.emplace_back("capabilities", core::Json(core::JsonObject{}));
  init.emplace_back("clientInfo", core::Json(std::move(client)));
  auto initialized = call(s, "initialize", core::Json(std::move(init)));
  if (auto* f = std::get_if<Failure>(&initialized)) return failed(*f);
  const auto& info = std::get<core::Json>(initialized);
  const std::string* version = info.find_string("protocolVersion");
  s.protocol_version = version ? *version : std::string(kProtocolVersion);
  // The notification that ends the handshake: 202, no answer.
  core::JsonObject note;
  note.emplace_back("jsonrpc", core::Json("2.0"));
  note.emplace_back("method", core::Json("notifications/initialized"));
  auto n = net::fetch(o.url, options_for(s, "POST", core::Json(std::move(note)).dump()));
  if (!n) return failed({1, "notifications/initialized: " + n.error()});
  if (n->status / 100 != 2)
    return failed({1, "notifications/initialized: HTTP " + std::to_string(n->status)});

  std::variant<core::Json, Failure> result;
  if (o.action == "call") {
    core::JsonObject p;
    p.emplace_back("name", core::Json(o.tool));
    p.emplace_back("arguments", std::move(*arguments));
    result = call(s, "tools/call", core::Json(std::move(p)));
  } else if (o.action == "ping") {
    result = call(s, "ping", core::Json(core::JsonObject{}));
  } else {
    result = call(s, "tools/list", core::Json(core::JsonObject{}));
  }
  // End the session politely; a server without sessions may refuse DELETE (405).
  if (!s.session_id.empty()) (void)net::fetch(o.url, options_for(s, "DELETE", ""));
  if (auto* f = std::get_if<Failure>(&result)) return failed(*f);
  const auto& value = std::get<core::Json>(result);
  std::cout << value.pretty() << "\n";
  // A tool that ran and failed says so in its result (isError): exit 1 as well.
  if (const core::Json* is_error = value.find("isError");
      is_error && is_error->is_bool() && is_error->as_bool())
    return 1;
  return 0;
}

}  // namespace

void add_mcp_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<McpOptions>();
  auto* cmd = app.add_subcommand(
      "mcp", "Call an MCP server over Streamable HTTP: list its tools or call one");
  cmd->add_option("url", o->url, "The MCP endpoint, e.g. http://127.0.0.1:8080/mcp")->required();
  cmd->add_option("action", o->action, "list (default), call or ping")
      ->check(CLI::IsMember({"list", "call", "ping"}));
  cmd->add_option("tool", o->tool, "With call: the tool's name");
  cmd->add_option("arguments", o->arguments, "With call: the arguments as a JSON object");
  cmd->add_option("--token-file", o->token_file, "Send this token as Authorization: Bearer");
  cmd->add_option("-H,--header", o->headers, "Another request header, \"Name: value\"");
  cmd->add_option("--ca-file", o->ca_file, "Trust this PEM bundle for https");
  cmd->add_flag("-v,--verbose", o->verbose, "Show each HTTP exchange on stderr");
  cmd->callback([o, &exit_code] {
    if (o->action == "call" && o->tool.empty()) {
      std::cerr << "mcpgate mcp: call needs a tool name\n";
      exit_code = 2;
      return;
    }
    exit_code = run_mcp(*o);
  });
}

}  // namespace mcpgate::app
