// SPDX-License-Identifier: MIT
// Q8_0 encode/decode kernels for NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_q8_0_ref).
// A group of 32 / Vec lanes owns one block, each lane loading Vec consecutive floats (Vec = 4 uses
// 16-byte loads, so a warp reads four whole blocks in one coalesced 512-byte sweep). amax is a
// shuffle max, which is order-independent without NaNs; a block holding a NaN is redone in
// ggml's sequential order. The divisions and the multiply are spelled __fdiv_rn / __frcp_rn /
// __fmul_rn so the result is the IEEE one whatever --fmad or -prec-div the caller builds with.
// Host wrappers take device pointers and a stream and throw qforge::error (argument, cuda).
#pragma once

#if !defined(__CUDACC__)
#error "q8_0/cuda.cuh needs nvcc"
#endif
// Warp shuffles with a member mask (sm_70's independent thread scheduling) are required.
#define QFORGE_Q8_0_CUDA_MIN_ARCH 700
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < QFORGE_Q8_0_CUDA_MIN_ARCH
#error "qforge q8_0 CUDA kernels need sm_70 or newer"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/q8_0/ref.hpp"

namespace qforge::quant::q8_0 {

namespace cuda_detail {

inline constexpr int threads_per_cta = 256;

template <int Vec>
__global__ void __launch_bounds__(threads_per_cta)
    encode_kernel(const float* __restrict__ x, block_q8_0* __restrict__ y, std::size_t nb) {
  static_assert(Vec == 1 || Vec == 4, "one or four floats per lane");
  constexpr int lanes = qk8_0 / Vec;  // lanes per block, a power of two <= 32
  const std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::size_t b = t / lanes;
  const int lane = static_cast<int>(t % lanes);
  // A whole group is in or out of range (the grid covers nb * lanes threads rounded up), but every
  // lane of the warp must reach the shuffles, so out-of-range lanes compute on zeros and store nothing.
  const bool active = b < nb;
  const float* p = x + b * qk8_0 + lane * Vec;

  float v[Vec];
  if (active) {
    if constexpr (Vec == 4) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      v[0] = *p;
    }
  } else {
    for (int k = 0; k < Vec; ++k) v[k] = 0.0f;
  }

  float amax = 0.0f;
  bool nan = false;
  for (int k = 0; k < Vec; ++k) {
    amax = fmaxf(amax, fabsf(v[k]));
    nan |= v[k] != v[k];
  }
  for (int off = lanes / 2; off > 0; off /= 2)
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off, lanes));
  if (__any_sync(0xffffffffu, nan)) {  // warp-uniform, so every lane reaches the shuffles
    // Rare: a block holding a NaN redoes its max in ggml's order (its MAX is not symmetric in NaNs).
    int group_nan = nan ? 1 : 0;
    for (int off = lanes / 2; off > 0; off /= 2)
      group_nan |= __shfl_xor_sync(0xffffffffu, group_nan, off, lanes);
    if (group_nan != 0 && active) {
      amax = 0.0f;
      for (int j = 0; j < qk8_0; ++j) amax = amax_step(amax, x[b * qk8_0 + j]);
    }
  }
  if (!active) return;

  const float d = __fdiv_rn(amax, 127.0f);
  const float id = d != 0.0f ? __frcp_rn(d) : 0.0f;
  if (lane == 0) y[b].d = fp32_to_fp16(d);

  std::int8_t q[Vec];
  for (int k = 0; k < Vec; ++k) q[k] = int8_like_x86(roundf(__fmul_rn(v[k], id)));
  if constexpr (Vec == 4) {
    // qs starts 2 bytes into a 34-byte block: 2-byte aligned, so two 16-bit stores.
    auto* out = reinterpret_cast<std::uint16_t*>(y[b].qs + lane * 4);
    out[0] = static_cast<std::uint16_t>(static_cast<std::uint8_t>(q[0]) |
                                        (static_cast<std::uint8_t>(q[1]) << 8));
    out[1] = static_cast<std::uint16_t>(static_cast<std::uint8_t>(q[2]) |
                                        (static_cast<std::uint8_t>(q[3]) << 8));
  } else {
    y[b].qs[lane] = q[0];
  }
}

// Vec consecutive outputs per thread; Vec = 4 stores a float4, so y must be 16-byte aligned.
template <int Vec>
__global__ void __launch_bounds__(threads_per_cta)
    decode_kernel(const block_q8_0* __restrict__ x, float* __restrict__ y, std::size_t n) {
  const std::size_t i = (static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * Vec;
  if (i >= n) return;
  const block_q8_0& blk = x[i / qk8_0];
  const float d = fp16_to_fp32(blk.d);
  const int j = static_cast<int>(i % qk8_0);
  if constexpr (Vec == 4) {
    *reinterpret_cast<float4*>(y + i) = make_float4(
        __fmul_rn(static_cast<float>(blk.qs[j]), d), __fmul_rn(static_cast<float>(blk.qs[j + 1]), d),
        __fmul_rn(static_cast<float>(blk.qs[j + 2]), d), __fmul_rn(static_cast<float>(blk.qs[j + 3]), d));
  } else {
    y[i] = __fmul_rn(static_cast<float>(blk.qs[j]), d);
  }
}

inline unsigned grid_for(std::size_t threads) {
  const std::size_t ctas = (threads + threads_per_cta - 1) / threads_per_cta;
  if (ctas > 0x7fffffffu)
    throw error(error::kind::argument, cat("q8_0 cuda: ", threads, " threads exceed one grid"));
  return static_cast<unsigned>(ctas);
}

}  // namespace cuda_detail

// Encodes n floats (n % 32 == 0) at device pointer x into n / 32 blocks at device pointer y,
// asynchronously on `stream`. Vec = 4 needs x 16-byte aligned; encode_cuda picks it when it is.
template <int Vec>
void encode_cuda_vec(const float* x, std::size_t n, block_q8_0* y, cudaStream_t stream) {
  if (n % qk8_0 != 0)
    throw error(error::kind::argument, cat("q8_0 cuda encode: ", n, " values, not a multiple of 32"));
  const std::size_t nb = n / qk8_0;
  if (nb == 0) return;
  cuda_detail::encode_kernel<Vec><<<cuda_detail::grid_for(nb * (qk8_0 / Vec)),
                                    cuda_detail::threads_per_cta, 0, stream>>>(x, y, nb);
  QFORGE_CUDA_CHECK_LAUNCH();
}

inline void encode_cuda(const float* x, std::size_t n, block_q8_0* y,
                        cudaStream_t stream = nullptr) {
  if (reinterpret_cast<std::uintptr_t>(x) % 16 == 0) encode_cuda_vec<4>(x, n, y, stream);
  else encode_cuda_vec<1>(x, n, y, stream);
}

// Decodes nb blocks at device pointer x into 32 * nb floats at device pointer y. Finite results are
// the reference's bits; NaNs come out as the GPU's canonical NaN, not x86's (payload and sign differ).
inline void decode_cuda(const block_q8_0* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  const std::size_t n = nb * qk8_0;
  if (n == 0) return;
  if (reinterpret_cast<std::uintptr_t>(y) % 16 == 0)
    cuda_detail::decode_kernel<4><<<cuda_detail::grid_for(n / 4), cuda_detail::threads_per_cta, 0,
                                    stream>>>(x, y, n);
  else
    cuda_detail::decode_kernel<1><<<cuda_detail::grid_for(n), cuda_detail::threads_per_cta, 0,
                                    stream>>>(x, y, n);
  QFORGE_CUDA_CHECK_LAUNCH();
}

}  // namespace qforge::quant::q8_0
