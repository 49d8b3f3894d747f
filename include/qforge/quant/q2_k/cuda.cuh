// SPDX-License-Identifier: MIT
// Q2_K encode/decode on NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_q2_K_ref, and
// quantize_row_q2_K_impl with an importance matrix) for finite input: one thread per 256-weight
// super-block runs ref.hpp's own encode_block_plain / encode_block_weighted (see
// detail/cuda_blocks.cuh for why that is exact and what the including TU must be built with). The
// decoder spells dequantize_row_q2_K's (d*sc)*q - dmin*m with __fmul_rn / __fsub_rn. Host wrappers
// take device pointers and a stream; they throw qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/q2_k/ref.hpp"

namespace qforge::quant::q2_k {

struct cuda_traits {
  using block = block_q2_k;
  static constexpr int elems = qk_k;
  static constexpr const char* name = "q2_k";
  static constexpr bool weighted_needs_row_stat = false;
  __device__ static void encode(const float* x, block& y) noexcept {
    ref_detail::encode_block_plain(x, y);
  }
  __device__ static void encode_weighted(const float* x, const float* qw, float,
                                         block& y) noexcept {
    ref_detail::encode_block_weighted(x, qw, y);
  }
  // Weight j = 128h + 32s + 16half + l: sub-block 8h + 2s + half, 2 bits at bit 2s of
  // qs[32h + 16half + l].
  __device__ static float decode_one(const block& b, int j) noexcept {
    const int h = j / 128, s = (j % 128) / 32, k = j % 32;
    const std::uint8_t sc = b.scales[8 * h + 2 * s + k / 16];
    const float dl = __fmul_rn(fp16_to_fp32(b.d), static_cast<float>(sc & 0xF));
    const float ml = __fmul_rn(fp16_to_fp32(b.dmin), static_cast<float>(sc >> 4));
    const int q = (b.qs[32 * h + k] >> (2 * s)) & 3;
    return __fsub_rn(__fmul_rn(dl, static_cast<float>(q)), ml);
  }
};

// n floats (n % 256 == 0) at device x into n / 256 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_q2_k* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 256 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_q2_k* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 256 * nb floats at device y.
inline void decode_cuda(const block_q2_k* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::q2_k
