// SPDX-License-Identifier: MIT
// The decode step's small CUDA kernels around the matvecs, following the CPU session
// (engine/forward.hpp) operation for operation: RMSNorm (x * (1/sqrt(mean(x^2) + eps)) * w),
// RoPE from a cos/sin table computed on the host exactly as the CPU computes its angles (so the
// rotation itself is bit-identical under --fmad=false), the K/V cache store, causal grouped-query
// attention over the float32 cache (one CTA per head and token: scores in shared memory, then a
// softmax and the weighted sum of values, coalesced over the head dimension; decode over long
// caches splits each head over several CTAs instead, attention_split.cuh), SwiGLU, and an F16
// embedding look-up. Norm, attention and SwiGLU can also write an fp16 copy of their output for
// the cuBLAS FP16 path. The position of the first new token is read from device memory, so one
// captured CUDA graph serves every decode step (advance_kernel moves it). Every kernel waits for
// its predecessor (PDL, common.cuh) before reading anything.
#pragma once
#include <cmath>

#include "qforge/engine/cuda/common.cuh"

namespace qforge::engine::cuda::detail {

inline constexpr int ops_threads = 256;

// One CTA per token.
__global__ void __launch_bounds__(ops_threads)
    rms_norm_kernel(const float* x, const float* __restrict__ w, int n, float eps,
                    float* y, __half* yh) {
  allow_dependents();
  wait_for_inputs();
  __shared__ float red[32];
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * n;
  float ss = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += blockDim.x) ss = __fmaf_rn(x[base + i], x[base + i], ss);
  ss = block_sum(ss, red);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  for (int i = static_cast<int>(threadIdx.x); i < n; i += blockDim.x) {
    const float v = w[i] * (x[base + i] * inv);
    y[base + i] = v;
    if (yh != nullptr) yh[base + i] = __float2half_rn(v);
  }
}

// Thread per rotation pair of every q and k head (then one per v element): rotates q and k in
// place at position pos + token and stores k and v in the caches ([position][n_kv * D]).
__global__ void rope_store_kernel(float* q, std::size_t ldq, float* k,
                                  std::size_t ldk, const float* v, std::size_t ldv,
                                  int n_heads, int n_kv, int D, int neox,
                                  const float2* __restrict__ cs, const int* pos,
                                  float* kc, float* vc) {
  allow_dependents();
  wait_for_inputs();
  const int t = static_cast<int>(blockIdx.y);
  const int p = *pos + t, half = D / 2, kv_dim = n_kv * D;
  const int idx = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int pairs = (n_heads + n_kv) * half;
  if (idx < pairs) {
    const int head = idx / half, i = idx % half;
    const bool is_k = head >= n_heads;
    float* h = is_k ? k + t * ldk + (head - n_heads) * D : q + t * ldq + head * D;
    const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
    const float2 c = cs[static_cast<std::size_t>(p) * half + i];
    const float a0 = h[i0], a1 = h[i1];
    const float r0 = a0 * c.x - a1 * c.y, r1 = a1 * c.x + a0 * c.y;
    h[i0] = r0;
    h[i1] = r1;
    if (is_k) {
      float* dst = kc + static_cast<std::size_t>(p) * kv_dim + (head - n_heads) * D;
      dst[i0] = r0;
      dst[i1] = r1;
    }
  } else if (idx < pairs + kv_dim) {
    const int j = idx - pairs;
    vc[static_cast<std::size_t>(p) * kv_dim + j] = v[t * ldv + j];
  }
}

