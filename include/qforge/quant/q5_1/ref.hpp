// SPDX-License-Identifier: MIT
// Q5_1 reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_q5_1 as ggml_quantize_chunk calls it (ggml-base, plain x86-64, no FMA):
// without importance weights quantize_row_q5_1_ref, with them quantize_row_q5_1_impl. Q4_1 with one
// more bit: d = (max - min) / 31, m = min, q = (uint8_t)((x - min) / d + 0.5) (no clamp in ggml:
// the float never exceeds 31.5 for a finite block); the weighted path fits with make_qkx3_quants
// (nmax 31) and stores m = -(its min). Bits laid out as Q5_0. w = d * q + m; 6 bits per weight.
// Nothing here uses xsimd or CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q5_1 {

inline constexpr int block_elems = qk5_1;

// quantize_row_q5_1_ref for one block whose min and max (detail::min_max) are known.
QFORGE_HD inline void encode_block_with_range(const float* x, float min, float max, block_q5_1& y) noexcept {
  const float d = (max - min) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = fp32_to_fp16(d);
  y.m = fp32_to_fp16(min);
  std::uint8_t q[qk5_1];
  for (int j = 0; j < qk5_1; ++j) q[j] = detail::low_byte_x86((x[j] - min) * id + 0.5f);
  detail::pack_q5(q, y.qs, y.qh);
}

QFORGE_HD inline void encode_block_ref(const float* x, block_q5_1& y) noexcept {
  float min, max;
  detail::min_max(x, qk5_1, min, max);
  encode_block_with_range(x, min, max, y);
}

// quantize_row_q5_1_impl: x is exactly one row, qw its importance weights (one per column).
inline void encode_row_weighted_ref(std::span<const float> x, std::span<block_q5_1> y,
                                    const float* qw) noexcept {
  const float sigma2 = detail::row_mean_square(x.data(), x.size());
  float weight[qk5_1];
  std::uint8_t L[qk5_1], laux[qk5_1];
  for (std::size_t ib = 0; ib < y.size(); ++ib) {
    const float* xb = x.data() + ib * qk5_1;
    detail::legacy_weights(xb, qw + ib * qk5_1, sigma2, weight);
    float min = 0.0f;
    const float d =
        detail::make_qkx3_quants(qk5_1, 31, xb, weight, L, &min, laux, -0.9f, 0.05f, 36, false);
    y[ib].d = fp32_to_fp16(d);
    y[ib].m = fp32_to_fp16(-min);
    detail::pack_q5(L, y[ib].qs, y[ib].qh);
  }
}

// Encodes x.size() / 32 blocks. Caller guarantees x.size() % 32 == 0 and y.size() == x.size() / 32;
// with `imatrix` (one weight per column), x must be exactly one row.
inline void encode_ref(std::span<const float> x, std::span<block_q5_1> y,
                       const float* imatrix = nullptr) noexcept {
  if (imatrix != nullptr) return encode_row_weighted_ref(x, y, imatrix);
  for (std::size_t i = 0; i < y.size(); ++i) encode_block_ref(x.data() + i * qk5_1, y[i]);
}

// dequantize_row_q5_1: w = q * fp16(d) + fp16(m), multiply then add (never fused).
inline void decode_ref(std::span<const block_q5_1> x, std::span<float> y) noexcept {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
    const std::uint32_t qh = detail::load_qh(x[i].qh);
    float* out = y.data() + i * qk5_1;
    for (int j = 0; j < qk5_1 / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) << 4 & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
      out[j] = static_cast<float>((x[i].qs[j] & 0x0F) | h0) * d + m;
      out[j + 16] = static_cast<float>((x[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

}  // namespace qforge::quant::q5_1
