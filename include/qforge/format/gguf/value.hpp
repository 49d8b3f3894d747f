// SPDX-License-Identifier: MIT
// One GGUF metadata value: a scalar of one of the twelve GGUF scalar types, a string, or an array
// (one element type, possibly itself `array`). Arrays are immutable once built and shared between
// copies, because a vocabulary array of 150 000 strings is copied whenever metadata moves from a
// reader to a writer. Accessors are strict about the stored type (a u32 is not an i32) and throw
// qforge::error(format) naming both types; as_uint()/as_int() exist because llama.cpp writers
// differ in the integer width they use for the same key. Byte layout matches ggml's gguf.cpp:
// numbers are little-endian of their own width, bool is one byte, strings are u64 length + bytes.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "qforge/core/error.hpp"

namespace qforge::format::gguf {

// GGUF value type ids (gguf_type), part of the file format.
enum class value_type : std::uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

inline constexpr std::uint32_t value_type_count = 13;

constexpr std::string_view type_name(value_type t) noexcept {
  switch (t) {
    case value_type::u8: return "u8";
    case value_type::i8: return "i8";
    case value_type::u16: return "u16";
    case value_type::i16: return "i16";
    case value_type::u32: return "u32";
    case value_type::i32: return "i32";
    case value_type::f32: return "f32";
    case value_type::boolean: return "bool";
    case value_type::string: return "string";
    case value_type::array: return "array";
    case value_type::u64: return "u64";
    case value_type::i64: return "i64";
    case value_type::f64: return "f64";
  }
  return "?";
}

// Bytes one element occupies on disk; 0 for the variable-size string and array.
constexpr std::size_t fixed_size(value_type t) noexcept {
  switch (t) {
    case value_type::u8:
    case value_type::i8:
    case value_type::boolean: return 1;
    case value_type::u16:
    case value_type::i16: return 2;
    case value_type::u32:
    case value_type::i32:
    case value_type::f32: return 4;
    case value_type::u64:
    case value_type::i64:
    case value_type::f64: return 8;
    case value_type::string:
    case value_type::array: return 0;
  }
  return 0;
}

constexpr bool is_integer(value_type t) noexcept {
  switch (t) {
    case value_type::u8:
    case value_type::i8:
    case value_type::u16:
    case value_type::i16:
    case value_type::u32:
    case value_type::i32:
    case value_type::u64:
    case value_type::i64: return true;
    default: return false;
  }
}
constexpr bool is_signed(value_type t) noexcept {
  return t == value_type::i8 || t == value_type::i16 || t == value_type::i32 ||
         t == value_type::i64;
}

namespace detail {
// The C++ type of each numeric GGUF type; bool arrays are held as bytes (no std::vector<bool>).
template <class T>
struct numeric_of;
template <>
struct numeric_of<std::uint8_t> {
  static constexpr value_type type = value_type::u8;
};
template <>
struct numeric_of<std::int8_t> {
  static constexpr value_type type = value_type::i8;
};
template <>
struct numeric_of<std::uint16_t> {
  static constexpr value_type type = value_type::u16;
};
template <>
struct numeric_of<std::int16_t> {
  static constexpr value_type type = value_type::i16;
};
template <>
struct numeric_of<std::uint32_t> {
  static constexpr value_type type = value_type::u32;
};
template <>
struct numeric_of<std::int32_t> {
  static constexpr value_type type = value_type::i32;
};
template <>
struct numeric_of<float> {
  static constexpr value_type type = value_type::f32;
};
template <>
struct numeric_of<std::uint64_t> {
  static constexpr value_type type = value_type::u64;
};
template <>
struct numeric_of<std::int64_t> {
  static constexpr value_type type = value_type::i64;
};
template <>
struct numeric_of<double> {
  static constexpr value_type type = value_type::f64;
};
}  // namespace detail

class value {
 public:
  struct array_data;

  value() = default;  // u8 0; exists so containers of values can be resized

