// SPDX-License-Identifier: MIT
// Standalone check and timing of the CUDA encoders/decoders of the K-quants, the legacy 32-weight
// types and IQ4_NL (quant/<type>/cuda.cuh), built by bench/device/run_cuda_kquants.sh with plain
// nvcc on the GPU machine. Checks, for both staging variants of every type: ggml's golden bytes
// (raw dumps made by the script; imatrix cases through the weighted path) and golden dequant bits;
// the host reference (run on all cores) on generated inputs of every kind, on random importance
// matrices and on small-llama weights; the decoders on random block bytes. Inputs holding NaN/inf
// are compared block by block: blocks of finite input must match, the others are only counted (a
// GPU's canonical NaN differs from x86's). Then times encode and decode per type on 4096x4096 and
// 11008x4096, and a 7B-shaped model (llama-2-7b tensor shapes) encoded to Q4_K_M's tensor types,
// weights resident on the GPU, and streamed from pinned and from pageable host memory.
// Usage: blocks_cuda <golden_root> <real_dir> [--goldens|--quick|--full] [csv_dir]. Exit status 1
// on any mismatch.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "qforge/quant/iq4_nl/cuda.cuh"
#include "qforge/quant/q2_k/cuda.cuh"
#include "qforge/quant/q3_k/cuda.cuh"
#include "qforge/quant/q4_0/cuda.cuh"
#include "qforge/quant/q4_1/cuda.cuh"
#include "qforge/quant/q4_k/cuda.cuh"
#include "qforge/quant/q5_0/cuda.cuh"
#include "qforge/quant/q5_1/cuda.cuh"
#include "qforge/quant/q5_k/cuda.cuh"
#include "qforge/quant/q6_k/cuda.cuh"
#include "cuda_check_support.cuh"
#include "quant/testdata.hpp"

using namespace qforge;
using namespace qforge_cuda_check;  // expect, the counters, dev
using quant::cuda_detail::staging;

namespace {

FILE* csv = nullptr;

template <class T>
std::vector<T> read_raw(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw error(error::kind::io, path, "cannot open");
  const auto n = static_cast<std::size_t>(f.tellg());
  std::vector<T> v(n / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n));
  return v;
}

// Runs body(begin, end) over [0, n) on every core.
void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body) {
  const std::size_t k = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t chunk = (n + k - 1) / k;
  std::vector<std::thread> ts;
  for (std::size_t b = 0; b < n; b += chunk) ts.emplace_back(body, b, std::min(n, b + chunk));
  for (auto& t : ts) t.join();
}

bool all_finite(const float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

// Bit-equal floats, any NaN matching any NaN (GPU canonical NaN vs x86 payloads).
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && std::memcmp(&a[i], &b[i], 4) != 0) return false;
  return true;
}

// One type under test: its device traits and its host reference.
#define QFORGE_TYPE_CASE(NS, GOLDEN)                                                        \
  struct t_##NS {                                                                           \
    using traits = quant::NS::cuda_traits;                                                  \
    using block = traits::block;                                                            \
    static constexpr const char* name = #NS;                                                \
    static constexpr const char* golden = GOLDEN;                                           \
    static void encode_ref(std::span<const float> x, std::span<block> y, const float* im) { \
      quant::NS::encode_ref(x, y, im);                                                      \
    }                                                                                       \
    static void decode_ref(std::span<const block> x, std::span<float> y) {                  \
      quant::NS::decode_ref(x, y);                                                          \
    }                                                                                       \
  };
QFORGE_TYPE_CASE(q4_k, "q4_K")
QFORGE_TYPE_CASE(q6_k, "q6_K")
QFORGE_TYPE_CASE(q5_k, "q5_K")
QFORGE_TYPE_CASE(q3_k, "q3_K")
QFORGE_TYPE_CASE(q2_k, "q2_K")
QFORGE_TYPE_CASE(q4_0, "q4_0")
QFORGE_TYPE_CASE(q4_1, "q4_1")
QFORGE_TYPE_CASE(q5_0, "q5_0")
QFORGE_TYPE_CASE(q5_1, "q5_1")
QFORGE_TYPE_CASE(iq4_nl, "iq4_nl")
#undef QFORGE_TYPE_CASE

template <class T>
struct suite {
  using traits = typename T::traits;
  using block = typename T::block;
  static constexpr int E = traits::elems;

