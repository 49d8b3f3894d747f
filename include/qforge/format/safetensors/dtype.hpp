// SPDX-License-Identifier: MIT
// Element types of the safetensors format as the header spells them ("F16", "BF16", ...). The enum
// lists the types qforge reads and writes; the other names the format defines (U16, U32, U64,
// F8_E8M0, F4, F6_*, C64) are recognised separately so a reader can tell "valid but unsupported
// here" from "not a safetensors dtype at all".
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qforge::format::safetensors {

enum class dtype : std::uint8_t {
  f64,
  f32,
  f16,
  bf16,
  i64,
  i32,
  i16,
  i8,
  u8,
  boolean,
  f8_e4m3,
  f8_e5m2
};

namespace detail {
struct dtype_entry {
  dtype type;
  std::string_view name;
  std::size_t bytes;
};
// Indexed by the enum's value.
inline constexpr std::array<dtype_entry, 12> dtype_table{{
    {dtype::f64, "F64", 8},
    {dtype::f32, "F32", 4},
    {dtype::f16, "F16", 2},
    {dtype::bf16, "BF16", 2},
    {dtype::i64, "I64", 8},
    {dtype::i32, "I32", 4},
    {dtype::i16, "I16", 2},
    {dtype::i8, "I8", 1},
    {dtype::u8, "U8", 1},
    {dtype::boolean, "BOOL", 1},
    {dtype::f8_e4m3, "F8_E4M3", 1},
    {dtype::f8_e5m2, "F8_E5M2", 1},
}};
}  // namespace detail

// Every dtype, in enum order (handy for tests and round trips).
inline constexpr std::array<dtype, 12> all_dtypes{
    dtype::f64, dtype::f32, dtype::f16, dtype::bf16,    dtype::i64,     dtype::i32,
    dtype::i16, dtype::i8,  dtype::u8,  dtype::boolean, dtype::f8_e4m3, dtype::f8_e5m2};

// The header spelling, e.g. "BF16".
inline std::string_view to_string(dtype t) {
  const auto i = static_cast<std::size_t>(t);
  return i < detail::dtype_table.size() ? detail::dtype_table[i].name : std::string_view{"?"};
}

// Bytes per element.
inline std::size_t size_of(dtype t) noexcept {
  const auto i = static_cast<std::size_t>(t);
  return i < detail::dtype_table.size() ? detail::dtype_table[i].bytes : 0;
}

// The dtype a header name denotes; nullopt for names outside the enum (case-sensitive, as the
// format is).
inline std::optional<dtype> parse_dtype(std::string_view name) noexcept {
  for (const auto& e : detail::dtype_table)
    if (e.name == name) return e.type;
  return std::nullopt;
}

// True for dtype names the safetensors format defines but qforge does not model.
inline bool is_other_known_dtype(std::string_view name) noexcept {
  constexpr std::string_view others[] = {"U16", "U32",     "U64",     "F8_E8M0",
                                         "F4",  "F6_E2M3", "F6_E3M2", "C64"};
  for (auto o : others)
    if (o == name) return true;
  return false;
}

}  // namespace qforge::format::safetensors
