// SPDX-License-Identifier: MIT
// Streaming GGUF v3 writer. Metadata and tensor shapes are declared first, so the header (which
// holds every tensor's offset) can be written before any tensor exists; the caller then streams
// each tensor's bytes in declaration order, producing them one at a time, so memory stays about one
// tensor however large the model. Layout is the one ggml's gguf_write_to_buf and gguf-py's
// GGUFWriter produce: tensors packed in declaration order, each padded with zeros to
// `general.alignment`, data section aligned, file ending on an aligned boundary. Output goes
// through qforge::atomic_file: an error or a stream dropped before finish() leaves nothing under
// the final name. Everything written here is accepted by reader.hpp and by llama.cpp, except arrays
// of arrays, which the format allows but llama.cpp's loader rejects.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qforge/core/atomic_file.hpp"
#include "qforge/core/checked.hpp"
#include "qforge/core/error.hpp"
#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/gguf/value.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::format::gguf {

namespace detail {

// Little-endian encoders over any sink with write(const void*, size_t).
template <class Sink, class U>
void put_le(Sink& out, U v) {
  unsigned char b[sizeof(U)];
  for (std::size_t i = 0; i < sizeof(U); ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  out.write(b, sizeof(U));
}
template <class Sink>
void put_string(Sink& out, std::string_view s) {
  put_le(out, std::uint64_t{s.size()});
  out.write(s.data(), s.size());
}
template <class Sink, class T>
void put_numbers(Sink& out, std::span<const T> v) {
  if constexpr (std::endian::native == std::endian::little) {
    if (!v.empty()) out.write(v.data(), v.size() * sizeof(T));
  } else {
    using U = std::conditional_t<
        sizeof(T) == 1, std::uint8_t,
        std::conditional_t<sizeof(T) == 2, std::uint16_t,
                           std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    for (const T& x : v) put_le(out, std::bit_cast<U>(x));
  }
}

// The value's payload (not its type id).
template <class Sink>
void put_value(Sink& out, const value& v) {
  switch (v.type()) {
    case value_type::u8: put_le(out, v.as_u8()); return;
    case value_type::i8: put_le(out, static_cast<std::uint8_t>(v.as_i8())); return;
    case value_type::u16: put_le(out, v.as_u16()); return;
    case value_type::i16: put_le(out, static_cast<std::uint16_t>(v.as_i16())); return;
    case value_type::u32: put_le(out, v.as_u32()); return;
    case value_type::i32: put_le(out, static_cast<std::uint32_t>(v.as_i32())); return;
    case value_type::u64: put_le(out, v.as_u64()); return;
    case value_type::i64: put_le(out, static_cast<std::uint64_t>(v.as_i64())); return;
    case value_type::f32: put_le(out, std::bit_cast<std::uint32_t>(v.as_f32())); return;
    case value_type::f64: put_le(out, std::bit_cast<std::uint64_t>(v.as_f64())); return;
    case value_type::boolean: put_le(out, static_cast<std::uint8_t>(v.as_bool() ? 1 : 0)); return;
    case value_type::string: put_string(out, v.as_string()); return;
    case value_type::array: break;
  }
  const value_type elem = v.array_type();
  put_le(out, static_cast<std::uint32_t>(elem));
  put_le(out, std::uint64_t{v.array_size()});
  switch (elem) {
    case value_type::u8: put_numbers(out, v.numbers<std::uint8_t>()); return;
    case value_type::i8: put_numbers(out, v.numbers<std::int8_t>()); return;
    case value_type::u16: put_numbers(out, v.numbers<std::uint16_t>()); return;
    case value_type::i16: put_numbers(out, v.numbers<std::int16_t>()); return;
    case value_type::u32: put_numbers(out, v.numbers<std::uint32_t>()); return;
    case value_type::i32: put_numbers(out, v.numbers<std::int32_t>()); return;
    case value_type::f32: put_numbers(out, v.numbers<float>()); return;
    case value_type::u64: put_numbers(out, v.numbers<std::uint64_t>()); return;
    case value_type::i64: put_numbers(out, v.numbers<std::int64_t>()); return;
    case value_type::f64: put_numbers(out, v.numbers<double>()); return;
    case value_type::boolean:
      for (bool b : v.bools()) put_le(out, static_cast<std::uint8_t>(b ? 1 : 0));
      return;
    case value_type::string:
      for (const auto& s : v.strings()) put_string(out, s);
      return;
    case value_type::array:
      for (const auto& e : v.nested()) put_value(out, e);
      return;
  }
}

// What the reader would refuse, refused at set() time instead of producing an unreadable file.
inline void check_writable(const value& v, std::string_view key, int depth) {
  if (v.type() == value_type::string && v.as_string().size() > max_string_length)
    throw error(error::kind::argument,
                cat("key '", key, "': string longer than ", max_string_length));
  if (!v.is_array()) return;
  if (depth >= max_array_depth)
    throw error(error::kind::argument,
                cat("key '", key, "': arrays nested deeper than ", max_array_depth));
  if (v.array_type() == value_type::string)
    for (const auto& s : v.strings())
      if (s.size() > max_string_length)
        throw error(error::kind::argument,
                    cat("key '", key, "': string longer than ", max_string_length));
  if (v.array_type() == value_type::array)
    for (const auto& e : v.nested()) check_writable(e, key, depth + 1);
}

}  // namespace detail

class writer {
 public:
  class stream;

