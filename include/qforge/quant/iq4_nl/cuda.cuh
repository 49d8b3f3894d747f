// SPDX-License-Identifier: MIT
// IQ4_NL encode/decode on NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_iq4_nl_impl as
// quantize_iq4_nl runs it, with or without importance weights) for finite input: one thread per
// 32-weight block (see detail/cuda_blocks.cuh for why that is exact and what the including TU must
// be built with). nvcc cannot read ref.hpp's host constexpr table `kvalues` from device code, so
// ref.hpp's block search runs here over a copy of the table built from its constant elements; the
// GPU tests hold the two to the same bytes. Decoder:
// d * kvalues[q], one __fmul_rn. Host wrappers take device pointers and a stream; they throw
// qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/iq4_nl/ref.hpp"

namespace qforge::quant::iq4_nl {

namespace cuda_impl {

// A copy of the table in registers, built from its constant elements, and ggml's binary search.
struct levels {
  std::int8_t v[16];
  __device__ int index(float x) const noexcept { return best_index_int8(16, v, x); }
  __device__ float value(int i) const noexcept { return static_cast<float>(v[i]); }
};

__device__ inline levels device_levels() noexcept {
  return {{kvalues[0], kvalues[1], kvalues[2], kvalues[3], kvalues[4], kvalues[5], kvalues[6],
           kvalues[7], kvalues[8], kvalues[9], kvalues[10], kvalues[11], kvalues[12], kvalues[13],
           kvalues[14], kvalues[15]}};
}

// ref.hpp's block search, the very body, over the device table; qw null = unweighted.
__device__ inline void encode_block(const float* x, const float* qw, block_iq4_nl& y) noexcept {
  encode_block_with(device_levels(), x, qw, y);
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
