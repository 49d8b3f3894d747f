// SPDX-License-Identifier: MIT
// Q5_K: ggml's golden bytes and floats (quantize_row_q5_K_ref without and quantize_row_q5_K_impl
// with importance weights) for the reference, every compiled CPU backend and the encode_rows /
// decode_rows entry points; every backend against the reference on generated and small-llama
// weights; round-trip error.
#include "quant/kquant23_common.hpp"

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
  kq23::check_superblock_tails<fam>();
}

TEST_CASE("q5_k: decoded weights sit within half a step of the input", "[q5_k][scalar]") {
  kq23::check_half_step_scale_min<fam>(31);
}
