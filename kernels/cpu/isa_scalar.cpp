// SPDX-License-Identifier: MIT
// The scalar (reference) table and the registry of every backend compiled into qforge::kernels.
// Built with baseline flags. It is also what pulls the ISA objects out of the static library, so it
// is linked before them: the inline helpers every TU emits (fp16 conversion, the reference block
// encoder used as the NaN fallback) then resolve to this baseline copy, never to one compiled with
// -mavx512f that an older CPU could not run.
#include <array>

#include "qforge/backend/dispatch.hpp"

namespace qforge::backend::detail {

#if defined(QFORGE_KERNELS_AVX2)
const kernel_table& table_avx2() noexcept;
#endif
#if defined(QFORGE_KERNELS_AVX512)
const kernel_table& table_avx512() noexcept;
#endif
#if defined(QFORGE_KERNELS_NEON)
const kernel_table& table_neon() noexcept;
#endif

namespace {
constexpr kernel_table scalar_table = make_table<scalar>();

// Slowest first: pick() takes the last available CPU entry.
auto make_backends() noexcept {
  return std::array{
      entry{id::scalar, true, &scalar_table},
#if defined(QFORGE_KERNELS_NEON)
      entry{id::neon, cpu_supports(id::neon), &table_neon()},
#endif
#if defined(QFORGE_KERNELS_AVX2)
      entry{id::avx2, cpu_supports(id::avx2), &table_avx2()},
#endif
#if defined(QFORGE_KERNELS_AVX512)
      entry{id::avx512, cpu_supports(id::avx512), &table_avx512()},
#endif
#if defined(QFORGE_HAVE_CUDA_KERNELS)
      entry{id::cuda, cuda_available(), nullptr},
#endif
  };
}
}  // namespace

std::span<const entry> library_backends() noexcept {
  static const auto backends = make_backends();
  return backends;
}

}  // namespace qforge::backend::detail
