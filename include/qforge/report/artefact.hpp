// SPDX-License-Identifier: MIT
// What a deployment artefact is, before anything runs it: a Hugging Face checkpoint folder (FP16 /
// BF16 / F32 safetensors), an AutoAWQ GEMM folder (the same, with qweight / qzeros / scales and a
// quantization_config), or a GGUF file. The table's size and bits-per-weight columns come from
// here: size is the bytes on disk of the files a server loads (safetensors shards or the GGUF
// file; tokenizer and config files are noise and left out), bits per weight is that over the
// number of weights, where an AWQ linear counts in x out weights whatever its packing.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "qforge/convert/mix.hpp"
#include "qforge/core/error.hpp"
#include "qforge/engine/config.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::report {

enum class artefact_kind { checkpoint, awq, gguf };

struct artefact_info {
  std::string path;
  artefact_kind kind = artefact_kind::checkpoint;
  std::string format;          // "FP16", "BF16", "AWQ w4 g128", "GGUF Q4_K_M", ...
  std::uint64_t bytes = 0;     // on disk, weight files only
  std::uint64_t weights = 0;   // parameters the file stands for
  [[nodiscard]] double bits_per_weight() const noexcept {
    return weights ? 8.0 * static_cast<double>(bytes) / static_cast<double>(weights) : 0.0;
  }
};

namespace detail {

inline std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The GGUF file type as llama-quantize names it (general.file_type), else the dominant tensor type.
inline std::string gguf_format_name(const format::gguf::reader& r) {
  if (const auto* ft = r.find("general.file_type"))
    if (const auto v = ft->as_uint()) {
      if (const auto m = convert::find_mix(static_cast<quant::file_type>(*v)))
        return "GGUF " + std::string(m->name);
      switch (*v) {
        case 0: return "GGUF F32";
        case 1: return "GGUF F16";
        case 7: return "GGUF Q8_0";
        case 32: return "GGUF BF16";
        default: break;
      }
    }
  return "GGUF";
}

inline artefact_info describe_gguf(const std::string& path) {
  const format::gguf::reader r(path);
  artefact_info a;
  a.path = path;
  a.kind = artefact_kind::gguf;
  a.format = gguf_format_name(r);
  a.bytes = std::filesystem::file_size(path);
  for (const auto& t : r.tensors()) a.weights += t.n_elements();
  return a;
}

// The checkpoint's weight files as loaders pick them: the shards named by
// model.safetensors.index.json, else model.safetensors, else every *.safetensors (a folder may hold
// other safetensors files, such as reference outputs, that no server loads).
inline std::uint64_t weight_file_bytes(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d(dir);
  std::uint64_t bytes = 0;
  if (const auto index = format::hf::read_json_if_exists((d / "model.safetensors.index.json").string())) {
    std::set<std::string> shards;
    if (const auto m = index->find("weight_map"); m != index->end() && m->is_object())
      for (const auto& f : *m)
        if (f.is_string()) shards.insert(f.get<std::string>());
    for (const auto& f : shards) bytes += fs::file_size(d / f);
    return bytes;
  }
  if (fs::exists(d / "model.safetensors")) return fs::file_size(d / "model.safetensors");
  for (const auto& e : fs::directory_iterator(d))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") bytes += e.file_size();
  return bytes;
}

inline artefact_info describe_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  const format::safetensors::checkpoint ckpt(dir);
  artefact_info a;
  a.path = dir;
  std::string dtype;
  for (const auto& name : ckpt.names()) {
    const auto& t = ckpt.info(name);
    if (name.ends_with(".qweight")) {
      a.weights += t.numel() * 8;  // eight 4-bit weights per int32
    } else if (name.ends_with(".qzeros") || name.ends_with(".scales")) {
      // quantization overhead: bytes counted, no weights
    } else {
      a.weights += t.numel();
      if (dtype.empty() && t.shape.size() == 2)
        dtype = std::string(format::safetensors::to_string(t.type));
    }
  }
  a.bytes = weight_file_bytes(dir);
  const auto config = format::hf::read_json_if_exists((fs::path(dir) / "config.json").string());
  const nlohmann::json* q = nullptr;
  if (config && config->contains("quantization_config")) q = &(*config)["quantization_config"];
  if (q) {
    a.kind = artefact_kind::awq;
    const auto method = q->value("quant_method", std::string("?"));
    a.format = cat(upper(method), " w", q->value("bits", 0), " g", q->value("group_size", 0));
  } else {
    a.format = dtype.empty() ? "HF safetensors" : "HF " + dtype;
  }
  return a;
}

}  // namespace detail

// Throws error(io) for a path that does not exist, error(format) for one that is neither a model
// folder nor a GGUF file (the readers' own errors name the file and the problem).
inline artefact_info describe_artefact(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw error(error::kind::io, path, "not found");
  if (fs::is_directory(path, ec)) return detail::describe_folder(path);
  return detail::describe_gguf(path);
}

// The engine's view of the artefact's model (vocabulary, context length, ...) without loading weights.
inline engine::model_config artefact_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return engine::from_hf(format::hf::read_config(path));
  return engine::from_gguf(format::gguf::reader(path));
}

}  // namespace qforge::report
