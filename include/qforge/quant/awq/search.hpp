// SPDX-License-Identifier: MIT
// The arithmetic of AWQ's two searches, independent of any model: the per-channel statistics and
// candidate scales of the scale search, and the per-group weight clipping search. Facts from
// AutoAWQ (awq/quantize/quantizer.py): x_mean is the mean |x| of each input channel over every
// calibration token; w_mean is, for the concatenated weights of the linears that share the input,
// |w| divided by the max |w| of its quantization group (+1e-6), averaged over all output rows; the
// candidate for ratio a is s = max(x_mean^a / (w_mean^(1-a) + 1e-4), 1e-4), normalised by
// sqrt(max(s) * min(s)), non-finite entries set to 1; the linears then hold Q(W * s) / s. The clip
// search tries max |w| * (1 - i / 20), i = 0..9, per (row, group) of the already scaled weight and
// keeps the one whose quantized group output error on the (scaled) inputs is smallest. We measure
// that error exactly over all calibration tokens through the group's input covariance C = X^T X / N
// (err = d^T C d for the weight change d), where AutoAWQ samples 512 tokens.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qforge/quant/awq/ref.hpp"

namespace qforge::quant::awq {

// Mean |x[t, c]| over rows t of x [rows, n], per channel c.
inline std::vector<float> channel_abs_mean(const float* x, std::size_t rows, std::size_t n) {
  std::vector<double> acc(n, 0.0);
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t c = 0; c < n; ++c) acc[c] += std::fabs(x[t * n + c]);
  std::vector<float> out(n);
  for (std::size_t c = 0; c < n; ++c)
    out[c] = rows ? static_cast<float>(acc[c] / static_cast<double>(rows)) : 0.0f;
  return out;
}

// AutoAWQ's w_mean over the rows of several [rows_i, in] matrices sharing one input. The groups
// are handed out by for_groups(n, fn) (fn(g0, g1) over [0, n): sequential, or a thread pool's
// parallel_for); each channel sums its rows in the same order either way.
template <class ForGroups>
std::vector<float> weight_abs_mean(std::span<const std::span<const float>> mats, std::size_t in,
                                   std::size_t group, ForGroups&& for_groups) {
  std::vector<double> acc(in, 0.0);
  std::size_t rows = 0;
  for (const auto& m : mats) rows += m.size() / in;
  for_groups(in / group, [&](std::size_t g0, std::size_t g1) {
    for (const auto& m : mats)
      for (std::size_t i = 0; i < m.size() / in; ++i)
        for (std::size_t g = g0 * group; g < g1 * group; g += group) {
          const float* w = m.data() + i * in + g;
          float mx = 0;
          for (std::size_t k = 0; k < group; ++k) mx = std::max(mx, std::fabs(w[k]));
          const double inv = 1.0 / (static_cast<double>(mx) + 1e-6);
          for (std::size_t k = 0; k < group; ++k) acc[g + k] += std::fabs(w[k]) * inv;
        }
  });
  std::vector<float> out(in);
  for (std::size_t c = 0; c < in; ++c)
    out[c] = static_cast<float>(acc[c] / static_cast<double>(std::max<std::size_t>(rows, 1)));
  return out;
}

inline std::vector<float> weight_abs_mean(std::span<const std::span<const float>> mats,
                                          std::size_t in, std::size_t group) {
  return weight_abs_mean(mats, in, group, [](std::size_t n, auto&& fn) { fn(std::size_t{0}, n); });
}

// The candidate scales for ratio alpha in [0, 1).
inline std::vector<float> candidate_scales(std::span<const float> x_mean,
                                           std::span<const float> w_mean, float alpha) {
  const std::size_t n = x_mean.size();
  std::vector<float> s(n);
  for (std::size_t c = 0; c < n; ++c) {
    const double v = std::pow(static_cast<double>(x_mean[c]), alpha) /
                     (std::pow(static_cast<double>(w_mean[c]), 1.0 - alpha) + 1e-4);
    s[c] = static_cast<float>(std::max(v, 1e-4));
  }
  const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  const float norm = std::sqrt(*mx * *mn);
  for (auto& v : s) {
    v /= norm;
    if (!std::isfinite(v)) v = 1.0f;
  }
  return s;
}

// Rows [r0, r1) of dst = Q(half(w * s)) / s for w [rows, in]: what the searches evaluate.
inline void fake_quantize_scaled(const float* w, std::size_t in, std::size_t group, const float* s,
                                 float* dst, std::size_t r0, std::size_t r1) noexcept {
  for (std::size_t r = r0; r < r1; ++r) {
    float* d = dst + r * in;
    const float* src = w + r * in;
    for (std::size_t k = 0; k < in; ++k) d[k] = half(src[k] * s[k]);
    fake_quantize_row(d, in, group);
    for (std::size_t k = 0; k < in; ++k) d[k] /= s[k];
  }
}

inline constexpr int clip_grid = 20;     // shrink step 1 / 20
inline constexpr int clip_steps = 10;    // up to 50 % shrink (max_shrink 0.5)

// Clip search for one row w[0, in) (fp16 values of the scaled weight), clamped in place to the best
// threshold of each group. cov holds in / group blocks [group, group] row-major (the scaled
// inputs' covariance per group). dot(a, b, n) is a float dot product; matvec(m, rows, v, n, out)
// sets out[a] = dot(m + a * n, v, n) for a < rows (the same sums, computed as one product where
// that is faster). Returns the row's summed error at the chosen thresholds.
template <class Dot, class Matvec>
double clip_row(float* w, std::size_t in, std::size_t group, const float* cov, Dot&& dot,
                Matvec&& matvec) {
  std::vector<float> cur(group), d(group), cd(group);
  std::uint8_t q[256];
  double total = 0;
  for (std::size_t g = 0; g < in / group; ++g) {
    float* wg = w + g * group;
    const float* C = cov + g * group * group;
    float amax = 0;
    for (std::size_t k = 0; k < group; ++k) amax = std::max(amax, std::fabs(wg[k]));
    double best = INFINITY;
    float best_max = amax;
    for (int i = 0; i < clip_steps; ++i) {
      const float mx = half(amax * (1.0f - static_cast<float>(i) / clip_grid));
      for (std::size_t k = 0; k < group; ++k) cur[k] = std::clamp(wg[k], -mx, mx);
      const group_params p = quantize_group(cur.data(), group, q);
      for (std::size_t k = 0; k < group; ++k) d[k] = dequantize_value(q[k], p) - wg[k];
      matvec(C, group, d.data(), group, cd.data());
      const double err = dot(cd.data(), d.data(), group);
      if (err < best) {
        best = err;
        best_max = mx;
      }
    }
    total += best;
    // best_max is an fp16 value (as in AutoAWQ's half model), so the clamped group stays fp16.
    for (std::size_t k = 0; k < group; ++k) wg[k] = std::clamp(wg[k], -best_max, best_max);
  }
  return total;
}

template <class Dot>
double clip_row(float* w, std::size_t in, std::size_t group, const float* cov, Dot&& dot) {
  return clip_row(w, in, group, cov, dot,
                  [&](const float* m, std::size_t rows, const float* v, std::size_t n, float* out) {
                    for (std::size_t a = 0; a < rows; ++a) out[a] = dot(m + a * n, v, n);
                  });
}

}  // namespace qforge::quant::awq
