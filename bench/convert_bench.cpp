// SPDX-License-Identifier: MIT
// HF -> GGUF conversion throughput: BM_convert/<model>/<type>, bytes/s of checkpoint tensor data
// read (the whole job: config, tokenizer metadata, permutation, type conversion, atomic write with
// fsync). Output is written to a scratch file under /tmp and checked once against a re-read.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/format/gguf/reader.hpp"

namespace {

void bm_convert(benchmark::State& state, std::string model, qforge::quant::qtype type) {
  const std::string dir = std::string(QFORGE_FIXTURES) + "/models/" + model;
  const std::string out = (std::filesystem::temp_directory_path() / ("qforge-bench-" + model + ".gguf")).string();
  qforge::convert::conversion_options opt;
  opt.type = type;
  std::uint64_t read = 0;
  for (auto _ : state) {
    const auto r = qforge::convert::convert_to_gguf(dir, out, opt);
    read = r.bytes_read;
    benchmark::DoNotOptimize(r.bytes_written);
  }
  const qforge::format::gguf::reader check(out);  // the artefact is a valid GGUF
  if (check.tensors().empty()) state.SkipWithError("no tensors written");
  state.SetBytesProcessed(static_cast<std::int64_t>(read) * static_cast<std::int64_t>(state.iterations()));
  std::filesystem::remove(out);
}

}  // namespace

int main(int argc, char** argv) {
  using qforge::quant::qtype;
  for (const char* model : {"tiny-llama", "small-llama"}) {
    for (auto [type, name] : {std::pair{qtype::f16, "f16"}, std::pair{qtype::bf16, "bf16"},
                              std::pair{qtype::f32, "f32"}, std::pair{qtype::q8_0, "q8_0"}}) {
      benchmark::RegisterBenchmark((std::string("BM_convert/") + model + "/" + name).c_str(),
                                   bm_convert, std::string(model), type)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
