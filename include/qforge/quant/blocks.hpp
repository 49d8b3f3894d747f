// SPDX-License-Identifier: MIT
// Every GGUF block layout, defined once for host and CUDA code. Field names follow ggml-common.h so a
// diff against the spec is trivial; the static_asserts pin the on-disk sizes. Scales `d` / `dmin`
// are fp16 bit patterns (std::uint16_t), never host floats, so the structs are byte-exact on disk.
#pragma once
#include <cstdint>

#include "qforge/core/config.hpp"

namespace qforge::quant {

// --- legacy 32-weight blocks -------------------------------------------------------------------

// Q4_0: w = d * (q - 8), q in [0, 15]; qs[j] holds weight j (low nibble) and j + 16 (high). 4.5 bpw.
inline constexpr int qk4_0 = 32;
struct block_q4_0 {
  std::uint16_t d;
  std::uint8_t qs[qk4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18);

// Q4_1: w = d * q + m, q in [0, 15]; nibble order as Q4_0. 5 bpw.
inline constexpr int qk4_1 = 32;
struct block_q4_1 {
  std::uint16_t d;
  std::uint16_t m;
  std::uint8_t qs[qk4_1 / 2];
};
static_assert(sizeof(block_q4_1) == 20);

// Q5_0: w = d * (q - 16), q in [0, 31]; low 4 bits as Q4_0, bit 4 of weight j in bit j of qh. 5.5 bpw.
inline constexpr int qk5_0 = 32;
struct block_q5_0 {
  std::uint16_t d;
  std::uint8_t qh[4];
  std::uint8_t qs[qk5_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22);

// Q5_1: w = d * q + m, q in [0, 31]; bit layout as Q5_0. 6 bpw.
inline constexpr int qk5_1 = 32;
struct block_q5_1 {
  std::uint16_t d;
  std::uint16_t m;
  std::uint8_t qh[4];
  std::uint8_t qs[qk5_1 / 2];
};
static_assert(sizeof(block_q5_1) == 24);

// Q8_0: 32 weights, one fp16 scale d; w = d * qs[i]. 8.5 bits per weight.
inline constexpr int qk8_0 = 32;
struct block_q8_0 {
  std::uint16_t d;  // fp16 bits
  std::int8_t qs[qk8_0];
};
static_assert(sizeof(block_q8_0) == 34);

// IQ4_NL: Q4_0's layout, but q indexes a fixed non-linear table of 16 int8 levels. 4.5 bpw.
inline constexpr int qk4_nl = 32;
struct block_iq4_nl {
  std::uint16_t d;
  std::uint8_t qs[qk4_nl / 2];
};
static_assert(sizeof(block_iq4_nl) == 18);

// --- K-quants: 256-weight super-blocks of 16 or 8 sub-blocks with quantized scales ---------------
inline constexpr int qk_k = 256;
inline constexpr int k_scale_size = 12;

// Q2_K: 16 sub-blocks of 16; scales[i] = 4-bit scale | 4-bit min << 4; w = d*sc*q - dmin*m. 2.625 bpw.
struct block_q2_k {
  std::uint8_t scales[qk_k / 16];
  std::uint8_t qs[qk_k / 4];
  std::uint16_t d;
  std::uint16_t dmin;
};
static_assert(sizeof(block_q2_k) == 84);

// Q3_K: 16 sub-blocks of 16; 2 low bits in qs, high bit in hmask; 6-bit signed scales packed in 12
// bytes; w = d * (sc - 32) * (q - 4 when the hmask bit is clear). 3.4375 bpw.
struct block_q3_k {
  std::uint8_t hmask[qk_k / 8];
  std::uint8_t qs[qk_k / 4];
  std::uint8_t scales[12];
  std::uint16_t d;
};
static_assert(sizeof(block_q3_k) == 110);

// Q4_K: 8 sub-blocks of 32; 6-bit scales and mins packed in 12 bytes; w = d*sc*q - dmin*m. 4.5 bpw.
struct block_q4_k {
  std::uint16_t d;
  std::uint16_t dmin;
  std::uint8_t scales[k_scale_size];
  std::uint8_t qs[qk_k / 2];
};
static_assert(sizeof(block_q4_k) == 144);

// Q5_K: Q4_K plus a fifth bit per weight in qh. 5.5 bpw.
struct block_q5_k {
  std::uint16_t d;
  std::uint16_t dmin;
  std::uint8_t scales[k_scale_size];
  std::uint8_t qh[qk_k / 8];
  std::uint8_t qs[qk_k / 2];
};
static_assert(sizeof(block_q5_k) == 176);

// Q6_K: 16 sub-blocks of 16; 4 low bits in ql, 2 high in qh; int8 scales; w = d*sc*(q - 32). 6.5625 bpw.
struct block_q6_k {
  std::uint8_t ql[qk_k / 2];
  std::uint8_t qh[qk_k / 4];
  std::int8_t scales[qk_k / 16];
  std::uint16_t d;
};
static_assert(sizeof(block_q6_k) == 210);

}  // namespace qforge::quant
