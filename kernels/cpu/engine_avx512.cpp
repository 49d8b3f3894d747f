// SPDX-License-Identifier: MIT
// The engine kernels (engine/kernels.hpp) for AVX-512 (F/BW/DQ/VL, with FMA and F16C). Reached only
// when dispatch.hpp's probe says the CPU has those.
#include "qforge/engine/kernels.hpp"

#if !XSIMD_WITH_AVX512BW
#error "engine_avx512.cpp must be compiled with -mavx512f -mavx512bw (see kernels/CMakeLists.txt)"
#endif

namespace qforge::engine::detail {
const ops& ops_avx512() noexcept {
  static constexpr ops table = make_ops<xsimd::avx512bw>("avx512");
  return table;
}
}  // namespace qforge::engine::detail
