// SPDX-License-Identifier: MIT
// What the ordered (backend-independent) float kernels of engine/ordered_dot.hpp cost against the
// engine's own, per engine table (native = the scalar reference on baseline x86-64, avx2, avx512):
// BM_engine_gemm/<table>/<rows>x<cols>x<tokens> vs BM_ordered_gemm/... on the products AWQ's search
// runs on tiny-llama (gate/up and down over calibration tokens, down's loss through its input
// covariance), and BM_engine_dot / BM_ordered_dot on attention's and the clip search's lengths.
// items/s = multiply-adds per second, one thread. Each ordered result is checked once against
// the reference (bits), each engine result against it within float rounding.
#include <benchmark/benchmark.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "qforge/engine/kernels.hpp"
#include "qforge/engine/ordered_dot.hpp"

using namespace qforge;

namespace {

std::vector<float> random(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

void bm_gemm(benchmark::State& state, const engine::ops* o, bool ordered, std::size_t rows,
             std::size_t cols, std::size_t tokens) {
  const auto w = random(rows * cols, 1), x = random(tokens * cols, 2);
  std::vector<float> y(tokens * rows), want(tokens * rows);
  const auto gemm = ordered ? o->gemm_ordered : o->gemm;
  gemm(w.data(), cols, rows, x.data(), cols, tokens, cols, y.data(), rows);
  engine::ordered::gemm_ref(w.data(), cols, rows, x.data(), cols, tokens, cols, want.data(), rows);
  for (std::size_t i = 0; i < y.size(); ++i) {
    const bool ok =
        ordered ? std::bit_cast<std::uint32_t>(y[i]) == std::bit_cast<std::uint32_t>(want[i])
                : std::fabs(y[i] - want[i]) <= 1e-3f * (1.0f + std::fabs(want[i]));
    if (!ok) {
      state.SkipWithError("result differs from the reference");
      return;
    }
  }
  for (auto _ : state) {
    gemm(w.data(), cols, rows, x.data(), cols, tokens, cols, y.data(), rows);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(rows * cols * tokens));
}

void bm_dot(benchmark::State& state, const engine::ops* o, bool ordered, std::size_t n) {
  constexpr std::size_t count = 256;  // rows per iteration, as attention's keys
  const auto w = random(count * n, 3), x = random(n, 4);
  for (auto _ : state) {
    float s = 0;
    for (std::size_t r = 0; r < count; ++r)
      s += ordered ? o->dot_f32_ordered(w.data() + r * n, x.data(), n)
                   : o->dot_f32(reinterpret_cast<const std::byte*>(w.data() + r * n), x.data(), n);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count * n));
}

}  // namespace

int main(int argc, char** argv) {
  struct shape {
    std::size_t rows, cols, tokens;
  };
  const shape shapes[] = {{768, 256, 512}, {256, 768, 512}, {768, 768, 256}};
  for (const engine::ops* t : engine::runnable_ops()) {
    for (const bool ordered : {false, true}) {
      const std::string fam = ordered ? "BM_ordered_" : "BM_engine_";
      for (const auto& s : shapes)
        benchmark::RegisterBenchmark(
            (fam + "gemm/" + t->name + "/" + std::to_string(s.rows) + "x" + std::to_string(s.cols) +
             "x" + std::to_string(s.tokens)).c_str(),
            [o = t, ordered, s](benchmark::State& st) {
              bm_gemm(st, o, ordered, s.rows, s.cols, s.tokens);
            })
            ->Unit(benchmark::kMillisecond);
      for (const std::size_t n : {64u, 128u})
        benchmark::RegisterBenchmark((fam + "dot/" + t->name + "/" + std::to_string(n)).c_str(),
                                     [o = t, ordered, n](benchmark::State& st) {
                                       bm_dot(st, o, ordered, n);
                                     });
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
