// SPDX-License-Identifier: MIT
// What the two halves of awq::cuda_backend (kernels/cuda/awq_forward.cu, awq_quant.cu) share: the
// stream, the cuBLAS handle, the calibration layout on the device and the dense-product helpers.
// Internal to those files (includes the CUDA runtime and cuBLAS).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "qforge/awq/cuda/backend.hpp"

namespace qforge::awq {

struct cuda_backend::state {
  engine::model_config cfg;
  cuda_backend_options opt;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  std::size_t tokens = 0, longest = 0, q_dim = 0, kv_dim = 0;
  std::vector<std::size_t> seq_len, rows;
  bool all_rows = true;                  // rows == 0 .. tokens - 1
  device_floats rope_cos, rope_sin;      // [longest, head_dim / 2]
  device_floats q_norm, k_norm;          // empty unless the model has qk norms
  // Per token: its position in its sequence and its sequence's first token (int32 each).
  std::int32_t* pos = nullptr;
  std::int32_t* seq_first = nullptr;
  std::int32_t* stat_rows = nullptr;     // rows, as int32 on the device
  // Scratch reused across calls (grown on demand): q, k, v, attention output, gate, up; fp16
  // operand copies for math::f16.
  device_floats q, k, v, a, g, u;
  void* half_x = nullptr;
  std::size_t half_x_bytes = 0;
  void* half_w = nullptr;
  std::size_t half_w_bytes = 0;
  // Forward half only: the host norm weights of the current norm() call, and the double partials
  // of the statistics (mse per row, per-channel sums), viewed as doubles.
  device_floats norm_w, red;

  ~state();
};

namespace cuda_detail {

// Grows `buf` to at least n floats (contents lost when it grows).
void grow(device_floats& buf, std::size_t n);
// Grows a raw device allocation to at least `bytes`.
void grow_raw(void*& p, std::size_t& have, std::size_t bytes);

// y [n, out] = x [n, in] w^T (w [out, in] row-major), in st.opt.dense precision; beta = 1 adds
// into y. `precise`: never below tf32 (covariances and losses, whose inputs can leave fp16).
// half_x: x as stage_half_x left it, for products sharing an input (f16 math only).
void gemm_xwT(cuda_backend::state& st, const float* x, std::size_t n, std::size_t in,
              const float* w, std::size_t out, float* y, float beta = 0.0f, bool precise = false,
              const void* half_x = nullptr);
// Under math::f16: x [n, in] converted to fp16 into the state's staging buffer (valid until the
// next product without a staged input); nullptr under other math.
const void* stage_half_x(cuda_backend::state& st, const float* x, std::size_t n, std::size_t in);

// Copies of the stat rows of x [tokens, n] into dst [stat_rows, n] (dst grown as needed); when
// every token counts, returns x itself without copying.
const float* stat_rows_of(cuda_backend::state& st, const float* x, std::size_t n,
                          device_floats& dst);

// Peak / current bytes held by device_floats and the scratch buffers (process-wide).
void note_alloc(std::size_t bytes) noexcept;
void note_free(std::size_t bytes) noexcept;
std::size_t peak_alloc() noexcept;

}  // namespace cuda_detail

}  // namespace qforge::awq