  // Adds or replaces a metadata entry; a new key goes last, a replaced key keeps its place.
  // `general.alignment` must be a u32 power of two. Throws error(argument). Takes a string_view so
  // the keys:: constants, literals and std::strings all bind without an overload ambiguity.
  void set(std::string_view key, value v) {
    if (key.empty()) throw error(error::kind::argument, "metadata key is empty");
    if (key.size() > max_key_length)
      throw error(error::kind::argument,
                  cat("metadata key longer than ", max_key_length, " bytes"));
    detail::check_writable(v, key, 0);
    if (key == keys::general_alignment) {
      if (v.type() != value_type::u32 || !detail::is_pow2(v.as_u32()))
        throw error(error::kind::argument, cat("'", key, "' must be a u32 power of two, got ",
                                               type_name(v.type()), " ", to_string(v)));
      alignment_ = v.as_u32();
      relayout();
    }
    if (const auto it = key_index_.find(key); it != key_index_.end()) {
      metadata_[it->second].second = std::move(v);
      return;
    }
    key_index_.emplace(std::string(key), metadata_.size());
    metadata_.emplace_back(std::string(key), std::move(v));
  }
  [[nodiscard]] const value* find(std::string_view key) const {
    const auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
  }
  [[nodiscard]] const std::vector<std::pair<std::string, value>>& metadata() const noexcept {
    return metadata_;
  }

  // Declares the next tensor. dims[0] is the row length and must be a multiple of the type's block
  // size; 1..4 dims, each > 0; names unique and at most 63 bytes (llama.cpp's limit). Throws
  // error(argument).
  void add_tensor(std::string name, std::vector<std::uint64_t> dims, quant::qtype type) {
    if (name.empty()) throw error(error::kind::argument, "tensor name is empty");
    if (name.size() > max_tensor_name)
      throw error(error::kind::argument,
                  cat("tensor '", name, "': name longer than ", max_tensor_name, " bytes"));
    if (tensor_index_.count(name))
      throw error(error::kind::argument, cat("duplicate tensor name '", name, "'"));
    if (dims.empty()) throw error(error::kind::argument, cat("tensor '", name, "': no dims"));
    tensor_info t;
    t.size_bytes = detail::tensor_size(name, dims, type, [](std::string msg) {
      throw error(error::kind::argument, std::move(msg));
    });
    t.name = std::move(name);
    t.dims = std::move(dims);
    t.type = type;
    if (!tensors_.empty()) {
      const auto& last = tensors_.back();
      t.offset = detail::align_up(checked_add(last.offset, last.size_bytes), alignment_, {});
    }
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  // Declared tensors with the offsets they will have in the file.
  [[nodiscard]] const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }
  [[nodiscard]] std::uint64_t tensor_bytes(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    if (it == tensor_index_.end())
      throw error(error::kind::argument, cat("tensor '", name, "' was not declared"));
    return tensors_[it->second].size_bytes;
  }
  [[nodiscard]] std::uint64_t alignment() const noexcept { return alignment_; }

  // Creates "<path>.<pid>.qforge.tmp" and writes the header; the stream then takes the tensor data.
  // Later changes to this writer do not affect an open stream.
  [[nodiscard]] stream open(const std::string& path) const;

 private:
  void relayout() {
    std::uint64_t off = 0;
    for (auto& t : tensors_) {
      t.offset = off;
      off = detail::align_up(checked_add(off, t.size_bytes), alignment_, {});
    }
  }

