// SPDX-License-Identifier: MIT
// Encodes and decodes a few Q8_0 rows on every backend the installed qforge::kernels provides and
// checks that each writes the scalar bytes. Exit code 0 on success.
#include <cmath>
#include <cstdio>
#include <vector>

#include "qforge/quant/encode.hpp"

int main() {
  using namespace qforge;
  const std::int64_t rows = 4, cols = 256;
  std::vector<float> x(rows * cols);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  const std::size_t bytes = quant::row_bytes(quant::qtype::q8_0, cols) * rows;
  std::vector<std::byte> want(bytes);
  quant::encode_rows(*backend::find(backend::id::scalar), quant::qtype::q8_0, x, rows, cols, want);
  int failures = 0;
  for (const auto& b : backend::compiled()) {
    if (!b.available() || b.kernels() == nullptr) continue;
    std::vector<std::byte> got(bytes);
    quant::encode_rows(b, quant::qtype::q8_0, x, rows, cols, got);
    const bool same = got == want;
    std::printf("%-8s %s\n", std::string(b.name()).c_str(), same ? "same bytes" : "DIFFERENT");
    failures += same ? 0 : 1;
  }
  std::printf("selected backend: %s\n", std::string(backend::selected().name()).c_str());
  return failures == 0 ? 0 : 1;
}
