// SPDX-License-Identifier: MIT
// Q4_K encoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp. Same
// bytes as ref.hpp because it vectorises *across* super-blocks: each of the W lanes owns one
// 256-weight super-block and runs the reference's searches (detail/scale_search_simd.hpp) with the
// same float operations in the same order; the per-block bookkeeping between the searches (6-bit
// codes, fp16 scales, packing) is the reference's own scalar code. The super-blocks of a group are
// first copied lane-major (element e of lane k at e * W + k) so every step is a plain vector load;
// a short last group repeats its last super-block in the spare lanes and drops their results.
// The body is shared with Q5_K (q5_k/simd.hpp), which differs only in the constants and packing
// that a `Spec` names. Decoding is elementwise and needs no lanes: decode_simd is the reference
// loop compiled for the ISA (the compiler vectorises it; -ffp-contract=off keeps its bits).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search_simd.hpp"
#include "qforge/quant/q4_k/ref.hpp"

namespace qforge::quant::q4_k {

namespace simd_detail {

// Encodes y.size() super-blocks of a Q4_K-like type (8 sub-blocks of 32, 6-bit scales and mins,
// asymmetric levels in [0, Spec::nmax]). Spec supplies the block type, the searches' constants and
// the reference's pack_scales / pack_levels / code6.
template <class Arch, class Spec>
void encode_lanes(std::span<const float> x, std::span<typename Spec::block> y,
                  const float* imatrix) noexcept {
  namespace ln = detail::superblock_lanes;
  using F = ln::fb<Arch>;
  constexpr std::size_t W = F::size;
  constexpr int S = qk_k / 32;
  constexpr int nmax = Spec::nmax;
  // Sub-blocks searched together per lane (independent dependency chains for the FP pipes).
  constexpr int G = ln::interleave<Arch>;
  static_assert(S % G == 0);

  alignas(64) float xs[qk_k * W];
  alignas(64) float ws[qk_k * W];  // importance weights, lane-major
  alignas(64) float L[qk_k * W];
  alignas(64) float Laux[32 * W * G];
  alignas(64) float wts[32 * W * G];
  F sc[G], tm[G];
  alignas(64) float scales[S * W], mins[S * W], sw[S * W], Ls[S * W], Lm[S * W];
  alignas(64) float dj[S * W], dm[S * W], dblk[W], mblk[W];

  const std::size_t nb = y.size();
  for (std::size_t i0 = 0; i0 < nb; i0 += W) {
    const std::size_t used = nb - i0 < W ? nb - i0 : W;
    ln::to_lanes<Arch>(x.data() + i0 * qk_k, qk_k, used, qk_k, xs);
    if (imatrix == nullptr) {
      // quantize_row_*_ref: weights sqrt(mean x^2) + |x| per sub-block, make_qkx2_quants.
      for (int j0 = 0; j0 < S; j0 += G) {
        for (int g = 0; g < G; ++g) {
          const float* xj = xs + 32 * (j0 + g) * W;
          F sum_x2(0.0f);
          for (int l = 0; l < 32; ++l) {
            const F v = ln::at<Arch>(xj, l);
            sum_x2 += v * v;
          }
          const F av_x = xsimd::sqrt(sum_x2 / F(32.0f));
          for (int l = 0; l < 32; ++l)
            ln::put<Arch>(wts + 32 * g * W, l, av_x + xsimd::abs(ln::at<Arch>(xj, l)));
        }
        ln::make_qkx_quants<Arch, false, false, G>(32, nmax, xs + 32 * j0 * W, wts,
                                                   L + 32 * j0 * W, Laux, sc, tm, Spec::ref_rmin,
                                                   Spec::ref_rdelta, Spec::ref_nstep);
        for (int g = 0; g < G; ++g) {
          ln::put<Arch>(scales, j0 + g, sc[g]);
          ln::put<Arch>(mins, j0 + g, tm[g]);
        }
      }
      for (std::size_t k = 0; k < used; ++k) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < S; ++j) {
          if (scales[j * W + k] > max_scale) max_scale = scales[j * W + k];
          if (mins[j * W + k] > max_min) max_min = mins[j * W + k];
        }
        const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        std::uint8_t ls[S], lm[S];
        for (int j = 0; j < S; ++j) {
          ls[j] = Spec::code6(inv_scale, scales[j * W + k]);
          lm[j] = Spec::code6(inv_min, mins[j * W + k]);
        }
        Spec::pack_scales(ls, lm, max_scale / 63.f, max_min / 63.f, y[i0 + k]);
      }
    } else {
      // quantize_row_*_impl: weights qw * sqrt(sigma2 + x^2), make_qkx3_quants, then the scales
      // and mins fitted by make_qp_quants with the sub-blocks' weight sums.
      ln::to_lanes<Arch>(imatrix + i0 * qk_k, qk_k, used, qk_k, ws);
      F sum_x2(0.0f);
      for (int l = 0; l < qk_k; ++l) {
        const F v = ln::at<Arch>(xs, l);
        sum_x2 += v * v;
      }
      const F sigma2 = F(2.0f) * sum_x2 / F(static_cast<float>(qk_k));
      for (int j0 = 0; j0 < S; j0 += G) {
        for (int g = 0; g < G; ++g) {
          const float* xj = xs + 32 * (j0 + g) * W;
          const float* qj = ws + 32 * (j0 + g) * W;
          float* wg = wts + 32 * g * W;
          for (int l = 0; l < 32; ++l) {
            const F v = ln::at<Arch>(xj, l);
            ln::put<Arch>(wg, l, ln::at<Arch>(qj, l) * xsimd::sqrt(sigma2 + v * v));
          }
          F sumw(0.0f);
          for (int l = 0; l < 32; ++l) sumw += ln::at<Arch>(wg, l);
          ln::put<Arch>(sw, j0 + g, sumw);
        }
        ln::make_qkx_quants<Arch, true, false, G>(32, nmax, xs + 32 * j0 * W, wts,
                                                  L + 32 * j0 * W, Laux, sc, tm, -0.9f, 0.05f, 36);
        for (int g = 0; g < G; ++g) {
          ln::put<Arch>(scales, j0 + g, sc[g]);
          ln::put<Arch>(mins, j0 + g, tm[g]);
        }
      }
      ln::make_qp_quants<Arch>(S, 63, scales, Ls, sw).store_aligned(dblk);
      ln::make_qp_quants<Arch>(S, 63, mins, Lm, sw).store_aligned(mblk);
      for (std::size_t k = 0; k < used; ++k) {
        std::uint8_t ls[S], lm[S];
        for (int j = 0; j < S; ++j) {
          ls[j] = static_cast<std::uint8_t>(Ls[j * W + k]);
          lm[j] = static_cast<std::uint8_t>(Lm[j * W + k]);
          if constexpr (Spec::clamp_qp_codes) {
            ls[j] = ls[j] < 63 ? ls[j] : std::uint8_t{63};
            lm[j] = lm[j] < 63 ? lm[j] : std::uint8_t{63};
          }
        }
        Spec::pack_scales(ls, lm, dblk[k], mblk[k], y[i0 + k]);
      }
    }

