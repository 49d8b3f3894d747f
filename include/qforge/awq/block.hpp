// SPDX-License-Identifier: MIT
// One decoder block of a Llama-family model over a whole calibration set at once, in float32: the
// forward pieces AWQ's search evaluates again and again (self-attention output from a normed input
// with any q/k/v/o weights, the MLP output with any gate/up/down weights). Calibration sequences
// are packed one after another in [tokens, hidden] arrays; attention is causal within each
// sequence and never crosses into the next, positions restart at 0 per sequence. Math and order of
// operations follow engine/forward.hpp (which follows transformers), so the activations captured
// here are the ones the engine and transformers see. Products and attention dots go through the
// engine's ordered kernels (engine::matmul_ordered, ops::dot_f32_ordered: one summation order on
// every ISA) on the engine's thread pool, so the losses the search compares, and so its choices,
// are the same bits on every backend and thread count; the rest (norms, RoPE, softmax, SiLU) is
// plain scalar code compiled once, never the engine's per-ISA vector versions of it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qforge/engine/config.hpp"
#include "qforge/engine/forward.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/thread_pool.hpp"

namespace qforge::awq {

namespace detail {
// SiLU as transformers computes it in float32, kept here as scalar code compiled once: the engine's
// SwiGLU kernel (ops::swiglu) uses a per-ISA approximate exp, and the search must not depend on the
// ISA. RMSNorm is the engine's own scalar function (engine/forward.hpp), for the same reason.
inline float silu(float x) noexcept { return x / (1.0f + std::exp(-x)); }
using engine::detail::rms_norm;
}  // namespace detail

// A linear layer in float: w is [out, in] row-major; bias empty or `out` values.
struct linear_f32 {
  std::string name;  // HF base name (model.layers.0.self_attn.q_proj), for messages
  std::size_t out = 0, in = 0;
  std::vector<float> w, bias;
};

struct block_weights {
  linear_f32 q, k, v, o, gate, up, down;
  std::vector<float> attn_norm, ffn_norm, q_norm, k_norm;  // q/k norms: qwen3 only
};

// y [n, l.out] = x [n, l.in] W^T + bias.
inline void linear_forward(const linear_f32& l, const float* x, std::size_t n, float* y,
                           engine::thread_pool& pool) {
  engine::matmul_ordered(l.w.data(), l.out, l.in, x, l.in, n, y, l.out, pool);
  if (!l.bias.empty())
    for (std::size_t t = 0; t < n; ++t)
      for (std::size_t r = 0; r < l.out; ++r) y[t * l.out + r] += l.bias[r];
}

class block_runner {
 public:
  // seq_len: the length of each packed sequence, in order (their sum is the token count).
  block_runner(const engine::model_config& c, std::vector<std::size_t> seq_len,
               engine::thread_pool& pool)
      : c_(c), pool_(pool), len_(std::move(seq_len)) {
    std::size_t longest = 0;
    for (auto l : len_) {
      start_.push_back(n_);
      n_ += l;
      longest = std::max(longest, l);
    }
    for (std::size_t s = 0; s < len_.size(); ++s)
      for (std::size_t i = 0; i < len_[s]; ++i) pos_.push_back(i);
    const std::size_t half = c_.head_dim / 2;
    cos_.resize(longest * half);
    sin_.resize(longest * half);
    for (std::size_t p = 0; p < longest; ++p)
      for (std::size_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(p) / c_.rope_linear_factor *
                         c_.inv_freq(static_cast<std::uint32_t>(i));
        cos_[p * half + i] = static_cast<float>(std::cos(a));
        sin_[p * half + i] = static_cast<float>(std::sin(a));
      }
    q_dim_ = std::size_t{c_.n_heads} * c_.head_dim;
    kv_dim_ = std::size_t{c_.n_kv_heads} * c_.head_dim;
  }

  [[nodiscard]] std::size_t tokens() const noexcept { return n_; }
  [[nodiscard]] std::size_t q_dim() const noexcept { return q_dim_; }
  [[nodiscard]] std::size_t kv_dim() const noexcept { return kv_dim_; }
  [[nodiscard]] const engine::model_config& config() const noexcept { return c_; }
  [[nodiscard]] engine::thread_pool& pool() noexcept { return pool_; }

  // out [tokens, hidden] = RMSNorm(x) * w.
  void norm(const float* x, std::span<const float> w, float* out) {
    const std::size_t H = c_.hidden;
    pool_.parallel_for(n_, 16, [&](std::size_t b, std::size_t e) {
      for (std::size_t t = b; t < e; ++t)
        detail::rms_norm(x + t * H, w.data(), out + t * H, H, c_.rms_eps);
    });
  }

