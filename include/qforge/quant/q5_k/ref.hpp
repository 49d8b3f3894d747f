// SPDX-License-Identifier: MIT
// Q5_K reference encoder and decoder: the spec the fast paths reproduce byte for byte. Same bytes
// as ggml's quantize_row_q5_K_ref (no importance weights), quantize_row_q5_K_impl (with them) and
// dequantize_row_q5_K, as ggml-base builds them (plain x86-64, no FMA). Q4_K's layout plus a fifth
// bit: 8 sub-blocks of 32, w = d*sc*q - dmin*m with q in [0, 31]; the low nibbles sit in qs like
// Q4_K's, and bit 4 of weight j of sub-block 2k (2k+1) is bit 2k (2k+1) of qh[j], so all 8 sub-blocks
// share the same 32 qh bytes. 5.5 bits per weight. No xsimd or CUDA here.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_min_k.hpp"

namespace qforge::quant::q5_k {

inline constexpr int block_elems = qk_k;
inline constexpr int sub_blocks = detail::scale_min_k::sub_blocks;

// Everything after the scale search is split in three so the SIMD bodies can run the middle step
// lane-parallel and share the other two (detail/scale_min_k.hpp holds the steps Q5_K shares).
using detail::scale_min_k::code6;
QFORGE_HD inline void pack_scales(const std::uint8_t* ls, const std::uint8_t* lm, float d, float dmin,
                                  block_q5_k& y) noexcept {
  detail::scale_min_k::pack_scales(ls, lm, d, dmin, y);
}

// The 5-bit levels into qs (low nibbles, laid out like Q4_K's) and qh (bit 4 of weight j of
// sub-block s is bit s of qh[j]).
QFORGE_HD inline void pack_levels(const std::uint8_t* L, block_q5_k& y) noexcept {
  std::uint8_t* qh = y.qh;
  std::uint8_t* ql = y.qs;
  for (int j = 0; j < qk_k / 8; ++j) qh[j] = 0;
  std::uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < qk_k; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] = static_cast<std::uint8_t>(qh[j] | m1);
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        qh[j] = static_cast<std::uint8_t>(qh[j] | m2);
      }
      ql[j] = static_cast<std::uint8_t>(l1 | (l2 << 4));
    }
    m1 = static_cast<std::uint8_t>(m1 << 2);
    m2 = static_cast<std::uint8_t>(m2 << 2);
    ql += 32;
  }
}

// All three; L holds the search's 256 levels on entry and is overwritten.
QFORGE_HD inline void finish_block(const float* x, const std::uint8_t* ls, const std::uint8_t* lm, float d,
                         float dmin, std::uint8_t* L, block_q5_k& y) noexcept {
  pack_scales(ls, lm, d, dmin, y);
  detail::scale_min_k::requantize(x, y, 31, L);
  pack_levels(L, y);
}

// quantize_row_q5_K_ref for one super-block: weights sqrt(mean x^2) + |x| per sub-block, then
// make_qkx2_quants(nmax 31, rmin -0.5, rdelta 0.1, 15 steps); d = max scale / 63, dmin likewise.
QFORGE_HD inline void encode_block_ref(const float* x, block_q5_k& y) noexcept {
  detail::scale_min_k::search_result r;
  detail::scale_min_k::search_plain(x, 31, -0.5f, 0.1f, 15, r);
  finish_block(x, r.ls, r.lm, r.d, r.dmin, r.L, y);
}

// quantize_row_q5_K_impl for one super-block with its 256 importance weights qw: weights
// qw * sqrt(sigma2 + x^2) (sigma2 = 2 * mean x^2 of the super-block), make_qkx3_quants (nmax 31,
// rmin -0.9, rdelta 0.05, 36 steps), then make_qp_quants on the scales and on the mins, weighted
// by the sub-blocks' weight sums; unlike Q4_K's, these codes are clamped to 63.
QFORGE_HD inline void encode_block_impl(const float* x, const float* qw, block_q5_k& y) noexcept {
  detail::scale_min_k::search_result r;
  detail::scale_min_k::search_weighted(x, qw, 31, /*clamp63=*/true, r);
  finish_block(x, r.ls, r.lm, r.d, r.dmin, r.L, y);
}

// x.size() == 256 * y.size(). imatrix null: the *_ref search on every super-block. imatrix given:
// x is one row and imatrix holds x.size() weights.
inline void encode_ref(std::span<const float> x, std::span<block_q5_k> y,
                       const float* imatrix = nullptr) noexcept {
  for (std::size_t i = 0; i < y.size(); ++i) {
    const float* xi = x.data() + i * qk_k;
    if (imatrix) encode_block_impl(xi, imatrix + i * qk_k, y[i]);
    else encode_block_ref(xi, y[i]);
  }
}

// dequantize_row_q5_K: w = (d*sc) * (nibble + 16*bit) - (dmin*m). y.size() == 256 * x.size().
inline void decode_ref(std::span<const block_q5_k> x, std::span<float> y) noexcept {
  float* out = y.data();
  for (const block_q5_k& b : x) {
    const float d = fp16_to_fp32(b.d);
    const float min = fp16_to_fp32(b.dmin);
    const std::uint8_t* ql = b.qs;
    const std::uint8_t* qh = b.qh;
    unsigned u1 = 1, u2 = 2;
    for (int is = 0; is < sub_blocks; is += 2) {
      std::uint8_t sc, m;
      detail::get_scale_min_k4(is, b.scales, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
      detail::get_scale_min_k4(is + 1, b.scales, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l)
        *out++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *out++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

}  // namespace qforge::quant::q5_k
