// SPDX-License-Identifier: MIT
// The elementwise, normalisation and statistics kernels of awq::cuda_backend's forward half
// (kernels/cuda/awq_forward.cu; attention is in attention.cuh). Each follows the CPU code it
// stands for operation by operation, with plain float arithmetic (the objects are built with
// --fmad=false, so a * b + c stays a multiply and an add, as on the CPU):
//   rms_norm_kernel        engine::detail::rms_norm: sum of squares in double, inv = 1/sqrt(ss/n
//                          + eps) in double cast to float, y = w * (x * inv);
//   qk_norm_rope_kernel    block_runner::self_attn's per-head part: + bias (linear_forward), the
//                          optional qk RMSNorm, then RoPE with the host-computed cos/sin tables;
//   swiglu_kernel          detail::silu(g) * u;
//   channel_partial_kernel quant::awq::channel_abs_mean / detail::channel_abs_max / the importance
//                          matrix's sum of squares, in double per chunk of rows (then summed over
//                          the chunks in chunk order by channel_combine_kernel);
//   row_mse_kernel         detail::mse of one row pair, in double.
// Only the summation order of the double sums differs from the CPU. Included by awq_forward.cu
// only; kernels are static so a second includer could not clash.
#pragma once

#if !defined(__CUDACC__)
#error "qforge/awq/cuda/*.cuh need nvcc"
#endif

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "qforge/engine/cuda/common.cuh"

namespace qforge::awq::cuda_detail::fwd {

inline constexpr int fwd_threads = 256;
inline constexpr int rope_warps = 8;         // heads per CTA of qk_norm_rope_kernel
inline constexpr int max_head_dim = 256;

__device__ __forceinline__ double warp_sum_d(double v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the CTA (blockDim.x a multiple of 32); every thread gets the total.
__device__ __forceinline__ double block_sum_d(double v, double* red32) {
  v = warp_sum_d(v);
  const int lane = static_cast<int>(threadIdx.x) & 31, w = static_cast<int>(threadIdx.x) >> 5;
  if (lane == 0) red32[w] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x >> 5) ? red32[lane] : 0.0;
  return warp_sum_d(v);
}

__device__ __forceinline__ std::size_t global_index() {
  return static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// One CTA per row of x [rows, n]; y may be x.
static __global__ void __launch_bounds__(fwd_threads)
    rms_norm_kernel(const float* x, const float* __restrict__ w, float* y, int n, float eps) {
  __shared__ double red[32];
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * n;
  double ss = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += fwd_threads) {
    const float v = x[base + i];
    ss += static_cast<double>(v) * v;
  }
  ss = block_sum_d(ss, red);
  const float inv =
      static_cast<float>(1.0 / sqrt(ss / static_cast<double>(n) + static_cast<double>(eps)));
  for (int i = static_cast<int>(threadIdx.x); i < n; i += fwd_threads)
    y[base + i] = w[i] * (x[base + i] * inv);
}

// One warp per (token, head) over the n_heads q heads then the n_kv k heads, in place: adds the
// bias (null: none), applies the head RMSNorm (null weights: none), rotates. The head is staged in
// shared memory because a rotation pair spans lanes. cs/sn: [positions, D/2].
static __global__ void __launch_bounds__(32 * rope_warps)
    qk_norm_rope_kernel(float* q, float* k, const float* __restrict__ q_bias,
                        const float* __restrict__ k_bias, const float* __restrict__ q_norm,
                        const float* __restrict__ k_norm, const float* __restrict__ cs,
                        const float* __restrict__ sn, const int* __restrict__ pos, int tokens,
                        int n_heads, int n_kv, int D, int neox, float eps) {
  __shared__ float buf[rope_warps][max_head_dim];
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int heads = n_heads + n_kv;
  const std::size_t job = static_cast<std::size_t>(blockIdx.x) * rope_warps + warp;
  if (job >= static_cast<std::size_t>(tokens) * heads) return;  // whole warps only
  const int t = static_cast<int>(job / heads), hh = static_cast<int>(job % heads);
  const bool is_k = hh >= n_heads;
  const int head = is_k ? hh - n_heads : hh;
  float* x = is_k ? k + (static_cast<std::size_t>(t) * n_kv + head) * D
                  : q + (static_cast<std::size_t>(t) * n_heads + head) * D;
  const float* bias = is_k ? k_bias : q_bias;
  const float* nw = is_k ? k_norm : q_norm;
  float* sh = buf[warp];
  double ss = 0.0;
  for (int d = lane; d < D; d += 32) {
    float v = x[d];
    if (bias != nullptr) v = v + bias[head * D + d];
    sh[d] = v;
    ss += static_cast<double>(v) * v;
  }
  if (nw != nullptr) {
    ss = warp_sum_d(ss);
    const float inv =
        static_cast<float>(1.0 / sqrt(ss / static_cast<double>(D) + static_cast<double>(eps)));
    for (int d = lane; d < D; d += 32) sh[d] = nw[d] * (sh[d] * inv);
  }
  __syncwarp();
  const int half = D / 2;
  const float* c = cs + static_cast<std::size_t>(pos[t]) * half;
  const float* s = sn + static_cast<std::size_t>(pos[t]) * half;
  for (int i = lane; i < half; i += 32) {
    const int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
    const float a0 = sh[i0], a1 = sh[i1];
    x[i0] = a0 * c[i] - a1 * s[i];
    x[i1] = a1 * c[i] + a0 * s[i];
  }
}

// y [count / cols, cols] += bias per column.
static __global__ void bias_add_kernel(float* y, const float* __restrict__ bias, std::size_t count,
                                       std::size_t cols) {
  const std::size_t i = global_index();
  if (i < count) y[i] = y[i] + bias[i % cols];
}

static __global__ void add_kernel(const float* a, const float* b, float* out, std::size_t count) {
  const std::size_t i = global_index();
  if (i < count) out[i] = a[i] + b[i];
}

// out = silu(g) * u (out may be g).
static __global__ void swiglu_kernel(const float* g, const float* __restrict__ u, float* out,
                                     std::size_t count) {
  const std::size_t i = global_index();
  if (i < count) out[i] = engine::cuda::detail::silu_times(g[i], u[i]);
}

// silu(g) * u rounded to fp16: the down product's operand under f16 math, when nobody needs the
// float values (the same bits as swiglu_kernel followed by to_half_kernel).
static __global__ void swiglu_half_kernel(const float* __restrict__ g, const float* __restrict__ u,
                                          __half* __restrict__ out, std::size_t count) {
  const std::size_t i = global_index();
  if (i < count) out[i] = __float2half_rn(engine::cuda::detail::silu_times(g[i], u[i]));
}

static __global__ void to_half_kernel(const float* __restrict__ x, __half* __restrict__ y,
                                      std::size_t count) {
  const std::size_t i = global_index();
  if (i < count) y[i] = __float2half_rn(x[i]);
}

// dst [rows, n] = x [rows[i], n].
static __global__ void gather_rows_kernel(const float* __restrict__ x,
                                          const int* __restrict__ rows, std::size_t n,
                                          float* __restrict__ dst, std::size_t count) {
  const std::size_t i = global_index();
  if (i < count) dst[i] = x[static_cast<std::size_t>(rows[i / n]) * n + i % n];
}

// One CTA per stat row: out[i] = mean over c of (double(a) - b)^2 on row rows[i] (rows null:
// row i).
static __global__ void __launch_bounds__(fwd_threads)
    row_mse_kernel(const float* __restrict__ a, const float* __restrict__ b,
                   const int* __restrict__ rows, int n, double* __restrict__ out) {
  __shared__ double red[32];
  const std::size_t r = rows != nullptr ? static_cast<std::size_t>(rows[blockIdx.x]) : blockIdx.x;
  const float* pa = a + r * n;
  const float* pb = b + r * n;
  double s = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < n; i += fwd_threads) {
    const double d = static_cast<double>(pa[i]) - pb[i];
    s += d * d;
  }
  s = block_sum_d(s, red);
  if (threadIdx.x == 0) out[blockIdx.x] = s / static_cast<double>(n);
}

