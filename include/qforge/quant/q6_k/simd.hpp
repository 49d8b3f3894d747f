// SPDX-License-Identifier: MIT
// Q6_K encoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp. Same
// bytes as ref.hpp because it vectorises *across* super-blocks: each of the W lanes owns one
// 256-weight super-block and runs make_qx_quants on its 16 sub-blocks (detail/scale_search_simd.hpp)
// with the reference's float operations in the reference's order; the int8 codes and the fp16
// scale come from the reference's own scalar pack_scales, and the requantisation against them is
// again lane-parallel. Super-blocks are copied lane-major first (element e of lane k at e * W + k);
// a short last group repeats its last super-block in the spare lanes and drops their results.
// Decoding is elementwise: decode_simd is the reference loop compiled for the ISA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search_simd.hpp"
#include "qforge/quant/q6_k/ref.hpp"

namespace qforge::quant::q6_k {

// x.size() == 256 * y.size(); imatrix null or x.size() weights of one row (checked by the caller).
struct encode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q6_k> y,
                  const float* imatrix) const noexcept {
    namespace ln = detail::superblock_lanes;
    using F = ln::fb<Arch>;
    constexpr std::size_t W = F::size;
    constexpr int S = sub_blocks;
    constexpr int G = ln::interleave<Arch>;  // sub-blocks searched together per lane
    static_assert(S % G == 0);

    alignas(64) float xs[qk_k * W];
    alignas(64) float ws[qk_k * W];  // importance weights, lane-major
    alignas(64) float L[qk_k * W];
    alignas(64) float Ltmp[16 * W * G];
    alignas(64) float scales[S * W], dj[S * W], max_scale[W], max_abs[W];

    const std::size_t nb = y.size();
    for (std::size_t i0 = 0; i0 < nb; i0 += W) {
      const std::size_t used = nb - i0 < W ? nb - i0 : W;
      ln::to_lanes<Arch>(x.data() + i0 * qk_k, qk_k, used, qk_k, xs);
      if (imatrix) ln::to_lanes<Arch>(imatrix + i0 * qk_k, qk_k, used, qk_k, ws);
      F ms(0.0f), ma(0.0f);
      for (int ib0 = 0; ib0 < S; ib0 += G) {
        const std::size_t off = static_cast<std::size_t>(16 * ib0) * W;
        F sc[G];
        ln::make_qx_quants_rmse1<Arch, G>(16, 32, xs + off, L + off, imatrix ? ws + off : nullptr,
                                          Ltmp, sc);
        for (int g = 0; g < G; ++g) {
          ln::put<Arch>(scales, ib0 + g, sc[g]);
          const F a = xsimd::abs(sc[g]);
          const auto bigger = a > ma;
          ma = xsimd::select(bigger, a, ma);
          ms = xsimd::select(bigger, sc[g], ms);
        }
      }
      ms.store_aligned(max_scale);
      ma.store_aligned(max_abs);

      bool live[W] = {};
      for (std::size_t k = 0; k < used; ++k) {
        float sc[S];
        for (int j = 0; j < S; ++j) sc[j] = scales[j * W + k];
        live[k] = pack_scales(sc, max_scale[k], max_abs[k], y[i0 + k]);
      }
      // Requantise against fp16(d) * code, lane-parallel; zero blocks and spare lanes get d = 0.
      for (std::size_t k = 0; k < W; ++k)
        for (int j = 0; j < S; ++j)
          dj[j * W + k] =
              live[k] ? fp16_to_fp32(y[i0 + k].d) * static_cast<float>(y[i0 + k].scales[j]) : 0.0f;
      for (int j = 0; j < S; ++j) {
        const F d = ln::at<Arch>(dj, j);
        const auto keep = d == F(0.0f);  // ggml: `if (!d) continue;` (a NaN d requantises)
        if (xsimd::all(keep)) continue;
        for (int e = 16 * j; e < 16 * j + 16; ++e) {
          const F l = ln::level<Arch>(ln::at<Arch>(xs, e) / d, -32, 31) + F(32.0f);
          ln::put<Arch>(L, e, xsimd::select(keep, ln::at<Arch>(L, e), l));
        }
      }
      for (std::size_t k = 0; k < used; ++k) {
        if (!live[k]) continue;
        std::int8_t Lb[qk_k];
        for (int e = 0; e < qk_k; ++e) Lb[e] = static_cast<std::int8_t>(L[e * W + k]);
        pack_levels(Lb, y[i0 + k]);
      }
    }
  }
};

}  // namespace qforge::quant::q6_k
