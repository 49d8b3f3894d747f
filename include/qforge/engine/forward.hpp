// SPDX-License-Identifier: MIT
// The Llama-family forward pass on the CPU: RMSNorm, q/k/v projections (qwen2 biases, qwen3 per-head
// q/k RMSNorm), RoPE (NEOX halves or interleaved pairs, linear and llama3 frequency scaling),
// grouped-query attention with a causal mask over a float32 KV cache, SwiGLU MLP, final norm and
// output head. A `session` owns the cache and the activations of one sequence: eval() appends
// tokens, as a batch (prefill: every product is a matrix-matrix product) or one at a time (decode),
// and both give the same logits because each token attends to exactly the cached positions before
// it. The math follows transformers' LlamaModel/Qwen3Model in float32.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/model.hpp"
#include "qforge/engine/thread_pool.hpp"

namespace qforge::engine {

namespace detail {

// y = x / sqrt(mean(x^2) + eps) * w (transformers: normalise in float32, then scale). Plain scalar
// code on purpose: AWQ's search calls it too and must give the same bits on every ISA.
inline void rms_norm(const float* x, const float* w, float* y, std::size_t n, float eps) noexcept {
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) ss += double{x[i]} * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (std::size_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * inv);
}

}  // namespace detail

class session {
 public:
  // max_ctx: cache capacity in tokens (0: the model's context length). The model and pool must
  // outlive the session.
  session(const model& m, thread_pool& pool, std::size_t max_ctx = 0)
      : m_(m), pool_(pool), c_(m.config()) {
    ctx_ = max_ctx ? max_ctx : c_.max_ctx;
    kv_dim_ = std::size_t{c_.n_kv_heads} * c_.head_dim;
    q_dim_ = std::size_t{c_.n_heads} * c_.head_dim;
    k_cache_.assign(c_.n_layers * ctx_ * kv_dim_, 0.0f);
    v_cache_.assign(c_.n_layers * ctx_ * kv_dim_, 0.0f);
    // cos/sin per position come from inv_freq; rope_table() extends a table of them as positions
    // are first reached, so each is computed once rather than per head, layer and eval.
    for (std::uint32_t i = 0; i < c_.head_dim / 2; ++i) inv_freq_.push_back(c_.inv_freq(i));
  }

  [[nodiscard]] std::size_t n_past() const noexcept { return n_past_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return ctx_; }
  [[nodiscard]] const model& weights() const noexcept { return m_; }
  // Forgets the sequence (the cache is overwritten by the next eval).
  void reset() noexcept { n_past_ = 0; }
  // Drops the cached positions from n onwards (n <= n_past()).
  void truncate(std::size_t n) noexcept { n_past_ = std::min(n_past_, n); }

  // Runs `tokens` at positions n_past() .. n_past() + size - 1 and appends them to the cache.
  // logits: empty (nothing computed), vocab floats (the last token's), or size * vocab floats (every
  // token's, row-major). Throws kind::argument for a token id outside the vocabulary, a cache
  // overflow or a logits buffer of another size.
  void eval(std::span<const std::int32_t> tokens, std::span<float> logits) {
    const std::size_t T = tokens.size(), V = c_.vocab;
    if (T == 0) return;
    if (n_past_ + T > ctx_)
      throw error(error::kind::argument,
                  cat("eval: ", n_past_, " cached + ", T, " new tokens exceed the cache of ", ctx_));
    const bool all = logits.size() == T * V;
    if (!logits.empty() && !all && logits.size() != V)
      throw error(error::kind::argument,
                  cat("eval: logits buffer of ", logits.size(), " floats for ", T, " tokens of ",
                      V, " logits"));
    for (auto t : tokens)
      if (t < 0 || static_cast<std::size_t>(t) >= V)
        throw error(error::kind::argument, cat("eval: token id ", t, " outside [0, ", V, ")"));
    resize(T);
    rope_table(n_past_ + T);
    const std::size_t H = c_.hidden;
    for (std::size_t t = 0; t < T; ++t)
      lookup_row(m_.token_embd, static_cast<std::size_t>(tokens[t]), {x_.data() + t * H, H});
    for (std::size_t l = 0; l < m_.layers.size(); ++l) layer(l, T);
    n_past_ += T;
    if (logits.empty()) return;
    // Only the rows whose logits are wanted go through the head.
    const std::size_t first = all ? 0 : T - 1, rows = T - first;
    for (std::size_t t = first; t < T; ++t)
      detail::rms_norm(x_.data() + t * H, m_.output_norm.data(), xn_.data() + (t - first) * H, H,
                       c_.rms_eps);
    matmul(m_.output, xn_.data(), H, rows, logits.data(), V, pool_);
  }

 private:
  void resize(std::size_t T) {
    const std::size_t H = c_.hidden;
    const auto grow = [&](std::vector<float>& v, std::size_t n) {
      if (v.size() < n) v.resize(n);
    };
    grow(x_, T * H);
    grow(xn_, T * H);
    grow(q_, T * q_dim_);
    grow(k_, T * kv_dim_);
    grow(v_, T * kv_dim_);
    grow(attn_, T * q_dim_);
    grow(gate_, T * c_.ffn);
    grow(up_, T * c_.ffn);
  }

