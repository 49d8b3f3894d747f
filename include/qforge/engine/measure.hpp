// SPDX-License-Identifier: MIT
// What the benchmark table reports, as library calls on a session: perplexity with the fixtures'
// protocol (each document's first N tokens, documents under 2 tokens skipped, exp of the summed
// negative log-likelihood over predicted tokens), KL divergence of a model's next-token
// distribution from a reference model's plus top-1 agreement (the statistics llama-perplexity
// --kl-divergence prints), greedy generation with time to first token, and prefill / decode
// throughput. Log-probabilities are taken in double from the float32 logits. Every call is a
// template over the session type: engine::session (CPU) or engine::cuda_session (the same members:
// eval, reset, capacity, weights).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/engine/forward.hpp"

namespace qforge::engine {

struct perplexity_options {
  std::size_t max_tokens = 512;  // tokens kept from the start of each document
  std::size_t max_docs = 0;      // 0: all
};

struct perplexity_result {
  double nll = 0;              // summed negative log-likelihood (nats)
  std::size_t tokens = 0;      // predicted tokens
  std::size_t docs = 0;        // documents evaluated
  std::size_t skipped = 0;     // documents under 2 tokens
  double seconds = 0;
  [[nodiscard]] double ppl() const noexcept {
    return tokens ? std::exp(nll / static_cast<double>(tokens)) : 0.0;
  }
};

struct kl_result {
  perplexity_result test, reference;
  double kl_sum = 0, kl_max = 0;  // KL(reference || test) per predicted token, nats
  std::size_t top1_same = 0;
  std::vector<double> kl_per_token;  // for percentiles
  [[nodiscard]] double kl_mean() const noexcept {
    return test.tokens ? kl_sum / static_cast<double>(test.tokens) : 0.0;
  }
  [[nodiscard]] double top1_agreement() const noexcept {
    return test.tokens ? static_cast<double>(top1_same) / static_cast<double>(test.tokens) : 0.0;
  }
};

namespace detail {

using clock = std::chrono::steady_clock;
inline double since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

// log(sum(exp(row))), in double.
inline double log_sum_exp(std::span<const float> row) noexcept {
  const float mx = *std::max_element(row.begin(), row.end());
  double s = 0;
  for (float v : row) s += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(s);
}

// The first max_tokens ids, or nothing when fewer than 2 remain (no token to predict).
inline std::span<const std::int32_t> eval_span(std::span<const std::int32_t> doc,
                                               const perplexity_options& o) {
  const auto ids = doc.first(std::min(doc.size(), o.max_tokens));
  return ids.size() < 2 ? std::span<const std::int32_t>{} : ids;
}

}  // namespace detail

// Perplexity of `docs` (token ids, BOS already where the tokenizer puts it). The session's cache
// must hold max_tokens; each document starts from an empty cache.
template <class Session = session>
perplexity_result perplexity(Session& s, std::span<const std::vector<std::int32_t>> docs,
                                    const perplexity_options& o = {}) {
  if (s.capacity() < std::min<std::size_t>(o.max_tokens, 2))
    throw error(error::kind::argument, "perplexity: session cache smaller than max_tokens");
  const auto t0 = detail::clock::now();
  const std::size_t V = s.weights().config().vocab;
  perplexity_result r;
  std::vector<float> logits;
  for (const auto& doc : docs) {
    if (o.max_docs && r.docs == o.max_docs) break;
    const auto ids = detail::eval_span(doc, o);
    if (ids.empty()) {
      ++r.skipped;
      continue;
    }
    if (ids.size() > s.capacity())
      throw error(error::kind::argument,
                  cat("perplexity: document of ", ids.size(), " tokens, cache of ", s.capacity()));
    logits.resize(ids.size() * V);
    s.reset();
    s.eval(ids, logits);
    for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
      const std::span<const float> row(logits.data() + t * V, V);
      r.nll += detail::log_sum_exp(row) - row[static_cast<std::size_t>(ids[t + 1])];
    }
    r.tokens += ids.size() - 1;
    ++r.docs;
  }
  r.seconds = detail::since(t0);
  return r;
}

