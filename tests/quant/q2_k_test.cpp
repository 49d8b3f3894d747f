// SPDX-License-Identifier: MIT
// Q2_K: ggml's golden bytes and floats (with and without importance weights) for the reference, every
// compiled CPU backend and the encode_rows / decode_rows entry points; every backend against the
// reference on generated and small-llama weights; bounded round-trip error.
#include "quant/kquant23_common.hpp"

#include "qforge/quant/q2_k/family.hpp"

using namespace qforge;
using fam = quant::q2_k::family;

TEST_CASE("q2_k: reference, every backend: ggml's golden bytes and floats", "[q2_k][golden]") {
  kq23::check_golden<fam>("q2_K");
}

TEST_CASE("q2_k: encode_rows / decode_rows write the golden bytes", "[q2_k][golden][backend]") {
  kq23::check_golden_entry_points<fam>("q2_K");
}

TEST_CASE("q2_k: each backend writes the reference bytes on generated data", "[q2_k][backend]") {
  kq23::check_generated<fam>();
}

TEST_CASE("q2_k: each backend writes the reference bytes on small-llama weights",
          "[q2_k][backend][real]") {
  kq23::check_real<fam>(0.32);
}
