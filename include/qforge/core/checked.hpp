// SPDX-License-Identifier: MIT
// Overflow-checked size arithmetic for values that come from files. A hostile header can claim
// 2^63 elements; every shape product and offset sum goes through these before anything is allocated.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "qforge/core/error.hpp"

namespace qforge {

inline std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const std::string& path = {},
                                 const char* what = "size") {
  std::uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw error(error::kind::format, path, cat(what, " overflows 64 bits (", a, " x ", b, ")"));
  return r;
}

inline std::uint64_t checked_add(std::uint64_t a, std::uint64_t b, const std::string& path = {},
                                 const char* what = "size") {
  std::uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    throw error(error::kind::format, path, cat(what, " overflows 64 bits (", a, " + ", b, ")"));
  return r;
}

// Product of dimensions, each already known to be non-negative.
inline std::uint64_t checked_product(std::span<const std::uint64_t> dims,
                                     const std::string& path = {}, const char* what = "shape") {
  std::uint64_t n = 1;
  for (auto d : dims) n = checked_mul(n, d, path, what);
  return n;
}

}  // namespace qforge
