// SPDX-License-Identifier: MIT
// Q5_0 reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_q5_0 as ggml_quantize_chunk calls it (ggml-base, plain x86-64, no FMA):
// without importance weights quantize_row_q5_0_ref, with them quantize_row_q5_0_impl. Q4_0 with one
// more bit: the plain path sets d = max / -16 from the signed value of largest magnitude and
// q = MIN(31, (int8_t)(x / d + 16.5)); the weighted one searches with make_qx_quants (nmax 16).
// Low nibbles in qs as Q4_0, bit 4 of weight j in bit j of qh. w = d * (q - 16); 5.5 bits per
// weight. Nothing here uses xsimd or CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q5_0 {

inline constexpr int block_elems = qk5_0;

// quantize_row_q5_0_ref for one block; `max` is detail::signed_absmax of the block.
QFORGE_HD inline void encode_block_with_max(const float* x, float max, block_q5_0& y) noexcept {
  const float d = max / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = fp32_to_fp16(d);
  std::uint8_t q[qk5_0];
  for (int j = 0; j < qk5_0; ++j) q[j] = detail::clamp_low_byte_x86(x[j] * id + 16.5f, 31);
  detail::pack_q5(q, y.qs, y.qh);
}

QFORGE_HD inline void encode_block_ref(const float* x, block_q5_0& y) noexcept {
  encode_block_with_max(x, detail::signed_absmax(x, qk5_0), y);
}

// quantize_row_q5_0_impl: x is exactly one row, qw its importance weights (one per column).
inline void encode_row_weighted_ref(std::span<const float> x, std::span<block_q5_0> y,
                                    const float* qw) noexcept {
  const float sigma2 = detail::row_mean_square(x.data(), x.size());
  float weight[qk5_0];
  std::int8_t L[qk5_0];
  for (std::size_t ib = 0; ib < y.size(); ++ib) {
    const float* xb = x.data() + ib * qk5_0;
    detail::legacy_weights(xb, qw + ib * qk5_0, sigma2, weight);
    const float d = detail::make_qx_quants(qk5_0, 16, xb, L, 1, weight);
    y[ib].d = fp32_to_fp16(d);
    std::uint8_t q[qk5_0];
    for (int j = 0; j < qk5_0; ++j) q[j] = static_cast<std::uint8_t>(L[j]);
    detail::pack_q5(q, y[ib].qs, y[ib].qh);
  }
}

// Encodes x.size() / 32 blocks. Caller guarantees x.size() % 32 == 0 and y.size() == x.size() / 32;
// with `imatrix` (one weight per column), x must be exactly one row.
inline void encode_ref(std::span<const float> x, std::span<block_q5_0> y,
                       const float* imatrix = nullptr) noexcept {
  if (imatrix != nullptr) return encode_row_weighted_ref(x, y, imatrix);
  for (std::size_t i = 0; i < y.size(); ++i) encode_block_ref(x.data() + i * qk5_0, y[i]);
}

// dequantize_row_q5_0: w = (q - 16) * fp16(d).
inline void decode_ref(std::span<const block_q5_0> x, std::span<float> y) noexcept {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(x[i].d);
    const std::uint32_t qh = detail::load_qh(x[i].qh);
    float* out = y.data() + i * qk5_0;
    for (int j = 0; j < qk5_0 / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) << 4 & 0x10), h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
      out[j] = static_cast<float>(((x[i].qs[j] & 0x0F) | h0) - 16) * d;
      out[j + 16] = static_cast<float>(((x[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

}  // namespace qforge::quant::q5_0
