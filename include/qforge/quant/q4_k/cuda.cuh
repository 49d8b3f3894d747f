// SPDX-License-Identifier: MIT
// Q4_K encode/decode on NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_q4_K_ref, and
// quantize_row_q4_K_impl with an importance matrix) for finite input: one thread per 256-weight
// super-block runs ref.hpp's own encode_block_ref / encode_block_impl (see
// detail/cuda_blocks.cuh for why that is exact and what the including TU must be built with).
// The decoder spells dequantize_row_q4_K's two roundings, (d*sc)*q - dmin*m, with __fmul_rn /
// __fsub_rn. Host wrappers take device pointers and a stream; they throw qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/q4_k/ref.hpp"

namespace qforge::quant::q4_k {

struct cuda_traits {
  using block = block_q4_k;
  static constexpr int elems = qk_k;
  static constexpr const char* name = "q4_k";
  static constexpr bool weighted_needs_row_stat = false;
  __device__ static void encode(const float* x, block& y) noexcept { encode_block_ref(x, y); }
  __device__ static void encode_weighted(const float* x, const float* qw, float,
                                         block& y) noexcept {
    encode_block_impl(x, qw, y);
  }
  __device__ static float decode_one(const block& b, int j) noexcept {
    const int is = j / 32;
    std::uint8_t sc, m;
    detail::get_scale_min_k4(is, b.scales, &sc, &m);
    const float d1 = __fmul_rn(fp16_to_fp32(b.d), static_cast<float>(sc));
    const float m1 = __fmul_rn(fp16_to_fp32(b.dmin), static_cast<float>(m));
    const std::uint8_t byte = b.qs[32 * (is / 2) + j % 32];
    const int q = (is & 1) ? byte >> 4 : byte & 0xF;
    return __fsub_rn(__fmul_rn(d1, static_cast<float>(q)), m1);
  }
};

// n floats (n % 256 == 0) at device x into n / 256 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_q4_k* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 256 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_q4_k* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 256 * nb floats at device y.
inline void decode_cuda(const block_q4_k* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::q4_k
