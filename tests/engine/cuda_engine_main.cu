// SPDX-License-Identifier: MIT
// Standalone check and timing of the engine's CUDA kernels (engine/cuda/*.cuh through the host API
// of engine/cuda/matvec.hpp and ops.hpp), built with plain nvcc by bench/device/run_cuda_engine.sh
// on the GPU machine. Checks: every matvec (Q4_K, Q6_K, Q8_0, F16 blocks; AWQ GEMM layout) against
// its CPU reference (the reference decoders of quant/<type>/ref.hpp, or (q - z) * s for AWQ, then
// a double-precision dot product) on fresh random weights and activations, for odd shapes, 1..11
// tokens, each rows-per-warp variant, accumulate on/off, PDL on/off, with outputs poisoned (NaN)
// before each run. Tolerance: |y - ref| <= 1e-4 * sum_k |w_k x_k| per output (float32 sums of a
// few hundred terms per lane land near 1e-6; a misplaced weight costs about 1e-2). Single-token
// Q4_K / Q6_K products quantize x to 8 bits as the CPU engine's decode does: their reference multiplies
// the same codes (x rounded through qdot::quantize_q8_k_ref), and the float path is checked too. The small ops
// against plain loops; split-KV attention against the one-CTA kernel and a double reference
// (relative L2 <= 1e-5, bit-identical with one active slice); then a 2-layer model decoded step by step through a captured CUDA graph, in
// every weight format, against a CPU forward pass on the same weights (max |d logit| <= 1e-3 x
// max |logit| in float32; 1e-2 for the FP16 path, whose activations are rounded to fp16 for
// cuBLAS), and PDL on/off giving bit-identical logits (every kernel sums in a fixed order).
// Timings (--full): device bandwidth (cudaMemcpy D2D, read+write bytes; a read-only kernel), each
// matvec at 4096x4096, 11008x4096 and 4096x11008 (rows x cols = out x in) as the mean over a
// captured graph of back-to-back launches rotating over weight copies 4x the L2, and decode tok/s
// of 7B-shaped models with random weights (FP16 via cuBLAS, AWQ, Q4_K_M, Q8_0) at KV positions
// 64..127 and 512..639, the latter also with split-KV attention off.
// Usage: cuda_engine [--quick|--full|--bench|--profile] [out_dir] (--bench: quick checks, then the
// timings). Exit status 1 on any failed check.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/engine/cuda/common.cuh"
#include "qforge/engine/cuda/matvec.hpp"
#include "qforge/engine/cuda/ops.hpp"
#include "qforge/engine/quant_dot.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/q4_k/ref.hpp"
#include "qforge/quant/q6_k/ref.hpp"
#include "qforge/quant/q8_0/ref.hpp"

using namespace qforge;
namespace ec = qforge::engine::cuda;
using quant::qtype;

namespace {

int failures = 0, passes = 0;
FILE* csv = nullptr;

void expect(bool ok, const std::string& what) {
  if (ok) {
    ++passes;
    return;
  }
  std::printf("FAIL %s\n", what.c_str());
  ++failures;
}

// --- device memory and generators ----------------------------------------------------------------

template <class T>
struct dev {
  T* p = nullptr;
  std::size_t n = 0;
  dev() = default;
  explicit dev(std::size_t count) : n(count) {
    QFORGE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), std::max<std::size_t>(count, 1) * sizeof(T)));
  }
  ~dev() { cudaFree(p); }
  dev(dev&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  dev& operator=(dev&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  void up(const std::vector<T>& v) {
    QFORGE_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> down() const {
    std::vector<T> v(n);
    QFORGE_CUDA_CHECK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};

__host__ __device__ inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform in [-1, 1) from (seed, i).
__host__ __device__ inline float unit(std::uint64_t seed, std::size_t i) {
  return static_cast<float>(mix64(seed * 0x100000001b3ull + i) >> 40) * 0x1p-23f - 1.0f;
}

__global__ void fill_words_kernel(std::uint32_t* p, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x)
    p[i] = static_cast<std::uint32_t>(mix64(seed * 0x100000001b3ull + i));
}
__global__ void fill_f32_kernel(float* p, std::size_t n, std::uint64_t seed, float amp, float off) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x)
    p[i] = off + amp * unit(seed, i);
}
__global__ void fill_f16_kernel(std::uint16_t* p, std::size_t n, std::uint64_t seed, float amp, float off) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x)
    p[i] = fp32_to_fp16(off + amp * unit(seed, i));
}
// Sets the fp16 scales of random GGUF blocks to sane magnitudes (random bits could be inf/NaN).
__global__ void fix_scales_kernel(std::uint8_t* p, std::size_t nb, int type, std::uint64_t seed, float amp) {
  for (std::size_t b = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; b < nb; b += std::size_t{gridDim.x} * blockDim.x) {
    const float u = unit(seed, 2 * b), v = unit(seed, 2 * b + 1);
    if (type == static_cast<int>(qtype::q4_k)) {
      auto* blk = reinterpret_cast<quant::block_q4_k*>(p) + b;
      blk->d = fp32_to_fp16(amp * (0.6f + 0.4f * u));
      blk->dmin = fp32_to_fp16(amp * (0.5f + 0.5f * v));
    } else if (type == static_cast<int>(qtype::q6_k)) {
      reinterpret_cast<quant::block_q6_k*>(p)[b].d = fp32_to_fp16(amp * u);
    } else {
      reinterpret_cast<quant::block_q8_0*>(p)[b].d = fp32_to_fp16(amp * u);
    }
  }
}

void fill_words(void* p, std::size_t bytes, std::uint64_t seed) {
  fill_words_kernel<<<1024, 256>>>(static_cast<std::uint32_t*>(p), bytes / 4, seed);
  QFORGE_CUDA_CHECK_LAUNCH();
}
void fill_f32(float* p, std::size_t n, std::uint64_t seed, float amp, float off = 0.0f) {
  fill_f32_kernel<<<1024, 256>>>(p, n, seed, amp, off);
  QFORGE_CUDA_CHECK_LAUNCH();
}
void fill_f16(std::uint16_t* p, std::size_t n, std::uint64_t seed, float amp, float off = 0.0f) {
  fill_f16_kernel<<<1024, 256>>>(p, n, seed, amp, off);
  QFORGE_CUDA_CHECK_LAUNCH();
}

std::size_t row_bytes(qtype t, std::size_t cols) {
  const auto tr = quant::traits(t);
  return cols / tr->block_elems * tr->block_bytes;
}

// Random weights of a GGUF type (scale amplitude chosen so weights are around 0.02).
void make_gguf(qtype t, void* p, std::size_t rows, std::size_t cols, std::uint64_t seed) {
  const std::size_t bytes = rows * row_bytes(t, cols);
  if (t == qtype::f16) {
    fill_f16(static_cast<std::uint16_t*>(p), rows * cols, seed, 0.03f);
    return;
  }
  fill_words(p, (bytes + 3) / 4 * 4, seed);
  const float amp = t == qtype::q4_k ? 2e-4f : t == qtype::q6_k ? 1e-5f : 4e-4f;
  const std::size_t nb = bytes / quant::traits(t)->block_bytes;
  fix_scales_kernel<<<1024, 256>>>(static_cast<std::uint8_t*>(p), nb, static_cast<int>(t), seed + 1, amp);
  QFORGE_CUDA_CHECK_LAUNCH();
}

// The reference decoder's floats for a whole matrix.
std::vector<float> decode_host(qtype t, const std::vector<std::uint8_t>& b, std::size_t rows,
                               std::size_t cols) {
  std::vector<float> w(rows * cols);
  const std::size_t rb = row_bytes(t, cols);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::uint8_t* src = b.data() + r * rb;
    std::span<float> out(w.data() + r * cols, cols);
    switch (t) {
      case qtype::q4_k:
        quant::q4_k::decode_ref({reinterpret_cast<const quant::block_q4_k*>(src), cols / 256}, out);
        break;
      case qtype::q6_k:
        quant::q6_k::decode_ref({reinterpret_cast<const quant::block_q6_k*>(src), cols / 256}, out);
        break;
      case qtype::q8_0:
        quant::q8_0::decode_ref({reinterpret_cast<const quant::block_q8_0*>(src), cols / 32}, out);
        break;
      default:
        for (std::size_t k = 0; k < cols; ++k) {
          std::uint16_t h;
          std::memcpy(&h, src + 2 * k, 2);
          out[k] = fp16_to_fp32(h);
        }
    }
  }
  return w;
}

// --- AWQ -----------------------------------------------------------------------------------------

struct awq_dev {
  dev<std::uint32_t> qweight, qzeros;
  dev<std::uint16_t> scales;
  std::size_t in = 0, out = 0, group = 0;
  awq_dev() = default;
  awq_dev(std::size_t in_, std::size_t out_, std::size_t group_, std::uint64_t seed)
      : qweight(in_ * out_ / 8), qzeros(in_ / group_ * out_ / 8), scales(in_ / group_ * out_),
        in(in_), out(out_), group(group_) {
    fill_words(qweight.p, qweight.n * 4, seed);
    fill_words(qzeros.p, qzeros.n * 4, seed + 1);
    fill_f16(scales.p, scales.n, seed + 2, 1e-3f, 2e-3f);
  }
  [[nodiscard]] ec::awq_matrix view() const {
    return {qweight.p, qzeros.p, scales.p, in, out, group};
  }
  [[nodiscard]] double bytes() const {
    return static_cast<double>(qweight.n * 4 + qzeros.n * 4 + scales.n * 2);
  }
};

