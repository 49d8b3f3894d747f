// SPDX-License-Identifier: MIT
// qforge eval MODEL: runs the CPU engine on a model folder or a GGUF file and prints perplexity
// (the fixtures' protocol: first --ctx tokens of each document, BOS as the tokenizer adds it),
// optionally KL divergence and top-1 agreement against a reference model, and prefill / decode
// throughput. Documents come from a JSON-lines file: {"text": ...} lines are tokenized with the
// model's tokenizer.json (--tokenizer for a GGUF), {"ids": [...]} lines are used as they are.
// --device cuda runs the same measurements on engine::cuda_session (qforge built with CUDA).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "qforge/engine/measure.hpp"
#include "qforge/report/documents.hpp"
#include "qforge/tokenize/tokenizer.hpp"
#if defined(QFORGE_HAVE_CUDA_KERNELS)
#include "qforge/engine/cuda/session.hpp"
#endif

namespace qforge::cli {

namespace {

struct eval_args {
  std::string model, eval, reference, tokenizer, device = "cpu";
  std::size_t max_docs = 0, ctx = 512, speed_prompt = 128, speed_decode = 64;
  int threads = 0;
  bool no_speed = false, cuda_f16 = false;
};

// The tokenizer.json for `model`: --tokenizer, else the model folder's, else the GGUF's folder's.
std::string tokenizer_path(const eval_args& a) {
  namespace fs = std::filesystem;
  if (!a.tokenizer.empty()) return a.tokenizer;
  const fs::path m(a.model);
  for (const fs::path& p : {m / "tokenizer.json", m.parent_path() / "tokenizer.json"})
    if (fs::exists(p)) return p.string();
  throw error(error::kind::argument, a.model,
              "eval texts need a tokenizer: pass --tokenizer (a model folder or tokenizer.json)");
}

// The same reader as `qforge bench` (report/documents.hpp): {"text"} lines tokenized, {"ids"}
// lines checked id by id against the vocabulary, errors naming the file and line.
std::vector<std::vector<std::int32_t>> read_docs(const eval_args& a, const engine::model& m) {
  std::unique_ptr<tokenize::tokenizer> tok;
  std::ifstream probe(a.eval);
  if (!probe) throw error(error::kind::io, a.eval, "cannot open");
  for (std::string line; std::getline(probe, line);)
    if (line.find("\"text\"") != std::string::npos) {
      tok = std::make_unique<tokenize::tokenizer>(tokenizer_path(a));
      break;
    }
  if (!tok) {  // ids only: no tokenizer needed; an empty one satisfies the reader's signature
    const nlohmann::json none = {{"model", {{"type", "BPE"}, {"vocab", nlohmann::json::object()},
                                           {"merges", nlohmann::json::array()}}}};
    tok = std::make_unique<tokenize::tokenizer>(none, "(no tokenizer)");
  }
  return report::read_documents(a.eval, *tok, m.config().vocab, a.max_docs);
}

void describe(const char* label, const engine::model& m) {
  const auto& c = m.config();
  std::printf("%s: %s (%s, %s), %u layers, hidden %u, heads %u/%u, vocab %u, %.1f MiB of matrices\n",
              label, m.path().c_str(), m.source().c_str(), format::hf::to_string(c.arch),
              c.n_layers, c.hidden, c.n_heads, c.n_kv_heads, c.vocab,
              static_cast<double>(m.matrix_bytes()) / (1 << 20));
}

// Perplexity / KL divergence / speed on session s; make_reference(model) opens a session of the
// same kind for --ref.
template <class Session, class MakeReference>
void measure(const eval_args& a, const engine::model& m, Session& s, MakeReference make_reference) {
  if (!a.eval.empty()) {
    const auto docs = read_docs(a, m);
    engine::perplexity_options o;
    o.max_tokens = a.ctx;
    if (a.reference.empty()) {
      const auto r = engine::perplexity(s, docs, o);
      std::printf("perplexity: %.4f over %zu tokens of %zu documents (%zu skipped), %.1f s, "
                  "%.0f tok/s\n",
                  r.ppl(), r.tokens, r.docs, r.skipped, r.seconds,
                  static_cast<double>(r.tokens + r.docs) / r.seconds);
    } else {
      const auto ref = engine::model::load(a.reference);
      describe("reference", ref);
      auto rs = make_reference(ref);
      auto r = engine::kl_divergence(s, rs, docs, o);
      std::sort(r.kl_per_token.begin(), r.kl_per_token.end());
      const auto pct = [&](double p) {
        if (r.kl_per_token.empty()) return 0.0;
        const auto i = static_cast<std::size_t>(p * static_cast<double>(r.kl_per_token.size() - 1));
        return r.kl_per_token[i];
      };
      std::printf("perplexity: %.4f (reference %.4f, %+.3f %%) over %zu tokens of %zu documents\n",
                  r.test.ppl(), r.reference.ppl(), 100.0 * (r.test.ppl() / r.reference.ppl() - 1),
                  r.test.tokens, r.test.docs);
      std::printf("KL divergence: mean %.6f, median %.6f, p99 %.6f, max %.6f; top-1 agreement "
                  "%.2f %%\n",
                  r.kl_mean(), pct(0.5), pct(0.99), r.kl_max, 100.0 * r.top1_agreement());
    }
  }
  if (!a.no_speed) {
    const auto sp = engine::measure_speed(s, a.speed_prompt, a.speed_decode);
    std::printf("speed: prefill %.1f tok/s (%zu-token prompt, time to first token %.1f ms), decode "
                "%.1f tok/s\n",
                sp.prefill_tok_s, a.speed_prompt, 1e3 * sp.time_to_first_token, sp.decode_tok_s);
  }
}

void run_eval(const eval_args& a) {
  const auto m = engine::model::load(a.model);
  describe("model", m);
  const std::size_t cap = std::max(a.ctx, a.speed_prompt + a.speed_decode);
  if (a.device == "cuda") {
#if defined(QFORGE_HAVE_CUDA_KERNELS)
    if (!engine::cuda_device_available())
      throw error(error::kind::cuda, "--device cuda: no CUDA device is available");
    engine::cuda_options o;
    if (a.cuda_f16) o.dense = engine::cuda_options::math::f16;
    engine::cuda_session s(m, cap, o);
    std::printf("device: %s\n", s.describe().c_str());
    measure(a, m, s, [&](const engine::model& r) { return engine::cuda_session(r, a.ctx, o); });
#else
    throw error(error::kind::unsupported,
                "--device cuda: this qforge was built without CUDA (configure with nvcc and "
                "QFORGE_CUDA=AUTO or ON)");
#endif
    return;
  }
  engine::thread_pool pool(a.threads);
  std::printf("kernels: %s, %zu threads\n", engine::cpu_ops().name, pool.size());
  engine::session s(m, pool, cap);
  measure(a, m, s, [&](const engine::model& r) { return engine::session(r, pool, a.ctx); });
}

}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<eval_args>();
  auto* cmd = app.add_subcommand(
      "eval", "Run a model (HF folder or .gguf) on the CPU or a CUDA GPU: perplexity, KL "
              "divergence, speed");
  cmd->add_option("model", a->model, "Model folder (config.json + safetensors) or .gguf file")
      ->required();
  cmd->add_option("--eval", a->eval, "JSON lines of {\"text\"} or {\"ids\"} documents");
  cmd->add_option("--max-docs", a->max_docs, "Evaluate at most this many documents (0: all)");
  cmd->add_option("--threads", a->threads, "Worker threads (0: one per hardware thread)");
  cmd->add_option("--ctx", a->ctx, "Tokens kept from the start of each document")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--ref", a->reference, "Reference model for KL divergence / top-1 agreement");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json or model folder (for a .gguf)");
  cmd->add_option("--speed-prompt", a->speed_prompt, "Prompt tokens of the speed measurement")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--speed-decode", a->speed_decode, "Decoded tokens of the speed measurement");
  cmd->add_flag("--no-speed", a->no_speed, "Skip the speed measurement");
  cmd->add_option("--device", a->device, "Where the engine runs: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_flag("--cuda-f16", a->cuda_f16,
                "CUDA: fp16 activations for the dense cuBLAS products (tensor cores; logits "
                "within about 1e-2 of float32)");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace qforge::cli
