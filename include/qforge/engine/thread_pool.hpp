// SPDX-License-Identifier: MIT
// A fixed set of worker threads for the forward pass. A decode step issues dozens of small parallel
// regions per layer (one per matrix product), so starting threads per region, as quant/encode.hpp
// can afford for whole tensors, would cost more than the work: workers stay alive, spin briefly
// after each region (the next one usually follows within microseconds), then sleep on a condition
// variable so an idle engine costs no CPU. A region is cut into chunks that threads claim from a
// shared counter, and a worker takes part only if it registers before the caller closes the region:
// on a loaded machine a descheduled worker then costs nothing (the others take its chunks) instead
// of stalling every region until the scheduler runs it. Each output is computed by exactly one
// chunk with the same code, so results never depend on the thread count or on timing.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace qforge::engine {

class thread_pool {
 public:
  // n_threads <= 0: one per hardware thread. The calling thread is one of them.
  explicit thread_pool(int n_threads = 0) {
    const std::size_t n = n_threads > 0 ? static_cast<std::size_t>(n_threads)
                                        : std::max(1u, std::thread::hardware_concurrency());
    workers_.reserve(n - 1);
    for (std::size_t i = 1; i < n; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~thread_pool() {
    {
      std::lock_guard lock(mutex_);
      stop_.store(true, std::memory_order_release);
      state_.fetch_add(generation_one, std::memory_order_acq_rel);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

  // One caller at a time: parallel_for / run from two threads at once on one pool is a data race.

  // Calls fn(begin, end) over disjoint ranges covering [0, n), each a multiple of `grain` long
  // (the last may be shorter), on the pool's threads; returns when all ranges are done. fn must
  // not throw (the kernels are noexcept); a throw ends the program.
  template <class Fn>
  void parallel_for(std::size_t n, std::size_t grain, Fn&& fn) {
    if (n == 0) return;
    grain = std::max<std::size_t>(grain, 1);
    // About four chunks per thread: small enough to balance, large enough to amortise the claim.
    const std::size_t units = (n + grain - 1) / grain;
    const std::size_t per = std::max<std::size_t>(1, units / (4 * size()));
    const std::size_t chunk = per * grain;
    const std::size_t chunks = (n + chunk - 1) / chunk;
    run_chunks(chunks, [&](std::size_t c) { fn(c * chunk, std::min(n, (c + 1) * chunk)); });
  }

  // Calls fn(i) once for each i in [0, size()) across the pool and returns when all are done.
  // Calls are spread over the threads but not pinned to them: a thread that is slow to start has
  // its share taken by the others, so two calls may run on one thread.
  template <class Fn>
  void run(Fn&& fn) {
    run_chunks(size(), fn);
  }

 private:
  static constexpr std::uint64_t active_mask = (std::uint64_t{1} << 31) - 1;
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 31;
  static constexpr std::uint64_t field_mask = active_mask | closed_bit;
  static constexpr std::uint64_t generation_one = std::uint64_t{1} << 32;

  struct job {
    void (*call)(void*, std::size_t) = nullptr;
    void* ctx = nullptr;
    std::size_t chunks = 0;
    std::atomic<std::size_t> next{0};
  };

  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  template <class Body>
  void run_chunks(std::size_t chunks, Body&& body) {
    if (workers_.empty() || chunks == 1) {
      for (std::size_t c = 0; c < chunks; ++c) body(c);
      return;
    }
    job_.call = [](void* ctx, std::size_t c) {
      (*static_cast<std::remove_reference_t<Body>*>(ctx))(c);
    };
    job_.ctx = &body;
    job_.chunks = chunks;
    job_.next.store(0, std::memory_order_relaxed);
    // Open the next generation. seq_cst store / load pairs with the sleeper's increment and
    // re-check: a worker either sees the new generation or is counted here (one missed would
    // only sit out this region).
    const std::uint64_t gen =
        (state_.load(std::memory_order_relaxed) & ~field_mask) + generation_one;
    state_.store(gen);
    if (sleepers_.load() != 0) {
      std::lock_guard lock(mutex_);
      wake_.notify_all();
    }
    work();
    // Close it: no worker may register any more; wait for those that did.
    std::uint64_t s = state_.fetch_or(closed_bit, std::memory_order_acq_rel) | closed_bit;
    while ((s & active_mask) != 0) {
      pause();
      s = state_.load(std::memory_order_acquire);
    }
  }

  void work() {
    for (;;) {
      const std::size_t c = job_.next.fetch_add(1, std::memory_order_relaxed);
      if (c >= job_.chunks) return;
      job_.call(job_.ctx, c);
    }
  }

  void loop() {
    // The generation at construction (0), not whatever the state is when this thread first runs:
    // a region opened -- or the destructor's stop -- before a slow-starting worker got here would
    // otherwise count as already seen, and the worker would sleep through the stop forever.
    std::uint64_t seen = 0;
    for (;;) {
      std::uint64_t s = state_.load(std::memory_order_acquire);
      for (int spin = 0; (s & ~field_mask) == seen && spin < 4000; ++spin) {
        pause();
        s = state_.load(std::memory_order_acquire);
      }
      if ((s & ~field_mask) == seen) {
        std::unique_lock lock(mutex_);
        sleepers_.fetch_add(1);
        wake_.wait(lock, [&] { return (state_.load() & ~field_mask) != seen; });
        sleepers_.fetch_sub(1);
        s = state_.load(std::memory_order_acquire);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = s & ~field_mask;
      // Register for this generation unless it was closed (or replaced) meanwhile.
      while ((s & ~field_mask) == seen && (s & closed_bit) == 0) {
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
          work();
          state_.fetch_sub(1, std::memory_order_acq_rel);
          break;
        }
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  // generation (high 32 bits) | closed (bit 31) | registered workers (low 31 bits)
  std::atomic<std::uint64_t> state_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  job job_;
};

}  // namespace qforge::engine
