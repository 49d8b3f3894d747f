// SPDX-License-Identifier: MIT
// One-token products with a linear in AutoAWQ's GEMM layout (quant/awq/pack.hpp), one body for every
// xsimd arch; quant/awq/matmul.hpp's gemv_packs is the reference. The layout packs 8 outputs per
// int32 along a row of qweight, so the vector's lanes are W consecutive packs: one load of row k
// brings 8 W weights, each column of the packs (a shift and a mask) becomes W floats that meet x[k],
// broadcast, in one multiply-add, and every load feeds 8 W outputs. The reference walks one pack at
// a time with one scalar operation per weight; this does about a quarter of an instruction per
// weight on AVX-512 and reads each cache line of qweight once.
// Per group the reference's formula, s * (sum q x - z * sum x), with the group sums of x computed
// once per product by the caller (group_sums: the reference's order, so the same floats). Lane l
// always computes pack p0 + l the same way, wherever a caller's range starts, so results do not
// depend on the thread count; they differ from the reference by float rounding only (the sums of
// q x are fused multiply-adds where the ISA has them, the reference's are unfused).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/awq/matmul.hpp"

namespace qforge::engine::awq_simd {

// Packs per call of gemv must be a multiple of this (every arch's lane count divides it).
inline constexpr std::size_t chunk_packs = 16;

// sums[g] = x[g * group] + ... + x[g * group + group - 1], added in order as gemv_packs does.
inline void group_sums(const float* x, std::size_t in, std::size_t group, float* sums) noexcept {
  for (std::size_t g = 0; g < in / group; ++g) {
    float s = 0;
    for (std::size_t k = g * group; k < (g + 1) * group; ++k) s += x[k];
    sums[g] = s;
  }
}

// Nibble N of each lane's word as a float. The AVX-512 path uses the all-lanes maskz forms: GCC 12
// reports the plain forms' undefined pass-through operand as uninitialised once inlined.
template <class Arch, int N>
xsimd::batch<float, Arch> nibble(xsimd::batch<std::int32_t, Arch> u) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_maskz_cvtepi32_ps(
        0xffff, _mm512_maskz_and_epi32(0xffff, _mm512_maskz_srli_epi32(0xffff, u, 4 * N), _mm512_set1_epi32(15)));
#endif
  return xsimd::to_float((u >> (4 * N)) & xsimd::batch<std::int32_t, Arch>(15));
}

// Chunks of W packs are visited group by group, a few chunks at a time: the rows of one chunk sit
// 4 * packs bytes apart (a new 4 KiB page every row or two at 7B widths, where the hardware
// prefetchers stop), so while a chunk walks a group's rows the kernel prefetches the same rows of
// the chunk it will walk next, 64 bytes on, a group's worth of work ahead; the block's chunks share
// the group's pages, so their translations stay cached too. On the 2-vCPU EPYC, one thread, 7B
// shapes: 2.5-3x faster than walking each chunk down all rows (bench/RESULTS.md).
inline constexpr std::size_t chunks_per_block = 8;

// madd(a, b, c): a * b + c, fused where the ISA has it; widen(p): W floats from W halfs at p.
template <class Arch, class Madd, class Widen>
void gemv(const quant::awq::gemm_view& w, const float* x, const float* sums, float* y,
          std::size_t p0, std::size_t p1, Madd madd, Widen widen) noexcept {
  using fb = xsimd::batch<float, Arch>;
  using ib = xsimd::batch<std::int32_t, Arch>;
  constexpr std::size_t W = fb::size;
  const std::size_t P = w.packs(), groups = w.in / w.group, row_bytes = 4 * P;
  // Column j of a pack is nibble unpack_order[j] of its word; f(j, column j) for the 8 columns.
  const auto columns = [](ib u, auto&& f) {
    [&]<int... J>(std::integer_sequence<int, J...>) {
      (f(J, nibble<Arch, quant::awq::unpack_order[J]>(u)), ...);
    }(std::make_integer_sequence<int, 8>{});
  };
  for (std::size_t b0 = p0; b0 < p1; b0 += chunks_per_block * W) {
    const std::size_t b1 = std::min(p1, b0 + chunks_per_block * W);
    alignas(64) float out[chunks_per_block][8][W] = {};
    for (std::size_t g = 0; g < groups; ++g) {
      const fb xs(sums[g]);
      for (std::size_t p = b0; p < b1; p += W) {
        // The next chunk of this group, or the block's first chunk in the next group.
        const std::size_t np = p + W < b1 ? p + W : b0, ng = p + W < b1 ? g : g + 1;
        const std::byte* row = w.qweight + 4 * (g * w.group * P + p);
        const std::byte* next = ng < groups ? w.qweight + 4 * (ng * w.group * P + np) : row;
        fb acc[8];
        for (auto& a : acc) a = fb(0.0f);
        for (std::size_t k = g * w.group; k < (g + 1) * w.group; ++k, row += row_bytes, next += row_bytes) {
          __builtin_prefetch(next);
          const ib u = ib::load_unaligned(reinterpret_cast<const std::int32_t*>(row));
          const fb xk(x[k]);
          columns(u, [&](int j, fb q) { acc[j] = madd(q, xk, acc[j]); });
        }
        const ib z = ib::load_unaligned(reinterpret_cast<const std::int32_t*>(w.qzeros + 4 * (g * P + p)));
        // The scales of the W packs are 8 W contiguous halfs, widened a vector at a time (scalar
        // conversions cost as much as the products at 4096 x 4096); lane l of column j is 8 l + j.
        alignas(64) float flat[8 * W], s[8][W];
        const std::byte* sp = w.scales + 2 * (g * w.out + 8 * p);
        for (std::size_t v = 0; v < 8; ++v) widen(sp + 2 * W * v).store_aligned(flat + W * v);
        for (std::size_t l = 0; l < W; ++l)
          for (std::size_t j = 0; j < 8; ++j) s[j][l] = flat[8 * l + j];
        auto& o = out[(p - b0) / W];
        columns(z, [&](int j, fb zj) {
          madd(fb::load_aligned(s[j]), acc[j] - zj * xs, fb::load_aligned(o[j])).store_aligned(o[j]);
        });
      }
    }
    for (std::size_t p = b0; p < b1; p += W)
      for (std::size_t l = 0; l < W; ++l)
        for (int j = 0; j < 8; ++j) y[8 * (p + l) + static_cast<std::size_t>(j)] = out[(p - b0) / W][j][l];
  }
}

}  // namespace qforge::engine::awq_simd
