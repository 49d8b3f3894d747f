// SPDX-License-Identifier: MIT
// Q4_K, Q5_K and Q6_K (the Q4_K_M / Q5_K_M workhorses) throughput per backend, with ggml's own quantizer as the baseline in the same run:
// BM_<type>_encode/<backend>/<rows>x<cols> (imatrix null: ggml's *_ref path),
// BM_<type>_encode_imatrix/... (importance-weighted search, row by row as ggml does),
// BM_<type>_decode/..., BM_<type>_encode_rows/... (public entry point, every hardware thread), and
// BM_<type>_encode[_imatrix]/ggml/... calling ggml_quantize_chunk from llama-cpp-python's
// libggml-base.so (path from QFORGE_GGML_LIB, else asked of python3; skipped when not found).
// Bytes/s count the float side. Every backend's output, and ggml's, is checked once against the
// scalar reference before it is timed.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/quant/encode.hpp"
#include "qforge/quant/q4_k/family.hpp"
#include "qforge/quant/q5_k/family.hpp"
#include "qforge/quant/q6_k/family.hpp"
#include "../tests/quant/testdata.hpp"

using namespace qforge;

namespace {

struct shape {
  std::size_t rows, cols;
};

const std::vector<float>& input(shape s) {
  static std::vector<float> cache;
  static shape cached{0, 0};
  if (cached.rows != s.rows || cached.cols != s.cols) {
    cache = testdata::generate(testdata::kind::normal, s.rows, s.cols, 3);
    cached = s;
  }
  return cache;
}

const std::vector<float>& importance(std::size_t cols) {
  static std::vector<float> w;
  if (w.size() != cols) {
    testdata::rng r(41);
    w.resize(cols);
    for (auto& v : w) {
      const float a = r.normal();
      v = a * a + 0.01f;
    }
  }
  return w;
}

// ggml_quantize_chunk(type, src, dst, start, nrows, n_per_row, imatrix) -> bytes written.
using ggml_quantize_chunk_fn = std::size_t (*)(int, const float*, void*, std::int64_t, std::int64_t,
                                               std::int64_t, const float*);

std::string ggml_lib_path() {
  if (const char* env = std::getenv("QFORGE_GGML_LIB"); env != nullptr && *env != '\0') return env;
  FILE* p = ::popen("python3 -c \"import llama_cpp,os;print(os.path.dirname(llama_cpp.__file__))\""
                    " 2>/dev/null",
                    "r");
  if (p == nullptr) return "";
  char buf[4096] = {};
  const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
  ::pclose(p);
  if (!got) return "";
  std::string dir(buf);
  while (!dir.empty() && (dir.back() == '\n' || dir.back() == '\r')) dir.pop_back();
  return dir.empty() ? "" : dir + "/lib/libggml-base.so";
}

ggml_quantize_chunk_fn ggml_quantize_chunk() {
  static const ggml_quantize_chunk_fn fn = [] {
    const std::string path = ggml_lib_path();
    void* h = path.empty() ? nullptr : ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::fprintf(stderr, "ggml baseline skipped: cannot load '%s'\n", path.c_str());
      return ggml_quantize_chunk_fn{nullptr};
    }
    return reinterpret_cast<ggml_quantize_chunk_fn>(::dlsym(h, "ggml_quantize_chunk"));
  }();
  return fn;
}

template <class Family>
struct bench {
  using block = typename Family::block;

