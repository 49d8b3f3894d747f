// SPDX-License-Identifier: MIT
// IQ4_NL decoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp: the 4-bit
// codes index a 16-entry float copy of the level table (one permute on AVX-512, two permutes and a
// blend on AVX2, a gather elsewhere), then one multiply by fp16(d) per weight, as ref.hpp. The
// encoder's scale search has no SIMD body yet (family.hpp runs the reference on every backend).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_simd.hpp"
#include "qforge/quant/iq4_nl/ref.hpp"

namespace qforge::quant::iq4_nl {

namespace simd_detail {

alignas(64) inline constexpr float level_floats[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                       1,    13,   25,  38,  53,  69,  89,  113};

// level_floats[q] per lane, q in [0, 16).
template <class Arch>
xsimd::batch<float, Arch> levels(xsimd::batch<std::int32_t, Arch> q) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_permutexvar_ps(q, _mm512_load_ps(level_floats));
#endif
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
    const __m256 lo = _mm256_permutevar8x32_ps(_mm256_load_ps(level_floats), q);
    const __m256 hi = _mm256_permutevar8x32_ps(_mm256_load_ps(level_floats + 8), q);
    // bit 3 of q, moved to the sign bit, picks the upper half.
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(q, 28)));
  }
#endif
  return xsimd::batch<float, Arch>::gather(level_floats, q);
}

}  // namespace simd_detail

// x.size() blocks to y.size() == 32 * x.size() floats.
struct decode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const block_iq4_nl> x, std::span<float> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = fb::size, n = ls::nv<Arch>;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const fb d(fp16_to_fp32(x[i].d));
      ib q[n];
      ls::unpack_nibbles<Arch>(x[i].qs, q);
      float* out = y.data() + i * qk4_nl;
      for (std::size_t r = 0; r < n; ++r)
        (d * simd_detail::levels<Arch>(q[r])).store_unaligned(out + r * w);
    }
  }
};

}  // namespace qforge::quant::iq4_nl
