// SPDX-License-Identifier: MIT
// Q5_K encoder written once against xsimd, instantiated per ISA by kernels/cpu/isa_*.cpp: Q4_K's
// lane-parallel body (q4_k/simd.hpp: one super-block per lane, the reference's float operations in
// the reference's order, so the same bytes as ref.hpp) with Q5_K's constants and packing. Decoding
// is elementwise: decode_simd is the reference loop compiled for the ISA.
#pragma once
#include <cstdint>
#include <span>

#include "qforge/quant/q4_k/simd.hpp"
#include "qforge/quant/q5_k/ref.hpp"

namespace qforge::quant::q5_k {

namespace simd_detail {

struct spec {
  using block = block_q5_k;
  static constexpr int nmax = 31;
  static constexpr float ref_rmin = -0.5f, ref_rdelta = 0.1f;
  static constexpr int ref_nstep = 15;
  static constexpr bool clamp_qp_codes = true;  // quantize_row_q5_K_impl clamps to 63
  static std::uint8_t code6(float inv, float v) noexcept { return q5_k::code6(inv, v); }
  static void pack_scales(const std::uint8_t* ls, const std::uint8_t* lm, float d, float dmin,
                          block& y) noexcept {
    q5_k::pack_scales(ls, lm, d, dmin, y);
  }
  static void pack_levels(const std::uint8_t* L, block& y) noexcept { q5_k::pack_levels(L, y); }
};

}  // namespace simd_detail

// x.size() == 256 * y.size(); imatrix null or x.size() weights of one row (checked by the caller).
struct encode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q5_k> y,
                  const float* imatrix) const noexcept {
    q4_k::simd_detail::encode_lanes<Arch, simd_detail::spec>(x, y, imatrix);
  }
};

}  // namespace qforge::quant::q5_k
