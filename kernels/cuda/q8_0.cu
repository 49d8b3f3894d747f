// SPDX-License-Identifier: MIT
// Compiled instantiation of quant/q8_0/cuda.cuh for qforge::kernels: the device-pointer entry that
// kernels/cuda/runtime.cu calls when encode_rows runs on the cuda backend.
#include <cstddef>

#include "qforge/quant/q8_0/cuda.cuh"

namespace qforge::backend::detail {

void cuda_q8_0_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q8_0::encode_cuda(x, n, reinterpret_cast<quant::block_q8_0*>(y), stream);
}

}  // namespace qforge::backend::detail
