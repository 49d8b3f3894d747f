// SPDX-License-Identifier: MIT
// What the standalone CUDA checks (tests/quant/q8_0_cuda_main.cu, tests/quant/blocks_cuda_main.cu,
// the engine harness tests/engine/cuda_engine_*.cu; each built with plain nvcc by a script in
// bench/device/) share: the pass / fail counters with expect(), and an owning device buffer.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "qforge/backend/cuda_check.hpp"

namespace qforge_cuda_check {

inline int failures = 0, passes = 0;

// Counts a check; a failed one is printed with `what`.
inline void expect(bool ok, const std::string& what) {
  if (ok) {
    ++passes;
    return;
  }
  std::printf("FAIL %s\n", what.c_str());
  ++failures;
}

// count elements of T in device memory (at least one allocated), freed with the buffer.
template <class T>
struct dev {
  T* p = nullptr;
  std::size_t n = 0;
  dev() = default;
  explicit dev(std::size_t count) : n(count) {
    QFORGE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p), std::max<std::size_t>(count, 1) * sizeof(T)));
  }
  ~dev() { cudaFree(p); }
  dev(dev&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr, o.n = 0; }
  dev& operator=(dev&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  void up(const std::vector<T>& v) {
    QFORGE_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> down() const {
    std::vector<T> v(n);
    QFORGE_CUDA_CHECK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};

}  // namespace qforge_cuda_check
