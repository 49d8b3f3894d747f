// SPDX-License-Identifier: MIT
// Dot products of block-quantized weight rows with activations that were quantized once per matvec
// to 8 bits, as llama.cpp's CPU backend does (its Q8_K / Q8_0 "vec_dot_type"): the inner sums are
// exact integer multiply-adds on the stored codes, and floats enter once per block (d_w * d_a). The
// activation formats are qforge's own (float scale, not fp16; bytes need not match ggml's):
// act_q8_k holds 256 values as round(x / d) in [-127, 127] with d = max|x| / 127 plus the sum of
// each 16 codes, which folds K-quant mins and code offsets (Q6_K's -32, Q3_K's -4) into one
// multiply per sub-block; act_q8_0 does the same per 32 values for Q8_0 weights. This file is the
// spec (plain loops, no xsimd): levels_of() turns a block into integer codes, per-16 integer scales
// and mins, so one reference dot serves every K-quant; engine/quant_dot_simd.hpp holds the fast
// bodies, which must give the same integer sums per block and differ only in float summation order.
// Error against float activations: |x - d q| <= d / 2 per value, so a dot moves by at most
// sum |w_i| * d_block / 2.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/q3_k/ref.hpp"
#include "qforge/quant/q4_k/ref.hpp"

namespace qforge::engine::qdot {

inline constexpr std::size_t qk = quant::qk_k;  // values per act_q8_k

struct act_q8_k {
  float d;                      // x ~= d * qs
  std::int16_t bsums[qk / 16];  // sum of each 16 consecutive qs
  std::int8_t qs[qk];
};
static_assert(sizeof(act_q8_k) == 292);

struct act_q8_0 {
  float d;
  std::int8_t qs[quant::qk8_0];
};
static_assert(sizeof(act_q8_0) == 36);

// Codes in [-127, 127] for one group of values whose scale is 1 / inv (inv = 0 for an all-zero
// group). Round half to even: what the SIMD paths' float-to-int conversion does, so the fast
// quantizers write these same bytes.
inline std::int8_t code_of(float x, float inv) noexcept {
  return static_cast<std::int8_t>(static_cast<int>(std::nearbyint(x * inv)));
}

inline float amax_of(const float* x, std::size_t n) noexcept {
  float m = 0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

// x: n floats, n % 256 == 0; y: n / 256 blocks.
inline void quantize_q8_k_ref(const float* x, std::size_t n, act_q8_k* y) noexcept {
  for (std::size_t b = 0; b < n / qk; ++b, x += qk) {
    const float amax = amax_of(x, qk);
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    y[b].d = amax / 127.0f;
    for (std::size_t i = 0; i < qk; ++i) y[b].qs[i] = code_of(x[i], inv);
    for (std::size_t j = 0; j < qk / 16; ++j) {
      int s = 0;
      for (std::size_t i = 0; i < 16; ++i) s += y[b].qs[16 * j + i];
      y[b].bsums[j] = static_cast<std::int16_t>(s);
    }
  }
}

// x: n floats, n % 32 == 0; y: n / 32 blocks.
inline void quantize_q8_0_ref(const float* x, std::size_t n, act_q8_0* y) noexcept {
  for (std::size_t b = 0; b < n / quant::qk8_0; ++b, x += quant::qk8_0) {
    const float amax = amax_of(x, quant::qk8_0);
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    y[b].d = amax / 127.0f;
    for (int i = 0; i < quant::qk8_0; ++i) y[b].qs[i] = code_of(x[i], inv);
  }
}

// One K-quant block as w[16 j + i] = d * sc[j] * q[16 j + i] - dmin * m[j] (16 groups of 16).
struct levels {
  float d = 0, dmin = 0;
  int sc[16] = {}, m[16] = {};
  int q[qk] = {};
};

// Q4_K / Q5_K: 8 sub-blocks of 32 (two groups each), q = low nibble (+ 16 for the qh bit).
template <class Block>
void levels_q45(const Block& b, const std::uint8_t* qh, levels& l) noexcept {
  l.d = fp16_to_fp32(b.d);
  l.dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    quant::detail::get_scale_min_k4(j, b.scales, &sc, &m);
    l.sc[2 * j] = l.sc[2 * j + 1] = sc;
    l.m[2 * j] = l.m[2 * j + 1] = m;
  }
  for (int c = 0; c < 4; ++c)  // byte c*32+i: low nibble value 64c+i, high nibble value 64c+32+i
    for (int i = 0; i < 32; ++i) {
      const std::uint8_t v = b.qs[32 * c + i];
      const int h0 = qh ? ((qh[i] >> (2 * c)) & 1) << 4 : 0;
      const int h1 = qh ? ((qh[i] >> (2 * c + 1)) & 1) << 4 : 0;
      l.q[64 * c + i] = (v & 0xF) + h0;
      l.q[64 * c + 32 + i] = (v >> 4) + h1;
    }
}
inline void levels_of(const quant::block_q4_k& b, levels& l) noexcept { levels_q45(b, nullptr, l); }
inline void levels_of(const quant::block_q5_k& b, levels& l) noexcept { levels_q45(b, b.qh, l); }

// Q6_K: q = (4 low bits from ql | 2 high bits from qh) - 32, int8 scale per 16.
inline void levels_of(const quant::block_q6_k& b, levels& l) noexcept {
  l.d = fp16_to_fp32(b.d);
  for (int j = 0; j < 16; ++j) l.sc[j] = b.scales[j];
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 32; ++i) {
      const std::uint8_t lo0 = b.ql[64 * h + i], lo1 = b.ql[64 * h + 32 + i], hi = b.qh[32 * h + i];
      int* q = l.q + 128 * h + i;
      q[0] = ((lo0 & 0xF) | ((hi & 3) << 4)) - 32;
      q[32] = ((lo1 & 0xF) | (((hi >> 2) & 3) << 4)) - 32;
      q[64] = ((lo0 >> 4) | (((hi >> 4) & 3) << 4)) - 32;
      q[96] = ((lo1 >> 4) | (((hi >> 6) & 3) << 4)) - 32;
    }
}

