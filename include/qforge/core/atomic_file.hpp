// SPDX-License-Identifier: MIT
// Atomic output: bytes go to "<final>.<pid>.qforge.tmp" next to the final path and are renamed over
// it only after a successful flush + fsync, so an interrupted run leaves either nothing or the
// previous complete artefact under the final name. The process id keeps two processes writing the
// same output from renaming each other's half-written file (the last complete one wins); the
// ".qforge.tmp" ending makes a killed run's leftover recognisable, and the next atomic_file for the
// same final path deletes the leftovers of processes that no longer exist (SIGKILL, power loss).
#pragma once
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"

namespace qforge {

class atomic_file {
 public:
  static constexpr const char* temp_suffix = ".qforge.tmp";

  // The temporary path this process uses for `final_path`.
  static std::string temp_path_for(const std::string& final_path) {
    return final_path + "." + std::to_string(::getpid()) + temp_suffix;
  }

  // Deletes "<final>.<pid>.qforge.tmp" files beside `final_path` whose process is gone, and returns
  // how many. A live pid (another writer of the same output, or an unrelated process that reused
  // the number) keeps its file: only a certainly dead writer's bytes are removed. Best effort: an
  // unreadable folder or a failed unlink is left for the user, whom the name already warns.
  static std::size_t remove_stale_temps(const std::string& final_path) {
    const auto slash = final_path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : final_path.substr(0, slash + 1);
    const std::string_view base = slash == std::string::npos
                                      ? std::string_view(final_path)
                                      : std::string_view(final_path).substr(slash + 1);
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return 0;
    std::vector<std::string> stale;
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name = e->d_name;
      const std::string_view suffix = temp_suffix;
      if (name.size() <= base.size() + 1 + suffix.size() || !name.starts_with(base) ||
          name[base.size()] != '.' || !name.ends_with(suffix))
        continue;
      const std::string_view digits =
          name.substr(base.size() + 1, name.size() - base.size() - 1 - suffix.size());
      if (digits.empty() || digits.size() > 9 ||
          digits.find_first_not_of("0123456789") != std::string_view::npos)
        continue;
      const pid_t pid = static_cast<pid_t>(std::stol(std::string(digits)));
      if (pid <= 0 || pid == ::getpid()) continue;
      if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
      stale.emplace_back(name);
    }
    ::closedir(d);
    std::size_t removed = 0;
    for (const auto& name : stale)
      removed += ::unlink((slash == std::string::npos ? name : dir + name).c_str()) == 0 ? 1 : 0;
    return removed;
  }

  explicit atomic_file(std::string final_path, std::size_t buffer_bytes = std::size_t{8} << 20)
      : final_(std::move(final_path)), temp_(temp_path_for(final_)) {
    remove_stale_temps(final_);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw error(error::kind::io, temp_, cat("cannot create: ", std::strerror(errno)));
    buffer_.reserve(buffer_bytes);
  }
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;
  ~atomic_file() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(temp_.c_str());
    }
  }

  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::byte*>(data);
    if (buffer_.size() + n > buffer_.capacity()) flush_buffer();
    if (n >= buffer_.capacity()) {
      write_all(p, n);
    } else {
      buffer_.insert(buffer_.end(), p, p + n);
    }
    written_ += n;
  }
  void write(std::span<const std::byte> bytes) { write(bytes.data(), bytes.size()); }
  void write_zeros(std::size_t n) {
    static constexpr std::byte zeros[64] = {};
    while (n > 0) {
      const std::size_t k = n < sizeof zeros ? n : sizeof zeros;
      write(zeros, k);
      n -= k;
    }
  }
  [[nodiscard]] std::size_t bytes_written() const noexcept { return written_; }
  [[nodiscard]] const std::string& final_path() const noexcept { return final_; }
  [[nodiscard]] const std::string& temp_path() const noexcept { return temp_; }

  // Flush, fsync and rename over the final path. After commit() the object is inert.
  void commit() {
    flush_buffer();
    if (::fsync(fd_) != 0) fail("cannot sync");
    if (::close(fd_) != 0) {
      fd_ = -1;
      ::unlink(temp_.c_str());
      throw error(error::kind::io, temp_, cat("cannot close: ", std::strerror(errno)));
    }
    fd_ = -1;
    if (std::rename(temp_.c_str(), final_.c_str()) != 0) {
      const int e = errno;
      ::unlink(temp_.c_str());
      throw error(error::kind::io, final_, cat("cannot rename into place: ", std::strerror(e)));
    }
  }

 private:
  void flush_buffer() {
    if (!buffer_.empty()) write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  void write_all(const std::byte* p, std::size_t n) {
    while (n > 0) {
      const ssize_t k = ::write(fd_, p, n);
      if (k < 0) {
        if (errno == EINTR) continue;
        fail("write failed");
      }
      p += k;
      n -= static_cast<std::size_t>(k);
    }
  }
  [[noreturn]] void fail(const char* what) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_.c_str());
    throw error(error::kind::io, final_,
                cat(what, ": ", std::strerror(e), " (nothing written under the final name)"));
  }

  std::string final_;
  std::string temp_;
  int fd_ = -1;
  std::vector<std::byte> buffer_;
  std::size_t written_ = 0;
};

}  // namespace qforge
