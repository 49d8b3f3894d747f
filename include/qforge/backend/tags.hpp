// SPDX-License-Identifier: MIT
// Backends as values and types. `id` names every backend qforge can be built with (the spelling of
// QFORGE_BACKEND); `scalar` and `cuda` are tag types, and the SIMD backends are xsimd's own arch
// types (xsimd::avx2, xsimd::avx512bw, xsimd::neon64), mapped to ids in dispatch.hpp. This header
// pulls in neither xsimd nor CUDA so that .cu files and plain tools can name a backend.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace qforge::backend {

// Order is preference among CPU backends (later = faster); cuda is never chosen implicitly.
enum class id : std::uint8_t { scalar, neon, avx2, avx512, cuda };

inline constexpr std::array<id, 5> all_ids{id::scalar, id::neon, id::avx2, id::avx512, id::cuda};

// The reference loops of ref.hpp.
struct scalar {
  static constexpr id which = id::scalar;
};
// The kernels of quant/*/cuda.cuh, reached through kernels/cuda/*.cu.
struct cuda {
  static constexpr id which = id::cuda;
};

constexpr std::string_view name(id b) noexcept {
  switch (b) {
    case id::scalar: return "scalar";
    case id::neon: return "neon";
    case id::avx2: return "avx2";
    case id::avx512: return "avx512";
    case id::cuda: return "cuda";
  }
  return "?";
}

// Inverse of name(); nullopt for anything else (callers report the bad value).
constexpr std::optional<id> parse(std::string_view s) noexcept {
  for (id b : all_ids)
    if (name(b) == s) return b;
  return std::nullopt;
}

constexpr bool is_cpu(id b) noexcept { return b != id::cuda; }

}  // namespace qforge::backend
