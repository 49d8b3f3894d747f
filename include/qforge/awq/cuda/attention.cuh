// SPDX-License-Identifier: MIT
// Causal grouped-query attention over a packed calibration set for awq::cuda_backend::self_attn
// (kernels/cuda/awq_forward.cu): the device counterpart of awq::block_runner::attention. Each
// token t attends to the tokens seq_first[t] .. t of its own sequence, kv head h / group, scores
// dot(q, k) * scale, softmax in float32, output sum_j p_j v_j.
//
// The CPU computes a whole score row and then the softmax; here a CTA takes a tile of 64 queries
// of one head and walks 64-key tiles of K and V through shared memory with an online softmax (the
// running row maximum rescales the partial sums), so a 512-token sequence reads each K/V row once
// per query tile instead of once per query. The tiles follow the packed token order, not the
// sequences: a tile straddling two sequences starts its keys at its first query's sequence start
// and masks per query, which costs at most one extra key range per sequence boundary but needs no
// per-sequence tile table. Everything is float32 on CUDA cores; dots and the value sums use
// explicit FMAs (the objects are built with --fmad=false, which would otherwise split them into a
// multiply and an add: slower and no closer to the CPU's order, which differs anyway). The exp is
// expf, as the CPU's std::exp; the softmax is the CPU's up to summation order and rounding.
//
// Layout in shared memory (floats): Q tile transposed [D][64] (a thread reads its 4 query rows of
// one dimension as one float4), one K/V buffer ([D][64] transposed for K, [64][D] for V: K is read
// like Q, V by value columns), and P [64][68] (row stride padded so the rows written by the two
// row groups of a warp fall on different banks). 256 threads as 16 x 16: thread (ty, tx) owns
// score rows 4ty..4ty+3, key columns 4tx..4tx+3 of the tile and output columns 64c + 4tx..+3.
// Included by awq_forward.cu only; kernels are static so a second includer could not clash.
#pragma once

#if !defined(__CUDACC__)
#error "qforge/awq/cuda/*.cuh need nvcc"
#endif

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