  // Host reference, rows split across cores (weighted: one row per call, as ggml does).
  static std::vector<block> host(const std::vector<float>& x, std::size_t rows, std::size_t cols,
                                 const float* im) {
    const std::size_t bpr = cols / E;
    std::vector<block> y(rows * bpr);
    parallel_for(rows, [&](std::size_t r0, std::size_t r1) {
      if (im) {
        for (std::size_t r = r0; r < r1; ++r)
          T::encode_ref(std::span<const float>(x.data() + r * cols, cols),
                        std::span<block>(y.data() + r * bpr, bpr), im);
      } else {
        T::encode_ref(std::span<const float>(x.data() + r0 * cols, (r1 - r0) * cols),
                      std::span<block>(y.data() + r0 * bpr, (r1 - r0) * bpr), nullptr);
      }
    });
    return y;
  }

  template <staging S>
  static void launch(const float* dx, std::size_t rows, std::size_t cols, const float* dim,
                     block* dy) {
    if (dim)
      quant::cuda_detail::encode_blocks_weighted<traits, S>(dx, rows, cols, dim, dy, nullptr);
    else
      quant::cuda_detail::encode_blocks<traits, S>(dx, rows * cols, dy, nullptr);
  }

  static std::vector<block> gpu(const std::vector<float>& x, std::size_t rows, std::size_t cols,
                                const std::vector<float>* im, staging s) {
    dev<float> dx(x.size()), dim(im ? im->size() : 1);
    dev<block> dy(x.size() / E);
    QFORGE_CUDA_CHECK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    if (im)
      QFORGE_CUDA_CHECK(cudaMemcpy(dim.p, im->data(), im->size() * 4, cudaMemcpyHostToDevice));
    QFORGE_CUDA_CHECK(cudaMemset(dy.p, 0xAB, x.size() / E * sizeof(block)));  // poison
    if (s == staging::shared)
      launch<staging::shared>(dx.p, rows, cols, im ? dim.p : nullptr, dy.p);
    else
      launch<staging::direct>(dx.p, rows, cols, im ? dim.p : nullptr, dy.p);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<block> y(x.size() / E);
    QFORGE_CUDA_CHECK(cudaMemcpy(y.data(), dy.p, y.size() * sizeof(block), cudaMemcpyDeviceToHost));
    return y;
  }

  static std::vector<float> gpu_decode(const std::vector<block>& q) {
    dev<block> dq(q.size());
    dev<float> dy(q.size() * E);
    QFORGE_CUDA_CHECK(cudaMemcpy(dq.p, q.data(), q.size() * sizeof(block), cudaMemcpyHostToDevice));
    QFORGE_CUDA_CHECK(cudaMemset(dy.p, 0xFF, q.size() * E * 4));
    quant::cuda_detail::decode_blocks<traits>(dq.p, q.size(), dy.p, nullptr);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> y(q.size() * E);
    QFORGE_CUDA_CHECK(cudaMemcpy(y.data(), dy.p, y.size() * 4, cudaMemcpyDeviceToHost));
    return y;
  }

