// SPDX-License-Identifier: MIT
// Q5_K as backend/dispatch.hpp sees it: block type, GGUF type id, and the reference and SIMD kernels
// behind one calling convention (x holds whole rows; `imatrix`, when given, weights the columns of
// a single row and selects ggml's importance-weighted search).
#pragma once
#include <span>

#include "qforge/quant/q5_k/ref.hpp"
#include "qforge/quant/q5_k/simd.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::quant::q5_k {

struct family {
  using block = block_q5_k;
  static constexpr qtype type = qtype::q5_k;

  static void encode_ref(std::span<const float> x, std::span<block> y,
                         const float* imatrix) noexcept {
    q5_k::encode_ref(x, y, imatrix);
  }
  static void decode_ref(std::span<const block> x, std::span<float> y) noexcept {
    q5_k::decode_ref(x, y);
  }
  template <class Arch>
  static void encode_simd(Arch arch, std::span<const float> x, std::span<block> y,
                          const float* imatrix) noexcept {
    q5_k::encode_simd{}(arch, x, y, imatrix);
  }
  // Elementwise: the reference loop compiled for the ISA is the vector decoder.
  template <class Arch>
  static void decode_simd(Arch, std::span<const block> x, std::span<float> y) noexcept {
    q5_k::decode_ref(x, y);
  }
};

}  // namespace qforge::quant::q5_k
