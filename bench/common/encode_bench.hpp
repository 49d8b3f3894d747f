// SPDX-License-Identifier: MIT
// The encode/decode benchmark body shared by the per-family benches (kquant, kquant23, legacy),
// written once over the family type: BM_<type>_encode/<backend>/<rows>x<cols> (imatrix null: ggml's
// *_ref path), BM_<type>_encode_imatrix/... (importance-weighted, row by row as ggml does),
// BM_<type>_decode/..., optionally BM_<type>_encode_rows/... (public entry point, every hardware
// thread), and BM_<type>_encode[_imatrix]/ggml/... through ggml_baseline.hpp. Bytes/s count the
// float side. Every output, ggml's included, is checked once against the scalar reference before it
// is timed, so a fast wrong kernel reports an error instead of a number.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../../tests/quant/testdata.hpp"
#include "ggml_baseline.hpp"
#include "qforge/backend/dispatch.hpp"
#include "qforge/quant/encode.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::bench {

struct shape {
  std::size_t rows, cols;
};

// What a family's bench registers; the seed is per bench so its numbers stay comparable with
// earlier runs.
struct options {
  std::vector<shape> shapes;
  std::uint64_t imatrix_seed = 41;
  bool imatrix_every_backend = true;  // false: weighted encode on scalar only
  bool encode_rows = true;
};

// One shape cached at a time: benchmarks run in registration order, shape by shape.
inline const std::vector<float>& input(shape s) {
  static std::vector<float> cache;
  static shape cached{0, 0};
  if (cached.rows != s.rows || cached.cols != s.cols) {
    cache = testdata::generate(testdata::kind::normal, s.rows, s.cols, 3);
    cached = s;
  }
  return cache;
}

// Squared-activation-like importance weights, one per column. A map, so pointers handed to
// registered benchmarks stay valid.
inline const std::vector<float>& importance(std::size_t cols, std::uint64_t seed) {
  static std::map<std::pair<std::size_t, std::uint64_t>, std::vector<float>> cache;
  auto& w = cache[{cols, seed}];
  if (w.size() != cols) {
    testdata::rng r(seed);
    w.resize(cols);
    for (auto& v : w) {
      const float a = r.normal();
      v = a * a + 0.01f;
    }
  }
  return w;
}

template <class Family>
struct encode_bench {
  using block = typename Family::block;
  static constexpr std::size_t qk = quant::traits(Family::type)->block_elems;

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
  static std::vector<block> reference(const std::vector<float>& x, shape s, const float* w) {
    std::vector<block> y(x.size() / qk);
    run(nullptr, x, s, w, y);
    return y;
  }
  static bool same(const std::vector<block>& a, const std::vector<block>& b) {
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(block)) == 0;
  }

  static void encode(benchmark::State& state, const backend::entry* b, shape s, const float* w) {
    const auto& x = input(s);
    std::vector<block> y(x.size() / qk);
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

  static void encode_ggml(benchmark::State& state, shape s, const float* w) {
    const auto fn = ggml_quantize_chunk();
    const auto& x = input(s);
    std::vector<block> y(x.size() / qk);
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
    std::vector<block> y(x.size() / qk);
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

  static void register_all(std::string_view type, const options& o) {
    // Names are appended, not "x" + ...: GCC 12 warns falsely there (-Wrestrict).
    std::string p = "BM_";
    p.append(type);
    for (const shape s : o.shapes) {
      std::string dims = "/";
      dims.append(std::to_string(s.rows)).append("x").append(std::to_string(s.cols));
      const float* w = importance(s.cols, o.imatrix_seed).data();
      if (ggml_quantize_chunk() != nullptr) {
        benchmark::RegisterBenchmark((p + "_encode/ggml" + dims).c_str(), encode_ggml, s, nullptr)
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((p + "_encode_imatrix/ggml" + dims).c_str(), encode_ggml, s, w)
            ->Unit(benchmark::kMillisecond);
      }
      for (const auto& b : backend::compiled()) {
        if (!b.available() || b.kernels() == nullptr) continue;
        std::string tail = "/";
        tail.append(b.name()).append(dims);
        benchmark::RegisterBenchmark((p + "_encode" + tail).c_str(), encode, &b, s, nullptr)
            ->Unit(benchmark::kMillisecond);
        if (o.imatrix_every_backend || b.which() == backend::id::scalar)
          benchmark::RegisterBenchmark((p + "_encode_imatrix" + tail).c_str(), encode, &b, s, w)
              ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((p + "_decode" + tail).c_str(), decode, &b, s)
            ->Unit(benchmark::kMillisecond);
        if (o.encode_rows)
          benchmark::RegisterBenchmark((p + "_encode_rows" + tail).c_str(), encode_rows, &b, s)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
      }
    }
  }
};

}  // namespace qforge::bench
