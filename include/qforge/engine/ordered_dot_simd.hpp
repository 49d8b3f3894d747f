// SPDX-License-Identifier: MIT
// The ordered dot product and matrix product (engine/ordered_dot.hpp is the spec) as one body
// templated on the xsimd arch: the 16 lanes live in 16 / W registers of W floats (one AVX-512, two
// AVX2, four NEON registers), lane for lane the reference's accumulators, each fed by a fused
// multiply-add; the last n % 16 elements go through std::fma into the stored lanes (the same
// instruction, one float wide); the tree is the reference's, in registers when there is no tail
// (pairs of registers, then halves of the last one). So every backend gives the reference's bits.
// An arch without a fused vector multiply-add (SSE2, the baseline x86-64 build) runs the reference
// itself: an unfused multiply then add would round twice.
// The product computes NR weight rows x NT activation rows per tile, with NR * NT * 16 / W
// accumulators in registers; each output keeps its own lanes, so the result of one output does not
// depend on the tile it fell in, on the row range a thread was given, or on the thread count.
#pragma once
#include <cmath>
#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "qforge/engine/ordered_dot.hpp"

namespace qforge::engine::ordered {

// Whether Arch has a vector multiply-add rounded once (xsimd 8 fuses only for its fma3<> archs, so
// the x86 paths name the intrinsics; the TU's flags decide whether AVX2 comes with FMA).
template <class Arch>
constexpr bool has_fused_madd() noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return true;
#endif
#if XSIMD_WITH_AVX2 && defined(__FMA__)
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) return true;
#endif
#if XSIMD_WITH_NEON64
  if constexpr (std::is_base_of_v<xsimd::neon64, Arch>) return true;  // vfmaq_f32
#endif
  return false;
}

template <class Arch>
xsimd::batch<float, Arch> fused_madd(xsimd::batch<float, Arch> a, xsimd::batch<float, Arch> b,
                                     xsimd::batch<float, Arch> c) noexcept {
  static_assert(has_fused_madd<Arch>(), "ordered kernels need a fused multiply-add");
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_fmadd_ps(a, b, c);
#endif
#if XSIMD_WITH_AVX2 && defined(__FMA__)
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) return _mm256_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

// combine() on lanes held in A = 16 / W registers (register a holds lanes a * W .. a * W + W - 1):
// the tree's first steps pair whole registers (lane j with j + 8 is register a with a + A / 2 while
// A > 1), the rest pairs the halves of the one register left, as the reference pairs lanes.
template <class Arch, std::size_t A>
float tree(const xsimd::batch<float, Arch> (&acc)[A]) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  B v[A];
  for (std::size_t a = 0; a < A; ++a) v[a] = acc[a];
  for (std::size_t h = A / 2; h > 0; h /= 2)
    for (std::size_t a = 0; a < h; ++a) v[a] = v[a] + v[a + h];
#if XSIMD_WITH_AVX
  if constexpr (W == 16 || W == 8) {
    __m256 s8;
#if XSIMD_WITH_AVX512F
    if constexpr (W == 16)
      // The maskz forms for both halves: GCC 12 reports the plain extract's (and the cast's,
      // built on it) undefined pass-through operand as uninitialised.
      s8 = _mm256_add_ps(
          _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v[0]), 0)),
          _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v[0]), 1)));
    else
#endif
      s8 = v[0];
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));       // lanes j + j + 2
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));     // lane 0 + lane 1
  }
#endif
  alignas(64) float l[W];
  v[0].store_aligned(l);
  for (std::size_t h = W / 2; h > 0; h /= 2)
    for (std::size_t j = 0; j < h; ++j) l[j] = l[j] + l[j + h];
  return l[0];
}

// Outputs y[t * ldy + r] for r < NR, t < NT: the NR x NT dot products of rows of w with rows of x.
template <class Arch, std::size_t NR, std::size_t NT>
void tile(const float* w, std::size_t ldw, const float* x, std::size_t ldx, std::size_t n, float* y,
          std::size_t ldy) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size, A = lanes / W;
  static_assert(lanes % W == 0, "the vector width must divide the lane count");
  B acc[NR][NT][A];
  for (auto& r : acc)
    for (auto& t : r)
      for (auto& a : t) a = B(0.0f);
  std::size_t k = 0;
  for (; k + lanes <= n; k += lanes)
    for (std::size_t a = 0; a < A; ++a) {
      B xv[NT];
      for (std::size_t t = 0; t < NT; ++t) xv[t] = B::load_unaligned(x + t * ldx + k + a * W);
      for (std::size_t r = 0; r < NR; ++r) {
        const B wv = B::load_unaligned(w + r * ldw + k + a * W);
        for (std::size_t t = 0; t < NT; ++t)
          acc[r][t][a] = fused_madd<Arch>(wv, xv[t], acc[r][t][a]);
      }
    }
  for (std::size_t r = 0; r < NR; ++r)
    for (std::size_t t = 0; t < NT; ++t) {
      if (k == n) {  // the common case: no tail, the tree in registers
        y[t * ldy + r] = tree<Arch>(acc[r][t]);
        continue;
      }
      alignas(64) float l[lanes];
      for (std::size_t a = 0; a < A; ++a) acc[r][t][a].store_aligned(l + a * W);
      for (std::size_t j = k; j < n; ++j)
        l[j % lanes] = std::fma(w[r * ldw + j], x[t * ldx + j], l[j % lanes]);
      y[t * ldy + r] = combine(l);
    }
}

template <class Arch>
float dot(const float* w, const float* x, std::size_t n) noexcept {
  if constexpr (!has_fused_madd<Arch>()) {
    return dot_ref(w, x, n);
  } else {
    float y;
    tile<Arch, 1, 1>(w, 0, x, 0, n, &y, 0);
    return y;
  }
}

// Same contract as gemm_ref.
template <class Arch>
void gemm(const float* w, std::size_t ldw, std::size_t rows, const float* x, std::size_t ldx,
          std::size_t tokens, std::size_t n, float* y, std::size_t ldy) noexcept {
  if constexpr (!has_fused_madd<Arch>()) {
    gemm_ref(w, ldw, rows, x, ldx, tokens, n, y, ldy);
  } else {
    // Accumulators: 16 of AVX-512's 32 registers (4 x 4 x 1), 12 of AVX2's 16 (2 x 3 x 2), 16 of
    // NEON's 32 (2 x 2 x 4), leaving room for the loaded vectors.
    constexpr std::size_t A = lanes / xsimd::batch<float, Arch>::size;
    constexpr std::size_t NR = A == 1 ? 4 : 2, NT = A == 1 ? 4 : A == 2 ? 3 : 2;
    std::size_t r = 0;
    for (; r + NR <= rows; r += NR) {
      std::size_t t = 0;
      for (; t + NT <= tokens; t += NT)
        tile<Arch, NR, NT>(w + r * ldw, ldw, x + t * ldx, ldx, n, y + t * ldy + r, ldy);
      for (; t < tokens; ++t)
        tile<Arch, NR, 1>(w + r * ldw, ldw, x + t * ldx, ldx, n, y + t * ldy + r, ldy);
    }
    for (; r < rows; ++r) {
      std::size_t t = 0;
      for (; t + NT <= tokens; t += NT)
        tile<Arch, 1, NT>(w + r * ldw, ldw, x + t * ldx, ldx, n, y + t * ldy + r, ldy);
      for (; t < tokens; ++t)
        tile<Arch, 1, 1>(w + r * ldw, ldw, x + t * ldx, ldx, n, y + t * ldy + r, ldy);
    }
  }
}

}  // namespace qforge::engine::ordered
