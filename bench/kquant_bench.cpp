// SPDX-License-Identifier: MIT
// Q4_K, Q5_K and Q6_K (the Q4_K_M / Q5_K_M workhorses) throughput per backend, with ggml's own
// quantizer as the baseline in the same run: BM_<type>_encode, _encode_imatrix, _decode and
// _encode_rows per backend plus BM_<type>_encode[_imatrix]/ggml/... (common/encode_bench.hpp has
// the body and the checks against the scalar reference).
#include "common/encode_bench.hpp"
#include "qforge/quant/q4_k/family.hpp"
#include "qforge/quant/q5_k/family.hpp"
#include "qforge/quant/q6_k/family.hpp"

using namespace qforge;

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const bench::options o{.shapes = {{256, 4096}}, .imatrix_seed = 41};
  bench::encode_bench<quant::q4_k::family>::register_all("q4_k", o);
  bench::encode_bench<quant::q5_k::family>::register_all("q5_k", o);
  bench::encode_bench<quant::q6_k::family>::register_all("q6_k", o);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
