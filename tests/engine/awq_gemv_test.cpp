// SPDX-License-Identifier: MIT
// The one-token AWQ product (engine/awq_gemv_simd.hpp) on every compiled engine table, held to the
// scalar reference quant::awq::gemv_packs: tiny-llama's own weights quantized to the GEMM layout
// (every linear shape the model has, group 32 / 64 / 128) and random layouts whose pack counts
// leave every remainder of the 16-pack chunk (1, 3, 8, 17, 33 packs), within 2e-6 of sum |w x| per
// output (float rounding of a few hundred terms; a wrong nibble or scale costs about 1e-2). Through
// engine::matmul the results are bit-identical on 1, 2 and 3 threads, and the partial chunk at the
// end (a zero-padded copy) gives the bits a full chunk gives the same packs.
#include "qforge/engine/awq_gemv_simd.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qforge/engine/kernels.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/awq/pack.hpp"
#include "qforge/quant/awq/ref.hpp"

namespace {

using namespace qforge;
namespace qa = quant::awq;

struct layout {
  qa::gemm_tensors t;
  [[nodiscard]] qa::gemm_view view() const {
    return {reinterpret_cast<const std::byte*>(t.qweight.data()),
            reinterpret_cast<const std::byte*>(t.qzeros.data()),
            reinterpret_cast<const std::byte*>(t.scales.data()), t.in, t.out, t.group};
  }
};

layout from_weights(const std::vector<float>& w, std::size_t out, std::size_t in, std::size_t group) {
  return {qa::pack_gemm(qa::quantize(w, out, in, group))};
}

layout random_layout(std::size_t out, std::size_t in, std::size_t group, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  std::vector<float> w(out * in);
  for (auto& v : w) v = u(rng);
  return from_weights(w, out, in, group);
}

std::vector<float> random_x(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  return x;
}

// max over outputs of |y - ref| / sum_k |w x| (w dequantized in double).
double worst_error(const layout& l, const std::vector<float>& x, const std::vector<float>& y,
                   const std::vector<float>& ref) {
  const auto w = qa::dequantize(qa::unpack_gemm(l.t));  // [out, in]
  double worst = 0;
  for (std::size_t o = 0; o < l.t.out; ++o) {
    double mag = 0;
    for (std::size_t k = 0; k < l.t.in; ++k) mag += std::fabs(double{w[o * l.t.in + k]} * x[k]);
    const double e = std::fabs(double{y[o]} - ref[o]);
    worst = std::max(worst, mag > 0 ? e / mag : e);
    if (!std::isfinite(y[o])) worst = INFINITY;
  }
  return worst;
}

std::vector<float> reference(const layout& l, const std::vector<float>& x) {
  std::vector<float> y(l.t.out);
  qa::gemv_packs(l.view(), x.data(), y.data(), 0, l.t.out / 8);
  return y;
}

engine::matrix as_matrix(const layout& l) {
  engine::matrix m;
  m.rows = l.t.out;
  m.cols = l.t.in;
  m.awq = l.view();
  return m;
}

std::vector<float> through_matmul(const layout& l, const std::vector<float>& x, int threads) {
  engine::thread_pool pool(threads);
  std::vector<float> y(l.t.out, NAN);
  engine::matmul_base(as_matrix(l), x.data(), l.t.in, 1, y.data(), l.t.out, pool);
  return y;
}

}  // namespace

TEST_CASE("awq gemv: every backend against the reference on tiny-llama's weights", "[awq][engine]") {
  const format::safetensors::checkpoint c(std::string(QFORGE_FIXTURES) + "/models/tiny-llama");
  const char* names[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                         "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.down_proj.weight"};
  for (const char* name : names) {
    const auto v = c.view(name);
    const std::size_t out = v.info().shape[0], in = v.info().shape[1];
    for (std::size_t group : {std::size_t{32}, std::size_t{64}, std::size_t{128}}) {
      const layout l = from_weights(v.to_f32(), out, in, group);
      const auto x = random_x(in, static_cast<std::uint32_t>(out + in + group));
      const auto ref = reference(l, x);
      for (const engine::ops* k : engine::runnable_ops()) {
        INFO(name << " group " << group << " on " << k->name);
        std::vector<float> sums(in / group), y(out, NAN);
        engine::awq_simd::group_sums(x.data(), in, group, sums.data());
        const std::size_t full = out / 8 / engine::awq_simd::chunk_packs * engine::awq_simd::chunk_packs;
        REQUIRE(full == out / 8);  // tiny-llama's widths are whole chunks
        k->gemv_awq(l.view(), x.data(), sums.data(), y.data(), 0, full);
        CHECK(worst_error(l, x, y, ref) <= 2e-6);
      }
    }
  }
}

TEST_CASE("awq gemv: partial chunks, thread counts, the engine's entry", "[awq][engine]") {
  for (std::size_t packs : {1, 3, 8, 16, 17, 33, 64}) {
    for (std::size_t group : {std::size_t{32}, std::size_t{128}}) {
      const std::size_t out = 8 * packs, in = 4 * group;
      const layout l = random_layout(out, in, group, static_cast<std::uint32_t>(7 * packs + group));
      const auto x = random_x(in, static_cast<std::uint32_t>(packs));
      const auto ref = reference(l, x);
      INFO(packs << " packs, group " << group);
      const auto y1 = through_matmul(l, x, 1);
      CHECK(worst_error(l, x, y1, ref) <= 2e-6);
      for (int threads : {2, 3}) {
        const auto y = through_matmul(l, x, threads);
        CHECK(std::memcmp(y.data(), y1.data(), y.size() * sizeof(float)) == 0);
      }
    }
  }
  // The padded copy of a partial chunk gives what the packs give inside a full chunk: the first 16
  // packs of a 17-pack layout, alone (the whole layout is then one partial chunk), are the same bits.
  const layout big = random_layout(8 * 17, 256, 64, 99);
  const auto x = random_x(256, 5);
  const auto all = through_matmul(big, x, 1);
  layout head;
  head.t.in = 256, head.t.out = 8 * 3, head.t.group = 64;
  for (std::size_t k = 0; k < 256; ++k)
    for (std::size_t p = 0; p < 3; ++p) head.t.qweight.push_back(big.t.qweight[k * 17 + p]);
  for (std::size_t g = 0; g < 4; ++g) {
    for (std::size_t p = 0; p < 3; ++p) head.t.qzeros.push_back(big.t.qzeros[g * 17 + p]);
    for (std::size_t o = 0; o < 24; ++o) head.t.scales.push_back(big.t.scales[g * 136 + o]);
  }
  const auto part = through_matmul(head, x, 1);
  CHECK(std::memcmp(part.data(), all.data(), part.size() * sizeof(float)) == 0);
}