  // Blocks must be equal; where `x` is given, a block whose input (or, weighted legacy, whose
  // row) holds a non-finite value may differ and is counted instead.
  static void compare(const std::vector<block>& got, const std::vector<block>& want,
                      const std::string& what, const float* x = nullptr, std::size_t cols = 0,
                      bool row_scope = false) {
    std::size_t bad = 0, excused = 0, first = got.size();
    if (got.size() != want.size()) {
      expect(false, what + " (size)");
      return;
    }
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (std::memcmp(&got[i], &want[i], sizeof(block)) == 0) continue;
      if (x) {
        const std::size_t bpr = cols / E;
        const float* scope = row_scope ? x + (i / bpr) * cols : x + i * E;
        if (!all_finite(scope, row_scope ? cols : E)) {
          ++excused;
          continue;
        }
      }
      if (bad++ == 0) first = i;
    }
    if (bad) std::printf("     %zu of %zu blocks differ, first %zu\n", bad, got.size(), first);
    if (excused)
      std::printf("     info: %s: %zu blocks with non-finite input differ\n", what.c_str(),
                  excused);
    expect(bad == 0, what);
  }

  static void check_goldens(const std::string& root) {
    const std::string dir = root + "/" + T::golden;
    std::ifstream list(dir + "/cases.txt");
    std::string c;
    std::size_t rows = 0, cols = 0;
    int has_im = 0, n = 0;
    while (list >> c >> rows >> cols >> has_im) {
      const auto x = read_raw<float>(dir + "/" + c + ".input.bin");
      const auto q = read_raw<block>(dir + "/" + c + ".quant.bin");
      const auto dq = read_raw<float>(dir + "/" + c + ".dequant.bin");
      std::vector<float> im;
      if (has_im) im = read_raw<float>(dir + "/" + c + ".imatrix.bin");
      const std::string tag = std::string(T::name) + " golden " + c + " " + std::to_string(rows) +
                              "x" + std::to_string(cols) + (has_im ? " imatrix" : "");
      compare(host(x, rows, cols, has_im ? im.data() : nullptr), q, tag + " host reference");
      compare(gpu(x, rows, cols, has_im ? &im : nullptr, staging::direct), q, tag + " cuda direct");
      compare(gpu(x, rows, cols, has_im ? &im : nullptr, staging::shared), q, tag + " cuda shared");
      const auto y = gpu_decode(q);
      expect(y.size() == dq.size() && std::memcmp(y.data(), dq.data(), y.size() * 4) == 0,
             tag + " cuda decode bits");
      ++n;
    }
    expect(n == 14, std::string(T::name) + ": 14 golden cases read (" + std::to_string(n) + ")");
  }

  static std::vector<float> imatrix(std::size_t cols, std::uint64_t seed) {
    testdata::rng r(seed);
    std::vector<float> im(cols);
    for (auto& v : im) v = r.below(16) == 0 ? 0.0f : r.uniform() * 4.0f;  // some zero weights
    return im;
  }

  static void check_case(const std::vector<float>& x, std::size_t rows, std::size_t cols,
                         const std::string& tag, bool weighted, std::uint64_t seed) {
    const auto want = host(x, rows, cols, nullptr);
    compare(gpu(x, rows, cols, nullptr, staging::direct), want, tag + " direct", x.data(), cols);
    compare(gpu(x, rows, cols, nullptr, staging::shared), want, tag + " shared", x.data(), cols);
    if (!weighted) return;
    const auto im = imatrix(cols, seed);
    const auto wantw = host(x, rows, cols, im.data());
    const bool row_scope = traits::weighted_needs_row_stat;
    compare(gpu(x, rows, cols, &im, staging::direct), wantw, tag + " imatrix direct", x.data(),
            cols, row_scope);
    compare(gpu(x, rows, cols, &im, staging::shared), wantw, tag + " imatrix shared", x.data(),
            cols, row_scope);
  }

  static void check_generated(bool quick) {
    const std::size_t shapes[][2] = {{1, 256}, {3, 512}, {37, 512}, {129, 768}, {64, 4096}};
    for (const auto& s : shapes)
      for (const auto k : testdata::all_kinds) {
        if (quick && s[0] > 40) continue;
        const auto x = testdata::generate(k, s[0], s[1], 11 + s[1]);
        const std::string tag = std::string(T::name) + " " + std::string(testdata::name(k)) + " " +
                                std::to_string(s[0]) + "x" + std::to_string(s[1]);
        check_case(x, s[0], s[1], tag, true, 3 + s[0]);
      }
    const auto w = testdata::weights(300, 4096, 9);
    check_case(w, 300, 4096, std::string(T::name) + " weights 300x4096", true, 77);
  }

  static void check_real(const std::string& dir) {
    std::ifstream list(dir + "/tensors.txt");
    std::string name;
    std::size_t rows = 0, cols = 0;
    int n = 0;
    while (list >> name >> rows >> cols) {
      if (cols % E != 0) continue;
      const auto x = read_raw<float>(dir + "/" + name + ".bin");
      check_case(x, rows, cols, std::string(T::name) + " small-llama " + name, true, 5 + rows);
      ++n;
    }
    expect(n > 0, std::string(T::name) + ": small-llama tensors read");
  }

  // Random bytes (every code, scales of every fp16 class) decoded on both sides.
  static void check_decode_random() {
    testdata::rng r(1234);
    std::vector<block> q(4099);
    auto* bytes = reinterpret_cast<unsigned char*>(q.data());
    for (std::size_t i = 0; i < q.size() * sizeof(block); ++i)
      bytes[i] = static_cast<unsigned char>(r.next());
    std::vector<float> want(q.size() * E);
    T::decode_ref(q, want);
    expect(same_floats(gpu_decode(q), want),
           std::string(T::name) + " decode random blocks (NaN = NaN)");
  }

  static void run_checks(const std::string& golden_root, const std::string& real_dir, int level) {
    const int f0 = failures, p0 = passes;
    check_goldens(golden_root);
    check_decode_random();
    if (level > 0) {
      check_generated(level == 1);
      check_real(real_dir);
    }
    std::printf("%-7s checks: %d passed, %d failed\n", T::name, passes - p0, failures - f0);
    std::fflush(stdout);
  }
};

