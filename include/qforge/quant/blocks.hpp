// SPDX-License-Identifier: MIT
// Every GGUF block layout, defined once for host and CUDA code. Field names follow ggml-common.h so a
// diff against the spec is trivial; the static_asserts pin the on-disk sizes.
#pragma once
#include <cstdint>

#include "qforge/core/config.hpp"

namespace qforge::quant {

// Q8_0: 32 weights, one fp16 scale d; w = d * qs[i]. 8.5 bits per weight.
inline constexpr int qk8_0 = 32;
struct block_q8_0 {
  std::uint16_t d;  // fp16 bits
  std::int8_t qs[qk8_0];
};
static_assert(sizeof(block_q8_0) == 34);

}  // namespace qforge::quant