  // Scalars. Signed values keep their sign-extended 64-bit pattern, floats their exact bits.
  static value u8(std::uint8_t v) { return scalar(value_type::u8, v); }
  static value i8(std::int8_t v) {
    return scalar(value_type::i8, static_cast<std::uint64_t>(std::int64_t{v}));
  }
  static value u16(std::uint16_t v) { return scalar(value_type::u16, v); }
  static value i16(std::int16_t v) {
    return scalar(value_type::i16, static_cast<std::uint64_t>(std::int64_t{v}));
  }
  static value u32(std::uint32_t v) { return scalar(value_type::u32, v); }
  static value i32(std::int32_t v) {
    return scalar(value_type::i32, static_cast<std::uint64_t>(std::int64_t{v}));
  }
  static value u64(std::uint64_t v) { return scalar(value_type::u64, v); }
  static value i64(std::int64_t v) {
    return scalar(value_type::i64, static_cast<std::uint64_t>(v));
  }
  static value f32(float v) {
    std::uint32_t b = 0;
    std::memcpy(&b, &v, 4);
    return scalar(value_type::f32, b);
  }
  static value f64(double v) {
    std::uint64_t b = 0;
    std::memcpy(&b, &v, 8);
    return scalar(value_type::f64, b);
  }
  static value boolean(bool v) { return scalar(value_type::boolean, v ? 1u : 0u); }
  static value string(std::string s) {
    value r;
    r.type_ = value_type::string;
    r.str_ = std::move(s);
    return r;
  }

  // Arrays. numeric_array<T> covers every numeric element type; bool_array stores one byte each.
  template <class T>
  static value numeric_array(std::vector<T> v);
  static value i32_array(std::vector<std::int32_t> v) { return numeric_array(std::move(v)); }
  static value f32_array(std::vector<float> v) { return numeric_array(std::move(v)); }
  static value u32_array(std::vector<std::uint32_t> v) { return numeric_array(std::move(v)); }
  static value bool_array(const std::vector<bool>& v);
  static value string_array(std::vector<std::string> v);
  // Generic form: every element must have type `elem` (throws error(argument) otherwise).
  static value array(value_type elem, std::vector<value> elems);

  [[nodiscard]] value_type type() const noexcept { return type_; }
  [[nodiscard]] bool is_array() const noexcept { return type_ == value_type::array; }

  // Strict accessors: the stored type must be exactly the one named.
  [[nodiscard]] std::uint8_t as_u8() const {
    return static_cast<std::uint8_t>(expect(value_type::u8));
  }
  [[nodiscard]] std::int8_t as_i8() const {
    return static_cast<std::int8_t>(expect(value_type::i8));
  }
  [[nodiscard]] std::uint16_t as_u16() const {
    return static_cast<std::uint16_t>(expect(value_type::u16));
  }
  [[nodiscard]] std::int16_t as_i16() const {
    return static_cast<std::int16_t>(expect(value_type::i16));
  }
  [[nodiscard]] std::uint32_t as_u32() const {
    return static_cast<std::uint32_t>(expect(value_type::u32));
  }
  [[nodiscard]] std::int32_t as_i32() const {
    return static_cast<std::int32_t>(expect(value_type::i32));
  }
  [[nodiscard]] std::uint64_t as_u64() const { return expect(value_type::u64); }
  [[nodiscard]] std::int64_t as_i64() const {
    return static_cast<std::int64_t>(expect(value_type::i64));
  }
  [[nodiscard]] bool as_bool() const { return expect(value_type::boolean) != 0; }
  [[nodiscard]] float as_f32() const {
    const auto b = static_cast<std::uint32_t>(expect(value_type::f32));
    float f = 0;
    std::memcpy(&f, &b, 4);
    return f;
  }
  [[nodiscard]] double as_f64() const {
    const std::uint64_t b = expect(value_type::f64);
    double d = 0;
    std::memcpy(&d, &b, 8);
    return d;
  }
  [[nodiscard]] const std::string& as_string() const {
    expect(value_type::string);
    return str_;
  }

