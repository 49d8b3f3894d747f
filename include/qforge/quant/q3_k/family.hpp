// SPDX-License-Identifier: MIT
// Q3_K as backend/dispatch.hpp sees it: block type, GGUF type id, and the reference and SIMD kernels
// behind one calling convention (x holds whole rows; `imatrix`, when given, weights the columns of
// a single row and selects ggml's importance-weighted search, as ggml_quantize_chunk does).
#pragma once
#include <span>

#include "qforge/quant/q3_k/ref.hpp"
#include "qforge/quant/q3_k/simd.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::quant::q3_k {

struct family {
  using block = block_q3_k;
  static constexpr qtype type = qtype::q3_k;

  static void encode_ref(std::span<const float> x, std::span<block> y,
                         const float* imatrix) noexcept {
    q3_k::encode_ref(x, y, imatrix);
  }
  static void decode_ref(std::span<const block> x, std::span<float> y) noexcept {
    q3_k::decode_ref(x, y);
  }
  template <class Arch>
  static void encode_simd(Arch arch, std::span<const float> x, std::span<block> y,
                          const float* imatrix) noexcept {
    q3_k::encode_simd{}(arch, x, y, imatrix);
  }
  template <class Arch>
  static void decode_simd(Arch arch, std::span<const block> x, std::span<float> y) noexcept {
    q3_k::decode_simd{}(arch, x, y);
  }
};

}  // namespace qforge::quant::q3_k
