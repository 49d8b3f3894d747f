// SPDX-License-Identifier: MIT
// Q4_0 reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_q4_0 as ggml_quantize_chunk calls it (ggml-base, plain x86-64, no FMA):
// without importance weights quantize_row_q4_0_ref, with them quantize_row_q4_0_impl. Per block of
// 32: the plain path takes the value of largest magnitude *with its sign*, d = max / -8, and
// q = MIN(15, (int8_t)(x / d + 8.5)), so the extreme weight maps to q = 0 (level -8) and the 16
// levels -8..7 are used asymmetrically toward that sign. The weighted path searches the scale with
// make_qx_quants (nmax 8) under weights qw * sqrt(sigma2 + x^2). w = d * (q - 8); 4.5 bits per
// weight. Nothing here uses xsimd or CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q4_0 {

inline constexpr int block_elems = qk4_0;

// quantize_row_q4_0_ref for one block. `max` is detail::signed_absmax of the block (the SIMD body
// computes it its own way and shares the rest).
QFORGE_HD inline void encode_block_with_max(const float* x, float max, block_q4_0& y) noexcept {
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = fp32_to_fp16(d);
  std::uint8_t q[qk4_0];
  for (int j = 0; j < qk4_0; ++j) q[j] = detail::clamp_low_byte_x86(x[j] * id + 8.5f, 15);
  detail::pack_q4(q, y.qs);
}

QFORGE_HD inline void encode_block_ref(const float* x, block_q4_0& y) noexcept {
  encode_block_with_max(x, detail::signed_absmax(x, qk4_0), y);
}

// quantize_row_q4_0_impl: x is exactly one row, qw its importance weights (one per column).
inline void encode_row_weighted_ref(std::span<const float> x, std::span<block_q4_0> y,
                                    const float* qw) noexcept {
  const float sigma2 = detail::row_mean_square(x.data(), x.size());
  float weight[qk4_0];
  std::int8_t L[qk4_0];
  for (std::size_t ib = 0; ib < y.size(); ++ib) {
    const float* xb = x.data() + ib * qk4_0;
    detail::legacy_weights(xb, qw + ib * qk4_0, sigma2, weight);
    const float d = detail::make_qx_quants(qk4_0, 8, xb, L, 1, weight);
    y[ib].d = fp32_to_fp16(d);
    std::uint8_t q[qk4_0];
    for (int j = 0; j < qk4_0; ++j) q[j] = static_cast<std::uint8_t>(L[j]);
    detail::pack_q4(q, y[ib].qs);
  }
}

// Encodes x.size() / 32 blocks. Caller guarantees x.size() % 32 == 0 and y.size() == x.size() / 32;
// with `imatrix` (one weight per column), x must be exactly one row.
inline void encode_ref(std::span<const float> x, std::span<block_q4_0> y,
                       const float* imatrix = nullptr) noexcept {
  if (imatrix != nullptr) return encode_row_weighted_ref(x, y, imatrix);
  for (std::size_t i = 0; i < y.size(); ++i) encode_block_ref(x.data() + i * qk4_0, y[i]);
}

// dequantize_row_q4_0: w = (q - 8) * fp16(d), one float multiply. y.size() == 32 * x.size().
inline void decode_ref(std::span<const block_q4_0> x, std::span<float> y) noexcept {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(x[i].d);
    float* out = y.data() + i * qk4_0;
    for (int j = 0; j < qk4_0 / 2; ++j) {
      out[j] = static_cast<float>((x[i].qs[j] & 0x0F) - 8) * d;
      out[j + 16] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

}  // namespace qforge::quant::q4_0