  // Reference bytes of the whole input, weighted row by row when `w` is given.
  static std::vector<block> reference(const std::vector<float>& x, shape s, const float* w) {
    std::vector<block> y(x.size() / quant::qk_k);
    run(nullptr, x, s, w, y);
    return y;
  }
  static void run(const backend::kernel_table* k, const std::vector<float>& x, shape s,
                  const float* w, std::vector<block>& y) {
    const std::size_t per_row = s.cols / quant::qk_k;
    const std::size_t rows = w ? s.rows : 1, n = w ? s.cols : x.size();
    for (std::size_t r = 0; r < rows; ++r) {
      const std::span<const float> xr(x.data() + r * n, n);
      const std::span<block> yr(y.data() + r * per_row, n / quant::qk_k);
      if (k) backend::encode_with<Family>(*k, xr, yr, w);
      else Family::encode_ref(xr, yr, w);
    }
  }
  static bool same(const std::vector<block>& a, const std::vector<block>& b) {
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(block)) == 0;
  }

  static void encode(benchmark::State& state, const backend::entry* b, shape s, bool weighted) {
    const auto& x = input(s);
    const float* w = weighted ? importance(s.cols).data() : nullptr;
    std::vector<block> y(x.size() / quant::qk_k);
    run(b->kernels(), x, s, w, y);
    if (!same(y, reference(x, s, w))) {
      state.SkipWithError("output differs from the scalar reference");
      return;
    }
    for (auto _ : state) {
      run(b->kernels(), x, s, w, y);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * x.size() * sizeof(float)));
  }

  static void encode_ggml(benchmark::State& state, shape s, bool weighted) {
    const auto fn = ggml_quantize_chunk();
    const auto& x = input(s);
    const float* w = weighted ? importance(s.cols).data() : nullptr;
    std::vector<block> y(x.size() / quant::qk_k);
    auto call = [&] {
      fn(static_cast<int>(Family::type), x.data(), y.data(), 0, std::int64_t(s.rows),
         std::int64_t(s.cols), w);
    };
    call();
    if (!same(y, reference(x, s, w))) {
      state.SkipWithError("ggml's output differs from qforge's reference");
      return;
    }
    for (auto _ : state) {
      call();
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * x.size() * sizeof(float)));
  }

  static void decode(benchmark::State& state, const backend::entry* b, shape s) {
    const auto& x = input(s);
    const auto q = reference(x, s, nullptr);
    std::vector<float> y(x.size()), want(x.size());
    backend::decode_with<Family>(*b->kernels(), q, y);
    Family::decode_ref(q, want);
    if (std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) != 0) {
      state.SkipWithError("output differs from the scalar reference");
      return;
    }
    for (auto _ : state) {
      backend::decode_with<Family>(*b->kernels(), q, y);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * y.size() * sizeof(float)));
  }

  static void encode_rows(benchmark::State& state, const backend::entry* b, shape s) {
    const auto& x = input(s);
    std::vector<block> y(x.size() / quant::qk_k);
    const auto bytes = std::as_writable_bytes(std::span(y));
    quant::encode_rows(*b, Family::type, x, std::int64_t(s.rows), std::int64_t(s.cols), bytes);
    if (!same(y, reference(x, s, nullptr))) {
      state.SkipWithError("output differs from the scalar reference");
      return;
    }
    for (auto _ : state) {
      quant::encode_rows(*b, Family::type, x, std::int64_t(s.rows), std::int64_t(s.cols), bytes);
      benchmark::DoNotOptimize(y.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * x.size() * sizeof(float)));
  }

  static void register_all(const char* type) {
    const shape shapes[] = {{256, 4096}};
    for (const shape s : shapes) {
      const std::string dims = "/" + std::to_string(s.rows) + "x" + std::to_string(s.cols);
      const std::string p = std::string("BM_") + type;
      if (ggml_quantize_chunk() != nullptr) {
        benchmark::RegisterBenchmark((p + "_encode/ggml" + dims).c_str(), encode_ggml, s, false)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((p + "_encode_imatrix/ggml" + dims).c_str(), encode_ggml, s,
                                     true)
            ->Unit(benchmark::kMillisecond);
      }
      for (const auto& b : backend::compiled()) {
        if (!b.available() || b.kernels() == nullptr) continue;
        std::string tail = "/";  // appended, not "/" + ...: GCC 12 warns falsely (-Wrestrict)
        tail.append(b.name()).append(dims);
        benchmark::RegisterBenchmark((p + "_encode" + tail).c_str(), encode, &b, s, false)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((p + "_encode_imatrix" + tail).c_str(), encode, &b, s, true)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((p + "_decode" + tail).c_str(), decode, &b, s)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((p + "_encode_rows" + tail).c_str(), encode_rows, &b, s)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench<quant::q4_k::family>::register_all("q4_k");
  bench<quant::q5_k::family>::register_all("q5_k");
  bench<quant::q6_k::family>::register_all("q6_k");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
