// SPDX-License-Identifier: MIT
// The one place that looks at the CPU. A kernel_table holds one function pointer per kernel for one
// backend; make_table<Backend>() fills it from the header templates (ref.hpp for `scalar`, simd.hpp
// for an xsimd arch). Linked with qforge::kernels (QFORGE_HAVE_KERNELS), the tables come from
// kernels/cpu/isa_*.cpp, each compiled with its ISA's flags, and the CPU is probed at run time;
// header-only, the tables are scalar plus the xsimd arch the compiler was told to target. Either way
// the choice is made once, honours QFORGE_BACKEND=scalar|neon|avx2|avx512|cuda, and compiled() lists
// every backend of the build with its availability so tests can run each against the reference.
#pragma once
#include <array>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "qforge/backend/tags.hpp"
#include "qforge/core/error.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/families.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::backend {

// Kernels never throw: callers (quant/encode.hpp) validate sizes first. Type-erased so that one
// table serves every family: `x` holds n floats of whole rows; when `imatrix` is not null, x is exactly
// one row and imatrix holds one importance weight per column.
using encode_kernel = void (*)(const float* x, std::size_t n, std::byte* y,
                               const float* imatrix) noexcept;
using decode_kernel = void (*)(const std::byte* x, std::size_t n, float* y) noexcept;

struct type_kernels {
  encode_kernel encode = nullptr;
  decode_kernel decode = nullptr;
  std::size_t block_align = 1;
};

inline constexpr std::size_t max_qtype_id = 64;

struct kernel_table {
  id which = id::scalar;
  std::array<type_kernels, max_qtype_id> types{};
  [[nodiscard]] constexpr const type_kernels& operator[](quant::qtype t) const noexcept {
    return types[static_cast<std::size_t>(t) % max_qtype_id];
  }
};

template <class>
inline constexpr bool dependent_false = false;

// xsimd arch (or the scalar tag) -> backend id. fma3<avx2> derives from avx2, so it counts as avx2.
template <class Backend>
constexpr id id_of() noexcept {
  if constexpr (std::is_same_v<Backend, scalar>) return id::scalar;
  else if constexpr (std::is_base_of_v<xsimd::avx512bw, Backend>) return id::avx512;
  else if constexpr (std::is_base_of_v<xsimd::avx2, Backend>) return id::avx2;
  else if constexpr (std::is_base_of_v<xsimd::neon64, Backend>) return id::neon;
  else static_assert(dependent_false<Backend>, "qforge has no backend for this xsimd arch");
}

// One family's kernels on one backend: the reference for `scalar`, the family's SIMD body otherwise.
template <class Backend, class Family>
constexpr type_kernels kernels_of() noexcept {
  using block = typename Family::block;
  constexpr std::size_t elems = quant::traits(Family::type)->block_elems;
  static_assert(sizeof(block) == quant::traits(Family::type)->block_bytes,
                "block struct disagrees with types.hpp");
  type_kernels k;
  k.encode = [](const float* x, std::size_t n, std::byte* y, const float* imatrix) noexcept {
    const std::span<const float> xs{x, n};
    const std::span<block> ys{reinterpret_cast<block*>(y), n / elems};
    if constexpr (std::is_same_v<Backend, scalar>) Family::encode_ref(xs, ys, imatrix);
    else Family::encode_simd(Backend{}, xs, ys, imatrix);
  };
  k.decode = [](const std::byte* x, std::size_t n, float* y) noexcept {
    const std::span<const block> xs{reinterpret_cast<const block*>(x), n / elems};
    if constexpr (std::is_same_v<Backend, scalar>) Family::decode_ref(xs, {y, n});
    else Family::decode_simd(Backend{}, xs, {y, n});
  };
  k.block_align = alignof(block);
  return k;
}

template <class Backend, class... Families>
constexpr void fill_table(kernel_table& t, quant::family_list<Families...>) noexcept {
  ((t.types[static_cast<std::size_t>(Families::type)] = kernels_of<Backend, Families>()), ...);
}

// Instantiate with Backend = scalar in any TU, with an xsimd arch only in a TU compiled for it.
template <class Backend>
constexpr kernel_table make_table() noexcept {
  kernel_table t;
  t.which = id_of<Backend>();
  fill_table<Backend>(t, quant::all_families{});
  return t;
}

// Typed calls into a table, for tests and benchmarks that hold blocks rather than bytes.
template <class Family>
void encode_with(const kernel_table& k, std::span<const float> x,
                 std::span<typename Family::block> y, const float* imatrix = nullptr) noexcept {
  k[Family::type].encode(x.data(), x.size(), reinterpret_cast<std::byte*>(y.data()), imatrix);
}
template <class Family>
void decode_with(const kernel_table& k, std::span<const typename Family::block> x,
                 std::span<float> y) noexcept {
  k[Family::type].decode(reinterpret_cast<const std::byte*>(x.data()), y.size(), y.data());
}

// One backend of this build. `kernels` is null for cuda, which is reached through
// quant::encode_rows (host buffers are staged to the device there).
class entry {
 public:
  constexpr entry(id which, bool available, const kernel_table* kernels) noexcept
      : which_(which), available_(available), kernels_(kernels) {}
  [[nodiscard]] constexpr id which() const noexcept { return which_; }
  [[nodiscard]] constexpr std::string_view name() const noexcept { return backend::name(which_); }
  // Compiled in *and* usable here (CPU has the ISA / a CUDA device is present).
  [[nodiscard]] constexpr bool available() const noexcept { return available_; }
  [[nodiscard]] constexpr const kernel_table* kernels() const noexcept { return kernels_; }