// w[o, k] = (q - z) * s, as float [out, in].
std::vector<float> awq_host(const awq_dev& a) {
  const auto qw = a.qweight.down(), qz = a.qzeros.down();
  const auto sc = a.scales.down();
  const std::size_t P = a.out / 8;
  static constexpr int unpack[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  std::vector<float> w(a.out * a.in);
  for (std::size_t k = 0; k < a.in; ++k) {
    const std::size_t g = k / a.group;
    for (std::size_t p = 0; p < P; ++p)
      for (int j = 0; j < 8; ++j) {
        const std::size_t o = 8 * p + j;
        const auto q = static_cast<float>((qw[k * P + p] >> (4 * unpack[j])) & 15u);
        const auto z = static_cast<float>((qz[g * P + p] >> (4 * unpack[j])) & 15u);
        w[o * a.in + k] = (q - z) * fp16_to_fp32(sc[g * a.out + o]);
      }
  }
  return w;
}

// --- comparison ----------------------------------------------------------------------------------

struct verdict {
  double worst = 0;   // max |y - ref| / sum |w x|
  double rel_l2 = 0;  // ||y - ref|| / ||ref||
  bool ok = true;
};

// y (got, [tokens][ldy]) against W x (+ y0 when accumulating), W float [rows, cols].
verdict compare(const std::vector<float>& w, std::size_t rows, std::size_t cols,
                const std::vector<float>& x, std::size_t ldx, std::size_t tokens,
                const std::vector<float>& got, const std::vector<float>* y0, std::size_t ldy) {
  verdict v;
  double num = 0, den = 0;
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t r = 0; r < rows; ++r) {
      double s = y0 ? (*y0)[t * ldy + r] : 0.0, mag = y0 ? std::fabs((*y0)[t * ldy + r]) : 0.0;
      for (std::size_t k = 0; k < cols; ++k) {
        const double p = double{w[r * cols + k]} * x[t * ldx + k];
        s += p;
        mag += std::fabs(p);
      }
      const double g = got[t * ldy + r];
      const double e = std::fabs(g - s);
      if (!(e <= 1e-4 * mag + 1e-30)) v.ok = false;
      if (mag > 0) v.worst = std::max(v.worst, e / mag);
      if (!std::isfinite(g)) v.worst = INFINITY;
      num += (g - s) * (g - s);
      den += s * s;
    }
  v.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return v;
}

std::vector<float> host_random(std::size_t n, std::uint64_t seed, float amp = 1.0f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = amp * unit(seed, i);
  return v;
}

// x rounded the way single-token Q4_K products see it: qdot's 8-bit codes times their scale.
std::vector<float> q8_round_trip(const float* x, std::size_t n) {
  std::vector<engine::qdot::act_q8_k> a(n / engine::qdot::qk);
  engine::qdot::quantize_q8_k_ref(x, n, a.data());
  std::vector<float> r(n);
  for (std::size_t i = 0; i < n; ++i) r[i] = a[i / engine::qdot::qk].d * static_cast<float>(a[i / engine::qdot::qk].qs[i % engine::qdot::qk]);
  return r;
}
bool int8_path(qtype t, std::size_t tokens, bool int8 = true) {
  return int8 && (t == qtype::q4_k || t == qtype::q6_k) && tokens == 1;
}

cudaStream_t g_stream = nullptr;
int g_attention_splits = 0;  // launch_opts of the captured decode steps (bench_decode's variants)

// --- matvec checks -------------------------------------------------------------------------------

void check_gguf(qtype t, std::size_t rows, std::size_t cols, std::uint64_t seed, bool quick) {
  const std::size_t rb = row_bytes(t, cols);
  dev<std::uint8_t> wd((rows * rb + 3) / 4 * 4);
  make_gguf(t, wd.p, rows, cols, seed);
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  auto bytes = wd.down();
  bytes.resize(rows * rb);
  const auto w = decode_host(t, bytes, rows, cols);
  const std::vector<std::size_t> token_counts = quick ? std::vector<std::size_t>{1, 3} : std::vector<std::size_t>{1, 2, 3, 5, 8, 11};
  for (std::size_t tokens : token_counts) {
    const std::size_t ldx = cols + 4, ldy = rows + 3;
    const auto x = host_random(tokens * ldx, seed + 10 * tokens);
    dev<float> xd(x.size()), yd(tokens * ldy);
    xd.up(x);
    auto xq = x;  // the 8-bit path's view of token 0
    if (int8_path(t, tokens)) {
      const auto r = q8_round_trip(x.data(), cols);
      std::copy(r.begin(), r.end(), xq.begin());
    }
    for (int int8 = 0; int8 < 2; ++int8)
    for (int rpw : {1, 2, 4}) {
      if (tokens > 2 && rpw != 1) continue;
      if (int8 == 0 && !int8_path(t, tokens)) continue;  // the float path of a q8 case only
      for (int acc = 0; acc < 2; ++acc)
        for (int pdl = 0; pdl < 2; ++pdl) {
          std::vector<float> y0 = acc ? host_random(tokens * ldy, seed + 99) : std::vector<float>(tokens * ldy, NAN);
          yd.up(y0);
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.rows_per_warp = rpw;
          o.int8_activations = int8 != 0;
          ec::matvec(t, wd.p, rows, cols, xd.p, ldx, tokens, yd.p, ldy, acc != 0, o);
          QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
          const auto got = yd.down();
          const bool q8 = int8_path(t, tokens, int8 != 0);
          const verdict v = compare(w, rows, cols, q8 ? xq : x, ldx, tokens, got, acc ? &y0 : nullptr, ldy);
          char what[200];
          std::snprintf(what, sizeof what, "%s %zux%zu tokens %zu rpw %d acc %d pdl %d%s: worst %.3g rel_l2 %.3g",
                        std::string(quant::name(t)).c_str(), rows, cols, tokens, rpw, acc, pdl,
                        q8 ? " int8 x" : "", v.worst, v.rel_l2);
          expect(v.ok, what);
          if (acc == 0 && pdl == 0 && rpw == 1 && tokens == 1)
            std::printf("  check %s\n", what);
        }
    }
  }
}

void check_awq(std::size_t out, std::size_t in, std::size_t group, std::uint64_t seed, bool quick,
               ec::awq_workspace& ws) {
  const awq_dev a(in, out, group, seed);
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  const auto w = awq_host(a);
  const std::vector<std::size_t> token_counts = quick ? std::vector<std::size_t>{1, 3} : std::vector<std::size_t>{1, 2, 3, 8, 9};
  for (std::size_t tokens : token_counts) {
    const std::size_t ldx = in + 4, ldy = out + 1;
    const auto x = host_random(tokens * ldx, seed + 10 * tokens);
    dev<float> xd(x.size()), yd(tokens * ldy);
    xd.up(x);
    for (int kpw : {0, 32})  // the default (64 k per warp where the group allows) and 32
    for (int acc = 0; acc < 2; ++acc)
      for (int pdl = 0; pdl < 2; ++pdl) {
        std::vector<float> y0 = acc ? host_random(tokens * ldy, seed + 99) : std::vector<float>(tokens * ldy, NAN);
        yd.up(y0);
        ec::launch_opts o;
        o.stream = g_stream;
        o.pdl = pdl != 0;
        o.awq_k_per_warp = kpw;
        // Twice in a row: the second launch relies on the first leaving its tickets at zero.
        for (int rep = 0; rep < 2; ++rep) {
          if (rep == 1) {
            QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));  // the upload is not stream-ordered
            yd.up(y0);
          }
          ec::awq_matvec(a.view(), xd.p, ldx, tokens, yd.p, ldy, acc != 0, ws, o);
        }
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        const auto got = yd.down();
        const verdict v = compare(w, out, in, x, ldx, tokens, got, acc ? &y0 : nullptr, ldy);
        char what[200];
        std::snprintf(what, sizeof what, "awq out %zu in %zu g%zu tokens %zu acc %d pdl %d k/warp %d: worst %.3g rel_l2 %.3g",
                      out, in, group, tokens, acc, pdl, kpw, v.worst, v.rel_l2);
        expect(v.ok, what);
        if (acc == 0 && pdl == 0 && tokens == 1) std::printf("  check %s\n", what);
      }
  }
}