    // Requantise against the stored scales, lane-parallel; spare lanes get d = 0 (no-op).
    for (std::size_t k = 0; k < W; ++k) {
      for (int j = 0; j < S; ++j) {
        std::uint8_t sc = 0, m = 0;
        if (k < used) detail::get_scale_min_k4(j, y[i0 + k].scales, &sc, &m);
        dj[j * W + k] = k < used ? fp16_to_fp32(y[i0 + k].d) * static_cast<float>(sc) : 0.0f;
        dm[j * W + k] = k < used ? fp16_to_fp32(y[i0 + k].dmin) * static_cast<float>(m) : 0.0f;
      }
    }
    for (int j = 0; j < S; ++j) {
      const F d = ln::at<Arch>(dj, j);
      const F m = ln::at<Arch>(dm, j);
      const auto keep = d == F(0.0f);  // ggml: `if (!d) continue;` (a NaN d requantises)
      if (xsimd::all(keep)) continue;
      for (int e = 32 * j; e < 32 * j + 32; ++e) {
        const F l = ln::level<Arch>((ln::at<Arch>(xs, e) + m) / d, 0, nmax);
        ln::put<Arch>(L, e, xsimd::select(keep, ln::at<Arch>(L, e), l));
      }
    }
    for (std::size_t k = 0; k < used; ++k) {
      std::uint8_t Lb[qk_k];
      for (int e = 0; e < qk_k; ++e) Lb[e] = static_cast<std::uint8_t>(L[e * W + k]);
      Spec::pack_levels(Lb, y[i0 + k]);
    }
  }
}

struct spec {
  using block = block_q4_k;
  static constexpr int nmax = 15;
  static constexpr float ref_rmin = -1.0f, ref_rdelta = 0.1f;
  static constexpr int ref_nstep = 20;
  static constexpr bool clamp_qp_codes = false;  // quantize_row_q4_K_impl does not clamp
  static std::uint8_t code6(float inv, float v) noexcept { return q4_k::code6(inv, v); }
  static void pack_scales(const std::uint8_t* ls, const std::uint8_t* lm, float d, float dmin,
                          block& y) noexcept {
    q4_k::pack_scales(ls, lm, d, dmin, y);
  }
  static void pack_levels(const std::uint8_t* L, block& y) noexcept { q4_k::pack_levels(L, y); }
};

}  // namespace simd_detail

// x.size() == 256 * y.size(); imatrix null or x.size() weights of one row (checked by the caller).
struct encode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q4_k> y,
                  const float* imatrix) const noexcept {
    simd_detail::encode_lanes<Arch, simd_detail::spec>(x, y, imatrix);
  }
};

}  // namespace qforge::quant::q4_k
