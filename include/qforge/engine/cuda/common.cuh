// SPDX-License-Identifier: MIT
// Device helpers shared by the engine's CUDA kernels (matvec_blocks.cuh, matvec_awq.cuh, ops.cuh):
// warp sums, exact small-integer-to-float conversion, alignment-tolerant 16-byte loads, and
// programmatic dependent launch (PDL). Integers become floats through the exponent trick: the
// bits 0x4B0000qq are the float 2^23 + q, so one byte permute and one subtraction (both exact)
// replace an I2F conversion, which Hopper issues at a quarter of the FP32 rate and would cap a
// 4-bit matvec below memory speed; 4-bit codes skip even the subtraction (one_plus_q16). PDL: a
// kernel lets the next kernel of the stream be scheduled (at entry, or once its main loop is
// done), issues its weight loads (inputs no kernel writes), and only then waits for its
// predecessor, so back-to-back matvecs overlap one's tail with the next one's weight stream. The
// wait is a no-op for a kernel launched without the PDL attribute. Every FMA is spelled
// __fmaf_rn: qforge's CUDA objects are built with --fmad=false (for the encoders).
#pragma once

#if !defined(__CUDACC__)
#error "qforge/engine/cuda/*.cuh need nvcc"
#endif
// Warp shuffles with member masks need sm_70; griddepcontrol (PDL) is used from sm_90 only.
#define QFORGE_ENGINE_CUDA_MIN_ARCH 700
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < QFORGE_ENGINE_CUDA_MIN_ARCH
#error "qforge engine CUDA kernels need sm_70 or newer"
#endif

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"

