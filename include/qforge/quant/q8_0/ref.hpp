// SPDX-License-Identifier: MIT
// Q8_0 reference encoder and decoder: the spec every fast path must reproduce byte for byte. Same
// bytes as ggml's quantize_row_q8_0_ref / dequantize_row_q8_0 as ggml-base builds them (plain
// x86-64, no FMA). Per block of 32 weights: amax = max |x|, d = amax / 127, id = 1 / d (0 when d is
// 0), qs[j] = round_half_away(x[j] * id), and d is stored as fp16. Note that qs uses the float d,
// not the fp16-rounded one, so a block whose d underflows fp16 still gets non-zero qs. 8.5 bits per
// weight. Nothing here uses xsimd or CUDA, so nvcc and plain C++ users share it.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "qforge/core/config.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"

namespace qforge::quant::q8_0 {

inline constexpr int block_elems = qk8_0;

// ggml converts the rounded float with a plain C cast to int8_t, which x86 compilers emit as a
// 32-bit truncating convert (cvttss2si: NaN and out-of-range give INT32_MIN) keeping the low byte.
// Out-of-range only happens for degenerate blocks (d subnormal, so 1/d is inexact or infinite); we
// spell that behaviour out so every backend, NEON and CUDA included, agrees with the goldens.
QFORGE_HD inline std::int8_t int8_like_x86(float r) noexcept {
  if (!(r > -2147483648.0f && r < 2147483648.0f)) return 0;  // low byte of INT32_MIN; NaN lands here
  return static_cast<std::int8_t>(static_cast<std::int32_t>(r));  // C++20: modular narrowing
}

// ggml's MAX(a, b) is `a > b ? a : b`; with a NaN input its result depends on the order, so the
// reference keeps this exact form and the fast paths fall back to it for blocks holding a NaN.
QFORGE_HD inline float amax_step(float amax, float v) noexcept {
  const float a = std::fabs(v);
  return amax > a ? amax : a;
}

// One block. Both divisions are true IEEE divisions (never a multiply by 1/127): that is what
// ggml does and what makes the bytes reproducible.
inline void encode_block_ref(const float* x, block_q8_0& y) noexcept {
  float amax = 0.0f;
  for (int j = 0; j < qk8_0; ++j) amax = amax_step(amax, x[j]);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  y.d = fp32_to_fp16(d);
  for (int j = 0; j < qk8_0; ++j) y.qs[j] = int8_like_x86(std::round(x[j] * id));
}

// Encodes x.size() / 32 blocks. Caller guarantees x.size() % 32 == 0 and y.size() == x.size() / 32.
inline void encode_ref(std::span<const float> x, std::span<block_q8_0> y) noexcept {
  const std::size_t nb = x.size() / qk8_0;
  for (std::size_t i = 0; i < nb; ++i) encode_block_ref(x.data() + i * qk8_0, y[i]);
}

// w = fp16(d) * qs[j], one float multiply per weight. Caller guarantees y.size() == 32 * x.size().
inline void decode_ref(std::span<const block_q8_0> x, std::span<float> y) noexcept {
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(x[i].d);
    for (int j = 0; j < qk8_0; ++j) y[i * qk8_0 + j] = static_cast<float>(x[i].qs[j]) * d;
  }
}

}  // namespace qforge::quant::q8_0
