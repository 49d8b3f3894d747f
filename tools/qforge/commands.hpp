// SPDX-License-Identifier: MIT
// Each subcommand lives in cmd_<name>.cpp and registers itself on the root CLI11 app; main() only
// parses, runs the chosen callback and turns qforge::error into one line on stderr and exit code 1.
#pragma once
#include <CLI/CLI.hpp>

namespace qforge::cli {
void register_awq(CLI::App& app);
void register_bench(CLI::App& app);
void register_check(CLI::App& app);
void register_eval(CLI::App& app);
void register_gguf(CLI::App& app);
void register_inspect(CLI::App& app);
void register_pipeline(CLI::App& app);
void register_quantize(CLI::App& app);
void register_tokenize(CLI::App& app);
}  // namespace qforge::cli
