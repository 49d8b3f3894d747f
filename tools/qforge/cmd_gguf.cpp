// SPDX-License-Identifier: MIT
#include "commands.hpp"
namespace qforge::cli {
void register_gguf(CLI::App& app) { app.add_subcommand("gguf", "Convert a HF checkpoint to GGUF"); }
}  // namespace qforge::cli
