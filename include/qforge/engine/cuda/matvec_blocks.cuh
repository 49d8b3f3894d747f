// SPDX-License-Identifier: MIT
// The persistent matvec kernel over GGUF blocks (units in matvec_units.cuh, float activations, and
// matvec_q8_units.cuh, 8-bit activations for single tokens) and its launch: each CTA stages x in
// shared memory through the fused prologue, then its warps walk their row groups unit by unit
// with the next unit's loads in flight (see matvec_units.cuh for the work split).
#pragma once
#include "qforge/engine/cuda/matvec_q8_units.cuh"

namespace qforge::engine::cuda::detail {

// The float staging: NT tokens of U::padded(cols) floats, through the prologue (RMSNorm over the
// row, or SwiGLU of [gate | up]).
template <class U, int NT>
__device__ x_tile stage_f32(float4* smem, const float* x, std::size_t ldx, int cols, int prologue,
                            const float* __restrict__ norm_w, float eps, float* red) {
  const x_tile xt{reinterpret_cast<const float*>(smem), U::padded(cols)};
  auto* xs = reinterpret_cast<float*>(smem);
  const int c4 = cols / 4;
  float ss[NT] = {};
  for (int i = static_cast<int>(threadIdx.x); i < NT * c4; i += blockDim.x) {
    const int t = i / c4, c = 4 * (i % c4);
    float4 v = load_x4(x + t * ldx + c);
    if (prologue == prologue_swiglu) {
      v = swiglu4(v, load_x4(x + t * ldx + cols + c));
    } else if (prologue == prologue_rms_norm) {
      const float q = sq4(v);
#pragma unroll
      for (int k = 0; k < NT; ++k) ss[k] += k == t ? q : 0.0f;
    }
    *reinterpret_cast<float4*>(xs + t * xt.stride + U::padded(c)) = v;
  }
  if (prologue == prologue_rms_norm) {
    float inv[NT];
#pragma unroll
    for (int k = 0; k < NT; ++k)  // block_sum's barriers also publish the stores above
      inv[k] = 1.0f / sqrtf(block_sum(ss[k], red) / static_cast<float>(cols) + eps);
    for (int i = static_cast<int>(threadIdx.x); i < NT * c4; i += blockDim.x) {
      const int t = i / c4, c = 4 * (i % c4);
      auto* p = reinterpret_cast<float4*>(xs + t * xt.stride + U::padded(c));
      *p = scale4(__ldg(reinterpret_cast<const float4*>(norm_w + c)), *p, pick(inv, t));
    }
  }
  return xt;
}

// Persistent: warp w of the grid takes row groups w, w + (all warps), ...; a group is R rows
// (rows past the end repeat the last row and are not written). Dynamic shared memory: NT tokens
// of U::padded(cols) floats. trigger_early: allow the next kernel at entry, else after the loop.
template <class U, int R, int NT>
__global__ void __launch_bounds__(32 * matvec_warps)
    matvec_kernel(const std::uint8_t* __restrict__ w, std::size_t row_bytes, int rows, int cols,
                  const float* x, std::size_t ldx, float* y, std::size_t ldy, int accumulate,
                  int trigger_early, int prologue, const float* __restrict__ norm_w, float eps) {
  extern __shared__ float4 x_smem[];
  __shared__ float red[32];
  if (trigger_early) allow_dependents();
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int units = cols / unit_elems, iters = (units + 31) / 32;
  const int groups = (rows + R - 1) / R;
  const int stride = static_cast<int>(gridDim.x) * matvec_warps;
  int g = static_cast<int>(blockIdx.x) * matvec_warps + static_cast<int>(threadIdx.x) / 32;
  int it = 0;

  const auto load_item = [&](int gg, int ii, typename U::raw(&dst)[R]) {
    const int u = lane + 32 * ii;
    if (u >= units) return;
#pragma unroll
    for (int r = 0; r < R; ++r)
      dst[r] = U::load(w + static_cast<std::size_t>(min(gg * R + r, rows - 1)) * row_bytes, u);
  };
  typename U::raw cur[R];
  if (g < groups) load_item(g, 0, cur);
  wait_for_inputs();  // weights never change; x and y (accumulate) come from earlier kernels

  // x into shared memory (coalesced 16-byte reads) through the prologue, as floats or as the
  // CPU engine's 8-bit codes, then every warp reads it from there.
  const auto xt = [&] {
    if constexpr (U::int8_x) return stage_q8<U>(x_smem, x, cols, prologue, norm_w, eps, red);
    else return stage_f32<U, NT>(x_smem, x, ldx, cols, prologue, norm_w, eps, red);
  }();
  __syncthreads();

  float acc[R][NT] = {};
  while (g < groups) {
    int g2 = g, it2 = it + 1;
    if (it2 == iters) g2 += stride, it2 = 0;
    typename U::raw nxt[R];
    if (g2 < groups) load_item(g2, it2, nxt);
    const int u = lane + 32 * it;
    if (u < units) U::template dot<R, NT>(cur, u, xt, acc);
    if (it2 == 0) {  // group g done
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          const float v = warp_sum(acc[r][t]);
          acc[r][t] = 0.0f;
          if (lane == 0 && g * R + r < rows) {
            float* out = y + t * ldy + (g * R + r);
            *out = accumulate ? *out + v : v;
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) cur[r] = nxt[r];
    g = g2, it = it2;
  }
  if (!trigger_early) allow_dependents();
}

template <class U>
constexpr std::size_t x_smem_bytes(std::size_t cols, int nt) noexcept {
  if constexpr (U::int8_x)
    return q8_codes_bytes<U>(cols) + cols / 16 * sizeof(int) + cols / 256 * sizeof(float);
  else
    return static_cast<std::size_t>(nt) * static_cast<std::size_t>(U::padded(static_cast<int>(cols))) *
           sizeof(float);
}

inline int sm_count() {
  static const int n = [] {
    int v = 0;
    QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0));
    return v;
  }();
  return n;
}

template <class U, int R, int NT>
void launch_matvec(const std::uint8_t* w, std::size_t row_bytes, std::size_t rows,
                   std::size_t cols, const float* x, std::size_t ldx, float* y, std::size_t ldy,
                   bool accumulate, cudaStream_t stream, bool pdl, bool trigger_early,
                   int prologue, const float* norm_w, float eps) {
  const auto kernel = matvec_kernel<U, R, NT>;
  static const bool opted_in = [&] {  // dynamic shared memory above 48 KiB, once per instance
    QFORGE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(max_smem)));
    return true;
  }();
  (void)opted_in;
  const std::size_t smem = x_smem_bytes<U>(cols, NT);
  int per_sm = 0;
  QFORGE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, 32 * matvec_warps, smem));
  const std::size_t groups = (rows + R - 1) / R;
  const std::size_t want = (groups + matvec_warps - 1) / matvec_warps;
  const std::size_t fit = static_cast<std::size_t>(sm_count()) * static_cast<std::size_t>(std::max(per_sm, 1));
  const unsigned grid = grid_dim(std::min(want, fit), 1, U::name);
  launch(kernel, dim3(grid), dim3(32 * matvec_warps), smem, stream, pdl, w, row_bytes,
         static_cast<int>(rows), static_cast<int>(cols), x, ldx, y, ldy, accumulate ? 1 : 0,
         trigger_early ? 1 : 0, prologue, norm_w, eps);
}

}  // namespace qforge::engine::cuda::detail
