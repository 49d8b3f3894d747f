// SPDX-License-Identifier: MIT
// Reader for Hugging Face safetensors files and checkpoint folders. A file is an 8-byte
// little-endian header length N, N bytes of JSON ({"__metadata__": {str: str}, name: {dtype, shape,
// data_offsets}}) and the tensor bytes, offsets counted from the end of the header. Files come from
// the internet, so the whole header is validated once, up front (bounds, types, byte sizes with
// overflow checks, overlaps, duplicate names that a plain JSON parser would silently collapse);
// after that, views into the memory map need no checks. A checkpoint is a folder with either a
// sharded model.safetensors.index.json or a single file; the index's weight_map and the shards must
// agree exactly. Tensor data sits at any byte offset, so nothing here casts map bytes to typed
// pointers.
#pragma once
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "qforge/core/checked.hpp"
#include "qforge/core/error.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/core/mapped_file.hpp"
#include "qforge/format/safetensors/dtype.hpp"

namespace qforge::format::safetensors {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; the F32 fast path copies it as is");

// Same bound as the reference implementation: a real header is a few hundred KB at most, and the
// bound caps what a hostile file can make the JSON parser allocate.
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

struct tensor_info {
  std::string name;
  dtype type = dtype::f32;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;  // relative to the data section

  // Product of shape (1 for a scalar). Cannot overflow for a validated entry.
  [[nodiscard]] std::uint64_t numel() const noexcept {
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  [[nodiscard]] std::uint64_t nbytes() const noexcept { return end - begin; }
};

namespace detail {

inline std::string shape_string(std::span<const std::uint64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Names from a file go into error messages; control bytes (a JSON "\u0000" in a name) would cut
// or garble the one line a tool prints, so they are shown as \xNN.
inline std::string printable(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

inline std::uint64_t load_u64_le(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

// Parses JSON text, rejecting what nlohmann would accept silently: a repeated key (it keeps the
// last one, so a second tensor of the same name would vanish) and nesting deeper than max_depth
// (a safetensors header needs 3 levels; deeper input only costs memory). `base` is the file offset
// of text[0], so syntax errors report a file byte; `top_noun` names what top-level keys are.
inline nlohmann::json parse_json(std::span<const std::byte> text, const std::string& path,
                                 std::uint64_t base, int max_depth, const char* top_noun) {
  struct frame {
    std::set<std::string> keys;
    std::string owner;  // key under which this object sits ("" for the root)
    std::string last_key;
  };
  std::vector<frame> frames;
  auto check = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using ev_t = nlohmann::json::parse_event_t;
    if ((ev == ev_t::object_start || ev == ev_t::array_start) && depth >= max_depth) {
      const std::string under = frames.empty() || frames.front().last_key.empty()
                                    ? std::string{}
                                    : cat(" (under '", printable(frames.front().last_key), "')");
      throw error(error::kind::format, path,
                  cat("JSON nested deeper than ", max_depth, " levels", under));
    }
    if (ev == ev_t::object_start) {
      frames.push_back({{}, frames.empty() ? std::string{} : frames.back().last_key, {}});
    } else if (ev == ev_t::object_end) {
      frames.pop_back();
    } else if (ev == ev_t::key) {
      frame& f = frames.back();
      const auto& k = parsed.get_ref<const std::string&>();
      if (!f.keys.insert(k).second) {
        if (frames.size() == 1)
          throw error(error::kind::format, path,
                      cat(top_noun, " '", printable(k), "' appears twice"));
        throw error(error::kind::format, path,
                    cat("key '", printable(k), "' appears twice in '", printable(f.owner), "'"));
      }
      f.last_key = k;
    }
    return true;
  };
  const auto* first = reinterpret_cast<const char*>(text.data());
  // nlohmann stops at a raw NUL as if the input ended there, which would hide whatever follows.
  // JSON allows none (a string spells it \u0000), so reject it before parsing.
  // (An empty file maps to no address at all, and memchr must not see a null pointer.)
  if (const void* nul = text.empty() ? nullptr : std::memchr(first, 0, text.size()))
    throw error(error::kind::format, path,
                base + static_cast<std::uint64_t>(static_cast<const char*>(nul) - first),
                "invalid JSON: NUL byte");
  try {
    return nlohmann::json::parse(first, first + text.size(), check, /*allow_exceptions=*/true,
                                 /*ignore_comments=*/false);
  } catch (const nlohmann::json::parse_error& e) {
    std::string_view what = e.what();
    if (auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    throw error(error::kind::format, path, base + (e.byte > 0 ? e.byte - 1 : 0),
                cat("invalid JSON: ", what));
  } catch (const nlohmann::json::exception& e) {
    throw error(error::kind::format, path, base, cat("invalid JSON: ", e.what()));
  }
}

// A non-negative JSON integer (nlohmann stores "-0" as a signed integer, so both kinds are read).
inline bool get_count(const nlohmann::json& v, std::uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<std::uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) {
    out = static_cast<std::uint64_t>(v.get<std::int64_t>());
    return true;
  }
  return false;
}

inline tensor_info parse_entry(const std::string& path, const std::string& name,
                               const nlohmann::json& v, std::uint64_t data_size) {
  const std::string where = cat("tensor '", printable(name), "': ");
  auto fail = [&](const std::string& msg) -> error {
    return error(error::kind::format, path, where + msg);
  };
  if (name.empty()) throw error(error::kind::format, path, "a tensor has an empty name");
  if (!v.is_object()) throw fail(cat("entry is a JSON ", v.type_name(), ", not an object"));
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets")
      throw fail(cat("unexpected field '", printable(it.key()), "'"));

  tensor_info t;
  t.name = name;
  const auto d = v.find("dtype");
  if (d == v.end()) throw fail("no 'dtype'");
  if (!d->is_string()) throw fail(cat("'dtype' is a JSON ", d->type_name(), ", not a string"));
  const auto& dname = d->get_ref<const std::string&>();
  if (auto parsed = parse_dtype(dname)) {
    t.type = *parsed;
  } else if (is_other_known_dtype(dname)) {
    throw error(error::kind::unsupported, path,
                where + cat("dtype ", printable(dname), " is not supported"));
  } else {
    throw fail(cat("unknown dtype '", printable(dname), "'"));
  }

  const auto s = v.find("shape");
  if (s == v.end()) throw fail("no 'shape'");
  if (!s->is_array()) throw fail(cat("'shape' is a JSON ", s->type_name(), ", not an array"));
  t.shape.reserve(s->size());
  for (const auto& dim : *s) {
    std::uint64_t n = 0;
    if (!get_count(dim, n))
      throw fail(
          cat("shape ", s->dump(), ": entry ", dim.dump(), " is not a non-negative integer"));
    t.shape.push_back(n);
  }

  const auto o = v.find("data_offsets");
  if (o == v.end()) throw fail("no 'data_offsets'");
  if (!o->is_array() || o->size() != 2 || !get_count((*o)[0], t.begin) ||
      !get_count((*o)[1], t.end))
    throw fail(cat("data_offsets ", o->dump(), " is not a pair of non-negative integers"));
  const std::string offsets = cat("data_offsets [", t.begin, ", ", t.end, "]");
  if (t.begin > t.end) throw fail(offsets + ": begin is past end");
  if (t.end > data_size)
    throw fail(cat(offsets, " run past the end of the data section (", data_size, " bytes)"));

  std::uint64_t bytes = 0;
  try {
    bytes =
        checked_mul(checked_product(t.shape, path, "shape"), size_of(t.type), path, "byte size");
  } catch (const error& e) {
    throw fail(cat("shape ", shape_string(t.shape), ": ", e.message()));
  }
  if (t.end - t.begin != bytes)
    throw fail(cat(offsets, " but shape ", shape_string(t.shape), " \u00d7 ", to_string(t.type),
                   " = ", bytes, " bytes"));
  return t;
}

struct file_state {
  std::string path;
  mapped_file map;
  std::uint64_t data_start = 0;
  std::vector<tensor_info> tensors;
  std::map<std::string, std::size_t, std::less<>> by_name;
  std::map<std::string, std::string> metadata;
};

inline void parse_header(file_state& st) {
  const std::string& path = st.path;
  const std::uint64_t size = st.map.size();
  if (size < 8)
    throw error(error::kind::format, path, 0,
                cat("file is ", size, " bytes, too short for the 8-byte header length"));
  const std::uint64_t n = load_u64_le(st.map.data());
  if (n < 2) throw error(error::kind::format, path, 0, cat("header length ", n, " is below 2"));
  if (n > max_header_bytes)
    throw error(error::kind::format, path, 0,
                cat("header length ", n, " exceeds the limit of ", max_header_bytes, " bytes"));
  if (n > size - 8)
    throw error(error::kind::format, path, 0,
                cat("header length ", n, " but only ", size - 8, " bytes follow it"));
  st.data_start = 8 + n;
  const std::uint64_t data_size = size - st.data_start;

  const nlohmann::json j = parse_json(st.map.bytes().subspan(8, n), path, 8, 3, "tensor");
  if (!j.is_object())
    throw error(error::kind::format, path, 8,
                cat("header is a JSON ", j.type_name(), ", not an object"));
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "__metadata__") {
      st.tensors.push_back(parse_entry(path, it.key(), it.value(), data_size));
      continue;
    }
    const auto& m = it.value();
    if (!m.is_object())
      throw error(error::kind::format, path,
                  cat("'__metadata__' is a JSON ", m.type_name(), ", not an object"));
    for (auto kv = m.begin(); kv != m.end(); ++kv) {
      if (!kv->is_string())
        throw error(error::kind::format, path,
                    cat("__metadata__ '", printable(kv.key()), "' is a JSON ", kv->type_name(),
                        ", not a string"));
      st.metadata.emplace(kv.key(), kv->get<std::string>());
    }
  }

  std::sort(st.tensors.begin(), st.tensors.end(), [](const tensor_info& a, const tensor_info& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Sorted by begin, a tensor can only overlap its predecessor unless an earlier one already did.
  // Empty tensors own no bytes and are skipped.
  const tensor_info* prev = nullptr;
  for (const auto& t : st.tensors) {
    if (t.begin == t.end) continue;
    if (prev != nullptr && t.begin < prev->end)
      throw error(error::kind::format, path,
                  cat("tensor '", printable(t.name), "': data_offsets [", t.begin, ", ", t.end,
                      "] overlap tensor '", printable(prev->name), "' at [", prev->begin, ", ",
                      prev->end, "]"));
    prev = &t;
  }
  for (std::size_t i = 0; i < st.tensors.size(); ++i)
    QFORGE_ASSERT(st.by_name.emplace(st.tensors[i].name, i).second);
}

}  // namespace detail

// A non-owning view of one tensor inside a mapped file: valid while the file (or any copy of it,
// or the checkpoint holding it) is alive.
class tensor_view {
 public:
  [[nodiscard]] const std::string& name() const noexcept { return info_->name; }
  [[nodiscard]] dtype type() const noexcept { return info_->type; }
  [[nodiscard]] std::span<const std::uint64_t> shape() const noexcept { return info_->shape; }
  [[nodiscard]] std::uint64_t numel() const noexcept { return info_->numel(); }
  // The raw little-endian bytes; the address has no particular alignment.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
  [[nodiscard]] const std::string& file() const noexcept { return *file_; }
  [[nodiscard]] const tensor_info& info() const noexcept { return *info_; }

  // F32/F16/BF16 to float, exactly (every half and bfloat16 value is a float). Throws
  // error::kind::unsupported for other dtypes and error::kind::argument if out.size() != numel().
  void to_f32(std::span<float> out) const {
    const std::uint64_t n = numel();
    if (out.size() != n)
      throw error(error::kind::argument, *file_,
                  cat("tensor '", detail::printable(name()), "': to_f32 given ", out.size(),
                      " floats for ", n, " elements"));
    to_f32(out, 0);
  }
  // Elements [first, first + out.size()) only (callers split a large tensor across threads).
  void to_f32(std::span<float> out, std::uint64_t first) const {
    require_float();
    const std::uint64_t n = out.size();
    if (first > numel() || n > numel() - first)
      throw error(error::kind::argument, *file_,
                  cat("tensor '", detail::printable(name()), "': to_f32 of elements [", first,
                      ", ", first + n, ") of ", numel()));
    const std::byte* p = bytes_.data() + first * size_of(type());
    switch (type()) {
      case dtype::f32:
        if (n != 0) std::memcpy(out.data(), p, n * sizeof(float));
        break;
      case dtype::f16:
        for (std::size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(load_u16(p + 2 * i));
        break;
      case dtype::bf16:
        for (std::size_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(load_u16(p + 2 * i));
        break;
      default:
        break;
    }
  }
  [[nodiscard]] std::vector<float> to_f32() const {
    require_float();  // before allocating numel() floats for nothing
    std::vector<float> out(numel());
    to_f32(out);
    return out;
  }

 private:
  friend class file;
  tensor_view(const tensor_info& info, const std::string& file,
              std::span<const std::byte> bytes) noexcept
      : info_(&info), file_(&file), bytes_(bytes) {}

  static std::uint16_t load_u16(const std::byte* p) noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  void require_float() const {
    const dtype t = type();
    if (t != dtype::f32 && t != dtype::f16 && t != dtype::bf16)
      throw error(error::kind::unsupported, *file_,
                  cat("tensor '", detail::printable(name()), "': cannot convert ", to_string(t),
                      " to F32"));
  }

  const tensor_info* info_;
  const std::string* file_;
  std::span<const std::byte> bytes_;
};

// One .safetensors file, memory-mapped and fully validated on construction. Copies share the map.
// Throws error::kind::io when the file cannot be opened, ::format for bad content, ::unsupported
// for a dtype the format defines but qforge does not model (U16, F8_E8M0, ...).
class file {
 public:
  explicit file(std::string path) {
    auto st = std::make_shared<detail::file_state>();
    st->path = std::move(path);
    st->map = mapped_file(st->path);
    detail::parse_header(*st);
    st_ = std::move(st);
  }

  [[nodiscard]] const std::string& path() const noexcept { return st_->path; }
  // In data-offset order.
  [[nodiscard]] const std::vector<tensor_info>& tensors() const noexcept { return st_->tensors; }
  [[nodiscard]] const tensor_info* find(std::string_view name) const {
    const auto it = st_->by_name.find(name);
    return it == st_->by_name.end() ? nullptr : &st_->tensors[it->second];
  }
  // Throws error::kind::format naming the file and tensor when there is no such tensor.
  [[nodiscard]] tensor_view view(std::string_view name) const {
    const tensor_info* t = find(name);
    if (t == nullptr)
      throw error(error::kind::format, path(), cat("no tensor '", detail::printable(name), "'"));
    return view(*t);
  }
  // `t` must be one of tensors().
  [[nodiscard]] tensor_view view(const tensor_info& t) const noexcept {
    return {t, st_->path, st_->map.bytes().subspan(st_->data_start + t.begin, t.end - t.begin)};
  }
  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept {
    return st_->metadata;
  }
  // File offset of the data section (8 + header length).
  [[nodiscard]] std::uint64_t data_start() const noexcept { return st_->data_start; }

 private:
  std::shared_ptr<const detail::file_state> st_;
};

namespace detail {
// A weight_map value must name a file beside the index, never a path out of the folder.
inline bool plain_file_name(std::string_view s) noexcept {
  return !s.empty() && s.find('/') == std::string_view::npos &&
         s.find('\\') == std::string_view::npos && s.find("..") == std::string_view::npos &&
         s.find('\0') == std::string_view::npos && s != ".";
}
}  // namespace detail

// A Hugging Face checkpoint: a folder holding model.safetensors.index.json (sharded), else
// model.safetensors, else exactly one *.safetensors file; or a path to a .safetensors file or an
// *.index.json. Shards are visited in file-name order (model-00001-of-00003 first).
class checkpoint {
 public:
  explicit checkpoint(std::string path) : path_(std::move(path)) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto st = fs::status(path_, ec);
    if (ec || !fs::exists(st)) throw error(error::kind::io, path_, "no such file or folder");
    if (!fs::is_directory(st)) {
      const std::string_view p = path_;
      if (p.size() >= 11 && p.substr(p.size() - 11) == ".index.json")
        open_index(path_);
      else
        open_single(path_);
      return;
    }
    const fs::path dir(path_);
    if (fs::exists(dir / "model.safetensors.index.json", ec)) {
      open_index((dir / "model.safetensors.index.json").string());
    } else if (fs::exists(dir / "model.safetensors", ec)) {
      open_single((dir / "model.safetensors").string());
    } else {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".safetensors" && e.is_regular_file(ec))
          found.push_back(e.path().filename().string());
      if (ec) throw error(error::kind::io, path_, cat("cannot list folder: ", ec.message()));
      if (found.empty()) throw error(error::kind::io, path_, "no .safetensors file in folder");
      if (found.size() > 1) {
        std::sort(found.begin(), found.end());
        std::string list;
        for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
        throw error(error::kind::format, path_,
                    cat(found.size(), " .safetensors files (", list,
                        ") and no model.safetensors.index.json to tell them apart"));
      }
      open_single((dir / found.front()).string());
    }
  }

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  // Shard order, then data-offset order within a shard.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(where_.size());
    for (const auto& f : files_)
      for (const auto& t : f.tensors()) out.push_back(t.name);
    return out;
  }
  [[nodiscard]] bool contains(std::string_view name) const { return where_.count(name) != 0; }
  // Both throw error::kind::format naming the checkpoint and tensor when it is absent.
  [[nodiscard]] const tensor_info& info(std::string_view name) const {
    const auto& [f, i] = locate(name);
    return files_[f].tensors()[i];
  }
  [[nodiscard]] tensor_view view(std::string_view name) const {
    const auto& [f, i] = locate(name);
    return files_[f].view(files_[f].tensors()[i]);
  }
  [[nodiscard]] std::uint64_t total_bytes() const {
    std::uint64_t sum = 0;
    for (const auto& f : files_)
      for (const auto& t : f.tensors()) sum = checked_add(sum, t.nbytes(), path_, "total bytes");
    return sum;
  }
  // The opened files (one, or the shards in order), e.g. for their __metadata__.
  [[nodiscard]] const std::vector<file>& files() const noexcept { return files_; }

 private:
  const std::pair<std::size_t, std::size_t>& locate(std::string_view name) const {
    const auto it = where_.find(name);
    if (it == where_.end())
      throw error(error::kind::format, path_, cat("no tensor '", detail::printable(name), "'"));
    return it->second;
  }

  void add_file(file f) {
    const std::size_t k = files_.size();
    for (std::size_t i = 0; i < f.tensors().size(); ++i)
      QFORGE_ASSERT(where_.emplace(f.tensors()[i].name, std::pair{k, i}).second);
    files_.push_back(std::move(f));
  }

  void open_single(const std::string& p) { add_file(file(p)); }

  void open_index(const std::string& index) {
    namespace fs = std::filesystem;
    const mapped_file m(index);
    if (m.size() > max_header_bytes)
      throw error(error::kind::format, index,
                  cat("index is ", m.size(), " bytes, over the limit of ", max_header_bytes));
    // Index files carry a free-form "metadata" object, so allow more nesting than a header.
    const nlohmann::json j = detail::parse_json(m.bytes(), index, 0, 16, "key");
    if (!j.is_object())
      throw error(error::kind::format, index,
                  cat("index is a JSON ", j.type_name(), ", not an object"));
    const auto wm = j.find("weight_map");
    if (wm == j.end()) throw error(error::kind::format, index, "no \"weight_map\"");
    if (!wm->is_object())
      throw error(error::kind::format, index,
                  cat("\"weight_map\" is a JSON ", wm->type_name(), ", not an object"));
    if (wm->empty()) throw error(error::kind::format, index, "\"weight_map\" lists no tensors");

    // Everything in the index is checked before any shard is touched.
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string())
        throw error(error::kind::format, index,
                    cat("tensor '", detail::printable(it.key()), "': weight_map value is a JSON ",
                        it->type_name(), ", not a file name"));
      const auto& shard = it->get_ref<const std::string&>();
      if (!detail::plain_file_name(shard))
        throw error(error::kind::format, index,
                    cat("tensor '", detail::printable(it.key()), "': shard '",
                        detail::printable(shard), "' is not a plain file name beside the index"));
      by_shard[shard].push_back(it.key());
    }

