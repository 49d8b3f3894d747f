// SPDX-License-Identifier: MIT
// Q5_1 encoder (ggml's plain path) and decoder against xsimd, instantiated per ISA by
// kernels/cpu/isa_*.cpp: the generic legacy body of detail/legacy_codec_simd.hpp (which gives the
// argument for equal bytes with ref.hpp) for the asymmetric 5-bit: d = (max - min) / 31, m = min;
// ggml casts straight to uint8_t here, without the MIN(31, .) of Q5_0, and the lanes do the same.
#pragma once
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/detail/legacy_codec_simd.hpp"
#include "qforge/quant/q5_1/ref.hpp"

namespace qforge::quant::q5_1 {

using simd_format =
    detail::legacy_simd::legacy_format<block_q5_1, 5, /*Asymmetric=*/true, /*ClampCodes=*/false>;
struct encode_simd : detail::legacy_simd::encoder<simd_format, &encode_block_ref> {};
struct decode_simd : detail::legacy_simd::decoder<simd_format> {};

}  // namespace qforge::quant::q5_1
