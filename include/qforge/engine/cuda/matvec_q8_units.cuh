// SPDX-License-Identifier: MIT
// The 8-bit-activation side of the GGUF matvec units (matvec_units.cuh), for single tokens: x staged
// in shared memory as the CPU engine's decode codes (engine/quant_dot.hpp's act_q8_k: per 256 values
// d = max|x| / 127 and codes round(x / d), plus code sums per 16), and Q4_K / Q6_K units that
// multiply them with dp4a. Their sums are the CPU decode dot's integers; floats enter per quarter
// block, so results differ from engine::matmul under decode_activations::q8 by float rounding only.
#pragma once
#include "qforge/engine/cuda/matvec_units.cuh"

namespace qforge::engine::cuda::detail {

// --- Q4_K with 8-bit activations (single tokens) -------------------------------------------------
// The CPU engine's decode dot (engine/quant_dot.hpp): x quantized per 256 values to codes in
// [-127, 127] with d = max|x| / 127 (the same bytes as qdot::quantize_q8_k_ref), then per unit
// d_w * d_x * sum_j sc_j (q . a)_j - dmin * d_x * sum_j m_j bsum_j with both sums exact in int32.
// dp4a takes four weights per instruction where the float path spends a byte permute and an FMA
// on each: that path is issue-bound on the H100 (bench/RESULTS.md), this one leaves it memory-bound.
// Differs from the CPU's block sum only by the float sum of the four quarter-block terms.
struct q8_tile {
  const std::int8_t* qs;  // codes at U::padded(c) bytes
  const float* d;         // per 256 values
  const int* bsum;        // code sums per 16 values
};

// What an 8-bit unit shares with the float unit of its type (block bytes, loads) and with the other
// 8-bit units: the code layout. 16 bytes of padding per 64 codes put the lanes' 16-byte reads on
// distinct bank groups (Q4_K: lane l's unit at 80 l bytes; Q6_K: lanes 0..7 on 8 groups), 4
// wavefronts per warp read, the minimum.
template <class FloatUnit>
struct q8_unit_base {
  static constexpr bool int8_x = true;
  static constexpr int block_bytes = FloatUnit::block_bytes;
  __host__ __device__ static constexpr int padded(int c) noexcept { return c + (c >> 6) * 16; }
  using raw = typename FloatUnit::raw;
  __device__ static raw load(const std::uint8_t* row, int u) noexcept { return FloatUnit::load(row, u); }
};

struct q4_k_q8_unit : q8_unit_base<q4_k_unit> {
  static constexpr const char* name = "q4_K matvec (int8 x)";
  template <int R, int NT>
  __device__ static void dot(const raw (&w)[R], int u, const q8_tile& x, float (&acc)[R][NT]) noexcept {
    static_assert(NT == 1, "8-bit activations serve single tokens (the CPU engine's decode)");
    const int j = u & 3;
    const int k = (2 * j) & 3;
    const bool high = j >= 2;
    const auto* xq = reinterpret_cast<const int4*>(x.qs + padded(64 * u));
    const int4 a0 = xq[0], a1 = xq[1], b0 = xq[2], b1 = xq[3];  // low nibbles' codes, then high
    const int4 bs = *reinterpret_cast<const int4*>(x.bsum + 4 * u);  // sub-blocks 2j, 2j+1
    const float dx = x.d[u >> 2];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      int sc[2], mn[2];
#pragma unroll
      for (int e = 0; e < 2; ++e) {  // get_scale_min_k4, as q4_k_unit
        const std::uint32_t a = byte_of(w[r].head.y, k + e), b = byte_of(w[r].head.z, k + e),
                            c = byte_of(w[r].head.w, k + e);
        sc[e] = static_cast<int>(high ? (c & 0xFu) | ((a >> 6) << 4) : a & 63u);
        mn[e] = static_cast<int>(high ? (c >> 4) | ((b >> 6) << 4) : b & 63u);
      }
      int slo = 0, shi = 0;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const std::uint32_t q = word_of(i < 4 ? w[r].q0 : w[r].q1, i & 3);
        const int4& xl = i < 4 ? a0 : a1;
        const int4& xh = i < 4 ? b0 : b1;
        const int e = i & 3;
        const int xlo = e == 0 ? xl.x : e == 1 ? xl.y : e == 2 ? xl.z : xl.w;
        const int xhi = e == 0 ? xh.x : e == 1 ? xh.y : e == 2 ? xh.z : xh.w;
        slo = __dp4a(static_cast<int>(q & 0x0F0F0F0Fu), xlo, slo);
        shi = __dp4a(static_cast<int>((q >> 4) & 0x0F0F0F0Fu), xhi, shi);
      }
      const float d = half_bits_to_float(w[r].head.x), dmin = half_bits_to_float(w[r].head.x >> 16);
      const int isum = sc[0] * slo + sc[1] * shi, msum = mn[0] * (bs.x + bs.y) + mn[1] * (bs.z + bs.w);
      acc[r][0] += d * dx * static_cast<float>(isum) - dmin * dx * static_cast<float>(msum);
    }
  }
};

