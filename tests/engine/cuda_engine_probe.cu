// SPDX-License-Identifier: MIT
// The CUDA engine harness's probe (--probe): where a matvec's time goes.
#include "engine/cuda_harness.cuh"
#include "qforge/engine/cuda/matvec_awq.cuh"

namespace cuda_harness {

// --- the probe (--probe): where a matvec's time goes ---------------------------------------------
// Per shape: the kernel cold (weights rotating over copies >= 4x L2) and hot (one copy, L2-resident:
// what is left is compute, latency and launch), a load-only kernel with the AWQ kernel's exact
// access pattern (the memory system's share), and the AWQ kernel on a column-tile-major copy of
// qweight ([out / 256][in][32] words: each warp's rows contiguous), checked bit-identical to the
// AutoAWQ layout at the same k per warp.
template <int KS, bool Tiled>
__global__ void __launch_bounds__(256) awq_load_only(const std::uint32_t* __restrict__ qweight, int K,
                                                     int N, std::uint32_t* out) {
  ec::detail::allow_dependents();
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int n8 = N / 8, c = static_cast<int>(blockIdx.x) * 32 + lane;
  const int kk = (static_cast<int>(blockIdx.y) * 8 + warp) * KS;
  std::uint32_t a = 0;
  if constexpr (Tiled) {
    const std::uint32_t* p = qweight + (static_cast<std::size_t>(blockIdx.x) * K + kk) * 32 + lane;
#pragma unroll
    for (int i = 0; i < KS; ++i) a ^= __ldg(p + 32 * i);
  } else {
#pragma unroll
    for (int i = 0; i < KS; ++i) a ^= __ldg(qweight + static_cast<std::size_t>(kk + i) * n8 + c);
  }
  ec::detail::wait_for_inputs();
  if (a == 0x9e3779b9u) out[0] = a;
}

// qweight [K][n8] -> [n8 / 32][K][32].
__global__ void awq_tile_kernel(const std::uint32_t* src, std::uint32_t* dst, int K, int n8) {
  const std::size_t n = static_cast<std::size_t>(K) * n8;
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n; i += std::size_t{gridDim.x} * blockDim.x) {
    const std::size_t k = i / n8, c = i % n8;
    dst[(c / 32 * K + k) * 32 + c % 32] = src[i];
  }
}

template <int KS, bool Tiled>
void launch_awq_variant(const awq_dev& a, const std::uint32_t* qweight, const float* x, float* y,
                        float* ws, unsigned* tickets, bool pdl) {
  const dim3 grid(ec::detail::awq_col_tiles(a.out), ec::detail::awq_k_splits(a.in, KS));
  ec::detail::launch(ec::detail::awq_matvec_kernel<1, false, KS, Tiled>, grid, dim3(256), 0, g_stream, pdl,
                     qweight, a.qzeros.p, a.scales.p, static_cast<int>(a.in), static_cast<int>(a.out),
                     static_cast<int>(a.group), x, a.in, y, a.out, 0, ws, tickets, 0, ec::detail::prologue_none,
                     static_cast<const float*>(nullptr), 0.0f);
}