// The fused input prologues (RMSNorm, SwiGLU) on GGUF and AWQ matvecs, against x' formed on the
// host in float (as the CPU session forms it) and then the same dot-product comparison.
void check_prologues(std::uint64_t seed, ec::awq_workspace& ws) {
  const std::size_t rows = 264, cols = 2304;
  for (int kind = 1; kind <= 2; ++kind)
    for (std::size_t tokens : {std::size_t{1}, std::size_t{3}, std::size_t{9}}) {
      const std::size_t ldx = 2 * cols + 4, ldy = rows;
      const auto x = host_random(tokens * ldx, seed + tokens + 7 * kind, 2.0f);
      const auto nw = host_random(cols, seed + 3, 0.5f);
      std::vector<float> xp(tokens * cols);
      for (std::size_t t = 0; t < tokens; ++t) {
        const float* xt = x.data() + t * ldx;
        double ss = 0;
        for (std::size_t k = 0; k < cols; ++k) ss += double{xt[k]} * xt[k];
        const auto inv = static_cast<float>(1.0 / std::sqrt(ss / cols + 1e-5));
        for (std::size_t k = 0; k < cols; ++k)
          xp[t * cols + k] = kind == 1 ? nw[k] * (xt[k] * inv)
                                       : xt[k] / (1.0f + std::exp(-xt[k])) * xt[cols + k];
      }
      dev<float> xd(x.size()), nwd(cols), yd(tokens * ldy);
      xd.up(x), nwd.up(nw);
      ec::x_prologue pre;
      pre.kind = kind == 1 ? ec::x_prologue::op::rms_norm : ec::x_prologue::op::swiglu;
      pre.norm_weight = nwd.p;
      pre.eps = 1e-5f;
      ec::launch_opts o;
      o.stream = g_stream;
      const char* pname = kind == 1 ? "rms_norm" : "swiglu";
      for (qtype t : {qtype::q4_k, qtype::q6_k, qtype::q8_0, qtype::f16}) {
        dev<std::uint8_t> wd((rows * row_bytes(t, cols) + 3) / 4 * 4);
        make_gguf(t, wd.p, rows, cols, seed + 11);
        QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
        auto bytes = wd.down();
        bytes.resize(rows * row_bytes(t, cols));
        const auto w = decode_host(t, bytes, rows, cols);
        yd.up(std::vector<float>(tokens * ldy, NAN));
        ec::matvec(t, wd.p, rows, cols, xd.p, ldx, tokens, yd.p, ldy, false, o, pre);
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        const auto xr = int8_path(t, tokens) ? q8_round_trip(xp.data(), cols) : xp;
        const verdict v = compare(w, rows, cols, xr, cols, tokens, yd.down(), nullptr, ldy);
        expect(v.ok, cat(quant::name(t), " ", pname, " prologue, tokens ", tokens, ": worst ", v.worst));
        if (int8_path(t, tokens))
          std::printf("  check %s + %s prologue, 1 token, int8 x: worst %.3g rel_l2 %.3g\n",
                      std::string(quant::name(t)).c_str(), pname, v.worst, v.rel_l2);
        if (tokens == 3) std::printf("  check %s + %s prologue, 3 tokens: worst %.3g rel_l2 %.3g\n",
                                     std::string(quant::name(t)).c_str(), pname, v.worst, v.rel_l2);
      }
      const awq_dev a(cols, rows, 128, seed + 12);
      QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
      const auto w = awq_host(a);
      yd.up(std::vector<float>(tokens * ldy, NAN));
      ec::awq_matvec(a.view(), xd.p, ldx, tokens, yd.p, ldy, false, ws, o, pre);
      QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
      const verdict v = compare(w, rows, cols, xp, cols, tokens, yd.down(), nullptr, ldy);
      expect(v.ok, cat("awq ", pname, " prologue, tokens ", tokens, ": worst ", v.worst));
      if (tokens == 3) std::printf("  check awq + %s prologue, 3 tokens: worst %.3g rel_l2 %.3g\n", pname, v.worst, v.rel_l2);
    }
}

// A dependent chain (each launch reads the previous one's output) with and without PDL: the same
// bits, since every kernel sums in a fixed order; a read of a not-yet-written input would differ.
void check_pdl_chain(std::uint64_t seed, ec::awq_workspace& ws) {
  const std::size_t H = 512, F = 1024;
  dev<std::uint8_t> w1(F * row_bytes(qtype::q4_k, H)), w2(H * row_bytes(qtype::q6_k, F));
  make_gguf(qtype::q4_k, w1.p, F, H, seed);
  make_gguf(qtype::q6_k, w2.p, H, F, seed + 1);
  const awq_dev a(H, H, 128, seed + 2);
  dev<float> x(H), y1(F), y2(H), y3(H), ones(H);
  fill_f32(ones.p, H, seed + 4, 0.0f, 1.0f);
  std::vector<float> res[3];
  for (int pdl = 0; pdl < 3; ++pdl) {  // off, early trigger, late trigger
    fill_f32(x.p, H, seed + 3, 1.0f);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
    ec::launch_opts o;
    o.stream = g_stream;
    o.pdl = pdl != 0;
    o.early_trigger = pdl == 1;
    for (int rep = 0; rep < 20; ++rep) {
      ec::matvec(qtype::q4_k, w1.p, F, H, x.p, H, 1, y1.p, F, false, o);
      ec::matvec(qtype::q6_k, w2.p, H, F, y1.p, F, 1, y2.p, H, false, o);
      ec::rms_norm(y2.p, ones.p, H, 1, 1e-5f, x.p, nullptr, o);
      ec::awq_matvec(a.view(), x.p, H, 1, y3.p, H, false, ws, o);
      ec::awq_matvec(a.view(), x.p, H, 1, y3.p, H, true, ws, o);
      ec::matvec(qtype::q4_k, w1.p, F, H, y3.p, H, 1, y1.p, F, false, o);
      ec::matvec(qtype::q6_k, w2.p, H, F, y1.p, F, 1, y3.p, H, true, o);
      ec::rms_norm(y3.p, ones.p, H, 1, 1e-5f, x.p, nullptr, o);
    }
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    res[pdl] = x.down();
  }
  bool same = std::memcmp(res[0].data(), res[1].data(), H * 4) == 0 &&
              std::memcmp(res[0].data(), res[2].data(), H * 4) == 0,
       live = true;
  for (float v : res[0]) live = live && std::isfinite(v);
  live = live && std::fabs(res[0][0]) + std::fabs(res[0][1]) > 0;
  expect(same && live, "dependent chain: PDL on and off give the same finite bits");
  std::printf("  check dependent chain of 160 launches, PDL (early / late trigger) vs plain: %s\n",
              same && live ? "identical" : "DIFFERENT or degenerate");
}

// --- small ops -----------------------------------------------------------------------------------

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

