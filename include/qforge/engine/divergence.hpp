// SPDX-License-Identifier: MIT
// Per-token comparison of two next-token distributions, the statistics llama-perplexity
// --kl-divergence reports: KL(reference || test) in nats, whether both put the same token on top,
// and each side's negative log-likelihood of the token that actually came next. Computed in double
// from float32 logits; shared by engine::kl_divergence and the benchmark table.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>

namespace qforge::engine {

struct token_comparison {
  double kl = 0;            // KL(reference || test), >= 0
  double test_nll = 0, reference_nll = 0;
  bool same_top1 = false;
};

// log(sum(exp(row))), in double.
inline double log_sum_exp(std::span<const float> row) noexcept {
  const float mx = *std::max_element(row.begin(), row.end());
  double s = 0;
  for (float v : row) s += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(s);
}

inline token_comparison compare_token(std::span<const float> test, std::span<const float> reference,
                                      std::size_t next) noexcept {
  const double zt = log_sum_exp(test), zr = log_sum_exp(reference);
  token_comparison c;
  c.test_nll = zt - test[next];
  c.reference_nll = zr - reference[next];
  for (std::size_t v = 0; v < test.size(); ++v) {
    const double lr = reference[v] - zr, lt = test[v] - zt;
    c.kl += std::exp(lr) * (lr - lt);
  }
  c.kl = std::max(c.kl, 0.0);  // rounding can leave -1e-17 for identical rows
  c.same_top1 = std::max_element(test.begin(), test.end()) - test.begin() ==
                std::max_element(reference.begin(), reference.end()) - reference.begin();
  return c;
}

}  // namespace qforge::engine
