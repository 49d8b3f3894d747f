// SPDX-License-Identifier: MIT
// Readers of llama.cpp's importance-matrix files, giving the per-column weights llama-quantize
// hands to ggml_quantize_chunk. Two formats exist. The GGUF one (llama-imatrix's default output)
// stores, per weight tensor W, `W.in_sum2` F32 [n_cols, n_mat] (sums of squared activations) and
// `W.counts` F32 [1, n_mat] (activations seen per matrix, one matrix per expert), plus
// `imatrix.datasets`, `imatrix.chunk_count` and `imatrix.chunk_size`; the weights are in_sum2 /
// round(count), and 1 for a matrix that saw nothing. The legacy `.dat` is little-endian: i32 entry
// count, then per entry i32 name length, name, i32 ncall, i32 value count, f32 values (already
// averaged, times ncall), then optionally i32 chunk count, i32 length, dataset name; its weights
// are values / ncall. The arithmetic (float division, counts rounded with lround) follows
// llama-quantize's load_imatrix and common_imatrix_load so the weights, and hence the quantized
// bytes, are the same. Anything malformed, truncated, duplicated or non-finite throws qforge::error
// naming the file and entry.
// write_imatrix_gguf writes the GGUF format (what `qforge awq --imatrix-out` produces) with the
// layout llama-imatrix's save_imatrix gives it.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/core/mapped_file.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/gguf/writer.hpp"

namespace qforge::convert {

struct importance_matrix {
  std::string path;
  bool legacy = false;                // the .dat format
  std::vector<std::string> datasets;  // calibration data named in the file
  std::uint32_t chunk_count = 0;      // chunks the statistics were collected over
  std::uint32_t chunk_size = 0;       // tokens per chunk (GGUF format only)
  // Per weight-tensor name: n_cols * n_mat importance weights, matrix after matrix.
  std::map<std::string, std::vector<float>, std::less<>> weights;