  std::vector<std::pair<std::string, value>> metadata_;
  std::map<std::string, std::size_t, std::less<>> key_index_;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
  std::uint64_t alignment_ = keys::default_alignment;
};

class writer::stream {
 public:
  stream(stream&&) noexcept = default;
  stream& operator=(stream&&) noexcept = default;
  ~stream() = default;  // unfinished: atomic_file removes the temporary file

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Whole tensor at once. `name` must be the next declared tensor and data exactly its size.
  void write_tensor(std::string_view name, std::span<const std::byte> data) {
    begin_tensor(name);
    append(data);
    end_tensor();
  }
  // Piecewise: begin_tensor(name), append() any number of times, end_tensor().
  void begin_tensor(std::string_view name) {
    live();
    if (in_tensor_)
      fail(cat("begin_tensor('", name, "') while tensor '", plan_[next_].name, "' is still open"));
    if (next_ >= plan_.size())
      fail(
          cat("tensor '", name, "': all ", plan_.size(), " declared tensors were already written"));
    if (plan_[next_].name != name)
      fail(cat("tensor '", name, "' written out of order: next declared tensor is '",
               plan_[next_].name, "'"));
    QFORGE_ASSERT(file_->bytes_written() == data_start_ + plan_[next_].offset);
    in_tensor_ = true;
    written_ = 0;
  }
  void append(std::span<const std::byte> bytes) {
    live();
    if (!in_tensor_) fail("append() outside begin_tensor() / end_tensor()");
    const auto& t = plan_[next_];
    if (bytes.size() > t.size_bytes - written_)
      fail(cat("tensor '", t.name, "': more than its ", t.size_bytes, " bytes"));
    guarded([&] { file_->write(bytes); });
    written_ += bytes.size();
  }
  void end_tensor() {
    live();
    if (!in_tensor_) fail("end_tensor() without begin_tensor()");
    const auto& t = plan_[next_];
    if (written_ != t.size_bytes)
      fail(cat("tensor '", t.name, "': ", written_, " bytes written, expected ", t.size_bytes));
    guarded([&] { file_->write_zeros(pad(t.size_bytes)); });
    in_tensor_ = false;
    ++next_;
  }

  // Checks every tensor was written, then flushes, syncs and renames into place.
  void finish() {
    live();
    if (in_tensor_) fail(cat("finish() while tensor '", plan_[next_].name, "' is open"));
    if (next_ != plan_.size())
      fail(cat("finish() with ", plan_.size() - next_, " of ", plan_.size(),
               " tensors unwritten, first '", plan_[next_].name, "'"));
    guarded([&] { file_->commit(); });
    file_.reset();
    finished_ = true;
  }

 private:
  friend class writer;
  stream(const std::string& path, const writer& w)
      : path_(path), plan_(w.tensors_), alignment_(w.alignment_) {
    file_ = std::make_unique<atomic_file>(path);
    guarded([&] { write_header(w); });
  }

  void write_header(const writer& w) {
    atomic_file& out = *file_;
    out.write(magic, 4);
    detail::put_le(out, write_version);
    detail::put_le(out, std::uint64_t{plan_.size()});
    detail::put_le(out, std::uint64_t{w.metadata_.size()});
    for (const auto& [key, v] : w.metadata_) {
      detail::put_string(out, key);
      detail::put_le(out, static_cast<std::uint32_t>(v.type()));
      detail::put_value(out, v);
    }
    for (const auto& t : plan_) {
      detail::put_string(out, t.name);
      detail::put_le(out, static_cast<std::uint32_t>(t.dims.size()));
      for (auto d : t.dims) detail::put_le(out, d);
      detail::put_le(out, static_cast<std::uint32_t>(t.type));
      detail::put_le(out, t.offset);
    }
    out.write_zeros(pad(out.bytes_written()));
    data_start_ = out.bytes_written();
  }

  [[nodiscard]] std::size_t pad(std::uint64_t n) const {
    return static_cast<std::size_t>((alignment_ - n % alignment_) % alignment_);
  }
  void live() const {
    if (finished_) throw error(error::kind::argument, path_, "stream already finished");
    if (!file_) throw error(error::kind::argument, path_, "stream unusable after an earlier error");
  }
  // A misuse leaves a half-written file: drop it (and the temporary) so finish() cannot commit it.
  [[noreturn]] void fail(std::string msg) {
    file_.reset();
    throw error(error::kind::argument, path_, std::move(msg));
  }
  template <class F>
  void guarded(F&& f) {
    try {
      f();
    } catch (...) {
      file_.reset();
      throw;
    }
  }

  std::string path_;
  std::vector<tensor_info> plan_;
  std::uint64_t alignment_ = keys::default_alignment;
  std::unique_ptr<atomic_file> file_;
  std::uint64_t data_start_ = 0;
  std::size_t next_ = 0;
  std::uint64_t written_ = 0;
  bool in_tensor_ = false;
  bool finished_ = false;
};

inline writer::stream writer::open(const std::string& path) const { return stream(path, *this); }

}  // namespace qforge::format::gguf
