// SPDX-License-Identifier: MIT
// Q4_0 encoder (ggml's plain path) and decoder written once against xsimd, instantiated per ISA by
// kernels/cpu/isa_*.cpp (or for the compiler's own arch by header-only users). Same bytes as ref.hpp:
// the block's signed value of largest magnitude comes from its min and max (order-independent on
// NaN-free input); when +a and -a both occur, ggml keeps whichever comes first, so such blocks (and
// blocks with a NaN) take the reference path. Everything after is elementwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_simd.hpp"
#include "qforge/quant/q4_0/ref.hpp"

namespace qforge::quant::q4_0 {

// x.size() % 32 == 0, y.size() == x.size() / 32 (checked by the caller: kernels never throw).
// Whole groups of w blocks (w = lanes) go through legacy_simd's group path, the rest block by block.
struct encode_simd {
  template <class Arch>
  static void encode_block(const float* p, block_q4_0& yb) noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t n = ls::nv<Arch>;
    ls::block_regs<Arch> b;
    ls::load_block<Arch>(p, b);
    if (b.has_nan || b.max == -b.min) {  // a +-a tie (or all zero) or NaN: ggml's scan decides
      encode_block_ref(p, yb);
      return;
    }
    const float max = b.max > -b.min ? b.max : b.min;
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    yb.d = fp32_to_fp16(d);
    ib u[n];
    for (std::size_t r = 0; r < n; ++r)
      u[r] = ls::clamp_low_byte<Arch>(b.v[r] * fb(id) + fb(8.5f), 15);
    ls::pack_q4<Arch>(u, yb.qs);
  }

  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block_q4_0> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = ls::fbatch<Arch>::size, n = ls::nv<Arch>;
    std::size_t i = 0;
    for (; i + w <= y.size(); i += w) {
      const float* p = x.data() + i * qk4_0;
      ls::group_scalars<Arch> g;
      ls::symmetric_scalars<Arch>(ls::reduce_group<Arch>(p), 8.0f, g);
      for (std::size_t b = 0; b < w; ++b) {
        const float* pb = p + b * qk4_0;
        block_q4_0& yb = y[i + b];
        if (g.fast[b] == 0.0f) {
          encode_block_ref(pb, yb);
          continue;
        }
        yb.d = g.dh[b];
        ib u[n];
        ls::fast_codes<Arch, false>(pb, g.id[b], g.m[b], 8.5f, 15, u);
        ls::pack_q4<Arch>(u, yb.qs);
      }
    }
    for (; i < y.size(); ++i) encode_block<Arch>(x.data() + i * qk4_0, y[i]);
  }
};

// x.size() blocks to y.size() == 32 * x.size() floats.
struct decode_simd {
  template <class Arch>
  void operator()(Arch, std::span<const block_q4_0> x, std::span<float> y) const noexcept {
    namespace ls = detail::legacy_simd;
    using fb = ls::fbatch<Arch>;
    using ib = ls::ibatch<Arch>;
    constexpr std::size_t w = fb::size, n = ls::nv<Arch>;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const fb d(fp16_to_fp32(x[i].d));
      ib q[n];
      ls::unpack_nibbles<Arch>(x[i].qs, q);
      float* out = y.data() + i * qk4_0;
      for (std::size_t r = 0; r < n; ++r)
        (xsimd::batch_cast<float>(q[r] - ib(8)) * d).store_unaligned(out + r * w);
    }
  }
};

}  // namespace qforge::quant::q4_0
