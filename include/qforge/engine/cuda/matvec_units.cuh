// SPDX-License-Identifier: MIT
// Quantized matvec / small-batch matmul on GGUF blocks, read in place: y[t, r] (+)= sum_k W[r, k] *
// x[t, k] for a few tokens, W row-major [rows, cols] of Q4_K, Q6_K, Q8_0 or F16, x and y float32.
// The math is the reference decoders' (q4_k/ref.hpp, q6_k/ref.hpp, q8_0/ref.hpp) regrouped per
// scale: Q4_K sums d*sc*sum(q*x) - dmin*m*sum(x) per 32-weight sub-block, Q6_K d*sc*sum((q-32)*x)
// per 16, Q8_0 d*sum(q*x) per 32, all in float32 with FMAs; so results differ from the reference's
// dot product by float rounding only (tests/engine/cuda_engine_main.cu holds them to it).
// Work split: a "unit" is 64 weights of one row whose bytes one lane loads (Q4_K: the 16-byte
// header + 32 bytes of nibbles of one sub-block pair; Q6_K: 16 bytes each of ql, ql+32, qh for
// one 16-weight column of each of the four 32-weight quarters of a half block; Q8_0: a pair of
// blocks, 68 bytes; F16: 128 bytes). A warp owns R rows and walks their units in lockstep, lane l
// taking units l, l+32, ..., the R rows sharing every activation load; the next unit's loads
// (possibly of the warp's next row group) are issued before the current one is consumed. The grid
// is persistent (as many CTAs as fit), so each CTA copies the activations once into shared
// memory, padded per type (U::padded) so that the lanes' 16-byte reads, 256 bytes apart in x, hit
// distinct banks: read straight from global memory they touched 32 cache lines per warp load and
// the L1 became the bottleneck. The first weight loads go out before the PDL wait (common.cuh).
// Q6_K and Q8_0 blocks are only 2-byte aligned (210 and 34 bytes): Q6_K uses funnel-shifted
// loads, Q8_0 takes block pairs (68 bytes, 4-byte aligned when cols % 64 == 0). A unit with
// int8_x (Q4_K and Q6_K for single tokens) stages x as 8-bit codes instead and multiplies with dp4a.
#pragma once
#include "qforge/engine/cuda/common.cuh"
#include "qforge/quant/blocks.hpp"

