// SPDX-License-Identifier: MIT
// The one exception type of qforge. Readers have dozens of failure points; throwing keeps parsing
// straight-line, and every message carries the file (and byte offset when known) so a tool can print
// one line a user can act on: "model.gguf: byte 1184: tensor 'blk.3.attn_q.weight': ...".
#pragma once
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace qforge {

template <class... Parts>
std::string cat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

class error : public std::runtime_error {
 public:
  enum class kind { io, format, unsupported, argument, cuda, internal };

  error(kind k, std::string path, std::optional<std::uint64_t> offset, std::string message)
      : std::runtime_error(compose(path, offset, message)),
        kind_(k),
        path_(std::move(path)),
        offset_(offset),
        message_(std::move(message)) {}
  error(kind k, std::string path, std::string message)
      : error(k, std::move(path), std::nullopt, std::move(message)) {}
  error(kind k, std::string message) : error(k, std::string{}, std::nullopt, std::move(message)) {}

  [[nodiscard]] kind which() const noexcept { return kind_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] std::optional<std::uint64_t> offset() const noexcept { return offset_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }

 private:
  static std::string compose(const std::string& path, std::optional<std::uint64_t> offset,
                             const std::string& message) {
    std::string out;
    if (!path.empty()) out += path + ": ";
    if (offset) out += "byte " + std::to_string(*offset) + ": ";
    return out + message;
  }

  kind kind_;
  std::string path_;
  std::optional<std::uint64_t> offset_;
  std::string message_;
};

inline const char* to_string(error::kind k) noexcept {
  switch (k) {
    case error::kind::io: return "io";
    case error::kind::format: return "format";
    case error::kind::unsupported: return "unsupported";
    case error::kind::argument: return "argument";
    case error::kind::cuda: return "cuda";
    case error::kind::internal: return "internal";
  }
  return "?";
}

}  // namespace qforge

// For invariants no input can reach; stays on in release builds because a silent wrong byte in a
// quantized model is worse than a crash with a message.
#define QFORGE_ASSERT(cond)                                                              \
  do {                                                                                   \
    if (!(cond))                                                                         \
      throw ::qforge::error(::qforge::error::kind::internal,                             \
                            ::qforge::cat(__FILE__, ":", __LINE__, ": assertion failed: ", \
                                          #cond));                                       \
  } while (0)
