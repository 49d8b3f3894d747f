// SPDX-License-Identifier: MIT
#include "commands.hpp"
namespace qforge::cli {
void register_inspect(CLI::App& app) { app.add_subcommand("inspect", "Show a GGUF / safetensors file"); }
}  // namespace qforge::cli
