// SPDX-License-Identifier: MIT
// Kernels behind engine/cuda/session_ops.hpp. Expansion is what the session's prefill runs before
// a cuBLAS product on a matrix our small-batch kernels do not serve well (more than a few dozen
// tokens) and what loading runs once for GGUF types without a CUDA matvec: F16 rows convert
// exactly, AWQ values are (q - z) * s in float as quant/awq/ref.hpp forms them (AutoAWQ's nibble
// order [0, 2, 4, 6, 1, 3, 5, 7]). The per-head RMSNorm matches detail::rms_norm of the CPU session
// up to the order of the float32 sum of squares (the CPU sums in double).
#pragma once
#include "qforge/engine/cuda/common.cuh"

namespace qforge::engine::cuda::detail {

__global__ void f16_to_f32_kernel(const __half* __restrict__ x, std::size_t n, float* y) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __half2float(x[i]);
}

// One thread per (input row k, pack of 8 outputs): w[o, k] for o = 8p .. 8p + 7.
__global__ void awq_expand_kernel(const std::uint32_t* __restrict__ qw,
                                  const std::uint32_t* __restrict__ qz,
                                  const __half* __restrict__ sc, int in, int out, int group,
                                  float* y) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int packs = out / 8;
  if (i >= static_cast<std::size_t>(in) * packs) return;
  const int k = static_cast<int>(i / packs), p = static_cast<int>(i % packs), g = k / group;
  const std::uint32_t q = qw[i], z = qz[static_cast<std::size_t>(g) * packs + p];
  constexpr int unpack[8] = {0, 4, 1, 5, 2, 6, 3, 7};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int o = 8 * p + j;
    const float qv = static_cast<float>((q >> (4 * unpack[j])) & 15u);
    const float zv = static_cast<float>((z >> (4 * unpack[j])) & 15u);
    const float s = __half2float(sc[static_cast<std::size_t>(g) * out + o]);
    y[static_cast<std::size_t>(o) * in + k] = __fmul_rn(qv - zv, s);
  }
}

__global__ void add_bias_kernel(float* y, std::size_t ldy, int n, const float* __restrict__ b) {
  allow_dependents();
  wait_for_inputs();
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[blockIdx.y * ldy + i] += b[i];
}

// grid (heads, tokens), one warp per head.
__global__ void head_rms_norm_kernel(float* x, std::size_t ldx, int D,
                                     const float* __restrict__ w, float eps) {
  allow_dependents();
  wait_for_inputs();
  float* h = x + blockIdx.y * ldx + static_cast<std::size_t>(blockIdx.x) * D;
  float ss = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < D; i += 32) ss = __fmaf_rn(h[i], h[i], ss);
  ss = warp_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  for (int i = static_cast<int>(threadIdx.x); i < D; i += 32) h[i] = w[i] * (h[i] * inv);
}

}  // namespace qforge::engine::cuda::detail