// --- timing ----------------------------------------------------------------------------------

template <class F>
float median_ms(F&& launch) {
  cudaEvent_t a, b;
  QFORGE_CUDA_CHECK(cudaEventCreate(&a));
  QFORGE_CUDA_CHECK(cudaEventCreate(&b));
  launch();  // warm-up, and a first estimate for the repetition count
  QFORGE_CUDA_CHECK(cudaEventRecord(a));
  launch();
  QFORGE_CUDA_CHECK(cudaEventRecord(b));
  QFORGE_CUDA_CHECK(cudaEventSynchronize(b));
  float first = 0;
  QFORGE_CUDA_CHECK(cudaEventElapsedTime(&first, a, b));
  const int reps = std::clamp(static_cast<int>(250.0f / std::max(first, 0.01f)), 3, 30);
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    QFORGE_CUDA_CHECK(cudaEventRecord(a));
    launch();
    QFORGE_CUDA_CHECK(cudaEventRecord(b));
    QFORGE_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    QFORGE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

__global__ void fill_normal_kernel(float* x, std::size_t n, std::uint64_t seed, bool positive) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  std::uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  const float u1 = (static_cast<float>(z >> 40) + 1.0f) * 0x1p-24f;
  const float u2 = static_cast<float>((z >> 16) & 0xffffff) * 0x1p-24f;
  const float v = 0.02f * sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
  x[i] = positive ? fabsf(v) * 50.0f + 0.01f : v;
}

void fill_normal(float* x, std::size_t n, std::uint64_t seed, bool positive = false) {
  fill_normal_kernel<<<static_cast<unsigned>((n + 255) / 256), 256>>>(x, n, seed, positive);
  QFORGE_CUDA_CHECK_LAUNCH();
}

void row_out(const char* type, const char* what, std::size_t rows, std::size_t cols, float ms,
             double moved_bytes) {
  const double in_gb = rows * cols * 4.0 / 1e9;
  std::printf("%-7s %-22s %5zux%-5zu %9.3f ms %8.1f GB/s F32 in %8.1f GB/s moved\n", type, what,
              rows, cols, ms, in_gb / (ms / 1e3), moved_bytes / 1e9 / (ms / 1e3));
  if (csv)
    std::fprintf(csv, "%s,%s,%zu,%zu,%.4f,%.2f,%.2f\n", type, what, rows, cols, ms,
                 in_gb / (ms / 1e3), moved_bytes / 1e9 / (ms / 1e3));
}

