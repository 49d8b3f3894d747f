// SPDX-License-Identifier: MIT
// Pieces shared by the reference encoders of ggml's "legacy" 32-weight blocks (Q4_0, Q4_1, Q5_0,
// Q5_1, and IQ4_NL's packing): the block scans whose tie and NaN behaviour decides the scale, the
// x86 meaning of ggml's narrowing float casts, the nibble / fifth-bit packing, and the row statistic
// of the importance-weighted paths. Spelled once so every family and backend agrees on the corner
// cases (NaN, infinities, signed zeros) exactly as ggml-base, built for plain x86-64, behaves.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "qforge/core/config.hpp"

namespace qforge::quant::detail {

// ggml narrows `(int8_t)(v)` / `(uint8_t)(v)`; GCC emits a 32-bit truncating convert (cvttss2si:
// NaN and out-of-range give INT32_MIN) and keeps the low byte. In range only degenerate blocks
// (a subnormal or infinite scale) leave [0, 2^8), but every backend must agree on them too.
QFORGE_HD inline std::uint8_t low_byte_x86(float v) noexcept {
  if (!(v > -2147483648.0f && v < 2147483648.0f)) return 0;  // low byte of INT32_MIN; NaN too
  return static_cast<std::uint8_t>(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
}

// `(uint8_t)MIN(nmax, (int8_t)(v))`: the int8 cast may go negative, which MIN keeps.
QFORGE_HD inline std::uint8_t clamp_low_byte_x86(float v, int nmax) noexcept {
  const int s = static_cast<std::int8_t>(low_byte_x86(v));
  return static_cast<std::uint8_t>(nmax < s ? nmax : s);
}

// The value of largest magnitude, sign kept: the first such value in order (so +a before -a wins
// and the reverse), NaN skipped, 0.0f (positive) for an all-zero block.
QFORGE_HD inline float signed_absmax(const float* x, int n) noexcept {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// Minimum and maximum from FLT_MAX / -FLT_MAX, NaN skipped; among equal values (+0 / -0) the first
// one seen stays, which the fp16 sign bit of Q4_1's m records.
QFORGE_HD inline void min_max(const float* x, int n, float& min, float& max) noexcept {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// 4-bit layout: byte j holds weight j in its low nibble and weight j + 16 in its high one. q[j] is
// the full byte ggml computed (degenerate values above 15 spill into the high nibble, as in ggml).
QFORGE_HD inline void pack_q4(const std::uint8_t* q, std::uint8_t* qs) noexcept {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>(q[j] | (q[j + 16] << 4));
}

// 5-bit layout: low nibbles as pack_q4 (masked), bit 4 of weight j in bit j of the little-endian
// 32-bit qh.
QFORGE_HD inline void pack_q5(const std::uint8_t* q, std::uint8_t* qs, std::uint8_t* qh) noexcept {
  std::uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<std::uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    h |= ((q[j] & 0x10u) >> 4) << j;
    h |= ((q[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<std::uint8_t>(h >> (8 * k));
}

QFORGE_HD inline std::uint32_t load_qh(const std::uint8_t* qh) noexcept {
  return static_cast<std::uint32_t>(qh[0]) | static_cast<std::uint32_t>(qh[1]) << 8 |
         static_cast<std::uint32_t>(qh[2]) << 16 | static_cast<std::uint32_t>(qh[3]) << 24;
}

// The weighted legacy paths scale each importance weight by sqrt(sigma2 + x^2), sigma2 being the
// mean square of the whole row (float sum in order, divided by the row length as a float).
QFORGE_HD inline float row_mean_square(const float* x, std::size_t n) noexcept {
  float sum_x2 = 0.0f;
  for (std::size_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / static_cast<float>(n);
}

// weight[j] = qw[j] * sqrt(sigma2 + x[j]^2) for one 32-weight block.
QFORGE_HD inline void legacy_weights(const float* x, const float* qw, float sigma2,
                                     float* weight) noexcept {
  for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

}  // namespace qforge::quant::detail
