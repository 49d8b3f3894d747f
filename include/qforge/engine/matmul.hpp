// SPDX-License-Identifier: MIT
// Products of activations with weight matrices kept in their stored encoding: a `matrix` is a view of
// row-major [rows, cols] weights of one GGUF type (F32, F16, BF16, Q8_0, or any type with a quant
// family decoder), read in place from the memory map. y = x W^T is split across the pool by output
// rows, so each thread owns its outputs and results do not depend on the thread count. One token
// (decode) takes a dot product per row straight on the stored bytes: F16/BF16 fused with float
// activations; Q8_0 and K-quant rows against activations quantized once per product to 8 bits
// with integer multiply-adds, as llama.cpp does (engine/quant_dot.hpp; decode_activations::f32
// turns that off); other block types decoded one row at a time into a small per-thread buffer;
// AWQ linears (AutoAWQ's GEMM layout) through the vector kernel of engine/awq_gemv_simd.hpp, split
// by 16-pack chunks. Several tokens (prefill) convert a few rows to float once and run the
// register-blocked kernel over all tokens, so the conversion cost is paid once per row rather than
// once per token.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/core/error.hpp"
#include "qforge/engine/kernels.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/quant/awq/matmul.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::engine {

// y += scale * B (A x): a LoRA adapter's update of one linear, kept apart from the (possibly
// quantized) base weights so the same adapter runs on every artefact (engine/lora.hpp).
struct low_rank {
  std::size_t rank = 0;
  std::vector<float> a;  // [rank, cols]
  std::vector<float> b;  // [rows, rank]
  float scale = 1;
};

struct matrix {
  quant::qtype type = quant::qtype::f32;
  std::size_t rows = 0, cols = 0;
  std::size_t row_bytes = 0;
  const std::byte* data = nullptr;  // rows * row_bytes bytes; blocks aligned as their struct needs
  // Set for a linear stored in AutoAWQ's GEMM layout (engine/awq_weights.hpp): matmul() then reads
  // it through quant/awq/matmul.hpp and ignores type / data.
  quant::awq::gemm_view awq{};  // awq.qweight != nullptr marks it
  std::shared_ptr<const low_rank> lora{};  // set by attach_lora: added after the base product

  [[nodiscard]] const std::byte* row(std::size_t r) const noexcept { return data + r * row_bytes; }
  [[nodiscard]] std::size_t bytes() const noexcept { return rows * row_bytes; }
};

// Whether the engine can multiply by (and look rows up in) a matrix of type t.
inline bool can_run(quant::qtype t) noexcept {
  using quant::qtype;
  if (t == qtype::f32 || t == qtype::f16 || t == qtype::bf16) return true;
  return static_cast<std::size_t>(t) < backend::max_qtype_id &&
         backend::cpu_kernels()[t].decode != nullptr;
}

// A checked view: `bytes` must hold rows * row_bytes(type, cols). Throws kind::unsupported for a
// type can_run() rejects, kind::format for a size mismatch (`what` names the tensor).
inline matrix make_matrix(quant::qtype type, std::size_t rows, std::size_t cols,
                          std::span<const std::byte> bytes, const std::string& file,
                          const std::string& what) {
  if (!can_run(type))
    throw error(error::kind::unsupported, file,
                cat("tensor '", what, "': the engine has no kernel for type ", quant::name(type)));
  const auto tr = quant::traits(type);
  if (cols % tr->block_elems != 0)
    throw error(error::kind::format, file,
                cat("tensor '", what, "': ", cols, " columns are not whole ", quant::name(type),
                    " blocks"));
  matrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  m.row_bytes = cols / tr->block_elems * tr->block_bytes;
  m.data = bytes.data();
  if (bytes.size() != m.bytes())
    throw error(error::kind::format, file,
                cat("tensor '", what, "': ", bytes.size(), " bytes for [", rows, ", ", cols, "] ",
                    quant::name(type)));
  return m;
}