    const fs::path dir = fs::path(index).parent_path();
    for (const auto& [shard, names] : by_shard) {
      const std::string shard_path = (dir / shard).string();
      std::error_code ec;
      if (!fs::exists(shard_path, ec))
        throw error(error::kind::io, index,
                    cat("shard '", detail::printable(shard), "' (listed for tensor '",
                        detail::printable(names.front()), "') does not exist"));
      file f(shard_path);
      for (const auto& n : names)
        if (f.find(n) == nullptr)
          throw error(error::kind::format, index,
                      cat("tensor '", detail::printable(n), "': weight_map places it in shard '",
                          detail::printable(shard), "', which does not hold it"));
      for (const auto& t : f.tensors()) {
        const auto claimed = wm->find(t.name);
        if (claimed == wm->end())
          throw error(error::kind::format, index,
                      cat("shard '", detail::printable(shard), "' holds tensor '",
                          detail::printable(t.name), "', which weight_map does not list"));
        if (claimed->get_ref<const std::string&>() != shard)
          throw error(error::kind::format, index,
                      cat("shard '", detail::printable(shard), "' holds tensor '",
                          detail::printable(t.name), "', which weight_map places in shard '",
                          detail::printable(claimed->get_ref<const std::string&>()), "'"));
      }
      add_file(std::move(f));
    }
  }

  std::string path_;
  std::vector<file> files_;
  std::map<std::string, std::pair<std::size_t, std::size_t>, std::less<>> where_;
};

}  // namespace qforge::format::safetensors
