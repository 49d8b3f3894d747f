// SPDX-License-Identifier: MIT
// Q4_K reference encoder and decoder: the spec the fast paths reproduce byte for byte. Same bytes
// as ggml's quantize_row_q4_K_ref (no importance weights) and quantize_row_q4_K_impl (with them),
// and dequantize_row_q4_K, as ggml-base builds them (plain x86-64, no FMA). A 256-weight
// super-block holds 8 sub-blocks of 32; each sub-block gets an asymmetric 4-bit code
// w = d*sc*q - dmin*m with q in [0, 15]; the sub-block scales sc and mins m are themselves 6-bit
// codes of the fp16 super-scales d and dmin, packed into 12 bytes (see get_scale_min_k4). qs holds
// sub-blocks 2k and 2k+1 in the low and high nibbles of the same 32 bytes. 4.5 bits per weight.
// The weights are requantised against the *fp16-rounded* scales after the search, so sub-block
// codes are recomputed from the stored bytes, not taken from the search. No xsimd or CUDA here.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q4_k {

inline constexpr int block_elems = qk_k;
inline constexpr int sub_blocks = qk_k / 32;

// Everything after the scale search is split in three so the SIMD bodies can run the middle step
// lane-parallel and share the other two. pack_scales: the 6-bit sub-block codes into the 12 scale
// bytes and d, dmin as fp16.
QFORGE_HD inline void pack_scales(const std::uint8_t* ls, const std::uint8_t* lm, float d, float dmin,
                        block_q4_k& y) noexcept {
  for (int j = 0; j < sub_blocks; ++j) detail::set_scale_min_k4(j, y.scales, ls[j], lm[j]);
  y.d = fp32_to_fp16(d);
  y.dmin = fp32_to_fp16(dmin);
}

// Requantises every sub-block against the *stored* scales, (x + dmin*m) / (d*sc) rounded and
// clamped to [0, 15]; a sub-block whose d*sc is 0 keeps the search's levels, as in ggml.
QFORGE_HD inline void requantize(const float* x, const block_q4_k& y, std::uint8_t* L) noexcept {
  for (int j = 0; j < sub_blocks; ++j) {
    std::uint8_t sc, m;
    detail::get_scale_min_k4(j, y.scales, &sc, &m);
    const float dj = fp16_to_fp32(y.d) * static_cast<float>(sc);
    if (dj == 0.0f) continue;
    const float dm = fp16_to_fp32(y.dmin) * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = detail::nearest_int((x[32 * j + ii] + dm) / dj);
      L[32 * j + ii] = static_cast<std::uint8_t>(detail::imax(0, detail::imin(15, l)));
    }
  }
}