namespace detail {

// Row r of m as floats into out[0, cols). Never throws (the type was checked by make_matrix).
inline void row_to_f32(const ops& k, const matrix& m, std::size_t r, float* out) noexcept {
  const std::byte* p = m.row(r);
  switch (m.type) {
    case quant::qtype::f32: std::memcpy(out, p, m.cols * sizeof(float)); break;
    case quant::qtype::f16: k.f16_to_f32(p, out, m.cols); break;
    case quant::qtype::bf16: k.bf16_to_f32(p, out, m.cols); break;
    default: backend::cpu_kernels()[m.type].decode(p, m.cols, out); break;
  }
}

inline std::vector<float>& scratch(std::size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// The 8-bit-activation product for a weight type: its activation quantizer, several-row dot and
// the activation bytes per value block; rows is null for types without one.
struct int8_path {
  void (*quantize)(const float*, std::size_t, std::byte*) noexcept = nullptr;
  ops::qrows_fn rows = nullptr;
  std::size_t block_values = 1, block_bytes = 0;
};

inline int8_path int8_path_of(const ops& k, quant::qtype t) noexcept {
  using quant::qtype;
  constexpr std::size_t kq = qdot::qk, kb = sizeof(qdot::act_q8_k);
  switch (t) {
    case qtype::q2_k: return {k.quantize_q8_k, k.rows_q2_k_q8, kq, kb};
    case qtype::q3_k: return {k.quantize_q8_k, k.rows_q3_k_q8, kq, kb};
    case qtype::q4_k: return {k.quantize_q8_k, k.rows_q4_k_q8, kq, kb};
    case qtype::q5_k: return {k.quantize_q8_k, k.rows_q5_k_q8, kq, kb};
    case qtype::q6_k: return {k.quantize_q8_k, k.rows_q6_k_q8, kq, kb};
    case qtype::q8_0:
      return {k.quantize_q8_0, k.rows_q8_0_q8, quant::qk8_0, sizeof(qdot::act_q8_0)};
    default: return {};
  }
}

inline std::byte* act_scratch(std::size_t bytes) {
  thread_local std::vector<std::byte> buf;
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

// One token through an AWQ linear: whole chunks of awq_simd::chunk_packs packs across the pool, the
// last partial chunk (out / 8 not a multiple) through the same kernel on a zero-padded copy, so
// every output is computed alike whatever the thread count.
inline void gemv_awq(const ops& k, const quant::awq::gemm_view& a, const float* x, float* y,
                     thread_pool& pool) {
  constexpr std::size_t C = awq_simd::chunk_packs;
  const std::size_t groups = a.in / a.group, full = a.packs() / C * C, tail = a.packs() - full;
  auto* sums = reinterpret_cast<float*>(act_scratch(groups * sizeof(float)));
  awq_simd::group_sums(x, a.in, a.group, sums);
  // Whole blocks of the kernel's chunk walk per work item where there are enough to share.
  const std::size_t block = C * awq_simd::chunks_per_block;
  const std::size_t grain = full >= 2 * block * pool.size() ? block : C;
  if (full > 0)
    pool.parallel_for(full, grain, [&](std::size_t b, std::size_t e) { k.gemv_awq(a, x, sums, y, b, e); });
  if (tail == 0) return;
  thread_local std::vector<std::byte> pad;
  const std::size_t qw = a.in * C * 4, qz = groups * C * 4, sc = groups * 8 * C * 2;
  pad.assign(qw + qz + sc + 8 * C * sizeof(float), std::byte{0});
  quant::awq::gemm_view t{pad.data(), pad.data() + qw, pad.data() + qw + qz, a.in, 8 * C, a.group};
  for (std::size_t r = 0; r < a.in; ++r)
    std::memcpy(pad.data() + r * C * 4, a.qweight + 4 * (r * a.packs() + full), 4 * tail);
  for (std::size_t g = 0; g < groups; ++g) {
    std::memcpy(pad.data() + qw + g * C * 4, a.qzeros + 4 * (g * a.packs() + full), 4 * tail);
    std::memcpy(pad.data() + qw + qz + g * 8 * C * 2, a.scales + 2 * (g * a.out + 8 * full), 16 * tail);
  }
  auto* out = reinterpret_cast<float*>(pad.data() + qw + qz + sc);
  k.gemv_awq(t, x, sums, out, 0, C);
  std::memcpy(y + 8 * full, out, 8 * tail * sizeof(float));
}

}  // namespace detail

// How single-token products with Q8_0 / K-quant weights treat the activations. q8 (the default):
// quantized once per product to 8 bits and multiplied with integer instructions, several times
// faster; each activation moves by at most half its block's step (max|x| / 254), so decode logits
// differ slightly from prefill logits of the same tokens. f32: weight rows decoded to float, the
// prefill path's arithmetic (for comparisons that need decode == prefill within float rounding).
enum class decode_activations { q8, f32 };
inline std::atomic<decode_activations>& decode_activation_mode() noexcept {
  static std::atomic<decode_activations> mode{decode_activations::q8};
  return mode;
}

// Sets decode_activation_mode() for a scope and restores the previous mode when it ends.
class scoped_decode_activations {
 public:
  explicit scoped_decode_activations(decode_activations m) noexcept
      : was_(decode_activation_mode().exchange(m)) {}
  ~scoped_decode_activations() { decode_activation_mode() = was_; }
  scoped_decode_activations(const scoped_decode_activations&) = delete;
  scoped_decode_activations& operator=(const scoped_decode_activations&) = delete;

 private:
  decode_activations was_;
};

// Row r of m as floats (embedding look-up). out.size() must be m.cols.
inline void lookup_row(const matrix& m, std::size_t r, std::span<float> out) {
  QFORGE_ASSERT(r < m.rows && out.size() == m.cols);
  detail::row_to_f32(cpu_ops(), m, r, out.data());
}

// y[t * ldy + r] = sum_k W[r, k] * x[t * ldx + k] for t < tokens, r < W.rows (ldx >= W.cols,
// ldy >= W.rows). Buffers are the caller's; no allocation except each thread's one-time scratch.
inline void matmul_base(const matrix& w, const float* x, std::size_t ldx, std::size_t tokens,
                        float* y, std::size_t ldy, thread_pool& pool) {
  const ops& k = cpu_ops();
  const std::size_t n = w.cols;
  if (w.awq.qweight != nullptr) {
    const quant::awq::gemm_view& a = w.awq;
    if (tokens == 1) return detail::gemv_awq(k, a, x, y, pool);
    pool.parallel_for(a.packs(), 2, [&](std::size_t b, std::size_t e) {
      float* buf = detail::scratch(16 * n).data();
      for (std::size_t p = b; p < e; p += 2) {
        const std::size_t np = std::min<std::size_t>(2, e - p);
        quant::awq::decode_rows(a, p, p + np, buf);
        k.gemm(buf, n, 8 * np, x, ldx, tokens, n, y + 8 * p, ldy);
      }
    });
    return;
  }
  if (tokens == 1 &&
      decode_activation_mode().load(std::memory_order_relaxed) == decode_activations::q8) {
    if (const detail::int8_path q = detail::int8_path_of(k, w.type); q.rows != nullptr) {
      std::byte* a = detail::act_scratch(n / q.block_values * q.block_bytes);
      q.quantize(x, n, a);
      pool.parallel_for(w.rows, 16, [&](std::size_t b, std::size_t e) {
        q.rows(w.row(b), e - b, a, n, y + b);
      });
      return;
    }
  }
  if (tokens == 1) {
    float (*dot)(const std::byte*, const float*, std::size_t) noexcept = nullptr;
    switch (w.type) {
      case quant::qtype::f32: dot = k.dot_f32; break;
      case quant::qtype::f16: dot = k.dot_f16; break;
      case quant::qtype::bf16: dot = k.dot_bf16; break;
      case quant::qtype::q8_0: dot = k.dot_q8_0; break;
      default: break;
    }
    pool.parallel_for(w.rows, 16, [&](std::size_t b, std::size_t e) {
      if (dot != nullptr) {
        for (std::size_t r = b; r < e; ++r) y[r] = dot(w.row(r), x, n);
        return;
      }
      float* buf = detail::scratch(n).data();
      for (std::size_t r = b; r < e; ++r) {
        detail::row_to_f32(k, w, r, buf);
        y[r] = k.dot_f32(reinterpret_cast<const std::byte*>(buf), x, n);
      }
    });
    return;
  }
  // Rows per conversion: enough to amortise the tile set-up, few enough to stay in L1/L2.
  constexpr std::size_t block_rows = 16;
  const bool direct = w.type == quant::qtype::f32 &&
                      reinterpret_cast<std::uintptr_t>(w.data) % alignof(float) == 0;
  pool.parallel_for(w.rows, block_rows, [&](std::size_t b, std::size_t e) {
    float* buf = direct ? nullptr : detail::scratch(block_rows * n).data();
    for (std::size_t r0 = b; r0 < e; r0 += block_rows) {
      const std::size_t nr = std::min(block_rows, e - r0);
      const float* rows = nullptr;
      if (direct) {
        rows = reinterpret_cast<const float*>(w.row(r0));
      } else {
        for (std::size_t i = 0; i < nr; ++i) detail::row_to_f32(k, w, r0 + i, buf + i * n);
        rows = buf;
      }
      k.gemm(rows, n, nr, x, ldx, tokens, n, y + r0, ldy);
    }
  });
}

// y += scale * B (A x) for each token: A x first (rank values per token), so the update costs
// rank * (rows + cols) multiply-adds per token rather than a dense rows * cols matrix.
inline void add_low_rank(const low_rank& d, std::size_t rows, std::size_t cols, const float* x,
                         std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy,
                         thread_pool& pool) {
  std::vector<float> ax(tokens * d.rank);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t j = 0; j < d.rank; ++j) {
      const float* a = d.a.data() + j * cols;
      const float* xt = x + t * ldx;
      float s = 0;
      for (std::size_t c = 0; c < cols; ++c) s += a[c] * xt[c];
      ax[t * d.rank + j] = s * d.scale;
    }
  pool.parallel_for(rows, 64, [&](std::size_t b, std::size_t e) {
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t r = b; r < e; ++r) {
        const float* br = d.b.data() + r * d.rank;
        float s = 0;
        for (std::size_t j = 0; j < d.rank; ++j) s += br[j] * ax[t * d.rank + j];
        y[t * ldy + r] += s;
      }
  });
}

