// SPDX-License-Identifier: MIT
// Perplexity of one long token stream through a fixed context window (the "strided" evaluation of
// fixed-length models): windows of `window` tokens start every `stride` tokens; each window scores
// only the tokens the previous window did not (its last `stride` or fewer), with the window's
// earlier tokens as context; the first window scores every token after its first. Every token of
// the stream but the first is scored exactly once when stride < window; with stride == window the
// windows are disjoint chunks and each chunk's first token has no context, so it is not scored
// (the same as engine::perplexity over the chunks). The last window ends at the stream's end and
// may be shorter; a last chunk of one token (stride == window only) has nothing to score and is not
// run. A stream no longer than the window is one window: the plain perplexity of the
// whole stream. Like measure.hpp, a template over the session type (engine::session on the CPU,
// engine::cuda_session on a GPU).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/engine/measure.hpp"

namespace qforge::engine {

struct sliding_options {
  std::size_t window = 512;  // tokens per forward pass (context included)
  std::size_t stride = 256;  // tokens between the starts of two windows, 1 .. window
};

struct sliding_result {
  double nll = 0;          // summed negative log-likelihood of the scored tokens (nats)
  std::size_t tokens = 0;  // scored tokens
  std::size_t windows = 0;
  std::size_t evaluated = 0;  // tokens run through the model (context counted again per window)
  double seconds = 0;
  [[nodiscard]] double ppl() const noexcept {
    return tokens ? std::exp(nll / static_cast<double>(tokens)) : 0.0;
  }
};

// Number of windows over a stream of n tokens: 1 + ceil((n - window) / stride) when n > window,
// less the one-token last chunk that stride == window can leave.
[[nodiscard]] inline std::size_t sliding_windows(std::size_t n, const sliding_options& o) noexcept {
  if (n <= o.window || o.stride == 0) return 1;
  const std::size_t k = (n - o.window + o.stride - 1) / o.stride;  // windows before the last
  return k * o.stride + 1 >= n ? k : k + 1;
}

// Throws kind::argument for window < 2, stride < 1, stride > window or a stream under 2 tokens;
// the error names the stream (`what`: a file, "stream").
inline void check_sliding(std::size_t n, const sliding_options& o, const std::string& what) {
  if (o.window < 2)
    throw error(error::kind::argument, what,
                cat("window of ", o.window, " tokens: needs 2 or more"));
  if (o.stride < 1) throw error(error::kind::argument, what, "stride of 0 tokens: needs 1 or more");
  if (o.stride > o.window)
    throw error(error::kind::argument, what,
                cat("stride ", o.stride, " larger than the window ", o.window,
                    ": tokens between windows would never be scored"));
  if (n < 2)
    throw error(error::kind::argument, what,
                cat("stream of ", n, " token", n == 1 ? "" : "s", ": nothing to predict"));
}

// progress(done, total) is called after each window (total = sliding_windows(ids.size(), o)).
// The session's cache must hold min(window, ids.size()) tokens.
template <class Session = session>
sliding_result sliding_perplexity(
    Session& s, std::span<const std::int32_t> ids, const sliding_options& o = {},
    const std::function<void(std::size_t, std::size_t)>& progress = {}) {
  const std::size_t n = ids.size();
  check_sliding(n, o, "stream");
  if (s.capacity() < std::min(o.window, n))
    throw error(error::kind::argument,
                cat("sliding perplexity: window of ", std::min(o.window, n), " tokens, cache of ",
                    s.capacity()));
  const auto t0 = detail::clock::now();
  const std::size_t V = s.weights().config().vocab, total = sliding_windows(n, o);
  sliding_result r;
  std::vector<float> logits;
  std::size_t scored_to = 0;  // tokens [0, scored_to) are scored (or the stream's first)
  for (std::size_t begin = 0;; begin += o.stride) {
    const std::size_t end = std::min(begin + o.window, n);
    // Targets first .. end-1, predicted by the logits of positions first-1 .. end-2; the window's
    // own first token has no context inside the window.
    const std::size_t first = std::max(scored_to, begin + 1);
    // The context before position first-1 needs no logits, and the last token is only a target:
    // run [begin, first-1) without the output head, then [first-1, end-1) with every row.
    const auto context = ids.subspan(begin, first - 1 - begin);
    const auto scored = ids.subspan(first - 1, end - first);
    logits.resize(scored.size() * V);
    s.reset();
    s.eval(context, {});
    s.eval(scored, logits);
    for (std::size_t i = 0; i < scored.size(); ++i) {
      const std::span<const float> row(logits.data() + i * V, V);
      r.nll += detail::log_sum_exp(row) - row[static_cast<std::size_t>(ids[first + i])];
    }
    r.tokens += end - first;
    r.evaluated += end - 1 - begin;
    ++r.windows;
    if (progress) progress(r.windows, total);
    scored_to = end;
    if (end == n || begin + o.stride + 1 >= n) break;  // the next window would score nothing
  }
  r.seconds = detail::since(t0);
  return r;
}

}  // namespace qforge::engine