  [[nodiscard]] const std::vector<float>* find(std::string_view tensor) const {
    const auto it = weights.find(tensor);
    return it == weights.end() ? nullptr : &it->second;
  }
};

namespace detail {

inline void check_finite(const importance_matrix& m, const std::string& name,
                         const std::vector<float>& w) {
  for (std::size_t i = 0; i < w.size(); ++i)
    if (!std::isfinite(w[i]))
      throw error(error::kind::format, m.path,
                  cat("entry '", name, "': importance weight ", i, " is not finite (", w[i], ")"));
}

}  // namespace detail

// The GGUF format. Throws error(format) for a file that is not an imatrix: no in_sum2/counts pairs,
// one half of a pair missing, non-F32 tensors, counts that do not divide the sums, missing
// `imatrix.*` metadata (which llama-quantize refuses too), negative or non-finite counts.
inline importance_matrix read_imatrix_gguf(const std::string& path) {
  const format::gguf::reader r(path);
  importance_matrix m;
  m.path = path;
  for (const char* key : {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"})
    if (r.find(key) == nullptr)
      throw error(error::kind::format, path,
                  cat("not an importance matrix written by llama-imatrix: no '", key, "' key"));
  const auto& ds = r.at("imatrix.datasets");
  if (!ds.is_array() || ds.array_type() != format::gguf::value_type::string)
    throw error(error::kind::format, path, "key 'imatrix.datasets': expected an array of strings");
  m.datasets = ds.strings();
  const auto u32_key = [&](std::string_view key) {
    const auto v = r.uint_at(key);
    if (v > UINT32_MAX) throw error(error::kind::format, path, cat("key '", key, "': too large"));
    return static_cast<std::uint32_t>(v);
  };
  m.chunk_count = u32_key("imatrix.chunk_count");
  m.chunk_size = u32_key("imatrix.chunk_size");

  struct pair {
    const format::gguf::tensor_info* sums = nullptr;
    const format::gguf::tensor_info* counts = nullptr;
  };
  std::map<std::string, pair, std::less<>> pairs;
  for (const auto& t : r.tensors()) {
    std::string_view n = t.name;
    if (n.ends_with(".in_sum2"))
      pairs[std::string(n.substr(0, n.size() - 8))].sums = &t;
    else if (n.ends_with(".counts"))
      pairs[std::string(n.substr(0, n.size() - 7))].counts = &t;
  }
  if (pairs.empty())
    throw error(error::kind::format, path, "no '<tensor>.in_sum2' / '<tensor>.counts' tensors");
  for (const auto& [name, p] : pairs) {
    if (p.sums == nullptr || p.counts == nullptr)
      throw error(error::kind::format, path,
                  cat("entry '", name, "': has ",
                      p.sums ? "in_sum2 but no counts" : "counts but no in_sum2"));
    if (p.sums->type != quant::qtype::f32 || p.counts->type != quant::qtype::f32)
      throw error(error::kind::format, path,
                  cat("entry '", name, "': in_sum2 and counts must be F32"));
    const std::uint64_t nval = p.sums->n_elements(), ncounts = p.counts->n_elements();
    if (nval % ncounts != 0)
      throw error(
          error::kind::format, path,
          cat("entry '", name, "': ", nval, " sums do not split into ", ncounts, " matrices"));
    std::vector<float> sums(static_cast<std::size_t>(nval)),
        counts(static_cast<std::size_t>(ncounts));
    std::memcpy(sums.data(), r.tensor_data(*p.sums).data(), sums.size() * sizeof(float));
    std::memcpy(counts.data(), r.tensor_data(*p.counts).data(), counts.size() * sizeof(float));
    const std::uint64_t ne0 = nval / ncounts;
    std::vector<float> w(sums.size());
    for (std::uint64_t j = 0; j < ncounts; ++j) {
      const float c = counts[j];
      if (!std::isfinite(c) || c < 0 || c > 9.0e18f)
        throw error(error::kind::format, path,
                    cat("entry '", name, "': count ", j, " is ", c, " (want a finite count >= 0)"));
      // Activations are counted in whole tokens: llama.cpp rounds, then divides in float.
      const float count = static_cast<float>(std::lround(c));
      for (std::uint64_t i = 0; i < ne0; ++i)
        w[j * ne0 + i] = count > 0.0f ? sums[j * ne0 + i] / count : 1.0f;
    }
    detail::check_finite(m, name, w);
    m.weights.emplace(name, std::move(w));
  }
  return m;
}

// The legacy .dat format. Throws error(format) for truncation, negative or absurd lengths,
// duplicate names, names with NUL bytes and bytes left after the optional trailer.
inline importance_matrix read_imatrix_dat(const std::string& path) {
  const mapped_file f(path);
  const auto bytes = f.bytes();
  importance_matrix m;
  m.path = path;
  m.legacy = true;
  std::uint64_t pos = 0;
  const auto i32 = [&](std::string_view what) {
    if (bytes.size() - pos < 4)
      throw error(error::kind::format, path, pos, cat("truncated: ", what, " needs 4 bytes"));
    std::uint32_t u = 0;
    for (int i = 0; i < 4; ++i)
      u |= std::uint32_t{std::to_integer<unsigned char>(bytes[pos + static_cast<std::uint64_t>(i)])}
           << (8 * i);
    pos += 4;
    return static_cast<std::int32_t>(u);
  };
  const auto text = [&](std::int32_t len, std::string_view what) {
    if (len < 0 || static_cast<std::uint64_t>(len) > bytes.size() - pos)
      throw error(error::kind::format, path, pos,
                  cat(what, " of ", len, " bytes, ", bytes.size() - pos, " left in the file"));
    std::string s(reinterpret_cast<const char*>(bytes.data() + pos), static_cast<std::size_t>(len));
    if (s.find('\0') != std::string::npos)
      throw error(error::kind::format, path, pos, cat(what, " contains a NUL byte"));
    pos += static_cast<std::uint64_t>(len);
    return s;
  };
  const std::int32_t n = i32("entry count");
  if (n < 1) throw error(error::kind::format, path, 0, cat("entry count ", n, ", want at least 1"));
  for (std::int32_t e = 0; e < n; ++e) {
    const std::uint64_t at = pos;
    std::string name = text(i32("name length"), cat("name of entry ", e + 1));
    const std::int32_t ncall = i32("call count");
    const std::int32_t nval = i32("value count");
    if (nval < 1 || static_cast<std::uint64_t>(nval) * 4 > bytes.size() - pos)
      throw error(error::kind::format, path, pos - 4,
                  cat("entry '", name, "': ", nval, " values, ", bytes.size() - pos,
                      " bytes left in the file"));
    std::vector<float> w(static_cast<std::size_t>(nval));
    std::memcpy(w.data(), bytes.data() + pos, w.size() * sizeof(float));
    pos += w.size() * sizeof(float);
    // The values are per-call averages summed over ncall chunks: divide back (float / count).
    if (ncall > 0)
      for (auto& x : w) x = x / static_cast<float>(ncall);
    detail::check_finite(m, name, w);
    if (m.weights.count(name))
      throw error(error::kind::format, path, at, cat("entry '", name, "' appears twice"));
    m.weights.emplace(std::move(name), std::move(w));
  }
  if (pos < bytes.size()) {  // optional trailer: chunk count, dataset name
    const std::int32_t chunks = i32("chunk count");
    m.chunk_count = chunks > 0 ? static_cast<std::uint32_t>(chunks) : 0;
    const std::int32_t len = i32("dataset name length");
    if (len > 0) m.datasets.push_back(text(len, "dataset name"));
    if (pos != bytes.size())
      throw error(error::kind::format, path, pos,
                  cat(bytes.size() - pos, " unexpected bytes after the dataset name"));
  }
  return m;
}

// Either format, told apart by the GGUF magic (llama.cpp tries GGUF first, then the .dat reader).
inline importance_matrix read_imatrix(const std::string& path) {
  bool gguf = false;
  {
    const mapped_file f(path);
    gguf = f.size() >= 4 && std::memcmp(f.data(), format::gguf::magic, 4) == 0;
  }
  return gguf ? read_imatrix_gguf(path) : read_imatrix_dat(path);
}

// Raw statistics of one weight tensor as llama-imatrix stores them: per matrix (expert) j, the
// sums of squared input activations of its n_cols input channels and the tokens seen.
struct imatrix_sums {
  std::vector<float> in_sum2;  // n_cols * counts.size(), matrix after matrix
  std::vector<float> counts;   // one per matrix
};

// Writes the GGUF format as llama-imatrix's save_imatrix does: `general.type` "imatrix",
// `imatrix.datasets` (string array), `imatrix.chunk_count` and `imatrix.chunk_size` (u32), then per
// entry, in byte order of the names, `<name>.in_sum2` F32 [n_cols, n_mat] and `<name>.counts` F32
// [1, n_mat]. Atomic (a temporary file renamed into place). Throws error(argument) for an empty
// set, a sum count that the matrix count does not divide, or a non-finite / negative value, and
// error(io) when writing fails.
inline void write_imatrix_gguf(const std::string& path,
                               const std::map<std::string, imatrix_sums, std::less<>>& entries,
                               const std::vector<std::string>& datasets, std::uint32_t chunk_count,
                               std::uint32_t chunk_size) {
  using format::gguf::value;
  if (entries.empty())
    throw error(error::kind::argument, path, "importance matrix with no entries");
  format::gguf::writer w;
  w.set("general.type", value::string("imatrix"));
  w.set("imatrix.datasets", value::string_array(datasets));
  w.set("imatrix.chunk_count", value::u32(chunk_count));
  w.set("imatrix.chunk_size", value::u32(chunk_size));
  for (const auto& [name, e] : entries) {
    const std::size_t nmat = e.counts.size();
    if (nmat == 0 || e.in_sum2.empty() || e.in_sum2.size() % nmat != 0)
      throw error(error::kind::argument, path,
                  cat("entry '", name, "': ", e.in_sum2.size(), " sums for ", nmat, " matrices"));
    for (const auto* v : {&e.in_sum2, &e.counts})
      for (float x : *v)
        if (!std::isfinite(x) || x < 0)
          throw error(error::kind::argument, path, cat("entry '", name, "': value ", x));
    w.add_tensor(name + ".in_sum2", {e.in_sum2.size() / nmat, nmat}, quant::qtype::f32);
    w.add_tensor(name + ".counts", {1, nmat}, quant::qtype::f32);
  }
  auto out = w.open(path);
  for (const auto& [name, e] : entries) {
    out.write_tensor(name + ".in_sum2", std::as_bytes(std::span<const float>(e.in_sum2)));
    out.write_tensor(name + ".counts", std::as_bytes(std::span<const float>(e.counts)));
  }
  out.finish();
}

}  // namespace qforge::convert
