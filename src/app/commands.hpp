// app: the subcommands of the mcpgate binary, each registered on the CLI11 app by one function.
// The composition root: may use every module.
#pragma once

namespace CLI {
class App;
}

namespace mcpgate::app {

// `mcpgate jwt decode|verify|sign`.
void add_jwt_commands(CLI::App& app, int& exit_code);
// `mcpgate idp` (serve) and its admin subcommands.
void add_idp_commands(CLI::App& app, int& exit_code);
// `mcpgate gateway`.
void add_gateway_commands(CLI::App& app, int& exit_code);
// `mcpgate token`: a client-credentials token (the lab's Step 3).
void add_token_command(CLI::App& app, int& exit_code);
// `mcpgate mcp URL`: list or call an MCP server's tools (the lab's Step 4).
void add_mcp_command(CLI::App& app, int& exit_code);
// `mcpgate sample-server`: an MCP server to put behind the gateway.
void add_sample_server_command(CLI::App& app, int& exit_code);
// `mcpgate demo`: the lab in one command.
void add_demo_command(CLI::App& app, int& exit_code);

}  // namespace mcpgate::app
