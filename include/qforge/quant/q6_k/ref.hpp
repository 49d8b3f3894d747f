// SPDX-License-Identifier: MIT
// Q6_K reference encoder and decoder: the spec the fast paths reproduce byte for byte. Same bytes
// as ggml's quantize_row_q6_K_ref (no importance weights), quantize_row_q6_K_impl (with them) and
// dequantize_row_q6_K, as ggml-base builds them (plain x86-64, no FMA). A 256-weight super-block
// holds 16 sub-blocks of 16, each symmetric: w = d * sc * (q - 32), q in [0, 63], sc an int8 code
// of the fp16 super-scale d. Per 128 weights, ql packs the low nibbles of weights l and l+64 (and
// l+32 / l+96) into one byte and qh packs the 2 high bits of l, l+32, l+64, l+96 into one byte.
// 6.5625 bits per weight. The weights are requantised against the fp16 d after the search. No
// xsimd or CUDA here.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q6_k {

inline constexpr int block_elems = qk_k;
inline constexpr int sub_blocks = qk_k / 16;

// After the 16 searches, in three steps the SIMD bodies share (they run the middle one
// lane-parallel). pack_scales: a super-block whose scales are all below group_max_eps is written as
// zeros (returns false). Otherwise the int8 codes are nearest_int(-128/max_scale * s) clamped above
// at 127 (max_scale is the signed scale of largest magnitude, so codes reach -128) and
// d = fp16(max_scale / -128).
QFORGE_HD inline bool pack_scales(const float* scales, float max_scale, float max_abs_scale,
                        block_q6_k& y) noexcept {
  if (max_abs_scale < detail::group_max_eps) {
    std::memset(&y, 0, sizeof y);
    return false;
  }
  const float iscale = -128.f / max_scale;
  y.d = fp32_to_fp16(1 / iscale);
  for (int ib = 0; ib < sub_blocks; ++ib)
    y.scales[ib] = static_cast<std::int8_t>(detail::imin(127, detail::nearest_int(iscale * scales[ib])));
  return true;
}

// Each sub-block requantised against fp16(d) * code, clamped to [-32, 31] and offset by 32; code 0
// keeps the search's levels.
QFORGE_HD inline void requantize(const float* x, const block_q6_k& y, std::int8_t* L) noexcept {
  for (int j = 0; j < sub_blocks; ++j) {
    const float d = fp16_to_fp32(y.d) * static_cast<float>(y.scales[j]);
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      const int l = detail::nearest_int(x[16 * j + ii] / d);
      L[16 * j + ii] = static_cast<std::int8_t>(detail::imax(-32, detail::imin(31, l)) + 32);
    }
  }
}

// Levels in [0, 63] into ql (low nibbles) and qh (2 high bits), 128 weights at a time.
QFORGE_HD inline void pack_levels(const std::int8_t* L, block_q6_k& y) noexcept {
  std::uint8_t* ql = y.ql;
  std::uint8_t* qh = y.qh;
  for (int j = 0; j < qk_k; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
      const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
      ql[l] = static_cast<std::uint8_t>(q1 | (q3 << 4));
      ql[l + 32] = static_cast<std::uint8_t>(q2 | (q4 << 4));
      qh[l] = static_cast<std::uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                        ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
}

// All three; L holds the search's 256 levels in [0, 63] on entry and is overwritten.
QFORGE_HD inline void finish_block(const float* x, const float* scales, float max_scale, float max_abs_scale,
                         std::int8_t* L, block_q6_k& y) noexcept {
  if (!pack_scales(scales, max_scale, max_abs_scale, y)) return;
  requantize(x, y, L);
  pack_levels(L, y);
}

// quantize_row_q6_K_ref (qw null) / quantize_row_q6_K_impl (qw = the super-block's 256 importance
// weights) for one super-block: make_qx_quants(16, 32, rmse_type 1) per sub-block, with x^2 weights
// or the raw importance weights. The largest |scale| picks the super-scale, first one on ties.
QFORGE_HD inline void encode_block_ref(const float* x, const float* qw, block_q6_k& y) noexcept {
  std::int8_t L[qk_k];
  float scales[sub_blocks];
  float max_scale = 0;
  float max_abs_scale = 0;
  for (int ib = 0; ib < sub_blocks; ++ib) {
    const float scale = detail::make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1,
                                               qw ? qw + 16 * ib : nullptr);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  finish_block(x, scales, max_scale, max_abs_scale, L, y);
}

// x.size() == 256 * y.size(). imatrix null: the *_ref path on every super-block. imatrix given:
// x is one row and imatrix holds x.size() weights.
inline void encode_ref(std::span<const float> x, std::span<block_q6_k> y,
                       const float* imatrix = nullptr) noexcept {
  for (std::size_t i = 0; i < y.size(); ++i)
    encode_block_ref(x.data() + i * qk_k, imatrix ? imatrix + i * qk_k : nullptr, y[i]);
}

// dequantize_row_q6_K: w = (d * sc) * (q - 32). y.size() == 256 * x.size().
inline void decode_ref(std::span<const block_q6_k> x, std::span<float> y) noexcept {
  float* out = y.data();
  for (const block_q6_k& b : x) {
    const float d = fp16_to_fp32(b.d);
    const std::uint8_t* ql = b.ql;
    const std::uint8_t* qh = b.qh;
    const std::int8_t* sc = b.scales;
    for (int n = 0; n < qk_k; n += 128) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        out[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
        out[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        out[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        out[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
      out += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

}  // namespace qforge::quant::q6_k
