// SPDX-License-Identifier: MIT
// The long-lived threads behind tokenizer::encode_batch. The BPE word cache and the PCRE2 match
// scratch are per thread, so threads started per batch would begin every batch cold; HF's
// encode_batch runs on rayon's global pool for the same reason. Workers sleep on a condition
// variable between batches; one batch runs at a time (callers that find the pool busy start their
// own threads instead).
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qforge::tokenize {

class worker_pool {
 public:
  explicit worker_pool(unsigned threads) {
    for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~worker_pool() {
    {
      const std::lock_guard<std::mutex> g(m_);
      stop_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  // Threads that run a job: the workers and the caller.
  [[nodiscard]] unsigned size() const noexcept {
    return static_cast<unsigned>(workers_.size()) + 1;
  }

  // Runs job() on every thread of the pool, the caller included; returns when all are done.
  // job must not throw.
  void run(const std::function<void()>& job) {
    {
      const std::lock_guard<std::mutex> g(m_);
      job_ = &job;
      running_ = workers_.size();
      ++generation_;
    }
    wake_.notify_all();
    job();
    std::unique_lock<std::mutex> lock(m_);
    done_.wait(lock, [&] { return running_ == 0; });
    job_ = nullptr;
  }

  // Shared by all tokenizers of the process: hardware_concurrency() threads.
  static worker_pool& shared() {
    static worker_pool pool(std::max(1u, std::thread::hardware_concurrency()));
    return pool;
  }

 private:
  void loop() {
    std::size_t seen = 0;
    for (;;) {
      const std::function<void()>* job;
      {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
      }
      (*job)();
      const std::lock_guard<std::mutex> g(m_);
      if (--running_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable wake_, done_;
  const std::function<void()>* job_ = nullptr;
  std::size_t running_ = 0, generation_ = 0;
  bool stop_ = false;
};

}  // namespace qforge::tokenize
