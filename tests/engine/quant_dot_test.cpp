// SPDX-License-Identifier: MIT
// The 8-bit-activation dot products of engine/quant_dot.hpp on every compiled engine table (the
// header's native one and, with qforge::kernels, AVX2 / AVX-512 where this CPU runs them): the
// activation quantizers write the reference bytes; each row dot equals the reference's result up
// to float summation order (the integer sums per block are the same, so the difference is bounded
// by 1e-5 of the sum of the blocks' magnitudes); and the reference itself stays within the
// activation rounding bound of the float dot of the decoded row. Weights: random block bytes (every
// code and scale value, including the extremes that test maddubs' int16 range) and real
// small-llama rows quantized with qforge's encoders. Last, engine::matmul takes this path for one
// token and the float path when asked to.
#include "qforge/engine/quant_dot.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "qforge/engine/kernels.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/encode.hpp"
#include "quant/testdata.hpp"

namespace {

using namespace qforge;
namespace qd = engine::qdot;
using quant::qtype;

using dot_fn = float (*)(const std::byte*, const std::byte*, std::size_t) noexcept;

dot_fn dot_of(const engine::ops& o, qtype t) {
  switch (t) {
    case qtype::q2_k:
      return o.dot_q2_k_q8;
    case qtype::q3_k:
      return o.dot_q3_k_q8;
    case qtype::q4_k:
      return o.dot_q4_k_q8;
    case qtype::q5_k:
      return o.dot_q5_k_q8;
    case qtype::q6_k:
      return o.dot_q6_k_q8;
    default:
      return o.dot_q8_0_q8;
  }
}

engine::ops::qrows_fn rows_of(const engine::ops& o, qtype t) {
  switch (t) {
    case qtype::q2_k:
      return o.rows_q2_k_q8;
    case qtype::q3_k:
      return o.rows_q3_k_q8;
    case qtype::q4_k:
      return o.rows_q4_k_q8;
    case qtype::q5_k:
      return o.rows_q5_k_q8;
    case qtype::q6_k:
      return o.rows_q6_k_q8;
    default:
      return o.rows_q8_0_q8;
  }
}

constexpr qtype all_types[] = {qtype::q2_k, qtype::q3_k, qtype::q4_k,
                               qtype::q5_k, qtype::q6_k, qtype::q8_0};

struct reference {
  float dot = 0;
  double magnitude = 0;  // sum over blocks of |each float term|: the scale of rounding differences
};

template <class Block>
reference ref_k(const std::byte* w, const std::vector<qd::act_q8_k>& a) {
  const auto* b = reinterpret_cast<const Block*>(w);
  reference r{qd::dot_ref(b, a.data(), a.size()), 0};
  qd::levels l;
  for (std::size_t i = 0; i < a.size(); ++i) {
    qd::levels_of(b[i], l);
    const auto s = qd::sums_of(l, a[i]);
    r.magnitude +=
        std::fabs(double{l.d} * a[i].d * s.isum) + std::fabs(double{l.dmin} * a[i].d * s.msum);
  }
  return r;
}

reference ref_of(qtype t, const std::byte* w, const std::vector<qd::act_q8_k>& ak,
                 const std::vector<qd::act_q8_0>& a0) {
  switch (t) {
    case qtype::q2_k:
      return ref_k<quant::block_q2_k>(w, ak);
    case qtype::q3_k:
      return ref_k<quant::block_q3_k>(w, ak);
    case qtype::q4_k:
      return ref_k<quant::block_q4_k>(w, ak);
    case qtype::q5_k:
      return ref_k<quant::block_q5_k>(w, ak);
    case qtype::q6_k:
      return ref_k<quant::block_q6_k>(w, ak);
    default:
      break;
  }
  const auto* b = reinterpret_cast<const quant::block_q8_0*>(w);
  reference r{qd::dot_ref(b, a0.data(), a0.size()), 0};
  for (std::size_t i = 0; i < a0.size(); ++i) {
    int p = 0;
    for (int j = 0; j < quant::qk8_0; ++j) p += b[i].qs[j] * a0[i].qs[j];
    r.magnitude += std::fabs(double{fp16_to_fp32(b[i].d)} * a0[i].d * p);
  }
  return r;
}

// Byte offsets of a block's fp16 super-scales (d, then dmin where the type has one).
std::vector<std::size_t> scale_offsets(qtype t) {
  switch (t) {
    case qtype::q2_k:
      return {80, 82};
    case qtype::q3_k:
      return {108};
    case qtype::q4_k:
    case qtype::q5_k:
      return {0, 2};
    case qtype::q6_k:
      return {208};
    default:
      return {0};
  }
}

// Random block bytes: every code, scale and mask bit pattern, with finite fp16 super-scales.
std::vector<std::byte> random_rows(qtype t, std::size_t rows, std::size_t cols,
                                   std::uint64_t seed) {
  const auto tr = quant::traits(t);
  const std::size_t nb = rows * cols / tr->block_elems;
  std::vector<std::byte> b(nb * tr->block_bytes);
  testdata::rng r(seed);
  for (auto& v : b) v = static_cast<std::byte>(r.next() & 0xFF);
  for (std::size_t i = 0; i < nb; ++i)
    for (std::size_t off : scale_offsets(t)) {
      const std::uint16_t h = fp32_to_fp16(1e-3f * (r.uniform() - 0.25f));
      std::memcpy(b.data() + i * tr->block_bytes + off, &h, 2);
    }
  return b;
}

// Rows of real weights: small-llama's layer-0 down projection (1280 columns), first rows.
std::vector<float> real_weights(std::size_t rows, std::size_t& cols) {
  const format::safetensors::checkpoint ck(std::string(QFORGE_FIXTURES) + "/models/small-llama");
  const auto v = ck.view("model.layers.0.mlp.down_proj.weight");
  std::vector<float> all = v.to_f32();
  cols = 1280;
  REQUIRE(all.size() >= rows * cols);
  all.resize(rows * cols);
  return all;
}

std::vector<float> activations(std::size_t n, std::uint64_t seed, bool with_zero_block) {
  testdata::rng r(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = r.normal() * (r.below(50) == 0 ? 20.0f : 1.0f);
  if (with_zero_block)
    for (std::size_t i = 0; i < 256 && i < n; ++i) x[i] = 0;
  return x;
}

// Checks every table's dot against the reference on rows x cols weights of type t.
void check_rows(qtype t, const std::vector<std::byte>& w, std::size_t rows, std::size_t cols,
                const std::vector<float>& x) {
  const std::size_t rb = w.size() / rows;
  std::vector<qd::act_q8_k> ak(cols % 256 == 0 ? cols / 256 : 0);
  std::vector<qd::act_q8_0> a0(cols / 32);
  if (!ak.empty()) qd::quantize_q8_k_ref(x.data(), cols, ak.data());
  qd::quantize_q8_0_ref(x.data(), cols, a0.data());
  const auto* act = t == qtype::q8_0 ? reinterpret_cast<const std::byte*>(a0.data())
                                     : reinterpret_cast<const std::byte*>(ak.data());
  std::vector<float> wf(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    const std::byte* row = w.data() + r * rb;
    const reference want = ref_of(t, row, ak, a0);
    // The reference against the float dot of the decoded row: only the activation rounding.
    quant::decode_rows(t, {row, rb}, 1, static_cast<std::int64_t>(cols), wf);
    double exact = 0, bound = 0, mag = 0;
    for (std::size_t i = 0; i < cols; ++i) {
      const float step = t == qtype::q8_0 ? a0[i / 32].d : ak[i / 256].d;
      exact += double{wf[i]} * x[i];
      bound += std::fabs(double{wf[i]}) * step / 2;
      mag += std::fabs(double{wf[i]} * x[i]);
    }
    INFO(quant::name(t) << " row " << r << ": ref " << want.dot << ", float " << exact);
    CHECK(std::fabs(want.dot - exact) <= bound * 1.001 + 1e-5 * mag + 1e-30);
    for (const engine::ops* tb : engine::runnable_ops()) {
      INFO(tb->name);
      const float got = dot_of(*tb, t)(row, act, cols);
      CHECK(std::fabs(double{got} - want.dot) <= 1e-5 * want.magnitude + 1e-30);
    }
  }
  // The several-row products give each row exactly its single-row value, from any first row and
  // for any count (the AVX-512 bodies take four rows per pass, then one at a time).
  for (const engine::ops* tb : engine::runnable_ops()) {
    INFO(tb->name << ", " << quant::name(t));
    for (std::size_t first : {std::size_t{0}, std::size_t{1}})
      for (std::size_t n = 1; first + n <= rows; ++n) {
        std::vector<float> y(n, -1.0f);
        rows_of(*tb, t)(w.data() + first * rb, n, act, cols, y.data());
        for (std::size_t r = 0; r < n; ++r)
          CHECK(y[r] == dot_of(*tb, t)(w.data() + (first + r) * rb, act, cols));
      }
  }
}

}  // namespace

TEST_CASE("quant_dot: each table's activation quantizers write the reference bytes",
          "[engine][quant_dot]") {
  for (std::size_t n : {256u, 512u, 1280u}) {
    auto x = activations(n, n, true);
    if (n > 256) x[300] = 1e-30f;  // far below its block's step: rounds to 0
    std::vector<qd::act_q8_k> wk(n / 256), gk(n / 256);
    std::vector<qd::act_q8_0> w0(n / 32), g0(n / 32);
    qd::quantize_q8_k_ref(x.data(), n, wk.data());
    qd::quantize_q8_0_ref(x.data(), n, w0.data());
    // The rounding bound every later check relies on, and the all-zero first block.
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(std::fabs(x[i] - wk[i / 256].d * wk[i / 256].qs[i % 256]) <= wk[i / 256].d * 0.5001f);
      CHECK(std::fabs(x[i] - w0[i / 32].d * w0[i / 32].qs[i % 32]) <= w0[i / 32].d * 0.5001f);
    }
    CHECK(wk[0].d == 0.0f);
    for (const engine::ops* tb : engine::runnable_ops()) {
      INFO(tb->name << ", n = " << n);
      tb->quantize_q8_k(x.data(), n, reinterpret_cast<std::byte*>(gk.data()));
      tb->quantize_q8_0(x.data(), n, reinterpret_cast<std::byte*>(g0.data()));
      CHECK(std::memcmp(gk.data(), wk.data(), gk.size() * sizeof(qd::act_q8_k)) == 0);
      CHECK(std::memcmp(g0.data(), w0.data(), g0.size() * sizeof(qd::act_q8_0)) == 0);
    }
  }
}

