// SPDX-License-Identifier: MIT
// Q4_1 encoder (ggml's plain path) and decoder against xsimd, instantiated per ISA by
// kernels/cpu/isa_*.cpp: the generic legacy body of detail/legacy_codec_simd.hpp (which gives the
// argument for equal bytes with ref.hpp) for the asymmetric 4-bit: d = (max - min) / 15, m = min,
// codes capped at 15.
#pragma once
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_codec_simd.hpp"
#include "qforge/quant/q4_1/ref.hpp"

namespace qforge::quant::q4_1 {

using simd_format =
    detail::legacy_simd::legacy_format<block_q4_1, 4, /*Asymmetric=*/true>;
struct encode_simd : detail::legacy_simd::encoder<simd_format, &encode_block_ref> {};
struct decode_simd : detail::legacy_simd::decoder<simd_format> {};

}  // namespace qforge::quant::q4_1
