// SPDX-License-Identifier: MIT
// qforge bench ARTEFACT... [--eval FILE] [--tasks FILE] [-o DIR]: runs each artefact (a model
// folder, an AWQ folder, GGUF files) on the engine and prints the comparison table
// (report/benchmark.hpp). The first artefact is the reference the others are measured against:
// pass the FP16 / BF16 checkpoint first.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench_output.hpp"
#include "commands.hpp"
#include "qforge/engine/measure.hpp"
#include "qforge/report/benchmark.hpp"

namespace qforge::cli {

namespace {

struct bench_args {
  std::vector<std::string> artefacts;
  std::string eval, tasks, tokenizer, out, lora;
  report::bench_settings st;
  bool no_plot = false, quiet = false;
};

// The tokenizer.json for the table's texts: --tokenizer, else the first folder's.
std::string tokenizer_for(const bench_args& a) {
  namespace fs = std::filesystem;
  if (!a.tokenizer.empty()) return a.tokenizer;
  for (const auto& p : a.artefacts)
    if (fs::is_directory(p) && fs::exists(fs::path(p) / "tokenizer.json")) return p;
  for (const auto& p : a.artefacts)
    if (fs::exists(fs::path(p).parent_path() / "tokenizer.json")) return fs::path(p).parent_path().string();
  throw error(error::kind::argument, a.artefacts.front(),
              "no tokenizer.json beside the artefacts: pass --tokenizer");
}

void run_bench(const bench_args& a) {
  engine::thread_pool pool(a.st.threads);
  report::bench_inputs in;
  in.artefacts = a.artefacts;
  std::unique_ptr<tokenize::tokenizer> tok;
  if (!a.eval.empty() || !a.tasks.empty()) tok = std::make_unique<tokenize::tokenizer>(tokenizer_for(a));
  const auto ref = report::artefact_config(a.artefacts.front());
  if (!a.eval.empty()) in.docs = report::read_documents(a.eval, *tok, ref.vocab, a.st.max_docs);
  if (!a.tasks.empty()) in.tasks = report::read_tasks(a.tasks);
  in.tok = tok.get();
  std::optional<engine::lora_adapter> adapter;
  if (!a.lora.empty()) in.lora = &adapter.emplace(engine::read_lora(a.lora));
  if (!a.out.empty()) std::filesystem::create_directories(a.out);
  auto rep = run_benchmark_on_device(in, a.st, pool, a.quiet);
  rep.eval_file = a.eval;
  rep.tasks_file = a.tasks;
  print_and_save_report(rep, a.out, !a.no_plot, ref.max_ctx);
}

}  // namespace

void add_bench_settings(CLI::App& cmd, report::bench_settings& st) {
  cmd.add_option("--ctx", st.ctx, "Tokens kept from the start of each document")
      ->check(CLI::Range(2, 1 << 20))->capture_default_str();
  cmd.add_option("--max-docs", st.max_docs, "Evaluate at most this many documents (0: all)");
  cmd.add_option("--speed-prompt", st.speed_prompt, "Prompt tokens of the speed measurement")
      ->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd.add_option("--speed-decode", st.speed_decode, "Decoded tokens of the speed measurement")
      ->capture_default_str();
  cmd.add_option("--task-tokens", st.task_tokens, "Greedy tokens generated per task")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd.add_option("-j,--threads", st.threads, "Worker threads (0: one per hardware thread)");
  cmd.add_option("--device", st.device, "Where the engine runs")->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
}

void register_bench(CLI::App& app) {
  auto a = std::make_shared<bench_args>();
  auto* cmd = app.add_subcommand(
      "bench", "Benchmark artefacts (model folder, AWQ folder, .gguf) against the first one");
  cmd->add_option("artefacts", a->artefacts,
                  "Reference checkpoint first, then AWQ folders and GGUF files")
      ->required();
  cmd->add_option("--eval", a->eval, "JSON lines of {\"text\"} or {\"ids\"}: perplexity and KL");
  cmd->add_option("--tasks", a->tasks, "JSON lines of {\"prompt\", \"expected\"}: greedy answers");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json or model folder");
  cmd->add_option("-o,--out", a->out, "Folder for results.md / .csv / .json / .png");
  cmd->add_option("--lora", a->lora, "PEFT LoRA adapter folder applied on every artefact");
  cmd->add_flag("--no-plot", a->no_plot, "Do not draw results.png");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  add_bench_settings(*cmd, a->st);
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace qforge::cli