// Both models over the same documents; KL(reference || test) of each predicted position's
// next-token distribution, top-1 agreement, and both perplexities. The vocabularies must match.
// The two sessions may be of different types (a CUDA test against a CPU reference).
template <class Test = session, class Reference = session>
kl_result kl_divergence(Test& test, Reference& reference,
                               std::span<const std::vector<std::int32_t>> docs,
                               const perplexity_options& o = {}) {
  const std::size_t V = test.weights().config().vocab;
  if (reference.weights().config().vocab != V)
    throw error(error::kind::argument, cat("kl_divergence: vocabularies of ", V, " and ",
                                           reference.weights().config().vocab, " tokens"));
  const auto t0 = detail::clock::now();
  kl_result r;
  std::vector<float> lt, lr;
  for (const auto& doc : docs) {
    if (o.max_docs && r.test.docs == o.max_docs) break;
    const auto ids = detail::eval_span(doc, o);
    if (ids.empty()) {
      ++r.test.skipped, ++r.reference.skipped;
      continue;
    }
    lt.resize(ids.size() * V);
    lr.resize(ids.size() * V);
    test.reset();
    test.eval(ids, lt);
    reference.reset();
    reference.eval(ids, lr);
    for (std::size_t t = 0; t + 1 < ids.size(); ++t) {
      const std::span<const float> a(lt.data() + t * V, V), b(lr.data() + t * V, V);
      const double za = detail::log_sum_exp(a), zb = detail::log_sum_exp(b);
      const auto next = static_cast<std::size_t>(ids[t + 1]);
      r.test.nll += za - a[next];
      r.reference.nll += zb - b[next];
      double kl = 0;
      for (std::size_t v = 0; v < V; ++v) {
        const double lpb = b[v] - zb, lpa = a[v] - za;
        kl += std::exp(lpb) * (lpb - lpa);
      }
      kl = std::max(kl, 0.0);  // rounding can leave -1e-17 for identical rows
      r.kl_sum += kl;
      r.kl_max = std::max(r.kl_max, kl);
      r.kl_per_token.push_back(kl);
      r.top1_same += std::max_element(a.begin(), a.end()) - a.begin() ==
                     std::max_element(b.begin(), b.end()) - b.begin();
    }
    r.test.tokens += ids.size() - 1;
    r.reference.tokens += ids.size() - 1;
    ++r.test.docs, ++r.reference.docs;
  }
  r.test.seconds = r.reference.seconds = detail::since(t0);
  return r;
}

struct generation {
  std::vector<std::int32_t> tokens;  // generated, the stop token included when reached
  std::size_t prompt_tokens = 0;
  double prefill_seconds = 0;  // the prompt's forward pass (its logits give the first token)
  double decode_seconds = 0;   // every later token
  [[nodiscard]] double time_to_first_token() const noexcept { return prefill_seconds; }
  [[nodiscard]] double prefill_tok_s() const noexcept {
    return prefill_seconds > 0 ? static_cast<double>(prompt_tokens) / prefill_seconds : 0.0;
  }
  // Tokens after the first, per second of decoding.
  [[nodiscard]] double decode_tok_s() const noexcept {
    return tokens.size() > 1 && decode_seconds > 0
               ? static_cast<double>(tokens.size() - 1) / decode_seconds
               : 0.0;
  }
};

// Greedy (argmax) continuation of `prompt` from an empty cache: at most max_new tokens, stopping
// after `stop` when given. Throws kind::argument for an empty prompt or one the cache cannot hold.
template <class Session = session>
generation generate_greedy(Session& s, std::span<const std::int32_t> prompt,
                                  std::size_t max_new, std::optional<std::int32_t> stop = {}) {
  if (prompt.empty()) throw error(error::kind::argument, "generate: empty prompt");
  const std::size_t V = s.weights().config().vocab;
  max_new = std::min(max_new, s.capacity() > prompt.size() ? s.capacity() - prompt.size() + 1 : 0);
  generation g;
  g.prompt_tokens = prompt.size();
  std::vector<float> logits(V);
  s.reset();
  auto t0 = detail::clock::now();
  s.eval(prompt, logits);
  g.prefill_seconds = detail::since(t0);
  t0 = detail::clock::now();
  while (g.tokens.size() < max_new) {
    const auto next =
        static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    g.tokens.push_back(next);
    if ((stop && next == *stop) || g.tokens.size() == max_new) break;
    s.eval(std::span(&next, 1), logits);
  }
  g.decode_seconds = detail::since(t0);
  return g;
}

struct speed_result {
  double prefill_tok_s = 0, decode_tok_s = 0, time_to_first_token = 0;
};

// Throughput on a synthetic prompt (ids 1, 2, ... wrapped to the vocabulary): the best of `reps`
// prefills of prompt_tokens, then decode_tokens single-token steps after that prompt.
template <class Session = session>
speed_result measure_speed(Session& s, std::size_t prompt_tokens, std::size_t decode_tokens,
                                  int reps = 3) {
  const std::size_t V = s.weights().config().vocab;
  if (prompt_tokens == 0 || prompt_tokens + decode_tokens > s.capacity())
    throw error(error::kind::argument, "measure_speed: prompt + decode exceed the session cache");
  std::vector<std::int32_t> ids(prompt_tokens);
  for (std::size_t i = 0; i < prompt_tokens; ++i) ids[i] = static_cast<std::int32_t>(1 + i % (V - 1));
  std::vector<float> logits(V);
  speed_result r;
  double best = 1e300, best_decode = 1e300;
  for (int rep = 0; rep < std::max(reps, 1); ++rep) {
    s.reset();
    auto t0 = detail::clock::now();
    s.eval(ids, logits);
    best = std::min(best, detail::since(t0));
    t0 = detail::clock::now();
    for (std::size_t i = 0; i < decode_tokens; ++i) {
      const auto next = static_cast<std::int32_t>(1 + (prompt_tokens + i) % (V - 1));
      s.eval(std::span(&next, 1), logits);
    }
    if (decode_tokens) best_decode = std::min(best_decode, detail::since(t0));
  }
  r.time_to_first_token = best;
  r.prefill_tok_s = static_cast<double>(prompt_tokens) / best;
  r.decode_tok_s = decode_tokens ? static_cast<double>(decode_tokens) / best_decode : 0.0;
  return r;
}

}  // namespace qforge::engine
