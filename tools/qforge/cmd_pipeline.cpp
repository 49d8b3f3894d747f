// SPDX-License-Identifier: MIT
// qforge pipeline [MODEL_DIR] [--calib FILE] [--eval FILE] [--tasks FILE] [-o OUT_DIR]: the whole
// flow -- AWQ checkpoint, GGUF files (F16, Q8_0, Q5_K_M, Q4_K_M by default), then every artefact
// benchmarked against the checkpoint in one table. With no MODEL_DIR it runs on the tiny model and
// data shipped with qforge (examples/models, examples/data), so a fresh install shows the flow in
// minutes on a CPU.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_output.hpp"
#include "commands.hpp"
#include "progress.hpp"
#include "qforge/awq/quantize_model.hpp"
#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/convert/imatrix.hpp"
#include "qforge/convert/quantize.hpp"
#include "qforge/report/benchmark.hpp"
#include "qforge/tokenize/tokenizer.hpp"

#ifndef QFORGE_SOURCE_EXAMPLES
#define QFORGE_SOURCE_EXAMPLES ""
#endif

namespace qforge::cli {

namespace {

namespace fs = std::filesystem;

struct pipeline_args {
  std::string model, calib, eval, tasks, lora, out = "qforge-out";
  std::vector<std::string> formats{"f16", "q8_0", "q5_k_m", "q4_k_m"};
  std::size_t samples = 128, group = 128;
  report::bench_settings st;
  bool no_awq = false, no_plot = false, quiet = false, imatrix = false, gptq = false;
};

// The examples folder shipped with qforge: $QFORGE_EXAMPLES, beside an installed binary
// (<prefix>/share/qforge/examples), or the source tree this binary was built from.
fs::path examples_dir() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("QFORGE_EXAMPLES")) candidates.emplace_back(env);
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share/qforge/examples");
  candidates.emplace_back(QFORGE_SOURCE_EXAMPLES);
  for (const auto& c : candidates)
    if (!c.empty() && fs::exists(c / "models/tiny-llama/config.json", ec)) return c;
  throw error(error::kind::argument,
              "no MODEL_DIR given and the shipped examples were not found (set QFORGE_EXAMPLES to "
              "qforge's examples folder)");
}

void default_inputs(pipeline_args& a) {
  if (!a.model.empty() && !a.calib.empty() && !a.eval.empty() && !a.tasks.empty()) return;
  const bool embedded = a.model.empty();
  const auto data = [&] { return examples_dir() / "data"; };
  if (embedded) a.model = (examples_dir() / "models/tiny-llama").string();
  if (a.calib.empty()) a.calib = (data() / "calibration.jsonl").string();
  if (a.eval.empty()) a.eval = (data() / "eval.jsonl").string();
  if (a.tasks.empty()) a.tasks = (data() / "tasks.jsonl").string();
  if (embedded)
    std::fprintf(stderr, "qforge: no model given: running on the shipped %s\n", a.model.c_str());
}

std::string awq_step(const pipeline_args& a, engine::thread_pool& pool) {
  const auto dir = (fs::path(a.out) / "awq").string();
  const tokenize::tokenizer tok(a.model);
  const auto prompts = awq::read_calibration_prompts(a.calib);
  awq::calibration_options co;
  co.samples = a.samples;
  const auto calib = awq::build_calibration(prompts, tok, co, static_cast<unsigned>(pool.size()));
  const auto& s = calib.prompt_lengths;
  std::fprintf(stderr, "== AWQ: %zu prompts of %s, tokens min %zu / median %zu / p90 %zu / max %zu\n",
               calib.prompts, a.calib.c_str(), s.min, s.median, s.p90, s.max);
  for (const auto& w : calib.warnings) std::fprintf(stderr, "qforge: warning: %s\n", w.c_str());
  awq::awq_options o;
  o.group = a.group;
  o.overwrite = true;
  o.gptq = a.gptq;
  // --device cuda runs the AWQ search on the GPU too (fp16 products, as AutoAWQ's search).
  if (a.st.device == "cuda") o.device = awq::awq_options::backend::cuda;
  if (a.imatrix) {
    o.imatrix_out = (fs::path(a.out) / "imatrix.gguf").string();
    o.imatrix_dataset = a.calib;
  }
  progress bar(!a.quiet);
  o.progress = [&](std::size_t i, std::size_t n, bool done) {
    if (done) bar.step(i + 1, n, cat("AWQ layer ", i + 1, "/", n));
  };
  const auto r = awq::quantize_model(a.model, calib, dir, o, pool);
  std::printf("%s: AWQ w4 g%zu from %zu calibration tokens, %.1f s\n", dir.c_str(), a.group,
              r.tokens, r.seconds);
  return dir;
}

std::string gguf_step(const pipeline_args& a, const std::string& type, int threads,
                      const convert::importance_matrix* imatrix) {
  const auto mix = convert::find_mix(type);
  // llama.cpp's naming: model-f16.gguf for plain types, model-Q4_K_M.gguf for quantized ones.
  std::string name = type;
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (mix) name = mix->name;
  const auto path = (fs::path(a.out) / "gguf" / cat("model-", name, ".gguf")).string();
  double seconds = 0;
  std::uint64_t bytes = 0;
  if (mix && mix->ftype != quant::file_type::mostly_q8_0) {
    convert::quantize_options q;
    q.ftype = mix->ftype;
    q.threads = threads;
    q.imatrix = imatrix;
    const auto r = convert::convert_to_gguf_mix(a.model, path, q);
    seconds = r.seconds, bytes = r.bytes_written;
  } else {
    convert::conversion_options opt;
    opt.type = type == "f32"    ? quant::qtype::f32
               : type == "bf16" ? quant::qtype::bf16
               : type == "f16"  ? quant::qtype::f16
               : type == "q8_0" || type == "Q8_0"
                   ? quant::qtype::q8_0
                   : throw error(error::kind::argument,
                                 cat("--formats: unknown format '", type, "' (f32, f16, bf16, q8_0 or ",
                                     convert::mix_names(), ")"));
    opt.threads = threads;
    const auto r = convert::convert_to_gguf(a.model, path, opt);
    seconds = r.seconds, bytes = r.bytes_written;
  }
  std::printf("%s: %.1f MiB, %.2f s\n", path.c_str(), static_cast<double>(bytes) / (1 << 20), seconds);
  return path;
}

