// SPDX-License-Identifier: MIT
// Standalone check and timing of the Q8_0 CUDA kernels (quant/q8_0/cuda.cuh), built by
// bench/device/run_cuda.sh with plain nvcc on the GPU machine. Checks: ggml's golden bytes (raw
// dumps made by run_cuda.sh), the host reference on generated inputs (NaN/inf/ties included) for
// both kernel shapes, a misaligned input, and decode bits. Then times encode and decode on 4096x4096
// and 11008x4096 (median of CUDA-event timings), next to a device-to-device copy of the same bytes.
// Usage: q8_0_cuda <golden_dir> [--quick]. Exit status 1 on any mismatch.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "qforge/quant/q8_0/cuda.cuh"
#include "qforge/quant/q8_0/ref.hpp"
#include "cuda_check_support.cuh"
#include "quant/testdata.hpp"

using namespace qforge;
using namespace qforge_cuda_check;  // expect, the counters, dev
using quant::block_q8_0;

namespace {

std::vector<block_q8_0> ref_encode(const std::vector<float>& x) {
  std::vector<block_q8_0> y(x.size() / 32);
  quant::q8_0::encode_ref(x, y);
  return y;
}

// Encodes x on the GPU with kernel shape Vec, starting `shift` floats into the device buffer.
template <int Vec>
std::vector<block_q8_0> gpu_encode(const std::vector<float>& x, std::size_t shift = 0) {
  dev<float> dx(x.size() + shift);
  dev<block_q8_0> dy(x.size() / 32);
  QFORGE_CUDA_CHECK(cudaMemcpy(dx.p + shift, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
  QFORGE_CUDA_CHECK(cudaMemset(dy.p, 0xAB, x.size() / 32 * sizeof(block_q8_0)));  // poison
  quant::q8_0::encode_cuda_vec<Vec>(dx.p + shift, x.size(), dy.p, nullptr);
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<block_q8_0> y(x.size() / 32);
  QFORGE_CUDA_CHECK(cudaMemcpy(y.data(), dy.p, y.size() * sizeof(block_q8_0), cudaMemcpyDeviceToHost));
  return y;
}

std::vector<float> gpu_decode(const std::vector<block_q8_0>& q, std::size_t shift = 0) {
  dev<block_q8_0> dq(q.size());
  dev<float> dy_buf(q.size() * 32 + shift);
  struct {
    float* p;
  } dy{dy_buf.p + shift};
  QFORGE_CUDA_CHECK(cudaMemcpy(dq.p, q.data(), q.size() * sizeof(block_q8_0), cudaMemcpyHostToDevice));
  QFORGE_CUDA_CHECK(cudaMemset(dy.p, 0xFF, q.size() * 32 * 4));
  quant::q8_0::decode_cuda(dq.p, q.size(), dy.p);
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> y(q.size() * 32);
  QFORGE_CUDA_CHECK(cudaMemcpy(y.data(), dy.p, y.size() * 4, cudaMemcpyDeviceToHost));
  return y;
}

bool same(const void* a, const void* b, std::size_t n) { return std::memcmp(a, b, n) == 0; }

// Bit-equal floats, except that any NaN matches any NaN: a GPU multiply returns its canonical NaN
// where x86 propagates the operand's payload and sign (only blocks whose scale is NaN/inf).
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::isnan(a[i]) && std::isnan(b[i])) && !same(&a[i], &b[i], 4)) return false;
  return true;
}

void check_blocks(const std::vector<block_q8_0>& got, const std::vector<block_q8_0>& want,
                  const std::string& what) {
  bool ok = got.size() == want.size() && same(got.data(), want.data(), got.size() * sizeof(block_q8_0));
  if (!ok) {
    for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i)
      if (!same(&got[i], &want[i], sizeof(block_q8_0))) {
        std::printf("     first differing block %zu: d %04x vs %04x\n", i, got[i].d, want[i].d);
        break;
      }
  }
  expect(ok, what);
}

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

void check_goldens(const std::string& dir) {
  std::ifstream list(dir + "/cases.txt");
  std::string name;
  std::size_t rows = 0, cols = 0;
  int n = 0;
  while (list >> name >> rows >> cols) {
    const auto x = read_raw<float>(dir + "/" + name + ".input.bin");
    const auto q = read_raw<block_q8_0>(dir + "/" + name + ".quant.bin");
    const auto dq = read_raw<float>(dir + "/" + name + ".dequant.bin");
    const std::string tag = "golden " + name + " " + std::to_string(rows) + "x" + std::to_string(cols);
    check_blocks(ref_encode(x), q, tag + " host reference");
    check_blocks(gpu_encode<4>(x), q, tag + " cuda encode vec4");
    check_blocks(gpu_encode<1>(x), q, tag + " cuda encode vec1");
    const auto y = gpu_decode(q);
    expect(y.size() == dq.size() && same(y.data(), dq.data(), y.size() * 4), tag + " cuda decode bits");
    ++n;
  }
  expect(n == 14, "14 golden cases read (" + std::to_string(n) + ")");
}