 private:
  id which_;
  bool available_;
  const kernel_table* kernels_;
};

// What this CPU can run, as the kernels' compile flags require (isa_avx2.cpp: -mavx2 -mfma -mf16c;
// isa_avx512.cpp: those plus -mavx512f/bw/dq/vl). GCC's and Clang's probe also checks that the OS saves the
// wide registers (XGETBV), which xsimd 8's cpuid probe does not.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
// CPUID.1:ECX bit 29. Asked of cpuid directly: clang before 18 rejects "f16c" in
// __builtin_cpu_supports, and F16C adds no register state beyond what the AVX2 probe checks.
inline bool has_f16c() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 29)) != 0;
}
#endif

inline bool cpu_supports(id b) noexcept {
  switch (b) {
    case id::scalar: return true;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    case id::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case id::avx512:
      return cpu_supports(id::avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#elif defined(__aarch64__)
    case id::neon: return true;  // Advanced SIMD is mandatory on AArch64
#endif
    default: return false;
  }
}

// QFORGE_BACKEND, read once per call; nullopt when unset or empty. A value that names no backend
// throws rather than silently running something else.
inline std::optional<id> backend_override() {
  const char* env = std::getenv("QFORGE_BACKEND");
  if (env == nullptr || *env == '\0') return std::nullopt;
  if (auto b = parse(env)) return b;
  throw error(error::kind::argument,
              cat("QFORGE_BACKEND=", env, ": expected scalar, neon, avx2, avx512 or cuda"));
}

// `want` if given (it must be compiled in and available, else kind::unsupported); otherwise the
// last available CPU entry, the list being ordered slowest first.
inline const entry& pick(std::span<const entry> list, std::optional<id> want) {
  if (want) {
    for (const entry& e : list) {
      if (e.which() != *want) continue;
      if (!e.available())
        throw error(error::kind::unsupported,
                    cat("QFORGE_BACKEND=", name(*want), ": not usable on this machine"));
      return e;
    }
    throw error(error::kind::unsupported,
                cat("QFORGE_BACKEND=", name(*want), ": not compiled into this build"));
  }
  const entry* best = nullptr;
  for (const entry& e : list)
    if (e.available() && e.kernels() != nullptr) best = &e;
  QFORGE_ASSERT(best != nullptr);  // scalar is always compiled and available
  return *best;
}

#if defined(QFORGE_HAVE_KERNELS)
namespace detail {
// kernels/cpu/isa_scalar.cpp: every compiled backend, slowest first, availability probed once.
std::span<const entry> library_backends() noexcept;
#if defined(QFORGE_HAVE_CUDA_KERNELS)
// kernels/cuda/runtime.cu
bool cuda_available() noexcept;
bool cuda_can_encode(quant::qtype t) noexcept;
// Host buffers in and out; stages through device memory. Throws error::kind::cuda.
void cuda_encode_rows(quant::qtype t, std::span<const float> src, std::span<std::byte> dst);
#endif
}  // namespace detail
#endif

// The mode decides where the tables come from; separate inline namespaces keep a header-only TU and
// a qforge::kernels TU in one program from sharing (different) definitions of these functions.
#if defined(QFORGE_HAVE_KERNELS)
inline namespace with_kernels {
inline std::span<const entry> compiled() noexcept { return detail::library_backends(); }
}  // namespace with_kernels
#else
inline namespace header_only {
// The arch this TU was compiled for, when qforge has kernels for it.
#if XSIMD_WITH_AVX512BW
#define QFORGE_DETAIL_NATIVE_ARCH xsimd::avx512bw
#elif XSIMD_WITH_AVX2
#define QFORGE_DETAIL_NATIVE_ARCH xsimd::avx2
#elif XSIMD_WITH_NEON64
#define QFORGE_DETAIL_NATIVE_ARCH xsimd::neon64
#endif

inline std::span<const entry> compiled() noexcept {
  static constexpr kernel_table scalar_table = make_table<scalar>();
#if defined(QFORGE_DETAIL_NATIVE_ARCH)
  static constexpr kernel_table native_table = make_table<QFORGE_DETAIL_NATIVE_ARCH>();
  // Compiled for it, so the CPU running it has it (or the program would not start).
  static constexpr entry list[] = {{id::scalar, true, &scalar_table},
                                   {native_table.which, true, &native_table}};
#else
  static constexpr entry list[] = {{id::scalar, true, &scalar_table}};
#endif
  return list;
}
#undef QFORGE_DETAIL_NATIVE_ARCH
}  // namespace header_only
#endif

// The backend quant::encode_rows uses: QFORGE_BACKEND if set, else the fastest available CPU one.
// Decided on first use. Throws (then and on every later call) if QFORGE_BACKEND is unusable.
inline const entry& selected() {
  static const entry& chosen = pick(compiled(), backend_override());
  return chosen;
}

// The CPU kernels in use: selected()'s, or the best CPU backend when cuda is selected (work that has
// no CUDA path, such as decoding, runs there).
inline const kernel_table& cpu_kernels() {
  const entry& e = selected();
  if (e.kernels() != nullptr) return *e.kernels();
  static const kernel_table& best_cpu = *pick(compiled(), std::nullopt).kernels();
  return best_cpu;
}

// The entry for `b` in this build, or nullptr when it was not compiled in.
inline const entry* find(id b) noexcept {
  for (const entry& e : compiled())
    if (e.which() == b) return &e;
  return nullptr;
}

}  // namespace qforge::backend
