// SPDX-License-Identifier: MIT
// Writes an AWQ checkpoint folder the way transformers' save_pretrained lays one out, so that
// transformers and vLLM load it unchanged: the tensors in model.safetensors, or, above the shard
// limit, in model-0000i-of-0000n.safetensors plus model.safetensors.index.json ({"metadata":
// {"total_size"}, "weight_map"}); config.json = the source config with torch_dtype float16 and
// quantization_config {quant_method awq, bits 4, group_size, zero_point true, version gemm,
// modules_to_not_convert null}; tokenizer files, generation config and chat template copied from
// the source. Everything is written into "<out>.qforge.tmp/" and renamed to <out> at the end (an
// existing folder, with overwrite, is swapped out atomically), so a failed or killed run leaves
// the previous folder, or nothing, under the output name -- never a partial one.
#pragma once
#include <fcntl.h>
#include <stdio.h>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/core/error.hpp"
#include "qforge/format/safetensors/writer.hpp"

namespace qforge::awq {

struct output_tensor {
  std::string name;
  format::safetensors::dtype type;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> data;
};

template <class T>
std::vector<std::byte> as_bytes_vec(const std::vector<T>& v) {
  std::vector<std::byte> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// Files copied from the source folder when present.
inline constexpr const char* side_files[] = {
    "tokenizer.json",      "tokenizer_config.json", "special_tokens_map.json",
    "tokenizer.model",     "vocab.json",            "merges.txt",
    "added_tokens.json",   "generation_config.json", "chat_template.jinja",
    "chat_template.json"};

// config.json of the output: the source's with the quantization keys.
inline nlohmann::ordered_json awq_config(const std::string& model_dir, std::size_t group) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path);
  if (!in) throw error(error::kind::io, path, "cannot open");
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw error(error::kind::format, path, e.what());
  }
  j["torch_dtype"] = "float16";
  if (j.contains("dtype")) j["dtype"] = "float16";
  j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4},
                              {"group_size", group},   {"zero_point", true},
                              {"version", "gemm"},     {"modules_to_not_convert", nullptr}};
  return j;
}

inline void write_text(const std::string& path, const std::string& text) {
  atomic_file f(path);
  f.write(text.data(), text.size());
  f.commit();
}

// Writes the folder. Throws error::kind::argument when `out_dir` exists and is not empty (unless
// overwrite), ::io on any write failure (the temporary folder is removed).
inline void write_awq_folder(const std::string& model_dir, const std::string& out_dir,
                             const std::deque<output_tensor>& tensors, std::size_t group,
                             std::uint64_t max_shard_bytes = std::uint64_t{5} << 30,
                             bool overwrite = false) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path out(out_dir);
  if (fs::exists(out, ec) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec))) {
    if (!overwrite)
      throw error(error::kind::argument, out_dir,
                  "output exists and is not an empty folder (remove it or pass --force)");
    // --force replaces a previous model folder, never an arbitrary path.
    if (!fs::is_directory(out, ec) || !fs::exists(out / "config.json", ec))
      throw error(error::kind::argument, out_dir,
                  "output exists and is not a model folder (no config.json): not replacing it");
  }
  const fs::path tmp = out.string() + ".qforge.tmp";
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec) || ec)
    throw error(error::kind::io, tmp.string(), cat("cannot create folder: ", ec.message()));
  try {
    // Plan shards in order: a new shard starts when the next tensor would pass the limit.
    std::vector<std::vector<const output_tensor*>> shards(1);
    std::uint64_t size = 0, total = 0;
    for (const auto& t : tensors) {
      if (size > 0 && size + t.data.size() > max_shard_bytes) {
        shards.emplace_back();
        size = 0;
      }
      shards.back().push_back(&t);
      size += t.data.size();
      total += t.data.size();
    }
    nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < shards.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      const std::string file = shards.size() == 1 ? "model.safetensors" : name;
      format::safetensors::writer w;
      w.set_metadata("format", "pt");
      for (const auto* t : shards[i]) {
        w.add(t->name, t->type, t->shape, t->data);
        weight_map[t->name] = file;
      }
      w.write((tmp / file).string());
    }
    if (shards.size() > 1) {
      nlohmann::ordered_json index;
      index["metadata"] = {{"total_size", total}};
      index["weight_map"] = weight_map;
      write_text((tmp / "model.safetensors.index.json").string(), index.dump(2) + "\n");
    }
    write_text((tmp / "config.json").string(), awq_config(model_dir, group).dump(2) + "\n");
    for (const char* f : side_files) {
      const fs::path src = fs::path(model_dir) / f;
      if (fs::exists(src, ec) && !fs::copy_file(src, tmp / f, ec))
        throw error(error::kind::io, src.string(), cat("cannot copy: ", ec.message()));
    }
    if (fs::exists(out, ec)) {
      // Swap the finished folder and the previous one in one step, so a kill at any point leaves
      // the previous artefact or the new one under the final name, never neither; then drop the old.
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, out.c_str(), RENAME_EXCHANGE) == 0) {
        fs::remove_all(tmp, ec);
        return;
      }
      // No atomic exchange on this file system: keep the old folder aside until the new one is in.
      const fs::path aside = fs::path(out_dir + ".qforge.old");
      fs::remove_all(aside, ec);
      fs::rename(out, aside, ec);
      if (ec) throw error(error::kind::io, out_dir, cat("cannot move the previous folder aside: ", ec.message()));
      fs::rename(tmp, out, ec);
      if (ec) {
        std::error_code back;
        fs::rename(aside, out, back);
        throw error(error::kind::io, out_dir, cat("cannot rename into place: ", ec.message()));
      }
      fs::remove_all(aside, ec);
      return;
    }
    fs::rename(tmp, out, ec);
    if (ec) throw error(error::kind::io, out_dir, cat("cannot rename into place: ", ec.message()));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace qforge::awq
