// SPDX-License-Identifier: MIT
// What `qforge bench` and `qforge pipeline` share once their inputs are read: running the
// benchmark on the chosen device (CPU sessions, or CUDA sessions when this build has the CUDA
// kernels), then the markdown table on stdout, the advice under it, <stem>.{md,csv,json} and
// <stem>.png (gnuplot) in the output folder.
#pragma once
#include <cstdio>
#include <memory>
#include <string>

#include "qforge/report/advice.hpp"
#include "qforge/report/plot.hpp"
#include "qforge/report/table.hpp"
#if defined(QFORGE_HAVE_CUDA_KERNELS)
#include "qforge/engine/cuda/session.hpp"
#endif

namespace CLI {
class App;
}

namespace qforge::cli {

// The measurement options both subcommands take (--ctx, --max-docs, --speed-*, --threads, ...).
void add_bench_settings(CLI::App& cmd, report::bench_settings& st);

inline report::bench_report run_benchmark_on_device(const report::bench_inputs& in,
                                                    const report::bench_settings& st,
                                                    engine::thread_pool& pool, bool quiet) {
  const auto say = [quiet](const std::string& msg) {
    if (!quiet) std::fprintf(stderr, "%s\n", msg.c_str());
  };
  report::bench_report rep;
  if (st.device == "cuda") {
#if defined(QFORGE_HAVE_CUDA_KERNELS)
    if (!engine::cuda_device_available())
      throw error(error::kind::cuda, "--device cuda: no CUDA device is available");
    if (in.lora) throw error(error::kind::unsupported, "--lora: LoRA adapters run on the CPU engine only");
    rep = report::run_benchmark(
        in, st,
        [](const engine::model& m, std::size_t ctx) { return std::make_unique<engine::cuda_session>(m, ctx); },
        say);
    rep.kernels = "cuda";
#else
    throw error(error::kind::unsupported,
                "--device cuda: this qforge was built without CUDA (configure with nvcc and "
                "QFORGE_CUDA=AUTO or ON)");
#endif
  } else {
    rep = report::run_benchmark(
        in, st,
        [&](const engine::model& m, std::size_t ctx) {
          return std::make_unique<engine::session>(m, pool, ctx);
        },
        say);
    rep.kernels = engine::cpu_ops().name;
  }
  rep.threads = pool.size();
  if (in.lora) rep.adapter = in.lora->path;
  return rep;
}

inline void print_and_save_report(const report::bench_report& rep, const std::string& out_dir,
                                  bool plot, std::uint32_t model_ctx,
                                  const std::string& stem = "results") {
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
              "decoded tokens%s%s.\n",
              st.device.c_str(), rep.kernels.c_str(), rep.threads,
              rep.rows.empty() ? 0 : rep.rows[0].tokens, rep.rows.empty() ? 0 : rep.rows[0].docs,
              st.ctx, rep.eval_file.c_str(), st.speed_reps, st.speed_prompt, st.speed_decode,
              rep.adapter.empty() ? "" : "; LoRA adapter ", rep.adapter.c_str());
  if (out_dir.empty()) return;
  report::write_report_files(rep, out_dir, stem);
  std::string files = stem + ".md, " + stem + ".csv, " + stem + ".json";
  if (plot) {
    const auto p = report::plot_results(rep, out_dir + "/" + stem + ".png");
    if (p.drawn) files += ", " + stem + ".png";
    else std::fprintf(stderr, "qforge: note: %s\n", p.message.c_str());
  }
  std::printf("Written to %s: %s.\n", out_dir.c_str(), files.c_str());
}

}  // namespace qforge::cli
