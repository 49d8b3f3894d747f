// SPDX-License-Identifier: MIT
// qforge inspect FILE: a GGUF file, a .safetensors file or a model folder -- metadata, tensor table,
// sizes and bits per weight.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "commands.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::cli {

namespace {

struct inspect_args {
  std::string path;
  std::size_t max_array = 8;
  bool no_tensors = false;
};

std::string join_dims(std::span<const std::uint64_t> dims) {
  std::string s;
  for (auto d : dims) s += (s.empty() ? "" : " x ") + std::to_string(d);
  return s;
}

double mib(std::uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

void inspect_gguf(const inspect_args& a) {
  const format::gguf::reader r(a.path);
  std::printf("%s: GGUF v%u, alignment %llu, %zu metadata keys, %zu tensors\n\n", a.path.c_str(),
              r.version(), static_cast<unsigned long long>(r.alignment()), r.metadata().size(),
              r.tensors().size());
  for (const auto& [key, v] : r.metadata())
    std::printf("  %-44s %s\n", key.c_str(), format::gguf::to_string(v, a.max_array).c_str());
  std::uint64_t total = 0, elems = 0;
  std::map<std::string, std::pair<std::size_t, std::uint64_t>> by_type;
  if (!a.no_tensors) std::printf("\n  %-40s %-8s %-22s %12s\n", "tensor", "type", "dims", "bytes");
  for (const auto& t : r.tensors()) {
    std::uint64_t n = 1;
    for (auto d : t.dims) n *= d;
    total += t.size_bytes;
    elems += n;
    auto& slot = by_type[std::string(quant::name(t.type))];
    ++slot.first;
    slot.second += t.size_bytes;
    if (!a.no_tensors)
      std::printf("  %-40s %-8s %-22s %12llu\n", t.name.c_str(),
                  std::string(quant::name(t.type)).c_str(), join_dims(t.dims).c_str(),
                  static_cast<unsigned long long>(t.size_bytes));
  }
  std::printf("\n  by type:");
  for (const auto& [name, s] : by_type)
    std::printf("  %s %zu (%.1f MiB)", name.c_str(), s.first, mib(s.second));
  std::printf("\n  total: %llu parameters, %.2f MiB of tensor data, %.2f bits per weight\n",
              static_cast<unsigned long long>(elems), mib(total),
              elems ? 8.0 * static_cast<double>(total) / static_cast<double>(elems) : 0.0);
}

void inspect_safetensors(const inspect_args& a) {
  const format::safetensors::checkpoint ck(a.path);
  if (std::filesystem::is_directory(a.path) &&
      std::filesystem::exists(std::filesystem::path(a.path) / "config.json")) {
    const auto c = format::hf::read_config(a.path);
    std::printf("%s: %s (%s), %u layers, hidden %u, heads %u/%u, head_dim %u, ffn %u, vocab %u, "
                "rope theta %g%s%s\n\n",
                a.path.c_str(), c.hf_architecture.c_str(), to_string(c.arch), c.n_layers,
                c.hidden_size, c.n_heads, c.n_kv_heads, c.head_dim, c.intermediate_size,
                c.vocab_size, c.rope_theta, c.tie_word_embeddings ? ", tied embeddings" : "",
                c.scaling.type == "none" ? "" : (", rope scaling " + c.scaling.type).c_str());
  }
  std::uint64_t elems = 0;
  const auto names = ck.names();
  if (!a.no_tensors) std::printf("  %-52s %-5s %-16s %12s\n", "tensor", "dtype", "shape", "bytes");
  for (const auto& n : names) {
    const auto& t = ck.info(n);
    std::uint64_t e = 1;
    for (auto d : t.shape) e *= d;
    elems += e;
    if (!a.no_tensors)
      std::printf("  %-52s %-5s %-16s %12llu\n", n.c_str(),
                  std::string(format::safetensors::to_string(t.type)).c_str(),
                  join_dims(t.shape).c_str(), static_cast<unsigned long long>(t.end - t.begin));
  }
  std::printf("\n  total: %zu tensors, %llu parameters, %.2f MiB\n", names.size(),
              static_cast<unsigned long long>(elems), mib(ck.total_bytes()));
}

void run(const inspect_args& a) {
  namespace fs = std::filesystem;
  if (!fs::exists(a.path)) throw error(error::kind::io, a.path, "no such file or folder");
  if (fs::is_regular_file(a.path)) {
    char magic[4] = {};
    if (FILE* f = std::fopen(a.path.c_str(), "rb")) {
      const auto got = std::fread(magic, 1, 4, f);
      std::fclose(f);
      if (got == 4 && std::string_view(magic, 4) == "GGUF") return inspect_gguf(a);
    }
    if (a.path.ends_with(".gguf")) return inspect_gguf(a);  // reader reports the bad magic
  }
  inspect_safetensors(a);
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto args = std::make_shared<inspect_args>();
  auto* cmd = app.add_subcommand(
      "inspect", "Show a GGUF file, a .safetensors file or a model folder: metadata, tensors, sizes");
  cmd->add_option("FILE", args->path, "GGUF file, .safetensors file or model folder")->required();
  cmd->add_option("--max-array", args->max_array, "Array elements to print per metadata key")
      ->capture_default_str();
  cmd->add_flag("--no-tensors", args->no_tensors, "Only metadata and totals");
  cmd->callback([args] { run(*args); });
}

}  // namespace qforge::cli
