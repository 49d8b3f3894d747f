// SPDX-License-Identifier: MIT
// The AVX2 (+FMA, F16C) instantiation of every simd.hpp kernel. Built with -mavx2 -mfma -mf16c
// -ffp-contract=off; only reached when dispatch.hpp's probe says the CPU has those.
#include "qforge/backend/dispatch.hpp"

#if !XSIMD_WITH_AVX2
#error "isa_avx2.cpp must be compiled with -mavx2 (see kernels/CMakeLists.txt)"
#endif

namespace qforge::backend::detail {
const kernel_table& table_avx2() noexcept {
  static constexpr kernel_table table = make_table<xsimd::avx2>();
  return table;
}
}  // namespace qforge::backend::detail
