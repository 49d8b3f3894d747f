// SPDX-License-Identifier: MIT
// Deterministic test inputs for the quantizer tests of every family. Own PRNG (splitmix64) and
// Box-Muller, because std::normal_distribution differs between standard libraries and a failing
// case must be reproducible from its seed anywhere. Kinds mirror the golden files' cases (normal,
// outliers, constant, zeros, tiny, heavy_tail) plus inputs that only the bit-exactness of fast paths
// cares about: exact rounding ties and non-finite / subnormal values.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

namespace qforge::testdata {

class rng {
 public:
  explicit rng(std::uint64_t seed) noexcept : s_(seed ^ 0x9e3779b97f4a7c15ull) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1), 24 random bits.
  float uniform() noexcept { return static_cast<float>(next() >> 40) * 0x1p-24f; }
  std::size_t below(std::size_t n) noexcept { return static_cast<std::size_t>(next() % n); }
  float normal() noexcept {
    const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(next() >> 11) * 0x1p-53;
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  std::uint64_t s_;
};

enum class kind {
  normal,      // N(0, 0.02^2), like trained weights
  outliers,    // normal plus ~1% values 20-100x larger
  constant,    // one value per row
  zeros,       // all zero
  tiny,        // |x| ~ 1e-8: the fp16 scale underflows while the float scale does not
  heavy_tail,  // Student-t-like: normal / sqrt(uniform)
  ties,        // k + 0.5 with a block max of 127, so x * (1/d) lands exactly on .5 (rounding ties)
  special,     // NaN, +-inf, subnormals, -0 sprinkled into normal data
};

inline constexpr kind all_kinds[] = {kind::normal, kind::outliers,   kind::constant, kind::zeros,
                                     kind::tiny,   kind::heavy_tail, kind::ties,     kind::special};

constexpr std::string_view name(kind k) noexcept {
  switch (k) {
    case kind::normal: return "normal";
    case kind::outliers: return "outliers";
    case kind::constant: return "constant";
    case kind::zeros: return "zeros";
    case kind::tiny: return "tiny";
    case kind::heavy_tail: return "heavy_tail";
    case kind::ties: return "ties";
    case kind::special: return "special";
  }
  return "?";
}

// rows x cols row-major floats of one kind. `ties` assumes 32-value blocks and cols % 32 == 0.
inline std::vector<float> generate(kind k, std::size_t rows, std::size_t cols, std::uint64_t seed) {
  rng r(seed * 1000003u + static_cast<std::uint64_t>(k));
  std::vector<float> x(rows * cols);
  for (std::size_t i = 0; i < rows; ++i) {
    float* row = x.data() + i * cols;
    const float c = r.normal();
    for (std::size_t j = 0; j < cols; ++j) {
      float v = 0.0f;
      switch (k) {
        case kind::normal: v = 0.02f * r.normal(); break;
        case kind::outliers:
          v = 0.02f * r.normal();
          if (r.below(100) == 0) v *= 20.0f + 80.0f * r.uniform();
          break;
        case kind::constant: v = c; break;
        case kind::zeros: v = 0.0f; break;
        case kind::tiny: v = 1e-8f * r.normal(); break;
        case kind::heavy_tail: v = 0.02f * r.normal() / std::sqrt(r.uniform() + 1e-3f); break;
        case kind::ties:
          // One value per block is +-127 (so d = 1 exactly); the rest are +-(n + 0.5).
          if (j % 32 == 0) v = r.below(2) ? 127.0f : -127.0f;
          else v = (static_cast<float>(r.below(127)) + 0.5f) * (r.below(2) ? 1.0f : -1.0f);
          break;
        case kind::special: {
          v = 0.02f * r.normal();
          switch (r.below(64)) {
            case 0: v = std::numeric_limits<float>::quiet_NaN(); break;
            case 1: v = std::numeric_limits<float>::infinity(); break;
            case 2: v = -std::numeric_limits<float>::infinity(); break;
            case 3: v = std::numeric_limits<float>::denorm_min() * static_cast<float>(r.below(1000)); break;
            case 4: v = -0.0f; break;
            default: break;
          }
          break;
        }
      }
      row[j] = v;
    }
  }
  return x;
}

// The finite kinds that look like weights (no `ties`, which is shaped for 32-value blocks, and no
// `special`, whose non-finite values each family handles in its own way).
inline constexpr kind weight_kinds[] = {kind::normal, kind::outliers, kind::constant,
                                        kind::zeros,  kind::tiny,     kind::heavy_tail};

// weight_kinds row by row (zeros, outliers, tiny and constant rows between normal ones), for
// "every backend writes the reference bytes" tests that want one input covering the edge cases.
inline std::vector<float> weights(std::size_t rows, std::size_t cols, std::uint64_t seed) {
  std::vector<float> x(rows * cols);
  for (std::size_t i = 0; i < rows; ++i) {
    const kind k = weight_kinds[(i + seed) % (sizeof weight_kinds / sizeof weight_kinds[0])];
    const auto row = generate(k, 1, cols, seed + i);
    std::copy(row.begin(), row.end(), x.begin() + static_cast<std::ptrdiff_t>(i * cols));
  }
  return x;
}

}  // namespace qforge::testdata
