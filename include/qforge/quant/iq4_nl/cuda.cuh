// SPDX-License-Identifier: MIT
// IQ4_NL encode/decode on NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_iq4_nl_impl as
// quantize_iq4_nl runs it, with or without importance weights) for finite input: one thread per
// 32-weight block (see detail/cuda_blocks.cuh for why that is exact and what the including TU must
// be built with). nvcc cannot read ref.hpp's host constexpr table `kvalues` from device code, so
// the block search below is ref.hpp's encode_block_ref statement for statement with a copy of the
// table built from its constant elements; the GPU tests hold the two to the same bytes. Decoder:
// d * kvalues[q], one __fmul_rn. Host wrappers take device pointers and a stream; they throw
// qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/iq4_nl/ref.hpp"

namespace qforge::quant::iq4_nl {

namespace cuda_impl {

struct levels {
  std::int8_t v[16];
};

__device__ inline levels device_levels() noexcept {
  return {{kvalues[0], kvalues[1], kvalues[2], kvalues[3], kvalues[4], kvalues[5], kvalues[6],
           kvalues[7], kvalues[8], kvalues[9], kvalues[10], kvalues[11], kvalues[12], kvalues[13],
           kvalues[14], kvalues[15]}};
}

// ref.hpp's encode_block_ref with the table passed in; qw null = unweighted.
__device__ inline void encode_block(const float* x, const float* qw, block_iq4_nl& y) noexcept {
  const levels lv = device_levels();
  const std::int8_t* kv = lv.v;
  constexpr int n = qk4_nl;
  float sigma2 = 0.0f;
  for (int j = 0; j < n; ++j) sigma2 += x[j] * x[j];
  sigma2 *= 2.0f / static_cast<float>(n);

  float weight[n];
  if (qw != nullptr) {
    for (int j = 0; j < n; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  } else {
    for (int j = 0; j < n; ++j) weight[j] = x[j] * x[j];
  }
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }

  float scale = 0.0f;
  if (!(amax < detail::group_max_eps)) {
    const float v0 = static_cast<float>(kv[0]);
    float d = -max / v0;
    float id = 1.0f / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < n; ++j) {
      const float q = static_cast<float>(kv[best_index_int8(16, kv, id * x[j])]);
      sumqx += weight[j] * q * x[j];
      sumq2 += weight[j] * q * q;
    }
    d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = static_cast<float>(itry + kv[0]) / max;
      sumqx = sumq2 = 0.0f;
      for (int j = 0; j < n; ++j) {
        const float q = static_cast<float>(kv[best_index_int8(16, kv, id * x[j])]);
        sumqx += weight[j] * q * x[j];
        sumq2 += weight[j] * q * q;
      }
      if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scale = d;
  }

  y.d = fp32_to_fp16(scale);
  const float id = scale != 0.0f ? 1.0f / scale : 0.0f;
  std::uint8_t L[n];
  for (int j = 0; j < n; ++j) L[j] = static_cast<std::uint8_t>(best_index_int8(16, kv, id * x[j]));
  detail::pack_q4(L, y.qs);
}

}  // namespace cuda_impl

struct cuda_traits {
  using block = block_iq4_nl;
  static constexpr int elems = qk4_nl;
  static constexpr const char* name = "iq4_nl";
  static constexpr bool weighted_needs_row_stat = false;
  __device__ static void encode(const float* x, block& y) noexcept {
    cuda_impl::encode_block(x, nullptr, y);
  }
  __device__ static void encode_weighted(const float* x, const float* qw, float,
                                         block& y) noexcept {
    cuda_impl::encode_block(x, qw, y);
  }
  __device__ static float decode_one(const block& b, int j) noexcept {
    const cuda_impl::levels lv = cuda_impl::device_levels();
    const std::uint8_t byte = b.qs[j % 16];
    const int q = j < 16 ? byte & 0x0F : byte >> 4;
    return __fmul_rn(fp16_to_fp32(b.d), static_cast<float>(lv.v[q]));
  }
};

// n floats (n % 32 == 0) at device x into n / 32 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_iq4_nl* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 32 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_iq4_nl* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 32 * nb floats at device y.
inline void decode_cuda(const block_iq4_nl* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::iq4_nl
