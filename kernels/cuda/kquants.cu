// SPDX-License-Identifier: MIT
// Compiled instantiations of the K-quant CUDA encoders (quant/q{2,3,4,5,6}_k/cuda.cuh) for
// qforge::kernels: the device-pointer entries kernels/cuda/runtime.cu calls when encode_rows runs
// on the cuda backend (unweighted paths; the headers also have weighted encoders and decoders).
// Built with --fmad=false like every qforge .cu file: the kernels run the host reference's code.
#include <cstddef>

#include "qforge/quant/q2_k/cuda.cuh"
#include "qforge/quant/q3_k/cuda.cuh"
#include "qforge/quant/q4_k/cuda.cuh"
#include "qforge/quant/q5_k/cuda.cuh"
#include "qforge/quant/q6_k/cuda.cuh"

namespace qforge::backend::detail {

void cuda_q2_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q2_k::encode_cuda(x, n, reinterpret_cast<quant::block_q2_k*>(y), stream);
}
void cuda_q3_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q3_k::encode_cuda(x, n, reinterpret_cast<quant::block_q3_k*>(y), stream);
}
void cuda_q4_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q4_k::encode_cuda(x, n, reinterpret_cast<quant::block_q4_k*>(y), stream);
}
void cuda_q5_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q5_k::encode_cuda(x, n, reinterpret_cast<quant::block_q5_k*>(y), stream);
}
void cuda_q6_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q6_k::encode_cuda(x, n, reinterpret_cast<quant::block_q6_k*>(y), stream);
}

}  // namespace qforge::backend::detail
