// SPDX-License-Identifier: MIT
// Q4_0 as backend/dispatch.hpp sees it: block type, GGUF type id, and the reference and SIMD kernels
// behind one calling convention (x holds whole rows; `imatrix`, when given, weights the columns of a
// single row). The SIMD body covers ggml's plain path; the importance-weighted search is per-block
// sequential float work and runs the reference on every backend.
#pragma once
#include <span>

#include "qforge/quant/q4_0/ref.hpp"
#include "qforge/quant/q4_0/simd.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::quant::q4_0 {

struct family {
  using block = block_q4_0;
  static constexpr qtype type = qtype::q4_0;

  static void encode_ref(std::span<const float> x, std::span<block> y,
                         const float* imatrix) noexcept {
    q4_0::encode_ref(x, y, imatrix);
  }
  static void decode_ref(std::span<const block> x, std::span<float> y) noexcept {
    q4_0::decode_ref(x, y);
  }
  template <class Arch>
  static void encode_simd(Arch arch, std::span<const float> x, std::span<block> y,
                          const float* imatrix) noexcept {
    if (imatrix != nullptr) return q4_0::encode_ref(x, y, imatrix);
    q4_0::encode_simd{}(arch, x, y);
  }
  template <class Arch>
  static void decode_simd(Arch arch, std::span<const block> x, std::span<float> y) noexcept {
    q4_0::decode_simd{}(arch, x, y);
  }
};

}  // namespace qforge::quant::q4_0
