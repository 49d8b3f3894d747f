// SPDX-License-Identifier: MIT
// The engine's kernel tables (engine/kernels.hpp) by backend: built with baseline flags, it refers
// to the ISA objects only when they were compiled in, and engine::cpu_ops() asks for an ISA only
// after backend/dispatch.hpp found it usable on this CPU.
#include "qforge/engine/kernels.hpp"

namespace qforge::engine::detail {

#if defined(QFORGE_KERNELS_AVX2)
const ops& ops_avx2() noexcept;
#endif
#if defined(QFORGE_KERNELS_AVX512)
const ops& ops_avx512() noexcept;
#endif

const ops* library_ops(backend::id b) noexcept {
  switch (b) {
#if defined(QFORGE_KERNELS_AVX2)
    case backend::id::avx2: return &ops_avx2();
#endif
#if defined(QFORGE_KERNELS_AVX512)
    case backend::id::avx512: return &ops_avx512();
#endif
    default: return nullptr;  // scalar / neon: the header's native table
  }
}

}  // namespace qforge::engine::detail
