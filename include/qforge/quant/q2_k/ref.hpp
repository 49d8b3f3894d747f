// SPDX-License-Identifier: MIT
// Q2_K reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_q2_K as ggml_quantize_chunk calls it: without importance weights the
// quantize_row_q2_K_ref path, with them quantize_row_q2_K_impl (one row at a time), and
// dequantize_row_q2_K, all as ggml-base builds them (plain x86-64, no FMA). A super-block holds 256
// weights in 16 sub-blocks of 16; each sub-block gets an asymmetric 2-bit fit w ~ s*q - m (s, m >= 0),
// then the 16 scales and 16 mins are themselves quantized to 4 bits against the fp16 super-scales d
// and dmin, and every weight is re-rounded against the *stored* (fp16-rounded) scales. 2.625 bits per
// weight. qs packs 4 weights per byte: byte l of a 128-weight half holds weights l, l+32, l+64, l+96
// (2 bits each, lowest first), the order ggml's dot products load.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q2_k {

inline constexpr int block_elems = qk_k;

namespace ref_detail {

// Re-rounds each weight of the sub-blocks with a non-zero stored scale against the stored d, dmin
// (ggml skips zero-scale sub-blocks, which keep the search's levels), then packs L into qs.
QFORGE_HD inline void requantize_and_pack(const float* x, block_q2_k& y, std::uint8_t* L) noexcept {
  const float d_all = fp16_to_fp32(y.d), m_all = fp16_to_fp32(y.dmin);
  for (int j = 0; j < qk_k / 16; ++j) {
    const float d = d_all * static_cast<float>(y.scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float dm = m_all * static_cast<float>(y.scales[j] >> 4);
    for (int i = 0; i < 16; ++i) {
      const int l = detail::nearest_int((x[16 * j + i] + dm) / d);
      L[16 * j + i] = static_cast<std::uint8_t>(l < 0 ? 0 : l > 3 ? 3 : l);
    }
  }
  for (int h = 0; h < qk_k; h += 128)
    for (int l = 0; l < 32; ++l)
      y.qs[h / 4 + l] = static_cast<std::uint8_t>(L[h + l] | (L[h + l + 32] << 2) |
                                                  (L[h + l + 64] << 4) | (L[h + l + 96] << 6));
}

// The scales / mins are rounded with nearest_int and stored through uint8 like ggml (an int
// assigned to a uint8 keeps its low byte; OR-ing the min's nibble in likewise).
QFORGE_HD inline void encode_block_plain(const float* x, block_q2_k& y) noexcept {
  constexpr float q4scale = 15.0f;
  std::uint8_t L[qk_k], laux[16];
  float weights[16], mins[16], scales[16];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = detail::make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], laux,
                                         -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0.0f) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < 16; ++j)
      y.scales[j] = static_cast<std::uint8_t>(detail::nearest_int(iscale * scales[j]));
    y.d = fp32_to_fp16(max_scale / q4scale);
  } else {
    for (int j = 0; j < 16; ++j) y.scales[j] = 0;
    y.d = fp32_to_fp16(0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < 16; ++j)
      y.scales[j] = static_cast<std::uint8_t>(y.scales[j] |
                                              (detail::nearest_int(iscale * mins[j]) << 4));
    y.dmin = fp32_to_fp16(max_min / q4scale);
  } else {
    y.dmin = fp32_to_fp16(0.0f);
  }
  requantize_and_pack(x, y, L);
}

// Importance-weighted variant: per-weight weights qw[l] * sqrt(sigma2 + x^2) (sigma2 the block's
// mean square), a 37-step weighted least-squares search per sub-block, and the 4-bit scales and
// mins chosen by make_qp_quants weighted by each sub-block's total weight.
QFORGE_HD inline void encode_block_weighted(const float* x, const float* qw, block_q2_k& y) noexcept {
  std::uint8_t L[qk_k], laux[16], ls[16], lm[16];
  float weight[16], mins[16], scales[16], sw[16] = {};
  float sumx2 = 0.0f;
  for (int j = 0; j < qk_k; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = sumx2 / qk_k;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l)
      weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    for (int l = 0; l < 16; ++l) sw[j] += weight[l];
    scales[j] = detail::make_qkx3_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], laux,
                                         -0.9f, 0.05f, 36, false);
  }
  const float dm = detail::make_qp_quants(16, 15, scales, ls, sw);
  const float mm = detail::make_qp_quants(16, 15, mins, lm, sw);
  y.d = fp32_to_fp16(dm);
  y.dmin = fp32_to_fp16(mm);
  for (int j = 0; j < 16; ++j) y.scales[j] = static_cast<std::uint8_t>(ls[j] | (lm[j] << 4));
  requantize_and_pack(x, y, L);
}

}  // namespace ref_detail

// Encodes x.size() / 256 super-blocks. Caller guarantees x.size() % 256 == 0 and
// y.size() == x.size() / 256. `imatrix` null: ggml's unweighted path; otherwise x is exactly one
// row and imatrix holds x.size() importance weights, one per column.
inline void encode_ref(std::span<const float> x, std::span<block_q2_k> y,
                       const float* imatrix = nullptr) noexcept {
  const std::size_t nb = x.size() / qk_k;
  for (std::size_t i = 0; i < nb; ++i) {
    if (imatrix == nullptr) ref_detail::encode_block_plain(x.data() + i * qk_k, y[i]);
    else ref_detail::encode_block_weighted(x.data() + i * qk_k, imatrix + i * qk_k, y[i]);
  }
}

// w = d * (sc & 15) * q - dmin * (sc >> 4), as two float products and one subtraction.
// Caller guarantees y.size() == 256 * x.size().
inline void decode_ref(std::span<const block_q2_k> x, std::span<float> y) noexcept {
  float* out = y.data();
  for (const block_q2_k& b : x) {
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.dmin);
    for (int h = 0; h < 2; ++h) {
      const std::uint8_t* q = b.qs + 32 * h;
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {
          const std::uint8_t sc = b.scales[8 * h + 2 * s + half];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = m * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l)
            *out++ = dl * static_cast<float>((q[16 * half + l] >> (2 * s)) & 3) - ml;
        }
      }
    }
  }
}

}  // namespace qforge::quant::q2_k
