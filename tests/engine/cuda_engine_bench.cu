// SPDX-License-Identifier: MIT
// The CUDA engine harness's timings: the device's bandwidth (D2D copy, a read-only kernel), each
// matvec at 4096x4096, 11008x4096 and 4096x11008 over weights rotating through copies 4x the L2, the
// summary table, and the launches Nsight Compute profiles (--profile).
#include "engine/cuda_harness.cuh"

namespace cuda_harness {

bandwidth measure_bandwidth() {
  const std::size_t bytes = std::size_t{2} << 30;
  dev<std::uint8_t> a(bytes), b(bytes);
  dev<float> out(1);
  fill_words(a.p, bytes, 1);
  bandwidth bw;
  const double tc = time_it([&] {
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, g_stream));
  }, 10);
  bw.copy = 2.0 * bytes / tc;
  int sms = 0;
  QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const double tr = time_it([&] {
    read_kernel<<<sms * 8, 512, 0, g_stream>>>(reinterpret_cast<const float4*>(a.p), bytes / 16, out.p);
  }, 10);
  bw.read = bytes / tr;
  std::printf("bandwidth: D2D copy %.0f GB/s (read + write), read-only kernel %.0f GB/s\n",
              bw.copy * 1e-9, bw.read * 1e-9);
  if (csv) std::fprintf(csv, "bandwidth,copy,%.1f\nbandwidth,read,%.1f\n", bw.copy * 1e-9, bw.read * 1e-9);
  return bw;
}

