// SPDX-License-Identifier: MIT
// qforge eval MODEL: runs the CPU engine on a model folder or a GGUF file and prints perplexity
// (the fixtures' protocol: first --ctx tokens of each document, BOS as the tokenizer adds it),
// optionally KL divergence and top-1 agreement against a reference model, and prefill / decode
// throughput. Documents come from a JSON-lines file: {"text": ...} lines are tokenized with the
// model's tokenizer.json (--tokenizer for a GGUF), {"ids": [...]} lines are used as they are.
// --device cuda runs the same measurements on engine::cuda_session (qforge built with CUDA).
// --window W [--stride S] measures the perplexity of one long stream instead (engine/
// sliding_perplexity.hpp): the --eval documents, each tokenized as above and kept whole,
// concatenated in file order, or a plain-text --text file tokenized as one text.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "progress.hpp"
#include "qforge/engine/measure.hpp"
#include "qforge/engine/sliding_perplexity.hpp"
#include "qforge/report/documents.hpp"
#include "qforge/tokenize/tokenizer.hpp"
#if defined(QFORGE_HAVE_CUDA_KERNELS)
#include "qforge/engine/cuda/session.hpp"
#endif

namespace qforge::cli {

namespace {

struct eval_args {
  std::string model, eval, text, reference, tokenizer, device = "cpu";
  std::size_t max_docs = 0, ctx = 512, speed_prompt = 128, speed_decode = 64;
  long long window = 0, stride = 0;  // 0: not given (stride: window / 2)
  int threads = 0;
  bool no_speed = false, cuda_f16 = false, stride_given = false;
  [[nodiscard]] bool sliding() const { return window != 0 || stride_given || !text.empty(); }
};

// --window / --stride / --text, checked before the model loads.
engine::sliding_options sliding_settings(const eval_args& a) {
  if (!a.text.empty() && !a.eval.empty())
    throw error(error::kind::argument, "--text and --eval: give one stream, not both");
  if (!a.text.empty() && a.window == 0)
    throw error(error::kind::argument, a.text, "--text needs --window (tokens per forward pass)");
  if (a.stride_given && a.window == 0)
    throw error(error::kind::argument, "--stride needs --window");
  if (a.window != 0 && a.eval.empty() && a.text.empty())
    throw error(error::kind::argument, "--window needs a stream: --eval FILE or --text FILE");
  if (!a.reference.empty())
    throw error(error::kind::argument,
                "--window: KL divergence (--ref) is measured per document only");
  if (a.window < 2)
    throw error(error::kind::argument, cat("--window ", a.window, ": needs 2 tokens or more"));
  if (a.stride < 0 || (a.stride == 0 && a.stride_given))
    throw error(error::kind::argument, cat("--stride ", a.stride, ": needs 1 token or more"));
  engine::sliding_options o;
  o.window = static_cast<std::size_t>(a.window);
  o.stride = a.stride ? static_cast<std::size_t>(a.stride) : o.window / 2;
  engine::check_sliding(2, o, cat("--window ", o.window, " --stride ", o.stride));
  return o;
}

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

// The stream of --window: --text tokenized as one text (BOS once, where the tokenizer adds it), or
// the --eval documents (at most --max-docs) each tokenized as the per-document protocol does and
// concatenated whole, so every document keeps its own BOS as a separator.
std::vector<std::int32_t> read_stream(const eval_args& a, const engine::model& m) {
  std::vector<std::int32_t> ids;
  if (!a.text.empty()) {
    std::ifstream in(a.text, std::ios::binary);
    if (!in) throw error(error::kind::io, a.text, "cannot open");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw error(error::kind::io, a.text, "read failed");
    const tokenize::tokenizer tok(tokenizer_path(a));
    for (const auto id : tok.encode(text)) {
      if (id >= m.config().vocab)
        throw error(error::kind::format, a.text,
                    cat("token id ", id, " outside the model's vocabulary of ", m.config().vocab,
                        " (tokenizer and model do not match?)"));
      ids.push_back(static_cast<std::int32_t>(id));
    }
  } else {
    for (const auto& d : read_docs(a, m)) ids.insert(ids.end(), d.begin(), d.end());
  }
  const std::string& file = a.text.empty() ? a.eval : a.text;
  if (ids.size() < 2)
    throw error(error::kind::argument, file,
                cat("a stream of ", ids.size(), " token", ids.size() == 1 ? "" : "s",
                    ": nothing to predict"));
  return ids;
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
  if (a.sliding()) {
    const auto o = sliding_settings(a);
    const auto ids = read_stream(a, m);
    const std::size_t windows = engine::sliding_windows(ids.size(), o);
    // One progress line per second at most (a log gets a few lines, a terminal a live ETA).
    cli::progress bar(true);
    auto last = std::chrono::steady_clock::now();
    const auto r = engine::sliding_perplexity(s, ids, o, [&](std::size_t done, std::size_t total) {
      const auto now = std::chrono::steady_clock::now();
      if (done != total && now - last < std::chrono::seconds(1)) return;
      last = now;
      bar.step(done, total, cat("windows of ", o.window, ", stride ", o.stride));
    });
    std::printf("perplexity: %.4f over %zu tokens of a %zu-token stream (window %zu, stride %zu, "
                "%zu windows), %.1f s, %.0f tok/s\n",
                r.ppl(), r.tokens, ids.size(), o.window, o.stride, windows, r.seconds,
                static_cast<double>(r.evaluated) / r.seconds);
  } else if (!a.eval.empty()) {
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
  if (a.sliding()) (void)sliding_settings(a);  // fail before loading the model
  const auto m = engine::model::load(a.model);
  describe("model", m);
  const std::size_t cap = std::max({a.ctx, a.speed_prompt + a.speed_decode,
                                    static_cast<std::size_t>(std::max(a.window, 0LL))});
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
      "eval", "Run a model (HF folder or .gguf) on the CPU or a CUDA GPU: perplexity (per "
              "document, or --window over one long stream), KL divergence, speed");
  cmd->add_option("model", a->model, "Model folder (config.json + safetensors) or .gguf file")
      ->required();
  cmd->add_option("--eval", a->eval, "JSON lines of {\"text\"} or {\"ids\"} documents");
  cmd->add_option("--window", a->window,
                  "Sliding-window perplexity of one stream, W tokens per forward pass: the "
                  "--eval documents tokenized as usual (BOS each), kept whole and concatenated, "
                  "or --text; each window scores only the tokens the previous one did not (--ctx "
                  "is not used)");
  auto* stride = cmd->add_option(
      "--stride", a->stride,
      "Tokens between window starts, 1..W (default W/2; W: disjoint chunks, each chunk's first "
      "token unscored)");
  cmd->add_option("--text", a->text,
                  "Plain-text file for --window, tokenized as one text (BOS once at the start)");
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
  cmd->callback([a, stride] {
    a->stride_given = stride->count() > 0;
    run_eval(*a);
  });
}

}  // namespace qforge::cli