// Attention of one query head over cache positions [j0, j1) (j1 > j0), the whole CTA
// (ops_threads threads, head_dim <= ops_threads) taking part: s (shared) receives the j1 - j0
// scores. Scores: each warp takes 4 positions at a time, lanes over the head dimension (coalesced
// rows, 4 x D/32 independent loads in flight per lane). Values: the CTA splits into
// ops_threads / D groups over positions, each thread owning one dimension. Returns the slice's
// softmax statistics (max score, sum of exp(score - max)) and, in o for thread d < D, the
// unnormalised output sum_j exp(s_j - max) v_j[d].
struct slice_stats {
  float max, sum, o;
};
__device__ __forceinline__ slice_stats attend_slice(const float* qh, const float* kc,
                                                    const float* vc, int kvh, int kv_dim, int D,
                                                    int j0, int j1, float scale, float* s,
                                                    float* red, float* part) noexcept {
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  constexpr int warps = ops_threads / 32, max_e = ops_threads / 32;
  const int n = j1 - j0;
  kc += static_cast<std::size_t>(j0) * kv_dim;
  vc += static_cast<std::size_t>(j0) * kv_dim;
  float qr[max_e];
#pragma unroll
  for (int e = 0; e < max_e; ++e) qr[e] = lane + 32 * e < D ? qh[lane + 32 * e] : 0.0f;
  for (int jj = 4 * warp; jj < n; jj += 4 * warps) {
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      if (jj + u >= n) continue;
      const float* kj = kc + static_cast<std::size_t>(jj + u) * kv_dim + kvh * D;
#pragma unroll
      for (int e = 0; e < max_e; ++e)
        if (lane + 32 * e < D) a[u] = __fmaf_rn(qr[e], kj[lane + 32 * e], a[u]);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const float v = warp_sum(a[u]);
      if (lane == 0 && jj + u < n) s[jj + u] = v * scale;
    }
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int j = static_cast<int>(threadIdx.x); j < n; j += blockDim.x) mx = fmaxf(mx, s[j]);
  mx = block_max(mx, red);
  float sum = 0.0f;
  for (int j = static_cast<int>(threadIdx.x); j < n; j += blockDim.x) {
    const float e = expf(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  sum = block_sum(sum, red);  // its barriers also publish s[]
  const int G = ops_threads / D, gi = static_cast<int>(threadIdx.x) / D, d = static_cast<int>(threadIdx.x) % D;
  float o = 0.0f;
  if (gi < G) {
    const float* vd = vc + kvh * D + d;
    float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
    int j = gi;
    for (; j + 3 * G < n; j += 4 * G) {
      o0 = __fmaf_rn(s[j], vd[static_cast<std::size_t>(j) * kv_dim], o0);
      o1 = __fmaf_rn(s[j + G], vd[static_cast<std::size_t>(j + G) * kv_dim], o1);
      o2 = __fmaf_rn(s[j + 2 * G], vd[static_cast<std::size_t>(j + 2 * G) * kv_dim], o2);
      o3 = __fmaf_rn(s[j + 3 * G], vd[static_cast<std::size_t>(j + 3 * G) * kv_dim], o3);
    }
    for (; j < n; j += G) o0 = __fmaf_rn(s[j], vd[static_cast<std::size_t>(j) * kv_dim], o0);
    o = (o0 + o1) + (o2 + o3);
  }
  part[threadIdx.x] = o;
  __syncthreads();
  slice_stats r{mx, sum, 0.0f};
  if (static_cast<int>(threadIdx.x) < D)
    for (int k = 0; k < G; ++k) r.o += part[k * D + threadIdx.x];
  return r;
}

// grid (n_heads, tokens), ops_threads threads, head_dim <= ops_threads; dynamic shared memory:
// one float per attended position. One CTA walks all positions of its head (attend_slice).
__global__ void __launch_bounds__(ops_threads)
    attention_kernel(const float* q, std::size_t ldq, const float* kc, const float* vc,
                     int n_heads, int n_kv, int D, const int* pos, float scale, float* out,
                     std::size_t ldo, __half* outh) {
  allow_dependents();
  wait_for_inputs();
  extern __shared__ float s[];
  __shared__ float red[32];
  __shared__ float part[ops_threads];
  const int h = static_cast<int>(blockIdx.x), t = static_cast<int>(blockIdx.y);
  const int kvh = h / (n_heads / n_kv);
  const int n = *pos + t + 1;
  const slice_stats r = attend_slice(q + t * ldq + h * D, kc, vc, kvh, n_kv * D, D, 0, n, scale, s, red, part);
  if (static_cast<int>(threadIdx.x) < D) {
    const float v = r.o / r.sum;
    out[t * ldo + h * D + threadIdx.x] = v;
    if (outh != nullptr) outh[t * ldo + h * D + threadIdx.x] = __float2half_rn(v);
  }
}

// gate_up holds [gate | up] per token (2F floats): out = silu(gate) * up.
__global__ void swiglu_kernel(const float* gu, int F, std::size_t count,
                              float* out, __half* outh) {
  allow_dependents();
  wait_for_inputs();
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const std::size_t t = i / F, f = i % F;
  const float g = gu[t * 2 * F + f], u = gu[t * 2 * F + F + f];
  const float v = g / (1.0f + expf(-g)) * u;
  out[i] = v;
  if (outh != nullptr) outh[i] = __float2half_rn(v);
}

__global__ void embed_f16_kernel(const __half* __restrict__ table, int cols,
                                 const int* token, float* x,
                                 __half* xh) {
  allow_dependents();
  wait_for_inputs();
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= cols) return;
  const __half v = table[static_cast<std::size_t>(*token) * cols + i];
  x[i] = __half2float(v);
  if (xh != nullptr) xh[i] = v;
}

__global__ void advance_kernel(int* pos, int first, int limit) {
  allow_dependents();
  wait_for_inputs();
  if (threadIdx.x == 0) *pos = *pos + 1 < limit ? *pos + 1 : first;
}

__global__ void to_f16_kernel(const float* x, std::size_t n, __half* y) {
  allow_dependents();
  wait_for_inputs();
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2half_rn(x[i]);
}

}  // namespace qforge::engine::cuda::detail