void check_ops(std::uint64_t seed) {
  const ec::launch_opts o{g_stream, true, 0};
  // RMSNorm, 3 tokens.
  {
    const std::size_t n = 4096, T = 3;
    const auto x = host_random(n * T, seed, 3.0f), w = host_random(n, seed + 1);
    dev<float> xd(n * T), wd(n), yd(n * T);
    dev<std::uint16_t> yh(n * T);
    xd.up(x), wd.up(w);
    ec::rms_norm(xd.p, wd.p, n, T, 1e-5f, yd.p, yh.p, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    std::vector<double> want(n * T);
    for (std::size_t t = 0; t < T; ++t) {
      double ss = 0;
      for (std::size_t i = 0; i < n; ++i) ss += double{x[t * n + i]} * x[t * n + i];
      const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
      for (std::size_t i = 0; i < n; ++i) want[t * n + i] = w[i] * (x[t * n + i] * inv);
    }
    const double e = rel_err(yd.down(), want);
    const auto hv = yh.down();
    std::vector<float> hf(hv.size());
    for (std::size_t i = 0; i < hv.size(); ++i) hf[i] = fp16_to_fp32(hv[i]);
    const double eh = rel_err(hf, want);
    expect(e < 1e-6 && eh < 1e-3, "rms_norm");
    std::printf("  check rms_norm: rel_l2 %.3g (fp16 copy %.3g)\n", e, eh);
  }
  // RoPE + cache store + attention, both pairings, 3 new tokens after 37 cached ones.
  for (int neox = 0; neox < 2; ++neox) {
    const std::size_t NH = 4, NKV = 2, D = 64, T = 3, cap = 64, pos0 = 37;
    const std::size_t qd = NH * D, kvd = NKV * D, ld = qd + 2 * kvd;
    std::vector<double> inv_freq(D / 2);
    for (std::size_t i = 0; i < D / 2; ++i) inv_freq[i] = std::pow(10000.0, -2.0 * i / D);
    const auto table = ec::rope_table(inv_freq, cap);
    auto qkv = host_random(T * ld, seed + 5 + neox);
    auto kc = host_random(cap * kvd, seed + 7), vc = host_random(cap * kvd, seed + 8);
    dev<float> qkvd(qkv.size()), kcd(kc.size()), vcd(vc.size()), td(table.size()), out(T * qd);
    dev<int> posd(1);
    qkvd.up(qkv), kcd.up(kc), vcd.up(vc), td.up(table);
    posd.up({static_cast<int>(pos0)});
    ec::rope_store(qkvd.p, ld, qkvd.p + qd, ld, qkvd.p + qd + kvd, ld, T, NH, NKV, D, neox != 0,
                   td.p, posd.p, kcd.p, vcd.p, o);
    ec::attention(qkvd.p, ld, T, kcd.p, vcd.p, NH, NKV, D, cap, posd.p, out.p, qd, nullptr, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    // Host: same rotation, then attention in double.
    for (std::size_t t = 0; t < T; ++t) {
      const std::size_t p = pos0 + t;
      for (std::size_t h = 0; h < NH + NKV; ++h) {
        float* hd = h < NH ? qkv.data() + t * ld + h * D : qkv.data() + t * ld + qd + (h - NH) * D;
        for (std::size_t i = 0; i < D / 2; ++i) {
          const float c = table[2 * (p * D / 2 + i)], s = table[2 * (p * D / 2 + i) + 1];
          float* x0 = neox ? hd + i : hd + 2 * i;
          float* x1 = neox ? hd + i + D / 2 : hd + 2 * i + 1;
          const float a0 = *x0, a1 = *x1;
          *x0 = a0 * c - a1 * s;
          *x1 = a1 * c + a0 * s;
        }
      }
      std::copy_n(qkv.data() + t * ld + qd, kvd, kc.data() + p * kvd);
      std::copy_n(qkv.data() + t * ld + qd + kvd, kvd, vc.data() + p * kvd);
    }
    const auto kg = kcd.down(), vg = vcd.down();
    const bool caches = std::memcmp(kg.data(), kc.data(), kc.size() * 4) == 0 &&
                        std::memcmp(vg.data(), vc.data(), vc.size() * 4) == 0;
    std::vector<double> want(T * qd);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t h = 0; h < NH; ++h) {
        const std::size_t kvh = h / (NH / NKV), n = pos0 + t + 1;
        std::vector<double> s(n);
        double mx = -INFINITY;
        for (std::size_t j = 0; j < n; ++j) {
          double a = 0;
          for (std::size_t d = 0; d < D; ++d) a += double{qkv[t * ld + h * D + d]} * kc[j * kvd + kvh * D + d];
          s[j] = a / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& v : s) sum += (v = std::exp(v - mx));
        for (std::size_t d = 0; d < D; ++d) {
          double acc = 0;
          for (std::size_t j = 0; j < n; ++j) acc += s[j] / sum * vc[j * kvd + kvh * D + d];
          want[t * qd + h * D + d] = acc;
        }
      }
    const double e = rel_err(out.down(), want);
    const auto qg = qkvd.down();
    bool qsame = true;
    for (std::size_t t = 0; t < T; ++t)
      qsame = qsame && std::memcmp(qg.data() + t * ld, qkv.data() + t * ld, qd * 4) == 0;
    expect(caches && qsame && e < 1e-5, cat("rope_store + attention, neox ", neox));
    std::printf("  check rope (%s) q/k/v cache bit-exact %s, attention rel_l2 %.3g\n",
                neox ? "neox" : "interleaved", caches && qsame ? "yes" : "NO", e);
  }
  // SwiGLU.
  {
    const std::size_t F = 1000, T = 2;
    const auto gu = host_random(2 * F * T, seed + 11, 4.0f);
    dev<float> gd(gu.size()), od(F * T);
    gd.up(gu);
    ec::swiglu(gd.p, F, T, od.p, nullptr, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    std::vector<double> want(F * T);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t f = 0; f < F; ++f) {
        const double g = gu[t * 2 * F + f];
        want[t * F + f] = g / (1 + std::exp(-g)) * gu[t * 2 * F + F + f];
      }
    const double e = rel_err(od.down(), want);
    expect(e < 1e-6, "swiglu");
    std::printf("  check swiglu: rel_l2 %.3g\n", e);
  }
}

// Split-KV attention (engine/cuda/attention_split.cuh) against the one-CTA kernel and a double
// reference: long caches (several CTAs per head, ragged last slices), grouped heads, head_dim 64
// and 128, and a short context in a long cache (one active slice: the one-CTA kernel's bits).
// Tolerance: relative L2 error <= 1e-5 against double for both kernels and between them.
void check_attention_split(std::uint64_t seed) {
  struct cfg {
    std::size_t NH, NKV, D, T, cap, pos0;
  };
  for (const cfg c : {cfg{8, 2, 128, 2, 700, 601}, cfg{4, 4, 64, 3, 4096, 3000},
                      cfg{6, 3, 128, 1, 1000, 130}, cfg{4, 2, 64, 1, 1000, 20}}) {
    const std::size_t qd = c.NH * c.D, kvd = c.NKV * c.D;
    const auto q = host_random(c.T * qd, seed + c.cap, 2.0f);
    const auto kc = host_random(c.cap * kvd, seed + 1), vc = host_random(c.cap * kvd, seed + 2);
    dev<float> qd_(q.size()), kcd(kc.size()), vcd(vc.size()), o1(c.T * qd), o2(c.T * qd);
    dev<int> posd(1);
    qd_.up(q), kcd.up(kc), vcd.up(vc);
    posd.up({static_cast<int>(c.pos0)});
    o1.up(std::vector<float>(c.T * qd, NAN));
    o2.up(std::vector<float>(c.T * qd, NAN));
    ec::launch_opts o{g_stream, true, 0};
    ec::attention(qd_.p, qd, c.T, kcd.p, vcd.p, c.NH, c.NKV, c.D, c.cap, posd.p, o1.p, qd, nullptr, o);
    o.attention_splits = 1;
    ec::attention(qd_.p, qd, c.T, kcd.p, vcd.p, c.NH, c.NKV, c.D, c.cap, posd.p, o2.p, qd, nullptr, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    std::vector<double> want(c.T * qd);
    for (std::size_t t = 0; t < c.T; ++t)
      for (std::size_t h = 0; h < c.NH; ++h) {
        const std::size_t kvh = h / (c.NH / c.NKV), n = c.pos0 + t + 1;
        std::vector<double> sc(n);
        double mx = -INFINITY, sum = 0;
        for (std::size_t j = 0; j < n; ++j) {
          double a = 0;
          for (std::size_t d = 0; d < c.D; ++d) a += double{q[t * qd + h * c.D + d]} * kc[j * kvd + kvh * c.D + d];
          sc[j] = a / std::sqrt(double(c.D));
          mx = std::max(mx, sc[j]);
        }
        for (auto& v : sc) sum += (v = std::exp(v - mx));
        for (std::size_t d = 0; d < c.D; ++d) {
          double acc = 0;
          for (std::size_t j = 0; j < n; ++j) acc += sc[j] * vc[j * kvd + kvh * c.D + d];
          want[t * qd + h * c.D + d] = acc / sum;
        }
      }
    const auto g1 = o1.down(), g2 = o2.down();
    const double e1 = rel_err(g1, want), e2 = rel_err(g2, want);
    std::vector<double> w2(g2.begin(), g2.end());
    const double e12 = rel_err(g1, w2);
    const bool short_ctx = c.pos0 + c.T <= 64;
    const bool same = std::memcmp(g1.data(), g2.data(), g1.size() * 4) == 0;
    expect(e1 < 1e-5 && e2 < 1e-5 && e12 < 1e-5 && (!short_ctx || same),
           cat("split-KV attention heads ", c.NH, "/", c.NKV, " D ", c.D, " positions ", c.pos0, "+", c.T,
               ": rel_l2 split ", e1, " one-CTA ", e2, " between ", e12));
    std::printf("  check split-KV attention %zu/%zu heads, D %zu, %zu+%zu positions of %zu: rel_l2 split %.3g, one CTA %.3g, split vs one CTA %.3g%s\n",
                c.NH, c.NKV, c.D, c.pos0, c.T, c.cap, e1, e2, e12, same ? " (bit-identical)" : "");
  }
}

// --- a Llama-shaped model on the GPU -------------------------------------------------------------

enum class wkind { gguf, awq, dense };

struct linear {
  wkind kind = wkind::gguf;
  qtype type = qtype::f16;
  std::size_t rows = 0, cols = 0;
  dev<std::uint8_t> data;  // GGUF blocks or F16 rows
  awq_dev awq;
  [[nodiscard]] double bytes() const {
    return kind == wkind::awq ? awq.bytes() : static_cast<double>(rows * row_bytes(type, cols));
  }
};

struct model_shape {
  std::size_t layers, hidden, heads, kv_heads, ffn, vocab;
  [[nodiscard]] std::size_t head_dim() const { return hidden / heads; }
};

// mix: "f16" (cuBLAS), "f16-own" (F16 through our matvec), "awq" (AWQ g128, F16 head),
// "q4_k_m" (llama.cpp's Q4_K_M types), "q8_0".
struct gpu_model {
  model_shape s;
  std::string mix;
  float eps = 1e-5f;
  struct layer {
    std::vector<linear> qkv;  // one fused [q | k | v] linear, or [q | k] and [v]
    linear o, gate_up, down;
    dev<float> attn_norm, ffn_norm;
  };
  std::vector<layer> layers;
  linear head;
  dev<std::uint16_t> embd;
  dev<float> out_norm;

  static bool more_bits(std::size_t i, std::size_t n) {  // llama.cpp's use_more_bits
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  }

  linear make(qtype t, std::size_t rows, std::size_t cols, std::uint64_t seed) const {
    linear l;
    l.rows = rows, l.cols = cols, l.type = t;
    if (mix == "awq" && t == qtype::q4_0) {  // q4_0 marks "the AWQ format" here
      l.kind = wkind::awq;
      l.awq = awq_dev(cols, rows, 128, seed);
      return l;
    }
    l.kind = t == qtype::f16 && mix == "f16" ? wkind::dense : wkind::gguf;
    l.data = dev<std::uint8_t>((rows * row_bytes(t, cols) + 3) / 4 * 4);
    make_gguf(t, l.data.p, rows, cols, seed);
    return l;
  }

  gpu_model(model_shape shape, std::string m, std::uint64_t seed) : s(shape), mix(std::move(m)) {
    const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D;
    const bool awq = mix == "awq", q4km = mix == "q4_k_m";
    const qtype base = mix == "q8_0" ? qtype::q8_0 : q4km ? qtype::q4_k : awq ? qtype::q4_0 : qtype::f16;
    for (std::size_t i = 0; i < s.layers; ++i) {
      layer L;
      const std::uint64_t ls = seed + 100 * (i + 1);
      const bool more = q4km && more_bits(i, s.layers);
      if (more) {
        L.qkv.push_back(make(base, qd + kvd, H, ls));
        L.qkv.push_back(make(qtype::q6_k, kvd, H, ls + 1));
      } else {
        L.qkv.push_back(make(base, qd + 2 * kvd, H, ls));
      }
      L.o = make(base, H, qd, ls + 2);
      L.gate_up = make(base, 2 * s.ffn, H, ls + 3);
      L.down = make(more ? qtype::q6_k : base, H, s.ffn, ls + 4);
      L.attn_norm = dev<float>(H);
      L.ffn_norm = dev<float>(H);
      fill_f32(L.attn_norm.p, H, ls + 5, 0.1f, 1.0f);
      fill_f32(L.ffn_norm.p, H, ls + 6, 0.1f, 1.0f);
      layers.push_back(std::move(L));
    }
    const qtype head_t = q4km ? qtype::q6_k : mix == "q8_0" ? qtype::q8_0 : qtype::f16;
    head = make(head_t, s.vocab, H, seed + 1);
    if (awq) head.kind = wkind::dense;  // AutoAWQ leaves lm_head in FP16
    embd = dev<std::uint16_t>(s.vocab * H);
    fill_f16(embd.p, s.vocab * H, seed + 2, 1.0f);
    out_norm = dev<float>(H);
    fill_f32(out_norm.p, H, seed + 3, 0.1f, 1.0f);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  }

  [[nodiscard]] double weight_bytes() const {
    double b = head.bytes();
    for (const auto& L : layers) {
      for (const auto& l : L.qkv) b += l.bytes();
      b += L.o.bytes() + L.gate_up.bytes() + L.down.bytes();
    }
    return b;
  }
};

// Activations, caches and the position counter of one sequence.
struct gpu_state {
  std::size_t cap;
  dev<float> x, xn, qkv, att, gu, act, logits, table;
  dev<std::uint16_t> xnh, atth, acth;
  std::vector<dev<float>> kc, vc;
  dev<int> pos, token;
  ec::awq_workspace ws;
  gpu_state(const gpu_model& m, std::size_t capacity) : cap(capacity) {
    const auto& s = m.s;
    const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D;
    x = dev<float>(H), xn = dev<float>(H), qkv = dev<float>(qd + 2 * kvd), att = dev<float>(qd);
    gu = dev<float>(2 * s.ffn), act = dev<float>(s.ffn), logits = dev<float>(s.vocab);
    xnh = dev<std::uint16_t>(H), atth = dev<std::uint16_t>(qd), acth = dev<std::uint16_t>(s.ffn);
    for (std::size_t i = 0; i < s.layers; ++i) {
      kc.emplace_back(cap * kvd);
      vc.emplace_back(cap * kvd);
    }
    pos = dev<int>(1), token = dev<int>(1);
    std::vector<double> inv_freq(D / 2);
    for (std::size_t i = 0; i < D / 2; ++i) inv_freq[i] = std::pow(10000.0, -2.0 * i / D);
    const auto t = ec::rope_table(inv_freq, cap);
    table = dev<float>(t.size());
    table.up(t);
    ws = ec::awq_workspace(std::max(H, s.ffn), std::max({2 * s.ffn, qd + 2 * kvd, H}));
  }
};

// ldx: floats between tokens of x (2 * cols for a SwiGLU prologue's [gate | up] rows).
void run_linear(const linear& l, const float* x, std::size_t ldx, const std::uint16_t* xh,
                float* y, bool acc, gpu_state& st, ec::blas& blas, const ec::launch_opts& o,
                const ec::x_prologue& pre = {}) {
  switch (l.kind) {
    case wkind::gguf: ec::matvec(l.type, l.data.p, l.rows, l.cols, x, ldx, 1, y, l.rows, acc, o, pre); break;
    case wkind::awq: ec::awq_matvec(l.awq.view(), x, ldx, 1, y, l.rows, acc, st.ws, o, pre); break;
    case wkind::dense:
      ec::dense_f16(blas, reinterpret_cast<const std::uint16_t*>(l.data.p), l.rows, l.cols, xh,
                    l.cols, 1, y, l.rows, acc, o.stream);
      break;
  }
}

// One decode step: the token at *st.token, position *st.pos; logits into st.logits; then *pos += 1,
// wrapping to `first` at `limit`. fuse: RMSNorm and SwiGLU run inside the following matvec
// (x_prologue) wherever that matvec is ours (cuBLAS needs the fp16 copy a separate kernel writes).
void enqueue_step(const gpu_model& m, gpu_state& st, ec::blas& blas, const ec::launch_opts& o,
                  int first, int limit, bool fuse) {
  const auto& s = m.s;
  const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D;
  const auto fused = [&](const linear& l) { return fuse && l.kind != wkind::dense; };
  const auto norm = [&](const dev<float>& w) {
    ec::x_prologue p;
    p.kind = ec::x_prologue::op::rms_norm;
    p.norm_weight = w.p;
    p.eps = m.eps;
    return p;
  };
  ec::x_prologue swi;
  swi.kind = ec::x_prologue::op::swiglu;
  ec::embed_f16(m.embd.p, H, st.token.p, st.x.p, nullptr, o);
  for (std::size_t i = 0; i < s.layers; ++i) {
    const auto& L = m.layers[i];
    if (!fused(L.qkv[0])) ec::rms_norm(st.x.p, L.attn_norm.p, H, 1, m.eps, st.xn.p, st.xnh.p, o);
    float* out = st.qkv.p;
    for (const auto& l : L.qkv) {
      if (fused(l)) run_linear(l, st.x.p, H, nullptr, out, false, st, blas, o, norm(L.attn_norm));
      else run_linear(l, st.xn.p, H, st.xnh.p, out, false, st, blas, o);
      out += l.rows;
    }
    ec::rope_store(st.qkv.p, qd, st.qkv.p + qd, kvd, st.qkv.p + qd + kvd, kvd, 1, s.heads,
                   s.kv_heads, D, true, st.table.p, st.pos.p, st.kc[i].p, st.vc[i].p, o);
    ec::attention(st.qkv.p, qd, 1, st.kc[i].p, st.vc[i].p, s.heads, s.kv_heads, D, st.cap,
                  st.pos.p, st.att.p, qd, st.atth.p, o);
    run_linear(L.o, st.att.p, qd, st.atth.p, st.x.p, true, st, blas, o);
    if (fused(L.gate_up)) {
      run_linear(L.gate_up, st.x.p, H, nullptr, st.gu.p, false, st, blas, o, norm(L.ffn_norm));
    } else {
      ec::rms_norm(st.x.p, L.ffn_norm.p, H, 1, m.eps, st.xn.p, st.xnh.p, o);
      run_linear(L.gate_up, st.xn.p, H, st.xnh.p, st.gu.p, false, st, blas, o);
    }
    if (fused(L.down)) {
      run_linear(L.down, st.gu.p, 2 * s.ffn, nullptr, st.x.p, true, st, blas, o, swi);
    } else {
      ec::swiglu(st.gu.p, s.ffn, 1, st.act.p, st.acth.p, o);
      run_linear(L.down, st.act.p, s.ffn, st.acth.p, st.x.p, true, st, blas, o);
    }
  }
  if (fused(m.head)) {
    run_linear(m.head, st.x.p, H, nullptr, st.logits.p, false, st, blas, o, norm(m.out_norm));
  } else {
    ec::rms_norm(st.x.p, m.out_norm.p, H, 1, m.eps, st.xn.p, st.xnh.p, o);
    run_linear(m.head, st.xn.p, H, st.xnh.p, st.logits.p, false, st, blas, o);
  }
  ec::advance_position(st.pos.p, first, limit, o);
}

// mode: 0 plain launches, unfused; 1 PDL with early trigger, fused; 2 PDL with late trigger,
// fused; 3 plain launches, fused.
cudaGraphExec_t capture_step(const gpu_model& m, gpu_state& st, ec::blas& blas, int mode, int first,
                             int limit) {
  ec::launch_opts o;
  o.stream = g_stream;
  o.pdl = mode == 1 || mode == 2;
  o.early_trigger = mode == 1;
  o.attention_splits = g_attention_splits;
  cudaGraph_t g = nullptr;
  QFORGE_CUDA_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_step(m, st, blas, o, first, limit, mode != 0);
  } catch (...) {
    cudaStreamEndCapture(g_stream, &g);
    if (g) cudaGraphDestroy(g);
    throw;
  }
  QFORGE_CUDA_CHECK(cudaStreamEndCapture(g_stream, &g));
  cudaGraphExec_t exec = nullptr;
  QFORGE_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  QFORGE_CUDA_CHECK(cudaGraphDestroy(g));
  return exec;
}

// The same step on the CPU, from the device weights downloaded and decoded to float.
struct cpu_model {
  model_shape s;
  float eps;
  struct layer {
    std::vector<float> wqkv, wo, wgu, wdown, attn_norm, ffn_norm;
    std::vector<std::pair<std::size_t, bool>> qkv_parts;  // rows, int8 activations
    bool q8_o = false, q8_gu = false, q8_down = false;
  };
  std::vector<layer> layers;
  std::vector<float> head, embd, out_norm;
  bool f16_acts = false;  // cuBLAS linears read fp16 activations
  bool f16_head = false;
  bool q8_head = false;

  static std::vector<float> weights(const linear& l) {
    if (l.kind == wkind::awq) return awq_host(l.awq);
    auto b = l.data.down();
    b.resize(l.rows * row_bytes(l.type, l.cols));
    return decode_host(l.type, b, l.rows, l.cols);
  }
  explicit cpu_model(const gpu_model& m)
      : s(m.s), eps(m.eps), f16_acts(m.mix == "f16"), f16_head(m.head.kind == wkind::dense) {
    for (const auto& L : m.layers) {
      layer c;
      for (const auto& l : L.qkv) {
        const auto w = weights(l);
        c.wqkv.insert(c.wqkv.end(), w.begin(), w.end());
        c.qkv_parts.emplace_back(l.rows, q8(l));
      }
      c.wo = weights(L.o), c.wgu = weights(L.gate_up), c.wdown = weights(L.down);
      c.q8_o = q8(L.o), c.q8_gu = q8(L.gate_up), c.q8_down = q8(L.down);
      c.attn_norm = L.attn_norm.down(), c.ffn_norm = L.ffn_norm.down();
      layers.push_back(std::move(c));
    }
    head = weights(m.head);
    q8_head = q8(m.head);
    const auto e = m.embd.down();
    embd.resize(e.size());
    for (std::size_t i = 0; i < e.size(); ++i) embd[i] = fp16_to_fp32(e[i]);
    out_norm = m.out_norm.down();
  }
  static bool q8(const linear& l) { return l.kind == wkind::gguf && int8_path(l.type, 1); }
  static float round16(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }
  // in8: the linear's kernel reads x as 8-bit codes (decode steps are single tokens).
  void mv(const float* w, std::size_t rows, std::size_t cols, const float* x, float* y,
          bool acc, bool f16_in, bool in8 = false) const {
    const auto xq = in8 ? q8_round_trip(x, cols) : std::vector<float>{};
    if (in8) x = xq.data();
    for (std::size_t r = 0; r < rows; ++r) {
      double a = 0;
      for (std::size_t k = 0; k < cols; ++k) a += double{w[r * cols + k]} * (f16_in ? round16(x[k]) : x[k]);
      y[r] = static_cast<float>(acc ? y[r] + a : a);
    }
  }
  void norm(const float* x, const std::vector<float>& w, float* y) const {
    double ss = 0;
    for (std::size_t i = 0; i < s.hidden; ++i) ss += double{x[i]} * x[i];
    const auto inv = static_cast<float>(1.0 / std::sqrt(ss / s.hidden + eps));
    for (std::size_t i = 0; i < s.hidden; ++i) y[i] = w[i] * (x[i] * inv);
  }
  // Caches [layer][pos][kvd]; returns the logits of token at pos.
  std::vector<float> step(int token, std::size_t pos, const std::vector<float>& table,
                          std::vector<std::vector<float>>& kc, std::vector<std::vector<float>>& vc) const {
    const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D, F = s.ffn;
    std::vector<float> x(embd.begin() + token * H, embd.begin() + (token + 1) * H), xn(H),
        qkv(qd + 2 * kvd), att(qd), gu(2 * F), a(F), logits(s.vocab);
    for (std::size_t li = 0; li < s.layers; ++li) {
      const auto& L = layers[li];
      norm(x.data(), L.attn_norm, xn.data());
      for (std::size_t r0 = 0; const auto& [rows, in8] : L.qkv_parts) {
        mv(L.wqkv.data() + r0 * H, rows, H, xn.data(), qkv.data() + r0, false, f16_acts, in8);
        r0 += rows;
      }
      for (std::size_t h = 0; h < s.heads + s.kv_heads; ++h) {
        float* hd = qkv.data() + h * D;  // q heads, then k heads
        for (std::size_t i = 0; i < D / 2; ++i) {
          const float c = table[2 * (pos * D / 2 + i)], sn = table[2 * (pos * D / 2 + i) + 1];
          const float a0 = hd[i], a1 = hd[i + D / 2];
          hd[i] = a0 * c - a1 * sn;
          hd[i + D / 2] = a1 * c + a0 * sn;
        }
      }
      std::copy_n(qkv.data() + qd, kvd, kc[li].data() + pos * kvd);
      std::copy_n(qkv.data() + qd + kvd, kvd, vc[li].data() + pos * kvd);
      for (std::size_t h = 0; h < s.heads; ++h) {
        const std::size_t kvh = h / (s.heads / s.kv_heads);
        std::vector<double> sc(pos + 1);
        double mx = -INFINITY, sum = 0;
        for (std::size_t j = 0; j <= pos; ++j) {
          double d = 0;
          for (std::size_t e = 0; e < D; ++e) d += double{qkv[h * D + e]} * kc[li][j * kvd + kvh * D + e];
          sc[j] = d / std::sqrt(double(D));
          mx = std::max(mx, sc[j]);
        }
        for (auto& v : sc) sum += (v = std::exp(v - mx));
        for (std::size_t e = 0; e < D; ++e) {
          double o = 0;
          for (std::size_t j = 0; j <= pos; ++j) o += sc[j] / sum * vc[li][j * kvd + kvh * D + e];
          att[h * D + e] = static_cast<float>(o);
        }
      }
      mv(L.wo.data(), H, qd, att.data(), x.data(), true, f16_acts, L.q8_o);
      norm(x.data(), L.ffn_norm, xn.data());
      mv(L.wgu.data(), 2 * F, H, xn.data(), gu.data(), false, f16_acts, L.q8_gu);
      for (std::size_t f = 0; f < F; ++f) a[f] = gu[f] / (1.0f + std::exp(-gu[f])) * gu[F + f];
      mv(L.wdown.data(), H, F, a.data(), x.data(), true, f16_acts, L.q8_down);
    }
    norm(x.data(), out_norm, xn.data());
    mv(head.data(), s.vocab, H, xn.data(), logits.data(), false, f16_head, q8_head);
    return logits;
  }
};

void check_model(const std::string& mix, std::uint64_t seed, ec::blas& blas) {
  const model_shape shape{2, 256, 4, 2, 512, 300};
  const gpu_model m(shape, mix, seed);
  const cpu_model c(m);
  const std::size_t cap = 16, kvd = shape.kv_heads * shape.head_dim();
  std::vector<float> logits[3][5];
  for (int pdl = 0; pdl < 3; ++pdl) {
    try {
      gpu_state st(m, cap);
      st.pos.up({0});
      const cudaGraphExec_t g = capture_step(m, st, blas, pdl, 0, static_cast<int>(cap));
      for (int t = 0; t < 5; ++t) {
        st.token.up({static_cast<int>((37 * t + 11) % shape.vocab)});
        QFORGE_CUDA_CHECK(cudaGraphLaunch(g, g_stream));
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        logits[pdl][t] = st.logits.down();
      }
      cudaGraphExecDestroy(g);
    } catch (const std::exception& e) {
      expect(false, cat("model ", mix, " pdl ", pdl, ": ", e.what()));
      cudaGetLastError();
      for (auto& l : logits[pdl]) l.assign(shape.vocab, NAN);
    }
  }
  std::vector<std::vector<float>> kc(shape.layers, std::vector<float>(cap * kvd)),
      vc(shape.layers, std::vector<float>(cap * kvd));
  std::vector<double> inv_freq(shape.head_dim() / 2);
  for (std::size_t i = 0; i < inv_freq.size(); ++i)
    inv_freq[i] = std::pow(10000.0, -2.0 * i / shape.head_dim());
  const auto table = ec::rope_table(inv_freq, cap);
  double worst = 0;
  bool same = true;
  for (int t = 0; t < 5; ++t) {
    const auto want = c.step(static_cast<int>((37 * t + 11) % shape.vocab), t, table, kc, vc);
    float mx = 0;
    for (float v : want) mx = std::max(mx, std::fabs(v));
    for (int mode = 0; mode < 3; ++mode) {
      float d = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        const float e = std::fabs(logits[mode][t][i] - want[i]);
        d = std::isfinite(logits[mode][t][i]) ? std::max(d, e) : INFINITY;
      }
      worst = std::max(worst, double{d} / mx);
    }
    same = same && std::memcmp(logits[1][t].data(), logits[2][t].data(), want.size() * 4) == 0;
  }
  const double tol = mix == "f16" || mix == "awq" ? 1e-2 : 1e-3;
  expect(worst <= tol, cat("model ", mix, ": max |d logit| / max |logit| = ", worst));
  expect(same, cat("model ", mix, ": PDL early / late trigger give the same logits"));
  std::printf("  check 2-layer model %-7s 5 decode steps vs CPU (plain, fused+PDL early, fused+PDL late): max|dlogit|/max|logit| %.3g (tol %.0e), PDL modes bit-identical %s\n",
              mix.c_str(), worst, tol, same ? "yes" : "NO");
}

