// SPDX-License-Identifier: MIT
// The machinery of AWQ's per-block search (awq/quantize_model.hpp drives it): options and
// per-group reports, loading a linear from the checkpoint as fp16-valued floats, input
// covariances (full, or their diagonal group blocks rescaled for scaled inputs), a candidate's
// fake-quantized linear Q(clip(W * s)) / s, the exact output loss of a linear from its input
// covariance (mean over output rows of d^T C d), folding scales into norms and linears, and the
// candidate loop that keeps the lowest loss among those whose folding stays inside fp16 (the fp16
// guard: scaled weights, their per-group ranges, folded norms / rows and the scaled calibration
// activations; when no candidate passes, s = 1). Every float product and dot here goes through the
// engine's ordered kernels (engine/ordered_dot.hpp), so losses, and so the choices they decide,
// are the same bits on every CPU backend and thread count.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "qforge/awq/block.hpp"
#include "qforge/awq/cuda/backend.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/awq/search.hpp"

namespace qforge::awq {

struct awq_options {
  std::size_t group = 128;
  int grid = 20;                      // ratios a = i / grid, i = 0 .. grid - 1
  bool clip = true;
  // The defaults are AutoAWQ's algorithm. Each switch below is one of the variants measured
  // against it (tests/awq/README.md has the table); none helped on every fixture.
  bool propagate_quantized = false;   // next block's input: the block as quantized
  bool block_loss = false;            // judge q/k/v scales on the block output, not attention's
  bool clip_in_search = false;        // judge each scale candidate with its clipping applied
  bool rtn_candidate = false;         // s = 1 competes with the grid
  bool gqa_o_scaling = false;         // scale o through v under GQA too (one scale per v row)
  bool skip_first_token = false;      // leave each sequence's first token out of stats / losses
  // Error-compensated rounding of the folded, clipped weights (quant/awq/gptq.hpp) instead of
  // round-to-nearest: same format, same group parameters, codes chosen against each linear's full
  // input covariance. gptq_damp is added to that covariance's diagonal (x its mean); act_order
  // rounds the most active input channels first.
  bool gptq = false;
  bool gptq_act_order = false;
  double gptq_damp = 0.01;
  // Where the search runs: the CPU (the caller's thread pool) or a CUDA device (awq/cuda/backend.hpp:
  // products in cuda.dense precision; a near-tie choice may differ from the CPU's).
  enum class backend { cpu, cuda };
  backend device = backend::cpu;
  cuda_backend_options cuda;
  std::uint64_t max_shard_bytes = std::uint64_t{5} << 30;
  bool overwrite = false;
  // When not empty: write the importance matrix of the calibration pass there (awq/imatrix.hpp),
  // naming `imatrix_dataset` as its data set.
  std::string imatrix_out;
  std::string imatrix_dataset;
  // Called at the start of each block and when it is done (i = block index, done = finished).
  std::function<void(std::size_t i, std::size_t n, bool done)> progress;
};

struct group_report {
  float alpha = -1;       // chosen ratio; -1: s = 1 (round-to-nearest) won
  double loss = 0;        // MSE of the inspected output at the chosen scales
  double loss_rtn = 0;    // ... with s = 1
  bool searched = false;  // false: the group was not scaled (o under GQA)
  int rejected = 0;       // candidates skipped because their folding would leave fp16
  bool fp16_fallback = false;  // every candidate was skipped: s = 1
  std::string first_rejection;  // why the first skipped candidate was skipped
};

struct block_report {
  group_report qkv, o, gate_up, down;
  double seconds = 0;
  // Where the block's time went (wall seconds; a backend's queued work counts where it is waited
  // for): loading and uploading weights, the capturing forward with its statistics, each group's
  // search, folding with clipping, quantizing and packing with the next block's input.
  struct {
    double load = 0, capture = 0, qkv = 0, o = 0, gate_up = 0, down = 0, fold_clip = 0, emit = 0;
  } phases;
};

struct awq_result {
  std::vector<block_report> blocks;
  std::vector<std::string> warnings;  // fp16 guard: rejected candidates, fallbacks to s = 1
  std::size_t tokens = 0;
  double seconds = 0;
  std::size_t device_peak_bytes = 0;  // CUDA: the most device memory the search held at once
};

namespace detail {

inline linear_f32 load_linear(const format::safetensors::checkpoint& c, const std::string& base,
                              std::size_t out, std::size_t in, engine::thread_pool& pool) {
  const auto v = c.view(base + ".weight");
  const auto s = v.shape();
  if (s.size() != 2 || s[0] != out || s[1] != in)
    throw error(error::kind::format, c.path(),
                cat("tensor '", base, ".weight': shape ", format::safetensors::detail::shape_string(s),
                    ", expected [", out, ", ", in, "]"));
  linear_f32 l;
  l.name = base;
  l.out = out, l.in = in;
  l.w.resize(out * in);
  v.to_f32(std::span<float>(l.w.data(), 0), 0);  // throws here, not on a worker, if not float
  if (c.contains(base + ".bias")) l.bias = c.view(base + ".bias").to_f32();
  // A BF16 / F32 source may hold what fp16 cannot; an F16 one may hold inf or NaN.
  std::atomic<std::size_t> bad{l.w.size()};
  const bool round = v.type() != format::safetensors::dtype::f16;
  pool.parallel_for(out, 16, [&](std::size_t b, std::size_t e) {
    v.to_f32(std::span<float>(l.w.data() + b * in, (e - b) * in), b * in);
    for (std::size_t i = b * in; i < e * in; ++i) {
      if (!(std::fabs(l.w[i]) <= 65504.0f)) {
        for (auto cur = bad.load(); i < cur && !bad.compare_exchange_weak(cur, i);) {
        }
        return;
      }
      // The search runs on the fp16 model AutoAWQ would see (a BF16 source is rounded once here).
      if (round) l.w[i] = quant::awq::half(l.w[i]);
    }
  });
  if (const std::size_t i = bad.load(); i < l.w.size())
    throw error(error::kind::unsupported, c.path(),
                cat("tensor '", base, ".weight': element ", i, " = ", l.w[i],
                    " is outside fp16, the dtype of an AWQ checkpoint"));
  return l;
}

inline double mse(const float* a, const float* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    s += d * d;
  }
  return s / static_cast<double>(n);
}

// x [rows, n] -> [n, rows].
inline std::vector<float> transpose(const float* x, std::size_t rows, std::size_t n,
                                    engine::thread_pool& pool) {
  std::vector<float> t(n * rows);
  pool.parallel_for(n, 8, [&](std::size_t b, std::size_t e) {
    for (std::size_t c = b; c < e; ++c)
      for (std::size_t r = 0; r < rows; ++r) t[c * rows + r] = x[r * n + c];
  });
  return t;
}

// C = X^T X / rows for x [rows, n]: the full [n, n] matrix.
inline std::vector<float> covariance(const float* x, std::size_t rows, std::size_t n,
                                     engine::thread_pool& pool) {
  const auto xt = transpose(x, rows, n, pool);
  std::vector<float> c(n * n);
  engine::matmul_ordered(xt.data(), n, rows, xt.data(), rows, n, c.data(), n, pool);
  const float inv = 1.0f / static_cast<float>(rows);
  for (auto& v : c) v *= inv;
  return c;
}

// The diagonal [group, group] blocks of the covariance of x * diag(1 / s).
inline std::vector<float> group_covariance(const float* x, std::size_t rows, std::size_t n,
                                           std::size_t group, const std::vector<float>& s,
                                           engine::thread_pool& pool) {
  auto xt = transpose(x, rows, n, pool);
  for (std::size_t c = 0; c < n; ++c)
    for (std::size_t r = 0; r < rows; ++r) xt[c * rows + r] /= s[c];
  std::vector<float> cov(n * group);
  for (std::size_t g = 0; g < n / group; ++g) {
    const float* base = xt.data() + g * group * rows;
    engine::matmul_ordered(base, group, rows, base, rows, group, cov.data() + g * group * group,
                           group, pool);
  }
  const float inv = 1.0f / static_cast<float>(rows);
  for (auto& v : cov) v *= inv;
  return cov;
}

// Diagonal blocks of a full covariance, rescaled by 1 / (s_a s_b).
inline std::vector<float> blocks_of(const std::vector<float>& c, std::size_t n, std::size_t group,
                                    const std::vector<float>& s) {
  std::vector<float> cov(n * group);
  for (std::size_t g = 0; g < n / group; ++g)
    for (std::size_t a = 0; a < group; ++a)
      for (std::size_t b = 0; b < group; ++b) {
        const std::size_t i = g * group + a, j = g * group + b;
        cov[g * group * group + a * group + b] = c[i * n + j] / (s[i] * s[j]);
      }
  return cov;
}

// Diagonal [group, group] blocks of x's covariance rescaled for the input x * diag(1 / s).
inline std::vector<float> rescale_blocks(const std::vector<float>& blocks, std::size_t n,
                                         std::size_t group, const std::vector<float>& s) {
  std::vector<float> out(blocks.size());
  for (std::size_t g = 0; g < n / group; ++g)
    for (std::size_t a = 0; a < group; ++a)
      for (std::size_t b = 0; b < group; ++b)
        out[g * group * group + a * group + b] = blocks[g * group * group + a * group + b] /
                                                 (s[g * group + a] * s[g * group + b]);
  return out;
}

// The linear as the candidate s would leave it, back in the unscaled basis:
// Q(clip(half(W * s))) / s, clipped with `cov` (blocks for the scaled input) when given.
inline linear_f32 fake_quant(const linear_f32& l, const std::vector<float>& s, std::size_t group,
                             engine::thread_pool& pool, const std::vector<float>* cov = nullptr) {
  linear_f32 q;
  q.name = l.name, q.out = l.out, q.in = l.in, q.bias = l.bias;
  q.w.resize(l.w.size());
  const engine::ops& k = engine::cpu_ops();
  const auto dot = [&](const float* a, const float* b, std::size_t n) {
    return k.dot_f32_ordered(a, b, n);
  };
  const auto matvec = [&](const float* m, std::size_t rows, const float* v, std::size_t n,
                          float* out) { k.gemm_ordered(m, n, rows, v, n, 1, n, out, 1); };
  pool.parallel_for(l.out, 4, [&](std::size_t b, std::size_t e) {
    if (cov == nullptr)
      return quant::awq::fake_quantize_scaled(l.w.data(), l.in, group, s.data(), q.w.data(), b, e);
    for (std::size_t r = b; r < e; ++r) {
      float* d = q.w.data() + r * l.in;
      for (std::size_t c = 0; c < l.in; ++c) d[c] = quant::awq::half(l.w[r * l.in + c] * s[c]);
      quant::awq::clip_row(d, l.in, group, cov->data(), dot, matvec);
      quant::awq::fake_quantize_row(d, l.in, group);
      for (std::size_t c = 0; c < l.in; ++c) d[c] /= s[c];
    }
  });
  return q;
}

// fp16 guard. Why scaling the linears `ls` by s would put a value of the checkpoint outside fp16,
// or "" when nothing would: each scaled weight W * s, each quantization group's range max - min
// (the numerator of its fp16 scale, which overflows before the weights do when a group holds large
// values of both signs), and the folded `divided` / s (the previous norm weight when
// divided_is_vector, else the previous linear's rows, scaled by row_s or s). 65000 leaves the
// rounding to fp16 room below its maximum, 65504.
inline constexpr float fp16_limit = 65000.0f;
inline std::string weight_overflow(std::span<const linear_f32* const> ls,
                                   const std::vector<float>& s, std::size_t group,
                                   std::span<const float> divided, bool divided_is_vector,
                                   const std::string& divided_name,
                                   const std::vector<float>& row_s = {}) {
  for (const auto* l : ls)
    for (std::size_t r = 0; r < l->out; ++r)
      for (std::size_t g = 0; g < l->in; g += group) {
        float mn = INFINITY, mx = -INFINITY;
        for (std::size_t k = g; k < g + group; ++k) {
          const float v = l->w[r * l->in + k] * s[k];
          if (!(std::fabs(v) < fp16_limit))
            return cat("'", l->name, "' row ", r, " column ", k, ": scaled weight ", v);
          mn = std::min(mn, v), mx = std::max(mx, v);
        }
        if (!(mx - mn < fp16_limit))
          return cat("'", l->name, "' row ", r, " group ", g / group, ": scaled range ", mx - mn,
                     " makes an fp16 scale overflow");
      }
  if (divided_is_vector) {
    for (std::size_t k = 0; k < s.size(); ++k)
      if (!(std::fabs(divided[k] / s[k]) < fp16_limit))
        return cat("'", divided_name, "' element ", k, ": folded value ", divided[k] / s[k]);
  } else {
    const auto& rs = row_s.empty() ? s : row_s;  // the previous linear's row scales
    const std::size_t in = divided.size() / rs.size();
    for (std::size_t r = 0; r < rs.size(); ++r)
      for (std::size_t k = 0; k < in; ++k)
        if (!(std::fabs(divided[r * in + k] / rs[r]) < fp16_limit))
          return cat("'", divided_name, "' row ", r, ": folded value ",
                     divided[r * in + k] / rs[r]);
  }
  return "";
}

// weight_overflow in O(in + rows) per candidate where nothing is near fp16's edge. Rounding is
// monotonic and s > 0, so fl(colmax * s) bounds every |W * s| of a column, 2x its maximum bounds
// every group range, and fl(rowmax / row_s) every folded value of a row: a candidate inside
// those bounds passes the full scan, any other gets the full scan (and its message). The bounds
// are computed once per group of linears; `ls` and `divided` must outlive the guard.
class weight_guard {
 public:
  // divided_rows: the rows of the divided matrix (0 when it is a vector).
  weight_guard(std::span<const linear_f32* const> ls, std::size_t group,
               std::span<const float> divided, std::size_t divided_rows, std::string divided_name,
               engine::thread_pool& pool)
      : ls_(ls.begin(), ls.end()), group_(group), divided_(divided),
        vector_(divided_rows == 0), name_(std::move(divided_name)) {
    const std::size_t in = ls_.front()->in;
    col_max_.assign(in, 0.0f);
    pool.parallel_for(in, 256, [&](std::size_t b, std::size_t e) {
      for (const auto* l : ls_)
        for (std::size_t r = 0; r < l->out; ++r)
          for (std::size_t k = b; k < e; ++k)
            col_max_[k] = std::max(col_max_[k], std::fabs(l->w[r * in + k]));
    });
    if (!vector_) {
      const std::size_t rows = divided_rows, n = divided_.size() / rows;
      row_max_.assign(rows, 0.0f);
      pool.parallel_for(rows, 16, [&](std::size_t b, std::size_t e) {
        for (std::size_t r = b; r < e; ++r)
          for (std::size_t k = 0; k < n; ++k)
            row_max_[r] = std::max(row_max_[r], std::fabs(divided_[r * n + k]));
      });
    }
  }

