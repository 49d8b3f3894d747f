// SPDX-License-Identifier: MIT
// Q6_K encode/decode on NVIDIA GPUs, same bytes as ref.hpp (ggml's quantize_row_q6_K_ref, and
// quantize_row_q6_K_impl with an importance matrix) for finite input: one thread per 256-weight
// super-block runs ref.hpp's own encode_block_ref (see detail/cuda_blocks.cuh for why that is
// exact and what the including TU must be built with). The decoder spells dequantize_row_q6_K's
// (d*sc)*(q - 32) with __fmul_rn. Host wrappers take device pointers and a stream; they throw
// qforge::error.
#pragma once
#include "qforge/quant/detail/cuda_blocks.cuh"
#include "qforge/quant/q6_k/ref.hpp"

namespace qforge::quant::q6_k {

struct cuda_traits {
  using block = block_q6_k;
  static constexpr int elems = qk_k;
  static constexpr const char* name = "q6_k";
  static constexpr bool weighted_needs_row_stat = false;
  __device__ static void encode(const float* x, block& y) noexcept {
    encode_block_ref(x, nullptr, y);
  }
  __device__ static void encode_weighted(const float* x, const float* qw, float,
                                         block& y) noexcept {
    encode_block_ref(x, qw, y);
  }
  // Weight j = 128h + 32k + l: low nibble from ql[64h + l (+32 for odd k)] (high nibble for
  // k >= 2), 2 high bits from qh[32h + l] at bit 2k, scale sc[8h + l/16 + 2k].
  __device__ static float decode_one(const block& b, int j) noexcept {
    const int h = j / 128, k = (j % 128) / 32, l = j % 32;
    const std::uint8_t lo = b.ql[64 * h + l + 32 * (k & 1)];
    const int nib = k >= 2 ? lo >> 4 : lo & 0xF;
    const int q = (nib | (((b.qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
    const float dsc =
        __fmul_rn(fp16_to_fp32(b.d), static_cast<float>(b.scales[8 * h + l / 16 + 2 * k]));
    return __fmul_rn(dsc, static_cast<float>(q));
  }
};

// n floats (n % 256 == 0) at device x into n / 256 blocks at device y, asynchronously on stream.
inline void encode_cuda(const float* x, std::size_t n, block_q6_k* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks<cuda_traits>(x, n, y, stream);
}

// rows x cols floats (cols % 256 == 0) with cols importance weights at device imatrix.
inline void encode_cuda_weighted(const float* x, std::size_t rows, std::size_t cols,
                                 const float* imatrix, block_q6_k* y,
                                 cudaStream_t stream = nullptr) {
  cuda_detail::encode_blocks_weighted<cuda_traits>(x, rows, cols, imatrix, y, stream);
}

// nb blocks at device x into 256 * nb floats at device y.
inline void decode_cuda(const block_q6_k* x, std::size_t nb, float* y,
                        cudaStream_t stream = nullptr) {
  cuda_detail::decode_blocks<cuda_traits>(x, nb, y, stream);
}

}  // namespace qforge::quant::q6_k
