// SPDX-License-Identifier: MIT
// Q4_1 encode/decode on NVIDIA GPUs, same bytes as ref.hpp for finite input: one thread per
// 32-weight block runs ref.hpp's encode_block_ref (quantize_row_q4_1_ref); with an importance
// matrix, the body of encode_row_weighted_ref (quantize_row_q4_1_impl) per block, the row's mean
// square coming from a pass before it (see detail/cuda_blocks.cuh for why that is exact and what
// the including TU must be built with). Decoder: q * d + m, __fmul_rn then __fadd_rn. Host
// wrappers take device pointers and a stream; they throw qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/q4_1/ref.hpp"

namespace qforge::quant::q4_1 {

struct cuda_traits {
  using block = block_q4_1;
  static constexpr int elems = qk4_1;
  static constexpr const char* name = "q4_1";
  static constexpr bool weighted_needs_row_stat = true;
  __device__ static void encode(const float* x, block& y) noexcept { encode_block_ref(x, y); }
  __device__ static void encode_weighted(const float* x, const float* qw, float sigma2,
                                         block& y) noexcept {
    float weight[qk4_1];
    std::uint8_t L[qk4_1], laux[qk4_1];
    detail::legacy_weights(x, qw, sigma2, weight);
    float min = 0.0f;
    const float d =
        detail::make_qkx3_quants(qk4_1, 15, x, weight, L, &min, laux, -0.9f, 0.05f, 36, false);
    y.d = fp32_to_fp16(d);
    y.m = fp32_to_fp16(-min);
    detail::pack_q4(L, y.qs);
  }
  __device__ static float decode_one(const block& b, int j) noexcept {
    const std::uint8_t byte = b.qs[j % 16];
    const int q = j < 16 ? byte & 0x0F : byte >> 4;
    return __fadd_rn(__fmul_rn(static_cast<float>(q), fp16_to_fp32(b.d)), fp16_to_fp32(b.m));
  }
};

// n floats (n % 32 == 0) at device x into n / 32 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_q4_1* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 32 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_q4_1* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 32 * nb floats at device y.
inline void decode_cuda(const block_q4_1* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::q4_1
