// SPDX-License-Identifier: MIT
// Standalone check and timing of the engine's CUDA kernels (engine/cuda/*.cuh through the host API
// of engine/cuda/matvec.hpp and ops.hpp), built with plain nvcc by bench/device/run_cuda_engine.sh
// on the GPU machine. Checks: every matvec (Q4_K, Q6_K, Q8_0, F16 blocks; AWQ GEMM layout) against
// its CPU reference (the reference decoders of quant/<type>/ref.hpp, or (q - z) * s for AWQ, then
// a double-precision dot product) on fresh random weights and activations, for odd shapes, 1..11
// tokens, each rows-per-warp variant, accumulate on/off, PDL on/off, with outputs poisoned (NaN)
// before each run. Tolerance: |y - ref| <= 1e-4 * sum_k |w_k x_k| per output (float32 sums of a
// few hundred terms per lane land near 1e-6; a misplaced weight costs about 1e-2). Single-token
// Q4_K / Q6_K products quantize x to 8 bits as the CPU engine's decode does: their reference multiplies
// the same codes (x rounded through qdot::quantize_q8_k_ref), and the float path is checked too. The small ops
// against plain loops; split-KV attention against the one-CTA kernel and a double reference
// (relative L2 <= 1e-5, bit-identical with one active slice); then a 2-layer model decoded step by step through a captured CUDA graph, in
// every weight format, against a CPU forward pass on the same weights (max |d logit| <= 1e-3 x
// max |logit| in float32; 1e-2 for the FP16 path, whose activations are rounded to fp16 for
// cuBLAS), and PDL on/off giving bit-identical logits (every kernel sums in a fixed order).
// Timings (--full): device bandwidth (cudaMemcpy D2D, read+write bytes; a read-only kernel), each
// matvec at 4096x4096, 11008x4096 and 4096x11008 (rows x cols = out x in) as the mean over a
// captured graph of back-to-back launches rotating over weight copies 4x the L2, and decode tok/s
// of 7B-shaped models with random weights (FP16 via cuBLAS, AWQ, Q4_K_M, Q8_0) at KV positions
// 64..127 and 512..639, the latter also with split-KV attention off.
// Usage: cuda_engine [--quick|--full|--bench|--profile|--probe] [out_dir] (--bench: quick checks, then the
// timings). Exit status 1 on any failed check.
#include <cstdio>
#include <string>

#include "engine/cuda_harness.cuh"

using namespace cuda_harness;

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach the log even if the run dies
  bool full = false, profile = false, bench = false, probe = false;
  std::string out_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--full") full = true;
    else if (a == "--bench") bench = true;  // quick checks, then the timings
    else if (a == "--quick") full = false;
    else if (a == "--profile") profile = true;
    else if (a == "--probe") probe = true;  // bandwidth, then probe_matvec alone
    else out_dir = a;
  }
  try {
    if (profile) {
      QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
      profile_kernels();
      return 0;
    }
    cudaDeviceProp prop{};
    QFORGE_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs, %zu MB L2, cc %d.%d\n", prop.name, prop.multiProcessorCount,
                static_cast<std::size_t>(prop.l2CacheSize) >> 20, prop.major, prop.minor);
    QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    if (!out_dir.empty() && (full || bench)) csv = std::fopen((out_dir + "/cuda_engine.csv").c_str(), "w");
    if (probe) {
      probe_matvec(measure_bandwidth());
      std::printf("checks: %d passed, %d failed\n", passes, failures);
      return failures ? 1 : 0;
    }
    ec::blas blas;
    ec::awq_workspace ws(11008, 11008);
    const bool quick = !full;
    std::printf("checks against the CPU references:\n");
    std::uint64_t seed = 1;
    const std::size_t gshapes[][2] = {{1, 256}, {37, 512}, {129, 2304}, {64, 4096}, {300, 11008}};
    for (qtype t : {qtype::q4_k, qtype::q6_k, qtype::q8_0, qtype::f16})
      for (const auto& sh : gshapes) {
        if (quick && sh[1] > 4096) continue;
        check_gguf(t, sh[0], sh[1], seed++, quick);
      }
    for (std::size_t t : {std::size_t{1}, std::size_t{2}}) {  // Q8_0 / F16 rows of 64-multiples
      check_gguf(qtype::q8_0, 5, 64 * t, seed++, quick);
      check_gguf(qtype::f16, 5, 64 * (2 * t + 1), seed++, quick);
    }
    const std::size_t ashapes[][3] = {{8, 32, 32}, {256, 256, 128}, {264, 512, 64}, {4096, 512, 128}, {520, 11008, 128}};
    for (const auto& sh : ashapes) check_awq(sh[0], sh[1], sh[2], seed++, quick, ws);
    check_prologues(seed++, ws);
    check_pdl_chain(seed++, ws);
    check_ops(seed++);
    check_attention_split(seed++);
    for (const char* mix : {"f16", "f16-own", "awq", "q4_k_m", "q8_0"}) check_model(mix, seed++, blas);
    std::printf("checks: %d passed, %d failed\n", passes, failures);
    if (full || bench) {
      const bandwidth bw = measure_bandwidth();
      try {
        bench_matvec(bw, blas);
      } catch (const std::exception& e) {
        std::printf("matvec timing FAILED: %s\n", e.what());
        cudaGetLastError();
      }
      bench_decode(bw, blas);
      summarize(bw);
    }
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  } catch (const std::exception& e) {
    std::printf("ERROR: %s\n", e.what());
    if (csv) std::fclose(csv);
    return 2;
  }
  if (csv) std::fclose(csv);
  return failures == 0 ? 0 : 1;
}
