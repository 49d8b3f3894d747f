// SPDX-License-Identifier: MIT
// GGUF reader (versions 2 and 3, little-endian), built for files from anywhere: the whole file is
// memory-mapped and every field is bounds-checked before it is read, every count is checked
// against the bytes left before anything is allocated, every size product and offset sum is
// overflow-checked, and tensor data ranges are checked for alignment, end of file and overlap. Any
// defect throws qforge::error naming the file, the byte offset and the key or tensor concerned.
// Checks follow ggml's gguf.cpp (gguf_init_from_reader) and are stricter where ggml is lenient for
// no reason a converter needs: zero-sized dimensions are rejected, and tensors may sit in any order
// as long as they do not overlap (ggml wants them packed in declaration order; our writer does so).
#pragma once
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qforge/core/checked.hpp"
#include "qforge/core/error.hpp"
#include "qforge/core/mapped_file.hpp"
#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/value.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::format::gguf {

inline constexpr char magic[4] = {'G', 'G', 'U', 'F'};
inline constexpr std::uint32_t write_version = 3;
inline constexpr std::uint32_t max_dims = 4;                                  // GGML_MAX_DIMS
inline constexpr std::uint64_t max_key_length = std::uint64_t{1} << 20;       // keys, tensor names
inline constexpr std::uint64_t max_string_length = std::uint64_t{256} << 20;  // string values
inline constexpr int max_array_depth = 8;  // arrays of arrays of ...; bounds reader recursion
inline constexpr std::size_t max_tensor_name = 63;  // GGML_MAX_NAME - 1: llama.cpp refuses longer

struct tensor_info {
  std::string name;
  std::vector<std::uint64_t> dims;  // dims[0] is the row length (innermost), as ggml's ne[]
  quant::qtype type = quant::qtype::f32;
  std::uint64_t offset = 0;  // relative to the data section, a multiple of the alignment
  std::uint64_t size_bytes = 0;

  [[nodiscard]] std::uint64_t n_elements() const {
    std::uint64_t n = 1;
    for (auto d : dims) n *= d;  // validated not to overflow when the info was built
    return n;
  }
};

namespace detail {

constexpr bool is_pow2(std::uint64_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

inline std::uint64_t align_up(std::uint64_t x, std::uint64_t a, const std::string& path) {
  return checked_add(x, (a - x % a) % a, path, "aligned offset");
}

// Bytes of a tensor of this shape and type; validates dims (count, > 0, row divisibility) and
// overflow. `fail` receives a message and must throw.
template <class Fail>
std::uint64_t tensor_size(std::string_view name, std::span<const std::uint64_t> dims,
                          quant::qtype type, Fail&& fail) {
  const auto tr = quant::traits(type);
  if (!tr)
    fail(cat("tensor '", name, "': unknown ggml type id ", static_cast<std::uint32_t>(type)));
  if (dims.size() > max_dims)
    fail(cat("tensor '", name, "': ", dims.size(), " dims, at most ", max_dims));
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (dims[i] == 0) fail(cat("tensor '", name, "': dimension ", i, " is 0"));
  const std::uint64_t row = dims.empty() ? 1 : dims[0];
  if (row % tr->block_elems != 0)
    fail(cat("tensor '", name, "': row length ", row, " is not a multiple of ", tr->block_elems,
             " (block size of ", tr->name, ")"));
  // ggml counts elements and bytes in int64_t / size_t: keep both below 2^63.
  std::uint64_t n = 1;
  for (auto d : dims)
    if (__builtin_mul_overflow(n, d, &n) || n > static_cast<std::uint64_t>(INT64_MAX))
      fail(cat("tensor '", name, "': element count overflows"));
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(n / tr->block_elems, std::uint64_t{tr->block_bytes}, &bytes) ||
      bytes > static_cast<std::uint64_t>(INT64_MAX))
    fail(cat("tensor '", name, "': byte size overflows"));
  return bytes;
}

// Bounds-checked little-endian view of the mapped file.
class cursor {
 public:
  cursor(std::span<const std::byte> bytes, const std::string& path) : bytes_(bytes), path_(path) {}