  // As weight_overflow(ls, s, group, divided, ...) with row_s the divided matrix's row scales
  // (empty: s).
  [[nodiscard]] std::string operator()(const std::vector<float>& s,
                                       const std::vector<float>& row_s = {}) const {
    float m = 0;
    for (std::size_t k = 0; k < s.size(); ++k) m = std::max(m, col_max_[k] * s[k]);
    bool inside = 2.0f * m < fp16_limit;
    if (vector_) {
      for (std::size_t k = 0; inside && k < s.size(); ++k)
        inside = std::fabs(divided_[k] / s[k]) < fp16_limit;
    } else {
      const auto& rs = row_s.empty() ? s : row_s;
      for (std::size_t r = 0; inside && r < rs.size(); ++r) inside = row_max_[r] / rs[r] < fp16_limit;
    }
    if (inside) return "";
    return weight_overflow(ls_, s, group_, divided_, vector_, name_, row_s);
  }

 private:
  std::vector<const linear_f32*> ls_;
  std::size_t group_;
  std::span<const float> divided_;
  bool vector_;
  std::string name_;
  std::vector<float> col_max_, row_max_;
};

// The activation side of the guard: the scaled linears see x / s when served in fp16. act_max is
// each input channel's largest |x| over the calibration tokens.
inline std::string activation_overflow(const std::vector<float>& act_max,
                                       const std::vector<float>& s, const std::string& what) {
  for (std::size_t c = 0; c < s.size(); ++c)
    if (!(act_max[c] / s[c] < fp16_limit))
      return cat(what, " channel ", c, ": calibration activation ", act_max[c] / s[c],
                 " after scaling");
  return "";
}

// Largest |x[t, c]| over rows t of x [rows, n], per channel c.
inline std::vector<float> channel_abs_max(const float* x, std::size_t rows, std::size_t n) {
  std::vector<float> m(n, 0.0f);
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t c = 0; c < n; ++c) m[c] = std::max(m[c], std::fabs(x[t * n + c]));
  return m;
}

