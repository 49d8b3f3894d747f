// SPDX-License-Identifier: MIT
// W4A16 matvec / small-batch matmul straight on AutoAWQ's GEMM layout (quant/awq/pack.hpp):
// qweight I32 [in, out/8], qzeros I32 [in/group, out/8] (nibble i of a word holds column
// 8c + [0,2,4,6,1,3,5,7][i]), scales F16 [in/group, out]; w[o, k] = (q - z) * s. Computes
// y[t, o] (+)= sum_k w[o, k] x[t, k] in float32 as s * (sum q*x - z * sum x) per group, the CPU
// engine's formula (quant/awq/matmul.hpp), without ever forming the FP16 matrix; sum(q*x) comes
// from the exponent trick of common.cuh (one byte permute and one FMA per weight).
// The layout is input-major, so a thread owns one int32 column (8 outputs) and walks k: a warp's
// 32 lanes read 128 contiguous bytes per k, and every lane needs the same x[k] (a broadcast).
// With only out/8 columns there are too few threads for the memory system, so K is split: warp w
// of a CTA takes 32 consecutive k (inside one group, so one zero word and one 16-byte scale load
// per lane), its 32 weight words all in flight before the PDL wait; the CTA's 8 warps (256 k) are
// summed in shared memory, and CTAs along K (gridDim.y) meet in a workspace where the last CTA
// to arrive for a column tile (an atomic ticket) adds the partials in a fixed order, so the
// result is deterministic and needs no memset. A workspace serves one stream at a time.
#pragma once
#include "qforge/engine/cuda/common.cuh"

