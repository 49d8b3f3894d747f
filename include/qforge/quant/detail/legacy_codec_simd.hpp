// SPDX-License-Identifier: MIT
// One xsimd encoder and decoder body for the four plain legacy formats (Q4_0, Q4_1, Q5_0, Q5_1),
// instantiated per ISA by kernels/cpu/isa_*.cpp through each format's simd.hpp. The formats differ
// only in their code width and in how the block's scale comes out of its min and max:
// - symmetric (Q4_0, Q5_0): d = max / -2^(bits-1), max the signed value of largest magnitude, codes
//   x / d + 2^(bits-1) + 0.5. max is order-independent on NaN-free input unless +a and -a both
//   occur, where ggml keeps whichever comes first: such blocks (and NaN blocks) take the reference.
// - asymmetric (Q4_1, Q5_1): d = (max - min) / (2^bits - 1), m = min, codes (x - m) / d + 0.5.
//   min and max are order-independent except for the sign of a zero (ggml keeps the first of +0 /
//   -0, which lands in the fp16 bits of d and m), so blocks with a zero min or max take the reference.
// Everything after the scales is elementwise, so the lanes repeat the reference's float operations
// exactly (the kernels are built with -ffp-contract=off; the decoder multiplies then adds, never
// fused). Whole groups of w blocks (w = lanes) go through legacy_simd's group path, the rest block
// by block.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/detail/legacy.hpp"
#include "qforge/quant/detail/legacy_simd.hpp"

namespace qforge::quant::detail::legacy_simd {

// A plain legacy format as the generic body sees it. ClampCodes: ggml caps the code at 2^bits - 1
// (a MIN over the x86 cast's low byte); Q5_1 casts straight to uint8_t and is the one without.
template <class Block, int Bits, bool Asymmetric, bool ClampCodes = true>
struct legacy_format {
  using block = Block;
  static constexpr int bits = Bits;
  static constexpr bool asymmetric = Asymmetric;
  static constexpr bool clamp_codes = ClampCodes;
  static constexpr std::int32_t nmax = (1 << Bits) - 1;
  // d = range / steps (asymmetric) or max / -steps (symmetric); codes are shifted by `offset`.
  static constexpr float steps =
      Asymmetric ? static_cast<float>(nmax) : static_cast<float>(1 << (Bits - 1));
  static constexpr float offset = Asymmetric ? 0.5f : steps + 0.5f;
  static constexpr std::int32_t zero_code = Asymmetric ? 0 : 1 << (Bits - 1);
};

template <class Fmt, class Arch>
void pack_codes(const ibatch<Arch>* u, typename Fmt::block& yb) noexcept {
  if constexpr (Fmt::bits == 4)
    pack_q4<Arch>(u, yb.qs);
  else
    pack_q5<Arch>(u, yb.qs, yb.qh);
}

// x.size() % 32 == 0, y.size() == x.size() / 32 (checked by the caller: kernels never throw).
// EncodeRef: the format's reference encoder of one block, for the blocks the lanes cannot settle.
template <class Fmt, auto EncodeRef>
struct encoder {
  using block = typename Fmt::block;

  template <class Arch>
  static void encode_block(const float* p, block& yb) noexcept {
    using fb = fbatch<Arch>;
    using ib = ibatch<Arch>;
    constexpr std::size_t n = nv<Arch>;
    block_regs<Arch> b;
    load_block<Arch>(p, b);
    const bool order_decides =
        Fmt::asymmetric ? b.min == 0.0f || b.max == 0.0f : b.max == -b.min;
    if (b.has_nan || order_decides) {
      EncodeRef(p, yb);
      return;
    }
    float d;
    if constexpr (Fmt::asymmetric) {
      d = (b.max - b.min) / Fmt::steps;
      yb.m = fp32_to_fp16(b.min);
    } else {
      const float max = b.max > -b.min ? b.max : b.min;
      d = max / -Fmt::steps;
    }
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    yb.d = fp32_to_fp16(d);
    ib u[n];
    for (std::size_t r = 0; r < n; ++r) {
      const fb x = Fmt::asymmetric ? b.v[r] - fb(b.min) : b.v[r];
      const fb t = x * fb(id) + fb(Fmt::offset);
      u[r] = Fmt::clamp_codes ? clamp_low_byte<Arch>(t, Fmt::nmax) : low_byte<Arch>(t);
    }
    pack_codes<Fmt, Arch>(u, yb);
  }

  template <class Arch>
  void operator()(Arch, std::span<const float> x, std::span<block> y) const noexcept {
    using ib = ibatch<Arch>;
    constexpr std::size_t w = fbatch<Arch>::size, n = nv<Arch>;
    std::size_t i = 0;
    for (; i + w <= y.size(); i += w) {
      const float* p = x.data() + i * 32;
      group_scalars<Arch> g;
      if constexpr (Fmt::asymmetric)
        asymmetric_scalars<Arch>(reduce_group<Arch>(p), Fmt::steps, g);
      else
        symmetric_scalars<Arch>(reduce_group<Arch>(p), Fmt::steps, g);
      for (std::size_t b = 0; b < w; ++b) {
        const float* pb = p + b * 32;
        block& yb = y[i + b];
        if (g.fast[b] == 0.0f) {
          EncodeRef(pb, yb);
          continue;
        }
        yb.d = g.dh[b];
        if constexpr (Fmt::asymmetric) yb.m = g.mh[b];
        ib u[n];
        fast_codes<Arch, Fmt::asymmetric>(pb, g.id[b], g.m[b], Fmt::offset, Fmt::nmax, u);
        pack_codes<Fmt, Arch>(u, yb);
      }
    }
    for (; i < y.size(); ++i) encode_block<Arch>(x.data() + i * 32, y[i]);
  }
};

// x.size() blocks to y.size() == 32 * x.size() floats: d * (q - zero) or d * q + m.
template <class Fmt>
struct decoder {
  template <class Arch>
  void operator()(Arch, std::span<const typename Fmt::block> x, std::span<float> y) const noexcept {
    using fb = fbatch<Arch>;
    using ib = ibatch<Arch>;
    constexpr std::size_t w = fb::size, n = nv<Arch>;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const fb d(fp16_to_fp32(x[i].d));
      ib q[n];
      unpack_nibbles<Arch>(x[i].qs, q);
      if constexpr (Fmt::bits == 5) add_fifth_bits<Arch>(load_qh(x[i].qh), q);
      float* out = y.data() + i * 32;
      for (std::size_t r = 0; r < n; ++r) {
        if constexpr (Fmt::asymmetric)
          (xsimd::batch_cast<float>(q[r]) * d + fb(fp16_to_fp32(x[i].m)))
              .store_unaligned(out + r * w);
        else
          (xsimd::batch_cast<float>(q[r] - ib(Fmt::zero_code)) * d).store_unaligned(out + r * w);
      }
    }
  }
};

}  // namespace qforge::quant::detail::legacy_simd