// --- timings -------------------------------------------------------------------------------------

struct bandwidth {
  double copy = 0, read = 0;  // bytes/s
};

// Streams n float4 and keeps the loads alive. Launched under PDL it lets its successor start at
// once and waits only before its (never taken) store, so back-to-back launches overlap completely:
// what no kernel whose input comes from its predecessor can reach, the other bound of the harness.
// Without the PDL attribute both griddepcontrol instructions are no-ops (common.cuh).
__global__ void read_kernel(const float4* p, std::size_t n, float* out) {
  ec::detail::allow_dependents();
  float4 a = make_float4(0, 0, 0, 0);
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x) {
    const float4 v = __ldcs(p + i);
    a.x += v.x, a.y += v.y, a.z += v.z, a.w += v.w;
  }
  ec::detail::wait_for_inputs();
  if (a.x + a.y + a.z + a.w == 12345.678f) out[0] = a.x;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds per call of fn (enqueued on g_stream), median of `reps` timed calls after 2 warm-ups.
double time_it(const std::function<void()>& fn, int reps) {
  cudaEvent_t a, b;
  QFORGE_CUDA_CHECK(cudaEventCreate(&a));
  QFORGE_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 2; ++i) fn();
  std::vector<double> ts;
  for (int i = 0; i < reps; ++i) {
    QFORGE_CUDA_CHECK(cudaEventRecord(a, g_stream));
    fn();
    QFORGE_CUDA_CHECK(cudaEventRecord(b, g_stream));
    QFORGE_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    QFORGE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ts);
}

