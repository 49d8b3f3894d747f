// SPDX-License-Identifier: MIT
// The AArch64 Advanced SIMD instantiation of every simd.hpp kernel (NEON is baseline there, so no
// extra flags beyond -ffp-contract=off, which matters: AArch64 compilers fuse a*b+c by default).
#include "qforge/backend/dispatch.hpp"

#if !XSIMD_WITH_NEON64
#error "isa_neon.cpp is for AArch64 targets only"
#endif

namespace qforge::backend::detail {
const kernel_table& table_neon() noexcept {
  static constexpr kernel_table table = make_table<xsimd::neon64>();
  return table;
}
}  // namespace qforge::backend::detail
