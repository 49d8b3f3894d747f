// SPDX-License-Identifier: MIT
// Lane helpers shared by the K-quant SIMD encoders that give each SIMD lane one 16-weight sub-block
// (q2_k/simd.hpp, q3_k/simd.hpp): the scale searches run sequentially inside a sub-block and must not
// be reassociated, but sub-blocks are independent, so lane k of group g walks sub-block g * W + k in
// the reference's order. Loads turn the row-major weights into "element i of W sub-blocks" vectors;
// nearest_int is ggml's magic-number rounding per lane. Instantiated only from kernels/cpu/isa_*.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include <xsimd/xsimd.hpp>

namespace qforge::quant::detail::lanes {

// Super-blocks (of 16 sub-blocks) searched together: enough independent lanes to hide the long
// dependency chains of the searches, few enough to stay in L1.
inline constexpr std::size_t super_per_pass = 4;
inline constexpr std::size_t subs_per_pass = 16 * super_per_pass;

// detail::nearest_int per lane, returned as the (exactly representable) float of the int: every
// value it can produce lies in [-2^22, 2^22), so clamping in float matches ggml's int clamp.
template <class Arch>
xsimd::batch<float, Arch> nearest_int(xsimd::batch<float, Arch> v) noexcept {
  using ib = xsimd::batch<std::int32_t, Arch>;
  const ib bits = xsimd::bitwise_cast<ib>(v + xsimd::batch<float, Arch>(12582912.0f));
  return xsimd::batch_cast<float>((bits & ib(0x007fffff)) - ib(0x00400000));
}

// min(max(v, lo), hi) for NaN-free v (the output of nearest_int above).
template <class Arch>
xsimd::batch<float, Arch> clamp(xsimd::batch<float, Arch> v, float lo, float hi) noexcept {
  using fb = xsimd::batch<float, Arch>;
  return xsimd::min(xsimd::max(v, fb(lo)), fb(hi));
}

// xv[i][g] = element i of the W sub-blocks g * W .. g * W + W - 1 of the `count` (<=
// super_per_pass) super-blocks at x; sub-blocks past them read as zero (their results are dropped).
template <class Arch, int G>
void load_subblocks(const float* x, std::size_t count, xsimd::batch<float, Arch> (*xv)[G]) noexcept {
  using fb = xsimd::batch<float, Arch>;
  using ib = xsimd::batch<std::int32_t, Arch>;
  constexpr std::size_t w = fb::size;
  static_assert(G * w == subs_per_pass);
  if (count == super_per_pass) {
    alignas(64) std::int32_t offsets[w];
    for (std::size_t k = 0; k < w; ++k) offsets[k] = static_cast<std::int32_t>(16 * k);
    const ib off = ib::load_aligned(offsets);
    for (std::size_t i = 0; i < 16; ++i)
      for (int g = 0; g < G; ++g) xv[i][g] = fb::gather(x + 16 * w * std::size_t(g) + i, off);
    return;
  }
  alignas(64) float t[w];
  for (std::size_t i = 0; i < 16; ++i)
    for (int g = 0; g < G; ++g) {
      for (std::size_t k = 0; k < w; ++k) {
        const std::size_t sub = std::size_t(g) * w + k;
        t[k] = sub / 16 < count ? x[16 * sub + i] : 0.0f;
      }
      xv[i][g] = fb::load_aligned(t);
    }
}

}  // namespace qforge::quant::detail::lanes
