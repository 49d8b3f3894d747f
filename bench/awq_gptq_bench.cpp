// SPDX-License-Identifier: MIT
// What `qforge awq --gptq` adds per linear (quant/awq/gptq.hpp), one thread:
// BM_gptq_factor/<n>: the inverse covariance's factor of an n-channel input (O(n^3 / 3) in double;
// items/s = n^3 / 3 multiply-adds per second), and BM_gptq_rows/<out>x<n>: the error-compensated
// rounding pass over an [out, n] matrix (O(out n^2 / 2) float multiply-adds; items/s likewise),
// against BM_rtn_rows/<out>x<n>, the plain quantizer it replaces. The covariance is that of random
// Gaussian inputs with a few strong channels, so the factorisation takes its ordinary path.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "qforge/quant/awq/gptq.hpp"
#include "qforge/quant/awq/ref.hpp"

using namespace qforge::quant::awq;

namespace {

std::vector<float> covariance(std::size_t n) {
  std::mt19937 g(7);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const std::size_t samples = 2 * n;
  std::vector<float> x(samples * n);
  for (std::size_t t = 0; t < samples; ++t)
    for (std::size_t c = 0; c < n; ++c) x[t * n + c] = d(g) * (c % 97 == 0 ? 8.0f : 1.0f);
  std::vector<float> h(n * n, 0.0f);
  for (std::size_t t = 0; t < samples; ++t)
    for (std::size_t i = 0; i < n; ++i) {
      const float xi = x[t * n + i] / static_cast<float>(samples);
      for (std::size_t j = 0; j < n; ++j) h[i * n + j] += xi * x[t * n + j];
    }
  return h;
}

std::vector<float> weights(std::size_t out, std::size_t n) {
  std::mt19937 g(3);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> w(out * n);
  for (auto& v : w) v = half(d(g));
  return w;
}

void BM_gptq_factor(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto h = covariance(n);
  for (auto _ : state) benchmark::DoNotOptimize(factor_inverse_covariance(h, n, 0.01, false, "bench"));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n * n * n / 3));
}

void BM_gptq_rows(benchmark::State& state) {
  const auto out = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1));
  const auto f = factor_inverse_covariance(covariance(n), n, 0.01, false, "bench");
  const auto w = weights(out, n);
  auto m = make_quantized(out, n, 128);
  quantize_rows(w.data(), m, 0, out);
  for (auto _ : state) {
    gptq_rows(w.data(), f, m, 0, out);
    benchmark::DoNotOptimize(m.q.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(out * n * n / 2));
}

void BM_rtn_rows(benchmark::State& state) {
  const auto out = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1));
  const auto w = weights(out, n);
  auto m = make_quantized(out, n, 128);
  for (auto _ : state) {
    quantize_rows(w.data(), m, 0, out);
    benchmark::DoNotOptimize(m.q.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(out * n));
}

}  // namespace

// small-llama's inputs (512 hidden, 1280 ffn) and a 7B-shaped hidden width.
BENCHMARK(BM_gptq_factor)->Arg(512)->Arg(1280)->Arg(4096)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gptq_rows)->Args({512, 1280})->Args({1280, 512})->Args({512, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_rtn_rows)->Args({512, 1280})->Args({512, 4096})->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
