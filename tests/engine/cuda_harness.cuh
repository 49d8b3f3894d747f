// SPDX-License-Identifier: MIT
// What the parts of the CUDA engine harness (cuda_engine_*.cu, built by
// bench/device/run_cuda_engine.sh) share: device buffers and random generators, GGUF / AWQ test
// matrices and their host decoders, the comparison against a double-precision reference, and the
// timing helpers (median of event-timed runs, captured graphs of back-to-back launches). Helpers
// have internal linkage (each part compiles its own copy of the kernels); the stream and the collected
// timings are the one shared state (with the counters of cuda_check_support.cuh).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "cuda_check_support.cuh"
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

namespace cuda_harness {

using namespace qforge;
namespace ec = qforge::engine::cuda;
using quant::qtype;
using namespace qforge_cuda_check;  // expect, the counters, dev

struct bench_row {
  std::string kind, variant;
  std::size_t rows, cols;
  double bytes, t;
};

struct bandwidth {
  double copy = 0, read = 0;  // bytes/s
};

inline FILE* csv = nullptr;
inline cudaStream_t g_stream = nullptr;
inline int g_attention_splits = 0;  // launch_opts of the captured decode steps (bench_decode's variants)
inline std::vector<bench_row> g_rows;

namespace {

// --- device memory and generators ----------------------------------------------------------------

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

// --- timings -------------------------------------------------------------------------------------

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

// The launches `enqueue` makes on g_stream, captured and instantiated as one graph.
cudaGraphExec_t capture_graph(const std::function<void()>& enqueue) {
  cudaGraph_t g = nullptr;
  QFORGE_CUDA_CHECK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue();
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

// Mean time per launch of `enqueue(i)` over a graph of `count` launches, i rotating over copies.
double time_graph(const std::function<void(std::size_t)>& enqueue, std::size_t count) {
  const cudaGraphExec_t exec = capture_graph([&] {
    for (std::size_t i = 0; i < count; ++i) enqueue(i);
  });
  const double t = time_it([&] { QFORGE_CUDA_CHECK(cudaGraphLaunch(exec, g_stream)); }, 7);
  cudaGraphExecDestroy(exec);
  return t / static_cast<double>(count);
}

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

}  // namespace

// The parts' entry points, called by cuda_engine_main.cu.
// cuda_engine_checks.cu: every matvec kind against its CPU reference, the fused prologues, a PDL
// chain, the small ops and split-KV attention.
void check_gguf(qtype t, std::size_t rows, std::size_t cols, std::uint64_t seed, bool quick);
void check_awq(std::size_t out, std::size_t in, std::size_t group, std::uint64_t seed, bool quick,
               ec::awq_workspace& ws);
void check_prologues(std::uint64_t seed, ec::awq_workspace& ws);
void check_pdl_chain(std::uint64_t seed, ec::awq_workspace& ws);
void check_ops(std::uint64_t seed);
void check_attention_split(std::uint64_t seed);
// cuda_engine_model.cu: a Llama-shaped model decoded through captured graphs, against the CPU, and
// the 7B-shaped decode timings.
void check_model(const std::string& mix, std::uint64_t seed, ec::blas& blas);
void bench_decode(const bandwidth& bw, ec::blas& blas);
// cuda_engine_bench.cu: device bandwidth, the matvec timings and their summary, the ncu target.
bandwidth measure_bandwidth();
void bench_matvec(const bandwidth& bw, ec::blas& blas);
void summarize(const bandwidth& bw);
void profile_kernels();
// cuda_engine_probe.cu: where a matvec's time goes (--probe).
void probe_matvec(const bandwidth& bw);

}  // namespace cuda_harness
