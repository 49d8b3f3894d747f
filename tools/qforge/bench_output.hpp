// SPDX-License-Identifier: MIT
// What `qforge bench` and `qforge pipeline` print and write once a benchmark has run: the markdown
// table on stdout, the advice under it, results.{md,csv,json} and results.png (gnuplot) in the
// output folder. Shared by the two subcommands so their tables are the same.
#pragma once
#include <cstdio>
#include <string>

#include "qforge/report/advice.hpp"
#include "qforge/report/plot.hpp"
#include "qforge/report/table.hpp"

namespace CLI {
class App;
}

namespace qforge::cli {

// The measurement options both subcommands take (--ctx, --max-docs, --speed-*, --threads, ...).
void add_bench_settings(CLI::App& cmd, report::bench_settings& st);

inline void print_and_save_report(const report::bench_report& rep, const std::string& out_dir,
                                  bool plot, std::uint32_t model_ctx) {
  std::printf("\n%s\n", report::to_markdown(rep).c_str());
  report::advice_options ao;
  ao.model_ctx = model_ctx;
  const auto advice = report::advise(rep, ao);
  if (!advice.empty()) {
    std::printf("Advice:\n");
    for (const auto& a : advice) std::printf("- %s\n", a.c_str());
    std::printf("\n");
  }
  const auto& st = rep.settings;
  std::printf("Measured on %s with %s kernels, %zu threads; perplexity/KL over %zu tokens of %zu "
              "documents (first %zu tokens each) of %s; speed: best of %d, %zu-token prompt, %zu "
              "decoded tokens.\n",
              st.device.c_str(), rep.kernels.c_str(), rep.threads,
              rep.rows.empty() ? 0 : rep.rows[0].tokens, rep.rows.empty() ? 0 : rep.rows[0].docs,
              st.ctx, rep.eval_file.c_str(), st.speed_reps, st.speed_prompt, st.speed_decode);
  if (out_dir.empty()) return;
  report::write_report_files(rep, out_dir);
  std::string files = "results.md, results.csv, results.json";
  if (plot) {
    const auto p = report::plot_results(rep, out_dir + "/results.png");
    if (p.drawn) files += ", results.png";
    else std::fprintf(stderr, "qforge: note: %s\n", p.message.c_str());
  }
  std::printf("Written to %s: %s.\n", out_dir.c_str(), files.c_str());
}

}  // namespace qforge::cli
