// SPDX-License-Identifier: MIT
// Host entry points of the engine's CUDA products (compiled in kernels/cuda/engine_matvec.cu and
// engine_ops.cu; plain C++, no nvcc needed to call them): quantized matvec / small-batch matmul
// straight on GGUF blocks (Q4_K, Q6_K, Q8_0, plus F16) and on AutoAWQ's GEMM layout (W4A16), and
// FP16 dense products through cuBLAS. All pointers are device pointers, all calls are
// asynchronous on the given stream, and every call throws qforge::error: kind::argument for a
// shape, alignment or size the kernels cannot take, kind::unsupported for a type without a kernel,
// kind::cuda for a failed launch. Results are float32 sums of products of the exact weights (no
// FP16 matrix is ever formed) and differ from the CPU engine by float rounding only; the tolerance
// the tests hold them to is stated in tests/engine/cuda_engine_main.cu.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "qforge/quant/types.hpp"

namespace qforge::engine::cuda {

struct launch_opts {
  cudaStream_t stream = nullptr;
  // Programmatic dependent launch (sm_90): the kernel may start while the previous one in the
  // stream finishes, streaming its weights before it waits for its inputs.
  bool pdl = false;
  // With pdl: let the next kernel be scheduled at entry (true) or once the main loop is done
  // (awq_matvec always does the latter: measured faster, see engine_matvec.cu).
  bool early_trigger = true;
  // Single-token Q4_K / Q6_K products quantize x to 8 bits per 256 values and multiply integers, as the
  // CPU engine's decode does (engine::decode_activations::q8); false keeps float activations.
  bool int8_activations = true;
  // AWQ kernel: k per warp, 32 or 64 (0: the tuned default; 64 needs group % 64 == 0). Benchmarks.
  int awq_k_per_warp = 0;
  // GGUF kernels: rows per warp, 1, 2 or 4 (0: the tuned default). Benchmarks only.
  int rows_per_warp = 0;
  // attention(): CTAs per head, 0 automatic (split-KV on sm_90 for caches over 64 positions when
  // tokens x heads < SMs), 1 one CTA per head, k > 1 at most k (any token count). Benchmarks, tests.
  int attention_splits = 0;
};

// How a matvec forms its input from x, fusing the op that precedes a projection in a decode step
// (the kernels copy x on chip anyway). rms_norm: x' = x / sqrt(mean(x^2) + eps) * norm_weight
// over each token's cols values (norm_weight: cols floats, 16-byte aligned). swiglu: each token's
// row holds 2 * cols floats [gate | up] (ldx >= 2 * cols) and x' = silu(gate) * up.
struct x_prologue {
  enum class op { none, rms_norm, swiglu };
  op kind = op::none;
  const float* norm_weight = nullptr;
  float eps = 0.0f;
};

// Whether matvec() has a kernel for t: q4_k, q6_k, q8_0, f16.
bool can_matvec(quant::qtype t) noexcept;

// y[t * ldy + r] = (accumulate ? y[t * ldy + r] : 0) + sum_k W[r, k] * x[t * ldx + k] for
// t < tokens, r < rows. W: rows x cols of `type`, row-major GGUF blocks (cols / block_elems blocks
// per row), 16-byte aligned; cols % 256 == 0 for the K-quants, cols % 64 == 0 for Q8_0 and F16.
// x: 16-byte aligned, ldx % 4 == 0, ldx >= cols; ldy >= rows. Launches one kernel per up to 8
// tokens (fewer when cols * tokens floats would not fit in shared memory); kind::argument when a
// single token's row does not (cols above about 53 000).
void matvec(quant::qtype type, const void* w, std::size_t rows, std::size_t cols, const float* x,
            std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy, bool accumulate,
            const launch_opts& opts = {}, const x_prologue& pre = {});

// One linear in AutoAWQ's GEMM layout: qweight I32 [in, out / 8], qzeros I32 [in / group, out / 8],
// scales F16 bits [in / group, out]; w[o, k] = (q - z) * s.
struct awq_matrix {
  const std::uint32_t* qweight = nullptr;
  const std::uint32_t* qzeros = nullptr;
  const std::uint16_t* scales = nullptr;
  std::size_t in = 0, out = 0, group = 0;
};

// Split-K partial sums and arrival tickets for awq_matvec (device memory, tickets zeroed once and
// left zeroed by every launch). One workspace must not be used by two streams at once.
class awq_workspace {
 public:
  awq_workspace() = default;
  // Room for every matrix with in <= max_in and out <= max_out. Throws kind::cuda.
  awq_workspace(std::size_t max_in, std::size_t max_out);
  ~awq_workspace();
  awq_workspace(awq_workspace&& o) noexcept;
  awq_workspace& operator=(awq_workspace&& o) noexcept;
  awq_workspace(const awq_workspace&) = delete;
  awq_workspace& operator=(const awq_workspace&) = delete;

  [[nodiscard]] std::size_t max_in() const noexcept { return max_in_; }
  [[nodiscard]] std::size_t max_out() const noexcept { return max_out_; }
  [[nodiscard]] float* partials() const noexcept { return partials_; }
  [[nodiscard]] unsigned* tickets() const noexcept { return tickets_; }

 private:
  std::size_t max_in_ = 0, max_out_ = 0;
  float* partials_ = nullptr;
  unsigned* tickets_ = nullptr;
};

// y[t * ldy + o] = (accumulate ? y : 0) + sum_k w[o, k] * x[t * ldx + k]. Needs out % 8 == 0,
// in % 32 == 0, group % 32 == 0 dividing in, scales 16-byte aligned, x 16-byte aligned with
// ldx % 4 == 0. Launches one kernel per 8 tokens.
void awq_matvec(const awq_matrix& w, const float* x, std::size_t ldx, std::size_t tokens, float* y,
                std::size_t ldy, bool accumulate, awq_workspace& ws, const launch_opts& opts = {},
                const x_prologue& pre = {});

// A cuBLAS handle with its own workspace (so products can be captured in CUDA graphs).
class blas {
 public:
  blas();  // throws kind::cuda
  ~blas();
  blas(const blas&) = delete;
  blas& operator=(const blas&) = delete;
  [[nodiscard]] void* handle() const noexcept { return handle_; }

 private:
  void* handle_ = nullptr;
  void* workspace_ = nullptr;
};

// y[t * ldy + r] = (accumulate ? y : 0) + sum_k W[r, k] * x[t * ldx + k] with W F16 [rows, cols]
// row-major and x F16: cublasGemmEx, float32 accumulation and output.
void dense_f16(blas& b, const std::uint16_t* w, std::size_t rows, std::size_t cols,
               const std::uint16_t* x, std::size_t ldx, std::size_t tokens, float* y,
               std::size_t ldy, bool accumulate, cudaStream_t stream = nullptr);

// The same with W and x float32: cublasSgemm (float32 throughout, no TF32 unless the caller's
// environment forces it).
void dense_f32(blas& b, const float* w, std::size_t rows, std::size_t cols, const float* x,
               std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy, bool accumulate,
               cudaStream_t stream = nullptr);

}  // namespace qforge::engine::cuda
