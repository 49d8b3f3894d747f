// SPDX-License-Identifier: MIT
// Tensor-core variant of attention.cuh's causal grouped-query attention, used by
// awq::cuda_backend::self_attn when the backend's math is f16 (kernels/cuda/awq_forward.cu). Same
// contract: token t attends to seq_first[t] .. t of its own sequence, kv head h / group, scores
// dot(q, k) * scale, softmax in float32, output sum_j p_j v_j / sum_j p_j; q, k, v and out are
// float32 in device memory.
//
// What differs is the precision of the two products: q, k and v are rounded to fp16 as their
// tiles enter shared memory, the probabilities are rounded to fp16 before P V, and both products
// run on mma.sync m16n8k16 (fp16 operands, float32 accumulation). The softmax (maximum, exp, row
// sums) stays float32 and uses the unrounded probabilities. That is the f16 math's contract
// (fp16 operands, float32 sums): about 1e-3 relative next to attention.cuh. Only f16 uses it:
// under f16 the q/k/v projections already read their input as fp16, whereas tf32 and f32 never
// round an activation to fp16, so the fp16 range (65504) would be a new limit there.
//
// A CTA takes 16 * NW queries of one head (NW warps, 16 query rows each; 4 by default) and walks
// 64-key tiles from its first query's sequence start, as attention.cuh does. Per tile a warp
// computes S = Q K^T (16 x 64) in registers, updates its online softmax, and feeds P straight from
// the S accumulators into P V: the accumulator layout of two adjacent n8 blocks is the A-operand
// layout of one k16 step, so P never goes through shared memory, and neither does the output
// (16 x D float32 accumulators per warp). Fragment layouts are those of the PTX ISA for
// mma.m16n8k16.row.col: with g = lane / 4 and c = lane % 4, A holds rows g and g + 8 at columns
// 2c, 2c + 1 (+ 8); B holds column g at rows 2c, 2c + 1 (+ 8); C holds rows g and g + 8 at
// columns 2c, 2c + 1.
//
// Shared memory (fp16): Q [16 NW][D + 8] and K [64][D + 8] row-major, V transposed [D][64 + 8], so
// every fragment is one 32-bit load of two adjacent halves; the +8 padding spreads the 8 rows a
// load touches over distinct banks. Included by awq_forward.cu; kernels are static.
#pragma once

