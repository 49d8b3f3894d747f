// SPDX-License-Identifier: MIT
// Q5_0 encode/decode on NVIDIA GPUs, same bytes as ref.hpp for finite input: one thread per
// 32-weight block runs ref.hpp's encode_block_ref (quantize_row_q5_0_ref); with an importance
// matrix, the body of encode_row_weighted_ref (quantize_row_q5_0_impl) per block, the row's mean
// square coming from a pass before it (see detail/cuda_blocks.cuh for why that is exact and what
// the including TU must be built with). Decoder: (q - 16) * d, one __fmul_rn. Host wrappers take
// device pointers and a stream; they throw qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/q5_0/ref.hpp"

namespace qforge::quant::q5_0 {

struct cuda_traits {
  using block = block_q5_0;
  static constexpr int elems = qk5_0;
  static constexpr const char* name = "q5_0";
  static constexpr bool weighted_needs_row_stat = true;
  __device__ static void encode(const float* x, block& y) noexcept { encode_block_ref(x, y); }
  __device__ static void encode_weighted(const float* x, const float* qw, float sigma2,
                                         block& y) noexcept {
    float weight[qk5_0];
    std::int8_t L[qk5_0];
    detail::legacy_weights(x, qw, sigma2, weight);
    y.d = fp32_to_fp16(detail::make_qx_quants(qk5_0, 16, x, L, 1, weight));
    std::uint8_t q[qk5_0];
    for (int j = 0; j < qk5_0; ++j) q[j] = static_cast<std::uint8_t>(L[j]);
    detail::pack_q5(q, y.qs, y.qh);
  }
  __device__ static float decode_one(const block& b, int j) noexcept {
    const std::uint8_t byte = b.qs[j % 16];
    const int hi = static_cast<int>((detail::load_qh(b.qh) >> j) & 1u) << 4;
    const int q = ((j < 16 ? byte & 0x0F : byte >> 4) | hi) - 16;
    return __fmul_rn(static_cast<float>(q), fp16_to_fp32(b.d));
  }
};

// n floats (n % 32 == 0) at device x into n / 32 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_q5_0* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 32 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_q5_0* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 32 * nb floats at device y.
inline void decode_cuda(const block_q5_0* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::q5_0
