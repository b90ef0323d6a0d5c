// app: `mcpgate demo` — the lab in one command. Starts the Entra ID emulator, the sample MCP
// server and the gateway (this binary, as child processes) in a temporary directory on free
// loopback ports, then runs the lab's steps with the same commands a person would type, printing
// each command so it can be repeated by hand.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <thread>

#include "app/commands.hpp"
#include "app/files.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"
#include "net/http_client.hpp"

extern char** environ;

namespace mcpgate::app {
namespace {

namespace fs = std::filesystem;

volatile sig_atomic_t g_interrupted = 0;
void on_signal(int) { g_interrupted = 1; }

struct DemoOptions {
  bool keep = false;
  std::string dir;  // empty: a new temporary directory
};

std::string self_path() {
  std::error_code ec;
  const auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("mcpgate") : p.string();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A shell-safe rendering of a command line, for the "repeat by hand" lines.
std::string quoted(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of(
                                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP"
                                         "QRSTUVWXYZ0123456789-_./:=@,+") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (const char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

class Demo {
 public:
  Demo(std::string dir, std::string self) : dir_(std::move(dir)), self_(std::move(self)) {}
  ~Demo() { stop_all(); }

  // Sends `sig` to the child started as `name`'s process (the gateway: SIGHUP reloads it).
  void signal(const std::string& name, int sig) {
    if (const auto it = names_.find(name); it != names_.end()) kill(it->second, sig);
  }

  // Starts `mcpgate ARGS… --ready-file F` in the background; returns its ready JSON.
  core::Result<core::Json, std::string> start(const std::string& name,
                                              std::vector<std::string> args) {
    const std::string ready = dir_ + "/" + name + ".ready";
    const std::string log = dir_ + "/" + name + ".log";
    args.insert(args.begin(), self_);
    args.push_back("--ready-file");
    args.push_back(ready);
    const pid_t pid = spawn(args, log, log, {});
    if (pid < 0) return core::fail("cannot start " + name);
    children_.push_back(pid);
    names_[name] = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!fs::exists(ready)) {
      int status = 0;
      const bool exited = waitpid(pid, &status, WNOHANG) == pid;
      if (exited) std::erase(children_, pid);  // reaped: its pid may be reused
      if (exited || g_interrupted || std::chrono::steady_clock::now() > deadline)
        return core::fail(name + " did not start:\n" + read_all(log));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto j = core::parse_json(read_all(ready));
    if (!j) return core::fail(name + ": unreadable ready file");
    return j.value();
  }

  struct Ran {
    int status = -1;
    std::string out, err;
  };
  // Runs `mcpgate ARGS…` to the end.
  Ran run(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), self_);
    const std::string out = dir_ + "/.out", err = dir_ + "/.err";
    Ran r;
    const pid_t pid = spawn(args, out, err, env);
    if (pid < 0) return r;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_all(out);
    r.err = read_all(err);
    return r;
  }

  // SIGTERM to every child, then SIGKILL to those still there after 10 seconds.
  void stop_all() {
    for (const pid_t pid : children_) kill(pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (const pid_t pid : children_) {
      int status = 0;
      while (waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    children_.clear();
  }

  const std::string& dir() const { return dir_; }
  const std::string& self() const { return self_; }

 private:
  pid_t spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err,
              const std::vector<std::string>& env) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (err == out) {
      posix_spawn_file_actions_adddup2(&fa, 1, 2);
    } else {
      posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    // Ours replace the caller's of the same name (getenv takes the first).
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      const std::string_view entry(*e);
      const auto name = entry.substr(0, entry.find('=') + 1);
      if (std::none_of(env.begin(), env.end(), [&](const auto& x) { return x.starts_with(name); }))
        env_strings.emplace_back(entry);
    }
    env_strings.insert(env_strings.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, self_.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
  }

  std::string dir_;
  std::string self_;
  std::vector<pid_t> children_;
  std::map<std::string, pid_t> names_;
};

void heading(const std::string& title) { std::cout << "\n== " << title << " ==\n"; }
void show(const std::string& command) { std::cout << "  $ " << command << "\n"; }
void say(const std::string& text) { std::cout << "    " << text << "\n"; }

// Prints an indented block (a command's output).
void block(std::string_view text, std::size_t max_lines = 14) {
  std::size_t n = 0;
  for (auto line : core::split(core::trim(text), "\n")) {
    if (++n > max_lines) {
      say("…");
      return;
    }
    say(std::string(line));
  }
}

int demo_failed(const std::string& what) {
  std::cerr << "mcpgate demo: " << what << "\n";
  return 1;
}

const core::Json* field(const core::Json& j, std::string_view name) {
  return j.is_object() ? j.find(name) : nullptr;
}
std::string text_of(const core::Json& j, std::string_view name) {
  const std::string* s = j.is_object() ? j.find_string(name) : nullptr;
  return s ? *s : std::string();
}

constexpr std::string_view kTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";

int run_demo(const DemoOptions& o) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::string dir = o.dir;
  bool made_dir = false;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "mcpgate-demo-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return demo_failed("cannot make a temporary directory");
    dir = tmpl;
    made_dir = true;
  } else {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return demo_failed("cannot make " + dir + ": " + ec.message());
    if (!fs::is_empty(dir, ec))
      return demo_failed(dir + " is not empty: --dir wants a new or empty directory");
  }
  Demo d(dir, self_path());
  const std::string data = dir + "/idp";
  const auto idp_admin = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"idp", "--data", data});
    return args;
  };
  int rc = 0;
  try {
    [&] {
      std::cout << "mcpgate demo: the lab \"Securing MCP Servers with Entra ID Authentication in "
                   "Azure API Management\",\nrun on this machine (working directory "
                << dir << ")\n";

      // ---- Step 1 ------------------------------------------------------------------------
      heading("Step 1: Register an Application in Entra ID (mcpgate idp, the emulator)");
      const auto admin = [&](std::vector<std::string> args, core::Json& out) -> bool {
        const auto full = idp_admin(std::move(args));
        show("mcpgate " + quoted(full));
        auto r = d.run(full);
        auto j = core::parse_json(r.out);
        if (r.status != 0 || !j) {
          rc = demo_failed("the emulator refused: " + r.err);
          return false;
        }
        out = std::move(j.value());
        return true;
      };
      core::Json tenant, client, secret, other, other_secret;
      if (!admin({"tenant", "create", "--id", std::string(kTenant), "--domain",
                  "contoso.onmicrosoft.com", "--name", "Contoso"},
                 tenant) ||
          !admin({"app", "create", "--name", "mcp-lab-agent"}, client))
        return;
      const std::string client_id = text_of(client, "appId");
      if (!admin({"secret", "add", "--app", client_id}, secret)) return;
      const std::string secret_text = text_of(secret, "secretText");
      const std::string secret_file = dir + "/client-secret.txt";
      if (!write_private_file(secret_file, secret_text + "\n")) {
        rc = demo_failed("cannot write " + secret_file);
        return;
      }
      auto idp_ready = d.start("idp", idp_admin({"--listen", "127.0.0.1:0"}));
      if (!idp_ready) {
        rc = demo_failed(idp_ready.error());
        return;
      }
      const std::string authority = text_of(idp_ready.value(), "https");
      const std::string ca = text_of(idp_ready.value(), "ca");
      show("mcpgate " + quoted(idp_admin({"--listen", "127.0.0.1:0"})) + "   # serving");
      say("Directory (tenant) ID:     " + std::string(kTenant));
      say("Application (client) ID:   " + client_id);
      say("Client secret:             " + secret_text.substr(0, 4) + "… (in " + secret_file + ")");
      say("Authority:                 " + authority + "  (trust " + ca + ")");

      // ---- Step 2 ------------------------------------------------------------------------
      heading("Step 2: Configure API Management to use Entra ID (mcpgate gateway)");
      auto sample = d.start("sample-server", {"sample-server", "--listen", "127.0.0.1:0"});
      if (!sample) {
        rc = demo_failed(sample.error());
        return;
      }
      const core::Json* urls = field(sample.value(), "mcp");
      const std::string sample_url =
          urls && urls->is_array() && !urls->as_array().empty() && urls->as_array()[0].is_string()
              ? urls->as_array()[0].as_string()
              : std::string();
      const std::string sample_origin = sample_url.substr(0, sample_url.rfind('/'));
      show("mcpgate sample-server --listen 127.0.0.1:0   # the MCP server: " + sample_url);
      const std::string policy = R"(<policies>
	<inbound>
		<base />
		<validate-azure-ad-token tenant-id="{{aad-tenant-id}}">
            <client-application-ids>
                <application-id>{{aad-client-application-id}}</application-id>
            </client-application-ids>
        </validate-azure-ad-token>
	</inbound>
	<backend>
		<base />
	</backend>
	<outbound>
		<base />
	</outbound>
	<on-error>
		<base />
	</on-error>
</policies>
)";
      std::ofstream(dir + "/lab-policy.xml") << policy;
      std::ofstream(dir + "/gateway.yaml")
          << "listeners: [{address: 127.0.0.1, port: 0}]\n"
          << "entra: {authority: \"" << authority << "\", ca_file: \"" << ca << "\"}\n"
          << "named_values:\n  aad-tenant-id: " << kTenant
          << "\n  aad-client-application-id: " << client_id << "\n"
          << "access_log: " << dir << "/access.log\n"
          << "backends:\n  mcp: {url: \"" << sample_origin << "\"}\n"
          << "apis:\n  - {name: mcp, path: /mcp, type: mcp, backend: mcp, policy: "
             "lab-policy.xml}\n";
      auto gw = d.start("gateway", {"gateway", "-c", dir + "/gateway.yaml"});
      if (!gw) {
        rc = demo_failed(gw.error());
        return;
      }
      const core::Json* listeners = field(gw.value(), "listeners");
      const std::string gw_url =
          (listeners && listeners->is_array() && !listeners->as_array().empty() &&
                   listeners->as_array()[0].is_string()
               ? listeners->as_array()[0].as_string()
               : std::string()) +
          "/mcp";
      show("mcpgate gateway -c " + dir + "/gateway.yaml");
      say("The lab's policy, unchanged (" + dir + "/lab-policy.xml), with the named values");
      say("aad-tenant-id and aad-client-application-id from gateway.yaml.");
      say("MCP server behind the gateway: " + gw_url);

      // ---- Step 3 ------------------------------------------------------------------------
      heading("Step 3: Testing Entra ID Authentication: get an access token");
      const std::vector<std::string> token_args{
          "token",       "--tenant",        std::string(kTenant),
          "--client-id", client_id,         "--authority",
          authority,     "--ca-file",       ca,
          "-o",          dir + "/token.jwt"};
      show("MCPGATE_CLIENT_SECRET=$(cat " + secret_file + ") mcpgate " + quoted(token_args));
      say("(the lab's Python: POST client_credentials to " + authority + "/" +
          std::string(kTenant) + "/oauth2/v2.0/token,");
      say(" scope https://graph.microsoft.com/.default, the token written to token.jwt)");
      auto tok = d.run(token_args, {"MCPGATE_CLIENT_SECRET=" + secret_text});
      if (tok.status != 0) {
        rc = demo_failed("no token: " + tok.err);
        return;
      }
      block(tok.err);

      // ---- Step 4 ------------------------------------------------------------------------
      heading("Step 4: Use the Access Token to Call the MCP Server");
      const auto mcp = [&](std::vector<std::string> extra, const std::string& label) {
        std::vector<std::string> args{"mcp", gw_url};
        args.insert(args.end(), extra.begin(), extra.end());
        show("mcpgate " + quoted(args) + (label.empty() ? "" : "   # " + label));
        auto r = d.run(args);
        auto listed = core::parse_json(r.out);
        const core::Json* tools =
            r.status == 0 && listed ? field(listed.value(), "tools") : nullptr;
        if (tools && tools->is_array()) {
          std::string names;
          for (const auto& t : tools->as_array())
            names += (names.empty() ? "" : ", ") + text_of(t, "name");
          say("tools: " + names);
        } else {
          block(r.status == 0 ? r.out : r.err, 8);
        }
        say("-> exit " + std::to_string(r.status));
        return r.status;
      };
      if (mcp({"--token-file", dir + "/token.jwt"}, "tools/list") != 0 ||
          mcp({"call", "echo", R"({"message": "Hello from the lab"})", "--token-file",
               dir + "/token.jwt"},
              "tools/call") != 0) {
        rc = demo_failed("the MCP call through the gateway failed");
        return;
      }

      heading("The same call refused");
      if (mcp({}, "no token") != 1) rc = demo_failed("a call without a token was not refused");
      core::Json other_app, other_sec;
      if (!admin({"app", "create", "--name", "someone-else"}, other_app) ||
          !admin({"secret", "add", "--app", text_of(other_app, "appId")}, other_sec))
        return;
      std::vector<std::string> other_args = token_args;
      other_args[4] = text_of(other_app, "appId");
      other_args.back() = dir + "/other.jwt";
      show("MCPGATE_CLIENT_SECRET=<its secret> mcpgate " + quoted(other_args));
      d.run(other_args, {"MCPGATE_CLIENT_SECRET=" + text_of(other_sec, "secretText")});
      if (mcp({"--token-file", dir + "/other.jwt"}, "another application's token") != 1)
        rc = demo_failed("another application's token was not refused");
      // An expired token: a second emulator on the same directory issues them already expired.
      auto expired_idp =
          d.start("idp-expired", idp_admin({"--listen", "127.0.0.1:0", "--token-lifetime", "-60"}));
      if (!expired_idp) {
        rc = demo_failed(expired_idp.error());
        return;
      }
      std::vector<std::string> expired_args = token_args;
      expired_args[6] = text_of(expired_idp.value(), "https");
      expired_args.back() = dir + "/expired.jwt";
      show("mcpgate " + quoted(idp_admin({"--listen", "127.0.0.1:0", "--token-lifetime", "-60"})) +
           "   # issues expired tokens");
      show("MCPGATE_CLIENT_SECRET=$(cat " + secret_file + ") mcpgate " + quoted(expired_args));
      d.run(expired_args, {"MCPGATE_CLIENT_SECRET=" + secret_text});
      if (mcp({"--token-file", dir + "/expired.jwt"}, "an expired token") != 1)
        rc = demo_failed("an expired token was not refused");
      say("Why, from the gateway's access log (" + dir + "/access.log):");
      // The gateway logs an exchange once its answer is out, so the client can be quicker than
      // the log: wait (briefly) for the three refusals above.
      const auto refusals = [&] {
        std::vector<std::string> found;
        for (auto line : core::split(read_all(dir + "/access.log"), "\n")) {
          auto j = core::parse_json(line);
          if (j && !text_of(j.value(), "error").empty())
            found.push_back(text_of(j.value(), "error"));
        }
        return found;
      };
      auto why = refusals();
      for (const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
           why.size() < 3 && std::chrono::steady_clock::now() < until; why = refusals())
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      for (const auto& line : why) say("  " + line);
      if (rc != 0) return;

      // ---- Hardened ----------------------------------------------------------------------
      heading("Hardened: the API's own audience, an app role, protected resource metadata");
      say("The lab accepts any token the client gets, even one for Microsoft Graph. Here the MCP");
      say("server is an API app of its own; it asks for v2 tokens, so their audience is its "
          "appId.");
      core::Json api, role, grant;
      if (!admin({"app", "create", "--name", "mcp-lab-api", "--identifier-uri", "api://mcp-lab-api",
                  "--access-token-version", "2"},
                 api) ||
          !admin({"role", "add", "--app", "api://mcp-lab-api", "--value", "Tools.Call"}, role) ||
          !admin({"role", "grant", "--client", client_id, "--resource", "api://mcp-lab-api",
                  "--role", "Tools.Call"},
                 grant))
        return;
      const std::string api_id = text_of(api, "appId");
      const std::string secure_url = gw_url.substr(0, gw_url.rfind("/mcp")) + "/secure/mcp";
      std::ofstream(dir + "/hardened-policy.xml")
          << "<policies>\n  <inbound>\n    <base />\n"
          << "    <validate-azure-ad-token tenant-id=\"{{aad-tenant-id}}\">\n"
          << "      <client-application-ids><application-id>{{aad-client-application-id}}"
             "</application-id></client-application-ids>\n"
          << "      <audiences><audience>{{mcp-api-id}}</audience></audiences>\n"
          << "      <required-claims><claim name=\"roles\" match=\"all\"><value>Tools.Call</value>"
             "</claim></required-claims>\n"
          << "    </validate-azure-ad-token>\n  </inbound>\n</policies>\n";
      std::ofstream(dir + "/gateway.yaml", std::ios::app)
          << "  - name: secure\n    path: /secure\n    type: mcp\n    backend: mcp\n"
          << "    strip_prefix: true\n    policy: hardened-policy.xml\n"
          << "    resource_metadata:\n      resource: " << secure_url << "\n"
          << "      scopes_supported: [api://mcp-lab-api/.default]\n";
      {  // and the API's id among the named values
        std::string cfg = read_all(dir + "/gateway.yaml");
        const std::string key = "  aad-client-application-id: " + client_id + "\n";
        const auto at = cfg.find(key);
        if (at == std::string::npos) {
          rc = demo_failed("gateway.yaml lost its named values");
          return;
        }
        cfg.replace(at, key.size(), key + "  mcp-api-id: " + api_id + "\n");
        std::ofstream(dir + "/gateway.yaml", std::ios::trunc) << cfg;
      }
      d.signal("gateway", SIGHUP);
      show("kill -HUP <gateway>   # reload: gateway.yaml gains the API /secure/mcp");
      const std::string prm_url = secure_url.substr(0, secure_url.find("/secure/mcp")) +
                                  "/.well-known/oauth-protected-resource/secure/mcp";
      std::string prm;
      for (int i = 0; i < 100 && !g_interrupted; ++i) {
        auto r = net::fetch(prm_url);
        if (r && r->status == 200) {
          prm = r->body;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (prm.empty()) {
        rc = demo_failed("the gateway did not take the hardened API:\n" +
                         read_all(dir + "/gateway.log"));
        return;
      }
      show("curl " + prm_url + "   # RFC 9728, for MCP clients");
      say(prm);
      std::vector<std::string> api_token = token_args;
      api_token.insert(api_token.end() - 2, {"--scope", "api://mcp-lab-api/.default"});
      api_token.back() = dir + "/api.jwt";
      show("MCPGATE_CLIENT_SECRET=$(cat " + secret_file + ") mcpgate " + quoted(api_token));
      auto api_tok = d.run(api_token, {"MCPGATE_CLIENT_SECRET=" + secret_text});
      block(api_tok.err);
      const auto secure = [&](std::vector<std::string> extra, const std::string& label) {
        std::vector<std::string> args{"mcp", secure_url};
        args.insert(args.end(), extra.begin(), extra.end());
        show("mcpgate " + quoted(args) + "   # " + label);
        auto r = d.run(args);
        block(r.status == 0 ? r.out : r.err, 8);
        say("-> exit " + std::to_string(r.status));
        return r.status;
      };
      if (secure({"call", "add", R"({"a": 20, "b": 22})", "--token-file", dir + "/api.jwt"},
                 "a v2 token for the API, with the role") != 0)
        rc = demo_failed("the hardened call failed");
      if (secure({"--token-file", dir + "/token.jwt"}, "the lab's Graph token") != 1)
        rc = demo_failed("the Graph token was not refused by the hardened policy");
      if (rc != 0) return;

      heading("Done");
      say("Every step above is a command you can run yourself with the same arguments.");
      say("Against real Entra ID: drop --authority/--ca-file (and entra: in gateway.yaml), and "
          "use");
      say("your tenant id, client id and secret. Configuration: docs/configuration.md.");
    }();
  } catch (const std::exception& e) {  // whatever fails, what was started is stopped below
    rc = demo_failed(std::string("stopped: ") + e.what());
  }
  if (rc == 0 && o.keep && !g_interrupted) {
    std::cout << "\n--keep: everything stays up in " << dir << "; Ctrl-C ends it.\n" << std::flush;
    while (!g_interrupted) pause();
  }
  d.stop_all();
  if (made_dir && !o.keep) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  if (g_interrupted && rc == 0 && !o.keep) rc = 130;
  return rc;
}

}  // namespace

void add_demo_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand("demo",
                                 "The lab in one command: emulator, MCP server, gateway, "
                                 "token, calls allowed and refused");
  cmd->add_flag("--keep", o->keep, "Leave everything running (and the directory) until Ctrl-C");
  cmd->add_option("--dir", o->dir, "Work in this directory instead of a temporary one (kept)");
  cmd->callback([o, &exit_code] { exit_code = run_demo(*o); });
}

}  // namespace mcpgate::app