bandwidth measure_bandwidth() {
  const std::size_t bytes = std::size_t{2} << 30;
  dev<std::uint8_t> a(bytes), b(bytes);
  dev<float> out(1);
  fill_words(a.p, bytes, 1);
  bandwidth bw;
  const double tc = time_it([&] {
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, g_stream));
  }, 10);
  bw.copy = 2.0 * bytes / tc;
  int sms = 0;
  QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const double tr = time_it([&] {
    read_kernel<<<sms * 8, 512, 0, g_stream>>>(reinterpret_cast<const float4*>(a.p), bytes / 16, out.p);
  }, 10);
  bw.read = bytes / tr;
  std::printf("bandwidth: D2D copy %.0f GB/s (read + write), read-only kernel %.0f GB/s\n",
              bw.copy * 1e-9, bw.read * 1e-9);
  if (csv) std::fprintf(csv, "bandwidth,copy,%.1f\nbandwidth,read,%.1f\n", bw.copy * 1e-9, bw.read * 1e-9);
  return bw;
}

// Mean time per launch of `enqueue(i)` over a graph of `count` launches, i rotating over copies.
double time_graph(const std::function<void(std::size_t)>& enqueue, std::size_t count) {
  cudaGraph_t g = nullptr;
  QFORGE_CUDA_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  try {
    for (std::size_t i = 0; i < count; ++i) enqueue(i);
  } catch (...) {
    cudaStreamEndCapture(g_stream, &g);
    if (g) cudaGraphDestroy(g);
    throw;
  }
  QFORGE_CUDA_CHECK(cudaStreamEndCapture(g_stream, &g));
  cudaGraphExec_t exec = nullptr;
  QFORGE_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  const double t = time_it([&] { QFORGE_CUDA_CHECK(cudaGraphLaunch(exec, g_stream)); }, 7);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(g);
  return t / static_cast<double>(count);
}