  // Lenient accessors: any integer type whose value fits (nullopt for negatives / non-integers).
  [[nodiscard]] std::optional<std::uint64_t> as_uint() const noexcept {
    if (!is_integer(type_)) return std::nullopt;
    if (is_signed(type_) && static_cast<std::int64_t>(bits_) < 0) return std::nullopt;
    return bits_;
  }
  [[nodiscard]] std::optional<std::int64_t> as_int() const noexcept {
    if (!is_integer(type_)) return std::nullopt;
    if (type_ == value_type::u64 && bits_ > static_cast<std::uint64_t>(INT64_MAX))
      return std::nullopt;
    return static_cast<std::int64_t>(bits_);
  }
  // f32 or f64, widened.
  [[nodiscard]] std::optional<double> as_float() const noexcept {
    if (type_ == value_type::f32) return double{as_f32()};
    if (type_ == value_type::f64) return as_f64();
    return std::nullopt;
  }

  // Arrays (throw error(format) when this is not an array or the element type differs).
  [[nodiscard]] value_type array_type() const;
  [[nodiscard]] std::size_t array_size() const;
  [[nodiscard]] const std::vector<std::string>& strings() const;
  template <class T>
  [[nodiscard]] std::span<const T> numbers() const;  // T = uint8_t..double, exact element type
  [[nodiscard]] std::vector<bool> bools() const;
  [[nodiscard]] const std::vector<value>& nested() const;  // element type `array`
  [[nodiscard]] value element(std::size_t i) const;        // any element type; copies it out

  friend bool operator==(const value& a, const value& b);

 private:
  static value scalar(value_type t, std::uint64_t bits) {
    value r;
    r.type_ = t;
    r.bits_ = bits;
    return r;
  }
  std::uint64_t expect(value_type want) const {
    if (type_ != want)
      throw error(error::kind::format,
                  cat("metadata value is ", type_name(type_), ", expected ", type_name(want)));
    return bits_;
  }
  const array_data& arr() const;
  template <class T>
  static bool same_items(const std::vector<T>& x, const std::vector<T>& y) {
    if constexpr (std::is_floating_point_v<T>) {
      return x.size() == y.size() &&
             (x.empty() || std::memcmp(x.data(), y.data(), x.size() * sizeof(T)) == 0);
    } else {
      return x == y;
    }
  }

  value_type type_ = value_type::u8;
  std::uint64_t bits_ = 0;  // scalars: zero-extended unsigned, sign-extended signed, float bits
  std::string str_;
  std::shared_ptr<const array_data> arr_;
};

// Index i of `items` holds arrays of element type i (u8 and bool share a byte vector), so the
// variant mirrors the GGUF type ids and no separate tag can disagree with it.
struct value::array_data {
  value_type elem = value_type::u8;
  std::variant<std::vector<std::uint8_t>, std::vector<std::int8_t>, std::vector<std::uint16_t>,
               std::vector<std::int16_t>, std::vector<std::uint32_t>, std::vector<std::int32_t>,
               std::vector<float>, std::vector<std::uint8_t>, std::vector<std::string>,
               std::vector<value>, std::vector<std::uint64_t>, std::vector<std::int64_t>,
               std::vector<double>>
      items;

