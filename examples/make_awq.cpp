// SPDX-License-Identifier: MIT
// make_awq MODEL_DIR CALIB.jsonl OUT_DIR [SAMPLES]: activation-aware 4-bit quantization (group
// 128, zero point) into an AutoAWQ GEMM checkpoint that vLLM and transformers load. Calibration
// prompts are JSONL {"instruction", "input"} (or {"text"}), tokenized with the model's tokenizer.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "qforge/awq/quantize_model.hpp"
#include "qforge/tokenize/tokenizer.hpp"

int main(int argc, char** argv) try {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR CALIB.jsonl OUT_DIR [SAMPLES]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], calib_file = argv[2], out = argv[3];
  qforge::engine::thread_pool pool(0);  // one worker per hardware thread
  const qforge::tokenize::tokenizer tok(model);
  const auto prompts = qforge::awq::read_calibration_prompts(calib_file);
  qforge::awq::calibration_options co;
  if (argc > 4) co.samples = std::strtoul(argv[4], nullptr, 10);
  const auto calib = qforge::awq::build_calibration(prompts, tok, co);
  for (const auto& w : calib.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());

  qforge::awq::awq_options o;  // AutoAWQ's defaults: group 128, 20-point grid, clipping
  o.progress = [](std::size_t i, std::size_t n, bool done) {
    if (done) std::fprintf(stderr, "layer %zu/%zu\n", i + 1, n);
  };
  const auto r = qforge::awq::quantize_model(model, calib, out, o, pool);
  std::printf("%s: %zu calibration tokens, %.1f s\n", out.c_str(), r.tokens, r.seconds);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_awq: %s\n", e.what());
  return 1;
}
