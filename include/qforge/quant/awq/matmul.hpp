// SPDX-License-Identifier: MIT
// Products with a weight matrix held in AutoAWQ's GEMM layout (pack.hpp), read in place: the
// W4A16 path of the CPU engine. Nothing ever expands the whole matrix: one token takes a
// dequantize-in-register dot product per group, y[o] = sum_g s[g,o] * (sum_k x[k] q[k,o] -
// z[g,o] * sum_k x[k]), walking qweight row by row so each int32 load feeds 8 outputs (gemv_packs,
// one pack at a time: the scalar reference of the engine's vector kernel, engine/awq_gemv_simd.hpp,
// which computes W packs per instruction); several
// tokens decode a tile of 8-output packs to float once and reuse it for every token (the same
// trade-off as the engine's block types). Weights are (q - z) * s in float32, not rounded to fp16:
// the engine computes in float32 throughout. Callers split work by packs, so results never depend
// on the thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "qforge/core/fp16.hpp"
#include "qforge/quant/awq/pack.hpp"

namespace qforge::quant::awq {

// Raw little-endian bytes of one linear's tensors (no alignment assumed).
struct gemm_view {
  const std::byte* qweight = nullptr;  // I32 [in, out / 8]
  const std::byte* qzeros = nullptr;   // I32 [in / group, out / 8]
  const std::byte* scales = nullptr;   // F16 [in / group, out]
  std::size_t in = 0, out = 0, group = 0;

  [[nodiscard]] std::size_t packs() const noexcept { return out / 8; }
  [[nodiscard]] std::uint32_t word(const std::byte* base, std::size_t i) const noexcept {
    std::uint32_t v;
    std::memcpy(&v, base + 4 * i, 4);
    return v;
  }
  [[nodiscard]] float scale(std::size_t g, std::size_t o) const noexcept {
    std::uint16_t h;
    std::memcpy(&h, scales + 2 * (g * out + o), 2);
    return fp16_to_fp32(h);
  }
};

// Rows [8 * p0, 8 * p1) of W as float into dst ([8 * (p1 - p0), in], row-major).
inline void decode_rows(const gemm_view& w, std::size_t p0, std::size_t p1, float* dst) noexcept {
  const std::size_t P = w.packs(), n = w.in;
  for (std::size_t p = p0; p < p1; ++p) {
    float* rows = dst + (p - p0) * 8 * n;
    for (std::size_t g = 0; g < n / w.group; ++g) {
      std::uint8_t z[8];
      unpack8(w.word(w.qzeros, g * P + p), z);
      float s[8], zs[8];
      for (int j = 0; j < 8; ++j) {
        s[j] = w.scale(g, 8 * p + j);
        zs[j] = static_cast<float>(z[j]);
      }
      for (std::size_t k = g * w.group; k < (g + 1) * w.group; ++k) {
        const std::uint32_t u = w.word(w.qweight, k * P + p);
        for (int j = 0; j < 8; ++j) {
          const auto q = static_cast<float>((u >> (4 * unpack_order[j])) & 15u);
          rows[j * n + k] = (q - zs[j]) * s[j];
        }
      }
    }
  }
}

// y[o] = sum_k W[o, k] x[k] for o in [8 * p0, 8 * p1): one token.
inline void gemv_packs(const gemm_view& w, const float* x, float* y, std::size_t p0,
                       std::size_t p1) noexcept {
  const std::size_t P = w.packs();
  for (std::size_t p = p0; p < p1; ++p) {
    float out[8] = {};
    for (std::size_t g = 0; g < w.in / w.group; ++g) {
      float acc[8] = {};
      float xs = 0;
      for (std::size_t k = g * w.group; k < (g + 1) * w.group; ++k) {
        const std::uint32_t u = w.word(w.qweight, k * P + p);
        const float xk = x[k];
        xs += xk;
        for (int j = 0; j < 8; ++j)
          acc[j] += xk * static_cast<float>((u >> (4 * unpack_order[j])) & 15u);
      }
      std::uint8_t z[8];
      unpack8(w.word(w.qzeros, g * P + p), z);
      for (int j = 0; j < 8; ++j)
        out[j] += w.scale(g, 8 * p + j) * (acc[j] - static_cast<float>(z[j]) * xs);
    }
    for (int j = 0; j < 8; ++j) y[8 * p + j] = out[j];
  }
}

}  // namespace qforge::quant::awq