void probe_matvec(const bandwidth& bw) {
  int l2 = 0, sms = 0;
  QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::printf("probe: cold = weights rotating over copies >= 4x L2, hot = one copy (L2-resident)\n");
  const std::size_t shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
  dev<float> ws(std::size_t{96} * 11008);
  dev<unsigned> tickets(64);
  QFORGE_CUDA_CHECK(cudaMemset(tickets.p, 0, 64 * sizeof(unsigned)));
  dev<std::uint32_t> sink(1);
  for (const auto& sh : shapes) {
    const std::size_t rows = sh[0], cols = sh[1];
    dev<float> x(cols), y(rows), y2(rows);
    fill_f32(x.p, cols, 5, 1.0f);
    {
      const awq_dev probe(cols, rows, 128, 1);
      const double bytes = probe.bytes();
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<awq_dev> a;
      std::vector<dev<std::uint32_t>> tiled;
      for (std::size_t c = 0; c < copies; ++c) {
        a.emplace_back(cols, rows, 128, 2000 + 3 * c);
        tiled.emplace_back(a.back().qweight.n);
        QFORGE_CUDA_CHECK(cudaDeviceSynchronize());  // the fills ran on the legacy stream
        awq_tile_kernel<<<1024, 256, 0, g_stream>>>(a.back().qweight.p, tiled.back().p, static_cast<int>(cols),
                                                    static_cast<int>(rows / 8));
        QFORGE_CUDA_CHECK_LAUNCH();
      }
      QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      const auto both = [&](const char* name, std::size_t n_copies, auto&& enqueue) {
        for (int pdl = 0; pdl < 2; ++pdl) {
          const double t = time_graph([&](std::size_t i) { enqueue(i % n_copies, pdl != 0); },
                                      n_copies == 1 ? 240 : count);
          report("awq-probe", (std::string(name) + (pdl ? "+pdl" : "")).c_str(), rows, cols, bytes, t, bw);
        }
      };
      both("stream", copies, [&](std::size_t i, bool pdl) {
        ec::detail::launch(read_kernel, dim3(sms * 4), dim3(512), 0, g_stream, pdl,
                           reinterpret_cast<const float4*>(a[i].qweight.p), a[i].qweight.n / 4, y.p);
      });
      both("ks64-hot", 1, [&](std::size_t i, bool pdl) {
        launch_awq_variant<64, false>(a[i], a[i].qweight.p, x.p, y.p, ws.p, tickets.p, pdl);
      });
      both("tiled64-hot", 1, [&](std::size_t i, bool pdl) {
        launch_awq_variant<64, true>(a[i], tiled[i].p, x.p, y.p, ws.p, tickets.p, pdl);
      });
      both("load64", copies, [&](std::size_t i, bool pdl) {
        const dim3 grid(ec::detail::awq_col_tiles(rows), ec::detail::awq_k_splits(cols, 64));
        ec::detail::launch(awq_load_only<64, false>, grid, dim3(256), 0, g_stream, pdl,
                           static_cast<const std::uint32_t*>(a[i].qweight.p), static_cast<int>(cols),
                           static_cast<int>(rows), sink.p);
      });
      both("load64-tiled", copies, [&](std::size_t i, bool pdl) {
        const dim3 grid(ec::detail::awq_col_tiles(rows), ec::detail::awq_k_splits(cols, 64));
        ec::detail::launch(awq_load_only<64, true>, grid, dim3(256), 0, g_stream, pdl,
                           static_cast<const std::uint32_t*>(tiled[i].p), static_cast<int>(cols),
                           static_cast<int>(rows), sink.p);
      });
      const auto variant = [&]<int KS>(std::integral_constant<int, KS>) {
        both(("ks" + std::to_string(KS)).c_str(), copies, [&](std::size_t i, bool pdl) {
          launch_awq_variant<KS, false>(a[i], a[i].qweight.p, x.p, y.p, ws.p, tickets.p, pdl);
        });
        both(("tiled" + std::to_string(KS)).c_str(), copies, [&](std::size_t i, bool pdl) {
          launch_awq_variant<KS, true>(a[i], tiled[i].p, x.p, y.p, ws.p, tickets.p, pdl);
        });
        launch_awq_variant<KS, false>(a[0], a[0].qweight.p, x.p, y.p, ws.p, tickets.p, false);
        launch_awq_variant<KS, true>(a[0], tiled[0].p, x.p, y2.p, ws.p, tickets.p, false);
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        const auto u = y.down(), v = y2.down();
        expect(std::memcmp(u.data(), v.data(), u.size() * sizeof(float)) == 0,
               "awq tiled layout bit-identical at k per warp " + std::to_string(KS));
      };
      variant(std::integral_constant<int, 64>{});
      variant(std::integral_constant<int, 32>{});
      variant(std::integral_constant<int, 16>{});
    }
    {
      const double bytes = static_cast<double>(rows * row_bytes(qtype::q4_k, cols));
      const std::size_t copies = std::max<std::size_t>(2, static_cast<std::size_t>(4.0 * l2 / bytes) + 1);
      std::vector<dev<std::uint8_t>> w;
      for (std::size_t c = 0; c < copies; ++c) {
        w.emplace_back((static_cast<std::size_t>(bytes) + 3) / 4 * 4);
        make_gguf(qtype::q4_k, w.back().p, rows, cols, 1000 + c);
      }
      const std::size_t count = std::max<std::size_t>(copies, 240) / copies * copies;
      for (int hot = 0; hot < 2; ++hot)
        for (int pdl = 0; pdl < 2; ++pdl) {
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          const std::size_t n = hot ? 1 : copies;
          const double t = time_graph([&](std::size_t i) {
            ec::matvec(qtype::q4_k, w[i % n].p, rows, cols, x.p, cols, 1, y.p, rows, false, o);
          }, hot ? 240 : count);
          report("q4k-probe", (std::string(hot ? "hot" : "cold") + (pdl ? "+pdl" : "")).c_str(), rows, cols,
                 bytes, t, bw);
        }
    }
  }
}

}  // namespace cuda_harness
