// SPDX-License-Identifier: MIT
// One-token products with AWQ linears (AutoAWQ GEMM layout, group 128) of a 7B model's shapes
// (out x in: 4096 x 4096, 11008 x 4096, 4096 x 11008): the scalar reference quant::awq::gemv_packs
// (the engine's path before engine/awq_gemv_simd.hpp) against every compiled engine table's
// gemv_awq, one thread; then engine::matmul_base on QFORGE_BENCH_THREADS threads (default 1).
// Counters: weight bytes per second (qweight + qzeros + scales) and weights per second.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/engine/kernels.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/quant/awq/matmul.hpp"

namespace {

using namespace qforge;

struct awq_linear {
  std::size_t out, in, group = 128;
  std::vector<std::uint32_t> qweight, qzeros;
  std::vector<std::uint16_t> scales;
  std::vector<float> x, y;
  awq_linear(std::size_t out_, std::size_t in_) : out(out_), in(in_) {
    std::mt19937 rng(static_cast<std::uint32_t>(out + in));
    qweight.resize(in * out / 8);
    qzeros.resize(in / group * out / 8);
    scales.resize(in / group * out);
    for (auto& w : qweight) w = static_cast<std::uint32_t>(rng());
    for (auto& w : qzeros) w = static_cast<std::uint32_t>(rng());
    for (auto& s : scales) s = fp32_to_fp16(1e-3f * static_cast<float>(1 + rng() % 1000));
    std::normal_distribution<float> d(0.0f, 1.0f);
    x.resize(in);
    for (auto& v : x) v = d(rng);
    y.resize(out);
  }
  [[nodiscard]] quant::awq::gemm_view view() const {
    return {reinterpret_cast<const std::byte*>(qweight.data()), reinterpret_cast<const std::byte*>(qzeros.data()),
            reinterpret_cast<const std::byte*>(scales.data()), in, out, group};
  }
  [[nodiscard]] double bytes() const {
    return 4.0 * static_cast<double>(qweight.size() + qzeros.size()) + 2.0 * static_cast<double>(scales.size());
  }
};

void counters(benchmark::State& state, const awq_linear& l) {
  const auto n = static_cast<double>(state.iterations());
  state.counters["bytes/s"] = benchmark::Counter(n * l.bytes(), benchmark::Counter::kIsRate);
  state.counters["weights/s"] =
      benchmark::Counter(n * static_cast<double>(l.out * l.in), benchmark::Counter::kIsRate);
}

void bm_reference(benchmark::State& state, std::size_t out, std::size_t in) {
  awq_linear l(out, in);
  for (auto _ : state) {
    quant::awq::gemv_packs(l.view(), l.x.data(), l.y.data(), 0, out / 8);
    benchmark::DoNotOptimize(l.y.data());
  }
  counters(state, l);
}

void bm_table(benchmark::State& state, const engine::ops* k, std::size_t out, std::size_t in) {
  awq_linear l(out, in);
  std::vector<float> sums(in / l.group);
  for (auto _ : state) {
    engine::awq_simd::group_sums(l.x.data(), in, l.group, sums.data());
    k->gemv_awq(l.view(), l.x.data(), sums.data(), l.y.data(), 0, out / 8);
    benchmark::DoNotOptimize(l.y.data());
  }
  counters(state, l);
}

void bm_matmul(benchmark::State& state, std::size_t out, std::size_t in, int threads) {
  awq_linear l(out, in);
  engine::matrix m;
  m.rows = out;
  m.cols = in;
  m.awq = l.view();
  engine::thread_pool pool(threads);
  for (auto _ : state) {
    engine::matmul_base(m, l.x.data(), in, 1, l.y.data(), out, pool);
    benchmark::DoNotOptimize(l.y.data());
  }
  counters(state, l);
}

}  // namespace

int main(int argc, char** argv) {
  const char* t = std::getenv("QFORGE_BENCH_THREADS");
  const int threads = t != nullptr ? std::atoi(t) : 1;
  const std::size_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  for (const auto& s : shapes) {
    const std::string shape = cat(s[0], "x", s[1]);
    benchmark::RegisterBenchmark(cat("BM_awq_gemv/reference/", shape).c_str(), bm_reference, s[0], s[1])
        ->Unit(benchmark::kMicrosecond);
    for (const engine::ops* k : engine::runnable_ops())
      benchmark::RegisterBenchmark(cat("BM_awq_gemv/", k->name, "/", shape).c_str(), bm_table, k, s[0], s[1])
          ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(cat("BM_awq_gemv/matmul/", shape, "/threads:", threads).c_str(), bm_matmul,
                                 s[0], s[1], threads)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