// The candidate list: the grid of ratios, then s = 1.
struct candidate {
  float alpha;
  std::vector<float> s;
};
inline std::vector<candidate> candidates(const std::vector<float>& xm, const std::vector<float>& wm,
                                         const awq_options& o) {
  std::vector<candidate> c;
  for (int i = 0; i < o.grid; ++i) {
    const float a = static_cast<float>(i) / static_cast<float>(o.grid);
    c.push_back({a, quant::awq::candidate_scales(xm, wm, a)});
  }
  if (o.rtn_candidate || c.empty()) c.push_back({-1.0f, std::vector<float>(xm.size(), 1.0f)});
  return c;
}

// Runs loss(candidate) for every candidate whose folding fits fp16 (overflow(s) returns "") and
// returns the best scales; s = 1 with rep.fp16_fallback set when none fits.
template <class Loss, class Overflow>
std::vector<float> pick(const std::vector<candidate>& cands, Loss&& loss, Overflow&& overflow,
                        group_report& rep) {
  double best = INFINITY;
  std::vector<float> best_s(cands.front().s.size(), 1.0f);
  rep.searched = true;
  for (const auto& c : cands) {
    if (auto why = overflow(c.s); !why.empty()) {
      if (rep.rejected++ == 0) rep.first_rejection = std::move(why);
      continue;
    }
    const double l = loss(c.s);
    if (c.alpha < 0) rep.loss_rtn = l;
    if (l < best) {
      best = l;
      best_s = c.s;
      rep.alpha = c.alpha;
    }
  }
  rep.loss = std::isfinite(best) ? best : 0.0;
  if (!std::isfinite(best)) rep.fp16_fallback = true, rep.alpha = -1;
  return best_s;
}

