// SPDX-License-Identifier: MIT
// Q3_K encoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp. Same bytes
// as ref.hpp. The expensive part of ggml's unweighted path is make_q3_quants, run on each of the 16
// sub-blocks of a super-block: a sequential search (running sums, up to 5 coordinate-descent sweeps
// with a division per element) that cannot be reassociated. Sub-blocks are independent, so each SIMD
// lane takes one sub-block and repeats the reference's float operations in the reference's order;
// data-dependent branches become per-lane selects, and a lane whose sweep changed nothing stays
// unchanged in later sweeps (its state is a fixed point), so sweeping on until every lane has
// converged gives each lane its own result. Several super-blocks are searched at once so that
// independent lanes hide the long dependency chain. The per-super-block steps (6-bit scales, fp16
// d) are scalar as in ref.hpp; re-rounding against the stored scales is elementwise, so it is
// vectorised along the weights. The importance-weighted path runs make_qx_quants per sub-block
// through detail/scale_search_simd.hpp's lane-wise copy.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/scale_search_simd.hpp"
#include "qforge/quant/detail/subblock_lanes.hpp"
#include "qforge/quant/q3_k/ref.hpp"

namespace qforge::quant::q3_k {

namespace simd_detail {

namespace lanes = detail::lanes;

using lanes::clamp;
using lanes::nearest_int;

// make_q3_quants(16, 4, x, L, true) for G groups of W sub-blocks; element i of group g is
// xv[i][g]. Writes L (0..7, or 0 for an all-zero sub-block) as floats and the scales. The G groups
// are independent chains, interleaved for instruction-level parallelism.
template <class Arch, int G>
void q3_search(const xsimd::batch<float, Arch> (*xv)[G], xsimd::batch<float, Arch> (*L)[G],
               xsimd::batch<float, Arch>* scale) noexcept {
  using fb = xsimd::batch<float, Arch>;
  using mb = xsimd::batch_bool<float, Arch>;
  fb sumlx[G], suml2[G], wv[16][G], wxv[16][G];  // w = x^2 and w * x, as ggml rounds them
  mb zero[G];
  for (int g = 0; g < G; ++g) {
    fb max(0.0f), amax(0.0f);
    for (int i = 0; i < 16; ++i) {
      const fb ax = xsimd::abs(xv[i][g]);
      const auto m = ax > amax;
      amax = xsimd::select(m, ax, amax);
      max = xsimd::select(m, xv[i][g], max);
    }
    zero[g] = amax < fb(detail::group_max_eps);
    const fb iscale = fb(-4.0f) / max;
    sumlx[g] = fb(0.0f);
    suml2[g] = fb(0.0f);
    for (int i = 0; i < 16; ++i) {
      L[i][g] = clamp(nearest_int(iscale * xv[i][g]), -4.0f, 3.0f);
      const fb w = wv[i][g] = xv[i][g] * xv[i][g];
      wxv[i][g] = w * xv[i][g];
      sumlx[g] += wxv[i][g] * L[i][g];
      suml2[g] += w * L[i][g] * L[i][g];
    }
  }
  for (int itry = 0; itry < 5; ++itry) {
    mb changed = fb(0.0f) != fb(0.0f);
    for (int i = 0; i < 16; ++i) {
      for (int g = 0; g < G; ++g) {
        const fb x = xv[i][g], l = L[i][g];
        const fb w = wv[i][g];
        const fb wx = wxv[i][g];  // ggml's w*x[i]*L[i] is (w*x)*L
        const fb slx0 = sumlx[g] - wx * l;
        const fb sl20 = suml2[g] - w * l * l;
        const fb new_l = clamp(nearest_int(x * sl20 / slx0), -4.0f, 3.0f);
        const fb slx = slx0 + wx * new_l;
        const fb sl2 = sl20 + w * new_l * new_l;
        const auto take = (slx0 > fb(0.0f)) & (new_l != l) & (sl2 > fb(0.0f)) &
                          (slx * slx * suml2[g] > sumlx[g] * sumlx[g] * sl2);
        L[i][g] = xsimd::select(take, new_l, l);
        sumlx[g] = xsimd::select(take, slx, sumlx[g]);
        suml2[g] = xsimd::select(take, sl2, suml2[g]);
        changed = changed | take;
      }
    }
    if (!xsimd::any(changed)) break;
  }
  for (int g = 0; g < G; ++g) {
    for (int i = 0; i < 16; ++i) L[i][g] = xsimd::select(zero[g], fb(0.0f), L[i][g] + fb(4.0f));
    const fb sc = xsimd::select(suml2[g] > fb(0.0f), sumlx[g] / suml2[g], fb(0.0f));
    scale[g] = xsimd::select(zero[g], fb(0.0f), sc);
  }
}

}  // namespace simd_detail

// x.size() % 256 == 0, y.size() == x.size() / 256 (checked by the caller: kernels never throw).
struct encode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q3_k> y,
                  const float* imatrix) const noexcept {
    using fb = xsimd::batch<float, Arch>;
    constexpr std::size_t w = fb::size;
    constexpr std::size_t subs = detail::lanes::subs_per_pass;
    constexpr int groups = static_cast<int>(subs / w);
    static_assert(16 % w == 0, "a super-block's 16 sub-blocks must fill whole vectors");
    alignas(64) float lt[16][subs];
    alignas(64) float scales[subs], sw[subs];
    // Lane-major problems for detail/scale_search_simd.hpp: group g's element i at (16 g + i) * w.
    alignas(64) float xl[16 * subs], wl[16 * subs], L[16 * subs], ltmp[16 * subs];
    const std::size_t nb = x.size() / qk_k;
    for (std::size_t b0 = 0; b0 < nb; b0 += detail::lanes::super_per_pass) {
      const std::size_t count = std::min(detail::lanes::super_per_pass, nb - b0);
      const float* xb = x.data() + b0 * qk_k;
      fb xv[16][groups];
      detail::lanes::load_subblocks<Arch, groups>(xb, count, xv);
      if (imatrix == nullptr) {
        fb lv[16][groups], sv[groups];
        simd_detail::q3_search<Arch, groups>(xv, lv, sv);
        for (int g = 0; g < groups; ++g) sv[g].store_aligned(scales + std::size_t(g) * w);
        for (std::size_t i = 0; i < 16; ++i)
          for (int g = 0; g < groups; ++g) lv[i][g].store_aligned(&lt[i][std::size_t(g) * w]);
      } else {
        // ggml's weighted path: weight = qw * sqrt(sigma2 + x^2), sigma2 = 2 * mean(x^2) of the
        // super-block; make_qx_quants (rmse_type 1) per sub-block, lane-wise.
        float sigma2[detail::lanes::super_per_pass] = {};
        for (std::size_t s = 0; s < count; ++s) {
          float sumx2 = 0.0f;
          for (std::size_t j = 0; j < qk_k; ++j) sumx2 += xb[s * qk_k + j] * xb[s * qk_k + j];
          sigma2[s] = 2 * sumx2 / qk_k;
        }
        for (int g = 0; g < groups; ++g) {
          const std::size_t k0 = std::size_t(g) * w, s = k0 / 16;  // w divides 16
          const float* qw = imatrix + (b0 + (s < count ? s : 0)) * qk_k + (k0 % 16) * 16;
          alignas(64) float qt[w];
          fb sum(0.0f);
          for (std::size_t i = 0; i < 16; ++i) {
            for (std::size_t k = 0; k < w; ++k) qt[k] = s < count ? qw[16 * k + i] : 0.0f;
            const fb xi = xv[i][g];
            const fb wi = fb::load_aligned(qt) * xsimd::sqrt(fb(sigma2[s]) + xi * xi);
            xi.store_aligned(xl + 16 * k0 + i * w);
            wi.store_aligned(wl + 16 * k0 + i * w);
            sum += wi;
          }
          sum.store_aligned(sw + k0);
        }
        fb sv[groups];
        detail::superblock_lanes::make_qx_quants_rmse1<Arch, groups>(16, 4, xl, L, wl, ltmp, sv);
        for (int g = 0; g < groups; ++g) {
          const std::size_t k0 = std::size_t(g) * w;
          sv[g].store_aligned(scales + k0);
          for (std::size_t i = 0; i < 16; ++i)
            fb::load_aligned(L + 16 * k0 + i * w).store_aligned(&lt[i][k0]);
        }
      }
      for (std::size_t s = 0; s < count; ++s)
        encode_scales_and_pack<Arch>(xb + s * qk_k, scales + 16 * s,
                                     imatrix ? sw + 16 * s : nullptr, lt, 16 * s, y[b0 + s]);
    }
  }

 private:
  // The steps of ref_detail::encode_block_plain (sw null) or encode_block_weighted after the
  // sub-block searches; `lt[i][first + j]` holds the search's level of element i of sub-block j.
  template <class Arch>
  static void encode_scales_and_pack(const float* x, const float* scales, const float* sw,
                                     const float (*lt)[detail::lanes::subs_per_pass],
                                     std::size_t first, block_q3_k& y) noexcept {
    std::memset(y.scales, 0, sizeof y.scales);
    if (sw != nullptr) {
      std::int8_t ls[16];
      const float d_block = detail::make_qx_quants(16, 32, scales, ls, 1, sw);
      for (int j = 0; j < 16; ++j) ref_detail::put_scale(y, j, ls[j]);
      y.d = fp32_to_fp16(d_block);
    } else {
      float max_scale = 0.0f, amax = 0.0f;
      for (int j = 0; j < 16; ++j) {
        const float a = std::fabs(scales[j]);
        if (a > amax) {
          amax = a;
          max_scale = scales[j];
        }
      }
      if (max_scale != 0.0f) {
        const float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; ++j) {
          const int l8 = static_cast<std::int8_t>(detail::nearest_int(iscale * scales[j]));
          ref_detail::put_scale(y, j, (l8 < -32 ? -32 : l8 > 31 ? 31 : l8) + 32);
        }
        y.d = fp32_to_fp16(1 / iscale);
      } else {
        y.d = fp32_to_fp16(0.0f);
      }
    }
    std::int8_t L[qk_k];
    requantize<Arch>(x, y, lt, first, L);
    pack(y, L);
  }

  // Elementwise: l = clamp(nearest_int(x / d), -4, 3) + 4 for the sub-blocks with d != 0; the
  // others keep the search's levels (only those are read back from the transposed lt).
  template <class Arch>
  static void requantize(const float* x, const block_q3_k& y,
                         const float (*lt)[detail::lanes::subs_per_pass], std::size_t first,
                         std::int8_t* L) noexcept {
    using fb = xsimd::batch<float, Arch>;
    constexpr int w = static_cast<int>(fb::size);
    const float d_all = fp16_to_fp32(y.d);
    alignas(64) std::int32_t q[16];
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * static_cast<float>(scale_of(y, j));
      if (d == 0.0f) {
        for (std::size_t i = 0; i < 16; ++i)
          L[16 * j + int(i)] = static_cast<std::int8_t>(lt[i][first + std::size_t(j)]);
        continue;
      }
      const fb dv(d);
      for (int i = 0; i < 16; i += w) {
        const fb v = fb::load_unaligned(x + 16 * j + i) / dv;
        const fb l = detail::lanes::clamp(detail::lanes::nearest_int(v), -4.0f, 3.0f) + fb(4.0f);
        xsimd::batch_cast<std::int32_t>(l).store_aligned(q + i);
      }
      for (int i = 0; i < 16; ++i) L[16 * j + i] = static_cast<std::int8_t>(q[i]);
    }
  }

  // hmask bit j / 32 of byte j % 32 for q >= 4; the 2 low bits into qs as in ref.hpp.
  static void pack(block_q3_k& y, const std::int8_t* L) noexcept {
    for (int k = 0; k < 32; ++k) {
      unsigned hm = 0;
      for (int s = 0; s < 8; ++s) hm |= static_cast<unsigned>(L[32 * s + k] > 3) << s;
      y.hmask[k] = static_cast<std::uint8_t>(hm);
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const std::int8_t* p = L + 128 * h + l;
        y.qs[32 * h + l] = static_cast<std::uint8_t>((p[0] & 3) | ((p[32] & 3) << 2) |
                                                     ((p[64] & 3) << 4) | ((p[96] & 3) << 6));
      }
  }
};

// Decoding is elementwise (d * (sc - 32) * (q - 4 or q)); every backend shares the reference loop.
struct decode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const block_q3_k> x, std::span<float> y) const noexcept {
    q3_k::decode_ref(x, y);
  }
};

}  // namespace qforge::quant::q3_k
