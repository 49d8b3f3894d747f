// SPDX-License-Identifier: MIT
// A float32 dot product whose every rounding is fixed by its definition rather than by the ISA that
// runs it: the reference of the "ordered" kernels (engine/ordered_dot_simd.hpp) that the AWQ search
// uses (awq/block.hpp, awq/group_search.hpp), so that `qforge awq` writes the same bytes on every
// CPU backend and thread count. The engine's own dot / gemm (engine/kernels.hpp) stay free to sum
// in whatever order is fastest on each ISA; a search that compares losses cannot, because a
// last-bit difference in a loss flips a scale or clip choice now and then.
// The order: 16 partial sums ("lanes", all +0 at first); element i goes into lane i % 16 by one
// fused multiply-add, in increasing i; then the lanes are combined by a fixed pairwise tree, lane j
// += lane j + 8 for j < 8, then j + 4, j + 2, j + 1; the result is lane 0. Why 16: it is the widest
// vector we have (AVX-512), and a wider ISA could not repeat a narrower lane count's order, while
// narrower ones hold 16 lanes exactly in several registers (AVX2 two, NEON four). Why fused: one
// rounding per term on every SIMD ISA, and std::fma gives the same bits anywhere (in hardware
// where the CPU has it, emulated exactly by libm where it does not, slowly).
// No xsimd here: this header is the spec, plain loops, and the scalar backend's kernel.
#pragma once
#include <cmath>
#include <cstddef>

namespace qforge::engine::ordered {

inline constexpr std::size_t lanes = 16;

// The pairwise tree over lanes l[0, 16) (overwritten); returns the sum.
inline float combine(float* l) noexcept {
  for (std::size_t h = lanes / 2; h > 0; h /= 2)
    for (std::size_t j = 0; j < h; ++j) l[j] = l[j] + l[j + h];
  return l[0];
}

// sum_i w[i] * x[i] in the canonical order. Any n (0 gives +0).
inline float dot_ref(const float* w, const float* x, std::size_t n) noexcept {
  float l[lanes] = {};
  for (std::size_t i = 0; i < n; ++i) l[i % lanes] = std::fma(w[i], x[i], l[i % lanes]);
  return combine(l);
}

// y[t * ldy + r] = dot_ref(w + r * ldw, x + t * ldx, n) for r < rows, t < tokens.
inline void gemm_ref(const float* w, std::size_t ldw, std::size_t rows, const float* x,
                     std::size_t ldx, std::size_t tokens, std::size_t n, float* y,
                     std::size_t ldy) noexcept {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t t = 0; t < tokens; ++t)
      y[t * ldy + r] = dot_ref(w + r * ldw, x + t * ldx, n);
}

}  // namespace qforge::engine::ordered