template <class T>
void time_type(bool weighted_too) {
  using traits = typename T::traits;
  using block = typename T::block;
  constexpr int E = traits::elems;
  const std::size_t shapes[][2] = {{4096, 4096}, {11008, 4096}};
  for (const auto& s : shapes) {
    const std::size_t rows = s[0], cols = s[1], n = rows * cols, nb = n / E;
    dev<float> dx(n), dy(n), dim(cols);
    dev<block> dq(nb);
    fill_normal(dx.p, n, 42);
    fill_normal(dim.p, cols, 7, true);  // importance weights > 0
    const double moved = n * 4.0 + nb * sizeof(block);
    const float direct = median_ms([&] {
      quant::cuda_detail::encode_blocks<traits, staging::direct>(dx.p, n, dq.p, nullptr);
    });
    const float shared = median_ms([&] {
      quant::cuda_detail::encode_blocks<traits, staging::shared>(dx.p, n, dq.p, nullptr);
    });
    const float dec =
        median_ms([&] { quant::cuda_detail::decode_blocks<traits>(dq.p, nb, dy.p, nullptr); });
    row_out(T::name, "encode direct", rows, cols, direct, moved);
    row_out(T::name, "encode shared", rows, cols, shared, moved);
    row_out(T::name, "decode", rows, cols, dec, moved);
    if (weighted_too && rows == 4096) {
      const float w = median_ms([&] {
        quant::cuda_detail::encode_blocks_weighted<traits, staging::direct>(dx.p, rows, cols, dim.p,
                                                                            dq.p, nullptr);
      });
      row_out(T::name, "encode imatrix direct", rows, cols, w, moved);
    }
    // The timed kernel's output is the reference's (first 64 rows).
    const std::size_t rows_chk = 64, bpr = cols / E;
    std::vector<float> x(rows_chk * cols);
    std::vector<block> got(rows_chk * bpr);
    QFORGE_CUDA_CHECK(cudaMemcpy(x.data(), dx.p, x.size() * 4, cudaMemcpyDeviceToHost));
    quant::cuda_detail::encode_blocks<traits>(dx.p, n, dq.p, nullptr);
    QFORGE_CUDA_CHECK(
        cudaMemcpy(got.data(), dq.p, got.size() * sizeof(block), cudaMemcpyDeviceToHost));
    suite<T>::compare(got, suite<T>::host(x, rows_chk, cols, nullptr),
                      std::string(T::name) + " timed output " + std::to_string(rows) + "x" +
                          std::to_string(cols));
    std::fflush(stdout);
  }
}

// --- a 7B-shaped model to Q4_K_M --------------------------------------------------------------

struct tensor {
  std::string name;
  std::size_t rows, cols;
  bool q6;  // Q6_K, else Q4_K
};

// llama-2-7b's shapes; llama-quantize's Q4_K_M choices for a 32-layer llama: Q6_K for output and
// for attn_v / ffn_down of the layers use_more_bits picks (16 of 32), Q4_K elsewhere.
std::vector<tensor> model_7b() {
  const int n_layer = 32;
  auto more_bits = [&](int i) {
    return i < n_layer / 8 || i >= 7 * n_layer / 8 || (i - n_layer / 8) % 3 == 2;
  };
  std::vector<tensor> t{{"token_embd", 32000, 4096, false}};
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    t.push_back({p + "attn_q", 4096, 4096, false});
    t.push_back({p + "attn_k", 4096, 4096, false});
    t.push_back({p + "attn_v", 4096, 4096, more_bits(i)});
    t.push_back({p + "attn_output", 4096, 4096, false});
    t.push_back({p + "ffn_gate", 11008, 4096, false});
    t.push_back({p + "ffn_up", 11008, 4096, false});
    t.push_back({p + "ffn_down", 4096, 11008, more_bits(i)});
  }
  t.push_back({"output", 32000, 4096, true});
  return t;
}

std::size_t out_bytes(const tensor& t) {
  return t.rows * t.cols / 256 * (t.q6 ? sizeof(quant::block_q6_k) : sizeof(quant::block_q4_k));
}