// Q3_K: q = 2 bits from qs + 4 * hmask bit - 4, 6-bit scale - 32 per 16.
inline void levels_of(const quant::block_q3_k& b, levels& l) noexcept {
  l.d = fp16_to_fp32(b.d);
  for (int j = 0; j < 16; ++j) l.sc[j] = quant::q3_k::scale_of(b, j);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < 32; ++i)
        l.q[128 * h + 32 * s + i] =
            ((b.qs[32 * h + i] >> (2 * s)) & 3) + (((b.hmask[i] >> (4 * h + s)) & 1) << 2) - 4;
}

// Q2_K: q = 2 bits, 4-bit scale and 4-bit min per 16.
inline void levels_of(const quant::block_q2_k& b, levels& l) noexcept {
  l.d = fp16_to_fp32(b.d);
  l.dmin = fp16_to_fp32(b.dmin);
  for (int j = 0; j < 16; ++j) l.sc[j] = b.scales[j] & 0xF, l.m[j] = b.scales[j] >> 4;
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int i = 0; i < 32; ++i) l.q[128 * h + 32 * s + i] = (b.qs[32 * h + i] >> (2 * s)) & 3;
}

// One block's contribution: d * da * sum_j sc_j (q . a)_j - dmin * da * sum_j m_j bsum_j, both sums
// exact in int32 (|q| <= 32, |a| <= 127, |sc| <= 128: at most 2^27).
struct block_sums {
  int isum = 0, msum = 0;
};
inline block_sums sums_of(const levels& l, const act_q8_k& a) noexcept {
  block_sums s;
  for (int j = 0; j < 16; ++j) {
    int p = 0;
    for (int i = 0; i < 16; ++i) p += l.q[16 * j + i] * a.qs[16 * j + i];
    s.isum += l.sc[j] * p;
    s.msum += l.m[j] * a.bsums[j];
  }
  return s;
}

// Row of nb K-quant blocks against nb act_q8_k blocks.
template <class Block>
float dot_ref(const Block* w, const act_q8_k* a, std::size_t nb) noexcept {
  float sum = 0;
  levels l;
  for (std::size_t b = 0; b < nb; ++b) {
    levels_of(w[b], l);
    const block_sums s = sums_of(l, a[b]);
    sum += l.d * a[b].d * static_cast<float>(s.isum) - l.dmin * a[b].d * static_cast<float>(s.msum);
  }
  return sum;
}

// Row of nb Q8_0 blocks against nb act_q8_0 blocks.
inline float dot_ref(const quant::block_q8_0* w, const act_q8_0* a, std::size_t nb) noexcept {
  float sum = 0;
  for (std::size_t b = 0; b < nb; ++b) {
    int p = 0;
    for (int i = 0; i < quant::qk8_0; ++i) p += w[b].qs[i] * a[b].qs[i];
    sum += fp16_to_fp32(w[b].d) * a[b].d * static_cast<float>(p);
  }
  return sum;
}

}  // namespace qforge::engine::qdot
