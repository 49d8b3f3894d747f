// SPDX-License-Identifier: MIT
// AWQ's search on the CPU: the operations awq::quantize_model asks of a backend, over host vectors
// (awq::block_runner for the forward pieces, awq/group_search.hpp for statistics, fake
// quantization, clipping and losses). The reference for awq::cuda_backend (awq/cuda/backend.hpp),
// which offers the same calls on device-resident data. Every product goes through the engine's
// ordered kernels, so the search's choices are the same bits on every ISA and thread count.
#pragma once
#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "qforge/awq/block.hpp"
#include "qforge/awq/group_search.hpp"
#include "qforge/engine/config.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/quant/awq/search.hpp"

namespace qforge::awq {

class cpu_backend {
 public:
  struct act {
    std::size_t n = 0;
    std::vector<float> v;
  };
  using linear = linear_f32;
  struct cov {
    std::size_t n = 0;
    std::vector<float> v;
  };

  cpu_backend(const engine::model_config& c, std::vector<std::size_t> seq_len,
              std::vector<std::size_t> rows, engine::thread_pool& pool)
      : run_(c, std::move(seq_len), pool), rows_(std::move(rows)), pool_(pool) {
    all_rows_ = rows_.size() == run_.tokens();
  }

  [[nodiscard]] std::size_t tokens() const noexcept { return run_.tokens(); }
  [[nodiscard]] std::size_t stat_rows() const noexcept { return rows_.size(); }
  [[nodiscard]] std::size_t peak_bytes() const noexcept { return 0; }  // no device memory

  [[nodiscard]] act make_act(std::size_t n) { return {n, std::vector<float>(tokens() * n)}; }
  void upload(act& a, std::span<const float> host) { a.v.assign(host.begin(), host.end()); }
  [[nodiscard]] std::vector<float> download(const act& a) { return a.v; }
  [[nodiscard]] linear upload(const linear_f32& l) { return l; }
  [[nodiscard]] std::vector<float> download(const cov& c) { return c.v; }
  void set_qk_norms(std::span<const float> q_norm, std::span<const float> k_norm) {
    qk_.q_norm.assign(q_norm.begin(), q_norm.end());
    qk_.k_norm.assign(k_norm.begin(), k_norm.end());
  }

  void norm(const act& x, std::span<const float> w, act& out) {
    run_.norm(x.v.data(), w, out.v.data());
  }
  void self_attn(const linear& q, const linear& k, const linear& v, const linear& o, const act& xn,
                 act& out, act* attn_in = nullptr) {
    run_.self_attn(q, k, v, o, qk_, xn.v.data(), out.v.data(),
                   attn_in ? attn_in->v.data() : nullptr);
  }
  void mlp(const linear& gate, const linear& up, const linear& down, const act& xn, act& out,
           act* act_out = nullptr) {
    run_.mlp(gate, up, down, xn.v.data(), out.v.data(), act_out ? act_out->v.data() : nullptr);
  }
  void add(const act& a, const act& b, act& out) {
    for (std::size_t i = 0; i < out.v.size(); ++i) out.v[i] = a.v[i] + b.v[i];
  }

  [[nodiscard]] double mse_rows(const act& a, const act& b) {
    double acc = 0;
    for (auto r : rows_) acc += detail::mse(a.v.data() + r * a.n, b.v.data() + r * a.n, a.n);
    return acc / static_cast<double>(rows_.size());
  }
  [[nodiscard]] std::vector<float> channel_abs_mean(const act& a) {
    return quant::awq::channel_abs_mean(stat(a).data(), rows_.size(), a.n);
  }
  [[nodiscard]] std::vector<float> channel_abs_max(const act& a) {
    return detail::channel_abs_max(stat(a).data(), rows_.size(), a.n);
  }
  // Sums over every token, in token order per channel (the importance matrix's statistics).
  [[nodiscard]] std::vector<double> channel_sq_sum(const act& a) {
    std::vector<double> s(a.n, 0.0);
    pool_.parallel_for(a.n, 64, [&](std::size_t b, std::size_t e) {
      for (std::size_t t = 0; t < tokens(); ++t) {
        const float* row = a.v.data() + t * a.n;
        for (std::size_t c = b; c < e; ++c) s[c] += static_cast<double>(row[c]) * row[c];
      }
    });
    return s;
  }
  [[nodiscard]] cov covariance(const act& a) {
    return {a.n, detail::covariance(stat(a).data(), rows_.size(), a.n, pool_)};
  }
  [[nodiscard]] std::vector<float> group_covariance(const act& a, std::size_t group) {
    return detail::group_covariance(stat(a).data(), rows_.size(), a.n, group,
                                    std::vector<float>(a.n, 1.0f), pool_);
  }
  [[nodiscard]] std::vector<float> cov_blocks(const cov& c, std::size_t group) {
    return detail::blocks_of(c.v, c.n, group, std::vector<float>(c.n, 1.0f));
  }

  [[nodiscard]] linear fake_quant(const linear& w, std::span<const float> s, std::size_t group,
                                  const std::vector<float>* blocks = nullptr) {
    return detail::fake_quant(w, std::vector<float>(s.begin(), s.end()), group, pool_, blocks);
  }
  [[nodiscard]] double linear_loss(const linear& w, const linear& wq, const cov& c) {
    return detail::linear_loss(w, wq, c.v, pool_);
  }
  void clip_linear(linear_f32& l, const std::vector<float>& blocks, std::size_t group) {
    detail::clip_linear(l, blocks, group, pool_);
  }

 private:
  // The stat rows of a, gathered (a itself when every token counts).
  const std::vector<float>& stat(const act& a) {
    if (all_rows_) return a.v;
    gathered_.resize(rows_.size() * a.n);
    for (std::size_t i = 0; i < rows_.size(); ++i)
      std::copy_n(a.v.data() + rows_[i] * a.n, a.n, gathered_.data() + i * a.n);
    return gathered_;
  }

  block_runner run_;
  std::vector<std::size_t> rows_;
  bool all_rows_ = true;
  engine::thread_pool& pool_;
  block_weights qk_;
  std::vector<float> gathered_;
};

}  // namespace qforge::awq
