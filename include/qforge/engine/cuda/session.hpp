// SPDX-License-Identifier: MIT
// The Llama-family forward pass on one CUDA device, with the interface of engine::session
// (forward.hpp) so the measurements of measure.hpp run on either. Plain C++: the implementation
// lives in kernels/cuda/engine_session.cpp (qforge::kernels built with CUDA), so g++ callers need
// no nvcc. Loading uploads every weight matrix once: F32 / F16 rows as they are (BF16 becomes F32,
// or F16 under math::f16), GGUF Q4_K / Q6_K / Q8_0 blocks and AutoAWQ linears as stored (our
// matvec kernels, engine/cuda/matvec.hpp), and the GGUF types without a CUDA matvec (Q5_K, Q3_K,
// Q2_K, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) decoded once on the device by their reference decoders
// and kept as F16 rows (the one place weights are rounded: about 2^-11 relative). q/k/v and
// gate/up of one layer are concatenated when they share an encoding, so a decode step runs one
// product for each. Products: up to options.small_batch tokens through our matvec kernels
// (float32 activations, float32 sums; RMSNorm and SwiGLU fused into them) or cuBLAS for F32 rows;
// more tokens (prefill) expand a quantized matrix to float32 on the device and run cuBLAS.
// math::f32 (default) computes every product in float32 from the stored weights; math::f16 rounds
// the activations of F16 / dequantized / expanded products to fp16 for cuBLAS tensor cores (about
// 1e-2 of max |logit| from the float32 logits; prefill several times faster). Single-token evals
// after the first replay one captured CUDA graph (programmatic dependent launch on sm_90).
// Attention, RoPE and the K/V cache follow forward.hpp in float32 (engine/cuda/ops.hpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace qforge::engine {

class model;

struct cuda_options {
  enum class math { f32, f16 };
  math dense = math::f32;
  bool graph = true;             // decode steps replay a captured CUDA graph
  bool pdl = true;               // programmatic dependent launch inside it (sm_90 and newer)
  std::size_t small_batch = 32;  // evals of up to this many tokens use the matvec kernels
  std::size_t chunk = 512;       // longer evals run in chunks of this many tokens
  int device = 0;
};

// Whether a CUDA device can be used (never throws).
bool cuda_device_available() noexcept;

class cuda_session {
 public:
  // max_ctx: cache capacity in tokens (0: the model's context length). The model must outlive
  // the session (embedding rows are read from it). Throws qforge::error: kind::cuda (no device,
  // out of memory), kind::unsupported (head_dim above 256, a context whose attention scores do
  // not fit in shared memory, a weight type without a CUDA path).
  explicit cuda_session(const model& m, std::size_t max_ctx = 0, const cuda_options& o = {});
  ~cuda_session();
  cuda_session(cuda_session&&) noexcept;
  cuda_session& operator=(cuda_session&&) noexcept;
  cuda_session(const cuda_session&) = delete;
  cuda_session& operator=(const cuda_session&) = delete;

  [[nodiscard]] std::size_t n_past() const noexcept;
  [[nodiscard]] std::size_t capacity() const noexcept;
  [[nodiscard]] const model& weights() const noexcept;
  void reset() noexcept;
  void truncate(std::size_t n) noexcept;

  // As engine::session::eval: logits empty, vocab floats (last token) or size * vocab floats
  // (every token, row-major). Throws kind::argument like the CPU session, kind::cuda on a device
  // error (the session's cache is then undefined: reset() it).
  void eval(std::span<const std::int32_t> tokens, std::span<float> logits);

  // Bytes of weights held on the device, and a one-line description of how they are held.
  [[nodiscard]] std::size_t device_weight_bytes() const noexcept;
  [[nodiscard]] std::string describe() const;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace qforge::engine