// The 4-bit levels into qs: sub-blocks 2k and 2k+1 share 32 bytes (low and high nibble).
QFORGE_HD inline void pack_levels(const std::uint8_t* L, block_q4_k& y) noexcept {
  std::uint8_t* q = y.qs;
  for (int j = 0; j < qk_k; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
}

// All three; L holds the search's 256 levels on entry and is overwritten.
QFORGE_HD inline void finish_block(const float* x, const std::uint8_t* ls, const std::uint8_t* lm, float d,
                         float dmin, std::uint8_t* L, block_q4_k& y) noexcept {
  pack_scales(ls, lm, d, dmin, y);
  requantize(x, y, L);
  pack_levels(L, y);
}

// ggml's 6-bit code of a sub-block scale in the unweighted path: nearest_int into a uint8_t (so a
// negative code wraps, exactly as C converts), then clamped to 63.
QFORGE_HD inline std::uint8_t code6(float inv, float v) noexcept {
  const auto c = static_cast<std::uint8_t>(detail::nearest_int(inv * v));
  return c < 63 ? c : std::uint8_t{63};
}

// quantize_row_q4_K_ref for one super-block: per sub-block weights sqrt(mean x^2) + |x|, then
// make_qkx2_quants(nmax 15, rmin -1, rdelta 0.1, 20 steps); d = max scale / 63, dmin = max min / 63.
QFORGE_HD inline void encode_block_ref(const float* x, block_q4_k& y) noexcept {
  std::uint8_t L[qk_k];
  std::uint8_t Laux[32];
  float weights[32];
  float mins[sub_blocks];
  float scales[sub_blocks];
  float max_scale = 0;
  float max_min = 0;
  for (int j = 0; j < sub_blocks; ++j) {
    const float* xj = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xj[l]);
    scales[j] = detail::make_qkx2_quants(32, 15, xj, weights, L + 32 * j, &mins[j], Laux, -1.f,
                                         0.1f, 20, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::uint8_t ls[sub_blocks], lm[sub_blocks];
  for (int j = 0; j < sub_blocks; ++j) {
    ls[j] = code6(inv_scale, scales[j]);
    lm[j] = code6(inv_min, mins[j]);
  }
  finish_block(x, ls, lm, max_scale / 63.f, max_min / 63.f, L, y);
}

// The importance weights of quantize_row_q4_K_impl for sub-block j: qw * sqrt(sigma2 + x^2), with
// sigma2 = 2 * mean(x^2) over the super-block. Returns their sum (ggml's sw[j]).
QFORGE_HD inline float impl_weights(const float* xj, const float* qw, float sigma2, float* weights) noexcept {
  for (int l = 0; l < 32; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + xj[l] * xj[l]);
  float sumw = 0;
  for (int l = 0; l < 32; ++l) sumw += weights[l];
  return sumw;
}

// quantize_row_q4_K_impl for one super-block with its 256 importance weights qw: make_qkx3_quants
// (nmax 15, rmin -0.9, rdelta 0.05, 36 steps) per sub-block, then the 8 scales and the 8 mins are
// themselves fitted with make_qp_quants weighted by each sub-block's weight sum. ggml does not clamp
// these codes to 63 here (Q5_K does); make_qp_quants keeps them <= 63 for finite input anyway.
QFORGE_HD inline void encode_block_impl(const float* x, const float* qw, block_q4_k& y) noexcept {
  std::uint8_t L[qk_k];
  std::uint8_t Laux[32];
  std::uint8_t Ls[sub_blocks], Lm[sub_blocks];
  float weights[32];
  float sw[sub_blocks];
  float mins[sub_blocks];
  float scales[sub_blocks];
  float sum_x2 = 0;
  for (int l = 0; l < qk_k; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / qk_k;
  for (int j = 0; j < sub_blocks; ++j) {
    sw[j] = impl_weights(x + 32 * j, qw + 32 * j, sigma2, weights);
    scales[j] = detail::make_qkx3_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                         -0.9f, 0.05f, 36, false);
  }
  const float d_block = detail::make_qp_quants(sub_blocks, 63, scales, Ls, sw);
  const float m_block = detail::make_qp_quants(sub_blocks, 63, mins, Lm, sw);
  finish_block(x, Ls, Lm, d_block, m_block, L, y);
}

// x.size() == 256 * y.size(). imatrix null: every super-block through the *_ref search (ggml
// ignores row boundaries there). imatrix given: x is one row and imatrix holds x.size() weights.
inline void encode_ref(std::span<const float> x, std::span<block_q4_k> y,
                       const float* imatrix = nullptr) noexcept {
  for (std::size_t i = 0; i < y.size(); ++i) {
    const float* xi = x.data() + i * qk_k;
    if (imatrix) encode_block_impl(xi, imatrix + i * qk_k, y[i]);
    else encode_block_ref(xi, y[i]);
  }
}

// dequantize_row_q4_K: w = (d*sc) * q - (dmin*m). y.size() == 256 * x.size().
inline void decode_ref(std::span<const block_q4_k> x, std::span<float> y) noexcept {
  float* out = y.data();
  for (const block_q4_k& b : x) {
    const float d = fp16_to_fp32(b.d);
    const float min = fp16_to_fp32(b.dmin);
    const std::uint8_t* q = b.qs;
    for (int is = 0; is < sub_blocks; is += 2) {
      std::uint8_t sc, m;
      detail::get_scale_min_k4(is, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      detail::get_scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *out++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *out++ = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

}  // namespace qforge::quant::q4_k
