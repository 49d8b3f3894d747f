// SPDX-License-Identifier: MIT
// Q5_0 encoder (ggml's plain path) and decoder against xsimd, instantiated per ISA by
// kernels/cpu/isa_*.cpp: the generic legacy body of detail/legacy_codec_simd.hpp (which gives the
// argument for equal bytes with ref.hpp) for the symmetric 5-bit: d = max / -16, codes x / d + 16.5
// capped at 31, fifth bits gathered with a lane mask.
#pragma once
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_codec_simd.hpp"
#include "qforge/quant/q5_0/ref.hpp"

namespace qforge::quant::q5_0 {

using simd_format =
    detail::legacy_simd::legacy_format<block_q5_0, 5, /*Asymmetric=*/false>;
struct encode_simd : detail::legacy_simd::encoder<simd_format, &encode_block_ref> {};
struct decode_simd : detail::legacy_simd::decoder<simd_format> {};

}  // namespace qforge::quant::q5_0
