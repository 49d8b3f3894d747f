// SPDX-License-Identifier: MIT
// IQ4_NL reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_iq4_nl as ggml_quantize_chunk calls it (ggml-base, plain x86-64, no FMA)
// and dequantize_row_iq4_nl. Q4_0's layout, but a 4-bit code indexes a fixed table of 16 int8
// levels, denser near zero where trained weights are. Each 32-weight block runs ggml's scale search
// (quantize_row_iq4_nl_impl with one block per super-block and ntry = 7) with or without importance
// weights: start from d = max / 127 (the level of largest magnitude meets the weight of largest
// magnitude), refit d by weighted least squares, try 15 more starting points, keep the best, then
// round every weight to its nearest level under the final float d. Without importance weights the
// weights are x^2; with them qw * sqrt(sigma2 + x^2), sigma2 = twice the block's mean square.
// (quantize_row_iq4_nl_ref, which skips the search, is not what ggml_quantize_chunk runs.) w = d *
// kvalues[q]; 4.5 bits per weight. Nothing here uses xsimd or CUDA.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/config.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::iq4_nl {

inline constexpr int block_elems = qk4_nl;

// The 16 levels (ggml's kvalues_iq4nl).
inline constexpr std::int8_t kvalues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// ggml's best_index_int8: the index of the level nearest x in an ascending table of n, a tie going
// to the upper level; clamps outside the table. A NaN falls through the binary search to n - 1.
QFORGE_HD inline int best_index_int8(int n, const std::int8_t* val, float x) noexcept {
  if (x <= static_cast<float>(val[0])) return 0;
  if (x >= static_cast<float>(val[n - 1])) return n - 1;
  int ml = 0, mu = n - 1;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < static_cast<float>(val[mav])) mu = mav;
    else ml = mav;
  }
  return x - static_cast<float>(val[mu - 1]) < static_cast<float>(val[mu]) - x ? mu - 1 : mu;
}

// The levels as floats: ggml compares and subtracts them as floats, and int8 -> float is exact.
inline constexpr float level_values[16] = {-127.0f, -104.0f, -83.0f, -65.0f, -49.0f, -35.0f,
                                           -22.0f,  -10.0f,  1.0f,   13.0f,  25.0f,  38.0f,
                                           53.0f,   69.0f,   89.0f,  113.0f};

// best_index_int8(16, kvalues, x) without the data-dependent search, which is a dependency chain
// of loads and branches: inside the table the search ends on the first level above x, which is
// the count of levels <= x, and then makes the same float comparison. NaN fails every comparison
// and ends the search on the last level, so it is spelled out.
inline int nearest_level(float x) noexcept {
  if (x <= level_values[0]) return 0;
  if (x >= level_values[15]) return 15;
  if (x != x) return 15;
  int mu = 0;
  for (int k = 0; k < 16; ++k) mu += x >= level_values[k] ? 1 : 0;
  return x - level_values[mu - 1] < level_values[mu] - x ? mu - 1 : mu;
}

// Search trials on either side of the starting scale, as quantize_iq4_nl passes them.
inline constexpr int ntry = 7;

// One block: quantize_row_iq4_nl_impl(32, 32, ..., kvalues_iq4nl, qw, 7). qw null = unweighted.
// The table is reached through `lv` (index(v): the level nearest v; value(i): level i as a float)
// because nvcc cannot read the host constexpr table from device code: the CUDA encoder runs this
// same body with a copy of the table (cuda.cuh).
#if defined(__CUDACC__)
#pragma nv_exec_check_disable  // Levels picks the side: host_levels here, the table copy on the GPU
#endif
template <class Levels>
QFORGE_HD void encode_block_with(const Levels& lv, const float* x, const float* qw,
                                 block_iq4_nl& y) noexcept {
  constexpr int n = qk4_nl;
  float sigma2 = 0.0f;
  for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
  sigma2 *= 2.0f / static_cast<float>(n);

  float weight[n];
  if (qw != nullptr) {
    for (int j = 0; j < n; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  } else {
    for (int j = 0; j < n; ++j) weight[j] = x[j] * x[j];
  }
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }

  float scale = 0.0f;
  if (!(amax < detail::group_max_eps)) {
    const float v0 = lv.value(0);
    float d = -max / v0;
    float id = 1.0f / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < n; ++j) {
      const float q = lv.value(lv.index(id * x[j]));
      sumqx += weight[j] * q * x[j];
      sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = (static_cast<float>(itry) + v0) / max;  // (itry + kvalues[0]) / max: small ints, exact
      sumqx = sumq2 = 0.0f;
      for (int j = 0; j < n; ++j) {
        const float q = lv.value(lv.index(id * x[j]));
        sumqx += weight[j] * q * x[j];
        sumq2 += weight[j] * q * q;
      }
      if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scale = d;
  }

  y.d = fp32_to_fp16(scale);
  const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
  std::uint8_t L[n];
  for (int j = 0; j < n; ++j) L[j] = static_cast<std::uint8_t>(lv.index(id * x[j]));
  detail::pack_q4(L, y.qs);
}

// The host's view of the table: nearest_level's branch-free search.
struct host_levels {
  static int index(float v) noexcept { return nearest_level(v); }
  static float value(int i) noexcept { return level_values[i]; }
};

inline void encode_block_ref(const float* x, const float* qw, block_iq4_nl& y) noexcept {
  encode_block_with(host_levels{}, x, qw, y);
}

// Encodes x.size() / 32 blocks. Caller guarantees x.size() % 32 == 0 and y.size() == x.size() / 32;
// with `imatrix` (one weight per column), x must be exactly one row.
inline void encode_ref(std::span<const float> x, std::span<block_iq4_nl> y,
                       const float* imatrix = nullptr) noexcept {
  for (std::size_t i = 0; i < y.size(); ++i)
    encode_block_ref(x.data() + i * qk4_nl, imatrix ? imatrix + i * qk4_nl : nullptr, y[i]);
}

// dequantize_row_iq4_nl: w = fp16(d) * kvalues[q], one float multiply.
inline void decode_ref(std::span<const block_iq4_nl> x, std::span<float> y) noexcept {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(x[i].d);
    float* out = y.data() + i * qk4_nl;
    for (int j = 0; j < qk4_nl / 2; ++j) {
      out[j] = d * static_cast<float>(kvalues[x[i].qs[j] & 0x0F]);
      out[j + 16] = d * static_cast<float>(kvalues[x[i].qs[j] >> 4]);
    }
  }
}

}  // namespace qforge::quant::iq4_nl