void bench_matvec(const bandwidth& bw, ec::blas& blas) {
  int l2 = 0;
  QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  std::printf("matvec, batch 1, mean over back-to-back launches in a CUDA graph, weights rotating over copies >= 4x L2 (%d MB):\n", l2 >> 20);
  const std::size_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  ec::awq_workspace ws(11008, 11008);
  for (const auto& sh : shapes) {
    const std::size_t rows = sh[0], cols = sh[1];
    dev<float> x(cols), y(rows);
    dev<std::uint16_t> xh(cols);
    fill_f32(x.p, cols, 5, 1.0f);
    fill_f16(xh.p, cols, 6, 1.0f);
    {  // the ceiling: a kernel that only streams the Q4_K matrix's bytes, in the same harness
      const double bytes = static_cast<double>(rows * row_bytes(qtype::q4_k, cols));
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<dev<std::uint8_t>> w;
      for (std::size_t c = 0; c < copies; ++c) w.emplace_back(static_cast<std::size_t>(bytes));
      int sms = 0;
      QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      const double tt = time_graph([&](std::size_t i) {
        read_kernel<<<sms * 4, 512, 0, g_stream>>>(reinterpret_cast<const float4*>(w[i % copies].p),
                                                     static_cast<std::size_t>(bytes) / 16, y.p);
      }, count);
      report("stream", "read-only", rows, cols, bytes, tt, bw);
      const double tp = time_graph([&](std::size_t i) {
        ec::detail::launch(read_kernel, dim3(sms * 4), dim3(512), 0, g_stream, true,
                           reinterpret_cast<const float4*>(w[i % copies].p),
                           static_cast<std::size_t>(bytes) / 16, y.p);
      }, count);
      report("stream", "read-only+pdl", rows, cols, bytes, tp, bw);
    }
    for (qtype t : {qtype::q4_k, qtype::q6_k, qtype::q8_0, qtype::f16}) {
      const double bytes = static_cast<double>(rows * row_bytes(t, cols));
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<dev<std::uint8_t>> w;
      for (std::size_t c = 0; c < copies; ++c) {
        w.emplace_back((static_cast<std::size_t>(bytes) + 3) / 4 * 4);
        make_gguf(t, w.back().p, rows, cols, 1000 + c);
      }
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      for (int rpw : {0, 1, 2, 4})
        for (int pdl = 0; pdl < 3; ++pdl) {  // off, early trigger, late trigger (default rows only)
          if (pdl == 2 && rpw != 0) continue;
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.early_trigger = pdl != 2;
          o.rows_per_warp = rpw;
          const double tt = time_graph([&](std::size_t i) {
            ec::matvec(t, w[i % copies].p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
          }, count);
          char v[32];
          if (rpw == 0) std::snprintf(v, sizeof v, "default%s", pdl == 2 ? "+pdl-late" : pdl ? "+pdl" : "");
          else std::snprintf(v, sizeof v, "rpw%d%s", rpw, pdl ? "+pdl" : "");
          report(std::string(quant::name(t)).c_str(), v, rows, cols, bytes, tt, bw);
        }
      if (t == qtype::q4_k || t == qtype::q6_k)  // the float-activation kernels, for comparison
        for (int pdl = 0; pdl < 2; ++pdl) {
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.int8_activations = false;
          const double tt = time_graph([&](std::size_t i) {
            ec::matvec(t, w[i % copies].p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
          }, count);
          report(std::string(quant::name(t)).c_str(), pdl ? "f32x+pdl" : "f32x", rows, cols, bytes, tt, bw);
        }
      if (t == qtype::f16) {
        const double tt = time_graph([&](std::size_t i) {
          ec::dense_f16(blas, reinterpret_cast<const std::uint16_t*>(w[i % copies].p), rows, cols,
                        xh.p, cols, 1, y.p, rows, false, g_stream);
        }, count);
        report("f16", "cublas", rows, cols, bytes, tt, bw);
      }
    }
    {
      const awq_dev probe(cols, rows, 128, 1);
      const double bytes = probe.bytes();
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<awq_dev> a;
      for (std::size_t c = 0; c < copies; ++c) a.emplace_back(cols, rows, 128, 2000 + 3 * c);
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      for (int kpw : {0, 32, 64})
        for (int pdl = 0; pdl < 2; ++pdl) {  // awq_matvec triggers its successor late under PDL
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.awq_k_per_warp = kpw;
          const double tt = time_graph([&](std::size_t i) {
            ec::awq_matvec(a[i % copies].view(), x.p, cols, 1, y.p, rows, false, ws, o);
          }, count);
          char v[32];
          if (kpw == 0) std::snprintf(v, sizeof v, "default%s", pdl ? "+pdl" : "");
          else std::snprintf(v, sizeof v, "k%d%s", kpw, pdl ? "+pdl" : "");
          report("awq-g128", v, rows, cols, bytes, tt, bw);
        }
    }
  }
}

// Per kind and shape: the default launch, the default with PDL, and the best variant measured.
void summarize(const bandwidth& bw) {
  std::printf("matvec summary (batch 1; %% of the measured D2D copy bandwidth %.0f GB/s):\n", bw.copy * 1e-9);
  std::printf("  %-9s %-11s %18s %18s %26s\n", "kind", "out x in", "default", "default+pdl", "best");
  for (std::size_t i = 0; i < g_rows.size(); ++i) {
    const auto& r = g_rows[i];
    bool first = true;
    for (std::size_t j = 0; j < i; ++j)
      if (g_rows[j].kind == r.kind && g_rows[j].rows == r.rows && g_rows[j].cols == r.cols) first = false;
    if (!first) continue;
    const bench_row *def = nullptr, *pdl = nullptr, *best = nullptr;
    for (const auto& q : g_rows) {
      if (q.kind != r.kind || q.rows != r.rows || q.cols != r.cols) continue;
      if (q.variant == "default" || q.variant == "cublas") def = &q;
      if (q.variant == "default+pdl") pdl = &q;
      if (best == nullptr || q.t < best->t) best = &q;
    }
    const auto cell = [&](const bench_row* q) {
      static char buf[4][64];
      static int k = 0;
      char* b = buf[k++ % 4];
      if (q == nullptr) std::snprintf(b, 64, "-");
      else std::snprintf(b, 64, "%.0f GB/s %.1f%%", q->bytes / q->t * 1e-9, 100 * q->bytes / q->t / bw.copy);
      return b;
    };
    char sh[32];
    std::snprintf(sh, sizeof sh, "%zux%zu", r.rows, r.cols);
    std::printf("  %-9s %-11s %18s %18s %18s (%s)\n", r.kind.c_str(), sh, cell(def), cell(pdl), cell(best),
                best->variant.c_str());
  }
}

// --profile: two launches each of the default Q4_K and AWQ kernels at 11008x4096, for ncu.
void profile_kernels() {
  const std::size_t rows = 11008, cols = 4096;
  dev<std::uint8_t> w(rows * row_bytes(qtype::q4_k, cols));
  make_gguf(qtype::q4_k, w.p, rows, cols, 1);
  const awq_dev a(cols, rows, 128, 2);
  ec::awq_workspace ws(cols, rows);
  dev<float> x(cols), y(rows);
  fill_f32(x.p, cols, 3, 1.0f);
  ec::launch_opts o;
  o.stream = g_stream;
  for (int i = 0; i < 2; ++i) ec::matvec(qtype::q4_k, w.p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
  for (int i = 0; i < 2; ++i) ec::awq_matvec(a.view(), x.p, cols, 1, y.p, rows, false, ws, o);
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

}  // namespace cuda_harness