namespace qforge::engine::cuda::detail {

inline constexpr int awq_warps = 8;      // k-slices per CTA
inline constexpr int awq_k_slice = 32;   // k per warp (the least); the group size must be a multiple
inline constexpr int awq_cols_per_cta = 32 * 8;

// Staged: x goes through shared memory and the prologue; otherwise (no prologue) each warp reads
// its 32 inputs straight from global memory as broadcasts, which keeps one-token launches at 40
// registers, 6 CTAs per SM (the staging code costs 24 more, and occupancy showed in the timings).
// KS: k per warp, 32 or 64 (awq_k_per_warp): 64 halves the K-splits and doubles each thread's
// loads in flight. Tiled: qweight repacked column-tile-major, [out / 256][in][32] words (needs
// out % 256 == 0), so a warp's rows are contiguous (tests/engine/cuda_engine_probe.cu times both).
template <int NT, bool Staged, int KS, bool Tiled = false>
__global__ void __launch_bounds__(32 * awq_warps, NT == 1 && !Staged ? (KS == 16 ? 8 : KS == 32 ? 6 : 3) : 0)
    awq_matvec_kernel(const std::uint32_t* __restrict__ qweight,
                      const std::uint32_t* __restrict__ qzeros,
                      const std::uint16_t* __restrict__ scales, int K, int N, int group,
                      const float* x, std::size_t ldx, float* y,
                      std::size_t ldy, int accumulate, float* __restrict__ ws,
                      unsigned* __restrict__ tickets, int trigger_early, int prologue,
                      const float* __restrict__ norm_w, float eps) {
  if (trigger_early) allow_dependents();
  __shared__ __align__(16) float red[awq_warps][awq_cols_per_cta];
  __shared__ __align__(16) float xsl[Staged ? NT : 1][Staged ? awq_warps * KS : 4];
  __shared__ float red32[32];
  __shared__ int last;
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int n8 = N / 8;
  const int c = static_cast<int>(blockIdx.x) * 32 + lane;
  const int k0 = (static_cast<int>(blockIdx.y) * awq_warps + warp) * KS;
  const bool k_ok = k0 < K;
  // Out-of-range lanes and warps load a valid address and contribute zero.
  const int cc = c < n8 ? c : n8 - 1;
  const int kk = k_ok ? k0 : K - KS;

  std::uint32_t q[KS];
  if constexpr (Tiled) {  // constant offsets from one pointer
    const std::uint32_t* qp = qweight + (static_cast<std::size_t>(blockIdx.x) * K + kk) * 32 + lane;
#pragma unroll
    for (int i = 0; i < KS; ++i) q[i] = __ldg(qp + 32 * i);
  } else {
#pragma unroll
    for (int i = 0; i < KS; ++i) q[i] = __ldg(qweight + static_cast<std::size_t>(kk + i) * n8 + cc);
  }
  const int g = kk / group;
  const std::uint32_t z = __ldg(qzeros + static_cast<std::size_t>(g) * n8 + cc);
  const uint4 s = __ldg(reinterpret_cast<const uint4*>(scales + static_cast<std::size_t>(g) * N + 8 * cc));
  wait_for_inputs();

  // The CTA's 256 inputs per token into shared memory, through the prologue (RMSNorm needs the
  // whole row's mean square: every CTA reads it, from L2); warps then read them as broadcasts.
  if constexpr (Staged) {
    const int kb = static_cast<int>(blockIdx.y) * awq_warps * KS;
    constexpr int per_token = awq_warps * KS / 4;
    float inv[NT];
    if (prologue == prologue_rms_norm) {
      float ss[NT] = {};
      const int k4 = K / 4;
      for (int i = static_cast<int>(threadIdx.x); i < NT * k4; i += blockDim.x) {
        const int t = i / k4;
        const float q = sq4(load_x4(x + t * ldx + 4 * (i % k4)));
#pragma unroll
        for (int k = 0; k < NT; ++k) ss[k] += k == t ? q : 0.0f;
      }
#pragma unroll
      for (int k = 0; k < NT; ++k)
        inv[k] = 1.0f / sqrtf(block_sum(ss[k], red32) / static_cast<float>(K) + eps);
    }
    for (int i = static_cast<int>(threadIdx.x); i < NT * per_token; i += blockDim.x) {
      const int t = i / per_token, o = 4 * (i % per_token), k = kb + o;
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (k < K) {
        v = load_x4(x + t * ldx + k);
        if (prologue == prologue_swiglu)
          v = swiglu4(v, load_x4(x + t * ldx + K + k));
        else if (prologue == prologue_rms_norm)
          v = scale4(__ldg(reinterpret_cast<const float4*>(norm_w + k)), v, pick(inv, t));
      }
      *reinterpret_cast<float4*>(&xsl[t][o]) = v;
    }
    __syncthreads();
  }

  // acc[t][j]: sum over k of (1 + q/16) * x for column 8c + j (one_plus_q16). Low nibbles of
  // bytes 0..3 are columns 0, 4, 1, 5; high ones 2, 6, 3, 7.
  float acc[NT][8] = {}, xs[NT] = {};
#pragma unroll
  for (int i = 0; i < KS / 4; ++i) {
    float4 xv[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if constexpr (Staged) xv[t] = *reinterpret_cast<const float4*>(&xsl[t][warp * KS + 4 * i]);
      else xv[t] = load_x4(x + t * ldx + kk + 4 * i);
      xs[t] += sum4(xv[t]);
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const std::uint32_t w = q[4 * i + e];
      const std::uint32_t lo = low_nibbles_q16(w), hi = high_nibbles_q16(w);
      const float v0 = one_plus_q16(lo, 0), v4 = one_plus_q16(lo, 1), v1 = one_plus_q16(lo, 2),
                  v5 = one_plus_q16(lo, 3);
      const float v2 = one_plus_q16(hi, 0), v6 = one_plus_q16(hi, 1), v3 = one_plus_q16(hi, 2),
                  v7 = one_plus_q16(hi, 3);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const float xk = e == 0 ? xv[t].x : e == 1 ? xv[t].y : e == 2 ? xv[t].z : xv[t].w;
        acc[t][0] = __fmaf_rn(v0, xk, acc[t][0]);
        acc[t][1] = __fmaf_rn(v1, xk, acc[t][1]);
        acc[t][2] = __fmaf_rn(v2, xk, acc[t][2]);
        acc[t][3] = __fmaf_rn(v3, xk, acc[t][3]);
        acc[t][4] = __fmaf_rn(v4, xk, acc[t][4]);
        acc[t][5] = __fmaf_rn(v5, xk, acc[t][5]);
        acc[t][6] = __fmaf_rn(v6, xk, acc[t][6]);
        acc[t][7] = __fmaf_rn(v7, xk, acc[t][7]);
      }
    }
  }
  if (!trigger_early) allow_dependents();  // only the reduction is left
  float zf[8], sf[8];
  {
    const std::uint32_t zl = z & 0x0F0F0F0Fu, zh = (z >> 4) & 0x0F0F0F0Fu;
    zf[0] = byte_u(zl, 0), zf[4] = byte_u(zl, 1), zf[1] = byte_u(zl, 2), zf[5] = byte_u(zl, 3);
    zf[2] = byte_u(zh, 0), zf[6] = byte_u(zh, 1), zf[3] = byte_u(zh, 2), zf[7] = byte_u(zh, 3);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const std::uint32_t pair = word_of(s, j);
      sf[2 * j] = half_bits_to_float(pair);
      sf[2 * j + 1] = half_bits_to_float(pair >> 16);
    }
  }

  const int col = static_cast<int>(threadIdx.x);  // column of the tile this thread finishes
  const int n = static_cast<int>(blockIdx.x) * awq_cols_per_cta + col;
  float part[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float v[8];
#pragma unroll
    // s * (sum(q*x) - z*sum(x)) with sum(q*x) = 16 * (acc - sum(x)).
    for (int j = 0; j < 8; ++j) v[j] = k_ok ? sf[j] * (16.0f * acc[t][j] - (16.0f + zf[j]) * xs[t]) : 0.0f;
    auto* dst = reinterpret_cast<float4*>(&red[warp][lane * 8]);
    dst[0] = make_float4(v[0], v[1], v[2], v[3]);
    dst[1] = make_float4(v[4], v[5], v[6], v[7]);
    __syncthreads();
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < awq_warps; ++w) sum += red[w][col];
    part[t] = sum;
    __syncthreads();
  }

  if (gridDim.y == 1) {
    if (n < N)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        float* out = y + t * ldy + n;
        *out = accumulate ? *out + part[t] : part[t];
      }
    return;
  }
  if (n < N)