// MSE of x W'^T against x W^T from the input covariance: mean over rows of d^T C d, d = W' - W.
inline double linear_loss(const linear_f32& w, const linear_f32& wq, const std::vector<float>& cov,
                          engine::thread_pool& pool) {
  const std::size_t in = w.in, out = w.out;
  std::vector<float> d(out * in), m(out * in);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = wq.w[i] - w.w[i];
  engine::matmul_ordered(cov.data(), in, in, d.data(), in, out, m.data(), in, pool);
  double s = 0;
  for (std::size_t i = 0; i < d.size(); ++i) s += static_cast<double>(m[i]) * d[i];
  return s / static_cast<double>(out);
}

inline void scale_cols(linear_f32& l, const std::vector<float>& s, engine::thread_pool& pool) {
  pool.parallel_for(l.out, 16, [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r)
      for (std::size_t k = 0; k < l.in; ++k)
        l.w[r * l.in + k] = quant::awq::half(l.w[r * l.in + k] * s[k]);
  });
}
inline void divide_rows(linear_f32& l, const std::vector<float>& s, engine::thread_pool& pool) {
  pool.parallel_for(l.out, 16, [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r) {
      for (std::size_t k = 0; k < l.in; ++k)
        l.w[r * l.in + k] = quant::awq::half(l.w[r * l.in + k] / s[r]);
      if (!l.bias.empty()) l.bias[r] /= s[r];
    }
  });
}
inline void divide_vec(std::vector<float>& v, const std::vector<float>& s) {
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = quant::awq::half(v[i] / s[i]);
}

inline void clip_linear(linear_f32& l, const std::vector<float>& cov, std::size_t group,
                        engine::thread_pool& pool) {
  const engine::ops& k = engine::cpu_ops();
  const auto dot = [&](const float* a, const float* b, std::size_t n) {
    return k.dot_f32_ordered(a, b, n);
  };
  const auto matvec = [&](const float* m, std::size_t rows, const float* v, std::size_t n,
                          float* out) { k.gemm_ordered(m, n, rows, v, n, 1, n, out, 1); };
  pool.parallel_for(l.out, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r)
      quant::awq::clip_row(l.w.data() + r * l.in, l.in, group, cov.data(), dot, matvec);
  });
}

inline std::vector<std::byte> f16_bytes(std::span<const float> v, const std::string& name) {
  std::vector<std::byte> b(v.size() * 2);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!(std::fabs(v[i]) <= 65504.0f))
      throw error(error::kind::unsupported,
                  cat("tensor '", name, "': value ", v[i], " does not fit in fp16"));
    const std::uint16_t h = fp32_to_fp16(v[i]);
    std::memcpy(b.data() + 2 * i, &h, 2);
  }
  return b;
}

}  // namespace detail

}  // namespace qforge::awq
