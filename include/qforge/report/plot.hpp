// SPDX-License-Identifier: MIT
// results.png: size against perplexity (each artefact a labelled point) and decode / prefill
// throughput per format, drawn by gnuplot (Debian's gnuplot-nox or gnuplot). The data and the
// script are written beside the picture so it can be redrawn or restyled; the PNG is drawn under a
// temporary name and renamed. Without gnuplot the benchmark still completes and the caller is told
// why there is no picture.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "qforge/core/atomic_file.hpp"
#include "qforge/report/benchmark.hpp"

namespace qforge::report {

struct plot_result {
  bool drawn = false;
  std::string message;  // why not, when not drawn
};

inline bool have_gnuplot() { return std::system("gnuplot --version >/dev/null 2>&1") == 0; }

// Writes <stem>.dat and <stem>.gp beside `png`, then runs gnuplot.
inline plot_result plot_results(const bench_report& rep, const std::string& png) {
  namespace fs = std::filesystem;
  const fs::path out(png);
  const fs::path dat = fs::path(png).replace_extension(".dat");
  const fs::path gp = fs::path(png).replace_extension(".gp");
  {
    std::ofstream d(dat);
    d << "# format size_mib perplexity decode_tok_s prefill_tok_s\n";
    for (const auto& r : rep.rows) {
      std::string label = r.artefact.format;
      for (auto& c : label)
        if (c == ' ') c = '_';
      d << '"' << label << "\" " << static_cast<double>(r.artefact.bytes) / (1 << 20) << ' '
        << r.ppl << ' ' << r.speed.decode_tok_s << ' ' << r.speed.prefill_tok_s << '\n';
    }
    if (!d) throw error(error::kind::io, dat.string(), "cannot write");
  }
  const std::string tmp = atomic_file::temp_path_for(png);
  {
    std::ofstream g(gp);
    g << "# qforge benchmark picture; redraw with: gnuplot " << gp.filename().string() << "\n"
      << "set terminal pngcairo size 1400,560 font 'sans,11' noenhanced\n"
      << "if (!exists('out')) out = '" << out.string() << "'\n"
      << "set output out\n"
      << "set multiplot layout 1,2 title 'qforge: " << rep.rows.size() << " artefacts, "
      << rep.settings.device << "'\n"
      << "set title 'size vs perplexity (lower left is better)'\n"
      << "set xlabel 'size on disk (MiB)'\nset ylabel 'perplexity'\nset grid\nunset key\n"
      << "set offsets graph 0.08, graph 0.2, graph 0.1, graph 0.1\n"
      << "plot '" << dat.string() << "' using 2:3 with points pt 7 ps 1.5, '' using 2:3:1 with labels "
      << "offset 0,1 font ',9'\n"
      << "set title 'throughput'\nset ylabel 'tokens/s'\nset xlabel ''\nset key top right\n"
      << "set style data histograms\nset style histogram clustered gap 1\n"
      << "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset xtics rotate by -30\n"
      << "set offsets 0,0,0,0\nset yrange [0:*]\n"
      << "plot '" << dat.string() << "' using 4:xtic(1) title 'decode', '' using 5 title 'prefill'\n"
      << "unset multiplot\n";
    if (!g) throw error(error::kind::io, gp.string(), "cannot write");
  }
  if (!have_gnuplot())
    return {false, cat("gnuplot not found: no picture (apt-get install gnuplot-nox); data in ",
                       dat.string(), ", script in ", gp.string())};
  const std::string cmd = cat("gnuplot -e \"out='", tmp, "'\" '", gp.string(), "' >&2");
  if (std::system(cmd.c_str()) != 0 || !fs::exists(tmp)) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return {false, cat("gnuplot failed on ", gp.string())};
  }
  fs::rename(tmp, out);
  return {true, {}};
}

}  // namespace qforge::report