#pragma unroll
    for (int t = 0; t < NT; ++t)
      ws[(static_cast<std::size_t>(blockIdx.y) * NT + t) * N + n] = part[t];
  __threadfence();  // the partials are visible device-wide before the ticket is taken
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&tickets[blockIdx.x], 1u) == gridDim.y - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  if (n < N)
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float sum = 0.0f;
      for (unsigned b = 0; b < gridDim.y; ++b)
        sum += __ldcg(ws + (static_cast<std::size_t>(b) * NT + t) * N + n);  // L2, not a stale L1
      float* out = y + t * ldy + n;
      *out = accumulate ? *out + sum : sum;
    }
  if (threadIdx.x == 0) tickets[blockIdx.x] = 0;  // ready for the next launch on this stream
}

// CTAs along K for a K-row matrix, and the workspace floats / tickets a launch needs.
inline unsigned awq_k_splits(std::size_t K, int ks = awq_k_slice) {
  return grid_dim(K, std::size_t{awq_warps} * static_cast<std::size_t>(ks), "awq matvec");
}
// k per warp: 64 where the group and K allow it (every 64 k then share one group) and x needs no
// prologue, else 32. Measured on the H100 (bench/RESULTS.md): 64 lifts a plain matvec by 1-4 points
// of bandwidth, but the staged (prologue) kernel needs 122 registers at 64 against 64 at 32 and
// decode got 5 % slower with it.
inline int awq_k_per_warp(std::size_t K, std::size_t group, int prologue, int wanted = 0) {
  const bool can64 = group % 64 == 0 && K % 64 == 0;
  if (wanted == 32 || !can64) return awq_k_slice;
  if (wanted == 64) return 64;
  return prologue == prologue_none ? 64 : awq_k_slice;
}
inline unsigned awq_col_tiles(std::size_t N) {
  return grid_dim(N, awq_cols_per_cta, "awq matvec");
}

template <int NT>
void launch_awq(const std::uint32_t* qweight, const std::uint32_t* qzeros,
                const std::uint16_t* scales, std::size_t K, std::size_t N, std::size_t group,
                const float* x, std::size_t ldx, float* y, std::size_t ldy, bool accumulate,
                float* ws, unsigned* tickets, cudaStream_t stream, bool pdl, bool trigger_early,
                int prologue, const float* norm_w, float eps, int k_per_warp = 0) {
  const int ks = awq_k_per_warp(K, group, prologue, k_per_warp);
  const dim3 grid(awq_col_tiles(N), awq_k_splits(K, ks));
  const auto kernel = ks == 64 ? (prologue == prologue_none ? awq_matvec_kernel<NT, false, 64>
                                                            : awq_matvec_kernel<NT, true, 64>)
                               : (prologue == prologue_none ? awq_matvec_kernel<NT, false, 32>
                                                            : awq_matvec_kernel<NT, true, 32>);
  launch(kernel, grid, dim3(32 * awq_warps), 0, stream, pdl, qweight, qzeros,
         scales, static_cast<int>(K), static_cast<int>(N), static_cast<int>(group), x, ldx, y,
         ldy, accumulate ? 1 : 0, ws, tickets, trigger_early ? 1 : 0, prologue, norm_w, eps);
}

}  // namespace qforge::engine::cuda::detail
