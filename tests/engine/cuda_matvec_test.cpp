// SPDX-License-Identifier: MIT
// The engine's CUDA matvecs (engine/cuda/matvec.hpp) against the CPU engine's own decode path
// (engine::matmul on the same GGUF blocks) and against a plain (q - z) * s loop for AWQ, when this
// build has the CUDA kernels and the machine a GPU; the argument checks run everywhere (they throw
// before touching the device). Tolerance: |gpu - cpu| <= 1e-4 * sum_k |w_k x_k| per output (both
// sides are float32 sums; see tests/engine/cuda_engine_main.cu for the full device suite).
#include <catch2/catch.hpp>

#if defined(QFORGE_HAVE_CUDA_KERNELS)
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/engine/cuda/matvec.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "quant/testdata.hpp"

namespace {

using namespace qforge;
namespace ec = qforge::engine::cuda;

bool have_gpu() { return backend::detail::cuda_available(); }

// Random blocks with sane fp16 scales at the type's scale offsets.
std::vector<std::byte> random_blocks(quant::qtype t, std::size_t rows, std::size_t cols,
                                     std::uint64_t seed) {
  const auto tr = quant::traits(t);
  const std::size_t nb = rows * cols / tr->block_elems;
  std::vector<std::byte> b(nb * tr->block_bytes);
  testdata::rng r(seed);
  for (auto& v : b) v = static_cast<std::byte>(r.next() & 0xFF);
  const auto put = [&](std::size_t off, float f) {
    const std::uint16_t h = fp32_to_fp16(f);
    std::memcpy(b.data() + off, &h, 2);
  };
  for (std::size_t i = 0; i < nb; ++i) {
    const std::size_t o = i * tr->block_bytes;
    if (t == quant::qtype::q4_k) put(o, 2e-4f * (1 + r.uniform())), put(o + 2, 2e-4f * r.uniform());
    else if (t == quant::qtype::q6_k) put(o + 208, 1e-5f * (r.uniform() - 0.5f));
    else if (t == quant::qtype::q8_0) put(o, 4e-4f * (r.uniform() - 0.5f));
  }
  if (t == quant::qtype::f16)
    for (std::size_t i = 0; i < rows * cols; ++i) put(2 * i, 0.03f * (r.uniform() - 0.5f));
  return b;
}

template <class T>
struct dev {
  T* p = nullptr;
  explicit dev(std::size_t n) { REQUIRE(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(T)) == cudaSuccess); }
  ~dev() { cudaFree(p); }
};

}  // namespace

TEST_CASE("cuda matvec: bad shapes and types throw before any launch", "[engine][cuda]") {
  float* x = reinterpret_cast<float*>(std::uintptr_t{256});
  float* y = reinterpret_cast<float*>(std::uintptr_t{512});
  const void* w = reinterpret_cast<const void*>(std::uintptr_t{1024});
  const auto kind_of = [](auto&& fn) {
    try {
      fn();
    } catch (const error& e) {
      return e.which();
    }
    return error::kind::internal;
  };
  CHECK(kind_of([&] { ec::matvec(quant::qtype::q4_k, w, 4, 320, x, 320, 1, y, 4, false); }) ==
        error::kind::argument);
  CHECK(kind_of([&] { ec::matvec(quant::qtype::q5_k, w, 4, 256, x, 256, 1, y, 4, false); }) ==
        error::kind::unsupported);
  CHECK(kind_of([&] { ec::matvec(quant::qtype::q8_0, w, 4, 96, x, 96, 1, y, 4, false); }) ==
        error::kind::argument);
  CHECK(kind_of([&] { ec::matvec(quant::qtype::q8_0, w, 4, 64, x + 1, 64, 1, y, 4, false); }) ==
        error::kind::argument);
  CHECK(kind_of([&] { ec::matvec(quant::qtype::q8_0, w, 4, 64, x, 64, 1, y, 3, false); }) ==
        error::kind::argument);
  ec::awq_workspace none;
  const ec::awq_matrix a{reinterpret_cast<const std::uint32_t*>(w), reinterpret_cast<const std::uint32_t*>(w),
                         reinterpret_cast<const std::uint16_t*>(w), 256, 12, 128};
  CHECK(kind_of([&] { ec::awq_matvec(a, x, 256, 1, y, 12, false, none); }) == error::kind::argument);
  CHECK(ec::can_matvec(quant::qtype::q6_k));
  CHECK_FALSE(ec::can_matvec(quant::qtype::q3_k));
}

