// SPDX-License-Identifier: MIT
// Q3_K encode/decode on NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_q3_K_ref, and
// quantize_row_q3_K_impl with an importance matrix) for finite input: one thread per 256-weight
// super-block runs ref.hpp's own encode_block_plain / encode_block_weighted (see
// detail/cuda_blocks.cuh for why that is exact and what the including TU must be built with). The
// decoder spells dequantize_row_q3_K's (d*(sc-32))*(q - 4*!hbit) with __fmul_rn. Host wrappers
// take device pointers and a stream; they throw qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/q3_k/ref.hpp"

namespace qforge::quant::q3_k {

struct cuda_traits {
  using block = block_q3_k;
  static constexpr int elems = qk_k;
  static constexpr const char* name = "q3_k";
  static constexpr bool weighted_needs_row_stat = false;
  __device__ static void encode(const float* x, block& y) noexcept {
    ref_detail::encode_block_plain(x, y);
  }
  __device__ static void encode_weighted(const float* x, const float* qw, float,
                                         block& y) noexcept {
    ref_detail::encode_block_weighted(x, qw, y);
  }
  // Weight j = 128h + 32s + 16half + l belongs to sub-block 8h + 2s + half; its 2 low bits are at
  // bit 2s of qs[32h + 16half + l] and its third bit at bit 4h + s of hmask[16half + l].
  __device__ static float decode_one(const block& b, int j) noexcept {
    const int h = j / 128, s = (j % 128) / 32, k = j % 32;
    const float dl =
        __fmul_rn(fp16_to_fp32(b.d), static_cast<float>(scale_of(b, 8 * h + 2 * s + k / 16)));
    const int q = (b.qs[32 * h + k] >> (2 * s)) & 3;
    const int hi = (b.hmask[k] >> (4 * h + s)) & 1;
    return __fmul_rn(dl, static_cast<float>(q - (hi ? 0 : 4)));
  }
};

// n floats (n % 256 == 0) at device x into n / 256 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_q3_k* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 256 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_q3_k* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 256 * nb floats at device y.
inline void decode_cuda(const block_q3_k* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::q3_k
