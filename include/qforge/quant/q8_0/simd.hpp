// SPDX-License-Identifier: MIT
// Q8_0 encoder and decoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp
// (or for the compiler's own arch by header-only users). Same bytes as ref.hpp: the block's amax is a
// max, which gives the same float in any order as long as no NaN is present (blocks holding a NaN
// go through the reference code, where ggml's order-dependent MAX is reproduced), and everything
// after it is elementwise (x * id, round half away from zero, the x86-style int8 cast), so this
// vectorises *within* a block without reassociating anything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/q8_0/ref.hpp"

namespace qforge::quant::q8_0 {

namespace simd_detail {

// roundf semantics (ties away from zero). The hardware round-to-nearest instructions tie to even,
// so take trunc and step one unit outward when the dropped fraction is at least one half; x - trunc(x)
// is exact, so this is the correctly rounded result for every finite input.
template <class Arch>
xsimd::batch<float, Arch> round_half_away(xsimd::batch<float, Arch> s) noexcept {
  using fb = xsimd::batch<float, Arch>;
  const fb t = xsimd::trunc(s);
  const fb step = xsimd::select(s < fb(0.0f), fb(-1.0f), fb(1.0f));
  return xsimd::select(xsimd::abs(s - t) >= fb(0.5f), t + step, t);
}

// Largest lane; only called on NaN-free batches, where max is order-independent.
template <class Arch>
float max_lane(xsimd::batch<float, Arch> m) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_reduce_max_ps(m);
#endif
#if XSIMD_WITH_AVX
  if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_shuffle_ps(r, r, 0x55));
    return _mm_cvtss_f32(r);
  }
#endif
  constexpr std::size_t w = xsimd::batch<float, Arch>::size;
  alignas(64) float lanes[w];
  m.store_aligned(lanes);
  float r = lanes[0];
  for (std::size_t k = 1; k < w; ++k) r = r > lanes[k] ? r : lanes[k];
  return r;
}

}  // namespace simd_detail

// x.size() % 32 == 0, y.size() == x.size() / 32 (checked by the caller: kernels never throw).
struct encode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q8_0> y) const noexcept {
    using fb = xsimd::batch<float, Arch>;
    using ib = xsimd::batch<std::int32_t, Arch>;
    constexpr std::size_t w = fb::size;
    static_assert(qk8_0 % w == 0, "a block must be a whole number of vectors");
    constexpr std::size_t nv = qk8_0 / w;
    // Beyond +-2^31 the x86 cast yields INT32_MIN, whose low byte is 0: zero those lanes so every
    // ISA's float->int32 convert (saturating on NEON) gives the same byte.
    const fb int_range(2147483648.0f);

    const std::size_t nb = x.size() / qk8_0;
    for (std::size_t i = 0; i < nb; ++i) {
      const float* p = x.data() + i * qk8_0;
      fb v[nv];
      fb m(0.0f);
      auto has_nan = xsimd::isnan(fb(0.0f));
      for (std::size_t r = 0; r < nv; ++r) {
        v[r] = fb::load_unaligned(p + r * w);
        m = xsimd::max(m, xsimd::abs(v[r]));
        has_nan = has_nan | xsimd::isnan(v[r]);  // not v != v: xsimd 8 compares ordered
      }
      if (xsimd::any(has_nan)) {
        encode_block_ref(p, y[i]);
        continue;
      }
      const float amax = simd_detail::max_lane<Arch>(m);
      const float d = amax / 127.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      y[i].d = fp32_to_fp16(d);

      alignas(64) std::int32_t q[qk8_0];
      const fb vid(id);
      for (std::size_t r = 0; r < nv; ++r) {
        fb t = simd_detail::round_half_away<Arch>(v[r] * vid);
        t = xsimd::select(xsimd::abs(t) < int_range, t, fb(0.0f));
        xsimd::batch_cast<std::int32_t>(t).store_aligned(q + r * w);
      }
      static_assert(std::is_same_v<decltype(xsimd::batch_cast<std::int32_t>(vid)), ib>);
      for (int j = 0; j < qk8_0; ++j) y[i].qs[j] = static_cast<std::int8_t>(q[j]);
    }
  }
};

// x.size() blocks to y.size() == 32 * x.size() floats.
struct decode_simd {
  // w sign-extended int8 lanes; xsimd 8 has no widening load, so x86 spells it out.
  template <class Arch>
  static xsimd::batch<std::int32_t, Arch> widen(const std::int8_t* p) noexcept {
#if XSIMD_WITH_AVX512F
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
      return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#endif
#if XSIMD_WITH_AVX2
    if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
      return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
#endif
    alignas(64) std::int32_t q[xsimd::batch<std::int32_t, Arch>::size];
    for (std::size_t k = 0; k < xsimd::batch<std::int32_t, Arch>::size; ++k) q[k] = p[k];
    return xsimd::batch<std::int32_t, Arch>::load_aligned(q);
  }

  template <class Arch>
  void operator()(Arch, std::span<const block_q8_0> x, std::span<float> y) const noexcept {
    using fb = xsimd::batch<float, Arch>;
    constexpr std::size_t w = fb::size;
    constexpr std::size_t nv = qk8_0 / w;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const fb d(fp16_to_fp32(x[i].d));
      float* out = y.data() + i * qk8_0;
      for (std::size_t r = 0; r < nv; ++r) {
        (xsimd::batch_cast<float>(widen<Arch>(x[i].qs + r * w)) * d).store_unaligned(out + r * w);
      }
    }
  }
};

}  // namespace qforge::quant::q8_0
