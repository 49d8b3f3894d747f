// SPDX-License-Identifier: MIT
// QFORGE_CUDA_CHECK(call) turns a failed CUDA runtime call into qforge::error (kind::cuda) naming the
// call, the CUDA error and the source line; QFORGE_CUDA_CHECK_LAUNCH() does the same for the last
// kernel launch, whose configuration errors are only reported through cudaGetLastError. For host
// code of .cu files (and C++ files that link CUDA::cudart); never used inside kernels.
#pragma once
#include <cuda_runtime_api.h>

#include "qforge/core/error.hpp"

namespace qforge::detail {
[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* call, const char* file,
                                          int line) {
  throw error(error::kind::cuda, cat(call, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e),
                                     ") at ", file, ":", line));
}
}  // namespace qforge::detail

#define QFORGE_CUDA_CHECK(call)                                             \
  do {                                                                      \
    const cudaError_t qforge_cuda_status_ = (call);                         \
    if (qforge_cuda_status_ != cudaSuccess)                                 \
      ::qforge::detail::throw_cuda_error(qforge_cuda_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define QFORGE_CUDA_CHECK_LAUNCH() QFORGE_CUDA_CHECK(cudaGetLastError())
