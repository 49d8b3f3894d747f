// SPDX-License-Identifier: MIT
// The benchmark report in three shapes: a markdown table for people (stdout, README), CSV for
// spreadsheets and JSON for programs, the JSON carrying every setting of the run (context, speed
// lengths, repetitions, threads, kernels, inputs) so it can be reproduced. Sizes are MiB/GiB of
// 2^20 / 2^30 bytes.
#pragma once
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "qforge/core/atomic_file.hpp"
#include "qforge/report/benchmark.hpp"

namespace qforge::report {

namespace detail {

inline std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

inline std::string size_text(std::uint64_t bytes) {
  const double mib = static_cast<double>(bytes) / (1 << 20);
  return mib >= 1024 ? fmt("%.2f GiB", mib / 1024) : fmt("%.1f MiB", mib);
}

inline std::string row_peak(const bench_row& r) {
  return r.peak_known ? size_text(r.peak_bytes) : "n/a";
}

inline std::string row_tasks(const bench_row& r) {
  if (!r.tasks.total) return "-";
  return cat(r.tasks.exact, "/", r.tasks.total, " exact, ", r.tasks.contains, " contain");
}

}  // namespace detail

inline std::string to_markdown(const bench_report& rep) {
  using detail::fmt;
  std::string s =
      "| format | size | bits/weight | vs FP16 | prefill tok/s | decode tok/s | first token | peak "
      "memory | perplexity | Δ ppl | mean KL | top-1 | tasks |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rep.rows) {
    s += cat("| ", r.artefact.format, " | ", detail::size_text(r.artefact.bytes), " | ",
             fmt("%.2f", r.artefact.bits_per_weight()), " | ", fmt("%.2fx", r.compression), " | ",
             fmt("%.1f", r.speed.prefill_tok_s), " | ", fmt("%.1f", r.speed.decode_tok_s), " | ",
             fmt("%.1f ms", 1e3 * r.speed.time_to_first_token), " | ", detail::row_peak(r), " | ",
             r.tokens ? fmt("%.4f", r.ppl) : "-", " | ",
             r.reference ? std::string("ref") : fmt("%+.2f %%", r.ppl_delta_pct), " | ",
             r.reference ? std::string("0") : fmt("%.5f", r.kl_mean), " | ",
             fmt("%.2f %%", 100 * r.top1), " | ", detail::row_tasks(r), " |\n");
  }
  return s;
}

inline std::string to_csv(const bench_report& rep) {
  using detail::fmt;
  std::string s =
      "format,path,bytes,bits_per_weight,compression,prefill_tok_s,decode_tok_s,"
      "time_to_first_token_s,peak_bytes,perplexity,ppl_delta_pct,kl_mean,kl_p99,kl_max,top1,"
      "tokens,tasks,tasks_exact,tasks_contains\n";
  const auto quoted = [](const std::string& v) {
    std::string q = "\"";
    for (const char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const auto& r : rep.rows)
    s += cat(quoted(r.artefact.format), ",", quoted(r.artefact.path), ",", r.artefact.bytes, ",",
             fmt("%.4f", r.artefact.bits_per_weight()), ",", fmt("%.4f", r.compression), ",",
             fmt("%.2f", r.speed.prefill_tok_s), ",", fmt("%.2f", r.speed.decode_tok_s), ",",
             fmt("%.6f", r.speed.time_to_first_token), ",",
             r.peak_known ? std::to_string(r.peak_bytes) : std::string(), ",",
             fmt("%.6f", r.ppl), ",", fmt("%.4f", r.ppl_delta_pct), ",", fmt("%.8f", r.kl_mean),
             ",", fmt("%.8f", r.kl_p99), ",", fmt("%.8f", r.kl_max), ",", fmt("%.6f", r.top1),
             ",", r.tokens, ",", r.tasks.total, ",", r.tasks.exact, ",", r.tasks.contains, "\n");
  return s;
}

inline nlohmann::json to_json(const bench_report& rep) {
  nlohmann::json j;
  const auto& st = rep.settings;
  j["settings"] = {{"ctx", st.ctx},
                   {"max_docs", st.max_docs},
                   {"speed_prompt_tokens", st.speed_prompt},
                   {"speed_decode_tokens", st.speed_decode},
                   {"speed_repetitions", st.speed_reps},
                   {"task_tokens", st.task_tokens},
                   {"decoding", "greedy (argmax), no sampling: no seed needed"},
                   {"threads", rep.threads},
                   {"device", st.device},
                   {"kernels", rep.kernels},
                   {"eval_file", rep.eval_file},
                   {"tasks_file", rep.tasks_file},
                   {"lora_adapter", rep.adapter}};
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rep.rows) {
    nlohmann::json row = {{"format", r.artefact.format},
                          {"path", r.artefact.path},
                          {"reference", r.reference},
                          {"bytes", r.artefact.bytes},
                          {"weights", r.artefact.weights},
                          {"bits_per_weight", r.artefact.bits_per_weight()},
                          {"compression", r.compression},
                          {"prefill_tok_s", r.speed.prefill_tok_s},
                          {"decode_tok_s", r.speed.decode_tok_s},
                          {"time_to_first_token_s", r.speed.time_to_first_token},
                          {"perplexity", r.ppl},
                          {"ppl_delta_pct", r.ppl_delta_pct},
                          {"kl_mean", r.kl_mean},
                          {"kl_p99", r.kl_p99},
                          {"kl_max", r.kl_max},
                          {"top1_agreement", r.top1},
                          {"tokens", r.tokens},
                          {"documents", r.docs},
                          {"tasks", r.tasks.total},
                          {"tasks_exact", r.tasks.exact},
                          {"tasks_contains", r.tasks.contains},
                          {"answers", r.answers},
                          {"seconds", r.seconds}};
    row["peak_bytes"] = r.peak_known ? nlohmann::json(r.peak_bytes) : nlohmann::json();
    j["rows"].push_back(std::move(row));
  }
  return j;
}

// <stem>.md, <stem>.csv and <stem>.json in `dir`, each written atomically.
inline void write_report_files(const bench_report& rep, const std::string& dir,
                               const std::string& stem = "results") {
  const auto save = [&](const std::string& name, const std::string& text) {
    atomic_file f(dir + "/" + name);
    f.write(text.data(), text.size());
    f.commit();
  };
  save(stem + ".md", to_markdown(rep));
  save(stem + ".csv", to_csv(rep));
  save(stem + ".json", to_json(rep).dump(2) + "\n");
}

}  // namespace qforge::report
