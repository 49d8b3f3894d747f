// SPDX-License-Identifier: MIT
// AutoAWQ's "GEMM" checkpoint layout (WQLinear_GEMM.from_linear, read by vLLM's AWQ and AWQ-Marlin
// loaders and by transformers): for a linear of `in` inputs and `out` outputs,
//   qweight I32 [in, out / 8]         codes, 8 output channels per int32
//   qzeros  I32 [in / group, out / 8] zero points, packed the same way
//   scales  F16 [in / group, out]
// i.e. transposed relative to the [out, in] weight. Within an int32 the 8 nibbles are not in
// column order: nibble i (bits 4i .. 4i+3) holds column 8c + pack_order[i], with pack_order =
// [0, 2, 4, 6, 1, 3, 5, 7]. The odd order exists because AutoAWQ's CUDA GEMM unpacks an int32 into
// half2 pairs with one shift-and-mask pass (nibbles i and i+4 land in one half2 register), so even
// columns come out of the low half of the word and odd columns of the high half. Reading column j
// back means nibble unpack_order[j] = [0, 4, 1, 5, 2, 6, 3, 7][j].
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/quant/awq/ref.hpp"

namespace qforge::quant::awq {

inline constexpr std::array<int, 8> pack_order = {0, 2, 4, 6, 1, 3, 5, 7};
inline constexpr std::array<int, 8> unpack_order = {0, 4, 1, 5, 2, 6, 3, 7};

// v[j] (0..15) is the value of column 8c + j.
inline std::uint32_t pack8(const std::uint8_t* v) noexcept {
  std::uint32_t w = 0;
  for (int i = 0; i < 8; ++i) w |= static_cast<std::uint32_t>(v[pack_order[i]] & 15u) << (4 * i);
  return w;
}
inline void unpack8(std::uint32_t w, std::uint8_t* v) noexcept {
  for (int j = 0; j < 8; ++j) v[j] = static_cast<std::uint8_t>((w >> (4 * unpack_order[j])) & 15u);
}

struct gemm_tensors {
  std::size_t in = 0, out = 0, group = 0;
  std::vector<std::int32_t> qweight;  // [in, out / 8]
  std::vector<std::int32_t> qzeros;   // [in / group, out / 8]
  std::vector<std::uint16_t> scales;  // [in / group, out], fp16 bits
};

// Rows [k0, k1) of qweight (input channels) of pack_gemm(m) into t (sized by pack_gemm): the
// unit of work callers spread over threads.
inline void pack_qweight_rows(const quantized_matrix& m, gemm_tensors& t, std::size_t k0,
                              std::size_t k1) noexcept {
  const std::size_t P = m.out / 8;
  std::uint8_t v[8];
  for (std::size_t k = k0; k < k1; ++k)
    for (std::size_t p = 0; p < P; ++p) {
      for (std::size_t j = 0; j < 8; ++j) v[j] = m.q[(8 * p + j) * m.in + k];
      t.qweight[k * P + p] = static_cast<std::int32_t>(pack8(v));
    }
}

// pack_gemm, with qweight's rows packed by for_rows(n, fn) (fn(k0, k1) over [0, n): sequential,
// or a thread pool's parallel_for).
template <class ForRows>
gemm_tensors pack_gemm(const quantized_matrix& m, ForRows&& for_rows) {
  check_shape(m.out, m.in, m.group, "pack_gemm");
  const std::size_t P = m.out / 8, G = m.in / m.group;
  gemm_tensors t;
  t.in = m.in, t.out = m.out, t.group = m.group;
  t.qweight.resize(m.in * P);
  t.qzeros.resize(G * P);
  t.scales.resize(G * m.out);
  for_rows(m.in, [&](std::size_t k0, std::size_t k1) { pack_qweight_rows(m, t, k0, k1); });
  std::uint8_t v[8];
  for (std::size_t g = 0; g < G; ++g) {
    for (std::size_t p = 0; p < P; ++p) {
      for (std::size_t j = 0; j < 8; ++j) v[j] = m.zeros[(8 * p + j) * G + g];
      t.qzeros[g * P + p] = static_cast<std::int32_t>(pack8(v));
    }
    for (std::size_t o = 0; o < m.out; ++o) t.scales[g * m.out + o] = m.scales[o * G + g];
  }
  return t;
}

inline gemm_tensors pack_gemm(const quantized_matrix& m) {
  return pack_gemm(m, [](std::size_t n, auto&& fn) { fn(std::size_t{0}, n); });
}

// The inverse of pack_gemm. Throws error::kind::argument when the vectors do not match the shape.
inline quantized_matrix unpack_gemm(const gemm_tensors& t) {
  check_shape(t.out, t.in, t.group, "unpack_gemm");
  const std::size_t P = t.out / 8, G = t.in / t.group;
  if (t.qweight.size() != t.in * P || t.qzeros.size() != G * P || t.scales.size() != G * t.out)
    throw error(error::kind::argument, "unpack_gemm: tensor sizes do not match the shape");
  quantized_matrix m;
  m.out = t.out, m.in = t.in, m.group = t.group;
  m.q.resize(t.out * t.in);
  m.zeros.resize(t.out * G);
  m.scales.resize(t.out * G);
  std::uint8_t v[8];
  for (std::size_t k = 0; k < t.in; ++k)
    for (std::size_t p = 0; p < P; ++p) {
      unpack8(static_cast<std::uint32_t>(t.qweight[k * P + p]), v);
      for (std::size_t j = 0; j < 8; ++j) m.q[(8 * p + j) * t.in + k] = v[j];
    }
  for (std::size_t g = 0; g < G; ++g) {
    for (std::size_t p = 0; p < P; ++p) {
      unpack8(static_cast<std::uint32_t>(t.qzeros[g * P + p]), v);
      for (std::size_t j = 0; j < 8; ++j) m.zeros[(8 * p + j) * G + g] = v[j];
    }
    for (std::size_t o = 0; o < t.out; ++o) m.scales[o * G + g] = t.scales[g * t.out + o];
  }
  return m;
}

}  // namespace qforge::quant::awq