namespace qforge::engine::cuda::detail {

inline constexpr int unit_elems = 64;
inline constexpr int matvec_warps = 8;  // warps per CTA
inline constexpr int max_batch = 8;     // tokens per launch (the host API loops over more)
inline constexpr std::size_t max_smem = 224 * 1024;  // under sm_90's 227 KiB, room for static arrays

// Activations of NT tokens in shared memory: token t, column c at xs[t * stride + U::padded(c)].
struct x_tile {
  const float* xs;
  int stride;
  template <class U>
  __device__ __forceinline__ float4 get(int t, int c) const noexcept {
    return *reinterpret_cast<const float4*>(xs + t * stride + U::padded(c));
  }
};

// --- Q4_K: unit u = sub-blocks 2j, 2j+1 (j = u % 4) of block u / 4 ------------------------------
struct q4_k_unit {
  static constexpr bool int8_x = false;
  static constexpr int block_bytes = sizeof(quant::block_q4_k);
  static constexpr const char* name = "q4_K matvec";
  // Unit u reads columns 64u .. 64u + 63: 4 floats of padding per 64 put lane l's float4 in
  // banks 4l .. 4l + 3 (mod 32), 4 wavefronts per warp read, the minimum for 16-byte loads.
  __host__ __device__ static constexpr int padded(int c) noexcept { return c + (c >> 6) * 4; }
  struct raw {
    uint4 head{}, q0{}, q1{};  // d, dmin, scales[12]; qs[32j .. 32j + 31]
  };
  __device__ static raw load(const std::uint8_t* row, int u) noexcept {
    const std::uint8_t* b = row + static_cast<std::size_t>(u >> 2) * block_bytes;
    const int j = u & 3;
    return {load16(b), load16(b + 16 + 32 * j), load16(b + 32 + 32 * j)};
  }
  template <int R, int NT>
  __device__ static void dot(const raw (&w)[R], int u, const x_tile& x, float (&acc)[R][NT]) noexcept {
    const int j = u & 3;
    const int col0 = (u >> 2) * quant::qk_k + 64 * j;
    // get_scale_min_k4 for sub-blocks 2j and 2j+1: both below 4 (6-bit fields of bytes 0..7) or
    // both at or above 4 (4 low bits in bytes 8..11, 2 high bits in the tops of bytes 0..7).
    const int k = (2 * j) & 3;
    const bool high = j >= 2;
    float dl[R], ml[R], dh[R], mh[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float d = half_bits_to_float(w[r].head.x), dmin = half_bits_to_float(w[r].head.x >> 16);
      float sc[2], mn[2];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const std::uint32_t a = byte_of(w[r].head.y, k + e), b = byte_of(w[r].head.z, k + e),
                            c = byte_of(w[r].head.w, k + e);
        const std::uint32_t s = high ? (c & 0xFu) | ((a >> 6) << 4) : a & 63u;
        const std::uint32_t m = high ? (c >> 4) | ((b >> 6) << 4) : b & 63u;
        sc[e] = static_cast<float>(s);
        mn[e] = static_cast<float>(m);
      }
      dl[r] = d * sc[0], ml[r] = dmin * mn[0], dh[r] = d * sc[1], mh[r] = dmin * mn[1];
    }
    // slo/shi sum (1 + q/16) * x (one_plus_q16): sum(q*x) = 16 * (slo - xlo).
    float slo[R][NT] = {}, shi[R][NT] = {}, xlo[NT] = {}, xhi[NT] = {};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float4 xa[NT], xb[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        xa[t] = x.get<q4_k_unit>(t, col0 + 4 * i);
        xb[t] = x.get<q4_k_unit>(t, col0 + 32 + 4 * i);
        xlo[t] += sum4(xa[t]);
        xhi[t] += sum4(xb[t]);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const std::uint32_t q = word_of(i < 4 ? w[r].q0 : w[r].q1, i & 3);
        const std::uint32_t lo = low_nibbles_q16(q), hi = high_nibbles_q16(q);
        const float a0 = one_plus_q16(lo, 0), a1 = one_plus_q16(lo, 1), a2 = one_plus_q16(lo, 2),
                    a3 = one_plus_q16(lo, 3);
        const float b0 = one_plus_q16(hi, 0), b1 = one_plus_q16(hi, 1), b2 = one_plus_q16(hi, 2),
                    b3 = one_plus_q16(hi, 3);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          slo[r][t] = dot4(a0, a1, a2, a3, xa[t], slo[r][t]);
          shi[r][t] = dot4(b0, b1, b2, b3, xb[t], shi[r][t]);
        }
      }
    }
    // d*sc*sum(q*x) - dmin*m*sum(x) = 16*d*sc*s - (16*d*sc + dmin*m)*sum(x).
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t)
        acc[r][t] += (16.0f * dl[r] * slo[r][t] - (16.0f * dl[r] + ml[r]) * xlo[t]) +
                     (16.0f * dh[r] * shi[r][t] - (16.0f * dh[r] + mh[r]) * xhi[t]);
  }
};

