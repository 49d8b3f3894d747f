// SPDX-License-Identifier: MIT
// Q2_K encoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp. Same bytes
// as ref.hpp. Nearly all of ggml's time goes into the per-sub-block searches (make_qkx2_quants with 16
// candidate scales unweighted, make_qkx3_quants with 37 weighted): sequential running sums that
// cannot be reassociated, but independent between sub-blocks. So each SIMD lane takes one 16-weight
// sub-block and runs detail/scale_search_simd.hpp's lane-wise copy of the search, which repeats the
// reference's float operations in order. The per-super-block steps (4-bit scales and mins, fp16 d
// and dmin, make_qp_quants of the weighted path) stay scalar as in ref.hpp; re-rounding every weight
// against the stored scales is elementwise, so it is vectorised along the weights.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search_simd.hpp"
#include "qforge/quant/detail/subblock_lanes.hpp"
#include "qforge/quant/q2_k/ref.hpp"

namespace qforge::quant::q2_k {

// x.size() % 256 == 0, y.size() == x.size() / 256 (checked by the caller: kernels never throw).
struct encode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q2_k> y,
                  const float* imatrix) const noexcept {
    using fb = xsimd::batch<float, Arch>;
    namespace lanes = detail::lanes;
    namespace sl = detail::superblock_lanes;
    constexpr std::size_t w = fb::size;
    constexpr std::size_t subs = lanes::subs_per_pass;
    constexpr int groups = static_cast<int>(subs / w);
    static_assert(16 % w == 0, "a super-block's 16 sub-blocks must fill whole vectors");

    alignas(64) float lt[16][subs];  // lt[i][k]: the search's level of element i of sub-block k
    alignas(64) float scales[subs], mins[subs], sw[subs];
    // Lane-major problems for detail/scale_search_simd.hpp: group g's element i at (16 g + i) * w.
    alignas(64) float xl[16 * subs], wl[16 * subs], L[16 * subs], laux[16 * subs];
    const std::size_t nb = x.size() / qk_k;
    for (std::size_t b0 = 0; b0 < nb; b0 += lanes::super_per_pass) {
      const std::size_t count = std::min(lanes::super_per_pass, nb - b0);
      const float* xb = x.data() + b0 * qk_k;
      float sigma2[lanes::super_per_pass] = {};
      if (imatrix != nullptr) {
        for (std::size_t s = 0; s < count; ++s) {
          float sumx2 = 0.0f;
          for (std::size_t j = 0; j < qk_k; ++j) sumx2 += xb[s * qk_k + j] * xb[s * qk_k + j];
          sigma2[s] = sumx2 / qk_k;
        }
      }
      fb xv[16][groups];
      lanes::load_subblocks<Arch, groups>(xb, count, xv);
      for (int g = 0; g < groups; ++g) {
        const std::size_t k0 = std::size_t(g) * w;  // first sub-block of the group
        const std::size_t s = k0 / 16;               // its super-block (w divides 16)
        float* xg = xl + 16 * k0;
        float* wg = wl + 16 * k0;
        if (imatrix == nullptr) {
          for (std::size_t i = 0; i < 16; ++i) {
            xv[i][g].store_aligned(xg + i * w);
            xsimd::abs(xv[i][g]).store_aligned(wg + i * w);
          }
          continue;
        }
        // weight = qw * sqrt(sigma2 + x^2); lanes of a padding super-block read weights 0.
        const float* qw = imatrix + (b0 + (s < count ? s : 0)) * qk_k + (k0 % 16) * 16;
        alignas(64) float qt[w];
        fb sum(0.0f);
        for (std::size_t i = 0; i < 16; ++i) {
          for (std::size_t k = 0; k < w; ++k) qt[k] = s < count ? qw[16 * k + i] : 0.0f;
          const fb xi = xv[i][g];
          const fb wi = fb::load_aligned(qt) * xsimd::sqrt(fb(sigma2[s]) + xi * xi);
          xi.store_aligned(xg + i * w);
          wi.store_aligned(wg + i * w);
          sum += wi;
        }
        sum.store_aligned(sw + k0);
      }
      fb sv[groups], mv[groups];
      if (imatrix == nullptr)
        sl::make_qkx_quants<Arch, false, true, groups>(16, 3, xl, wl, L, laux, sv, mv, -0.5f, 0.1f,
                                                       15);
      else
        sl::make_qkx_quants<Arch, true, false, groups>(16, 3, xl, wl, L, laux, sv, mv, -0.9f, 0.05f,
                                                       36);
      for (int g = 0; g < groups; ++g) {
        const std::size_t k0 = std::size_t(g) * w;
        sv[g].store_aligned(scales + k0);
        mv[g].store_aligned(mins + k0);
        for (std::size_t i = 0; i < 16; ++i)
          fb::load_aligned(L + 16 * k0 + i * w).store_aligned(&lt[i][k0]);
      }
      for (std::size_t s = 0; s < count; ++s) {
        block_q2_k& out = y[b0 + s];
        if (imatrix == nullptr) set_scales_plain(scales + 16 * s, mins + 16 * s, out);
        else set_scales_weighted(scales + 16 * s, mins + 16 * s, sw + 16 * s, out);
        requantize_and_pack<Arch>(xb + s * qk_k, lt, 16 * s, out);
      }
    }
  }

 private:
  // ref_detail::encode_block_plain's scale step.
  static void set_scales_plain(const float* scales, const float* mins, block_q2_k& y) noexcept {
    constexpr float q4scale = 15.0f;
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 16; ++j) {
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
  }

  // ref_detail::encode_block_weighted's scale step.
  static void set_scales_weighted(const float* scales, const float* mins, const float* sw,
                                  block_q2_k& y) noexcept {
    std::uint8_t ls[16], lm[16];
    y.d = fp32_to_fp16(detail::make_qp_quants(16, 15, scales, ls, sw));
    y.dmin = fp32_to_fp16(detail::make_qp_quants(16, 15, mins, lm, sw));
    for (int j = 0; j < 16; ++j) y.scales[j] = static_cast<std::uint8_t>(ls[j] | (lm[j] << 4));
  }

  // l = clamp(nearest_int((x + dm) / d), 0, 3) per weight of the sub-blocks whose stored scale is
  // non-zero; the others keep the search's levels (read back from the transposed lt).
  template <class Arch>
  static void requantize_and_pack(const float* x, const float (*lt)[detail::lanes::subs_per_pass],
                                  std::size_t first, block_q2_k& y) noexcept {
    using fb = xsimd::batch<float, Arch>;
    constexpr std::size_t w = fb::size;
    const float d_all = fp16_to_fp32(y.d), m_all = fp16_to_fp32(y.dmin);
    std::uint8_t L[qk_k];
    alignas(64) std::int32_t q[16];
    for (std::size_t j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(y.scales[j] & 0xF);
      if (d == 0.0f) {
        for (std::size_t i = 0; i < 16; ++i) L[16 * j + i] = static_cast<std::uint8_t>(lt[i][first + j]);
        continue;
      }
      const fb dm(m_all * static_cast<float>(y.scales[j] >> 4)), dv(d);
      for (std::size_t i = 0; i < 16; i += w) {
        const fb v = (fb::load_unaligned(x + 16 * j + i) + dm) / dv;
        xsimd::batch_cast<std::int32_t>(detail::lanes::clamp(detail::lanes::nearest_int(v), 0.0f, 3.0f))
            .store_aligned(q + i);
      }
      for (std::size_t i = 0; i < 16; ++i) L[16 * j + i] = static_cast<std::uint8_t>(q[i]);
    }
    for (int h = 0; h < qk_k; h += 128)
      for (int l = 0; l < 32; ++l)
        y.qs[h / 4 + l] = static_cast<std::uint8_t>(L[h + l] | (L[h + l + 32] << 2) |
                                                    (L[h + l + 64] << 4) | (L[h + l + 96] << 6));
  }
};

// Decoding is elementwise (d * sc * q - dmin * m); every backend shares the reference loop.
struct decode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const block_q2_k> x, std::span<float> y) const noexcept {
    q2_k::decode_ref(x, y);
  }
};

}  // namespace qforge::quant::q2_k
