// SPDX-License-Identifier: MIT
// The engine's thread pool: every index visited once whatever the thread count, and pools that are
// created and destroyed at once (before their workers have even started) shut down -- a worker that
// started late used to take the destructor's stop for an old generation and sleep forever, which
// hung the process (found by the LoRA test, which makes a pool per call).
#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "qforge/engine/thread_pool.hpp"

using qforge::engine::thread_pool;

TEST_CASE("thread_pool: each index exactly once", "[thread_pool]") {
  for (int threads : {1, 2, 3, 8}) {
    thread_pool pool(threads);
    for (std::size_t n : {1u, 7u, 100u, 4097u}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, 3, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (std::size_t i = 0; i < n; ++i) REQUIRE(hits[i].load() == 1);
    }
  }
}

TEST_CASE("thread_pool: short-lived pools shut down", "[thread_pool]") {
  std::size_t done = 0;
  for (int round = 0; round < 500; ++round) {
    thread_pool idle(4);  // destroyed before its workers may have run at all
    thread_pool busy(3);
    std::atomic<int> sum{0};
    busy.parallel_for(16, 1, [&](std::size_t b, std::size_t e) { sum += static_cast<int>(e - b); });
    REQUIRE(sum.load() == 16);
    ++done;
  }
  CHECK(done == 500);
}
