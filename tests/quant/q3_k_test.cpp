// SPDX-License-Identifier: MIT
// Q3_K: ggml's golden bytes and floats (with and without importance weights) for the reference, every
// compiled CPU backend and the encode_rows / decode_rows entry points; every backend against the
// reference on generated and small-llama weights; bounded round-trip error.
#include "quant/kquant23_common.hpp"

#include "qforge/quant/q3_k/family.hpp"

using namespace qforge;
using fam = quant::q3_k::family;

TEST_CASE("q3_k: reference, every backend: ggml's golden bytes and floats", "[q3_k][golden]") {
  kq23::check_golden<fam>("q3_K");
}

TEST_CASE("q3_k: encode_rows / decode_rows write the golden bytes", "[q3_k][golden][backend]") {
  kq23::check_golden_entry_points<fam>("q3_K");
}

TEST_CASE("q3_k: each backend writes the reference bytes on generated data", "[q3_k][backend]") {
  kq23::check_generated<fam>();
}

TEST_CASE("q3_k: each backend writes the reference bytes on small-llama weights",
          "[q3_k][backend][real]") {
  kq23::check_real<fam>(0.17);
}
