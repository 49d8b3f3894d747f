// SPDX-License-Identifier: MIT
// qforge quantize IN.gguf OUT.gguf Q4_K_M [--imatrix FILE] [--threads N]: llama-quantize's job,
// same output bytes (convert/quantize.hpp).
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "progress.hpp"
#include "qforge/convert/quantize.hpp"

namespace qforge::cli {

namespace {

struct quantize_args {
  std::string in, out, type, imatrix;
  int threads = 0;
  bool quiet = false;
};

void run(const quantize_args& a) {
  const auto mix = convert::require_mix(a.type);
  convert::importance_matrix im;
  convert::quantize_options opt;
  opt.ftype = mix.ftype;
  opt.threads = a.threads;
  if (!a.imatrix.empty()) {
    im = convert::read_imatrix(a.imatrix);
    opt.imatrix = &im;
  }
  progress bar(!a.quiet);
  opt.on_tensor = [&](std::size_t i, std::size_t n, const convert::quantized_tensor& t) {
    std::string dims;
    for (auto d : t.dims) dims += (dims.empty() ? "" : "x") + std::to_string(d);
    bar.step(i, n, cat(t.name, " ", quant::name(t.to), " ", dims));
  };
  const auto r = convert::quantize_gguf(a.in, a.out, opt);
  for (const auto& w : r.warnings) std::fprintf(stderr, "qforge: warning: %s\n", w.c_str());
  std::printf("%s: %s, %zu tensors, %.2f MiB -> %.2f MiB, %.2f s\n", a.out.c_str(),
              std::string(mix.name).c_str(), r.tensors.size(),
              static_cast<double>(r.bytes_read) / (1 << 20),
              static_cast<double>(r.bytes_written) / (1 << 20), r.seconds);
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto args = std::make_shared<quantize_args>();
  auto* cmd = app.add_subcommand("quantize",
                                 "Quantize an F32/F16/BF16 GGUF like llama-quantize (same "
                                 "per-tensor types, same bytes)");
  cmd->add_option("IN", args->in, "Input .gguf (F32, F16 or BF16 weights)")->required();
  cmd->add_option("OUT", args->out, "Output .gguf")->required();
  cmd->add_option("TYPE", args->type, "Mix: " + convert::mix_names())->required();
  cmd->add_option("--imatrix", args->imatrix,
                  "Importance matrix (llama-imatrix .gguf or legacy .dat)");
  cmd->add_option("-j,--threads", args->threads, "Worker threads (0: all cores)")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args->quiet, "No progress on stderr");
  cmd->callback([args] { run(*args); });
}

}  // namespace qforge::cli
