// SPDX-License-Identifier: MIT
// qforge awq MODEL_DIR --calib FILE -o OUT_DIR [--group 128] [--samples 128] [--max-seq-len 2048]
// [--block-len N] [--threads N] [--imatrix-out FILE] [--device cpu|cuda]: activation-aware 4-bit quantization into an
// AutoAWQ GEMM checkpoint (awq/quantize_model.hpp), optionally with llama.cpp's importance matrix
// of the same calibration pass. The calibration prompts' token-length distribution and any warning
// about it go to stderr before the work starts, then one progress line per block, then the fp16
// guard's warnings. The per-block table and the vLLM serving preflight (awq/preflight.hpp, TP 1, 2,
// 4, 8) go to stdout.
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"
#include "progress.hpp"
#include "qforge/awq/preflight.hpp"
#include "qforge/awq/quantize_model.hpp"
#include "qforge/tokenize/tokenizer.hpp"

namespace qforge::cli {

namespace {

struct awq_args {
  std::string model, calib, out, imatrix_out, device = "cpu", cuda_math = "f16";
  std::size_t group = 128, samples = 128, max_seq_len = 2048, block_len = 0;
  int threads = 0, grid = 20;
  bool quiet = false, force = false, no_clip = false, rtn = false;
  bool propagate_quantized = false, block_loss = false, clip_in_search = false,
       rtn_fallback = false, gqa_o = false, skip_first = false, gptq = false, act_order = false;
  double damp = 0.01;
};

void run_awq(const awq_args& a) {
  engine::thread_pool pool(a.threads);
  const tokenize::tokenizer tok(a.model);
  const auto prompts = awq::read_calibration_prompts(a.calib);
  awq::calibration_options co;
  co.samples = a.samples;
  co.max_seq_len = a.max_seq_len;
  co.block_len = a.block_len;
  const auto calib = awq::build_calibration(prompts, tok, co, static_cast<unsigned>(pool.size()));
  const auto& s = calib.prompt_lengths;
  std::fprintf(stderr,
               "calibration: %zu of %zu prompts, tokens per prompt min %zu / median %zu / p90 %zu "
               "/ max %zu, %zu truncated; %zu sequences, %zu tokens\n",
               calib.prompts, calib.lines, s.min, s.median, s.p90, s.max, calib.truncated,
               calib.sequences.size(), calib.tokens());
  for (const auto& w : calib.warnings) std::fprintf(stderr, "qforge: warning: %s\n", w.c_str());

  awq::awq_options o;
  o.group = a.group;
  o.grid = a.rtn ? 0 : a.grid;
  o.clip = !a.no_clip && !a.rtn;
  o.propagate_quantized = a.propagate_quantized;
  o.block_loss = a.block_loss;
  o.clip_in_search = a.clip_in_search;
  o.rtn_candidate = a.rtn_fallback || a.rtn;
  o.gqa_o_scaling = a.gqa_o;
  o.skip_first_token = a.skip_first;
  o.gptq = a.gptq && !a.rtn;
  o.gptq_act_order = a.act_order;
  o.gptq_damp = a.damp;
  o.overwrite = a.force;
  o.device = a.device == "cuda" ? awq::awq_options::backend::cuda : awq::awq_options::backend::cpu;
  o.cuda.dense = a.cuda_math == "f32"    ? awq::cuda_backend_options::math::f32
                 : a.cuda_math == "tf32" ? awq::cuda_backend_options::math::tf32
                                         : awq::cuda_backend_options::math::f16;
  o.imatrix_out = a.imatrix_out;
  o.imatrix_dataset = a.calib;
  progress bar(!a.quiet);
  o.progress = [&](std::size_t i, std::size_t n, bool done) {
    if (done) bar.step(i + 1, n, cat("layer ", i + 1, "/", n));
  };
  const auto r = awq::quantize_model(a.model, calib, a.out, o, pool);
  const auto alpha = [](const awq::group_report& g) {
    if (!g.searched) return std::string("  -  ");
    if (g.alpha < 0) return std::string(" rtn ");
    char b[16];
    std::snprintf(b, sizeof b, "%.2f ", g.alpha);
    return std::string(b);
  };
  std::printf("block  scale ratio: qkv   o     gate-up down   (rtn: s = 1 won)   seconds  "
              "(load capture qkv o gate-up down fold+clip emit)\n");
  for (std::size_t i = 0; i < r.blocks.size(); ++i) {
    const auto& b = r.blocks[i];
    const auto& t = b.phases;
    std::printf("%5zu               %s %s %s %s                     %6.2f   (%.2f %.2f %.2f %.2f "
                "%.2f %.2f %.2f %.2f)\n",
                i, alpha(b.qkv).c_str(), alpha(b.o).c_str(), alpha(b.gate_up).c_str(),
                alpha(b.down).c_str(), b.seconds, t.load, t.capture, t.qkv, t.o, t.gate_up,
                t.down, t.fold_clip, t.emit);
  }
  for (const auto& w : r.warnings) std::fprintf(stderr, "qforge: warning: %s\n", w.c_str());
  std::printf("%s: AWQ w4 g%zu, %zu calibration tokens, %.2f s\n", a.out.c_str(), a.group,
              r.tokens, r.seconds);
  if (r.device_peak_bytes != 0)
    std::printf("%s: peak CUDA memory of the search %.2f GiB\n", a.out.c_str(),
                static_cast<double>(r.device_peak_bytes) / (1024.0 * 1024.0 * 1024.0));
  if (!a.imatrix_out.empty())
    std::printf("%s: importance matrix of %zu calibration tokens (GGUF imatrix)\n",
                a.imatrix_out.c_str(), r.tokens);
  // Refusals users otherwise meet only at serve time.
  const auto pf = awq::check_vllm(a.out);
  std::fputs(awq::format_vllm_table(pf).c_str(), stdout);
}

}  // namespace

void register_awq(CLI::App& app) {
  auto a = std::make_shared<awq_args>();
  auto* cmd = app.add_subcommand(
      "awq", "Activation-aware 4-bit quantization into an AutoAWQ GEMM checkpoint (vLLM, "
             "transformers)");
  cmd->add_option("model", a->model, "HF checkpoint folder (F16 / BF16 / F32)")->required();
  cmd->add_option("--calib", a->calib,
                  "JSON lines of {\"instruction\", \"input\"} or {\"text\"} prompts")
      ->required();
  cmd->add_option("-o,--out", a->out, "Output folder (written atomically)")->required();
  cmd->add_option("--group", a->group, "Quantization group size")
      ->check(CLI::IsMember({32, 64, 128}))
      ->capture_default_str();
  cmd->add_option("--samples", a->samples, "Calibration prompts used (the first N)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--max-seq-len", a->max_seq_len, "Longer prompts are truncated")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--block-len", a->block_len,
                  "Concatenate prompts and cut N-token blocks (AutoAWQ's way; 0: whole prompts)")
      ->capture_default_str();
  cmd->add_option("-j,--threads", a->threads, "Worker threads (0: all cores)");
  cmd->add_flag("--no-clip", a->no_clip, "Skip the clipping search");
  cmd->add_option("--grid", a->grid, "Scale ratios searched (AutoAWQ: 20; 0: no scaling)")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  cmd->add_flag("--rtn", a->rtn,
                "Plain round-to-nearest (no scales, no clipping): the baseline, same format");
  // Variants of AutoAWQ's algorithm, off by default (see tests/awq/README.md for what each did).
  cmd->add_flag("--propagate-quantized", a->propagate_quantized,
                "Feed the quantized block's output to the next block (AutoAWQ: the unquantized)");
  cmd->add_flag("--block-loss", a->block_loss,
                "Judge q/k/v scale candidates on the whole block output (AutoAWQ: attention's)");
  cmd->add_flag("--clip-in-search", a->clip_in_search,
                "Judge each scale candidate with its clipping applied");
  cmd->add_flag("--rtn-fallback", a->rtn_fallback, "Let s = 1 compete with the scale grid");
  cmd->add_flag("--gqa-o", a->gqa_o,
                "Also scale o_proj through v_proj under grouped-query attention (one scale per v "
                "row); AutoAWQ scales o only when v and o have the same shape");
  cmd->add_flag("--skip-first-token", a->skip_first,
                "Leave each sequence's first token (BOS) out of the statistics and losses");
  cmd->add_flag("--gptq", a->gptq,
                "Choose the 4-bit codes by error-compensated rounding (GPTQ's update) against each "
                "linear's input covariance, within AWQ's scales and clipped ranges (same format)");
  cmd->add_flag("--act-order", a->act_order,
                "With --gptq: round the most active input channels first");
  cmd->add_option("--damp", a->damp,
                  "With --gptq: dampening added to the covariance diagonal, x its mean")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  cmd->add_option("--imatrix-out", a->imatrix_out,
                  "Also write llama.cpp's importance matrix (GGUF imatrix) of the calibration "
                  "pass, for `qforge quantize --imatrix`");
  cmd->add_option("--device", a->device, "Where the search runs: cpu (threads) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--cuda-math", a->cuda_math,
                  "Precision of the CUDA products: f16 (AutoAWQ's), tf32, or f32 (the CPU's)")
      ->check(CLI::IsMember({"f16", "tf32", "f32"}))
      ->capture_default_str();
  cmd->add_flag("--force", a->force, "Replace an existing output folder");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  cmd->callback([a] { run_awq(*a); });
}

}  // namespace qforge::cli
