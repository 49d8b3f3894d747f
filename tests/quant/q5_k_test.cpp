// SPDX-License-Identifier: MIT
// Q5_K: ggml's golden bytes and floats (quantize_row_q5_K_ref without and quantize_row_q5_K_impl
// with importance weights) for the reference, every compiled CPU backend and the encode_rows /
// decode_rows entry points; every backend against the reference on generated and small-llama
// weights; round-trip error.
#include "quant/kquant23_common.hpp"

#include "qforge/quant/detail/scale_search.hpp"
#include "qforge/quant/q5_k/family.hpp"

using namespace qforge;
using fam = quant::q5_k::family;

TEST_CASE("q5_k: reference, every backend: ggml's golden bytes and floats", "[q5_k][golden]") {
  kq23::check_golden<fam>("q5_K");
}

TEST_CASE("q5_k: encode_rows / decode_rows write the golden bytes", "[q5_k][golden][backend]") {
  kq23::check_golden_entry_points<fam>("q5_K");
}

TEST_CASE("q5_k: each backend writes the reference bytes on generated data", "[q5_k][backend]") {
  kq23::check_generated<fam>();
}

TEST_CASE("q5_k: each backend writes the reference bytes on small-llama weights",
          "[q5_k][backend][real]") {
  kq23::check_real<fam>(0.06);
}

TEST_CASE("q5_k: odd super-block counts per row exercise every SIMD tail", "[q5_k][backend]") {
  // A row of n super-blocks with weights: the SIMD bodies group super-blocks by lane count, so
  // 1..33 blocks cover partial groups of 4, 8 and 16 lanes.
  using C = kq23::codec<fam>;
  for (std::size_t nb = 1; nb <= 33; nb += (nb < 18 ? 1 : 5)) {
    const std::size_t cols = 256 * nb;
    const auto x = testdata::weights(2, cols, nb);
    const auto w = kq23::imatrix_for(cols, nb);
    const auto plain = C::encode(nullptr, x, cols, {}), weighted = C::encode(nullptr, x, cols, w);
    for (const auto* b : kq23::runnable_cpu()) {
      INFO(b->name() << ": " << nb << " super-blocks per row");
      CHECK(kq23::diff<quant::block_q5_k>(C::encode(b->kernels(), x, cols, {}), plain) == "");
      CHECK(kq23::diff<quant::block_q5_k>(C::encode(b->kernels(), x, cols, w), weighted) == "");
    }
  }
}

TEST_CASE("q5_k: decoded weights sit within half a step of the input", "[q5_k][scalar]") {
  // With d, dmin and the 6-bit codes fixed, each weight is rounded to the nearest level, so the
  // error of an unclamped weight is at most half of d*sc (plus float rounding).
  const auto x = testdata::generate(testdata::kind::normal, 8, 512, 3);
  std::vector<quant::block_q5_k> y(x.size() / 256);
  quant::q5_k::encode_ref(x, y);
  std::vector<float> back(x.size());
  quant::q5_k::decode_ref(y, back);
  int clamped = 0, checked = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = y[i / 256];
    std::uint8_t sc, m;
    quant::detail::get_scale_min_k4(static_cast<int>(i % 256 / 32), b.scales, &sc, &m);
    const float step = fp16_to_fp32(b.d) * sc;
    const float lo = -fp16_to_fp32(b.dmin) * m, hi = lo + 31 * step;
    if (x[i] < lo || x[i] > hi) {
      ++clamped;
      continue;
    }
    ++checked;
    CHECK(std::fabs(back[i] - x[i]) <= 0.5f * step * 1.0001f + 1e-7f);
  }
  CHECK(checked > 3800);
  CHECK(clamped < 250);  // the 6-bit mins and scales round, so a few edge weights fall outside
}