void run_pipeline(pipeline_args a) {
  default_inputs(a);
  const auto t0 = std::chrono::steady_clock::now();
  engine::thread_pool pool(a.st.threads);
  fs::create_directories(fs::path(a.out) / "gguf");
  // Read every input before the long steps, so a bad file fails in the first second.
  const tokenize::tokenizer tok(a.model);
  const auto cfg = report::artefact_config(a.model);
  report::bench_inputs in;
  in.docs = report::read_documents(a.eval, tok, cfg.vocab, a.st.max_docs);
  in.tasks = report::read_tasks(a.tasks);
  in.tok = &tok;
  if (!a.no_awq) (void)awq::read_calibration_prompts(a.calib);
  if (a.imatrix && a.no_awq)
    throw error(error::kind::argument, "--imatrix comes from the AWQ calibration pass: drop --no-awq");
  std::optional<engine::lora_adapter> adapter;
  if (!a.lora.empty()) {
    adapter = engine::read_lora(a.lora);
    auto probe = engine::model::load(a.model);  // fails now, not after the long steps
    engine::attach_lora(probe, *adapter);
  }

  in.artefacts.push_back(a.model);
  if (!a.no_awq) in.artefacts.push_back(awq_step(a, pool));
  // With --imatrix the K-quants are activation-aware, from the AWQ calibration pass's statistics.
  std::optional<convert::importance_matrix> imatrix;
  if (a.imatrix) imatrix = convert::read_imatrix((fs::path(a.out) / "imatrix.gguf").string());
  std::fprintf(stderr, "== GGUF: %zu files\n", a.formats.size());
  for (std::size_t i = 0; i < a.formats.size(); ++i) {
    if (!a.quiet) std::fprintf(stderr, "[%zu/%zu] GGUF %s\n", i + 1, a.formats.size(), a.formats[i].c_str());
    in.artefacts.push_back(gguf_step(a, a.formats[i], a.st.threads, imatrix ? &*imatrix : nullptr));
  }
  std::fprintf(stderr, "== benchmark: %zu artefacts, %zu documents, %zu tasks\n", in.artefacts.size(),
               in.docs.size(), in.tasks.size());
  auto rep = run_benchmark_on_device(in, a.st, pool, a.quiet);
  rep.eval_file = a.eval;
  rep.tasks_file = a.tasks;
  print_and_save_report(rep, a.out, !a.no_plot, cfg.max_ctx);
  if (adapter) {
    // The adapter the user will serve, on every base: the drift it suffers on each quantized
    // base against the FP16 base with the same adapter.
    std::fprintf(stderr, "== benchmark with the LoRA adapter %s on every artefact\n", a.lora.c_str());
    in.lora = &*adapter;
    auto with = run_benchmark_on_device(in, a.st, pool, a.quiet);
    with.eval_file = a.eval;
    with.tasks_file = a.tasks;
    std::printf("\nWith the LoRA adapter %s on every base (reference: FP16 + adapter):\n", a.lora.c_str());
    print_and_save_report(with, a.out, !a.no_plot, cfg.max_ctx, "results-lora");
  }
  std::printf("Pipeline finished in %.1f s.\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

void register_pipeline(CLI::App& app) {
  auto a = std::make_shared<pipeline_args>();
  auto* cmd = app.add_subcommand(
      "pipeline", "FP16 checkpoint -> AWQ + GGUF files -> benchmark table (default: shipped tiny model)");
  cmd->add_option("model", a->model, "HF checkpoint folder (default: the shipped tiny-llama)");
  cmd->add_option("--calib", a->calib, "Calibration JSONL ({\"instruction\", \"input\"} or {\"text\"})");
  cmd->add_option("--eval", a->eval, "Evaluation JSONL ({\"text\"}) for perplexity and KL");
  cmd->add_option("--tasks", a->tasks, "Task JSONL ({\"prompt\", \"expected\"}) for greedy answers");
  cmd->add_option("-o,--out", a->out, "Output folder: awq/, gguf/, results.*")->capture_default_str();
  cmd->add_option("--formats", a->formats, "GGUF formats to write")->delimiter(',')->capture_default_str();
  cmd->add_option("--samples", a->samples, "Calibration prompts used")->capture_default_str();
  cmd->add_option("--group", a->group, "AWQ group size")->check(CLI::IsMember({32, 64, 128}))
      ->capture_default_str();
  cmd->add_flag("--no-awq", a->no_awq, "Skip the AWQ checkpoint");
  cmd->add_flag("--imatrix", a->imatrix,
                "Write OUT_DIR/imatrix.gguf from the AWQ calibration pass and make the K-quants with it");
  cmd->add_option("--lora", a->lora,
                  "PEFT LoRA adapter: also benchmark every artefact with it applied (results-lora.*)");
  cmd->add_flag("--gptq", a->gptq,
                "AWQ with error-compensated rounding (qforge awq --gptq): lower perplexity, same format");
  cmd->add_flag("--no-plot", a->no_plot, "Do not draw results.png");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  add_bench_settings(*cmd, a->st);
  cmd->callback([a] { run_pipeline(*a); });
}

}  // namespace qforge::cli
