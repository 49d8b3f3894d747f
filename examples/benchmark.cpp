// SPDX-License-Identifier: MIT
// benchmark EVAL.jsonl REFERENCE_DIR ARTEFACT...: runs the FP16 checkpoint and each artefact (AWQ
// folder, GGUF file) on qforge's CPU engine and prints the comparison table in markdown: size,
// bits per weight, speed, memory, perplexity, KL divergence and top-1 agreement against the
// reference.
#include <cstdio>
#include <memory>
#include <string>

#include "qforge/report/table.hpp"

int main(int argc, char** argv) try {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s EVAL.jsonl REFERENCE_DIR ARTEFACT...\n", argv[0]);
    return 2;
  }
  qforge::engine::thread_pool pool(0);
  const qforge::tokenize::tokenizer tok(argv[2]);
  qforge::report::bench_inputs in;
  for (int i = 2; i < argc; ++i) in.artefacts.emplace_back(argv[i]);
  in.docs = qforge::report::read_documents(argv[1], tok, qforge::report::artefact_config(argv[2]).vocab);
  qforge::report::bench_settings st;
  st.speed_decode = 16;
  const auto rep = qforge::report::run_benchmark(
      in, st, [&](const qforge::engine::model& m, std::size_t ctx) {
        return std::make_unique<qforge::engine::session>(m, pool, ctx);
      });
  std::printf("%s", qforge::report::to_markdown(rep).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "benchmark: %s\n", e.what());
  return 1;
}
