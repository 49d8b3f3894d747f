// SPDX-License-Identifier: MIT
// qforge gguf MODEL_DIR -o OUT.gguf --type f16|bf16|f32|q8_0|<llama-quantize mix, e.g. q4_k_m>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "progress.hpp"
#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/convert/quantize.hpp"

namespace qforge::cli {

namespace {

struct gguf_args {
  std::string model_dir;
  std::string out;
  std::string type = "f16";
  std::string name;
  int threads = 0;
  bool quiet = false;
};

quant::qtype parse_output_type(const std::string& s) {
  if (s == "f32") return quant::qtype::f32;
  if (s == "f16") return quant::qtype::f16;
  if (s == "bf16") return quant::qtype::bf16;
  if (s == "q8_0") return quant::qtype::q8_0;
  throw error(error::kind::argument, cat("--type ", s, ": expected f32, f16, bf16, q8_0 or a mix (",
                                         convert::mix_names(), ")"));
}

void run(const gguf_args& a) {
  const auto mix = a.type == "q8_0" ? std::nullopt : convert::find_mix(a.type);
  const auto type = mix ? quant::qtype::f16 : parse_output_type(a.type);
  std::string out = a.out;
  if (out.empty()) {
    std::string base = a.model_dir;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    base = base.substr(base.rfind('/') == std::string::npos ? 0 : base.rfind('/') + 1);
    out = base + "-" + a.type + ".gguf";
  }
  progress bar(!a.quiet);
  if (mix) {  // F16 plan, each tensor quantized in memory: the bytes llama-quantize gives
    convert::quantize_options q;
    q.ftype = mix->ftype;
    q.threads = a.threads;
    q.on_tensor = [&](std::size_t i, std::size_t n, const convert::quantized_tensor& t) {
      std::string dims;
      for (auto d : t.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
      bar.step(i, n, cat(t.name, " ", quant::name(t.to), " ", dims));
    };
    const auto r = convert::convert_to_gguf_mix(a.model_dir, out, q, a.name);
    for (const auto& w : r.warnings) std::fprintf(stderr, "qforge: warning: %s\n", w.c_str());
    std::printf("%s: %s, %zu tensors, %.1f MiB, %.2f s\n", out.c_str(),
                std::string(mix->name).c_str(), r.tensors.size(),
                static_cast<double>(r.bytes_written) / (1 << 20), r.seconds);
    return;
  }
  convert::conversion_options opt;
  opt.type = type;
  opt.name = a.name;
  opt.threads = a.threads;
  opt.on_tensor = [&](std::size_t i, std::size_t n, const convert::planned_tensor& t) {
    std::string dims;
    for (auto d : t.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    bar.step(i, n, cat(t.gguf_name, " ", quant::name(t.type), " ", dims));
  };
  const auto r = convert::convert_to_gguf(a.model_dir, out, opt);
  for (const auto& w : r.plan.warnings) std::fprintf(stderr, "qforge: warning: %s\n", w.c_str());
  std::printf("%s: %zu tensors, %.1f MiB, %.2f s (%.0f MB/s read)\n", out.c_str(),
              r.plan.tensors.size(), static_cast<double>(r.bytes_written) / (1 << 20), r.seconds,
              r.seconds > 0 ? static_cast<double>(r.bytes_read) / 1e6 / r.seconds : 0.0);
}

}  // namespace

void register_gguf(CLI::App& app) {
  auto args = std::make_shared<gguf_args>();
  auto* cmd = app.add_subcommand(
      "gguf", "Convert a Hugging Face checkpoint (safetensors, F32/F16/BF16) to a GGUF file");
  cmd->add_option("MODEL_DIR", args->model_dir, "Folder with config.json, *.safetensors, tokenizer.json")
      ->required();
  cmd->add_option("-o,--output", args->out, "Output .gguf path (default: <folder>-<type>.gguf)");
  cmd->add_option("-t,--type", args->type,
                  "Output type: f16, bf16, f32, q8_0, or a llama-quantize mix (q4_k_m, q5_k_m, ...)")
      ->capture_default_str();
  cmd->add_option("--name", args->name, "general.name (default: from the folder name)");
  cmd->add_option("-j,--threads", args->threads, "Worker threads (0: all cores)")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args] { run(*args); });
}

}  // namespace qforge::cli
