// SPDX-License-Identifier: MIT
// AWQ's search on one CUDA device: the operations awq::quantize_model asks of a backend
// (awq/cpu_backend.hpp is the CPU one and the reference), with activations, linears and
// covariances resident on the device. What stays on the host is what is linear in the weights and
// cheap next to the products: candidate scales, the fp16 guard, folding, the final quantize and
// pack. Plain C++ (pimpl): the implementation is compiled into qforge::kernels from
// kernels/cuda/awq_forward.cu (products, norms, RoPE, attention, SwiGLU, statistics, losses) and
// kernels/cuda/awq_quant.cu (fake quantization, clip search, covariances), so g++ callers need no
// nvcc. Dense products go through cuBLAS; the math option picks its precision:
//   f32   float32 on CUDA cores: the CPU backend's numbers up to summation order (tests use it);
//   tf32  tensor cores with 10-bit mantissa inputs and float32 sums;
//   f16   operands rounded to fp16, float32 sums: AutoAWQ's own precision (its model is fp16), the
//         fastest, the default for `qforge awq --device cuda`.
// The grid search compares losses that differ by far more than these roundings on real models,
// yet a near tie can go the other way than on the CPU: the checkpoint is then the CPU's up to that
// one choice. Every other step (fake quantization, clipping, scales) rounds as the CPU does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "qforge/awq/block.hpp"
#include "qforge/engine/config.hpp"

namespace qforge::awq {

// A float32 array in device memory (move-only). Allocation and release live in the .cu files.
class device_floats {
 public:
  device_floats() = default;
  explicit device_floats(std::size_t n);  // uninitialised
  ~device_floats();
  device_floats(device_floats&& o) noexcept;
  device_floats& operator=(device_floats&& o) noexcept;
  device_floats(const device_floats&) = delete;
  device_floats& operator=(const device_floats&) = delete;

  [[nodiscard]] float* data() const noexcept { return p_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  void upload(std::span<const float> host);            // size() == host.size()
  [[nodiscard]] std::vector<float> download() const;

 private:
  float* p_ = nullptr;
  std::size_t n_ = 0;
};

struct cuda_backend_options {
  enum class math { f32, tf32, f16 };
  math dense = math::f16;
  int device = 0;
};

class cuda_backend {
 public:
  // Activations [tokens, n] row-major.
  struct act {
    std::size_t n = 0;
    device_floats v;
  };
  // A linear as the products use it: w [out, in] row-major, bias empty or `out` values.
  struct linear {
    std::size_t out = 0, in = 0;
    device_floats w, bias;
  };
  // A full input covariance [n, n] (row-major, symmetric), over the statistic rows.
  struct cov {
    std::size_t n = 0;
    device_floats v;
  };

  // seq_len: the packed calibration sequences in order; rows: the token indices the statistics and
  // losses count (ascending; every token, or all but each sequence's first).
  cuda_backend(const engine::model_config& c, std::vector<std::size_t> seq_len,
               std::vector<std::size_t> rows, const cuda_backend_options& o = {});
  ~cuda_backend();
  cuda_backend(const cuda_backend&) = delete;
  cuda_backend& operator=(const cuda_backend&) = delete;

  [[nodiscard]] std::size_t tokens() const noexcept;
  [[nodiscard]] std::size_t stat_rows() const noexcept;

  // --- data -------------------------------------------------------------------------------------
  [[nodiscard]] act make_act(std::size_t n);                      // [tokens, n], uninitialised
  void upload(act& a, std::span<const float> host);               // host: tokens * a.n floats
  [[nodiscard]] std::vector<float> download(const act& a);
  [[nodiscard]] linear upload(const linear_f32& l);
  [[nodiscard]] std::vector<float> download(const cov& c) { return c.v.download(); }
  // The qwen3 q/k norms of the block about to be searched (empty: none).
  void set_qk_norms(std::span<const float> q_norm, std::span<const float> k_norm);

  // --- forward pieces (as awq::block_runner) ---------------------------------------------------
  void norm(const act& x, std::span<const float> w, act& out);    // RMSNorm(x) * w
  void self_attn(const linear& q, const linear& k, const linear& v, const linear& o,
                 const act& xn, act& out, act* attn_in = nullptr);
  void mlp(const linear& gate, const linear& up, const linear& down, const act& xn, act& out,
           act* act_out = nullptr);
  void add(const act& a, const act& b, act& out);                 // out = a + b; out may be a

  // --- statistics over the stat rows ---------------------------------------------------------
  [[nodiscard]] double mse_rows(const act& a, const act& b);      // mean over rows of mean sq diff
  [[nodiscard]] std::vector<float> channel_abs_mean(const act& a);
  [[nodiscard]] std::vector<float> channel_abs_max(const act& a);
  // Per channel sum of x^2 over EVERY token (the importance matrix counts them all).
  [[nodiscard]] std::vector<double> channel_sq_sum(const act& a);
  [[nodiscard]] cov covariance(const act& a);                     // X^T X / rows
  // Diagonal [group, group] blocks of the covariance (n / group blocks, row-major each).
  [[nodiscard]] std::vector<float> group_covariance(const act& a, std::size_t group);
  [[nodiscard]] std::vector<float> cov_blocks(const cov& c, std::size_t group);

  // --- quantization ---------------------------------------------------------------------------
  // Q(clip(half(W * s))) / s of the device copy `w` of a linear, clipped with `blocks` (the
  // scaled input's covariance blocks) when given: awq::detail::fake_quant.
  [[nodiscard]] linear fake_quant(const linear& w, std::span<const float> s, std::size_t group,
                                  const std::vector<float>* blocks = nullptr);
  // Mean over output rows of d^T C d, d = wq - w: awq::detail::linear_loss.
  [[nodiscard]] double linear_loss(const linear& w, const linear& wq, const cov& c);
  // awq::detail::clip_linear on the host linear l (uploaded, clipped on the device, downloaded).
  void clip_linear(linear_f32& l, const std::vector<float>& blocks, std::size_t group);

  // Peak device memory this backend has allocated, in bytes.
  [[nodiscard]] std::size_t peak_bytes() const noexcept;

  struct state;  // shared by the .cu files

 private:
  std::unique_ptr<state> s_;
};

}  // namespace qforge::awq