enum class channel_op { abs_sum, abs_max, sq_sum };

// Thread per channel, grid.y chunks of `per_chunk` rows (rows[i], or i when rows is null) of
// x [., n]: part[chunk, c] = the chunk's sum of |x|, max of |x| or sum of x^2, in double.
template <channel_op Op>
static __global__ void __launch_bounds__(fwd_threads)
    channel_partial_kernel(const float* __restrict__ x, std::size_t n,
                           const int* __restrict__ rows, int nrows, int per_chunk,
                           double* __restrict__ part) {
  const std::size_t c = global_index();
  if (c >= n) return;
  const int r0 = static_cast<int>(blockIdx.y) * per_chunk;
  const int r1 = min(r0 + per_chunk, nrows);
  double acc = 0.0;
  for (int i = r0; i < r1; ++i) {
    const std::size_t t = rows != nullptr ? static_cast<std::size_t>(rows[i]) : i;
    const float v = x[t * n + c];
    if constexpr (Op == channel_op::abs_sum) acc += fabsf(v);
    else if constexpr (Op == channel_op::abs_max) acc = fmax(acc, static_cast<double>(fabsf(v)));
    else acc += static_cast<double>(v) * v;
  }
  part[static_cast<std::size_t>(blockIdx.y) * n + c] = acc;
}

// out[c] = the chunks' partials combined in chunk order (sum, or max for abs_max).
static __global__ void channel_combine_kernel(const double* __restrict__ part, std::size_t n,
                                              int chunks, int is_max, double* __restrict__ out) {
  const std::size_t c = global_index();
  if (c >= n) return;
  double acc = 0.0;
  for (int k = 0; k < chunks; ++k) {
    const double v = part[static_cast<std::size_t>(k) * n + c];
    acc = is_max ? fmax(acc, v) : acc + v;
  }
  out[c] = acc;
}

}  // namespace qforge::awq::cuda_detail::fwd
