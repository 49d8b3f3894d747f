// SPDX-License-Identifier: MIT
// Peak resident memory of one phase of the process (Linux): the kernel's high-water mark VmHWM is
// reset by writing "5" to /proc/self/clear_refs, so a probe started before an artefact is loaded
// and read after it has run reports what that artefact needed (weights paged in from the memory
// map, KV cache, activations) on top of what was resident before. Where /proc is missing or the
// reset is refused the probe says so (available() false) instead of reporting a wrong number.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>

namespace qforge::report {

namespace detail {

// The "VmHWM:" / "VmRSS:" line of /proc/self/status in bytes; 0 when unreadable.
inline std::uint64_t proc_status_kib(const char* key) {
  std::ifstream in("/proc/self/status");
  const std::string k(key);
  for (std::string line; std::getline(in, line);)
    if (line.compare(0, k.size(), k) == 0) return std::stoull(line.substr(k.size())) * 1024;
  return 0;
}

}  // namespace detail

class peak_memory_probe {
 public:
  peak_memory_probe() {
    std::ofstream reset("/proc/self/clear_refs");
    reset << "5";
    reset.flush();
    ok_ = static_cast<bool>(reset) && detail::proc_status_kib("VmHWM:") != 0;
    base_ = detail::proc_status_kib("VmRSS:");
  }
  [[nodiscard]] bool available() const noexcept { return ok_; }
  // Bytes of the high-water mark above the resident size at construction.
  [[nodiscard]] std::uint64_t peak_above_start() const {
    const auto hwm = detail::proc_status_kib("VmHWM:");
    return hwm > base_ ? hwm - base_ : 0;
  }
  // The whole process's high-water mark since construction.
  [[nodiscard]] static std::uint64_t process_peak() { return detail::proc_status_kib("VmHWM:"); }

 private:
  bool ok_ = false;
  std::uint64_t base_ = 0;
};

}  // namespace qforge::report