TEST_CASE("cuda matvec: GGUF blocks give the CPU engine's products", "[engine][cuda]") {
  if (!have_gpu()) {
    WARN("no CUDA device: GPU products not run");
    return;
  }
  engine::thread_pool pool(2);
  // The GPU kernels multiply float activations; hold them to the CPU's float path, not to its
  // default int8-activation decode dots (a different, coarser rounding).
  const engine::scoped_decode_activations float_activations(engine::decode_activations::f32);
  const std::size_t rows = 77, cols = 1024, tokens = 3;
  for (auto t : {quant::qtype::q4_k, quant::qtype::q6_k, quant::qtype::q8_0, quant::qtype::f16}) {
    INFO(quant::name(t));
    const auto blocks = random_blocks(t, rows, cols, 11);
    const auto m = engine::make_matrix(t, rows, cols, blocks, "test", "w");
    testdata::rng r(5);
    std::vector<float> x(tokens * cols), want(tokens * rows), got(tokens * rows);
    for (auto& v : x) v = r.uniform() * 2 - 1;
    engine::matmul(m, x.data(), cols, tokens, want.data(), rows, pool);
    for (std::size_t k = 0; k < tokens; ++k)  // the engine's single-token path too
      engine::matmul(m, x.data() + k * cols, cols, 1, want.data() + k * rows, rows, pool);
    std::vector<float> w(rows * cols);
    for (std::size_t i = 0; i < rows; ++i) engine::lookup_row(m, i, {w.data() + i * cols, cols});
    dev<std::byte> wd(blocks.size());
    dev<float> xd(x.size()), yd(got.size());
    REQUIRE(cudaMemcpy(wd.p, blocks.data(), blocks.size(), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(xd.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    ec::matvec(t, wd.p, rows, cols, xd.p, cols, tokens, yd.p, rows, false);
    REQUIRE(cudaMemcpy(got.data(), yd.p, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    for (std::size_t k = 0; k < tokens; ++k)
      for (std::size_t i = 0; i < rows; ++i) {
        double mag = 0;
        for (std::size_t c = 0; c < cols; ++c) mag += std::fabs(double{w[i * cols + c]} * x[k * cols + c]);
        CHECK(std::fabs(got[k * rows + i] - want[k * rows + i]) <= 1e-4 * mag);
      }
  }
}

TEST_CASE("cuda matvec: single-token Q4_K / Q6_K take the CPU decode's 8-bit activations", "[engine][cuda]") {
  if (!have_gpu()) {
    WARN("no CUDA device: GPU products not run");
    return;
  }
  engine::thread_pool pool(2);
  REQUIRE(engine::decode_activation_mode().load() == engine::decode_activations::q8);
  const std::size_t rows = 77, cols = 2304;  // 9 blocks of 256: odd unit counts per lane
  for (auto t : {quant::qtype::q4_k, quant::qtype::q6_k}) {
    const auto blocks = random_blocks(t, rows, cols, 21);
    const auto m = engine::make_matrix(t, rows, cols, blocks, "test", "w");
    testdata::rng r(8);
    std::vector<float> x(cols), want(rows), got(rows), w(rows * cols);
    for (auto& v : x) v = (r.uniform() * 2 - 1) * (1 + 20 * (r.uniform() > 0.99f));  // some outliers
    engine::matmul(m, x.data(), cols, 1, want.data(), rows, pool);  // integer dots on 8-bit codes
    for (std::size_t i = 0; i < rows; ++i) engine::lookup_row(m, i, {w.data() + i * cols, cols});
    dev<std::byte> wd(blocks.size());
    dev<float> xd(cols), yd(rows);
    REQUIRE(cudaMemcpy(wd.p, blocks.data(), blocks.size(), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(xd.p, x.data(), cols * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    for (int rpw : {1, 2, 4}) {
      ec::launch_opts o;
      o.rows_per_warp = rpw;
      ec::matvec(t, wd.p, rows, cols, xd.p, cols, 1, yd.p, rows, false, o);
      REQUIRE(cudaMemcpy(got.data(), yd.p, rows * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
      double worst = 0, worst_f32 = 0;
      for (std::size_t i = 0; i < rows; ++i) {
        double mag = 0, exact = 0;
        for (std::size_t c = 0; c < cols; ++c) {
          mag += std::fabs(double{w[i * cols + c]} * x[c]);
          exact += double{w[i * cols + c]} * x[c];
        }
        worst = std::max(worst, std::fabs(got[i] - want[i]) / mag);
        worst_f32 = std::max(worst_f32, std::fabs(got[i] - exact) / mag);
      }
      INFO(quant::name(t) << " rows per warp " << rpw << ": vs CPU int8 " << worst << ", vs float x "
                          << worst_f32);
      CHECK(worst <= 1e-5);      // same codes, same integer sums: float rounding apart
      CHECK(worst_f32 > worst);  // and it really is the 8-bit path (float x would sit far closer)
    }
  }
}

TEST_CASE("cuda matvec: AWQ GEMM layout gives (q - z) * s products", "[engine][cuda]") {
  if (!have_gpu()) {
    WARN("no CUDA device: GPU products not run");
    return;
  }
  const std::size_t in = 512, out = 264, group = 128, tokens = 2, P = out / 8, G = in / group;
  testdata::rng r(3);
  std::vector<std::uint32_t> qw(in * P), qz(G * P);
  std::vector<std::uint16_t> sc(G * out);
  for (auto& v : qw) v = static_cast<std::uint32_t>(r.next());
  for (auto& v : qz) v = static_cast<std::uint32_t>(r.next());
  for (auto& v : sc) v = fp32_to_fp16(1e-3f * (1 + r.uniform()));
  std::vector<float> x(tokens * in), got(tokens * out);
  for (auto& v : x) v = r.uniform() * 2 - 1;
  static constexpr int unpack[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  dev<std::uint32_t> qwd(qw.size()), qzd(qz.size());
  dev<std::uint16_t> scd(sc.size());
  dev<float> xd(x.size()), yd(got.size());
  REQUIRE(cudaMemcpy(qwd.p, qw.data(), qw.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(qzd.p, qz.data(), qz.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(scd.p, sc.data(), sc.size() * 2, cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemcpy(xd.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);
  ec::awq_workspace ws(in, out);
  ec::awq_matvec({qwd.p, qzd.p, scd.p, in, out, group}, xd.p, in, tokens, yd.p, out, false, ws);
  REQUIRE(cudaMemcpy(got.data(), yd.p, got.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t o = 0; o < out; ++o) {
      double s = 0, mag = 0;
      const std::size_t p = o / 8;
      const int j = static_cast<int>(o % 8);
      for (std::size_t k = 0; k < in; ++k) {
        const auto q = static_cast<float>((qw[k * P + p] >> (4 * unpack[j])) & 15u);
        const auto z = static_cast<float>((qz[k / group * P + p] >> (4 * unpack[j])) & 15u);
        const double v = double{(q - z) * fp16_to_fp32(sc[k / group * out + o])} * x[t * in + k];
        s += v;
        mag += std::fabs(v);
      }
      CHECK(std::fabs(got[t * out + o] - s) <= 1e-4 * mag);
    }
}

#else
TEST_CASE("cuda matvec: not built", "[engine][cuda]") { WARN("this build has no CUDA kernels"); }
#endif
