// SPDX-License-Identifier: MIT
// Q4_1 encoder (ggml's plain path) and decoder written once against xsimd, instantiated per ISA by
// kernels/cpu/isa_*.cpp. Same bytes as ref.hpp: min and max are order-independent on NaN-free input
// except for the sign of a zero (ggml keeps the first of +0 / -0, which lands in the fp16 bits of d
// and m), so blocks with a NaN or a zero min or max take the reference path; the rest is elementwise.
// The decoder multiplies then adds, never fused (the kernels are built with -ffp-contract=off).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_simd.hpp"
#include "qforge/quant/q4_1/ref.hpp"

namespace qforge::quant::q4_1 {

// x.size() % 32 == 0, y.size() == x.size() / 32 (checked by the caller: kernels never throw).
// Whole groups of w blocks (w = lanes) go through legacy_simd's group path, the rest block by block.
struct encode_simd {
  template <class Arch>
  static void encode_block(const float* p, block_q4_1& yb) noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t n = ls::nv<Arch>;
    ls::block_regs<Arch> b;
    ls::load_block<Arch>(p, b);
    if (b.has_nan || b.min == 0.0f || b.max == 0.0f) {
      encode_block_ref(p, yb);
      return;
    }
    const float d = (b.max - b.min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    yb.d = fp32_to_fp16(d);
    yb.m = fp32_to_fp16(b.min);
    ib u[n];
    for (std::size_t r = 0; r < n; ++r)
      u[r] = ls::clamp_low_byte<Arch>((b.v[r] - fb(b.min)) * fb(id) + fb(0.5f), 15);
    ls::pack_q4<Arch>(u, yb.qs);
  }

  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q4_1> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = ls::fbatch<Arch>::size, n = ls::nv<Arch>;
    std::size_t i = 0;
    for (; i + w <= y.size(); i += w) {
      const float* p = x.data() + i * qk4_1;
      ls::group_scalars<Arch> g;
      ls::asymmetric_scalars<Arch>(ls::reduce_group<Arch>(p), 15.0f, g);
      for (std::size_t b = 0; b < w; ++b) {
        const float* pb = p + b * qk4_1;
        block_q4_1& yb = y[i + b];
        if (g.fast[b] == 0.0f) {
          encode_block_ref(pb, yb);
          continue;
        }
        yb.d = g.dh[b];
        yb.m = g.mh[b];
        ib u[n];
        ls::fast_codes<Arch, true>(pb, g.id[b], g.m[b], 0.5f, 15, u);
        ls::pack_q4<Arch>(u, yb.qs);
      }
    }
    for (; i < y.size(); ++i) encode_block<Arch>(x.data() + i * qk4_1, y[i]);
  }
};

// x.size() blocks to y.size() == 32 * x.size() floats.
struct decode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const block_q4_1> x, std::span<float> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = fb::size, n = ls::nv<Arch>;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const fb d(fp16_to_fp32(x[i].d)), m(fp16_to_fp32(x[i].m));
      ib q[n];
      ls::unpack_nibbles<Arch>(x[i].qs, q);
      float* out = y.data() + i * qk4_1;
      for (std::size_t r = 0; r < n; ++r)
        (xsimd::batch_cast<float>(q[r]) * d + m).store_unaligned(out + r * w);
    }
  }
};

}  // namespace qforge::quant::q4_1