void encode_tensor(const tensor& t, const float* x, std::byte* y, cudaStream_t s) {
  const std::size_t n = t.rows * t.cols;
  if (t.q6)
    quant::q6_k::encode_cuda(x, n, reinterpret_cast<quant::block_q6_k*>(y), s);
  else
    quant::q4_k::encode_cuda(x, n, reinterpret_cast<quant::block_q4_k*>(y), s);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void time_model() {
  const auto model = model_7b();
  std::size_t max_in = 0, max_out = 0, total = 0, n_q6 = 0;
  for (const auto& t : model) {
    max_in = std::max(max_in, t.rows * t.cols);
    max_out = std::max(max_out, out_bytes(t));
    total += t.rows * t.cols;
    n_q6 += t.q6 ? t.rows * t.cols : 0;
  }
  std::printf("\n7B-shaped model: %zu tensors, %.3f G weights (%.1f GB F32), %.1f%% of them Q6_K\n",
              model.size(), total / 1e9, total * 4 / 1e9, 100.0 * n_q6 / total);
  dev<float> in0(max_in), in1(max_in);
  dev<std::byte> out0(max_out), out1(max_out);
  float* in[2] = {in0.p, in1.p};
  std::byte* out[2] = {out0.p, out1.p};

  // (1) Weights already on the GPU: each tensor filled with its own random normal values
  // (untimed), then its encode timed with events.
  cudaEvent_t a, b;
  QFORGE_CUDA_CHECK(cudaEventCreate(&a));
  QFORGE_CUDA_CHECK(cudaEventCreate(&b));
  double resident_ms = 0, q4_ms = 0, q6_ms = 0;
  bool checked_q4 = false, checked_q6 = false;
  for (std::size_t i = 0; i < model.size(); ++i) {
    const auto& t = model[i];
    fill_normal(in0.p, t.rows * t.cols, 1000 + i);
    QFORGE_CUDA_CHECK(cudaEventRecord(a));
    encode_tensor(t, in0.p, out0.p, nullptr);
    QFORGE_CUDA_CHECK(cudaEventRecord(b));
    QFORGE_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    QFORGE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    resident_ms += ms;
    (t.q6 ? q6_ms : q4_ms) += ms;
    if ((t.q6 && !checked_q6) || (!t.q6 && !checked_q4)) {  // first rows against the host reference
      const std::size_t rows = 16;
      std::vector<float> x(rows * t.cols);
      QFORGE_CUDA_CHECK(cudaMemcpy(x.data(), in0.p, x.size() * 4, cudaMemcpyDeviceToHost));
      if (t.q6) {
        std::vector<quant::block_q6_k> got(x.size() / 256);
        QFORGE_CUDA_CHECK(
            cudaMemcpy(got.data(), out0.p, got.size() * sizeof got[0], cudaMemcpyDeviceToHost));
        suite<t_q6_k>::compare(got, suite<t_q6_k>::host(x, rows, t.cols, nullptr),
                               "7B " + t.name + " q6_k rows");
        checked_q6 = true;
      } else {
        std::vector<quant::block_q4_k> got(x.size() / 256);
        QFORGE_CUDA_CHECK(
            cudaMemcpy(got.data(), out0.p, got.size() * sizeof got[0], cudaMemcpyDeviceToHost));
        suite<t_q4_k>::compare(got, suite<t_q4_k>::host(x, rows, t.cols, nullptr),
                               "7B " + t.name + " q4_k rows");
        checked_q4 = true;
      }
    }
  }
  std::printf(
      "7B Q4_K_M, weights resident on the GPU: %8.1f ms encode (Q4_K %.1f ms, Q6_K %.1f ms), %.1f "
      "GB/s F32\n",
      resident_ms, q4_ms, q6_ms, total * 4 / 1e9 / (resident_ms / 1e3));
  if (csv)
    std::fprintf(csv, "7B_q4_k_m,resident,%zu,0,%.3f,%.2f,0\n", total, resident_ms,
                 total * 4 / 1e9 / (resident_ms / 1e3));

  // Host copies of one random tensor per distinct shape (the content does not change the work
  // much: same distribution), pinned and pageable.
  std::vector<std::pair<std::size_t, std::size_t>> shapes;
  for (const auto& t : model)
    if (std::find(shapes.begin(), shapes.end(), std::make_pair(t.rows, t.cols)) == shapes.end())
      shapes.emplace_back(t.rows, t.cols);
  std::vector<float*> pinned(shapes.size());
  std::vector<std::vector<float>> pageable(shapes.size());
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    const std::size_t n = shapes[k].first * shapes[k].second;
    QFORGE_CUDA_CHECK(cudaMallocHost(&pinned[k], n * 4));
    fill_normal(in0.p, n, 77 + k);
    QFORGE_CUDA_CHECK(cudaMemcpy(pinned[k], in0.p, n * 4, cudaMemcpyDeviceToHost));
    pageable[k].assign(pinned[k], pinned[k] + n);
  }
  std::byte* host_out[2];
  QFORGE_CUDA_CHECK(cudaMallocHost(&host_out[0], max_out));
  QFORGE_CUDA_CHECK(cudaMallocHost(&host_out[1], max_out));
  cudaStream_t st[2];
  QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&st[0], cudaStreamNonBlocking));
  QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&st[1], cudaStreamNonBlocking));

  // (2) and (3): host -> device copy, encode, device -> host copy of the blocks, two streams so
  // one tensor's copies overlap the other's encode. Wall clock from the first copy to the end.
  for (int pass = 0; pass < 2; ++pass) {
    const bool use_pinned = pass == 0;
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
    const double t0 = now_s();
    for (std::size_t i = 0; i < model.size(); ++i) {
      const auto& t = model[i];
      const int s = static_cast<int>(i % 2);
      const std::size_t k = static_cast<std::size_t>(
          std::find(shapes.begin(), shapes.end(), std::make_pair(t.rows, t.cols)) - shapes.begin());
      const float* src = use_pinned ? pinned[k] : pageable[k].data();
      QFORGE_CUDA_CHECK(
          cudaMemcpyAsync(in[s], src, t.rows * t.cols * 4, cudaMemcpyHostToDevice, st[s]));
      encode_tensor(t, in[s], out[s], st[s]);
      QFORGE_CUDA_CHECK(
          cudaMemcpyAsync(host_out[s], out[s], out_bytes(t), cudaMemcpyDeviceToHost, st[s]));
    }
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
    const double wall = now_s() - t0;
    const char* what = use_pinned ? "pinned" : "pageable";
    std::printf(
        "7B Q4_K_M, from %-8s host memory (H2D + encode + D2H): %8.1f ms wall, %.1f GB/s F32\n",
        what, wall * 1e3, total * 4 / 1e9 / wall);
    if (csv)
      std::fprintf(csv, "7B_q4_k_m,%s,%zu,0,%.3f,%.2f,0\n", what, total, wall * 1e3,
                   total * 4 / 1e9 / wall);
  }
  // H2D bandwidth alone, for reading the above.
  {
    const std::size_t k = shapes.size() - 1, n = shapes[k].first * shapes[k].second;
    const float pin_ms = median_ms(
        [&] { QFORGE_CUDA_CHECK(cudaMemcpy(in0.p, pinned[k], n * 4, cudaMemcpyHostToDevice)); });
    const float page_ms = median_ms([&] {
      QFORGE_CUDA_CHECK(cudaMemcpy(in0.p, pageable[k].data(), n * 4, cudaMemcpyHostToDevice));
    });
    std::printf("H2D copy of %.0f MB: pinned %.1f GB/s, pageable %.1f GB/s\n", n * 4 / 1e6,
                n * 4 / 1e9 / (pin_ms / 1e3), n * 4 / 1e9 / (page_ms / 1e3));
  }
  for (auto* p : pinned) cudaFreeHost(p);
  cudaFreeHost(host_out[0]);
  cudaFreeHost(host_out[1]);
  cudaStreamDestroy(st[0]);
  cudaStreamDestroy(st[1]);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
}

