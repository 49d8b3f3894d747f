// SPDX-License-Identifier: MIT
// Q4_1 reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_q4_1 as ggml_quantize_chunk calls it (ggml-base, plain x86-64, no FMA):
// without importance weights quantize_row_q4_1_ref, with them quantize_row_q4_1_impl. Per block of
// 32 the plain path is asymmetric min/max: d = (max - min) / 15, m = min, q = MIN(15,
// (int8_t)((x - min) / d + 0.5)); the weighted path fits d and m with make_qkx3_quants (nmax 15,
// 37 candidate scales) under weights qw * sqrt(sigma2 + x^2) and stores m = -(its min). w = d * q + m;
// 5 bits per weight. Nothing here uses xsimd or CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q4_1 {

inline constexpr int block_elems = qk4_1;

// quantize_row_q4_1_ref for one block whose min and max (detail::min_max) are known.
QFORGE_HD inline void encode_block_with_range(const float* x, float min, float max, block_q4_1& y) noexcept {
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = fp32_to_fp16(d);
  y.m = fp32_to_fp16(min);
  std::uint8_t q[qk4_1];
  for (int j = 0; j < qk4_1; ++j) q[j] = detail::clamp_low_byte_x86((x[j] - min) * id + 0.5f, 15);
  detail::pack_q4(q, y.qs);
}

QFORGE_HD inline void encode_block_ref(const float* x, block_q4_1& y) noexcept {
  float min, max;
  detail::min_max(x, qk4_1, min, max);
  encode_block_with_range(x, min, max, y);
}

// quantize_row_q4_1_impl: x is exactly one row, qw its importance weights (one per column).
inline void encode_row_weighted_ref(std::span<const float> x, std::span<block_q4_1> y,
                                    const float* qw) noexcept {
  const float sigma2 = detail::row_mean_square(x.data(), x.size());
  float weight[qk4_1];
  std::uint8_t L[qk4_1], laux[qk4_1];
  for (std::size_t ib = 0; ib < y.size(); ++ib) {
    const float* xb = x.data() + ib * qk4_1;
    detail::legacy_weights(xb, qw + ib * qk4_1, sigma2, weight);
    float min = 0.0f;
    const float d =
        detail::make_qkx3_quants(qk4_1, 15, xb, weight, L, &min, laux, -0.9f, 0.05f, 36, false);
    y[ib].d = fp32_to_fp16(d);
    y[ib].m = fp32_to_fp16(-min);
    detail::pack_q4(L, y[ib].qs);
  }
}

// Encodes x.size() / 32 blocks. Caller guarantees x.size() % 32 == 0 and y.size() == x.size() / 32;
// with `imatrix` (one weight per column), x must be exactly one row.
inline void encode_ref(std::span<const float> x, std::span<block_q4_1> y,
                       const float* imatrix = nullptr) noexcept {
  if (imatrix != nullptr) return encode_row_weighted_ref(x, y, imatrix);
  for (std::size_t i = 0; i < y.size(); ++i) encode_block_ref(x.data() + i * qk4_1, y[i]);
}

// dequantize_row_q4_1: w = q * fp16(d) + fp16(m), multiply then add (never fused).
inline void decode_ref(std::span<const block_q4_1> x, std::span<float> y) noexcept {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(x[i].d), m = fp16_to_fp32(x[i].m);
    float* out = y.data() + i * qk4_1;
    for (int j = 0; j < qk4_1 / 2; ++j) {
      out[j] = static_cast<float>(x[i].qs[j] & 0x0F) * d + m;
      out[j + 16] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
    }
  }
}

}  // namespace qforge::quant::q4_1