TEST_CASE("quant_dot: each table's row dots equal the reference on random blocks",
          "[engine][quant_dot]") {
  const std::size_t rows = 6, cols = 1024;
  for (qtype t : all_types) {
    const auto w = random_rows(t, rows, cols, 17 + static_cast<std::uint64_t>(t));
    check_rows(t, w, rows, cols, activations(cols, 5, true));
    check_rows(t, w, rows, cols, activations(cols, 6, false));
  }
  // Q8_0 rows of an odd number of blocks (the wide bodies take them in pairs) and of one block.
  for (std::size_t n : {32u * 37u, 32u})
    check_rows(qtype::q8_0, random_rows(qtype::q8_0, 3, n, 4), 3, n, activations(n, 8, false));
}

TEST_CASE("quant_dot: each table's row dots equal the reference on small-llama weights",
          "[engine][quant_dot]") {
  std::size_t cols = 0;
  const std::size_t rows = 8;
  const auto wf = real_weights(rows, cols);
  for (qtype t : all_types) {
    std::vector<std::byte> w(rows * quant::row_bytes(t, static_cast<std::int64_t>(cols)));
    quant::encode_rows(t, wf, static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols), w);
    check_rows(t, w, rows, cols, activations(cols, 9, false));
  }
}

TEST_CASE("quant_dot: one-token matmul uses the 8-bit path, f32 mode the float path",
          "[engine][quant_dot]") {
  // Never destroyed: a pool whose worker has not started by the time it is destroyed can hang in
  // its destructor (reported to the engine's owner); this one outlives the test.
  static auto& pool = *new engine::thread_pool(2);
  const std::size_t rows = 37, cols = 512;
  const auto x = activations(cols, 3, false);
  for (qtype t : all_types) {
    INFO(quant::name(t));
    const auto w = random_rows(t, rows, cols, 99);
    const auto m = engine::make_matrix(t, rows, cols, w, "test", "w");
    std::vector<float> q8(rows), f32(rows), wf(rows * cols);
    engine::matmul(m, x.data(), cols, 1, q8.data(), rows, pool);
    {  // restored even when the product throws
      const engine::scoped_decode_activations float_mode(engine::decode_activations::f32);
      engine::matmul(m, x.data(), cols, 1, f32.data(), rows, pool);
    }
    quant::decode_rows(t, w, static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols), wf);
    std::vector<qd::act_q8_k> ak(cols / 256);
    std::vector<qd::act_q8_0> a0(cols / 32);
    qd::quantize_q8_k_ref(x.data(), cols, ak.data());
    qd::quantize_q8_0_ref(x.data(), cols, a0.data());
    bool any_differs = false;
    for (std::size_t r = 0; r < rows; ++r) {
      const reference want = ref_of(t, w.data() + r * (w.size() / rows), ak, a0);
      CHECK(std::fabs(double{q8[r]} - want.dot) <= 1e-5 * want.magnitude + 1e-30);
      double exact = 0, mag = 0;
      for (std::size_t i = 0; i < cols; ++i) {
        exact += double{wf[r * cols + i]} * x[i];
        mag += std::fabs(double{wf[r * cols + i]} * x[i]);
      }
      CHECK(std::fabs(f32[r] - exact) <= 1e-5 * mag + 1e-30);
      any_differs = any_differs || q8[r] != f32[r];
    }
    CHECK(any_differs);  // the two modes really are two paths
  }
}