  // Self-attention output [tokens, hidden] of the normed input xn with the given projections
  // (qk norms from b). attn_in, when given, receives o_proj's input [tokens, q_dim].
  void self_attn(const linear_f32& wq, const linear_f32& wk, const linear_f32& wv,
                 const linear_f32& wo, const block_weights& b, const float* xn, float* out,
                 float* attn_in = nullptr) {
    grow(q_, n_ * q_dim_);
    grow(k_, n_ * kv_dim_);
    grow(v_, n_ * kv_dim_);
    grow(a_, n_ * q_dim_);
    linear_forward(wq, xn, n_, q_.data(), pool_);
    linear_forward(wk, xn, n_, k_.data(), pool_);
    linear_forward(wv, xn, n_, v_.data(), pool_);
    const std::size_t D = c_.head_dim;
    pool_.parallel_for(n_, 4, [&](std::size_t bgn, std::size_t end) {
      for (std::size_t t = bgn; t < end; ++t) {
        float* q = q_.data() + t * q_dim_;
        float* k = k_.data() + t * kv_dim_;
        for (std::size_t h = 0; h < c_.n_heads; ++h) {
          if (c_.qk_norm) detail::rms_norm(q + h * D, b.q_norm.data(), q + h * D, D, c_.rms_eps);
          rope(q + h * D, pos_[t]);
        }
        for (std::size_t h = 0; h < c_.n_kv_heads; ++h) {
          if (c_.qk_norm) detail::rms_norm(k + h * D, b.k_norm.data(), k + h * D, D, c_.rms_eps);
          rope(k + h * D, pos_[t]);
        }
      }
    });
    attention();
    if (attn_in != nullptr) std::copy_n(a_.data(), n_ * q_dim_, attn_in);
    linear_forward(wo, a_.data(), n_, out, pool_);
  }

  // MLP output [tokens, hidden] of the normed input xn. act, when given, receives down_proj's
  // input silu(gate) * up [tokens, ffn].
  void mlp(const linear_f32& gate, const linear_f32& up, const linear_f32& down, const float* xn,
           float* out, float* act = nullptr) {
    const std::size_t F = gate.out;
    grow(g_, n_ * F);
    grow(u_, n_ * F);
    linear_forward(gate, xn, n_, g_.data(), pool_);
    linear_forward(up, xn, n_, u_.data(), pool_);
    pool_.parallel_for(n_ * F, 4096, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) g_[i] = detail::silu(g_[i]) * u_[i];
    });
    if (act != nullptr) std::copy_n(g_.data(), n_ * F, act);
    linear_forward(down, g_.data(), n_, out, pool_);
  }

  // The whole block: y = h + mlp(norm(h)), h = x + attn(norm(x)). x and y may not alias.
  void forward(const block_weights& b, const float* x, float* y) {
    const std::size_t NH = n_ * c_.hidden;
    grow(xn_, NH);
    grow(o_, NH);
    norm(x, b.attn_norm, xn_.data());
    self_attn(b.q, b.k, b.v, b.o, b, xn_.data(), o_.data());
    for (std::size_t i = 0; i < NH; ++i) y[i] = x[i] + o_[i];
    norm(y, b.ffn_norm, xn_.data());
    mlp(b.gate, b.up, b.down, xn_.data(), o_.data());
    for (std::size_t i = 0; i < NH; ++i) y[i] += o_[i];
  }

 private:
  static void grow(std::vector<float>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
  }

  void rope(float* h, std::size_t pos) const noexcept {
    const std::size_t half = c_.head_dim / 2;
    const float* cs = cos_.data() + pos * half;
    const float* sn = sin_.data() + pos * half;
    for (std::size_t i = 0; i < half; ++i) {
      float* x0 = c_.rope == engine::rope_style::neox ? h + i : h + 2 * i;
      float* x1 = c_.rope == engine::rope_style::neox ? h + i + half : h + 2 * i + 1;
      const float a0 = *x0, a1 = *x1;
      *x0 = a0 * cs[i] - a1 * sn[i];
      *x1 = a1 * cs[i] + a0 * sn[i];
    }
  }

  // Causal GQA within each sequence: q_, k_, v_ -> a_. Split by (token, head).
  void attention() {
    const std::size_t D = c_.head_dim, NH = c_.n_heads, group = c_.n_heads / c_.n_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const engine::ops& k = engine::cpu_ops();
    std::size_t longest = 0;
    for (auto l : len_) longest = std::max(longest, l);
    pool_.parallel_for(n_ * NH, 4, [&](std::size_t b, std::size_t e) {
      float* s = engine::detail::scratch(longest).data();
      for (std::size_t job = b; job < e; ++job) {
        const std::size_t t = job / NH, h = job % NH, kvh = h / group;
        const std::size_t first = t - pos_[t], n = pos_[t] + 1;
        const float* q = q_.data() + t * q_dim_ + h * D;
        // The n key rows times q as one product: its register tiles keep several dots in flight.
        k.gemm_ordered(k_.data() + first * kv_dim_ + kvh * D, kv_dim_, n, q, D, 1, D, s, 1);
        float mx = -INFINITY;
        for (std::size_t j = 0; j < n; ++j) {
          s[j] *= scale;
          mx = std::max(mx, s[j]);
        }
        float sum = 0;
        for (std::size_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
        const float inv = 1.0f / sum;
        float* out = a_.data() + t * q_dim_ + h * D;
        std::fill_n(out, D, 0.0f);
        for (std::size_t j = 0; j < n; ++j) {
          const float p = s[j] * inv;
          const float* v = v_.data() + (first + j) * kv_dim_ + kvh * D;
          for (std::size_t i = 0; i < D; ++i) out[i] += p * v[i];
        }
      }
    });
  }

  const engine::model_config& c_;
  engine::thread_pool& pool_;
  std::vector<std::size_t> len_, start_, pos_;
  std::size_t n_ = 0, q_dim_ = 0, kv_dim_ = 0;
  std::vector<float> cos_, sin_;
  std::vector<float> q_, k_, v_, a_, g_, u_, xn_, o_;
};

}  // namespace qforge::awq
