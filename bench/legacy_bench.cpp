// SPDX-License-Identifier: MIT
// Throughput of the legacy 32-weight types (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL) per backend on one
// thread: BM_<type>_encode/<backend>/<rows>x<cols>, BM_<type>_decode/..., the importance-weighted
// encoder BM_<type>_encode_imatrix/scalar/... only (the weighted search is the reference on every
// backend), and ggml's own quantizer as the baseline in the same run,
// BM_<type>_encode[_imatrix]/ggml/... (common/encode_bench.hpp has the body and the checks against
// the scalar reference).
#include "common/encode_bench.hpp"
#include "qforge/quant/iq4_nl/family.hpp"
#include "qforge/quant/q4_0/family.hpp"
#include "qforge/quant/q4_1/family.hpp"
#include "qforge/quant/q5_0/family.hpp"
#include "qforge/quant/q5_1/family.hpp"

using namespace qforge;

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const bench::options big{.shapes = {{512, 4096}, {4096, 4096}},
                           .imatrix_seed = 17,
                           .imatrix_every_backend = false,
                           .encode_rows = false};
  // IQ4_NL's encoder is a per-block search (every backend runs it), so it gets the smaller shape.
  bench::options small = big;
  small.shapes = {{512, 4096}};
  bench::encode_bench<quant::q4_0::family>::register_all("q4_0", big);
  bench::encode_bench<quant::q4_1::family>::register_all("q4_1", big);
  bench::encode_bench<quant::q5_0::family>::register_all("q5_0", big);
  bench::encode_bench<quant::q5_1::family>::register_all("q5_1", big);
  bench::encode_bench<quant::iq4_nl::family>::register_all("iq4_nl", small);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
