// SPDX-License-Identifier: MIT
// Atomic output: bytes go to "<final>.<pid>.qforge.tmp" next to the final path and are renamed over
// it only after a successful flush + fsync, so an interrupted run leaves either nothing or the
// previous complete artefact under the final name. The process id keeps two processes writing the
// same output from renaming each other's half-written file (the last complete one wins); the
// ".qforge.tmp" ending makes a killed run's leftover recognisable.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
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

  explicit atomic_file(std::string final_path, std::size_t buffer_bytes = std::size_t{8} << 20)
      : final_(std::move(final_path)), temp_(temp_path_for(final_)) {
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
