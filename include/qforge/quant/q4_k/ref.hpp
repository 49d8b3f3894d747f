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
#include "qforge/quant/detail/scale_min_k.hpp"

namespace qforge::quant::q4_k {

inline constexpr int block_elems = qk_k;
inline constexpr int sub_blocks = detail::scale_min_k::sub_blocks;

// Everything after the scale search is split in three so the SIMD bodies can run the middle step
// lane-parallel and share the other two (detail/scale_min_k.hpp holds the steps Q5_K shares).
using detail::scale_min_k::code6;
QFORGE_HD inline void pack_scales(const std::uint8_t* ls, const std::uint8_t* lm, float d, float dmin,
                                  block_q4_k& y) noexcept {
  detail::scale_min_k::pack_scales(ls, lm, d, dmin, y);
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
  detail::scale_min_k::requantize(x, y, 15, L);
  pack_levels(L, y);
}

// quantize_row_q4_K_ref for one super-block: per sub-block weights sqrt(mean x^2) + |x|, then
// make_qkx2_quants(nmax 15, rmin -1, rdelta 0.1, 20 steps); d = max scale / 63, dmin = max min / 63.
QFORGE_HD inline void encode_block_ref(const float* x, block_q4_k& y) noexcept {
  detail::scale_min_k::search_result r;
  detail::scale_min_k::search_plain(x, 15, -1.f, 0.1f, 20, r);
  finish_block(x, r.ls, r.lm, r.d, r.dmin, r.L, y);
}

// quantize_row_q4_K_impl for one super-block with its 256 importance weights qw: make_qkx3_quants
// (nmax 15, rmin -0.9, rdelta 0.05, 36 steps) per sub-block, then the 8 scales and the 8 mins are
// themselves fitted with make_qp_quants weighted by each sub-block's weight sum. ggml does not clamp
// these codes to 63 here (Q5_K does); make_qp_quants keeps them <= 63 for finite input anyway.
QFORGE_HD inline void encode_block_impl(const float* x, const float* qw, block_q4_k& y) noexcept {
  detail::scale_min_k::search_result r;
  detail::scale_min_k::search_weighted(x, qw, 15, /*clamp63=*/false, r);
  finish_block(x, r.ls, r.lm, r.d, r.dmin, r.L, y);
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