// y[t * ldy + r] = sum_k w[r * cols + k] * x[t * ldx + k] for r < rows, t < tokens (w: float
// [rows, cols] row-major; ldx >= cols, ldy >= rows), each sum in the canonical order of
// engine/ordered_dot.hpp: the same bits on every backend and thread count, for searches that compare
// float losses (AWQ). Slower than matmul on AVX2 (fewer outputs per register tile); no LoRA.
inline void matmul_ordered(const float* w, std::size_t rows, std::size_t cols, const float* x,
                           std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy,
                           thread_pool& pool) {
  const ops& k = cpu_ops();
  pool.parallel_for(rows, 16, [&](std::size_t b, std::size_t e) {
    k.gemm_ordered(w + b * cols, cols, e - b, x, ldx, tokens, cols, y + b, ldy);
  });
}

// y[t * ldy + r] = sum_k W[r, k] * x[t * ldx + k], plus the LoRA update when one is attached.
inline void matmul(const matrix& w, const float* x, std::size_t ldx, std::size_t tokens, float* y,
                   std::size_t ldy, thread_pool& pool) {
  matmul_base(w, x, ldx, tokens, y, ldy, pool);
  if (w.lora) add_low_rank(*w.lora, w.rows, w.cols, x, ldx, tokens, y, ldy, pool);
}

}  // namespace qforge::engine
