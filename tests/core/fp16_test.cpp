// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

#include "qforge/core/checked.hpp"
#include "qforge/core/fp16.hpp"

using namespace qforge;

TEST_CASE("fp16: every half value survives a round trip through float", "[core][fp16]") {
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float f = fp16_to_fp32(bits);
    if (std::isnan(f)) {
      CHECK((fp32_to_fp16(f) & 0x7c00u) == 0x7c00u);
      continue;
    }
    INFO("half 0x" << std::hex << h);
    REQUIRE(fp32_to_fp16(f) == bits);
  }
}

TEST_CASE("fp16: rounding is to nearest, ties to even", "[core][fp16]") {
  // 1 + 2^-11 lies exactly between 1.0 (0x3c00, even) and 1 + 2^-10 (0x3c01).
  CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  // 1 + 3*2^-11 lies between 0x3c01 (odd) and 0x3c02 (even): ties go to even.
  CHECK(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(fp32_to_fp16(65504.0f) == 0x7bff);
  CHECK(fp32_to_fp16(65519.0f) == 0x7bff);
  CHECK(fp32_to_fp16(65520.0f) == 0x7c00);
  CHECK(fp32_to_fp16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  // Smallest subnormal 2^-24, and half of it (a tie that rounds to even zero).
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(fp32_to_fp16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -14) * 0.99999f) == 0x0400);  // rounds up into normals
}

TEST_CASE("bf16: round to nearest even, NaN stays NaN", "[core][bf16]") {
  CHECK(fp32_to_bf16(1.0f) == 0x3f80);
  CHECK(bf16_to_fp32(0x3f80) == 1.0f);
  CHECK(fp32_to_bf16(bits_float(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(fp32_to_bf16(bits_float(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
  CHECK(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("checked arithmetic throws on overflow", "[core]") {
  CHECK(checked_mul(1u << 20, 1u << 20) == (std::uint64_t{1} << 40));
  CHECK_THROWS_AS(checked_mul(std::uint64_t{1} << 40, std::uint64_t{1} << 40), error);
  CHECK_THROWS_AS(checked_add(~std::uint64_t{0}, 1), error);
}
