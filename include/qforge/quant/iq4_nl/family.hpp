// SPDX-License-Identifier: MIT
// IQ4_NL as backend/dispatch.hpp sees it: block type, GGUF type id, and the reference and SIMD kernels
// behind one calling convention (x holds whole rows; `imatrix`, when given, weights the columns of a
// single row). The encoder is ggml's scale search with or without weights; it has no SIMD body yet,
// so every backend runs the reference for it. Decoding is vectorised.
#pragma once
#include <span>

#include "qforge/quant/iq4_nl/ref.hpp"
#include "qforge/quant/iq4_nl/simd.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::quant::iq4_nl {

struct family {
  using block = block_iq4_nl;
  static constexpr qtype type = qtype::iq4_nl;

  static void encode_ref(std::span<const float> x, std::span<block> y,
                         const float* imatrix) noexcept {
    iq4_nl::encode_ref(x, y, imatrix);
  }
  static void decode_ref(std::span<const block> x, std::span<float> y) noexcept {
    iq4_nl::decode_ref(x, y);
  }
  template <class Arch>
  static void encode_simd(Arch, std::span<const float> x, std::span<block> y,
                          const float* imatrix) noexcept {
    iq4_nl::encode_ref(x, y, imatrix);
  }
  template <class Arch>
  static void decode_simd(Arch arch, std::span<const block> x, std::span<float> y) noexcept {
    iq4_nl::decode_simd{}(arch, x, y);
  }
};

}  // namespace qforge::quant::iq4_nl