namespace qforge::engine::cuda::detail {

// Lets the next kernel of the stream (launched with the PDL attribute) be scheduled now.
__device__ __forceinline__ void allow_dependents() noexcept {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Blocks until the previous kernel of the stream has finished and its writes are visible.
__device__ __forceinline__ void wait_for_inputs() noexcept {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Word i of v. i is a compile-time constant once the callers' loops are unrolled, so no array is
// indexed at run time (that would move the registers to local memory).
__device__ __forceinline__ std::uint32_t word_of(const uint4& v, int i) noexcept {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}
__device__ __forceinline__ std::uint32_t byte_of(std::uint32_t w, int k) noexcept {
  return (w >> (8 * k)) & 0xFFu;
}

__device__ __forceinline__ float warp_sum(float v) noexcept {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum over the CTA (blockDim.x a multiple of 32); every thread gets the total.
__device__ __forceinline__ float block_sum(float v, float* red32) noexcept {
  v = warp_sum(v);
  const int lane = static_cast<int>(threadIdx.x) & 31, w = static_cast<int>(threadIdx.x) >> 5;
  __syncthreads();  // red32 may still be read by a previous call
  if (lane == 0) red32[w] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x >> 5) ? red32[lane] : 0.0f;
  return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* red32) noexcept {
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int lane = static_cast<int>(threadIdx.x) & 31, w = static_cast<int>(threadIdx.x) >> 5;
  __syncthreads();
  if (lane == 0) red32[w] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x >> 5) ? red32[lane] : -INFINITY;
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Input prologues the matvec kernels fuse (engine/cuda/matvec.hpp's x_prologue::op).
inline constexpr int prologue_none = 0, prologue_rms_norm = 1, prologue_swiglu = 2;

__device__ __forceinline__ float silu_times(float g, float u) noexcept {
  return g / (1.0f + expf(-g)) * u;
}
__device__ __forceinline__ float4 swiglu4(float4 g, float4 u) noexcept {
  return make_float4(silu_times(g.x, u.x), silu_times(g.y, u.y), silu_times(g.z, u.z),
                     silu_times(g.w, u.w));
}
__device__ __forceinline__ float4 scale4(float4 w, float4 v, float s) noexcept {
  return make_float4(w.x * (v.x * s), w.y * (v.y * s), w.z * (v.z * s), w.w * (v.w * s));
}
__device__ __forceinline__ float sq4(float4 v) noexcept {
  return (v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w);
}
// v[t] for a run-time t < NT without indexing a register array.
template <int NT>
__device__ __forceinline__ float pick(const float (&v)[NT], int t) noexcept {
  float r = v[0];
#pragma unroll
  for (int i = 1; i < NT; ++i) r = t == i ? v[i] : r;
  return r;
}

inline constexpr float magic_2p23 = 8388608.0f;  // 2^23: the float whose low mantissa byte is 0

// Byte k (0..3) of w as the float 2^23 + byte: exact, one PRMT.
__device__ __forceinline__ float byte_magic(std::uint32_t w, int k) noexcept {
  return __uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540u | static_cast<unsigned>(k)));
}

// Byte k of w, which must hold 0x80 | (q << 3) for a 4-bit q, as the float 1 + q/16 (exact: q
// lands in the top mantissa bits under exponent 0). One PRMT and no subtraction: callers recover
// sum(q*x) = 16 * (sum((1 + q/16) * x) - sum(x)) from the sum of x they need anyway (mins, zeros).
__device__ __forceinline__ float one_plus_q16(std::uint32_t w, int k) noexcept {
  return __uint_as_float(__byte_perm(w, 0x3F000000u, 0x7044u | (static_cast<unsigned>(k) << 8)));
}
// The four low / high nibbles of w laid out for one_plus_q16.
__device__ __forceinline__ std::uint32_t low_nibbles_q16(std::uint32_t w) noexcept {
  return ((w << 3) & 0x78787878u) | 0x80808080u;
}
__device__ __forceinline__ std::uint32_t high_nibbles_q16(std::uint32_t w) noexcept {
  return ((w >> 1) & 0x78787878u) | 0x80808080u;
}

// Byte k of w as an unsigned value in float (exact).
__device__ __forceinline__ float byte_u(std::uint32_t w, int k) noexcept {
  return byte_magic(w, k) - magic_2p23;
}

// Byte k of w as a value minus `bias` (exact for |byte - bias| < 2^24): one PRMT and one FADD.
__device__ __forceinline__ float byte_minus(std::uint32_t w, int k, float bias) noexcept {
  return byte_magic(w, k) - (magic_2p23 + bias);
}

// 16 bytes at a 2-byte-aligned address (blocks of 210 or 34 bytes are only 2-byte aligned): five
// aligned 32-bit loads and funnel shifts, branch-free so lanes with either parity stay converged.
// Reads up to 2 bytes past the 16 when p is not 4-byte aligned; callers keep that inside the block.
__device__ __forceinline__ uint4 load16_a2(const std::uint8_t* p) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const auto* w = reinterpret_cast<const std::uint32_t*>(a & ~std::uintptr_t{3});
  const unsigned s = static_cast<unsigned>(a & 3u) * 8u;  // 0 or 16
  const std::uint32_t w0 = __ldg(w), w1 = __ldg(w + 1), w2 = __ldg(w + 2), w3 = __ldg(w + 3);
  const std::uint32_t w4 = s != 0 ? __ldg(w + 4) : 0u;
  return make_uint4(__funnelshift_r(w0, w1, s), __funnelshift_r(w1, w2, s),
                    __funnelshift_r(w2, w3, s), __funnelshift_r(w3, w4, s));
}

__device__ __forceinline__ uint4 load16(const std::uint8_t* p) noexcept {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

// Activations are written by the previous kernel, which under PDL may still be running when this
// one starts: they are read with ordinary L1-cached loads (ld.ca) after the wait, never through the
// non-coherent read-only path that __ldg and const __restrict__ pointers select.
__device__ __forceinline__ float4 load_x4(const float* p) noexcept {
  return __ldca(reinterpret_cast<const float4*>(p));
}

__device__ __forceinline__ float half_bits_to_float(std::uint32_t h) noexcept {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(h & 0xFFFFu)));
}

// acc + dot(the 4 floats of q, the 4 of x).
__device__ __forceinline__ float dot4(float q0, float q1, float q2, float q3, float4 x,
                                      float acc) noexcept {
  acc = __fmaf_rn(q0, x.x, acc);
  acc = __fmaf_rn(q1, x.y, acc);
  acc = __fmaf_rn(q2, x.z, acc);
  return __fmaf_rn(q3, x.w, acc);
}

__device__ __forceinline__ float sum4(float4 x) noexcept { return (x.x + x.y) + (x.z + x.w); }

// Launches kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when pdl is set
// (the device ignores it below sm_90), and checks the launch.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
            cudaStream_t stream, bool pdl, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  QFORGE_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

inline unsigned grid_dim(std::size_t items, std::size_t per_cta, const char* who) {
  const std::size_t n = (items + per_cta - 1) / per_cta;
  if (n == 0 || n > 0x7fffffffu)
    throw error(error::kind::argument, cat(who, ": grid of ", n, " blocks"));
  return static_cast<unsigned>(n);
}

}  // namespace qforge::engine::cuda::detail
