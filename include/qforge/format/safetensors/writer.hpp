// SPDX-License-Identifier: MIT
// Writer for safetensors files: collects (name, dtype, shape, bytes) without copying the bytes,
// then writes the 8-byte header length, the JSON header (tensors in add() order, then padded with
// spaces so the data section starts 8-byte aligned, as the Python package does) and the data,
// through qforge::atomic_file so a failed run never leaves a half file under the final name.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "qforge/core/atomic_file.hpp"
#include "qforge/core/checked.hpp"
#include "qforge/core/error.hpp"
#include "qforge/format/safetensors/dtype.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::format::safetensors {

class writer {
 public:
  // A later call with the same key replaces the value.
  void set_metadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }

  // `data` is referenced, not copied: it must stay valid until write() returns. Throws
  // error::kind::argument for an empty, reserved or repeated name, or when data.size() is not
  // product(shape) * size_of(type).
  void add(std::string name, dtype type, std::vector<std::uint64_t> shape,
           std::span<const std::byte> data) {
    if (name.empty()) throw error(error::kind::argument, "safetensors writer: empty tensor name");
    const std::string where = cat("tensor '", name, "': ");
    if (name == "__metadata__")
      throw error(error::kind::argument, where + "name is reserved for the metadata");
    if (size_of(type) == 0) throw error(error::kind::argument, where + "invalid dtype");
    if (names_.count(name) != 0) throw error(error::kind::argument, where + "added twice");
    std::uint64_t bytes = 0;
    try {
      bytes = checked_mul(checked_product(shape, {}, "shape"), size_of(type), {}, "byte size");
    } catch (const error& e) {
      throw error(error::kind::argument,
                  cat(where, "shape ", detail::shape_string(shape), ": ", e.message()));
    }
    if (data.size() != bytes)
      throw error(error::kind::argument,
                  cat(where, "shape ", detail::shape_string(shape), " \u00d7 ", to_string(type),
                      " = ", bytes, " bytes but ", data.size(), " bytes given"));
    names_.insert(name);
    entries_.push_back({std::move(name), type, std::move(shape), data});
  }

  // Copies a tensor from a reader view (same name, dtype, shape, bytes); the view's file must stay
  // open until write() returns.
  void add(const tensor_view& v) {
    add(v.name(), v.type(), std::vector<std::uint64_t>(v.shape().begin(), v.shape().end()),
        v.bytes());
  }

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  // Throws error::kind::argument when a name or metadata string is not valid UTF-8 (JSON cannot
  // carry it), ::io when the file cannot be written.
  void write(const std::string& path) const {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
      auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
      for (const auto& [k, v] : metadata_) m[k] = v;
    }
    std::uint64_t offset = 0;
    for (const auto& e : entries_) {
      const std::uint64_t end = checked_add(offset, e.data.size(), path, "data size");
      nlohmann::ordered_json t = nlohmann::ordered_json::object();
      t["dtype"] = std::string(to_string(e.type));
      t["shape"] = e.shape;
      t["data_offsets"] = nlohmann::ordered_json::array({offset, end});
      header[e.name] = std::move(t);
      offset = end;
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception& e) {
      throw error(error::kind::argument, path, cat("cannot encode the header: ", e.what()));
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    if (text.size() > max_header_bytes)
      throw error(error::kind::argument, path,
                  cat("header of ", text.size(), " bytes exceeds the limit of ", max_header_bytes));

    atomic_file out(path);
    std::array<std::byte, 8> len{};
    std::uint64_t n = text.size();
    for (auto& b : len) {
      b = static_cast<std::byte>(n & 0xffu);
      n >>= 8;
    }
    out.write(len.data(), len.size());
    out.write(text.data(), text.size());
    for (const auto& e : entries_) out.write(e.data);
    out.commit();
  }

 private:
  struct entry {
    std::string name;
    dtype type;
    std::vector<std::uint64_t> shape;
    std::span<const std::byte> data;
  };
  std::map<std::string, std::string> metadata_;
  std::vector<entry> entries_;
  std::set<std::string, std::less<>> names_;
};

}  // namespace qforge::format::safetensors
