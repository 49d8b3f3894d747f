// SPDX-License-Identifier: MIT
// Q6_K: ggml's golden bytes and floats (quantize_row_q6_K_ref without and quantize_row_q6_K_impl
// with importance weights) for the reference, every compiled CPU backend and the encode_rows /
// decode_rows entry points; every backend against the reference on generated and small-llama
// weights; round-trip error; the all-zero super-block.
#include "quant/kquant23_common.hpp"

#include "qforge/quant/q6_k/family.hpp"

using namespace qforge;
using fam = quant::q6_k::family;

TEST_CASE("q6_k: reference, every backend: ggml's golden bytes and floats", "[q6_k][golden]") {
  kq23::check_golden<fam>("q6_K");
}

TEST_CASE("q6_k: encode_rows / decode_rows write the golden bytes", "[q6_k][golden][backend]") {
  kq23::check_golden_entry_points<fam>("q6_K");
}

TEST_CASE("q6_k: each backend writes the reference bytes on generated data", "[q6_k][backend]") {
  kq23::check_generated<fam>();
}

TEST_CASE("q6_k: each backend writes the reference bytes on small-llama weights",
          "[q6_k][backend][real]") {
  kq23::check_real<fam>(0.03);
}

TEST_CASE("q6_k: odd super-block counts per row exercise every SIMD tail", "[q6_k][backend]") {
  kq23::check_superblock_tails<fam>();
}

TEST_CASE("q6_k: decoded weights sit within half a step of the input", "[q6_k][scalar]") {
  const auto x = testdata::generate(testdata::kind::heavy_tail, 8, 512, 3);
  std::vector<quant::block_q6_k> y(x.size() / 256);
  quant::q6_k::encode_ref(x, y);
  std::vector<float> back(x.size());
  quant::q6_k::decode_ref(y, back);
  int checked = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = y[i / 256];
    const float step = std::fabs(fp16_to_fp32(b.d) * b.scales[i % 256 / 16]);
    if (std::fabs(x[i]) > 31 * step) continue;  // clamped at the end of the range
    ++checked;
    CHECK(std::fabs(back[i] - x[i]) <= 0.5f * step * 1.0001f + 1e-7f);
  }
  CHECK(checked > 3800);
}

TEST_CASE("q6_k: an all-zero super-block is written as zero bytes", "[q6_k][scalar]") {
  std::vector<float> x(512, 0.0f);
  for (int i = 256; i < 512; ++i) x[i] = 1e-20f * static_cast<float>(i - 300);  // scales < 1e-15
  std::vector<quant::block_q6_k> y(2);
  std::memset(y.data(), 0xAB, sizeof(quant::block_q6_k) * 2);
  quant::q6_k::encode_ref(x, y);
  const auto bytes = kq23::codec<fam>::as_bytes(y);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    INFO("byte " << i);
    REQUIRE(bytes[i] == 0);
  }
}