  [[nodiscard]] std::size_t size() const noexcept {
    return std::visit([](const auto& v) { return v.size(); }, items);
  }
};

template <class T>
value value::numeric_array(std::vector<T> v) {
  constexpr value_type t = detail::numeric_of<T>::type;
  auto d = std::make_shared<array_data>();
  d->elem = t;
  d->items.template emplace<static_cast<std::size_t>(t)>(std::move(v));
  value r;
  r.type_ = value_type::array;
  r.arr_ = std::move(d);
  return r;
}

inline value value::bool_array(const std::vector<bool>& v) {
  auto d = std::make_shared<array_data>();
  d->elem = value_type::boolean;
  auto& bytes = d->items.emplace<static_cast<std::size_t>(value_type::boolean)>();
  bytes.reserve(v.size());
  for (bool b : v) bytes.push_back(b ? 1 : 0);
  value r;
  r.type_ = value_type::array;
  r.arr_ = std::move(d);
  return r;
}

inline value value::string_array(std::vector<std::string> v) {
  auto d = std::make_shared<array_data>();
  d->elem = value_type::string;
  d->items.emplace<static_cast<std::size_t>(value_type::string)>(std::move(v));
  value r;
  r.type_ = value_type::array;
  r.arr_ = std::move(d);
  return r;
}

inline value value::array(value_type elem, std::vector<value> elems) {
  if (static_cast<std::uint32_t>(elem) >= value_type_count)
    throw error(error::kind::argument,
                cat("array element type id ", static_cast<std::uint32_t>(elem)));
  for (std::size_t i = 0; i < elems.size(); ++i)
    if (elems[i].type() != elem)
      throw error(error::kind::argument, cat("array of ", type_name(elem), ": element ", i, " is ",
                                             type_name(elems[i].type())));
  auto pack = [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> out;
    out.reserve(elems.size());
    for (const auto& e : elems) out.push_back(static_cast<T>(e.bits_));
    return out;
  };
  value r;
  switch (elem) {
    case value_type::u8: r = numeric_array(pack(std::uint8_t{})); break;
    case value_type::i8: r = numeric_array(pack(std::int8_t{})); break;
    case value_type::u16: r = numeric_array(pack(std::uint16_t{})); break;
    case value_type::i16: r = numeric_array(pack(std::int16_t{})); break;
    case value_type::u32: r = numeric_array(pack(std::uint32_t{})); break;
    case value_type::i32: r = numeric_array(pack(std::int32_t{})); break;
    case value_type::u64: r = numeric_array(pack(std::uint64_t{})); break;
    case value_type::i64: r = numeric_array(pack(std::int64_t{})); break;
    case value_type::f32: {
      std::vector<float> out;
      out.reserve(elems.size());
      for (const auto& e : elems) out.push_back(e.as_f32());
      r = numeric_array(std::move(out));
      break;
    }
    case value_type::f64: {
      std::vector<double> out;
      out.reserve(elems.size());
      for (const auto& e : elems) out.push_back(e.as_f64());
      r = numeric_array(std::move(out));
      break;
    }
    case value_type::boolean: {
      std::vector<bool> out;
      for (const auto& e : elems) out.push_back(e.as_bool());
      r = bool_array(out);
      break;
    }
    case value_type::string: {
      std::vector<std::string> out;
      out.reserve(elems.size());
      for (auto& e : elems) out.push_back(std::move(e.str_));
      r = string_array(std::move(out));
      break;
    }
    case value_type::array: {
      auto d = std::make_shared<array_data>();
      d->elem = value_type::array;
      d->items.emplace<static_cast<std::size_t>(value_type::array)>(std::move(elems));
      r.type_ = value_type::array;
      r.arr_ = std::move(d);
      break;
    }
  }
  return r;
}

inline const value::array_data& value::arr() const {
  expect(value_type::array);
  return *arr_;
}
inline value_type value::array_type() const { return arr().elem; }
inline std::size_t value::array_size() const { return arr().size(); }

inline const std::vector<std::string>& value::strings() const {
  const auto& a = arr();
  if (a.elem != value_type::string)
    throw error(error::kind::format, cat("metadata value is an array of ", type_name(a.elem),
                                         ", expected an array of string"));
  return std::get<static_cast<std::size_t>(value_type::string)>(a.items);
}

template <class T>
std::span<const T> value::numbers() const {
  constexpr value_type t = detail::numeric_of<T>::type;
  const auto& a = arr();
  if (a.elem != t)
    throw error(error::kind::format, cat("metadata value is an array of ", type_name(a.elem),
                                         ", expected an array of ", type_name(t)));
  return std::get<static_cast<std::size_t>(t)>(a.items);
}

inline std::vector<bool> value::bools() const {
  const auto& a = arr();
  if (a.elem != value_type::boolean)
    throw error(error::kind::format, cat("metadata value is an array of ", type_name(a.elem),
                                         ", expected an array of bool"));
  const auto& bytes = std::get<static_cast<std::size_t>(value_type::boolean)>(a.items);
  std::vector<bool> out(bytes.size());
  for (std::size_t i = 0; i < bytes.size(); ++i) out[i] = bytes[i] != 0;
  return out;
}

inline const std::vector<value>& value::nested() const {
  const auto& a = arr();
  if (a.elem != value_type::array)
    throw error(error::kind::format, cat("metadata value is an array of ", type_name(a.elem),
                                         ", expected an array of array"));
  return std::get<static_cast<std::size_t>(value_type::array)>(a.items);
}

inline value value::element(std::size_t i) const {
  const auto& a = arr();
  if (i >= a.size())
    throw error(error::kind::argument,
                cat("array index ", i, " out of range (size ", a.size(), ")"));
  switch (a.elem) {
    case value_type::u8: return u8(std::get<0>(a.items)[i]);
    case value_type::i8: return i8(std::get<1>(a.items)[i]);
    case value_type::u16: return u16(std::get<2>(a.items)[i]);
    case value_type::i16: return i16(std::get<3>(a.items)[i]);
    case value_type::u32: return u32(std::get<4>(a.items)[i]);
    case value_type::i32: return i32(std::get<5>(a.items)[i]);
    case value_type::f32: return f32(std::get<6>(a.items)[i]);
    case value_type::boolean: return boolean(std::get<7>(a.items)[i] != 0);
    case value_type::string: return string(std::get<8>(a.items)[i]);
    case value_type::array: return std::get<9>(a.items)[i];
    case value_type::u64: return u64(std::get<10>(a.items)[i]);
    case value_type::i64: return i64(std::get<11>(a.items)[i]);
    case value_type::f64: return f64(std::get<12>(a.items)[i]);
  }
  return {};
}

// Bitwise equality for floats (NaN == NaN of the same bits): what a round trip must preserve.
inline bool operator==(const value& a, const value& b) {
  if (a.type_ != b.type_) return false;
  if (a.type_ == value_type::string) return a.str_ == b.str_;
  if (a.type_ != value_type::array) return a.bits_ == b.bits_;
  if (a.arr_ == b.arr_) return true;
  const auto& x = *a.arr_;
  const auto& y = *b.arr_;
  if (x.elem != y.elem || x.items.index() != y.items.index()) return false;
  // Same index (checked above), so same alternative: u8 and bool arrays share a vector type.
  return std::visit(
      [](const auto& xv, const auto& yv) {
        if constexpr (std::is_same_v<decltype(xv), decltype(yv)>) {
          return value::same_items(xv, yv);
        } else {
          return false;
        }
      },
      x.items, y.items);
}

// Short human-readable form for tools and test messages: arrays show their first `max_elems`.
std::string to_string(const value& v, std::size_t max_elems = 8);

inline std::string to_string(const value& v, std::size_t max_elems) {
  switch (v.type()) {
    case value_type::string: {
      // Escaped so a token such as `"` or a newline cannot garble a one-line listing.
      std::string out = "\"";
      for (const char ch : v.as_string()) {
        const auto u = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
          out += '\\';
          out += ch;
        } else if (ch == '\n') {
          out += "\\n";
        } else if (u < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\x";
          out += hex[u >> 4];
          out += hex[u & 15];
        } else {
          out += ch;
        }
      }
      return out + '"';
    }
    case value_type::boolean: return v.as_bool() ? "true" : "false";
    case value_type::f32: return cat(v.as_f32());
    case value_type::f64: return cat(v.as_f64());
    case value_type::array: {
      std::string out = cat(type_name(v.array_type()), "[", v.array_size(), "] [");
      const std::size_t n = v.array_size() < max_elems ? v.array_size() : max_elems;
      for (std::size_t i = 0; i < n; ++i)
        out += (i ? ", " : "") + to_string(v.element(i), max_elems);
      if (n < v.array_size()) out += ", ...";
      return out + "]";
    }
    default:
      if (is_signed(v.type())) return cat(*v.as_int());
      return cat(*v.as_uint());
  }
}

}  // namespace qforge::format::gguf
