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

}  // namespace mcpgate::app
