// SPDX-License-Identifier: MIT
// Host entry points of the CUDA kernels only the session (engine/cuda/session.hpp) needs beyond
// ops.hpp and matvec.hpp (compiled in kernels/cuda/engine_session_ops.cu; plain C++ to call):
// expansion of any stored weight encoding to a float32 row-major matrix (the GGUF block families
// through their reference decoders in quant/<type>/cuda.cuh, F16 rows, AutoAWQ's GEMM layout), the
// qwen2 q/k/v bias add and the qwen3 per-head RMSNorm on rows with a stride. Device pointers,
// asynchronous on the stream; throws qforge::error (argument, unsupported, cuda).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "qforge/engine/cuda/matvec.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::engine::cuda {

// Whether expand() decodes type t: f16 and every GGUF block family with a CUDA decoder (Q4_0,
// Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K .. Q6_K).
bool can_expand(quant::qtype t) noexcept;

// out[r * cols + k] = W[r, k] as float, W rows x cols of type t in row-major GGUF blocks; the
// values are the reference decoders' bits.
void expand(quant::qtype t, const void* w, std::size_t rows, std::size_t cols, float* out,
            cudaStream_t stream = nullptr);

// out[o * in + k] = (q - z) * s, the AWQ linear as float [out, in].
void expand_awq(const awq_matrix& w, float* out, cudaStream_t stream = nullptr);

// y[t * ldy + i] += b[i] for i < n, t < tokens.
void add_bias(float* y, std::size_t ldy, std::size_t n, std::size_t tokens, const float* b,
              const launch_opts& opts = {});

// In place, each of `heads` heads of head_dim floats at x + t * ldx + h * head_dim:
// h = h / sqrt(mean(h^2) + eps) * w (w: head_dim floats).
void head_rms_norm(float* x, std::size_t ldx, std::size_t heads, std::size_t head_dim,
                   std::size_t tokens, const float* w, float eps, const launch_opts& opts = {});

}  // namespace qforge::engine::cuda
