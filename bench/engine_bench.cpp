// SPDX-License-Identifier: MIT
// CPU engine speed on small-llama: BM_engine_prefill/<type>/<prompt> and BM_engine_decode/<type>
// for the F16 and Q8_0 GGUF that qforge's converter writes (items/s = tokens/s), then llama.cpp on
// the same files in the same run through bench/llama_cpp_speed.py (llama-cpp-python), with the same
// workload as engine::measure_speed, and the ratio. Threads: QFORGE_BENCH_THREADS (default 1: the
// shared build machines are oversubscribed, where one thread gives the steadiest numbers); the
// Python comparison is skipped when QFORGE_BENCH_NO_LLAMA_CPP is set or python3 lacks llama_cpp.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/engine/measure.hpp"

using namespace qforge;

namespace {

constexpr std::size_t prompt_tokens = 128, decode_tokens = 64;

int threads() {
  const char* e = std::getenv("QFORGE_BENCH_THREADS");
  return e != nullptr && std::atoi(e) > 0 ? std::atoi(e) : 1;
}

std::string gguf(quant::qtype t) {
  static std::map<quant::qtype, std::string> made;
  if (auto it = made.find(t); it != made.end()) return it->second;
  const std::string out = cat("/tmp/qforge-engine-bench-small-llama-", quant::name(t), ".gguf");
  convert::conversion_options o;
  o.type = t;
  convert::convert_to_gguf(std::string(QFORGE_FIXTURES) + "/models/small-llama", out, o);
  return made[t] = out;
}

struct loaded {
  engine::model model;
  engine::thread_pool pool;
  engine::session session;
  explicit loaded(const std::string& path)
      : model(engine::model::load(path)), pool(threads()),
        session(model, pool, prompt_tokens + decode_tokens) {}
};

loaded& get(quant::qtype t) {
  static std::map<quant::qtype, std::unique_ptr<loaded>> cache;
  auto& p = cache[t];
  if (!p) p = std::make_unique<loaded>(gguf(t));
  return *p;
}

std::map<std::string, engine::speed_result> ours;

void bm_prefill(benchmark::State& state, quant::qtype t) {
  auto& l = get(t);
  std::vector<std::int32_t> ids(prompt_tokens);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int32_t>(1 + i);
  std::vector<float> logits(l.model.config().vocab);
  for (auto _ : state) {
    l.session.reset();
    l.session.eval(ids, logits);
    benchmark::DoNotOptimize(logits.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(prompt_tokens));
  state.counters["threads"] = static_cast<double>(l.pool.size());
}

void bm_decode(benchmark::State& state, quant::qtype t) {
  auto& l = get(t);
  std::vector<float> logits(l.model.config().vocab);
  for (auto _ : state) {
    // measure_speed's decode phase: a 128-token prompt, then 64 single-token steps.
    state.PauseTiming();
    const auto r = engine::measure_speed(l.session, prompt_tokens, 0, 1);
    benchmark::DoNotOptimize(r);
    state.ResumeTiming();
    for (std::size_t i = 0; i < decode_tokens; ++i) {
      const auto next = static_cast<std::int32_t>(1 + (prompt_tokens + i) % 4095);
      l.session.eval(std::span(&next, 1), logits);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(decode_tokens));
  ours[std::string(quant::name(t))] = engine::measure_speed(l.session, prompt_tokens, decode_tokens, 5);
}

void compare_with_llama_cpp() {
  if (std::getenv("QFORGE_BENCH_NO_LLAMA_CPP") != nullptr) return;
  if (ours.empty()) return;
  // The script sits beside this file (__FILE__ is the path the compiler was given: absolute here).
  const auto script = std::filesystem::path(__FILE__).parent_path() / "llama_cpp_speed.py";
  std::string cmd = cat("python3 ", script.string(), " --threads ",
                        threads(), " --prompt ", prompt_tokens, " --decode ", decode_tokens,
                        " --reps 5");
  for (const auto& [name, r] : ours)
    cmd += " " + gguf(name == "f16" ? quant::qtype::f16 : quant::qtype::q8_0);
  cmd += " 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return;
  std::printf("\nsmall-llama, %d thread(s), %zu-token prompt, %zu decoded tokens (best of 5):\n",
              threads(), prompt_tokens, decode_tokens);
  std::printf("%-6s %14s %14s %7s %14s %14s %7s\n", "type", "prefill qforge", "llama.cpp", "ratio",
              "decode qforge", "llama.cpp", "ratio");
  char line[4096];
  while (std::fgets(line, sizeof line, p.get()) != nullptr) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("file")) continue;
    const std::string file = j["file"];
    const std::string type = file.find("q8_0") != std::string::npos ? "q8_0" : "f16";
    const auto& o = ours[type];
    const double lp = j["prefill_tok_s"], ld = j["decode_tok_s"];
    std::printf("%-6s %14.1f %14.1f %6.2fx %14.1f %14.1f %6.2fx\n", type.c_str(), o.prefill_tok_s,
                lp, o.prefill_tok_s / lp, o.decode_tok_s, ld, o.decode_tok_s / ld);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto t : {quant::qtype::f16, quant::qtype::q8_0}) {
    const std::string n(quant::name(t));
    benchmark::RegisterBenchmark(cat("BM_engine_prefill/", n, "/", prompt_tokens).c_str(), bm_prefill, t)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(cat("BM_engine_decode/", n, "/", decode_tokens).c_str(), bm_decode, t)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  compare_with_llama_cpp();
  return 0;
}