// --- Q6_K: unit u = half h = (u / 2) % 2, 16-column group g = u % 2 of block u / 4 --------------
// Its 64 weights are columns 128h + 16g + 32p + [0, 16) for p = 0..3, each p with its own scale.
struct q6_k_unit {
  static constexpr bool int8_x = false;
  static constexpr int block_bytes = sizeof(quant::block_q6_k);
  static constexpr const char* name = "q6_K matvec";
  // Unit (b, h, g) reads columns 256b + 128h + 16g + 32p + [0, 16): padding 4 floats per 128
  // spreads a warp's 32 units over 8 bank groups (4 wavefronts per 16-byte read).
  __host__ __device__ static constexpr int padded(int c) noexcept { return c + (c >> 7) * 4; }
  struct raw {
    uint4 a{}, b{}, h{};          // ql[64h + 16g ..], ql[64h + 32 + 16g ..], qh[32h + 16g ..]
    std::uint32_t s0 = 0, s1 = 0;  // scales[8h .. 8h + 7]
    std::uint32_t d = 0;
  };
  __device__ static raw load(const std::uint8_t* row, int u) noexcept {
    const std::uint8_t* blk = row + static_cast<std::size_t>(u >> 2) * block_bytes;
    const int h = (u >> 1) & 1, g = u & 1;
    raw r;
    // The furthest funnel load ends 2 bytes after qh's 16, at byte 194 of 210: inside the block.
    r.a = load16_a2(blk + 64 * h + 16 * g);
    r.b = load16_a2(blk + 64 * h + 32 + 16 * g);
    r.h = load16_a2(blk + 128 + 32 * h + 16 * g);
    const auto* sp = reinterpret_cast<const unsigned short*>(blk + 192 + 8 * h);
    r.s0 = static_cast<std::uint32_t>(__ldg(sp)) | (static_cast<std::uint32_t>(__ldg(sp + 1)) << 16);
    r.s1 = static_cast<std::uint32_t>(__ldg(sp + 2)) | (static_cast<std::uint32_t>(__ldg(sp + 3)) << 16);
    r.d = __ldg(reinterpret_cast<const unsigned short*>(blk + 208));
    return r;
  }
  template <int R, int NT>
  __device__ static void dot(const raw (&w)[R], int u, const x_tile& x, float (&acc)[R][NT]) noexcept {
    const int h = (u >> 1) & 1, g = u & 1;
    const int col0 = (u >> 2) * quant::qk_k + 128 * h + 16 * g;
    float sc[R][4];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float d = half_bits_to_float(w[r].d);
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        const auto code = static_cast<std::int8_t>(byte_of(p < 2 ? w[r].s0 : w[r].s1, 2 * (p & 1) + g));
        sc[r][p] = d * static_cast<float>(code);
      }
    }
    float s[R][NT][4] = {};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float4 xv[NT][4];
#pragma unroll
      for (int t = 0; t < NT; ++t)
#pragma unroll
        for (int p = 0; p < 4; ++p) xv[t][p] = x.get<q6_k_unit>(t, col0 + 32 * p + 4 * i);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const std::uint32_t A = word_of(w[r].a, i), B = word_of(w[r].b, i), H = word_of(w[r].h, i);
        std::uint32_t q[4];
        q[0] = (A & 0x0F0F0F0Fu) | ((H & 0x03030303u) << 4);
        q[1] = (B & 0x0F0F0F0Fu) | ((H & 0x0C0C0C0Cu) << 2);
        q[2] = ((A >> 4) & 0x0F0F0F0Fu) | (H & 0x30303030u);
        q[3] = ((B >> 4) & 0x0F0F0F0Fu) | ((H >> 2) & 0x30303030u);
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const float f0 = byte_minus(q[p], 0, 32.0f), f1 = byte_minus(q[p], 1, 32.0f),
                      f2 = byte_minus(q[p], 2, 32.0f), f3 = byte_minus(q[p], 3, 32.0f);
#pragma unroll
          for (int t = 0; t < NT; ++t) s[r][t][p] = dot4(f0, f1, f2, f3, xv[t][p], s[r][t][p]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int t = 0; t < NT; ++t)
        acc[r][t] += (sc[r][0] * s[r][t][0] + sc[r][1] * s[r][t][1]) +
                     (sc[r][2] * s[r][t][2] + sc[r][3] * s[r][t][3]);
  }
};

