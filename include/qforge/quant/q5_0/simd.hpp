// SPDX-License-Identifier: MIT
// Q5_0 encoder (ggml's plain path) and decoder written once against xsimd, instantiated per ISA by
// kernels/cpu/isa_*.cpp. Same bytes as ref.hpp, by the argument of q4_0/simd.hpp: the signed value of
// largest magnitude comes from the block's min and max (blocks with a NaN or a +-a tie take the
// reference path), the rest is elementwise; the fifth bits are gathered with a lane mask.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_simd.hpp"
#include "qforge/quant/q5_0/ref.hpp"

namespace qforge::quant::q5_0 {

// x.size() % 32 == 0, y.size() == x.size() / 32 (checked by the caller: kernels never throw).
// Whole groups of w blocks (w = lanes) go through legacy_simd's group path, the rest block by block.
struct encode_simd {
  template <class Arch>
  static void encode_block(const float* p, block_q5_0& yb) noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t n = ls::nv<Arch>;
    ls::block_regs<Arch> b;
    ls::load_block<Arch>(p, b);
    if (b.has_nan || b.max == -b.min) {
      encode_block_ref(p, yb);
      return;
    }
    const float max = b.max > -b.min ? b.max : b.min;
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    yb.d = fp32_to_fp16(d);
    ib u[n];
    for (std::size_t r = 0; r < n; ++r)
      u[r] = ls::clamp_low_byte<Arch>(b.v[r] * fb(id) + fb(16.5f), 31);
    ls::pack_q5<Arch>(u, yb.qs, yb.qh);
  }

  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q5_0> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = ls::fbatch<Arch>::size, n = ls::nv<Arch>;
    std::size_t i = 0;
    for (; i + w <= y.size(); i += w) {
      const float* p = x.data() + i * qk5_0;
      ls::group_scalars<Arch> g;
      ls::symmetric_scalars<Arch>(ls::reduce_group<Arch>(p), 16.0f, g);
      for (std::size_t b = 0; b < w; ++b) {
        const float* pb = p + b * qk5_0;
        block_q5_0& yb = y[i + b];
        if (g.fast[b] == 0.0f) {
          encode_block_ref(pb, yb);
          continue;
        }
        yb.d = g.dh[b];
        ib u[n];
        ls::fast_codes<Arch, false>(pb, g.id[b], g.m[b], 16.5f, 31, u);
        ls::pack_q5<Arch>(u, yb.qs, yb.qh);
      }
    }
    for (; i < y.size(); ++i) encode_block<Arch>(x.data() + i * qk5_0, y[i]);
  }
};

// x.size() blocks to y.size() == 32 * x.size() floats.
struct decode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const block_q5_0> x, std::span<float> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = fb::size, n = ls::nv<Arch>;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const fb d(fp16_to_fp32(x[i].d));
      ib q[n];
      ls::unpack_nibbles<Arch>(x[i].qs, q);
      ls::add_fifth_bits<Arch>(detail::load_qh(x[i].qh), q);
      float* out = y.data() + i * qk5_0;
      for (std::size_t r = 0; r < n; ++r)
        (xsimd::batch_cast<float>(q[r] - ib(16)) * d).store_unaligned(out + r * w);
    }
  }
};

}  // namespace qforge::quant::q5_0
