// SPDX-License-Identifier: MIT
// Tokenizer encode throughput on the fixtures' eval.jsonl (1 128 documents, 0.48 MB):
// BM_tokenize_encode/<model>/1thread calls encode() on each document in turn, and
// BM_tokenize_encode_batch/<model>/<n>threads runs encode_batch() on all of them with every
// hardware thread. Bytes/s count the UTF-8 input. The ids are checked once before timing: every
// tokenizer_golden.jsonl line (HF's ids) and encode_batch == encode. Compare with
// bench/tokenize_bench_hf.py (HF `tokenizers`, same data, same machine). QFORGE_FIXTURES in the
// environment overrides the fixtures folder compiled in.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "qforge/tokenize/tokenizer.hpp"

namespace {

std::string fixtures() {
  const char* env = std::getenv("QFORGE_FIXTURES");
  return env ? env : QFORGE_FIXTURES;
}

struct corpus {
  std::vector<std::string> texts;
  std::size_t bytes = 0;
};

const corpus& eval_texts() {
  static const corpus c = [] {
    corpus out;
    std::ifstream in(fixtures() + "/data/eval.jsonl");
    for (std::string line; std::getline(in, line);) {
      out.texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
      out.bytes += out.texts.back().size();
    }
    return out;
  }();
  return c;
}

// Empty when the tokenizer gives HF's ids on the golden file and batch == sequential.
std::string check(const qforge::tokenize::tokenizer& tok, const std::string& model) {
  std::ifstream in(fixtures() + "/models/" + model + "/tokenizer_golden.jsonl");
  std::size_t n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    if (tok.encode(j["text"].get<std::string>()) != j["ids"].get<std::vector<std::uint32_t>>())
      return "ids differ from tokenizer_golden.jsonl line " + std::to_string(n + 1);
  }
  if (n == 0) return "no tokenizer_golden.jsonl";
  const auto& c = eval_texts();
  if (c.texts.empty()) return "no eval.jsonl";
  const auto batch = tok.encode_batch(std::span<const std::string>(c.texts));
  for (std::size_t i = 0; i < c.texts.size(); ++i)
    if (batch[i] != tok.encode(c.texts[i])) return "encode_batch differs from encode";
  return {};
}

void bm_encode(benchmark::State& state, const std::string& model) {
  const qforge::tokenize::tokenizer tok(fixtures() + "/models/" + model);
  if (const auto err = check(tok, model); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  const auto& c = eval_texts();
  std::size_t tokens = 0;
  for (auto _ : state) {
    tokens = 0;
    for (const auto& t : c.texts) tokens += tok.encode(t).size();
    benchmark::DoNotOptimize(tokens);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes));
  state.counters["tokens"] = static_cast<double>(tokens);
}

void bm_encode_batch(benchmark::State& state, const std::string& model, unsigned threads) {
  const qforge::tokenize::tokenizer tok(fixtures() + "/models/" + model);
  if (const auto err = check(tok, model); !err.empty()) {
    state.SkipWithError(err.c_str());
    return;
  }
  const auto& c = eval_texts();
  for (auto _ : state) {
    auto ids = tok.encode_batch(std::span<const std::string>(c.texts), {}, threads);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * c.bytes));
}

const bool registered = [] {
  const unsigned all = std::max(1u, std::thread::hardware_concurrency());
  for (const std::string model : {"tiny-llama", "tiny-qwen3"}) {
    benchmark::RegisterBenchmark(("BM_tokenize_encode/" + model + "/1thread").c_str(), bm_encode,
                                 model)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(
        ("BM_tokenize_encode_batch/" + model + "/" + std::to_string(all) + "threads").c_str(),
        bm_encode_batch, model, all)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
