// SPDX-License-Identifier: MIT
// AutoAWQ GEMM packing: nibble order, tensor layout (transposed, 8 outputs per int32), round trips
// and shape errors, against values worked out by hand from the layout's definition.
#include <catch2/catch.hpp>

#include <random>

#include "qforge/quant/awq/matmul.hpp"
#include "qforge/quant/awq/pack.hpp"

using namespace qforge::quant::awq;

TEST_CASE("awq pack: nibble i holds column pack_order[i]", "[awq][pack]") {
  const std::uint8_t v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  // nibbles low to high: columns 0, 2, 4, 6, 1, 3, 5, 7
  CHECK(pack8(v) == 0x75316420u);
  const std::uint8_t w[8] = {15, 0, 0, 0, 0, 0, 0, 1};
  CHECK(pack8(w) == 0x1000000Fu);  // column 7 sits in the top nibble, column 0 in the bottom
  std::uint8_t back[8];
  unpack8(0x75316420u, back);
  for (int j = 0; j < 8; ++j) CHECK(back[j] == j);
  for (int j = 0; j < 8; ++j) CHECK(pack_order[unpack_order[j]] == j);
}

namespace {
quantized_matrix random_matrix(std::size_t out, std::size_t in, std::size_t group, unsigned seed) {
  std::mt19937 rng(seed);
  quantized_matrix m;
  m.out = out, m.in = in, m.group = group;
  for (std::size_t i = 0; i < out * in; ++i) m.q.push_back(static_cast<std::uint8_t>(rng() % 16));
  for (std::size_t i = 0; i < out * (in / group); ++i) {
    m.zeros.push_back(static_cast<std::uint8_t>(rng() % 16));
    m.scales.push_back(qforge::fp32_to_fp16(0.001f * static_cast<float>(1 + rng() % 100)));
  }
  return m;
}
}  // namespace

TEST_CASE("awq pack: GEMM tensors are transposed with packed outputs", "[awq][pack]") {
  auto m = random_matrix(16, 64, 32, 1);
  // Output row 9 (pack 1, column 1 -> nibble 4), input 37 (group 1).
  m.q[9 * 64 + 37] = 11;
  m.zeros[9 * 2 + 1] = 13;
  const auto t = pack_gemm(m);
  REQUIRE(t.qweight.size() == 64 * 2);
  REQUIRE(t.qzeros.size() == 2 * 2);
  REQUIRE(t.scales.size() == 2 * 16);
  CHECK(((static_cast<std::uint32_t>(t.qweight[37 * 2 + 1]) >> 16) & 15u) == 11);
  CHECK(((static_cast<std::uint32_t>(t.qzeros[1 * 2 + 1]) >> 16) & 15u) == 13);
  CHECK(t.scales[1 * 16 + 9] == m.scales[9 * 2 + 1]);
  // Every entry: word (k, p) nibble i = q[8p + pack_order[i], k].
  for (std::size_t k = 0; k < 64; ++k)
    for (std::size_t p = 0; p < 2; ++p)
      for (int i = 0; i < 8; ++i)
        REQUIRE(((static_cast<std::uint32_t>(t.qweight[k * 2 + p]) >> (4 * i)) & 15u) ==
                m.q[(8 * p + pack_order[i]) * 64 + k]);
}

TEST_CASE("awq pack: unpack inverts pack", "[awq][pack]") {
  for (std::size_t group : {32, 64, 128}) {
    const auto m = random_matrix(24, 256, group, static_cast<unsigned>(group));
    const auto back = unpack_gemm(pack_gemm(m));
    CHECK(back.q == m.q);
    CHECK(back.zeros == m.zeros);
    CHECK(back.scales == m.scales);
  }
}

TEST_CASE("awq pack: shapes the layout cannot hold are errors", "[awq][pack]") {
  using qforge::error;
  const auto kind_of = [](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return e.which();
    }
    return error::kind::internal;
  };
  CHECK(kind_of([] { check_shape(16, 256, 48, "x"); }) == error::kind::argument);
  CHECK(kind_of([] { check_shape(16, 200, 128, "x"); }) == error::kind::argument);
  CHECK(kind_of([] { check_shape(12, 256, 128, "x"); }) == error::kind::argument);
  CHECK_NOTHROW(check_shape(16, 384, 128, "x"));
}

TEST_CASE("awq matmul: in-place products equal the unpacked dequantized matrix", "[awq][matmul]") {
  const auto m = random_matrix(32, 256, 64, 5);
  const auto t = pack_gemm(m);
  const gemm_view v{reinterpret_cast<const std::byte*>(t.qweight.data()),
                    reinterpret_cast<const std::byte*>(t.qzeros.data()),
                    reinterpret_cast<const std::byte*>(t.scales.data()), 256, 32, 64};
  std::vector<float> rows(32 * 256);
  decode_rows(v, 0, 4, rows.data());
  for (std::size_t o = 0; o < 32; ++o)
    for (std::size_t k = 0; k < 256; ++k) {
      const auto p = m.params(o, k / 64);
      REQUIRE(rows[o * 256 + k] ==
              static_cast<float>(m.q[o * 256 + k] - p.zero) * p.scale);  // float, not rounded
    }
  std::vector<float> x(256), y(32);
  for (std::size_t k = 0; k < 256; ++k) x[k] = std::sin(static_cast<float>(k));
  gemv_packs(v, x.data(), y.data(), 0, 4);
  for (std::size_t o = 0; o < 32; ++o) {
    double want = 0;
    for (std::size_t k = 0; k < 256; ++k) want += double{rows[o * 256 + k]} * x[k];
    CHECK(y[o] == Approx(want).margin(1e-4));
  }
}
