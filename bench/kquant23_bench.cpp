// SPDX-License-Identifier: MIT
// Q2_K and Q3_K throughput per backend, with ggml's own quantizer as the baseline in the same run:
// BM_<type>_encode, _encode_imatrix, _decode and _encode_rows per backend plus
// BM_<type>_encode[_imatrix]/ggml/... (common/encode_bench.hpp has the body and the checks against
// the scalar reference).
#include "common/encode_bench.hpp"
#include "qforge/quant/q2_k/family.hpp"
#include "qforge/quant/q3_k/family.hpp"

using namespace qforge;

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const bench::options o{.shapes = {{256, 4096}}, .imatrix_seed = 41};
  bench::encode_bench<quant::q2_k::family>::register_all("q2_k", o);
  bench::encode_bench<quant::q3_k::family>::register_all("q3_k", o);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
