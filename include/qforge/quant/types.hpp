// SPDX-License-Identifier: MIT
// ggml tensor types as GGUF stores them (the numeric ids are part of the file format) and the
// llama_ftype values written to `general.file_type`. Traits give elements per block and bytes per
// block for every type a GGUF file may contain, so readers can validate sizes of types qforge does not
// encode itself.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace qforge::quant {

enum class qtype : std::uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22,
  iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
  tq1_0 = 34, tq2_0 = 35, mxfp4 = 39,
};

struct qtype_traits {
  std::string_view name;      // ggml's spelling, e.g. "q4_K"
  std::uint32_t block_elems;  // elements per block (1 for plain types)
  std::uint32_t block_bytes;  // bytes per block
};

// nullopt for ids that are not (or no longer) valid ggml types.
constexpr std::optional<qtype_traits> traits(qtype t) noexcept {
  switch (t) {
    case qtype::f32: return qtype_traits{"f32", 1, 4};
    case qtype::f16: return qtype_traits{"f16", 1, 2};
    case qtype::q4_0: return qtype_traits{"q4_0", 32, 18};
    case qtype::q4_1: return qtype_traits{"q4_1", 32, 20};
    case qtype::q5_0: return qtype_traits{"q5_0", 32, 22};
    case qtype::q5_1: return qtype_traits{"q5_1", 32, 24};
    case qtype::q8_0: return qtype_traits{"q8_0", 32, 34};
    case qtype::q8_1: return qtype_traits{"q8_1", 32, 36};
    case qtype::q2_k: return qtype_traits{"q2_K", 256, 84};
    case qtype::q3_k: return qtype_traits{"q3_K", 256, 110};
    case qtype::q4_k: return qtype_traits{"q4_K", 256, 144};
    case qtype::q5_k: return qtype_traits{"q5_K", 256, 176};
    case qtype::q6_k: return qtype_traits{"q6_K", 256, 210};
    case qtype::q8_k: return qtype_traits{"q8_K", 256, 292};
    case qtype::iq2_xxs: return qtype_traits{"iq2_xxs", 256, 66};
    case qtype::iq2_xs: return qtype_traits{"iq2_xs", 256, 74};
    case qtype::iq3_xxs: return qtype_traits{"iq3_xxs", 256, 98};
    case qtype::iq1_s: return qtype_traits{"iq1_s", 256, 50};
    case qtype::iq4_nl: return qtype_traits{"iq4_nl", 32, 18};
    case qtype::iq3_s: return qtype_traits{"iq3_s", 256, 110};
    case qtype::iq2_s: return qtype_traits{"iq2_s", 256, 82};
    case qtype::iq4_xs: return qtype_traits{"iq4_xs", 256, 136};
    case qtype::i8: return qtype_traits{"i8", 1, 1};
    case qtype::i16: return qtype_traits{"i16", 1, 2};
    case qtype::i32: return qtype_traits{"i32", 1, 4};
    case qtype::i64: return qtype_traits{"i64", 1, 8};
    case qtype::f64: return qtype_traits{"f64", 1, 8};
    case qtype::iq1_m: return qtype_traits{"iq1_m", 256, 56};
    case qtype::bf16: return qtype_traits{"bf16", 1, 2};
    case qtype::tq1_0: return qtype_traits{"tq1_0", 256, 54};
    case qtype::tq2_0: return qtype_traits{"tq2_0", 256, 66};
    case qtype::mxfp4: return qtype_traits{"mxfp4", 32, 17};
  }
  return std::nullopt;
}

constexpr std::optional<qtype_traits> traits(std::uint32_t id) noexcept {
  return traits(static_cast<qtype>(id));
}

constexpr std::string_view name(qtype t) noexcept {
  const auto tr = traits(t);
  return tr ? tr->name : std::string_view{"?"};
}

// llama.cpp's llama_ftype: the value of `general.file_type`.
enum class file_type : std::uint32_t {
  all_f32 = 0, mostly_f16 = 1, mostly_q4_0 = 2, mostly_q4_1 = 3, mostly_q8_0 = 7,
  mostly_q5_0 = 8, mostly_q5_1 = 9, mostly_q2_k = 10, mostly_q3_k_s = 11, mostly_q3_k_m = 12,
  mostly_q3_k_l = 13, mostly_q4_k_s = 14, mostly_q4_k_m = 15, mostly_q5_k_s = 16,
  mostly_q5_k_m = 17, mostly_q6_k = 18, mostly_iq4_nl = 25, mostly_bf16 = 32,
};

}  // namespace qforge::quant