  [[nodiscard]] std::uint64_t offset() const noexcept { return pos_; }
  [[nodiscard]] std::uint64_t remaining() const noexcept { return bytes_.size() - pos_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  [[noreturn]] void fail(std::uint64_t at, std::string msg) const {
    throw error(error::kind::format, path_, at, std::move(msg));
  }
  void need(std::uint64_t n, std::string_view what) const {
    if (n > remaining())
      fail(pos_,
           cat("truncated: ", what, " needs ", n, " bytes, ", remaining(), " left in the file"));
  }
  const std::byte* take(std::uint64_t n, std::string_view what) {
    need(n, what);
    const std::byte* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T read(std::string_view what) {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::byte* p = take(sizeof(T), what);
    if constexpr (std::is_floating_point_v<T>) {
      using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
      return std::bit_cast<T>(load<U>(p));
    } else {
      return static_cast<T>(load<std::make_unsigned_t<T>>(p));
    }
  }
  std::string read_string(std::uint64_t limit, std::string_view what) {
    const std::uint64_t at = pos_;
    const auto n = read<std::uint64_t>(what);
    if (n > limit) fail(at, cat(what, ": length ", n, " exceeds the limit of ", limit, " bytes"));
    if (n > remaining())
      fail(at, cat("truncated: ", what, " of ", n, " bytes, ", remaining(), " left in the file"));
    const std::byte* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  template <class U>
  static U load(const std::byte* p) noexcept {
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i)
      v = static_cast<U>(v | (static_cast<U>(std::to_integer<unsigned>(p[i])) << (8 * i)));
    return v;
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& path_;
  std::uint64_t pos_ = 0;
};

template <class T>
std::vector<T> read_numbers(cursor& in, std::uint64_t count, std::string_view what) {
  const std::byte* p = in.take(count * sizeof(T), what);  // count was checked against the file
  std::vector<T> out(static_cast<std::size_t>(count));
  if constexpr (std::endian::native == std::endian::little) {
    if (count) std::memcpy(out.data(), p, static_cast<std::size_t>(count) * sizeof(T));
  } else {
    using U = std::conditional_t<
        sizeof(T) == 1, std::uint8_t,
        std::conditional_t<sizeof(T) == 2, std::uint16_t,
                           std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = std::bit_cast<T>(cursor::load<U>(p + i * sizeof(T)));
  }
  return out;
}

inline value_type read_type(cursor& in, std::string_view key, std::string_view what) {
  const std::uint64_t at = in.offset();
  const auto id = in.read<std::uint32_t>(what);
  if (id >= value_type_count) in.fail(at, cat("key '", key, "': unknown ", what, " ", id));
  return static_cast<value_type>(id);
}

inline value read_value(cursor& in, value_type t, std::string_view key, int depth) {
  const std::string what = cat("value of key '", key, "'");
  switch (t) {
    case value_type::u8: return value::u8(in.read<std::uint8_t>(what));
    case value_type::i8: return value::i8(in.read<std::int8_t>(what));
    case value_type::u16: return value::u16(in.read<std::uint16_t>(what));
    case value_type::i16: return value::i16(in.read<std::int16_t>(what));
    case value_type::u32: return value::u32(in.read<std::uint32_t>(what));
    case value_type::i32: return value::i32(in.read<std::int32_t>(what));
    case value_type::f32: return value::f32(in.read<float>(what));
    case value_type::u64: return value::u64(in.read<std::uint64_t>(what));
    case value_type::i64: return value::i64(in.read<std::int64_t>(what));
    case value_type::f64: return value::f64(in.read<double>(what));
    case value_type::boolean: return value::boolean(in.read<std::uint8_t>(what) != 0);
    case value_type::string: return value::string(in.read_string(max_string_length, what));
    case value_type::array: break;
  }
  const std::uint64_t at = in.offset();
  if (depth >= max_array_depth)
    in.fail(at, cat("key '", key, "': arrays nested deeper than ", max_array_depth));
  const value_type elem = read_type(in, key, "array element type");
  const auto count = in.read<std::uint64_t>(cat("array length of key '", key, "'"));
  // Smallest encoding of one element: a string is at least its length, an array its header.
  const std::uint64_t min_elem = elem == value_type::string  ? 8
                                 : elem == value_type::array ? 12
                                                             : fixed_size(elem);
  std::uint64_t min_bytes = 0;
  if (__builtin_mul_overflow(count, min_elem, &min_bytes) || min_bytes > in.remaining())
    in.fail(at, cat("key '", key, "': array of ", count, " ", type_name(elem), " needs at least ",
                    count, " x ", min_elem, " bytes, ", in.remaining(), " left in the file"));
  switch (elem) {
    case value_type::u8: return value::numeric_array(read_numbers<std::uint8_t>(in, count, what));
    case value_type::i8: return value::numeric_array(read_numbers<std::int8_t>(in, count, what));
    case value_type::u16: return value::numeric_array(read_numbers<std::uint16_t>(in, count, what));
    case value_type::i16: return value::numeric_array(read_numbers<std::int16_t>(in, count, what));
    case value_type::u32: return value::numeric_array(read_numbers<std::uint32_t>(in, count, what));
    case value_type::i32: return value::numeric_array(read_numbers<std::int32_t>(in, count, what));
    case value_type::f32: return value::numeric_array(read_numbers<float>(in, count, what));
    case value_type::u64: return value::numeric_array(read_numbers<std::uint64_t>(in, count, what));
    case value_type::i64: return value::numeric_array(read_numbers<std::int64_t>(in, count, what));
    case value_type::f64: return value::numeric_array(read_numbers<double>(in, count, what));
    case value_type::boolean: {
      const auto bytes = read_numbers<std::uint8_t>(in, count, what);
      std::vector<bool> b(bytes.size());
      for (std::size_t i = 0; i < bytes.size(); ++i) b[i] = bytes[i] != 0;
      return value::bool_array(b);
    }
    case value_type::string: {
      std::vector<std::string> s(static_cast<std::size_t>(count));
      for (auto& e : s) e = in.read_string(max_string_length, what);
      return value::string_array(std::move(s));
    }
    case value_type::array: {
      std::vector<value> v;
      v.reserve(static_cast<std::size_t>(count));
      for (std::uint64_t i = 0; i < count; ++i)
        v.push_back(read_value(in, value_type::array, key, depth + 1));
      return value::array(value_type::array, std::move(v));
    }
  }
  return {};
}

}  // namespace detail

class reader {
 public:
  // Maps the file and validates header, metadata, tensor infos and data ranges. Throws
  // error(io) when the file cannot be read, error(unsupported) for GGUF v1 / future versions /
  // big-endian files, error(format) for everything else.
  explicit reader(std::string path) : file_(std::move(path)) { parse(); }

  [[nodiscard]] const std::string& path() const noexcept { return file_.path(); }
  [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
  [[nodiscard]] std::uint64_t alignment() const noexcept { return alignment_; }
  [[nodiscard]] std::uint64_t data_offset() const noexcept { return data_offset_; }
  [[nodiscard]] std::uint64_t file_size() const noexcept { return file_.size(); }

  [[nodiscard]] const std::vector<std::pair<std::string, value>>& metadata() const noexcept {
    return metadata_;
  }
  [[nodiscard]] const value* find(std::string_view key) const {
    const auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
  }
  // Throws error(format) naming the file and key when the key is absent.
  [[nodiscard]] const value& at(std::string_view key) const {
    if (const value* v = find(key)) return *v;
    throw error(error::kind::format, path(), cat("missing metadata key '", key, "'"));
  }
  // Typed look-ups whose errors name the file and key (value's own accessors cannot).
  [[nodiscard]] std::uint64_t uint_at(std::string_view key) const {
    const value& v = at(key);
    if (const auto u = v.as_uint()) return *u;
    throw error(error::kind::format, path(),
                cat("key '", key, "': expected a non-negative integer, got ", type_name(v.type())));
  }
  [[nodiscard]] const std::string& string_at(std::string_view key) const {
    const value& v = at(key);
    if (v.type() != value_type::string)
      throw error(error::kind::format, path(),
                  cat("key '", key, "': expected string, got ", type_name(v.type())));
    return v.as_string();
  }

  [[nodiscard]] const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }
  [[nodiscard]] const tensor_info* find_tensor(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  // Bytes of a tensor of this file, in place in the map (no copy; valid while the reader lives).
  [[nodiscard]] std::span<const std::byte> tensor_data(const tensor_info& t) const {
    const std::uint64_t size = file_.size();
    if (t.offset > size || data_offset_ > size - t.offset ||
        t.size_bytes > size - t.offset - data_offset_)
      throw error(error::kind::argument, path(), cat("tensor '", t.name, "' is not in this file"));
    return {file_.data() + data_offset_ + t.offset, static_cast<std::size_t>(t.size_bytes)};
  }

 private:
  void parse() {
    const std::string& p = path();
    detail::cursor in(file_.bytes(), p);

    const std::byte* m = in.take(4, "magic");
    if (std::memcmp(m, magic, 4) != 0) in.fail(0, "not a GGUF file (bad magic)");
    version_ = in.read<std::uint32_t>("version");
    if ((version_ & 0xffffu) == 0 && version_ != 0)
      throw error(
          error::kind::unsupported, p, 4,
          cat("GGUF version ", version_, ": a big-endian file, only little-endian is supported"));
    if (version_ == 1)
      throw error(error::kind::unsupported, p, 4, "GGUF version 1 is no longer supported");
    if (version_ < 2 || version_ > 3)
      throw error(error::kind::unsupported, p, 4,
                  cat("GGUF version ", version_, ", supported: 2, 3"));

    const std::uint64_t n_tensors_at = in.offset();
    const auto n_tensors = in.read<std::uint64_t>("tensor count");
    const std::uint64_t n_kv_at = in.offset();
    const auto n_kv = in.read<std::uint64_t>("metadata count");
    // Cheapest encodings: key = 8-byte length + 1 byte, type 4, value 1; tensor = name length 8,
    // n_dims 4, type 4, offset 8. Larger counts cannot fit, whatever the rest of the file says.
    if (n_kv > in.remaining() / 14)
      in.fail(n_kv_at, cat("metadata count ", n_kv, " cannot fit in the ", in.remaining(),
                           " bytes left in the file"));
    if (n_tensors > in.remaining() / 24)
      in.fail(n_tensors_at, cat("tensor count ", n_tensors, " cannot fit in the ", in.remaining(),
                                " bytes left in the file"));

    for (std::uint64_t i = 0; i < n_kv; ++i) {
      const std::uint64_t at = in.offset();
      std::string key = in.read_string(max_key_length, cat("key of metadata entry ", i));
      if (key.empty()) in.fail(at, cat("metadata entry ", i, " has an empty key"));
      if (key_index_.count(key)) in.fail(at, cat("duplicate key '", key, "'"));
      const value_type t = detail::read_type(in, key, "value type");
      value v = detail::read_value(in, t, key, 0);
      key_index_.emplace(key, metadata_.size());
      metadata_.emplace_back(std::move(key), std::move(v));
    }

    if (const value* a = find(keys::general_alignment)) {
      if (a->type() != value_type::u32)
        throw error(
            error::kind::format, p,
            cat("key '", keys::general_alignment, "' must be u32, is ", type_name(a->type())));
      alignment_ = a->as_u32();
      if (!detail::is_pow2(alignment_))
        throw error(
            error::kind::format, p,
            cat("key '", keys::general_alignment, "': ", alignment_, " is not a power of two"));
    }

    std::vector<std::uint64_t> info_at;  // where each tensor's offset field sits, for errors below
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
      const std::uint64_t at = in.offset();
      tensor_info t;
      t.name = in.read_string(max_key_length, cat("name of tensor ", i));
      if (tensor_index_.count(t.name)) in.fail(at, cat("duplicate tensor name '", t.name, "'"));
      const std::uint64_t dims_at = in.offset();
      const auto n_dims = in.read<std::uint32_t>(cat("dim count of tensor '", t.name, "'"));
      if (n_dims > max_dims)
        in.fail(dims_at, cat("tensor '", t.name, "': ", n_dims, " dims, at most ", max_dims));
      for (std::uint32_t d = 0; d < n_dims; ++d)
        t.dims.push_back(in.read<std::uint64_t>(cat("dims of tensor '", t.name, "'")));
      const std::uint64_t type_at = in.offset();
      t.type =
          static_cast<quant::qtype>(in.read<std::uint32_t>(cat("type of tensor '", t.name, "'")));
      t.size_bytes = detail::tensor_size(
          t.name, t.dims, t.type, [&](std::string msg) { in.fail(type_at, std::move(msg)); });
      info_at.push_back(in.offset());
      t.offset = in.read<std::uint64_t>(cat("offset of tensor '", t.name, "'"));
      if (t.offset % alignment_ != 0)
        in.fail(info_at.back(),
                cat("tensor '", t.name, "': offset ", t.offset, " not a multiple of ", alignment_));
      tensor_index_.emplace(t.name, tensors_.size());
      tensors_.push_back(std::move(t));
    }

    data_offset_ = detail::align_up(in.offset(), alignment_, p);
    check_data_ranges(info_at);
  }

  void check_data_ranges(const std::vector<std::uint64_t>& info_at) const {
    const std::string& p = path();
    const std::uint64_t size = file_.size();
    if (tensors_.empty()) return;  // ggml omits the padding before an empty data section
    if (data_offset_ > size)
      throw error(error::kind::format, p, size,
                  cat("truncated: data section starts at byte ", data_offset_, " past the end"));
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (std::size_t i : order) {
      const auto& t = tensors_[i];
      const std::uint64_t end = checked_add(checked_add(data_offset_, t.offset, p, "tensor offset"),
                                            t.size_bytes, p, "tensor end");
      if (end > size)
        throw error(error::kind::format, p, info_at[i],
                    cat("tensor '", t.name, "': data ends at byte ", end, ", past the end of the ",
                        size, "-byte file"));
    }
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].offset < tensors_[b].offset;
    });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const auto& prev = tensors_[order[k - 1]];
      const auto& t = tensors_[order[k]];
      if (t.offset < prev.offset + prev.size_bytes)  // no overflow: both ends checked above
        throw error(error::kind::format, p, info_at[order[k]],
                    cat("tensor '", t.name, "': data overlaps tensor '", prev.name, "'"));
    }
  }

  mapped_file file_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = keys::default_alignment;
  std::uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, value>> metadata_;
  std::map<std::string, std::size_t, std::less<>> key_index_;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace qforge::format::gguf
