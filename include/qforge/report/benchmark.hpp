// SPDX-License-Identifier: MIT
// The benchmark table: every artefact run by the same engine on the same inputs, each row holding
// what a deployment decision needs -- size and bits per weight, prefill / decode speed and time to
// first token, peak memory, perplexity and its change from the reference (FP16) model, the mean KL
// divergence and top-1 agreement of the next-token distributions against the reference, and the
// share of tasks answered right by greedy decoding.
//
// Two phases. Speed, memory and tasks load one artefact at a time (so the peak-memory probe sees
// only it). Quality walks the documents once with every artefact loaded beside the reference: each
// document's reference logits are computed once and compared with every artefact's, instead of
// re-running the reference per artefact -- the price is that all artefacts are mapped together.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qforge/engine/divergence.hpp"
#include "qforge/engine/lora.hpp"
#include "qforge/engine/measure.hpp"
#include "qforge/report/artefact.hpp"
#include "qforge/report/documents.hpp"
#include "qforge/report/memory.hpp"

namespace qforge::report {

struct bench_settings {
  std::size_t ctx = 512;            // tokens kept per document (the fixtures' protocol)
  std::size_t max_docs = 0;         // 0: every document
  std::size_t speed_prompt = 128;   // prompt of the prefill / time-to-first-token measurement
  std::size_t speed_decode = 64;    // tokens of the decode measurement
  int speed_reps = 3;               // best of
  std::size_t task_tokens = 24;     // greedy tokens generated per task
  int threads = 0;                  // 0: every hardware thread
  std::string device = "cpu";
};

struct task_score {
  std::size_t total = 0, exact = 0, contains = 0;
  [[nodiscard]] double exact_rate() const noexcept {
    return total ? static_cast<double>(exact) / static_cast<double>(total) : 0.0;
  }
  [[nodiscard]] double contains_rate() const noexcept {
    return total ? static_cast<double>(contains) / static_cast<double>(total) : 0.0;
  }
};

struct bench_row {
  artefact_info artefact;
  bool reference = false;
  double compression = 0;  // reference bytes / these bytes
  engine::speed_result speed;
  bool peak_known = false;
  std::uint64_t peak_bytes = 0;
  double ppl = 0, ppl_delta_pct = 0;
  double kl_mean = 0, kl_p99 = 0, kl_max = 0, top1 = 1;
  std::size_t tokens = 0, docs = 0;
  task_score tasks;
  std::vector<std::string> answers;  // greedy continuation of each task prompt
  double seconds = 0;
};

struct bench_report {
  bench_settings settings;
  std::string eval_file, tasks_file, kernels, adapter;
  std::size_t threads = 0;
  std::vector<bench_row> rows;  // rows[0] is the reference
};

namespace detail {

inline std::string normalise_answer(const std::string& s) {
  std::string out;
  bool space = false;
  for (const char c : s) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

inline bool is_word_char(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         (static_cast<unsigned char>(c) >= 0x80);
}

}  // namespace detail

// Exact: the continuation starts with the expected answer and the answer ends at a word boundary
// ("Moses" matches "Moses, saying" but not "Mosesite"). Contains: the answer appears anywhere.
inline void score_answer(const std::string& continuation, const std::string& expected,
                         task_score& s) {
  const auto got = detail::normalise_answer(continuation);
  const auto want = detail::normalise_answer(expected);
  ++s.total;
  if (got.compare(0, want.size(), want) == 0 &&
      (got.size() == want.size() || !detail::is_word_char(got[want.size()]) ||
       !detail::is_word_char(want.back())))
    ++s.exact;
  if (got.find(want) != std::string::npos) ++s.contains;
}

// Answers every task by greedy decoding from an empty cache; returns the continuations.
template <class Session>
std::vector<std::string> answer_tasks(Session& s, const tokenize::tokenizer& tok,
                                      const std::vector<task>& tasks, std::size_t max_new,
                                      task_score& score) {
  std::vector<std::string> answers;
  const auto eos = s.weights().config().eos_id;
  for (const auto& t : tasks) {
    const auto ids = tok.encode(t.prompt);
    const std::vector<std::int32_t> prompt(ids.begin(), ids.end());
    const auto g = engine::generate_greedy(
        s, prompt, max_new,
        eos ? std::optional<std::int32_t>(static_cast<std::int32_t>(*eos)) : std::nullopt);
    const std::vector<std::uint32_t> out(g.tokens.begin(), g.tokens.end());
    answers.push_back(tok.decode(out, /*skip_special_tokens=*/true));
    score_answer(answers.back(), t.expected, score);
  }
  return answers;
}

struct bench_inputs {
  std::vector<std::string> artefacts;  // artefacts[0] is the reference (FP16 / BF16 checkpoint)
  std::vector<std::vector<std::int32_t>> docs;
  std::vector<task> tasks;
  const tokenize::tokenizer* tok = nullptr;  // needed for tasks
  // Applied to every artefact, the reference included: the table then shows what serving the
  // adapter on each quantized base costs against serving it on the FP16 model.
  const engine::lora_adapter* lora = nullptr;
};

namespace detail {

inline engine::model load_with_adapter(const std::string& path, const engine::lora_adapter* lora) {
  auto m = engine::model::load(path);
  if (lora) engine::attach_lora(m, *lora);
  return m;
}

}  // namespace detail

// `make_session(model, ctx)` returns a std::unique_ptr to a session of the backend being measured;
// `on_progress(message)` reports each step. Throws what the loaders and sessions throw.
template <class MakeSession>
bench_report run_benchmark(const bench_inputs& in, const bench_settings& st,
                           MakeSession&& make_session,
                           const std::function<void(const std::string&)>& on_progress = {}) {
  using clock = std::chrono::steady_clock;
  if (in.artefacts.empty()) throw error(error::kind::argument, "benchmark: no artefacts");
  const auto say = [&](const std::string& m) {
    if (on_progress) on_progress(m);
  };
  bench_report rep;
  rep.settings = st;
  std::size_t longest_task = 0;
  for (const auto& t : in.tasks)
    longest_task = std::max(longest_task, in.tok ? in.tok->encode(t.prompt).size() : 0);
  const std::size_t speed_ctx = std::max(st.speed_prompt + st.speed_decode, longest_task + st.task_tokens);

  // Phase 1: one artefact at a time -- speed, peak memory, tasks.
  for (std::size_t i = 0; i < in.artefacts.size(); ++i) {
    bench_row row;
    row.artefact = describe_artefact(in.artefacts[i]);
    row.reference = i == 0;
    say(cat("speed and tasks ", i + 1, "/", in.artefacts.size(), ": ", row.artefact.format, " (",
            row.artefact.path, ")"));
    const auto t0 = clock::now();
    const peak_memory_probe probe;
    {
      const auto m = detail::load_with_adapter(in.artefacts[i], in.lora);
      auto s = make_session(m, speed_ctx);
      row.speed = engine::measure_speed(*s, st.speed_prompt, st.speed_decode, st.speed_reps);
      if (!in.tasks.empty() && in.tok)
        row.answers = answer_tasks(*s, *in.tok, in.tasks, st.task_tokens, row.tasks);
      row.peak_known = probe.available();
      row.peak_bytes = probe.peak_above_start();
    }
    row.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    rep.rows.push_back(std::move(row));
  }
  for (auto& r : rep.rows)
    r.compression = r.artefact.bytes
                        ? static_cast<double>(rep.rows[0].artefact.bytes) / static_cast<double>(r.artefact.bytes)
                        : 0.0;

  // Phase 2: the documents once, every artefact against the reference's logits.
  if (in.docs.empty()) return rep;
  const auto t0 = clock::now();
  std::vector<engine::model> models;
  models.reserve(in.artefacts.size());
  for (const auto& p : in.artefacts) models.push_back(detail::load_with_adapter(p, in.lora));
  const std::size_t V = models[0].config().vocab;
  for (std::size_t i = 1; i < models.size(); ++i)
    if (models[i].config().vocab != V)
      throw error(error::kind::argument, in.artefacts[i],
                  cat("vocabulary of ", models[i].config().vocab, " tokens, reference has ", V));
  std::vector<decltype(make_session(models[0], st.ctx))> sessions;
  for (const auto& m : models) sessions.push_back(make_session(m, st.ctx));
  std::vector<std::vector<double>> kl(models.size());
  std::vector<double> nll(models.size(), 0.0);
  std::vector<std::size_t> same(models.size(), 0);
  std::vector<float> ref_logits, logits;
  std::size_t tokens = 0, docs = 0;
  const std::size_t n_docs = st.max_docs ? std::min(st.max_docs, in.docs.size()) : in.docs.size();
  for (std::size_t d = 0; d < n_docs; ++d) {
    const auto& doc = in.docs[d];
    const auto ids = std::span(doc).first(std::min(doc.size(), st.ctx));
    if (ids.size() < 2) continue;
    ref_logits.resize(ids.size() * V);
    logits.resize(ids.size() * V);
    sessions[0]->reset();
    sessions[0]->eval(ids, ref_logits);
    for (std::size_t a = 0; a < models.size(); ++a) {
      if (a > 0) {
        sessions[a]->reset();
        sessions[a]->eval(ids, logits);
      }
      const auto& test = a == 0 ? ref_logits : logits;
      for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
        const auto c = engine::compare_token(std::span(test).subspan(t * V, V),
                                             std::span(ref_logits).subspan(t * V, V),
                                             static_cast<std::size_t>(ids[t + 1]));
        nll[a] += c.test_nll;
        kl[a].push_back(c.kl);
        same[a] += c.same_top1;
      }
    }
    tokens += ids.size() - 1;
    ++docs;
    const double el = std::chrono::duration<double>(clock::now() - t0).count();
    if (docs % 5 == 0 || docs == n_docs)
      say(cat("perplexity and KL: document ", docs, "/", n_docs, ", ETA ",
              static_cast<int>(el / static_cast<double>(d + 1) * static_cast<double>(n_docs - d - 1)), " s"));
  }
  for (std::size_t a = 0; a < models.size(); ++a) {
    auto& r = rep.rows[a];
    r.tokens = tokens;
    r.docs = docs;
    if (!tokens) continue;
    r.ppl = std::exp(nll[a] / static_cast<double>(tokens));
    auto& k = kl[a];
    double sum = 0;
    for (const double v : k) sum += v;
    std::sort(k.begin(), k.end());
    r.kl_mean = sum / static_cast<double>(k.size());
    r.kl_p99 = k[static_cast<std::size_t>(0.99 * static_cast<double>(k.size() - 1))];
    r.kl_max = k.back();
    r.top1 = static_cast<double>(same[a]) / static_cast<double>(tokens);
  }
  for (auto& r : rep.rows) r.ppl_delta_pct = 100.0 * (r.ppl / rep.rows[0].ppl - 1.0);
  return rep;
}

}  // namespace qforge::report