namespace qforge::awq::cuda_detail::fwd {

inline constexpr int attn_bq = 64;      // queries per CTA
inline constexpr int attn_bk = 64;      // keys per shared-memory tile
inline constexpr int attn_threads = 256;
inline constexpr int attn_pstride = attn_bk + 4;

// Dynamic shared memory of attention_kernel<D>.
template <int D>
constexpr std::size_t attn_smem_bytes() {
  return sizeof(float) * (std::size_t{D} * attn_bq + std::size_t{D} * attn_bk +
                          std::size_t{attn_bq} * attn_pstride);
}

__device__ __forceinline__ float comp(const float4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// Maximum / sum over the 16 lanes that share a score row (lanes 0-15 or 16-31 of the warp).
__device__ __forceinline__ float max16(float v) {
  for (int off = 8; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ __forceinline__ float sum16(float v) {
  for (int off = 8; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Rows [row0, row0 + 64) x columns [col, col + D) of src (row stride ld) into dst transposed
// ([D][64]); rows at or past `tokens` read as zero. Consecutive threads take consecutive rows, so
// the transposed shared-memory stores are conflict-free.
template <int D>
__device__ __forceinline__ void load_transposed(float* dst, const float* src, std::size_t ld,
                                                int row0, int col, int tokens) {
  for (int idx = static_cast<int>(threadIdx.x); idx < 64 * (D / 4); idx += attn_threads) {
    const int r = idx % 64, d4 = idx / 64, t = row0 + r;
    float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (t < tokens)
      x = *reinterpret_cast<const float4*>(src + static_cast<std::size_t>(t) * ld + col + 4 * d4);
    dst[(4 * d4 + 0) * 64 + r] = x.x;
    dst[(4 * d4 + 1) * 64 + r] = x.y;
    dst[(4 * d4 + 2) * 64 + r] = x.z;
    dst[(4 * d4 + 3) * 64 + r] = x.w;
  }
}

// q [tokens, q_dim], k and v [tokens, kv_dim] -> out [tokens, q_dim]. Grid: (query tiles, heads).
// D: head dim, a multiple of 64 (one float4 of output columns per 64 dims per thread).
template <int D>
static __global__ void __launch_bounds__(attn_threads, D <= 128 ? 2 : 1)
    attention_kernel(const float* __restrict__ q, const float* __restrict__ k,
                     const float* __restrict__ v, float* __restrict__ out,
                     const int* __restrict__ seq_first, int tokens, int q_dim, int kv_dim,
                     int group, float scale) {
  static_assert(D % 64 == 0 && D <= 256, "head dim");
  constexpr int NV = D / 64;
  extern __shared__ float4 smem_f4[];
  float* qt = reinterpret_cast<float*>(smem_f4);  // [D][64]
  float* kv = qt + D * attn_bq;                    // Kt [D][64] or V [64][D]
  float* ps = kv + D * attn_bk;                    // [64][attn_pstride]
  const int tid = static_cast<int>(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  const int h = static_cast<int>(blockIdx.y), kvh = h / group;
  const int t0 = static_cast<int>(blockIdx.x) * attn_bq;

  load_transposed<D>(qt, q, q_dim, t0, h * D, tokens);

  // Key range of each of this thread's rows; rows past the end see no key (first > last).
  int first[4], last[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int t = t0 + 4 * ty + i;
    first[i] = t < tokens ? seq_first[t] : 1;
    last[i] = t < tokens ? t : 0;
  }
  float m[4], l[4], o[4][NV][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;  // this thread's share of the row sum (the 16 lanes are summed at the end)
#pragma unroll
    for (int c = 0; c < NV; ++c)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[i][c][e] = 0.0f;
  }

  const int kbeg = seq_first[t0];
  const int kend = min(t0 + attn_bq, tokens);
  for (int kt = kbeg; kt < kend; kt += attn_bk) {
    __syncthreads();  // the previous tile's V (and P) reads are done
    load_transposed<D>(kv, k, kv_dim, kt, kvh * D, tokens);
    __syncthreads();

    float s[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < D; ++d) {
      const float4 a = *reinterpret_cast<const float4*>(qt + d * attn_bq + 4 * ty);
      const float4 b = *reinterpret_cast<const float4*>(kv + d * attn_bk + 4 * tx);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] = __fmaf_rn(comp(a, i), comp(b, j), s[i][j]);
    }

    // Online softmax: new row maximum, rescale what was summed so far, exponentiate this tile.
    // A row with no valid key yet keeps m = -inf; its reference 0 makes every p and alpha 0.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int key = kt + 4 * tx + j;
        const bool ok = key >= first[i] && key <= last[i];
        s[i][j] = ok ? s[i][j] * scale : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
      const float mnew = fmaxf(m[i], max16(mx));
      const float ref = mnew == -INFINITY ? 0.0f : mnew;
      const float alpha = expf(m[i] - ref);
      m[i] = mnew;
      l[i] *= alpha;
#pragma unroll
      for (int c = 0; c < NV; ++c)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[i][c][e] *= alpha;
      float p[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        p[j] = s[i][j] == -INFINITY ? 0.0f : expf(s[i][j] - ref);
        l[i] += p[j];
      }
      *reinterpret_cast<float4*>(ps + (4 * ty + i) * attn_pstride + 4 * tx) =
          make_float4(p[0], p[1], p[2], p[3]);
    }
    __syncthreads();  // K reads done, P complete

    for (int idx = tid; idx < attn_bk * (D / 4); idx += attn_threads) {
      const int d4 = idx % (D / 4), c = idx / (D / 4), j = kt + c;
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (j < tokens)
        x = *reinterpret_cast<const float4*>(v + static_cast<std::size_t>(j) * kv_dim + kvh * D +
                                             4 * d4);
      *reinterpret_cast<float4*>(kv + c * D + 4 * d4) = x;
    }
    __syncthreads();

    for (int c0 = 0; c0 < attn_bk; c0 += 4) {
      float4 pr[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        pr[i] = *reinterpret_cast<const float4*>(ps + (4 * ty + i) * attn_pstride + c0);
#pragma unroll
      for (int cc = 0; cc < 4; ++cc)
#pragma unroll
        for (int c = 0; c < NV; ++c) {
          const float4 vv = *reinterpret_cast<const float4*>(kv + (c0 + cc) * D + 64 * c + 4 * tx);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const float pi = comp(pr[i], cc);
            o[i][c][0] = __fmaf_rn(pi, vv.x, o[i][c][0]);
            o[i][c][1] = __fmaf_rn(pi, vv.y, o[i][c][1]);
            o[i][c][2] = __fmaf_rn(pi, vv.z, o[i][c][2]);
            o[i][c][3] = __fmaf_rn(pi, vv.w, o[i][c][3]);
          }
        }
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float sum = sum16(l[i]);
    const int t = t0 + 4 * ty + i;
    if (t >= tokens) continue;
    const float inv = 1.0f / sum;  // sum >= 1: the row's own maximum contributes exp(0)
    float* dst = out + static_cast<std::size_t>(t) * q_dim + h * D + 4 * tx;
#pragma unroll
    for (int c = 0; c < NV; ++c)
      *reinterpret_cast<float4*>(dst + 64 * c) =
          make_float4(o[i][c][0] * inv, o[i][c][1] * inv, o[i][c][2] * inv, o[i][c][3] * inv);
  }
}

}  // namespace qforge::awq::cuda_detail::fwd