struct bench_row {
  std::string kind, variant;
  std::size_t rows, cols;
  double bytes, t;
};
std::vector<bench_row> g_rows;

void report(const char* kind, const char* variant, std::size_t rows, std::size_t cols, double bytes,
            double t, const bandwidth& bw) {
  g_rows.push_back({kind, variant, rows, cols, bytes, t});
  const double gbs = bytes / t * 1e-9;
  std::printf("  %-9s %-14s %5zux%-5zu %7.2f MB %8.2f us %7.0f GB/s %5.1f%% of copy %5.1f%% of read\n",
              kind, variant, rows, cols, bytes * 1e-6, t * 1e6, gbs, 100 * bytes / t / bw.copy,
              100 * bytes / t / bw.read);
  if (csv)
    std::fprintf(csv, "matvec,%s,%s,%zu,%zu,%.0f,%.3f,%.1f,%.2f,%.2f\n", kind, variant, rows, cols,
                 bytes, t * 1e6, gbs, 100 * bytes / t / bw.copy, 100 * bytes / t / bw.read);
}

void bench_matvec(const bandwidth& bw, ec::blas& blas) {
  int l2 = 0;
  QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  std::printf("matvec, batch 1, mean over back-to-back launches in a CUDA graph, weights rotating over copies >= 4x L2 (%d MB):\n", l2 >> 20);
  const std::size_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  ec::awq_workspace ws(11008, 11008);
  for (const auto& sh : shapes) {
    const std::size_t rows = sh[0], cols = sh[1];
    dev<float> x(cols), y(rows);
    dev<std::uint16_t> xh(cols);
    fill_f32(x.p, cols, 5, 1.0f);
    fill_f16(xh.p, cols, 6, 1.0f);
    {  // the ceiling: a kernel that only streams the Q4_K matrix's bytes, in the same harness
      const double bytes = static_cast<double>(rows * row_bytes(qtype::q4_k, cols));
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<dev<std::uint8_t>> w;
      for (std::size_t c = 0; c < copies; ++c) w.emplace_back(static_cast<std::size_t>(bytes));
      int sms = 0;
      QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      const double tt = time_graph([&](std::size_t i) {
        read_kernel<<<sms * 4, 512, 0, g_stream>>>(reinterpret_cast<const float4*>(w[i % copies].p),
                                                     static_cast<std::size_t>(bytes) / 16, y.p);
      }, count);
      report("stream", "read-only", rows, cols, bytes, tt, bw);
      const double tp = time_graph([&](std::size_t i) {
        ec::detail::launch(read_kernel, dim3(sms * 4), dim3(512), 0, g_stream, true,
                           reinterpret_cast<const float4*>(w[i % copies].p),
                           static_cast<std::size_t>(bytes) / 16, y.p);
      }, count);
      report("stream", "read-only+pdl", rows, cols, bytes, tp, bw);
    }
    for (qtype t : {qtype::q4_k, qtype::q6_k, qtype::q8_0, qtype::f16}) {
      const double bytes = static_cast<double>(rows * row_bytes(t, cols));
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<dev<std::uint8_t>> w;
      for (std::size_t c = 0; c < copies; ++c) {
        w.emplace_back((static_cast<std::size_t>(bytes) + 3) / 4 * 4);
        make_gguf(t, w.back().p, rows, cols, 1000 + c);
      }
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      for (int rpw : {0, 1, 2, 4})
        for (int pdl = 0; pdl < 3; ++pdl) {  // off, early trigger, late trigger (default rows only)
          if (pdl == 2 && rpw != 0) continue;
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.early_trigger = pdl != 2;
          o.rows_per_warp = rpw;
          const double tt = time_graph([&](std::size_t i) {
            ec::matvec(t, w[i % copies].p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
          }, count);
          char v[32];
          if (rpw == 0) std::snprintf(v, sizeof v, "default%s", pdl == 2 ? "+pdl-late" : pdl ? "+pdl" : "");
          else std::snprintf(v, sizeof v, "rpw%d%s", rpw, pdl ? "+pdl" : "");
          report(std::string(quant::name(t)).c_str(), v, rows, cols, bytes, tt, bw);
        }
      if (t == qtype::q4_k || t == qtype::q6_k)  // the float-activation kernels, for comparison
        for (int pdl = 0; pdl < 2; ++pdl) {
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.int8_activations = false;
          const double tt = time_graph([&](std::size_t i) {
            ec::matvec(t, w[i % copies].p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
          }, count);
          report(std::string(quant::name(t)).c_str(), pdl ? "f32x+pdl" : "f32x", rows, cols, bytes, tt, bw);
        }
      if (t == qtype::f16) {
        const double tt = time_graph([&](std::size_t i) {
          ec::dense_f16(blas, reinterpret_cast<const std::uint16_t*>(w[i % copies].p), rows, cols,
                        xh.p, cols, 1, y.p, rows, false, g_stream);
        }, count);
        report("f16", "cublas", rows, cols, bytes, tt, bw);
      }
    }
    {
      const awq_dev probe(cols, rows, 128, 1);
      const double bytes = probe.bytes();
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<awq_dev> a;
      for (std::size_t c = 0; c < copies; ++c) a.emplace_back(cols, rows, 128, 2000 + 3 * c);
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      for (int kpw : {0, 32, 64})
        for (int pdl = 0; pdl < 2; ++pdl) {  // awq_matvec triggers its successor late under PDL
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.awq_k_per_warp = kpw;
          const double tt = time_graph([&](std::size_t i) {
            ec::awq_matvec(a[i % copies].view(), x.p, cols, 1, y.p, rows, false, ws, o);
          }, count);
          char v[32];
          if (kpw == 0) std::snprintf(v, sizeof v, "default%s", pdl ? "+pdl" : "");
          else std::snprintf(v, sizeof v, "k%d%s", kpw, pdl ? "+pdl" : "");
          report("awq-g128", v, rows, cols, bytes, tt, bw);
        }
    }
  }
}

// Per kind and shape: the default launch, the default with PDL, and the best variant measured.
void summarize(const bandwidth& bw) {
  std::printf("matvec summary (batch 1; %% of the measured D2D copy bandwidth %.0f GB/s):\n", bw.copy * 1e-9);
  std::printf("  %-9s %-11s %18s %18s %26s\n", "kind", "out x in", "default", "default+pdl", "best");
  for (std::size_t i = 0; i < g_rows.size(); ++i) {
    const auto& r = g_rows[i];
    bool first = true;
    for (std::size_t j = 0; j < i; ++j)
      if (g_rows[j].kind == r.kind && g_rows[j].rows == r.rows && g_rows[j].cols == r.cols) first = false;
    if (!first) continue;
    const bench_row *def = nullptr, *pdl = nullptr, *best = nullptr;
    for (const auto& q : g_rows) {
      if (q.kind != r.kind || q.rows != r.rows || q.cols != r.cols) continue;
      if (q.variant == "default" || q.variant == "cublas") def = &q;
      if (q.variant == "default+pdl") pdl = &q;
      if (best == nullptr || q.t < best->t) best = &q;
    }
    const auto cell = [&](const bench_row* q) {
      static char buf[4][64];
      static int k = 0;
      char* b = buf[k++ % 4];
      if (q == nullptr) std::snprintf(b, 64, "-");
      else std::snprintf(b, 64, "%.0f GB/s %.1f%%", q->bytes / q->t * 1e-9, 100 * q->bytes / q->t / bw.copy);
      return b;
    };
    char sh[32];
    std::snprintf(sh, sizeof sh, "%zux%zu", r.rows, r.cols);
    std::printf("  %-9s %-11s %18s %18s %18s (%s)\n", r.kind.c_str(), sh, cell(def), cell(pdl), cell(best),
                best->variant.c_str());
  }
}

void bench_decode(const bandwidth& bw, ec::blas& blas) {
  std::printf("decode, 7B shape (32 layers, hidden 4096, 32 heads, ffn 11008, vocab 32000), random weights, one CUDA graph per step, KV cache positions 64..127 and 512..639 (cyclically); fused = RMSNorm and SwiGLU inside the matvecs (not before cuBLAS); pdl = programmatic dependent launch; 1cta = attention with one CTA per head (split-KV off):\n");
  for (const int first : {64, 512})
  for (std::size_t kv : {std::size_t{32}, std::size_t{8}})
    for (const char* mix : {"f16", "awq", "q4_k_m", "q8_0", "f16-own"}) {
      if (kv == 8 && std::string(mix) != "q4_k_m" && std::string(mix) != "awq") continue;
      if (first != 64 && std::string(mix) == "f16-own") continue;
      const model_shape shape{32, 4096, 32, kv, 11008, 32000};
      const gpu_model m(shape, mix, 77);
      const int limit = first + 64 * (first == 64 ? 1 : 2);  // 64..127 or 512..639
      gpu_state st(m, static_cast<std::size_t>(limit));
      for (auto& c : st.kc) fill_f32(c.p, c.n, 3, 1.0f);
      for (auto& c : st.vc) fill_f32(c.p, c.n, 4, 1.0f);
      st.token.up({1234});
      const double wb = m.weight_bytes();
      for (int pdl : {0, 3, 1, 4}) try {
        if (first != 64 && (pdl == 0 || pdl == 3)) continue;
        g_attention_splits = pdl == 4 ? 1 : 0;
        const int cmode = pdl == 4 ? 1 : pdl;
        st.pos.up({first});
        const cudaGraphExec_t g = capture_step(m, st, blas, cmode, first, limit);
        g_attention_splits = 0;
        const int steps = 64;
        const double t = time_it([&] {
          for (int i = 0; i < steps; ++i) QFORGE_CUDA_CHECK(cudaGraphLaunch(g, g_stream));
        }, 5) / steps;
        cudaGraphExecDestroy(g);
        const auto logits = st.logits.down();
        bool finite = true;
        for (float v : logits) finite = finite && std::isfinite(v);
        const char* mode = pdl == 0 ? "plain" : pdl == 1 ? "fused+pdl" : pdl == 2 ? "fused+pdl-late"
                         : pdl == 4 ? "fused+pdl+1cta" : "fused";
        std::printf("  %-7s kv %2zu pos %3d-%3d %-15s %8.2f tok/s  %7.3f ms/token  weights %6.2f GB -> %5.0f GB/s (%4.1f%% of copy)%s\n",
                    mix, kv, first, limit - 1, mode, 1.0 / t, t * 1e3, wb * 1e-9, wb / t * 1e-9,
                    100 * wb / t / bw.copy, finite ? "" : "  NON-FINITE LOGITS");
        if (csv)
          std::fprintf(csv, "decode,%s,kv%zu,pos%d,%s,%.3f,%.4f,%.0f,%.1f\n", mix, kv, first, mode,
                       1.0 / t, t * 1e3, wb, wb / t * 1e-9);
      } catch (const std::exception& e) {
        std::printf("  %-7s kv %2zu mode %d: FAILED %s\n", mix, kv, pdl, e.what());
        cudaGetLastError();
        g_attention_splits = 0;
      }
    }
}

}  // namespace

// --profile: two launches each of the default Q4_K and AWQ kernels at 11008x4096, for ncu.
void profile_kernels() {
  const std::size_t rows = 11008, cols = 4096;
  dev<std::uint8_t> w(rows * row_bytes(qtype::q4_k, cols));
  make_gguf(qtype::q4_k, w.p, rows, cols, 1);
  const awq_dev a(cols, rows, 128, 2);
  ec::awq_workspace ws(cols, rows);
  dev<float> x(cols), y(rows);
  fill_f32(x.p, cols, 3, 1.0f);
  ec::launch_opts o;
  o.stream = g_stream;
  for (int i = 0; i < 2; ++i) ec::matvec(qtype::q4_k, w.p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
  for (int i = 0; i < 2; ++i) ec::awq_matvec(a.view(), x.p, cols, 1, y.p, rows, false, ws, o);
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach the log even if the run dies
  bool full = false, profile = false, bench = false;
  std::string out_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--full") full = true;
    else if (a == "--bench") bench = true;  // quick checks, then the timings
    else if (a == "--quick") full = false;
    else if (a == "--profile") profile = true;
    else out_dir = a;
  }
  try {
    if (profile) {
      QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
      profile_kernels();
      return 0;
    }
    cudaDeviceProp prop{};
    QFORGE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs, %zu MB L2, cc %d.%d\n", prop.name, prop.multiProcessorCount,
                static_cast<std::size_t>(prop.l2CacheSize) >> 20, prop.major, prop.minor);
    QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    if (!out_dir.empty() && (full || bench)) csv = std::fopen((out_dir + "/cuda_engine.csv").c_str(), "w");
    ec::blas blas;
    ec::awq_workspace ws(11008, 11008);
    const bool quick = !full;
    std::printf("checks against the CPU references:\n");
    std::uint64_t seed = 1;
    const std::size_t gshapes[][2] = {{1, 256}, {37, 512}, {129, 2304}, {64, 4096}, {300, 11008}};
    for (qtype t : {qtype::q4_k, qtype::q6_k, qtype::q8_0, qtype::f16})
      for (const auto& sh : gshapes) {
        if (quick && sh[1] > 4096) continue;
        check_gguf(t, sh[0], sh[1], seed++, quick);
      }
    for (std::size_t t : {std::size_t{1}, std::size_t{2}}) {  // Q8_0 / F16 rows of 64-multiples
      check_gguf(qtype::q8_0, 5, 64 * t, seed++, quick);
      check_gguf(qtype::f16, 5, 64 * (2 * t + 1), seed++, quick);
    }
    const std::size_t ashapes[][3] = {{8, 32, 32}, {256, 256, 128}, {264, 512, 64}, {4096, 512, 128}, {520, 11008, 128}};
    for (const auto& sh : ashapes) check_awq(sh[0], sh[1], sh[2], seed++, quick, ws);
    check_prologues(seed++, ws);
    check_pdl_chain(seed++, ws);
    check_ops(seed++);
    check_attention_split(seed++);
    for (const char* mix : {"f16", "f16-own", "awq", "q4_k_m", "q8_0"}) check_model(mix, seed++, blas);
    std::printf("checks: %d passed, %d failed\n", passes, failures);
    if (full || bench) {
      const bandwidth bw = measure_bandwidth();
      try {
        bench_matvec(bw, blas);
      } catch (const std::exception& e) {
        std::printf("matvec timing FAILED: %s\n", e.what());
        cudaGetLastError();
      }
      bench_decode(bw, blas);
      summarize(bw);
    }
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  } catch (const std::exception& e) {
    std::printf("ERROR: %s\n", e.what());
    if (csv) std::fclose(csv);
    return 2;
  }
  if (csv) std::fclose(csv);
  return failures == 0 ? 0 : 1;
}
