// SPDX-License-Identifier: MIT
// AWQ's group quantizer against hand-computed AutoAWQ results (fp16 arithmetic, round half to
// even, zero clamped to [0, 15]), and the search helpers' defining properties.
#include <catch2/catch.hpp>

#include <random>

#include "qforge/quant/awq/ref.hpp"
#include "qforge/quant/awq/search.hpp"

using namespace qforge::quant::awq;

TEST_CASE("awq quantize: hand-computed group with an fp16 half-way case", "[awq][ref]") {
  // range 3 -> scale = half(0.2) = 0.199951171875; min / scale = -5.0012 -> half -5 -> zero 5.
  // 0.5 / scale = 2.5006, which fp16 rounds to 2.5 and torch.round takes to 2 (float32 math would
  // give 3): q = 7. 2 / scale = 10.0024 -> 10 -> q = 15.
  const float w[4] = {-1.0f, 0.0f, 0.5f, 2.0f};
  std::uint8_t q[4];
  const auto p = quantize_group(w, 4, q);
  CHECK(p.scale == 0.199951171875f);
  CHECK(p.zero == 5);
  CHECK(q[0] == 0);
  CHECK(q[1] == 5);
  CHECK(q[2] == 7);
  CHECK(q[3] == 15);
  CHECK(dequantize_value(q[2], p) == half(2 * 0.199951171875f));
  CHECK(dequantize_value(q[0], p) == half(-5 * 0.199951171875f));
}

TEST_CASE("awq quantize: zero clamps to 0 for an all-positive group, codes clamp to 15",
          "[awq][ref]") {
  const float w[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  std::uint8_t q[4];
  const auto p = quantize_group(w, 4, q);
  CHECK(p.zero == 0);  // -round(5.0012) = -5, clamped
  CHECK(q[0] == 5);
  CHECK(q[1] == 10);
  CHECK(q[2] == 15);
  CHECK(q[3] == 15);  // 20 clamped
}

TEST_CASE("awq quantize: zeros stay zero, ties to even", "[awq][ref]") {
  float w[32] = {};
  std::uint8_t q[32];
  auto p = quantize_group(w, 32, q);
  for (auto v : q) CHECK(v == 0);
  CHECK(dequantize_value(0, p) == 0.0f);
  // range 15 -> scale 1, min -7.5 -> round(-7.5) = -8 (even) -> zero 8; 0.5 -> 0, 1.5 -> 2.
  const float t[4] = {-7.5f, 0.5f, 1.5f, 7.5f};
  std::uint8_t r[4];
  p = quantize_group(t, 4, r);
  CHECK(p.scale == 1.0f);
  CHECK(p.zero == 8);
  CHECK(r[0] == 0);
  CHECK(r[1] == 8);
  CHECK(r[2] == 10);
  CHECK(r[3] == 15);  // 8 + 8 = 16 clamped
}

TEST_CASE("awq quantize: matrix layout, dequantize, fake quantize agree", "[awq][ref]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(16 * 256);
  for (auto& v : w) v = half(nd(rng));
  const auto m = quantize(w, 16, 256, 128);
  const auto d = dequantize(m);
  auto f = w;
  for (std::size_t r = 0; r < 16; ++r) fake_quantize_row(f.data() + r * 256, 256, 128);
  CHECK(d == f);
  double err = 0, energy = 0;
  for (std::size_t i = 0; i < w.size(); ++i) err += (d[i] - w[i]) * (d[i] - w[i]), energy += w[i] * w[i];
  CHECK(err / energy < 0.02);  // 4-bit min-max on Gaussian groups: about -20 dB
  w[300] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(quantize(w, 16, 256, 128), qforge::error);
  CHECK_THROWS_AS(quantize(w, 16, 256, 96), qforge::error);
}

TEST_CASE("awq search: candidate scales are normalised and follow the ratio", "[awq][search]") {
  const std::vector<float> xm = {0.1f, 1.0f, 10.0f, 2.0f}, wm = {0.5f, 0.5f, 0.5f, 0.5f};
  const auto s0 = candidate_scales(xm, wm, 0.0f);
  for (auto v : s0) CHECK(v == Approx(1.0f));  // equal w_mean and ratio 0: all equal, normalised
  const auto s = candidate_scales(xm, wm, 0.5f);
  const auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  CHECK(*mn * *mx == Approx(1.0f));
  CHECK(s[2] / s[0] == Approx(10.0f));  // sqrt(10 / 0.1)
}

TEST_CASE("awq search: the clip search never loses to no clipping", "[awq][search]") {
  std::mt19937 rng(11);
  std::student_t_distribution<float> td(3.0f);
  const std::size_t in = 256, group = 128;
  std::vector<float> w(in);
  for (auto& v : w) v = half(0.02f * td(rng));
  std::vector<float> cov(in * group, 0.0f);  // identity blocks: plain weight MSE
  for (std::size_t g = 0; g < in / group; ++g)
    for (std::size_t a = 0; a < group; ++a) cov[g * group * group + a * group + a] = 1.0f;
  const auto dot = [](const float* a, const float* b, std::size_t n) {
    float s = 0;
    for (std::size_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
  };
  auto plain = w;
  fake_quantize_row(plain.data(), in, group);
  double plain_err = 0;
  for (std::size_t i = 0; i < in; ++i) plain_err += (plain[i] - w[i]) * (plain[i] - w[i]);
  auto c = w;
  const double err = clip_row(c.data(), in, group, cov.data(), dot);
  CHECK(err <= plain_err * (1 + 1e-5));
  bool clipped = false;
  for (std::size_t i = 0; i < in; ++i) clipped |= std::fabs(c[i]) < std::fabs(w[i]);
  CHECK(clipped);  // heavy tails: some threshold below max |w| wins
}
