// SPDX-License-Identifier: MIT
// Q4_K: ggml's golden bytes and floats (quantize_row_q4_K_ref without and quantize_row_q4_K_impl
// with importance weights) for the reference, every compiled CPU backend and the encode_rows /
// decode_rows entry points; every backend against the reference on generated and small-llama
// weights; round-trip error; the shared scale-search helpers' edge behaviour.
#include "quant/kquant23_common.hpp"

#include "qforge/quant/detail/scale_search.hpp"
#include "qforge/quant/q4_k/family.hpp"

using namespace qforge;
using fam = quant::q4_k::family;

TEST_CASE("q4_k: reference, every backend: ggml's golden bytes and floats", "[q4_k][golden]") {
  kq23::check_golden<fam>("q4_K");
}

TEST_CASE("q4_k: encode_rows / decode_rows write the golden bytes", "[q4_k][golden][backend]") {
  kq23::check_golden_entry_points<fam>("q4_K");
}

TEST_CASE("q4_k: each backend writes the reference bytes on generated data", "[q4_k][backend]") {
  kq23::check_generated<fam>();
}

TEST_CASE("q4_k: each backend writes the reference bytes on small-llama weights",
          "[q4_k][backend][real]") {
  kq23::check_real<fam>(0.12);
}

TEST_CASE("q4_k: odd super-block counts per row exercise every SIMD tail", "[q4_k][backend]") {
  kq23::check_superblock_tails<fam>();
}

TEST_CASE("q4_k: decoded weights sit within half a step of the input", "[q4_k][scalar]") {
  kq23::check_half_step_scale_min<fam>(15);
}

TEST_CASE("scale_search: nearest_int ties to even and the 6-bit scale packing round trips",
          "[q4_k][scale_search]") {
  using namespace quant::detail;
  CHECK(nearest_int(0.5f) == 0);
  CHECK(nearest_int(1.5f) == 2);
  CHECK(nearest_int(2.5f) == 2);
  CHECK(nearest_int(-0.5f) == 0);
  CHECK(nearest_int(-1.5f) == -2);
  CHECK(nearest_int(-2.4999998f) == -2);
  CHECK(nearest_int(4194303.0f) == 4194303);
  CHECK(nearest_int(-4194303.0f) == -4194303);
  std::uint8_t q[12] = {};
  for (int j = 0; j < 8; ++j)
    set_scale_min_k4(j, q, static_cast<std::uint8_t>(63 - 5 * j), static_cast<std::uint8_t>(7 * j + 1));
  for (int j = 0; j < 8; ++j) {
    std::uint8_t d, m;
    get_scale_min_k4(j, q, &d, &m);
    CHECK(d == 63 - 5 * j);
    CHECK(m == 7 * j + 1);
  }
  // All-zero groups: every search reports scale 0 and zero levels.
  float zeros[32] = {};
  float w[32];
  for (float& v : w) v = 1.0f;
  std::uint8_t L[32], Laux[32];
  std::int8_t Ls[32];
  float the_min = -1;
  CHECK(make_qkx2_quants(32, 15, zeros, w, L, &the_min, Laux, -1.f, 0.1f, 20, false) == 0.0f);
  CHECK(the_min == 0.0f);
  CHECK(make_qx_quants(16, 32, zeros, Ls, 1, nullptr) == 0.0f);
  CHECK(make_q3_quants(16, 4, zeros, Ls, true) == 0.0f);
  CHECK(make_qp_quants(8, 63, zeros, L, w) == 0.0f);
  // A symmetric search on a ramp recovers its step exactly.
  float ramp[16];
  for (int i = 0; i < 16; ++i) ramp[i] = 0.25f * static_cast<float>(i - 8);
  const float s = make_qx_quants(16, 8, ramp, Ls, 1, nullptr);
  CHECK(std::fabs(s) == Approx(0.25f));
}
