// SPDX-License-Identifier: MIT
// Q3_K reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_q3_K as ggml_quantize_chunk calls it: without importance weights the
// quantize_row_q3_K_ref path, with them quantize_row_q3_K_impl (one row at a time), and
// dequantize_row_q3_K, all as ggml-base builds them (plain x86-64, no FMA). A super-block holds 256
// weights in 16 sub-blocks of 16; each gets a symmetric 3-bit fit w ~ s*(q - 4), q in [0, 7]; the 16
// signed scales are quantized to 6 bits (sc - 32) against one fp16 d, and every weight is re-rounded
// against the stored d * (sc - 32). 3.4375 bits per weight. Layout: the 2 low bits of q as Q2_K's qs
// (byte l of a 128-weight half holds weights l, l+32, l+64, l+96); the third bit of weight j in bit
// j / 32 of hmask[j % 32] (set means q >= 4); the 6-bit scales as 16 low nibbles in scales[0..7] (sub-block
// j < 8 low nibble of byte j, j >= 8 high nibble of byte j - 8) and their top 2 bits in scales[8..11]
// (sub-block j at bits 2 * (j / 4) of byte 8 + j % 4).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::q3_k {

inline constexpr int block_elems = qk_k;

// The stored 6-bit scale of sub-block j minus 32, in [-32, 31].
QFORGE_HD inline int scale_of(const block_q3_k& b, int j) noexcept {
  const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
  const int hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

namespace ref_detail {

// Packs one 6-bit value l (0..63) of sub-block j into the 12 scale bytes (which start zeroed).
QFORGE_HD inline void put_scale(block_q3_k& y, int j, int l) noexcept {
  if (j < 8) y.scales[j] = static_cast<std::uint8_t>(l & 0xF);
  else y.scales[j - 8] = static_cast<std::uint8_t>(y.scales[j - 8] | ((l & 0xF) << 4));
  y.scales[8 + j % 4] = static_cast<std::uint8_t>(y.scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
}

// Re-rounds each weight of the sub-blocks with a non-zero stored scale against fp16(d) * sc (the
// others keep the search's levels), then splits L into hmask and qs.
QFORGE_HD inline void requantize_and_pack(const float* x, block_q3_k& y, std::int8_t* L) noexcept {
  const float d_all = fp16_to_fp32(y.d);
  for (int j = 0; j < qk_k / 16; ++j) {
    const float d = d_all * static_cast<float>(scale_of(y, j));
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = detail::nearest_int(x[16 * j + i] / d);
      L[16 * j + i] = static_cast<std::int8_t>((l < -4 ? -4 : l > 3 ? 3 : l) + 4);
    }
  }
  std::memset(y.hmask, 0, sizeof y.hmask);
  for (int j = 0; j < qk_k; ++j) {
    if (L[j] > 3) {
      y.hmask[j % 32] = static_cast<std::uint8_t>(y.hmask[j % 32] | (1u << (j / 32)));
      L[j] = static_cast<std::int8_t>(L[j] - 4);
    }
  }
  for (int h = 0; h < qk_k; h += 128)
    for (int l = 0; l < 32; ++l)
      y.qs[h / 4 + l] = static_cast<std::uint8_t>(L[h + l] | (L[h + l + 32] << 2) |
                                                  (L[h + l + 64] << 4) | (L[h + l + 96] << 6));
}

// Scales are searched with make_q3_quants (weights x^2, up to 5 coordinate-descent passes); the
// super-scale maps the largest-magnitude scale to -32 (so its sign is the block's), and each scale is
// rounded through an int8 like ggml (`int8_t l = nearest_int(...)` keeps the low byte) before clamping.
QFORGE_HD inline void encode_block_plain(const float* x, block_q3_k& y) noexcept {
  std::int8_t L[qk_k];
  float scales[16];
  float max_scale = 0.0f, amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = detail::make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
    const float a = std::fabs(scales[j]);
    if (a > amax) {
      amax = a;
      max_scale = scales[j];
    }
  }
  std::memset(y.scales, 0, sizeof y.scales);
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int l8 = static_cast<std::int8_t>(detail::nearest_int(iscale * scales[j]));
      put_scale(y, j, (l8 < -32 ? -32 : l8 > 31 ? 31 : l8) + 32);
    }
    y.d = fp32_to_fp16(1 / iscale);
  } else {
    y.d = fp32_to_fp16(0.0f);
  }
  requantize_and_pack(x, y, L);
}

// Importance-weighted variant: weights qw[l] * sqrt(sigma2 + x^2) with sigma2 twice the block's mean
// square; sub-block scales from make_qx_quants (rmse_type 1, those weights), and the 6-bit scales from
// a second make_qx_quants over the 16 scales weighted by each sub-block's total weight.
QFORGE_HD inline void encode_block_weighted(const float* x, const float* qw, block_q3_k& y) noexcept {
  std::int8_t L[qk_k], ls[16];
  float scales[16], weight[16], sw[16];
  float sumx2 = 0.0f;
  for (int j = 0; j < qk_k; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = 2 * sumx2 / qk_k;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l)
      weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float sumw = 0.0f;
    for (int l = 0; l < 16; ++l) sumw += weight[l];
    sw[j] = sumw;
    scales[j] = detail::make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
  }
  std::memset(y.scales, 0, sizeof y.scales);
  const float d_block = detail::make_qx_quants(16, 32, scales, ls, 1, sw);
  for (int j = 0; j < 16; ++j) put_scale(y, j, ls[j]);
  y.d = fp32_to_fp16(d_block);
  requantize_and_pack(x, y, L);
}

}  // namespace ref_detail

// Encodes x.size() / 256 super-blocks. Caller guarantees x.size() % 256 == 0 and
// y.size() == x.size() / 256. `imatrix` null: ggml's unweighted path; otherwise x is exactly one
// row and imatrix holds x.size() importance weights, one per column.
inline void encode_ref(std::span<const float> x, std::span<block_q3_k> y,
                       const float* imatrix = nullptr) noexcept {
  const std::size_t nb = x.size() / qk_k;
  for (std::size_t i = 0; i < nb; ++i) {
    if (imatrix == nullptr) ref_detail::encode_block_plain(x.data() + i * qk_k, y[i]);
    else ref_detail::encode_block_weighted(x.data() + i * qk_k, imatrix + i * qk_k, y[i]);
  }
}

// w = d * (sc - 32) * (q - 4 when the hmask bit is clear), as two float products.
// Caller guarantees y.size() == 256 * x.size().
inline void decode_ref(std::span<const block_q3_k> x, std::span<float> y) noexcept {
  float* out = y.data();
  for (const block_q3_k& b : x) {
    const float d_all = fp16_to_fp32(b.d);
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int half = 0; half < 2; ++half) {
          const int j = 8 * h + 2 * s + half;
          const float dl = d_all * static_cast<float>(scale_of(b, j));
          const int bit = 4 * h + s;
          for (int l = 0; l < 16; ++l) {
            const int k = 16 * half + l;
            const int q = (b.qs[32 * h + k] >> (2 * s)) & 3;
            const int hi = (b.hmask[k] >> bit) & 1;
            *out++ = dl * static_cast<float>(q - (hi ? 0 : 4));
          }
        }
      }
    }
  }
}

}  // namespace qforge::quant::q3_k
