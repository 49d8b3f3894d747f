// SPDX-License-Identifier: MIT
// The engine kernels (engine/kernels.hpp) for AVX2 + FMA + F16C. Built with -mavx2 -mfma -mf16c;
// reached only when dispatch.hpp's probe says the CPU has those.
#include "qforge/engine/kernels.hpp"

#if !XSIMD_WITH_AVX2 || !defined(__FMA__) || !defined(__F16C__)
#error "engine_avx2.cpp must be compiled with -mavx2 -mfma -mf16c (see kernels/CMakeLists.txt)"
#endif

namespace qforge::engine::detail {
const ops& ops_avx2() noexcept {
  static constexpr ops table = make_ops<xsimd::avx2>("avx2");
  return table;
}
}  // namespace qforge::engine::detail
