// SPDX-License-Identifier: MIT
// Progress lines on stderr ("[ 12/291] blk.3.attn_q.weight q8_0 4096x4096  ETA 41s"), results stay on
// stdout. Redrawn in place on a terminal, one line per step otherwise (logs, CI).
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace qforge::cli {

class progress {
 public:
  explicit progress(bool enabled) : enabled_(enabled), tty_(::isatty(2) != 0) {}

  void step(std::size_t done, std::size_t total, const std::string& what, double work_done = -1,
            double work_total = -1) {
    if (!enabled_) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    // ETA from the share of work done (bytes, when the caller knows them), else from the count.
    const double frac = work_total > 0 ? work_done / work_total
                                       : static_cast<double>(done) / static_cast<double>(total);
    const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    std::fprintf(stderr, "%s[%*zu/%zu] %-48s ETA %5.1fs%s", tty_ ? "\r" : "",
                 static_cast<int>(std::to_string(total).size()), done, total, what.c_str(), eta,
                 tty_ ? "" : "\n");
    if (tty_ && done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace qforge::cli