void check_generated() {
  const std::size_t shapes[][2] = {{1, 32}, {3, 96}, {127, 64}, {129, 160}, {37, 512}, {1001, 4096}};
  for (const auto& s : shapes)
    for (const auto k : testdata::all_kinds) {
      const auto x = testdata::generate(k, s[0], s[1], 5 + s[1]);
      const auto want = ref_encode(x);
      const std::string tag = std::string(testdata::name(k)) + " " + std::to_string(s[0]) + "x" +
                              std::to_string(s[1]);
      check_blocks(gpu_encode<4>(x), want, tag + " vec4");
      check_blocks(gpu_encode<1>(x), want, tag + " vec1");
      check_blocks(gpu_encode<1>(x, 1), want, tag + " vec1, input 4 bytes off alignment");
      std::vector<float> dref(x.size());
      quant::q8_0::decode_ref(want, dref);
      const auto d = gpu_decode(want);
      expect(same_floats(d, dref), tag + " decode bits (NaN = NaN)");
      expect(same_floats(gpu_decode(want, 1), dref), tag + " decode bits, output off alignment");
    }
  const auto w = testdata::weights(300, 4096, 9);
  check_blocks(gpu_encode<4>(w), ref_encode(w), "weights 300x4096 vec4");
}

template <class F>
float median_ms(F&& launch, int reps) {
  cudaEvent_t a, b;
  QFORGE_CUDA_CHECK(cudaEventCreate(&a));
  QFORGE_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 5; ++i) launch();
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
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

void time_shape(std::size_t rows, std::size_t cols, FILE* csv) {
  const std::size_t n = rows * cols, nb = n / 32;
  const auto x = testdata::generate(testdata::kind::normal, rows, cols, 1);
  dev<float> dx(n), dy(n), dcopy(n);
  dev<block_q8_0> dq(nb);
  QFORGE_CUDA_CHECK(cudaMemcpy(dx.p, x.data(), n * 4, cudaMemcpyHostToDevice));
  const double in_gb = n * 4.0 / 1e9, q_gb = nb * 34.0 / 1e9;
  const int reps = 50;
  const float copy = median_ms([&] { QFORGE_CUDA_CHECK(cudaMemcpyAsync(dcopy.p, dx.p, n * 4, cudaMemcpyDeviceToDevice)); }, reps);
  const float e4 = median_ms([&] { quant::q8_0::encode_cuda_vec<4>(dx.p, n, dq.p, nullptr); }, reps);
  const float e1 = median_ms([&] { quant::q8_0::encode_cuda_vec<1>(dx.p, n, dq.p, nullptr); }, reps);
  const float dd = median_ms([&] { quant::q8_0::decode_cuda(dq.p, nb, dy.p); }, reps);
  // The timed output is still the reference's.
  std::vector<block_q8_0> got(nb);
  quant::q8_0::encode_cuda_vec<4>(dx.p, n, dq.p, nullptr);
  QFORGE_CUDA_CHECK(cudaMemcpy(got.data(), dq.p, nb * sizeof(block_q8_0), cudaMemcpyDeviceToHost));
  check_blocks(got, ref_encode(x), "timed " + std::to_string(rows) + "x" + std::to_string(cols) + " output");
  auto row = [&](const char* what, float ms, double moved_gb, double float_gb) {
    std::printf("%-26s %5zux%-5zu %8.3f ms %8.1f GB/s floats %8.1f GB/s moved\n", what, rows, cols, ms,
                float_gb / (ms / 1e3), moved_gb / (ms / 1e3));
    std::fprintf(csv, "%s,%zu,%zu,%.4f,%.1f,%.1f\n", what, rows, cols, ms, float_gb / (ms / 1e3),
                 moved_gb / (ms / 1e3));
  };
  row("d2d copy (ceiling)", copy, 2 * in_gb, in_gb);
  row("encode vec4 (default)", e4, in_gb + q_gb, in_gb);
  row("encode vec1", e1, in_gb + q_gb, in_gb);
  row("decode", dd, in_gb + q_gb, in_gb);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <golden_dir> [--quick] [csv]\n", argv[0]);
    return 2;
  }
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  try {
    cudaDeviceProp prop{};
    QFORGE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount);
    check_goldens(argv[1]);
    check_generated();
    if (!quick) {
      FILE* csv = std::fopen(argc > 3 ? argv[3] : "q8_0_cuda_timing.csv", "w");
      std::fprintf(csv, "what,rows,cols,ms,float_gbps,moved_gbps\n");
      time_shape(4096, 4096, csv);
      time_shape(11008, 4096, csv);
      std::fclose(csv);
    }
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf("%s: %d checks passed, %d failed\n", failures ? "FAILED" : "PASSED", passes, failures);
  return failures ? 1 : 0;
}