template <class... Ts>
void for_types(auto&& f) {
  (f.template operator()<Ts>(), ...);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s <golden_root> <real_dir> [--goldens|--quick|--full] [csv_dir]\n",
                 argv[0]);
    return 2;
  }
  // --goldens: goldens and random decodes only (for compute-sanitizer); --quick: plus the smaller
  // generated cases; otherwise every check, then the timings.
  const std::string mode = argc > 3 ? argv[3] : "--full";
  const int level = mode == "--goldens" ? 0 : mode == "--quick" ? 1 : 2;
  const bool quick = level < 2;
  const std::string csv_dir = argc > 4 ? argv[4] : ".";
  try {
    cudaDeviceProp prop{};
    QFORGE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, sm_%d%d, %d SMs, %u host threads\n", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, std::thread::hardware_concurrency());
    const auto t0 = now_s();
    for_types<t_q4_k, t_q6_k, t_q5_k, t_q3_k, t_q2_k, t_q4_0, t_q4_1, t_q5_0, t_q5_1, t_iq4_nl>(
        [&]<class T>() { suite<T>::run_checks(argv[1], argv[2], level); });
    std::printf("checks took %.1f s\n", now_s() - t0);
    if (!quick) {
      csv = std::fopen((csv_dir + "/blocks_cuda_timing.csv").c_str(), "w");
      if (csv) std::fprintf(csv, "type,what,rows,cols,ms,f32_gbps,moved_gbps\n");
      time_model();
      std::printf("\n");
      for_types<t_q4_k, t_q6_k, t_q5_k, t_q3_k, t_q2_k, t_q4_0, t_q4_1, t_q5_0, t_q5_1, t_iq4_nl>(
          [&]<class T>() { time_type<T>(true); });
      if (csv) std::fclose(csv);
    }
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d checks passed, %d failed\n", failures ? "FAILED" : "PASSED", passes,
              failures);
  return failures ? 1 : 0;
}
