// SPDX-License-Identifier: MIT
// Compiled instantiations of the 32-weight block CUDA encoders (quant/{q4_0,q4_1,q5_0,q5_1,
// iq4_nl}/cuda.cuh) for qforge::kernels: the device-pointer entries kernels/cuda/runtime.cu calls
// when encode_rows runs on the cuda backend (unweighted paths; the headers also have weighted
// encoders and decoders). Built with --fmad=false like every qforge .cu file.
#include <cstddef>

#include "qforge/quant/iq4_nl/cuda.cuh"
#include "qforge/quant/q4_0/cuda.cuh"
#include "qforge/quant/q4_1/cuda.cuh"
#include "qforge/quant/q5_0/cuda.cuh"
#include "qforge/quant/q5_1/cuda.cuh"

namespace qforge::backend::detail {

void cuda_q4_0_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q4_0::encode_cuda(x, n, reinterpret_cast<quant::block_q4_0*>(y), stream);
}
void cuda_q4_1_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q4_1::encode_cuda(x, n, reinterpret_cast<quant::block_q4_1*>(y), stream);
}
void cuda_q5_0_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q5_0::encode_cuda(x, n, reinterpret_cast<quant::block_q5_0*>(y), stream);
}
void cuda_q5_1_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::q5_1::encode_cuda(x, n, reinterpret_cast<quant::block_q5_1*>(y), stream);
}
void cuda_iq4_nl_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream) {
  quant::iq4_nl::encode_cuda(x, n, reinterpret_cast<quant::block_iq4_nl*>(y), stream);
}

}  // namespace qforge::backend::detail
