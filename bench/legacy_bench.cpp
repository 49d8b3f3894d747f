// SPDX-License-Identifier: MIT
// Throughput of the legacy 32-weight types (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) per backend on one
// thread: BM_<type>_encode/<backend>/<rows>x<cols>, BM_<type>_decode/..., the importance-weighted
// encoder BM_<type>_encode_imatrix/<backend>/..., and ggml's own quantizer as the baseline in the
// same run, BM_<type>_encode/ggml/... (ggml_quantize_chunk from the libggml-base.so of
// llama-cpp-python, found through $QFORGE_GGML_LIB or python3; skipped when absent). Bytes/s count
// the float side. Before timing, each encoder's bytes are checked against the scalar reference and
// the reference's against ggml's, so a fast wrong kernel reports an error instead of a number.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/quant/iq4_nl/family.hpp"
#include "qforge/quant/q4_0/family.hpp"
#include "qforge/quant/q4_1/family.hpp"
#include "qforge/quant/q5_0/family.hpp"
#include "qforge/quant/q5_1/family.hpp"
#include "../tests/quant/testdata.hpp"

using namespace qforge;

namespace {

constexpr std::size_t qk = 32;

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

// Squared-activation-like importance weights, one per column.
const std::vector<float>& imatrix(std::size_t cols) {
  static std::vector<float> w;
  if (w.size() != cols) {
    testdata::rng r(17);
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

  // Encodes the whole input on table k (null = reference headers); with weights, row by row.
  static void run(const backend::kernel_table* k, const std::vector<float>& x, shape s,
                  const float* w, std::vector<block>& y) {
    const std::size_t per_row = s.cols / qk;
    const std::size_t rows = w ? s.rows : 1, n = w ? s.cols : x.size();
    for (std::size_t r = 0; r < rows; ++r) {
      const std::span<const float> xr(x.data() + r * n, n);
      const std::span<block> yr(y.data() + r * per_row, n / qk);
      if (k) backend::encode_with<Family>(*k, xr, yr, w);
      else Family::encode_ref(xr, yr, w);
    }
  }

  static bool same(const std::vector<block>& a, const std::vector<block>& b) {
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(block)) == 0;
  }

  static void encode(benchmark::State& state, const backend::entry* b, shape s, bool weighted) {
    const auto& x = input(s);
    const float* w = weighted ? imatrix(s.cols).data() : nullptr;
    std::vector<block> got(x.size() / qk), want(got.size());
    run(b->kernels(), x, s, w, got);
    run(nullptr, x, s, w, want);
    if (!same(got, want)) {
      state.SkipWithError("output differs from the scalar reference");
      return;
    }
    for (auto _ : state) {
      run(b->kernels(), x, s, w, got);
      benchmark::DoNotOptimize(got.data());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * x.size() * sizeof(float)));
  }

  static void encode_ggml(benchmark::State& state, shape s, bool weighted) {
    const auto fn = ggml_quantize_chunk();
    const auto& x = input(s);
    const float* w = weighted ? imatrix(s.cols).data() : nullptr;
    const int type = static_cast<int>(Family::type);
    const auto rows = std::int64_t(s.rows), cols = std::int64_t(s.cols);
    std::vector<block> got(x.size() / qk), want(got.size());
    fn(type, x.data(), got.data(), 0, rows, cols, w);
    run(nullptr, x, s, w, want);
    if (!same(got, want)) {
      state.SkipWithError("ggml's bytes differ from the scalar reference");
      return;
    }
    for (auto _ : state) {
      fn(type, x.data(), got.data(), 0, rows, cols, w);
      benchmark::DoNotOptimize(got.data());
      benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(std::int64_t(state.iterations() * x.size() * sizeof(float)));
  }

  static void decode(benchmark::State& state, const backend::entry* b, shape s) {
    const auto& x = input(s);
    std::vector<block> q(x.size() / qk);
    run(nullptr, x, s, nullptr, q);
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

  // IQ4_NL's encoder is a per-block search (every backend runs it), so it gets the smaller shape.
  static void add(const std::vector<shape>& shapes) {
    const std::string t(quant::name(Family::type));
    for (const shape s : shapes) {
      const std::string dims = std::to_string(s.rows) + "x" + std::to_string(s.cols);
      if (ggml_quantize_chunk() != nullptr) {
        benchmark::RegisterBenchmark(("BM_" + t + "_encode/ggml/" + dims).c_str(), encode_ggml, s,
                                     false)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_" + t + "_encode_imatrix/ggml/" + dims).c_str(),
                                     encode_ggml, s, true)
            ->Unit(benchmark::kMillisecond);
      }
      for (const auto& b : backend::compiled()) {
        if (!b.available() || b.kernels() == nullptr) continue;
        const std::string tail = std::string(b.name()) + "/" + dims;
        benchmark::RegisterBenchmark(("BM_" + t + "_encode/" + tail).c_str(), encode, &b, s, false)
            ->Unit(benchmark::kMillisecond);
        if (b.which() == backend::id::scalar)  // the weighted search is the reference everywhere
          benchmark::RegisterBenchmark(("BM_" + t + "_encode_imatrix/" + tail).c_str(), encode,
                                       &b, s, true)
              ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_" + t + "_decode/" + tail).c_str(), decode, &b, s)
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::vector<shape> big = {{512, 4096}, {4096, 4096}}, small = {{512, 4096}};
  bench<quant::q4_0::family>::add(big);
  bench<quant::q4_1::family>::add(big);
  bench<quant::q5_0::family>::add(big);
  bench<quant::q5_1::family>::add(big);
  bench<quant::iq4_nl::family>::add(small);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
