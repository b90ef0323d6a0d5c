// app: entry point of the single mcpgate binary (DESIGN.md §1).
#include <CLI/CLI.hpp>

#include "app/commands.hpp"

#ifndef MCPGATE_VERSION
#define MCPGATE_VERSION "dev"
#endif

int main(int argc, char** argv) {
  CLI::App app{"mcpgate: Microsoft Entra ID authentication in front of MCP servers"};
  app.set_version_flag("--version", std::string("mcpgate ") + MCPGATE_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  mcpgate::app::add_jwt_commands(app, exit_code);
  mcpgate::app::add_idp_commands(app, exit_code);
  mcpgate::app::add_gateway_commands(app, exit_code);
  mcpgate::app::add_token_command(app, exit_code);
  mcpgate::app::add_mcp_command(app, exit_code);
  mcpgate::app::add_sample_server_command(app, exit_code);
  mcpgate::app::add_demo_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // usage errors exit 2, so scripts can tell them from a refused token
  }
  return exit_code;
}
