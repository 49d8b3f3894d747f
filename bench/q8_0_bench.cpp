// SPDX-License-Identifier: MIT
// Q8_0 throughput per backend: BM_q8_0_encode/<backend>/<rows>x<cols> and BM_q8_0_decode/... on one
// thread (the kernel itself), plus BM_q8_0_encode_rows/<backend>/... through the public entry point
// with every hardware thread. Bytes/s count the float side (input of encode, output of decode).
// Each backend's output is checked once against the scalar reference before it is timed.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/quant/encode.hpp"
#include "qforge/quant/q8_0/ref.hpp"
#include "../tests/quant/testdata.hpp"

using namespace qforge;
using quant::block_q8_0;

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

bool matches_reference(const backend::kernel_table& k, const std::vector<float>& x) {
  std::vector<block_q8_0> got(x.size() / quant::qk8_0), want(got.size());
  backend::encode_with<quant::q8_0::family>(k, x, got);
  quant::q8_0::encode_ref(x, want);
  return std::memcmp(got.data(), want.data(), got.size() * sizeof(block_q8_0)) == 0;
}

void bm_encode(benchmark::State& state, const backend::entry* b, shape s) {
  const auto& x = input(s);
  if (!matches_reference(*b->kernels(), x)) {
    state.SkipWithError("output differs from the scalar reference");
    return;
  }
  std::vector<block_q8_0> y(x.size() / quant::qk8_0);
  for (auto _ : state) {
    backend::encode_with<quant::q8_0::family>(*b->kernels(), x, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * x.size() * sizeof(float)));
}

void bm_decode(benchmark::State& state, const backend::entry* b, shape s) {
  const auto& x = input(s);
  std::vector<block_q8_0> q(x.size() / quant::qk8_0);
  quant::q8_0::encode_ref(x, q);
  std::vector<float> y(x.size()), want(x.size());
  backend::decode_with<quant::q8_0::family>(*b->kernels(), q, y);
  quant::q8_0::decode_ref(q, want);
  if (std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) != 0) {
    state.SkipWithError("output differs from the scalar reference");
    return;
  }
  for (auto _ : state) {
    backend::decode_with<quant::q8_0::family>(*b->kernels(), q, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * y.size() * sizeof(float)));
}

void bm_encode_rows(benchmark::State& state, const backend::entry* b, shape s) {
  const auto& x = input(s);
  const auto rows = static_cast<std::int64_t>(s.rows), cols = static_cast<std::int64_t>(s.cols);
  std::vector<std::byte> y(s.rows * quant::row_bytes(quant::qtype::q8_0, cols));
  std::vector<block_q8_0> want(x.size() / quant::qk8_0);
  quant::q8_0::encode_ref(x, want);
  quant::encode_rows(*b, quant::qtype::q8_0, x, rows, cols, y);
  if (std::memcmp(y.data(), want.data(), y.size()) != 0) {
    state.SkipWithError("output differs from the scalar reference");
    return;
  }
  for (auto _ : state) {
    quant::encode_rows(*b, quant::qtype::q8_0, x, rows, cols, y);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * x.size() * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const shape shapes[] = {{512, 4096}, {4096, 4096}};
  for (const auto& b : backend::compiled()) {
    if (!b.available() || b.kernels() == nullptr) continue;  // cuda: bench/device/run_cuda.sh
    for (const shape s : shapes) {
      const std::string tail =
          std::string(b.name()) + "/" + std::to_string(s.rows) + "x" + std::to_string(s.cols);
      benchmark::RegisterBenchmark(("BM_q8_0_encode/" + tail).c_str(), bm_encode, &b, s)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("BM_q8_0_decode/" + tail).c_str(), bm_decode, &b, s)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("BM_q8_0_encode_rows/" + tail).c_str(), bm_encode_rows, &b, s)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
