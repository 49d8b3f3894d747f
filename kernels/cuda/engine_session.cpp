// SPDX-License-Identifier: MIT
// engine::cuda_session (engine/cuda/session.hpp): plain C++ over the CUDA runtime, compiled by the
// host compiler into qforge::kernels, so it can read engine::model (which pulls in xsimd and must
// never reach nvcc) and call the kernels through their host APIs (matvec.hpp, ops.hpp,
// session_ops.hpp). One decode step is the step of the device benchmark
// (tests/engine/cuda_engine_main.cu): fused q/k/v and gate/up products, RMSNorm / SwiGLU inside
// the matvecs, RoPE with the cache store, attention, all on one stream and, for single tokens,
// captured once into a CUDA graph whose inputs (embedding row, position) and output (logits) are
// copies from and to pinned host buffers. Embedding rows are looked up on the host from the model
// (any stored type, the CPU session's exact floats) and uploaded with the step.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/engine/cuda/matvec.hpp"
#include "qforge/engine/cuda/ops.hpp"
#include "qforge/engine/cuda/session.hpp"
#include "qforge/engine/cuda/session_ops.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/model.hpp"

namespace qforge::engine {

namespace ec = engine::cuda;

bool cuda_device_available() noexcept {
  int n = 0;
  const bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

namespace {

// One cudaMalloc allocation.
class dbuf {
 public:
  dbuf() = default;
  explicit dbuf(std::size_t bytes) : bytes_(bytes) {
    if (bytes) QFORGE_CUDA_CHECK(cudaMalloc(&p_, bytes));
  }
  ~dbuf() {
    if (p_) cudaFree(p_);
  }
  dbuf(dbuf&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  dbuf& operator=(dbuf&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = std::exchange(o.p_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  template <class T = void>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(p_);
  }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

// Page-locked host memory (the graph's copies read and write it at fixed addresses).
class pinned {
 public:
  pinned() = default;
  explicit pinned(std::size_t bytes) {
    if (bytes) QFORGE_CUDA_CHECK(cudaMallocHost(&p_, bytes));
  }
  ~pinned() {
    if (p_) cudaFreeHost(p_);
  }
  pinned(pinned&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  pinned& operator=(pinned&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFreeHost(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  template <class T>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

template <class T>
dbuf upload(const T* host, std::size_t n) {
  dbuf d(n * sizeof(T));
  if (n) QFORGE_CUDA_CHECK(cudaMemcpy(d.as(), host, n * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
dbuf upload(const std::vector<float>& v) { return upload(v.data(), v.size()); }

// How one part of a (possibly concatenated) projection is held on the device.
enum class wkind { f32, f16, blocks, awq };

struct dmat {
  wkind kind = wkind::f32;
  quant::qtype type = quant::qtype::f32;  // blocks: the GGUF type; f16: f16
  std::size_t rows = 0, cols = 0;
  dbuf data, qzeros, scales;
  ec::awq_matrix awq;
  bool own = false;  // our matvec kernel takes it (small batches)
  [[nodiscard]] std::size_t bytes() const noexcept {
    return data.bytes() + qzeros.bytes() + scales.bytes();
  }
};

using proj = std::vector<dmat>;  // parts, stacked along the output rows

// The storage class a host matrix gets, and whether two matrices can share one part.
struct storage {
  wkind kind;
  quant::qtype type;
  std::size_t group;
  bool operator==(const storage&) const = default;
};

bool awq_ok(const quant::awq::gemm_view& a) noexcept {
  return a.out % 8 == 0 && a.in % 32 == 0 && a.group % 32 == 0 && a.group != 0 &&
         a.in % a.group == 0;
}

bool matvec_ok(quant::qtype t, std::size_t cols) noexcept {
  if (!ec::can_matvec(t)) return false;
  const bool k = t == quant::qtype::q4_k || t == quant::qtype::q6_k;
  return cols % (k ? 256 : 64) == 0;
}

// A LoRA adapter attached to a linear (engine/lora.hpp, where the matrix type has one).
template <class M>
bool has_adapter(const M& m) noexcept {
  if constexpr (requires { m.lora; }) return m.lora != nullptr;
  else return false;
}

storage storage_of(const matrix& m, bool f16_math) {
  using quant::qtype;
  if (has_adapter(m))
    throw error(error::kind::unsupported,
                "cuda session: LoRA adapters are not supported on CUDA (use --device cpu)");
  if (m.awq.qweight != nullptr) {
    if (awq_ok(m.awq)) return {wkind::awq, qtype::f16, m.awq.group};
    return {wkind::f16, qtype::f16, 0};  // expanded at load
  }
  switch (m.type) {
    case qtype::f32: return {wkind::f32, qtype::f32, 0};
    case qtype::bf16: return {f16_math ? wkind::f16 : wkind::f32, f16_math ? qtype::f16 : qtype::f32, 0};
    case qtype::f16: return {wkind::f16, qtype::f16, 0};
    default:
      if (matvec_ok(m.type, m.cols)) return {wkind::blocks, m.type, 0};
      if (ec::can_expand(m.type)) return {wkind::f16, qtype::f16, 0};  // dequantized at load
      throw error(error::kind::unsupported,
                  cat("cuda session: no CUDA path for weight type ", quant::name(m.type)));
  }
}

}  // namespace

struct cuda_session::impl {
  const model& m;
  const model_config& c;
  cuda_options o;
  bool f16_math = false, pdl = false;
  std::size_t ctx = 0, H = 0, D = 0, F = 0, V = 0, qd = 0, kvd = 0, qkv_rows = 0, chunk = 0;
  std::size_t n_past = 0;
  cudaStream_t stream = nullptr;
  std::unique_ptr<ec::blas> blas;
  ec::awq_workspace ws;

  struct layer {
    proj qkv, o, gate_up, down;
    dbuf attn_norm, ffn_norm, q_norm, k_norm, bias;
  };
  std::vector<layer> layers;
  proj head;
  dbuf out_norm, rope, kv, pos;
  // Activations for `chunk` tokens: residual, normed copy, q|k|v, attention output, gate|up,
  // SwiGLU output, an fp16 copy of any of them, logits of the head's rows.
  dbuf x, xn, qkv, att, gu, act, h16, logits, wsc32, wsc16;
  pinned emb_h, pos_h, logits_h;
  std::size_t weight_bytes = 0;
  std::size_t n_own = 0, n_cublas = 0, n_dequant = 0;
  cudaGraphExec_t graph = nullptr;
  bool graph_int8 = true;  // the activation mode the graph was captured with
  bool warmed = false;  // one eager single-token step ran (cuBLAS initialised before capture)

  impl(const model& mm, std::size_t max_ctx, const cuda_options& opts)
      : m(mm), c(mm.config()), o(opts) {
    if (!cuda_device_available()) throw error(error::kind::cuda, "cuda session: no CUDA device");
    QFORGE_CUDA_CHECK(cudaSetDevice(o.device));
    cudaDeviceProp prop{};
    QFORGE_CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
    f16_math = o.dense == cuda_options::math::f16;
    pdl = o.pdl && prop.major >= 9;
    ctx = max_ctx ? max_ctx : c.max_ctx;
    H = c.hidden, D = c.head_dim, F = c.ffn, V = c.vocab;
    qd = std::size_t{c.n_heads} * D, kvd = std::size_t{c.n_kv_heads} * D;
    qkv_rows = qd + 2 * kvd;
    chunk = std::max<std::size_t>(1, std::min(o.chunk, ctx));
    if (D > 256)
      throw error(error::kind::unsupported, cat("cuda session: head_dim ", D, " (at most 256)"));
    if (ctx * sizeof(float) > 227 * 1024)
      throw error(error::kind::unsupported,
                  cat("cuda session: a context of ", ctx, " positions exceeds the attention "
                      "kernel's shared memory (at most ", 227 * 1024 / 4, ")"));
    QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    blas = std::make_unique<ec::blas>();

    std::size_t awq_in = 0, awq_out = 0;
    for (const auto& L : m.layers) {
      layer d;
      d.qkv = load({&L.wq, &L.wk, &L.wv});
      d.o = load({&L.wo});
      d.gate_up = load({&L.gate, &L.up});
      d.down = load({&L.down});
      d.attn_norm = upload(L.attn_norm);
      d.ffn_norm = upload(L.ffn_norm);
      if (c.qk_norm) d.q_norm = upload(L.q_norm), d.k_norm = upload(L.k_norm);
      if (c.qkv_bias) {
        std::vector<float> b(L.bq);
        b.insert(b.end(), L.bk.begin(), L.bk.end());
        b.insert(b.end(), L.bv.begin(), L.bv.end());
        d.bias = upload(b);
      }
      for (const proj* p : {&d.qkv, &d.o, &d.gate_up, &d.down})
        for (const auto& part : *p)
          if (part.kind == wkind::awq)
            awq_in = std::max(awq_in, part.cols), awq_out = std::max(awq_out, part.rows);
      layers.push_back(std::move(d));
    }
    head = load({&m.output});
    for (const auto& part : head)
      if (part.kind == wkind::awq)
        awq_in = std::max(awq_in, part.cols), awq_out = std::max(awq_out, part.rows);
    if (awq_in) ws = ec::awq_workspace(awq_in, awq_out);
    out_norm = upload(m.output_norm);

    std::vector<double> inv_freq(D / 2);
    for (std::uint32_t i = 0; i < D / 2; ++i) inv_freq[i] = c.inv_freq(i);
    rope = upload(ec::rope_table(inv_freq, ctx, c.rope_linear_factor));
    kv = dbuf(2 * c.n_layers * ctx * kvd * sizeof(float));
    pos = dbuf(sizeof(int));

    const std::size_t T = chunk;
    x = dbuf(T * H * 4), xn = dbuf(T * H * 4), qkv = dbuf(T * qkv_rows * 4), att = dbuf(T * qd * 4);
    gu = dbuf(T * 2 * F * 4), act = dbuf(T * F * 4), logits = dbuf(T * V * 4);
    h16 = dbuf(T * std::max({H, F, qd}) * 2);
    emb_h = pinned(T * H * 4), pos_h = pinned(sizeof(int)), logits_h = pinned(T * V * 4);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  }

  ~impl() {
    if (graph) cudaGraphExecDestroy(graph);
    if (stream) {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }

  // --- loading -----------------------------------------------------------------------------------

  // Host rows [r0, r0 + n) of m as 16- or 32-bit floats into dst (F16 / BF16 / F32 sources).
  void put_dense(const matrix& s, bool to_f16, void* dst) {
    using quant::qtype;
    const std::size_t n = s.rows * s.cols;
    if ((s.type == qtype::f16 && to_f16) || (s.type == qtype::f32 && !to_f16)) {
      QFORGE_CUDA_CHECK(cudaMemcpy(dst, s.data, s.bytes(), cudaMemcpyHostToDevice));
      return;
    }
    std::vector<float> f(n);
    for (std::size_t r = 0; r < s.rows; ++r) lookup_row(s, r, {f.data() + r * s.cols, s.cols});
    if (!to_f16) {
      QFORGE_CUDA_CHECK(cudaMemcpy(dst, f.data(), n * 4, cudaMemcpyHostToDevice));
      return;
    }
    std::vector<std::uint16_t> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(f[i]);
    QFORGE_CUDA_CHECK(cudaMemcpy(dst, h.data(), n * 2, cudaMemcpyHostToDevice));
  }

  // A matrix without a matvec kernel, decoded on the device by its reference decoder (or the AWQ
  // expansion) into F16 rows at dst.
  void put_dequantized(const matrix& s, std::uint16_t* dst) {
    const std::size_t n = s.rows * s.cols;
    dbuf tmp(n * 4);
    if (s.awq.qweight != nullptr) {
      const auto& a = s.awq;
      const dbuf qw = upload(a.qweight, a.in * a.out / 2), qz = upload(a.qzeros, a.in / a.group * a.out / 2),
                 sc = upload(a.scales, a.in / a.group * a.out * 2);
      ec::expand_awq({qw.as<std::uint32_t>(), qz.as<std::uint32_t>(), sc.as<std::uint16_t>(),
                      a.in, a.out, a.group},
                     tmp.as<float>(), stream);
      ec::to_f16(tmp.as<float>(), n, dst, {stream});
      QFORGE_CUDA_CHECK(cudaStreamSynchronize(stream));
      return;
    }
    const dbuf raw = upload(s.data, s.bytes());
    ec::expand(s.type, raw.as(), s.rows, s.cols, tmp.as<float>(), stream);
    ec::to_f16(tmp.as<float>(), n, dst, {stream});
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  // Consecutive matrices of one storage class become one part.
  proj load(std::initializer_list<const matrix*> ms) {
    proj out;
    std::vector<const matrix*> run;
    storage cls{};
    const auto flush = [&] {
      if (run.empty()) return;
      out.push_back(make_part(run, cls));
      run.clear();
    };
    for (const matrix* mp : ms) {
      const storage s = storage_of(*mp, f16_math);
      if (!run.empty() && !(s == cls)) flush();
      cls = s;
      run.push_back(mp);
    }
    flush();
    return out;
  }

  dmat make_part(const std::vector<const matrix*>& ms, const storage& cls) {
    dmat d;
    d.kind = cls.kind;
    d.type = cls.type;
    d.cols = ms.front()->cols;
    for (const matrix* mp : ms) d.rows += mp->rows;
    if (cls.kind == wkind::awq) {
      // AutoAWQ keeps outputs along the packed columns: stack each input row's packs.
      const std::size_t in = d.cols, g = cls.group, groups = in / g, packs = d.rows / 8;
      std::vector<std::uint32_t> qw(in * packs), qz(groups * packs);
      std::vector<std::uint16_t> sc(groups * d.rows);
      std::size_t p0 = 0;
      for (const matrix* mp : ms) {
        const auto& a = mp->awq;
        const std::size_t np = a.out / 8;
        for (std::size_t k = 0; k < in; ++k)
          std::memcpy(qw.data() + k * packs + p0, a.qweight + 4 * k * np, 4 * np);
        for (std::size_t q = 0; q < groups; ++q) {
          std::memcpy(qz.data() + q * packs + p0, a.qzeros + 4 * q * np, 4 * np);
          std::memcpy(sc.data() + q * d.rows + 8 * p0, a.scales + 2 * q * a.out, 2 * a.out);
        }
        p0 += np;
      }
      d.data = upload(qw.data(), qw.size());
      d.qzeros = upload(qz.data(), qz.size());
      d.scales = upload(sc.data(), sc.size());
      d.awq = {d.data.as<std::uint32_t>(), d.qzeros.as<std::uint32_t>(),
               d.scales.as<std::uint16_t>(), in, d.rows, g};
      d.own = true;
      ++n_own;
    } else if (cls.kind == wkind::blocks) {
      const std::size_t rb = ms.front()->row_bytes;
      d.data = dbuf(d.rows * rb);
      std::size_t r0 = 0;
      for (const matrix* mp : ms) {
        QFORGE_CUDA_CHECK(cudaMemcpy(d.data.as<std::byte>() + r0 * rb, mp->data, mp->bytes(),
                                     cudaMemcpyHostToDevice));
        r0 += mp->rows;
      }
      d.own = true;
      ++n_own;
    } else {
      const bool h = cls.kind == wkind::f16;
      const std::size_t es = h ? 2 : 4;
      d.data = dbuf(d.rows * d.cols * es);
      std::size_t r0 = 0;
      for (const matrix* mp : ms) {
        auto* dst = d.data.as<std::byte>() + r0 * d.cols * es;
        const bool dense = mp->awq.qweight == nullptr &&
                           (mp->type == quant::qtype::f16 || mp->type == quant::qtype::bf16 ||
                            mp->type == quant::qtype::f32);
        if (dense) {
          put_dense(*mp, h, dst);
        } else {
          put_dequantized(*mp, reinterpret_cast<std::uint16_t*>(dst));
          ++n_dequant;
        }
        r0 += mp->rows;
      }
      // F16 rows go through our F16 matvec for small batches under float32 math.
      d.own = h && !f16_math && matvec_ok(quant::qtype::f16, d.cols);
      if (d.own) ++n_own;
      else ++n_cublas;
    }
    weight_bytes += d.bytes();
    return d;
  }

  // --- products ----------------------------------------------------------------------------------

  enum class src { plain, norm, swiglu };

  // How part p multiplies T tokens.
  enum class path { own, f32, f16, expand };
  [[nodiscard]] path path_of(const dmat& p, std::size_t T) const noexcept {
    if (p.kind == wkind::f32) return path::f32;
    if (p.kind == wkind::f16 && f16_math) return path::f16;
    if (p.own && T <= o.small_batch) return path::own;
    return path::expand;
  }

  // Room to expand any part of any projection for T tokens (before a graph capture: no
  // allocation may happen inside one).
  void ensure_scratch(std::size_t T) {
    std::size_t need = 0;
    const auto scan = [&](const proj& pr) {
      for (const auto& p : pr)
        if (path_of(p, T) == path::expand) need = std::max(need, p.rows * p.cols);
    };
    for (const auto& L : layers) scan(L.qkv), scan(L.o), scan(L.gate_up), scan(L.down);
    scan(head);
    if (need * 4 > wsc32.bytes()) wsc32 = dbuf(need * 4);
    if (f16_math && need * 2 > wsc16.bytes()) wsc16 = dbuf(need * 2);
  }

  // y[t, 0 .. rows) (+)= input[t] W^T over the parts, where input is `in` itself (plain, ld
  // in_ld), RMSNorm(in) * norm_w (norm, ld in_ld = cols) or SwiGLU of in's [gate | up] rows
  // (swiglu, ld 2 * cols). Our kernels take norm / SwiGLU as a fused prologue; other paths get
  // them materialised once (float and, when needed, fp16).
  void project(const proj& parts, src op, const float* in, std::size_t in_ld, const float* norm_w,
               std::size_t T, float* y, std::size_t ldy, bool acc, const ec::launch_opts& lo) {
    const std::size_t cols = parts.front().cols;
    bool need32 = false, need16 = false;
    for (const auto& p : parts) {
      const path w = path_of(p, T);
      if (w == path::f16 || (w == path::expand && f16_math)) need16 = true;
      else if (w != path::own) need32 = true;
    }
    const float* xf = in;  // the materialised float input
    std::size_t ldf = in_ld;
    std::uint16_t* xh = h16.as<std::uint16_t>();
    if (need32 || need16) {
      if (op == src::norm) {
        ec::rms_norm(in, norm_w, cols, T, c.rms_eps, xn.as<float>(), need16 ? xh : nullptr, lo);
        xf = xn.as<float>(), ldf = cols;
      } else if (op == src::swiglu) {
        ec::swiglu(in, cols, T, act.as<float>(), need16 ? xh : nullptr, lo);
        xf = act.as<float>(), ldf = cols;
      } else if (need16) {
        QFORGE_ASSERT(in_ld == cols);
        ec::to_f16(in, T * cols, xh, lo);
      }
    }
    ec::x_prologue pre;
    if (op == src::norm) {
      pre.kind = ec::x_prologue::op::rms_norm;
      pre.norm_weight = norm_w;
      pre.eps = c.rms_eps;
    } else if (op == src::swiglu) {
      pre.kind = ec::x_prologue::op::swiglu;
    }
    std::size_t r0 = 0;
    for (const auto& p : parts) {
      float* yp = y + r0;
      switch (path_of(p, T)) {
        case path::own:
          if (p.kind == wkind::awq)
            ec::awq_matvec(p.awq, in, in_ld, T, yp, ldy, acc, ws, lo, pre);
          else
            ec::matvec(p.type, p.data.as(), p.rows, p.cols, in, in_ld, T, yp, ldy, acc, lo, pre);
          break;
        case path::f32:
          ec::dense_f32(*blas, p.data.as<float>(), p.rows, p.cols, xf, ldf, T, yp, ldy, acc, stream);
          break;
        case path::f16:
          ec::dense_f16(*blas, p.data.as<std::uint16_t>(), p.rows, p.cols, xh, cols, T, yp, ldy,
                        acc, stream);
          break;
        case path::expand: {
          float* w32 = wsc32.as<float>();
          if (p.kind == wkind::awq) ec::expand_awq(p.awq, w32, stream);
          else ec::expand(p.type, p.data.as(), p.rows, p.cols, w32, stream);
          if (f16_math) {
            ec::to_f16(w32, p.rows * p.cols, wsc16.as<std::uint16_t>(), {stream});
            ec::dense_f16(*blas, wsc16.as<std::uint16_t>(), p.rows, p.cols, xh, cols, T, yp, ldy,
                          acc, stream);
          } else {
            ec::dense_f32(*blas, w32, p.rows, p.cols, xf, ldf, T, yp, ldy, acc, stream);
          }
          break;
        }
      }
      r0 += p.rows;
    }
  }

  // --- the forward pass --------------------------------------------------------------------------

  // Enqueues T tokens whose embeddings are in emb_h and whose first position is in pos_h: the
  // residual stream through every layer, then (head_rows > 0) the logits of the last head_rows
  // tokens into logits_h.
  void enqueue(std::size_t T, std::size_t head_rows, const ec::launch_opts& lo) {
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(pos.as(), pos_h.as<int>(), sizeof(int),
                                      cudaMemcpyHostToDevice, stream));
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(x.as(), emb_h.as<float>(), T * H * 4,
                                      cudaMemcpyHostToDevice, stream));
    float* xs = x.as<float>();
    float* q = qkv.as<float>();
    const int* pp = pos.as<int>();
    const bool neox = c.rope == rope_style::neox;
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const layer& L = layers[l];
      float* kc = kv.as<float>() + 2 * l * ctx * kvd;
      float* vc = kc + ctx * kvd;
      project(L.qkv, src::norm, xs, H, L.attn_norm.as<float>(), T, q, qkv_rows, false, lo);
      if (c.qkv_bias) ec::add_bias(q, qkv_rows, qkv_rows, T, L.bias.as<float>(), lo);
      if (c.qk_norm) {
        ec::head_rms_norm(q, qkv_rows, c.n_heads, D, T, L.q_norm.as<float>(), c.rms_eps, lo);
        ec::head_rms_norm(q + qd, qkv_rows, c.n_kv_heads, D, T, L.k_norm.as<float>(), c.rms_eps, lo);
      }
      ec::rope_store(q, qkv_rows, q + qd, qkv_rows, q + qd + kvd, qkv_rows, T, c.n_heads,
                     c.n_kv_heads, D, neox, rope.as<float>(), pp, kc, vc, lo);
      ec::attention(q, qkv_rows, T, kc, vc, c.n_heads, c.n_kv_heads, D, ctx, pp, att.as<float>(),
                    qd, nullptr, lo);
      project(L.o, src::plain, att.as<float>(), qd, nullptr, T, xs, H, true, lo);
      project(L.gate_up, src::norm, xs, H, L.ffn_norm.as<float>(), T, gu.as<float>(), 2 * F,
              false, lo);
      project(L.down, src::swiglu, gu.as<float>(), 2 * F, nullptr, T, xs, H, true, lo);
    }
    if (head_rows == 0) return;
    project(head, src::norm, xs + (T - head_rows) * H, H, out_norm.as<float>(), head_rows,
            logits.as<float>(), V, false, lo);
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(logits_h.as<float>(), logits.as(), head_rows * V * 4,
                                      cudaMemcpyDeviceToHost, stream));
  }

  // Single-token K-quant products take 8-bit activations when the CPU engine's decode does
  // (engine::decode_activation_mode), so both devices decode alike and tests can switch both.
  static bool int8_decode() noexcept {
    return decode_activation_mode().load(std::memory_order_relaxed) == decode_activations::q8;
  }

  void capture() {
    ec::launch_opts lo;
    lo.stream = stream;
    lo.pdl = pdl;
    lo.int8_activations = graph_int8 = int8_decode();
    cudaGraph_t g = nullptr;
    QFORGE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue(1, 1, lo);
    } catch (...) {
      cudaStreamEndCapture(stream, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    QFORGE_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
    const cudaError_t e = cudaGraphInstantiate(&graph, g, 0);
    cudaGraphDestroy(g);
    QFORGE_CUDA_CHECK(e);
  }

  // T <= chunk tokens at positions n_past ..; the logits of the last head_rows into out.
  void run(std::span<const std::int32_t> ids, std::size_t head_rows, float* out) {
    const std::size_t T = ids.size();
    for (std::size_t t = 0; t < T; ++t)
      lookup_row(m.token_embd, static_cast<std::size_t>(ids[t]), {emb_h.as<float>() + t * H, H});
    *pos_h.as<int>() = static_cast<int>(n_past);
    ensure_scratch(T);
    const std::size_t wanted = out != nullptr ? head_rows : 0;
    if (T == 1 && o.graph && warmed) {
      if (graph != nullptr && graph_int8 != int8_decode()) {
        cudaGraphExecDestroy(graph);
        graph = nullptr;
      }
      if (graph == nullptr) capture();
      QFORGE_CUDA_CHECK(cudaGraphLaunch(graph, stream));  // always computes the logits
    } else {
      ec::launch_opts lo;
      lo.stream = stream;
      lo.int8_activations = int8_decode();
      enqueue(T, head_rows, lo);
      if (T == 1) warmed = true;
    }
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (wanted) std::memcpy(out, logits_h.as<float>(), wanted * V * sizeof(float));
    n_past += T;
  }
};

cuda_session::cuda_session(const model& m, std::size_t max_ctx, const cuda_options& o)
    : p_(std::make_unique<impl>(m, max_ctx, o)) {}
cuda_session::~cuda_session() = default;
cuda_session::cuda_session(cuda_session&&) noexcept = default;
cuda_session& cuda_session::operator=(cuda_session&&) noexcept = default;

std::size_t cuda_session::n_past() const noexcept { return p_->n_past; }
std::size_t cuda_session::capacity() const noexcept { return p_->ctx; }
const model& cuda_session::weights() const noexcept { return p_->m; }
void cuda_session::reset() noexcept { p_->n_past = 0; }
void cuda_session::truncate(std::size_t n) noexcept { p_->n_past = std::min(p_->n_past, n); }
std::size_t cuda_session::device_weight_bytes() const noexcept { return p_->weight_bytes; }

std::string cuda_session::describe() const {
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, p_->o.device);
  return cat(prop.name, ", ", p_->f16_math ? "f16" : "f32", " dense math, ",
             p_->weight_bytes >> 20, " MiB of weights (", p_->n_own, " parts on our kernels, ",
             p_->n_cublas, " on cuBLAS only, ", p_->n_dequant, " matrices dequantized to F16)",
             p_->o.graph ? ", decode in a CUDA graph" : "", p_->pdl ? " with PDL" : "");
}

void cuda_session::eval(std::span<const std::int32_t> tokens, std::span<float> logits) {
  impl& s = *p_;
  const std::size_t T = tokens.size(), V = s.V;
  if (T == 0) return;
  if (s.n_past + T > s.ctx)
    throw error(error::kind::argument,
                cat("eval: ", s.n_past, " cached + ", T, " new tokens exceed the cache of ", s.ctx));
  const bool all = logits.size() == T * V;
  if (!logits.empty() && !all && logits.size() != V)
    throw error(error::kind::argument, cat("eval: logits buffer of ", logits.size(),
                                           " floats for ", T, " tokens of ", V, " logits"));
  for (auto t : tokens)
    if (t < 0 || static_cast<std::size_t>(t) >= V)
      throw error(error::kind::argument, cat("eval: token id ", t, " outside [0, ", V, ")"));
  for (std::size_t t0 = 0; t0 < T; t0 += s.chunk) {
    const std::size_t n = std::min(s.chunk, T - t0);
    const bool last = t0 + n == T;
    if (all) s.run(tokens.subspan(t0, n), n, logits.data() + t0 * V);
    else s.run(tokens.subspan(t0, n), last && !logits.empty() ? 1 : 0,
               last && !logits.empty() ? logits.data() : nullptr);
  }
}

}  // namespace qforge::engine