#if !defined(__CUDACC__)
#error "qforge/awq/cuda/*.cuh need nvcc"
#endif

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace qforge::awq::cuda_detail::fwd {

// Warps per CTA (16 queries each) of the dispatch; attention_mma_kernel also builds with 8.
inline constexpr int mma_attn_warps = 4;
inline constexpr int mma_attn_bk = 64;  // keys per tile

// Head dims with a tensor-core kernel; others use attention_kernel.
constexpr bool mma_attn_supported(std::size_t d) { return d == 64 || d == 128; }

// Dynamic shared memory of attention_mma_kernel<D, NW>.
template <int D, int NW = mma_attn_warps>
constexpr std::size_t mma_attn_smem_bytes() {
  return sizeof(__half) * (std::size_t{16 * NW + mma_attn_bk} * (D + 8) +
                           std::size_t{D} * (mma_attn_bk + 8));
}

// d += a b for one m16n8k16 tile (fp16 operands, float32 accumulators).
__device__ __forceinline__ void mma_16816(float (&d)[4], std::uint32_t a0, std::uint32_t a1,
                                          std::uint32_t a2, std::uint32_t a3, std::uint32_t b0,
                                          std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Two floats as an fp16 pair, x in the low half (the lower column / row index of a fragment).
__device__ __forceinline__ std::uint32_t pack_half2(float x, float y) {
  const __half2 h = __floats2half2_rn(x, y);
  return *reinterpret_cast<const std::uint32_t*>(&h);
}

__device__ __forceinline__ std::uint32_t ld_u32(const __half* p) {
  return *reinterpret_cast<const std::uint32_t*>(p);
}

// Rows [row0, row0 + R) x columns [col, col + D) of src (row stride ld) into dst [R][D + 8] as
// fp16; rows at or past `tokens` read as zero. Consecutive threads take consecutive float4s of a
// row, so the global reads are coalesced; the fixed trip count lets a few loads be in flight at
// once (unrolling them all spills the accumulators).
template <int D, int R, int NT>
__device__ __forceinline__ void load_rows_half(__half* dst, const float* src, std::size_t ld,
                                               int row0, int col, int tokens) {
  static_assert(R * (D / 4) % NT == 0, "tile / threads");
#pragma unroll 4
  for (int it = 0; it < R * (D / 4) / NT; ++it) {
    const int idx = static_cast<int>(threadIdx.x) + it * NT;
    const int d4 = idx % (D / 4), r = idx / (D / 4), t = row0 + r;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t < tokens)
      x = *reinterpret_cast<const float4*>(src + static_cast<std::size_t>(t) * ld + col + 4 * d4);
    uint2 h;
    h.x = pack_half2(x.x, x.y);
    h.y = pack_half2(x.z, x.w);
    *reinterpret_cast<uint2*>(dst + r * (D + 8) + 4 * d4) = h;
  }
}

// V rows [row0, row0 + 64) x columns [col, col + D) into dst transposed ([D][64 + 8]) as fp16.
// A thread takes two consecutive keys of one float4 column and stores four (key, key + 1) pairs;
// the 32 lanes of a warp take 32 key pairs, so each store instruction hits 32 distinct banks.
template <int D, int NT>
__device__ __forceinline__ void load_v_transposed_half(__half* dst, const float* src,
                                                       std::size_t ld, int row0, int col,
                                                       int tokens) {
  constexpr int ldt = mma_attn_bk + 8;
  static_assert(32 * (D / 4) % NT == 0, "tile / threads");
#pragma unroll 2
  for (int it = 0; it < 32 * (D / 4) / NT; ++it) {
    const int idx = static_cast<int>(threadIdx.x) + it * NT;
    const int jp = idx % 32, d4 = idx / 32, t = row0 + 2 * jp;
    float4 x0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), x1 = x0;
    if (t < tokens)
      x0 = *reinterpret_cast<const float4*>(src + static_cast<std::size_t>(t) * ld + col + 4 * d4);
    if (t + 1 < tokens)
      x1 = *reinterpret_cast<const float4*>(src + static_cast<std::size_t>(t + 1) * ld + col +
                                            4 * d4);
    __half* o = dst + (4 * d4) * ldt + 2 * jp;
    *reinterpret_cast<std::uint32_t*>(o) = pack_half2(x0.x, x1.x);
    *reinterpret_cast<std::uint32_t*>(o + ldt) = pack_half2(x0.y, x1.y);
    *reinterpret_cast<std::uint32_t*>(o + 2 * ldt) = pack_half2(x0.z, x1.z);
    *reinterpret_cast<std::uint32_t*>(o + 3 * ldt) = pack_half2(x0.w, x1.w);
  }
}