  // cos / sin of every rotation angle of positions [0, n) into rope_cs_ (pairs per position).
  void rope_table(std::size_t n) {
    const std::size_t half = c_.head_dim / 2;
    for (std::size_t pos = rope_cs_.size() / (2 * half); pos < n; ++pos) {
      const double p = static_cast<double>(pos) / c_.rope_linear_factor;
      for (std::size_t i = 0; i < half; ++i) {
        const double a = p * inv_freq_[i];
        rope_cs_.push_back(static_cast<float>(std::cos(a)));
        rope_cs_.push_back(static_cast<float>(std::sin(a)));
      }
    }
  }

  // Rotates one head in place at position pos (< the positions rope_table() covered).
  void rope(float* h, std::size_t pos) const noexcept {
    const std::size_t half = c_.head_dim / 2;
    const float* t = rope_cs_.data() + pos * 2 * half;
    for (std::size_t i = 0; i < half; ++i) {
      const float cs = t[2 * i], sn = t[2 * i + 1];
      float* x0 = c_.rope == rope_style::neox ? h + i : h + 2 * i;
      float* x1 = c_.rope == rope_style::neox ? h + i + half : h + 2 * i + 1;
      const float a0 = *x0, a1 = *x1;
      *x0 = a0 * cs - a1 * sn;
      *x1 = a1 * cs + a0 * sn;
    }
  }

  void layer(std::size_t li, std::size_t T) {
    const layer_weights& L = m_.layers[li];
    const std::size_t H = c_.hidden, D = c_.head_dim, F = c_.ffn;
    for (std::size_t t = 0; t < T; ++t)
      detail::rms_norm(x_.data() + t * H, L.attn_norm.data(), xn_.data() + t * H, H, c_.rms_eps);
    matmul(L.wq, xn_.data(), H, T, q_.data(), q_dim_, pool_);
    matmul(L.wk, xn_.data(), H, T, k_.data(), kv_dim_, pool_);
    matmul(L.wv, xn_.data(), H, T, v_.data(), kv_dim_, pool_);

    // Biases, per-head norms and RoPE, then the new keys and values into the cache.
    float* kc = k_cache_.data() + li * ctx_ * kv_dim_;
    float* vc = v_cache_.data() + li * ctx_ * kv_dim_;
    pool_.parallel_for(T, 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t t = b; t < e; ++t) {
        float* q = q_.data() + t * q_dim_;
        float* k = k_.data() + t * kv_dim_;
        float* v = v_.data() + t * kv_dim_;
        if (c_.qkv_bias) {
          for (std::size_t i = 0; i < q_dim_; ++i) q[i] += L.bq[i];
          for (std::size_t i = 0; i < kv_dim_; ++i) k[i] += L.bk[i], v[i] += L.bv[i];
        }
        const std::size_t pos = n_past_ + t;
        for (std::size_t h = 0; h < c_.n_heads; ++h) {
          if (c_.qk_norm) detail::rms_norm(q + h * D, L.q_norm.data(), q + h * D, D, c_.rms_eps);
          rope(q + h * D, pos);
        }
        for (std::size_t h = 0; h < c_.n_kv_heads; ++h) {
          if (c_.qk_norm) detail::rms_norm(k + h * D, L.k_norm.data(), k + h * D, D, c_.rms_eps);
          rope(k + h * D, pos);
        }
        std::copy_n(k, kv_dim_, kc + pos * kv_dim_);
        std::copy_n(v, kv_dim_, vc + pos * kv_dim_);
      }
    });

    attention(kc, vc, T);
    // x += attn Wo^T: the product lands in xn_ (free now), then the residual add.
    matmul(L.wo, attn_.data(), q_dim_, T, xn_.data(), H, pool_);
    for (std::size_t i = 0; i < T * H; ++i) x_[i] += xn_[i];

    for (std::size_t t = 0; t < T; ++t)
      detail::rms_norm(x_.data() + t * H, L.ffn_norm.data(), xn_.data() + t * H, H, c_.rms_eps);
    matmul(L.gate, xn_.data(), H, T, gate_.data(), F, pool_);
    matmul(L.up, xn_.data(), H, T, up_.data(), F, pool_);
    cpu_ops().swiglu(gate_.data(), up_.data(), T * F);
    matmul(L.down, gate_.data(), F, T, xn_.data(), H, pool_);
    for (std::size_t i = 0; i < T * H; ++i) x_[i] += xn_[i];
  }

  // Causal grouped-query attention for the T new tokens: query heads g * group .. g * group +
  // group - 1 read key/value head g at positions 0 .. their own (ops::attend, one pass over the
  // cached rows per group). Split across threads by (token, key/value head).
  void attention(const float* kc, const float* vc, std::size_t T) {
    const std::size_t D = c_.head_dim, NKV = c_.n_kv_heads, group = c_.n_heads / c_.n_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const ops& k = cpu_ops();
    pool_.parallel_for(T * NKV, 1, [&](std::size_t b, std::size_t e) {
      float* s = detail::scratch(group * ctx_).data();
      for (std::size_t job = b; job < e; ++job) {
        const std::size_t t = job / NKV, g = job % NKV;
        const std::size_t n = n_past_ + t + 1, first = t * q_dim_ + g * group * D;
        k.attend(q_.data() + first, group, kc + g * D, vc + g * D, kv_dim_, n, D, scale, s,
                 attn_.data() + first);
      }
    });
  }

  const model& m_;
  thread_pool& pool_;
  const model_config& c_;
  std::size_t ctx_ = 0, kv_dim_ = 0, q_dim_ = 0, n_past_ = 0;
  std::vector<double> inv_freq_;
  std::vector<float> rope_cs_;
  std::vector<float> k_cache_, v_cache_;
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_;
};

}  // namespace qforge::engine