// --- Q6_K with 8-bit activations (single tokens): q6_k_unit's 64 weights per unit, four groups
// of 16 with their own int8 scale; sum((q - 32) a) = dp4a sums - 32 * (the group's code sum).
struct q6_k_q8_unit : q8_unit_base<q6_k_unit> {
  static constexpr const char* name = "q6_K matvec (int8 x)";
  template <int R, int NT>
  __device__ static void dot(const raw (&w)[R], int u, const q8_tile& x, float (&acc)[R][NT]) noexcept {
    static_assert(NT == 1, "8-bit activations serve single tokens (the CPU engine's decode)");
    const int h = (u >> 1) & 1, g = u & 1;
    const int col0 = (u >> 2) * quant::qk_k + 128 * h + 16 * g;
    int4 xa[4];
    int bs[4];
#pragma unroll
    for (int p = 0; p < 4; ++p) {
      xa[p] = *reinterpret_cast<const int4*>(x.qs + padded(col0 + 32 * p));
      bs[p] = x.bsum[(col0 + 32 * p) / 16];
    }
    const float dx = x.d[u >> 2];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      int s[4] = {};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const std::uint32_t A = word_of(w[r].a, i), B = word_of(w[r].b, i), H = word_of(w[r].h, i);
        const std::uint32_t q[4] = {(A & 0x0F0F0F0Fu) | ((H & 0x03030303u) << 4),
                                    (B & 0x0F0F0F0Fu) | ((H & 0x0C0C0C0Cu) << 2),
                                    ((A >> 4) & 0x0F0F0F0Fu) | (H & 0x30303030u),
                                    ((B >> 4) & 0x0F0F0F0Fu) | ((H >> 2) & 0x30303030u)};
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const int xv = i == 0 ? xa[p].x : i == 1 ? xa[p].y : i == 2 ? xa[p].z : xa[p].w;
          s[p] = __dp4a(static_cast<int>(q[p]), xv, s[p]);
        }
      }
      int isum = 0;
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        const auto sc = static_cast<std::int8_t>(byte_of(p < 2 ? w[r].s0 : w[r].s1, 2 * (p & 1) + g));
        isum += static_cast<int>(sc) * (s[p] - 32 * bs[p]);
      }
      acc[r][0] += half_bits_to_float(w[r].d) * dx * static_cast<float>(isum);
    }
  }
};

// Bytes of the 8-bit staging of one token: codes (padded, rounded to 16), sums per 16, scales.
template <class U>
__host__ __device__ constexpr std::size_t q8_codes_bytes(std::size_t cols) noexcept {
  return (static_cast<std::size_t>(U::padded(static_cast<int>(cols))) + 15) / 16 * 16;
}

// The 8-bit staging of one token: one warp per 256 values, 8 per lane; the prologue's RMS first
// (a pass over x from L2) so each value is normed before its block's max is taken.
template <class U>
__device__ q8_tile stage_q8(float4* smem, const float* x, int cols, int prologue,
                            const float* __restrict__ norm_w, float eps, float* red) {
  auto* qs = reinterpret_cast<std::int8_t*>(smem);
  int* bsum = reinterpret_cast<int*>(qs + q8_codes_bytes<U>(static_cast<std::size_t>(cols)));
  auto* d = reinterpret_cast<float*>(bsum + cols / 16);  // bsum stays 16-byte aligned
  float inv_rms = 1.0f;
  if (prologue == prologue_rms_norm) {
    float ss = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < cols / 4; i += blockDim.x) ss += sq4(load_x4(x + 4 * i));
    inv_rms = 1.0f / sqrtf(block_sum(ss, red) / static_cast<float>(cols) + eps);
  }
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = static_cast<int>(blockDim.x) >> 5, blocks = cols / 256;
  // A warp's next two blocks are loaded before any is reduced: the loads are L2 round trips, and
  // one at a time they were most of a small matvec's staging time.
  constexpr int batch = 2;
  for (int b0 = warp; b0 < blocks; b0 += batch * warps) {
    float4 v[batch][2];
#pragma unroll
    for (int k = 0; k < batch; ++k) {
      const int c = 256 * (b0 + k * warps) + 8 * lane;
      if (b0 + k * warps >= blocks) continue;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        v[k][h] = load_x4(x + c + 4 * h);
        if (prologue == prologue_swiglu)
          v[k][h] = swiglu4(v[k][h], load_x4(x + cols + c + 4 * h));
        else if (prologue == prologue_rms_norm)
          v[k][h] = scale4(__ldg(reinterpret_cast<const float4*>(norm_w + c + 4 * h)), v[k][h], inv_rms);
      }
    }
#pragma unroll
    for (int k = 0; k < batch; ++k) {
      const int b = b0 + k * warps;
      if (b >= blocks) break;  // uniform across the warp
      const int c = 256 * b + 8 * lane;
      const float f[8] = {v[k][0].x, v[k][0].y, v[k][0].z, v[k][0].w,
                          v[k][1].x, v[k][1].y, v[k][1].z, v[k][1].w};
      float m = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) m = fmaxf(m, fabsf(f[i]));
      for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
      const float inv = m > 0.0f ? 127.0f / m : 0.0f;
      std::uint32_t word[2] = {0u, 0u};
      int sum = 0;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int q = __float2int_rn(f[i] * inv);  // round half to even, as the CPU's nearbyint
        sum += q;
        word[i / 4] |= (static_cast<std::uint32_t>(q) & 0xFFu) << (8 * (i % 4));
      }
      *reinterpret_cast<uint2*>(qs + U::padded(c)) = make_uint2(word[0], word[1]);
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      if ((lane & 1) == 0) bsum[16 * b + lane / 2] = sum;
      if (lane == 0) d[b] = m / 127.0f;
    }
  }
  return {qs, d, bsum};
}

}  // namespace qforge::engine::cuda::detail
