// SPDX-License-Identifier: MIT
// The AVX-512 (F, BW, DQ, VL) instantiation of every simd.hpp kernel, built with those -m flags and
// -ffp-contract=off; only reached when dispatch.hpp's probe says the CPU has them.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the masked-off source, which its
// -Wmaybe-uninitialized reports once they are inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // same bug, when the caller is not inlined
#endif
#include "qforge/backend/dispatch.hpp"

#if !XSIMD_WITH_AVX512BW
#error "isa_avx512.cpp must be compiled with -mavx512f -mavx512bw (see kernels/CMakeLists.txt)"
#endif

namespace qforge::backend::detail {
const kernel_table& table_avx512() noexcept {
  static constexpr kernel_table table = make_table<xsimd::avx512bw>();
  return table;
}
}  // namespace qforge::backend::detail
