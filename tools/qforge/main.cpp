// SPDX-License-Identifier: MIT
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "qforge/core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"qforge: turn a Hugging Face checkpoint into GGUF / AWQ deployment artefacts"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "qforge 0.1.0");
  qforge::cli::register_awq(app);
  qforge::cli::register_bench(app);
  qforge::cli::register_check(app);
  qforge::cli::register_eval(app);
  qforge::cli::register_gguf(app);
  qforge::cli::register_inspect(app);
  qforge::cli::register_pipeline(app);
  qforge::cli::register_quantize(app);
  qforge::cli::register_tokenize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qforge::error& e) {
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qforge: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