// --- Q8_0: unit u = blocks 2u and 2u + 1 (68 bytes, 4-byte aligned) ------------------------------
struct q8_0_unit {
  static constexpr bool int8_x = false;
  static constexpr int block_bytes = sizeof(quant::block_q8_0);
  static constexpr const char* name = "q8_0 matvec";
  __host__ __device__ static constexpr int padded(int c) noexcept { return c + (c >> 6) * 4; }
  struct raw {
    // word 0: d0 | qs0[0..1]; words 1..7: qs0[2..29]; word 8: qs0[30..31] | d1; 9..16: qs1.
    std::uint32_t w[17] = {};
  };
  __device__ static raw load(const std::uint8_t* row, int u) noexcept {
    const auto* p = reinterpret_cast<const std::uint32_t*>(row + static_cast<std::size_t>(u) * 2 * block_bytes);
    raw r;
#pragma unroll
    for (int i = 0; i < 17; ++i) r.w[i] = __ldg(p + i);
    return r;
  }
  template <int R, int NT>
  __device__ static void dot(const raw (&w)[R], int u, const x_tile& x, float (&acc)[R][NT]) noexcept {
    const int col0 = u * unit_elems;
    float s0[R][NT] = {}, s1[R][NT] = {};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float4 xa[NT], xb[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        xa[t] = x.get<q8_0_unit>(t, col0 + 4 * i);
        xb[t] = x.get<q8_0_unit>(t, col0 + 32 + 4 * i);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        // Flipping the sign bit maps int8 q to q + 128 in 0..255, which byte_minus undoes.
        const std::uint32_t qa = __byte_perm(w[r].w[i], w[r].w[i + 1], 0x5432) ^ 0x80808080u;
        const std::uint32_t qb = w[r].w[9 + i] ^ 0x80808080u;
        const float a0 = byte_minus(qa, 0, 128.0f), a1 = byte_minus(qa, 1, 128.0f),
                    a2 = byte_minus(qa, 2, 128.0f), a3 = byte_minus(qa, 3, 128.0f);
        const float b0 = byte_minus(qb, 0, 128.0f), b1 = byte_minus(qb, 1, 128.0f),
                    b2 = byte_minus(qb, 2, 128.0f), b3 = byte_minus(qb, 3, 128.0f);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          s0[r][t] = dot4(a0, a1, a2, a3, xa[t], s0[r][t]);
          s1[r][t] = dot4(b0, b1, b2, b3, xb[t], s1[r][t]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float d0 = half_bits_to_float(w[r].w[0]), d1 = half_bits_to_float(w[r].w[8] >> 16);
#pragma unroll
      for (int t = 0; t < NT; ++t) acc[r][t] += d0 * s0[r][t] + d1 * s1[r][t];
    }
  }
};

// --- F16: unit u = columns 64u .. 64u + 63 (128 bytes) -------------------------------------------
struct f16_unit {
  static constexpr bool int8_x = false;
  static constexpr const char* name = "f16 matvec";
  __host__ __device__ static constexpr int padded(int c) noexcept { return c + (c >> 6) * 4; }
  struct raw {
    uint4 v[8] = {};
  };
  __device__ static raw load(const std::uint8_t* row, int u) noexcept {
    const std::uint8_t* p = row + static_cast<std::size_t>(u) * 2 * unit_elems;
    raw r;
#pragma unroll
    for (int i = 0; i < 8; ++i) r.v[i] = load16(p + 16 * i);
    return r;
  }
  template <int R, int NT>
  __device__ static void dot(const raw (&w)[R], int u, const x_tile& x, float (&acc)[R][NT]) noexcept {
    const int col0 = u * unit_elems;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float4 xa[NT], xb[NT];
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        xa[t] = x.get<f16_unit>(t, col0 + 8 * i);
        xb[t] = x.get<f16_unit>(t, col0 + 8 * i + 4);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float f[8];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const std::uint32_t hw = word_of(w[r].v[i], e);
          const float2 p = __half22float2(*reinterpret_cast<const __half2*>(&hw));
          f[2 * e] = p.x;
          f[2 * e + 1] = p.y;
        }
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          acc[r][t] = dot4(f[0], f[1], f[2], f[3], xa[t], acc[r][t]);
          acc[r][t] = dot4(f[4], f[5], f[6], f[7], xb[t], acc[r][t]);
        }
      }
    }
  }
};

}  // namespace qforge::engine::cuda::detail
