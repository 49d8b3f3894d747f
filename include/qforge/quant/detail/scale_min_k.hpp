// SPDX-License-Identifier: MIT
// The reference steps Q4_K and Q5_K share (ggml's "scale + min" K-quants): both split a 256-weight
// super-block into 8 sub-blocks of 32 coded w = d*sc*q - dmin*m, with 6-bit sub-block scales sc and
// mins m packed into 12 bytes under fp16 super-scales d and dmin; they differ only in the code
// range (q in [0, 15] or [0, 31]), the search constants and how the codes are laid out (each
// format's ref.hpp). Both searches are ggml's, operation for operation, so the bytes match
// quantize_row_q{4,5}_K_ref / _impl as ggml-base builds them (plain x86-64, no FMA).
#pragma once
#include <cmath>
#include <cstdint>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::detail::scale_min_k {

inline constexpr int sub_blocks = qk_k / 32;

// The 6-bit sub-block codes into the 12 scale bytes, and d, dmin as fp16.
template <class Block>
QFORGE_HD void pack_scales(const std::uint8_t* ls, const std::uint8_t* lm, float d, float dmin,
                           Block& y) noexcept {
  for (int j = 0; j < sub_blocks; ++j) set_scale_min_k4(j, y.scales, ls[j], lm[j]);
  y.d = fp32_to_fp16(d);
  y.dmin = fp32_to_fp16(dmin);
}

// Requantises every sub-block against the *stored* scales, (x + dmin*m) / (d*sc) rounded and
// clamped to [0, nmax]; a sub-block whose d*sc is 0 keeps the search's levels, as in ggml.
template <class Block>
QFORGE_HD void requantize(const float* x, const Block& y, int nmax, std::uint8_t* L) noexcept {
  for (int j = 0; j < sub_blocks; ++j) {
    std::uint8_t sc, m;
    get_scale_min_k4(j, y.scales, &sc, &m);
    const float dj = fp16_to_fp32(y.d) * static_cast<float>(sc);
    if (dj == 0.0f) continue;
    const float dm = fp16_to_fp32(y.dmin) * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / dj);
      L[32 * j + ii] = static_cast<std::uint8_t>(imax(0, imin(nmax, l)));
    }
  }
}

// ggml's 6-bit code of a sub-block scale: nearest_int into a uint8_t (so a negative code wraps,
// exactly as C converts), then clamped to 63.
QFORGE_HD inline std::uint8_t code6(float inv, float v) noexcept {
  const auto c = static_cast<std::uint8_t>(nearest_int(inv * v));
  return c < 63 ? c : std::uint8_t{63};
}

// What a super-block's search decided: the 256 levels, the sub-block codes and the super-scales.
struct search_result {
  std::uint8_t L[qk_k];
  std::uint8_t ls[sub_blocks], lm[sub_blocks];
  float d, dmin;
};

// The unweighted search (quantize_row_q*_K_ref): per sub-block weights sqrt(mean x^2) + |x|, then
// make_qkx2_quants(nmax, rmin, rdelta, nstep); d = max scale / 63, dmin = max min / 63.
QFORGE_HD inline void search_plain(const float* x, int nmax, float rmin, float rdelta, int nstep,
                                   search_result& r) noexcept {
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
    scales[j] = make_qkx2_quants(32, nmax, xj, weights, r.L + 32 * j, &mins[j], Laux, rmin, rdelta,
                                 nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < sub_blocks; ++j) {
    r.ls[j] = code6(inv_scale, scales[j]);
    r.lm[j] = code6(inv_min, mins[j]);
  }
  r.d = max_scale / 63.f;
  r.dmin = max_min / 63.f;
}

// The importance weights of quantize_row_q*_K_impl for one sub-block: qw * sqrt(sigma2 + x^2), with
// sigma2 = 2 * mean(x^2) over the super-block. Returns their sum (ggml's sw[j]).
QFORGE_HD inline float impl_weights(const float* xj, const float* qw, float sigma2,
                                    float* weights) noexcept {
  for (int l = 0; l < 32; ++l) weights[l] = qw[l] * std::sqrt(sigma2 + xj[l] * xj[l]);
  float sumw = 0;
  for (int l = 0; l < 32; ++l) sumw += weights[l];
  return sumw;
}

// The weighted search (quantize_row_q*_K_impl) with the super-block's 256 importance weights qw:
// make_qkx3_quants (nmax, rmin -0.9, rdelta 0.05, 36 steps) per sub-block, then the 8 scales and the
// 8 mins fitted with make_qp_quants weighted by each sub-block's weight sum. clamp63: Q5_K clamps
// those codes to 63, Q4_K does not (make_qp_quants keeps them <= 63 for finite input anyway).
QFORGE_HD inline void search_weighted(const float* x, const float* qw, int nmax, bool clamp63,
                                      search_result& r) noexcept {
  std::uint8_t Laux[32];
  float weights[32];
  float sw[sub_blocks];
  float mins[sub_blocks];
  float scales[sub_blocks];
  float sum_x2 = 0;
  for (int l = 0; l < qk_k; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2 * sum_x2 / qk_k;
  for (int j = 0; j < sub_blocks; ++j) {
    sw[j] = impl_weights(x + 32 * j, qw + 32 * j, sigma2, weights);
    scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, weights, r.L + 32 * j, &mins[j], Laux, -0.9f,
                                 0.05f, 36, false);
  }
  r.d = make_qp_quants(sub_blocks, 63, scales, r.ls, sw);
  r.dmin = make_qp_quants(sub_blocks, 63, mins, r.lm, sw);
  if (clamp63)
    for (int j = 0; j < sub_blocks; ++j) {
      r.ls[j] = r.ls[j] < 63 ? r.ls[j] : std::uint8_t{63};
      r.lm[j] = r.lm[j] < 63 ? r.lm[j] : std::uint8_t{63};
    }
}

}  // namespace qforge::quant::detail::scale_min_k
