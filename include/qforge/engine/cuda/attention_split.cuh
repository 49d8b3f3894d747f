// SPDX-License-Identifier: MIT
// Split-KV ("flash-decoding") decode attention for long contexts (sm_90). attention_kernel
// (ops.cuh) runs one CTA per query head and walks every cached position in it: 32 CTAs for a
// 7B model, so past a few hundred positions a decode step waits on 32 SMs streaming the cache.
// Here a cluster of S CTAs (S <= 8, the portable cluster size) serves each head: CTA r attends
// positions [r * P, (r + 1) * P) with attend_slice (P = max(64, ceil(n / S)), n read from device
// memory at run time, so one captured graph serves every step and short contexts use one CTA of
// the cluster: the others find empty slices), keeping its slice's max score m_r, sum of
// exp(s - m_r) l_r and unnormalised output o_r on chip. CTA 0 then merges them through
// distributed shared memory in rank order, the log-sum-exp combine:
//   M = max_r m_r,  out[d] = sum_r o_r[d] exp(m_r - M) / sum_r l_r exp(m_r - M),
// so there is no workspace, no second kernel and no atomic, and the bits do not depend on timing.
// The result equals the one-CTA kernel's up to float rounding of the regrouped sums (each slice
// rescales once by exp(m_r - M)); tests/engine/cuda_engine_main.cu holds both to a relative L2
// error of 1e-5 against a double-precision reference and the two to 1e-5 of each other; with a
// single active slice the bits are the one-CTA kernel's.
#pragma once
#include "qforge/engine/cuda/cluster.cuh"
#include "qforge/engine/cuda/ops.cuh"

namespace qforge::engine::cuda::detail {

inline constexpr int attn_max_splits = 8;  // CTAs per head: the portable cluster size
inline constexpr int attn_min_slice = 64;  // fewer positions per CTA do not pay for the merge

// Positions per CTA for n positions over `splits` CTAs (a multiple of 4).
__host__ __device__ constexpr int attn_slice(int n, int splits) noexcept {
  const int per = (n + splits - 1) / splits;
  return ((per > attn_min_slice ? per : attn_min_slice) + 3) / 4 * 4;
}

// grid (S, n_heads, tokens) in clusters of (S, 1, 1); ops_threads threads; dynamic shared memory:
// attn_slice(max_positions, S) floats.
__global__ void __launch_bounds__(ops_threads)
    attention_split_kernel(const float* q, std::size_t ldq, const float* kc, const float* vc,
                           int n_heads, int n_kv, int D, const int* pos, float scale, float* out,
                           std::size_t ldo, __half* outh) {
  allow_dependents();
  wait_for_inputs();
  extern __shared__ float s[];
  __shared__ float red[32];
  __shared__ float part[ops_threads];
  __shared__ float o_mine[ops_threads];  // this CTA's unnormalised output, D <= ops_threads
  __shared__ float stats[2];             // this CTA's max score and sum of exponentials
  const int r = static_cast<int>(cluster_rank()), S = static_cast<int>(gridDim.x);
  const int h = static_cast<int>(blockIdx.y), t = static_cast<int>(blockIdx.z);
  const int kvh = h / (n_heads / n_kv);
  const int n = *pos + t + 1, per = attn_slice(n, S);
  const int j0 = min(n, r * per), j1 = min(n, j0 + per);
  slice_stats st{-INFINITY, 0.0f, 0.0f};
  if (j1 > j0)  // CTA-uniform: attend_slice's barriers are reached by all threads or none
    st = attend_slice(q + t * ldq + h * D, kc, vc, kvh, n_kv * D, D, j0, j1, scale, s, red, part);
  if (static_cast<int>(threadIdx.x) < D) o_mine[threadIdx.x] = st.o;
  if (threadIdx.x == 0) stats[0] = st.max, stats[1] = st.sum;
  cluster_sync();  // every CTA's slice results are visible cluster-wide
  if (r == 0 && static_cast<int>(threadIdx.x) < D) {
    const int used = min(S, (n + per - 1) / per);  // slices with positions; slice 0 always has some
    float M = stats[0];
    for (int k = 1; k < used; ++k) M = fmaxf(M, ld_cluster(&stats[0], static_cast<unsigned>(k)));
    float L = 0.0f, O = 0.0f;
    for (int k = 0; k < used; ++k) {
      const float mk = k == 0 ? stats[0] : ld_cluster(&stats[0], static_cast<unsigned>(k));
      const float lk = k == 0 ? stats[1] : ld_cluster(&stats[1], static_cast<unsigned>(k));
      const float ok = k == 0 ? o_mine[threadIdx.x] : ld_cluster(&o_mine[threadIdx.x], static_cast<unsigned>(k));
      const float w = used == 1 ? 1.0f : expf(mk - M);
      L = __fmaf_rn(lk, w, L);
      O = __fmaf_rn(ok, w, O);
    }
    const float v = O / L;
    out[t * ldo + h * D + threadIdx.x] = v;
    if (outh != nullptr) outh[t * ldo + h * D + threadIdx.x] = __float2half_rn(v);
  }
  cluster_sync();  // CTA 0's reads of the others' shared memory are done before they exit
}

}  // namespace qforge::engine::cuda::detail