// Maximum / sum over the 4 lanes that hold one accumulator row (same g, c = 0..3).
__device__ __forceinline__ float max4(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float sum4(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// q [tokens, q_dim], k and v [tokens, kv_dim] -> out [tokens, q_dim]. Grid: (query tiles, heads).
// scale: 1/sqrt(D), applied in float32 to the accumulated dots. NW warps, 16 * NW queries.
template <int D, int NW = mma_attn_warps>
static __global__ void __launch_bounds__(32 * NW, (D <= 64 ? 16 : 12) / NW)
    attention_mma_kernel(const float* __restrict__ q, const float* __restrict__ k,
                         const float* __restrict__ v, float* __restrict__ out,
                         const int* __restrict__ seq_first, int tokens, int q_dim, int kv_dim,
                         int group, float scale) {
  static_assert(D % 16 == 0 && D <= 128, "head dim");
  constexpr int BQ = 16 * NW, NT = 32 * NW;
  constexpr int ldq = D + 8, ldv = mma_attn_bk + 8, NB = mma_attn_bk / 8, ND = D / 8;
  extern __shared__ float4 smem_f4[];
  __half* qs = reinterpret_cast<__half*>(smem_f4);  // [BQ][D + 8]
  __half* ks = qs + BQ * ldq;                        // [64][D + 8]
  __half* vt = ks + mma_attn_bk * ldq;               // [D][64 + 8]
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, c = lane & 3;
  const int h = static_cast<int>(blockIdx.y), kvh = h / group;
  const int t0 = static_cast<int>(blockIdx.x) * BQ;
  const int w0 = t0 + 16 * warp;  // this warp's first query row

  load_rows_half<D, BQ, NT>(qs, q, q_dim, t0, h * D, tokens);

  // Key ranges of this lane's two rows (g and g + 8); rows past the end see no key.
  int first[2], last[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int t = w0 + g + 8 * i;
    first[i] = t < tokens ? seq_first[t] : 1;
    last[i] = t < tokens ? t : 0;
  }
  // Keys any row of this warp may see: seq_first is non-decreasing, so the first row's start.
  const int wfirst = w0 < tokens ? seq_first[w0] : 1;
  const int wlast = min(w0 + 15, tokens - 1);
  // Scores are kept in log2 units (dot * scale * log2 e) so the exponentials are exp2f.
  const float sl2 = scale * 1.4426950408889634f;

  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};  // this lane's share of the row sums (4 lanes summed at the end)
  float o[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.0f;

  const int kbeg = seq_first[t0];
  const int kend = min(t0 + BQ, tokens);
  for (int kt = kbeg; kt < kend; kt += mma_attn_bk) {
    __syncthreads();  // the previous tile's K and V reads are done
    load_rows_half<D, mma_attn_bk, NT>(ks, k, kv_dim, kt, kvh * D, tokens);
    load_v_transposed_half<D, NT>(vt, v, kv_dim, kt, kvh * D, tokens);
    __syncthreads();
    // A warp whose rows see no key of this tile changes nothing (its p would all be 0).
    if (kt > wlast || kt + mma_attn_bk - 1 < wfirst) continue;

    float s[NB][4];
#pragma unroll
    for (int n = 0; n < NB; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const __half* qa = qs + (16 * warp + g) * ldq + 16 * kk + 2 * c;
      const std::uint32_t a0 = ld_u32(qa), a1 = ld_u32(qa + 8 * ldq), a2 = ld_u32(qa + 8),
                          a3 = ld_u32(qa + 8 * ldq + 8);
#pragma unroll
      for (int n = 0; n < NB; ++n) {
        const __half* kb = ks + (8 * n + g) * ldq + 16 * kk + 2 * c;
        mma_16816(s[n], a0, a1, a2, a3, ld_u32(kb), ld_u32(kb + 8));
      }
    }

    // Online softmax per row i (accumulator elements 2i, 2i + 1). A row with no valid key yet
    // keeps m = -inf; its reference 0 makes every p and alpha 0.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < NB; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = kt + 8 * n + 2 * c + e;
          const bool ok = key >= first[i] && key <= last[i];
          const float x = ok ? s[n][2 * i + e] * sl2 : -INFINITY;
          s[n][2 * i + e] = x;
          mx = fmaxf(mx, x);
        }
      const float mnew = fmaxf(m[i], max4(mx));
      const float ref = mnew == -INFINITY ? 0.0f : mnew;
      const float alpha = exp2f(m[i] - ref);
      m[i] = mnew;
      l[i] *= alpha;
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        o[n][2 * i] *= alpha;
        o[n][2 * i + 1] *= alpha;
      }
#pragma unroll
      for (int n = 0; n < NB; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float x = s[n][2 * i + e];
          const float p = x == -INFINITY ? 0.0f : exp2f(x - ref);
          s[n][2 * i + e] = p;
          l[i] += p;
        }
    }

    // O += P V: key step kk covers the accumulator blocks 2kk (keys 0-7) and 2kk + 1 (8-15).
#pragma unroll
    for (int kk = 0; kk < mma_attn_bk / 16; ++kk) {
      const std::uint32_t a0 = pack_half2(s[2 * kk][0], s[2 * kk][1]);
      const std::uint32_t a1 = pack_half2(s[2 * kk][2], s[2 * kk][3]);
      const std::uint32_t a2 = pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      const std::uint32_t a3 = pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < ND; ++n) {
        const __half* vb = vt + (8 * n + g) * ldv + 16 * kk + 2 * c;
        mma_16816(o[n], a0, a1, a2, a3, ld_u32(vb), ld_u32(vb + 8));
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float sum = sum4(l[i]);
    const int t = w0 + g + 8 * i;
    if (t >= tokens) continue;
    const float inv = 1.0f / sum;  // sum >= 1: the row's own maximum contributes exp2(0)
    float* dst = out + static_cast<std::size_t>(t) * q_dim + h * D + 2 * c;
#pragma unroll
    for (int n = 0; n < ND; ++n)
      *reinterpret_cast<float2*>(dst + 8 * n) =
          make_float2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
  }
}

}  // namespace qforge::awq::cuda_detail::fwd
