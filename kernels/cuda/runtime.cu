// SPDX-License-Identifier: MIT
// The cuda backend as quant::encode_rows sees it (declared in backend/dispatch.hpp, which .cu files
// must not include because it pulls in xsimd): device probe, and encoding of host buffers by staging
// them through device memory. New family: its kernels/cuda/<family>.cu entry, one declaration and one
// case below.
#include <cuda_runtime.h>

#include <cstddef>
#include <span>

#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::backend::detail {

void cuda_q8_0_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
// kernels/cuda/kquants.cu and kernels/cuda/legacy.cu
void cuda_q2_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q3_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q4_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q5_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q6_k_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q4_0_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q4_1_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q5_0_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_q5_1_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);
void cuda_iq4_nl_encode(const float* x, std::size_t n, std::byte* y, cudaStream_t stream);

namespace {
using device_encode = void (*)(const float*, std::size_t, std::byte*, cudaStream_t);

device_encode encoder_for(quant::qtype t) noexcept {
  switch (t) {
    case quant::qtype::q8_0: return &cuda_q8_0_encode;
    case quant::qtype::q2_k: return &cuda_q2_k_encode;
    case quant::qtype::q3_k: return &cuda_q3_k_encode;
    case quant::qtype::q4_k: return &cuda_q4_k_encode;
    case quant::qtype::q5_k: return &cuda_q5_k_encode;
    case quant::qtype::q6_k: return &cuda_q6_k_encode;
    case quant::qtype::q4_0: return &cuda_q4_0_encode;
    case quant::qtype::q4_1: return &cuda_q4_1_encode;
    case quant::qtype::q5_0: return &cuda_q5_0_encode;
    case quant::qtype::q5_1: return &cuda_q5_1_encode;
    case quant::qtype::iq4_nl: return &cuda_iq4_nl_encode;
    default: return nullptr;
  }
}

// Owns one cudaMalloc allocation; frees it on every exit path, exceptions included.
class device_buffer {
 public:
  explicit device_buffer(std::size_t bytes) { QFORGE_CUDA_CHECK(cudaMalloc(&ptr_, bytes)); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(ptr_); }
  [[nodiscard]] void* get() const noexcept { return ptr_; }

 private:
  void* ptr_ = nullptr;
};
}  // namespace

bool cuda_available() noexcept {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();  // a failed probe must not surface as the next call's error
  return ok;
}

bool cuda_can_encode(quant::qtype t) noexcept { return encoder_for(t) != nullptr; }

void cuda_encode_rows(quant::qtype t, std::span<const float> src, std::span<std::byte> dst) {
  const device_encode enc = encoder_for(t);
  if (enc == nullptr)
    throw error(error::kind::unsupported, cat("cuda backend: no encoder for ", quant::name(t)));
  if (src.empty()) return;
  device_buffer x(src.size_bytes());
  device_buffer y(dst.size_bytes());
  QFORGE_CUDA_CHECK(cudaMemcpy(x.get(), src.data(), src.size_bytes(), cudaMemcpyHostToDevice));
  enc(static_cast<const float*>(x.get()), src.size(), static_cast<std::byte*>(y.get()), nullptr);
  QFORGE_CUDA_CHECK(cudaMemcpy(dst.data(), y.get(), dst.size_bytes(), cudaMemcpyDeviceToHost));
}

}  // namespace qforge::backend::detail
