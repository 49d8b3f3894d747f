// SPDX-License-Identifier: MIT
// Advice printed under the benchmark table, derived from the measured rows and the model, never
// canned: which artefact suits which deployment target (vLLM GPU serving -> AWQ; llama.cpp /
// Ollama / Apple Silicon -> GGUF Q4_K_M, Q5_K_M when quality matters, Q8_0 when size does not),
// with each candidate's measured size and perplexity change; quants that lose more than
// `flag_pct` perplexity or answer noticeably fewer tasks flagged; a note when the model is small
// enough that quantizing rarely pays; and a reminder when perplexity was measured on contexts far
// shorter than the model's.
#pragma once
#include <string>
#include <vector>

#include "qforge/report/benchmark.hpp"
#include "qforge/report/table.hpp"

namespace qforge::report {

struct advice_options {
  double flag_pct = 3.0;           // Δ perplexity above this is flagged
  double task_drop = 0.10;         // exact-match share lost vs the reference that is flagged
  std::uint32_t model_ctx = 0;     // the model's context length (0: unknown)
};

inline std::vector<std::string> advise(const bench_report& rep, const advice_options& o = {}) {
  std::vector<std::string> out;
  if (rep.rows.empty()) return out;
  const auto& ref = rep.rows[0];
  const double params = static_cast<double>(ref.artefact.weights);
  const auto find = [&](const std::string& format) -> const bench_row* {
    for (const auto& r : rep.rows)
      if (r.artefact.format == format) return &r;
    return nullptr;
  };
  const auto what = [](const bench_row& r) {
    return cat(r.artefact.format, " (", detail::size_text(r.artefact.bytes), ", ",
               detail::fmt("%+.2f %% perplexity", r.ppl_delta_pct), ")");
  };
  if (params < 3e9)
    out.push_back(cat("The model has ", detail::fmt("%.2f", params / 1e9), " B weights: at ",
                      ref.artefact.format, " it already takes ", detail::size_text(ref.artefact.bytes),
                      ". Models under 3 B rarely need quantizing for GPU serving; quantize for "
                      "CPUs, phones or many replicas, where memory bandwidth sets the speed."));
  for (const auto& r : rep.rows) {
    if (r.reference || !r.tokens) continue;
    if (r.ppl_delta_pct > o.flag_pct)
      out.push_back(cat("FLAG: ", what(r), " loses more than ", detail::fmt("%.0f", o.flag_pct),
                        " %: check it on your own tasks before deploying, or use a larger format."));
    if (r.tasks.total && ref.tasks.total &&
        ref.tasks.exact_rate() - r.tasks.exact_rate() > o.task_drop)
      out.push_back(cat("FLAG: ", r.artefact.format, " answers ", r.tasks.exact, "/", r.tasks.total,
                        " tasks exactly, the reference ", ref.tasks.exact, "/", ref.tasks.total, "."));
  }
  if (const auto* awq = find("AWQ w4 g128"); awq || find("AWQ w4 g64") || find("AWQ w4 g32")) {
    if (!awq) awq = find("AWQ w4 g64") ? find("AWQ w4 g64") : find("AWQ w4 g32");
    out.push_back(cat("GPU serving with vLLM or transformers: ", what(*awq),
                      "; vLLM picks its Marlin kernel on Ampere and newer (qforge check --target vllm "
                      "tells which tensor-parallel sizes load)."));
  }
  if (const auto* q4 = find("GGUF Q4_K_M"))
    out.push_back(cat("llama.cpp / Ollama / Apple Silicon: ", what(*q4), " is the usual default."));
  if (const auto* q5 = find("GGUF Q5_K_M"))
    out.push_back(cat("When quality matters more than size: ", what(*q5), "."));
  if (const auto* q8 = find("GGUF Q8_0"))
    out.push_back(cat("When size does not matter: ", what(*q8), ", close to lossless."));
  if (o.model_ctx && rep.settings.ctx * 4 <= o.model_ctx)
    out.push_back(cat("Perplexity was measured on the first ", rep.settings.ctx,
                      " tokens of each document; the model takes ", o.model_ctx,
                      ": test long-context use (quantization error grows with context) before "
                      "relying on these numbers for long prompts."));
  return out;
}

}  // namespace qforge::report
