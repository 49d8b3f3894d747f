// SPDX-License-Identifier: MIT
// AWQ's weight quantizer, the reference: asymmetric 4-bit with a zero point per group of `group`
// consecutive input channels of one output row, as AutoAWQ's pseudo_quantize_tensor computes it on
// an fp16 model. Per group: scale = max(max - min, 1e-5) / 15, zero = clamp(-round(min / scale),
// 0, 15), q = clamp(round(w / scale) + zero, 0, 15), and the weight the model then holds is
// (q - zero) * scale. AutoAWQ runs this in half precision, so every intermediate (the range, the
// scale, w / scale, the product) is an fp16 value; `half` reproduces that here by rounding the
// float result of each operation to fp16, which is exact emulation for +, -, *, / because a float
// carries more than twice the bits of a half (no double-rounding error). round() is torch.round:
// half to even. 4.125 bits per weight at group 128 (4 bits, an fp16 scale and a 4-bit zero per 128).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/core/fp16.hpp"

namespace qforge::quant::awq {

inline constexpr int bits = 4;
inline constexpr int max_q = 15;  // 2^bits - 1

// x rounded to the nearest fp16 value, returned as float (what a torch.half op stores).
inline float half(float x) noexcept { return fp16_to_fp32(fp32_to_fp16(x)); }

// torch.round: to nearest, ties to even (nearbyint under the default rounding mode).
inline float round_even(float x) noexcept { return std::nearbyint(x); }

struct group_params {
  float scale = 0;       // an fp16 value
  std::uint8_t zero = 0;  // 0..15
};

// Quantizes w[0, n) (fp16 values held as float) into codes q[0, n) and returns the group's scale
// and zero. A NaN weight gives scale NaN (the caller checks finiteness before packing).
inline group_params quantize_group(const float* w, std::size_t n, std::uint8_t* q) noexcept {
  float mx = w[0], mn = w[0];
  for (std::size_t i = 1; i < n; ++i) {
    mx = std::max(mx, w[i]);
    mn = std::min(mn, w[i]);
  }
  const float range = std::max(half(mx - mn), half(1e-5f));
  const float scale = half(range / static_cast<float>(max_q));
  const float z = std::clamp(-round_even(half(mn / scale)), 0.0f, static_cast<float>(max_q));
  for (std::size_t i = 0; i < n; ++i) {
    const float v = std::clamp(round_even(half(w[i] / scale)) + z, 0.0f, static_cast<float>(max_q));
    q[i] = static_cast<std::uint8_t>(v);
  }
  return {scale, static_cast<std::uint8_t>(z)};
}

// The fp16 weight a code stands for (AutoAWQ's dequantize_gemm: (q - zero) * scale in half).
inline float dequantize_value(std::uint8_t q, group_params p) noexcept {
  return half(static_cast<float>(static_cast<int>(q) - static_cast<int>(p.zero)) * p.scale);
}

// w[0, n) replaced by its quantize-dequantize image, group by group (n % group == 0, group <= 256).
inline void fake_quantize_row(float* w, std::size_t n, std::size_t group) noexcept {
  std::uint8_t q[256];
  for (std::size_t g = 0; g < n; g += group) {
    const group_params p = quantize_group(w + g, group, q);
    for (std::size_t i = 0; i < group; ++i) w[g + i] = dequantize_value(q[i], p);
  }
}

// A quantized [out, in] matrix in row order: codes per weight, fp16 scale bits and zeros per
// (row, group).
struct quantized_matrix {
  std::size_t out = 0, in = 0, group = 0;
  std::vector<std::uint8_t> q;        // [out, in]
  std::vector<std::uint16_t> scales;  // [out, in / group], fp16 bits
  std::vector<std::uint8_t> zeros;    // [out, in / group]

  [[nodiscard]] group_params params(std::size_t row, std::size_t g) const noexcept {
    const std::size_t i = row * (in / group) + g;
    return {fp16_to_fp32(scales[i]), zeros[i]};
  }
};

inline constexpr bool valid_group(std::size_t g) noexcept { return g == 32 || g == 64 || g == 128; }

// Throws error::kind::argument when the group size is not 32, 64 or 128, when `in` is not a
// multiple of it, or when `out` is not a multiple of 8 (the packed layout stores 8 outputs per
// int32).
inline void check_shape(std::size_t out, std::size_t in, std::size_t group, const std::string& what) {
  if (!valid_group(group))
    throw error(error::kind::argument, cat(what, ": AWQ group size ", group, " (32, 64 or 128)"));
  if (in % group != 0)
    throw error(error::kind::argument,
                cat(what, ": ", in, " input channels are not a multiple of the group size ", group));
  if (out % 8 != 0)
    throw error(error::kind::argument,
                cat(what, ": ", out, " output channels are not a multiple of 8 (AWQ packing)"));
}

// An empty quantized_matrix of the given shape.
inline quantized_matrix make_quantized(std::size_t out, std::size_t in, std::size_t group) {
  quantized_matrix m;
  m.out = out, m.in = in, m.group = group;
  m.q.resize(out * in);
  m.scales.resize(out * (in / group));
  m.zeros.resize(out * (in / group));
  return m;
}

// Rows [r0, r1) of w ([m.out, m.in] finite fp16 values as float) quantized into m: the unit of
// work callers spread over threads.
inline void quantize_rows(const float* w, quantized_matrix& m, std::size_t r0,
                          std::size_t r1) noexcept {
  const std::size_t in = m.in, group = m.group;
  for (std::size_t r = r0; r < r1; ++r)
    for (std::size_t g = 0; g < in / group; ++g) {
      const group_params p = quantize_group(w + r * in + g * group, group, m.q.data() + r * in + g * group);
      m.scales[r * (in / group) + g] = fp32_to_fp16(p.scale);
      m.zeros[r * (in / group) + g] = p.zero;
    }
}

// Quantizes w ([out, in] row-major fp16 values as float). Throws as check_shape, and
// error::kind::argument naming the row when a weight is not finite.
inline quantized_matrix quantize(std::span<const float> w, std::size_t out, std::size_t in,
                                 std::size_t group, const std::string& what = "matrix") {
  check_shape(out, in, group, what);
  if (w.size() != out * in)
    throw error(error::kind::argument, cat(what, ": ", w.size(), " weights for [", out, ", ", in, "]"));
  for (std::size_t r = 0; r < out; ++r)
    if (!std::all_of(w.begin() + r * in, w.begin() + (r + 1) * in,
                     [](float v) { return std::isfinite(v); }))
      throw error(error::kind::argument, cat(what, ": row ", r, " holds a non-finite weight"));
  quantized_matrix m = make_quantized(out, in, group);
  quantize_rows(w.data(), m, 0, out);
  return m;
}

// [out, in] fp16 values of the dequantized matrix, as float.
inline std::vector<float> dequantize(const quantized_matrix& m) {
  std::vector<float> w(m.out * m.in);
  for (std::size_t r = 0; r < m.out; ++r)
    for (std::size_t k = 0; k < m.in; ++k)
      w[r * m.in + k] = dequantize_value(m.q[r * m.in + k], m.params(r, k / m.group));
  return w;
}

}  // namespace qforge::quant::awq
