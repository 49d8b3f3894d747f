// SPDX-License-Identifier: MIT
// CPU engine speed on small-llama: BM_engine_prefill/<file>/<prompt> and BM_engine_decode/<file>
// for the F16 GGUF that qforge's converter writes and the Q8_0, Q4_K_M, Q5_K_M and Q6_K files that
// qforge's quantizer makes from it (llama-quantize's mixes, same bytes; items/s = tokens/s). Then
// the comparison with llama.cpp on the same files through bench/llama_cpp_speed.py
// (llama-cpp-python), same workload as engine::measure_speed (128-token prompt, 64 decoded
// tokens, best of 3 per sample), on 1 and 2 threads. The machines these run on are shared, so the
// two engines alternate (qforge, llama.cpp, qforge, llama.cpp, ... QFORGE_BENCH_ROUNDS rounds,
// default 3) and the table gives medians over rounds, with the load average before and after.
// Threads of the Google Benchmark part: QFORGE_BENCH_THREADS (default 1). The comparison is
// skipped when QFORGE_BENCH_NO_LLAMA_CPP is set or python3 lacks llama_cpp;
// QFORGE_BENCH_FILES=Q4_K_M,Q8_0 limits the files.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/convert/mix.hpp"
#include "qforge/convert/quantize.hpp"
#include "qforge/engine/measure.hpp"

using namespace qforge;

namespace {

constexpr std::size_t prompt_tokens = 128, decode_tokens = 64;
constexpr int reps = 3;

int env_int(const char* name, int fallback) {
  const char* e = std::getenv(name);
  return e != nullptr && std::atoi(e) > 0 ? std::atoi(e) : fallback;
}

// "F16" or a llama-quantize mix name.
std::vector<std::string> files() {
  std::vector<std::string> all = {"F16", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K"};
  const char* e = std::getenv("QFORGE_BENCH_FILES");
  if (e == nullptr || *e == '\0') return all;
  std::vector<std::string> out;
  for (const auto& f : all)
    if (cat(",", e, ",").find(cat(",", f, ",")) != std::string::npos) out.push_back(f);
  return out;
}

std::string gguf(const std::string& file) {
  static std::map<std::string, std::string> made;
  if (auto it = made.find(file); it != made.end()) return it->second;
  const std::string f16 = "/tmp/qforge-engine-bench-small-llama-F16.gguf";
  if (made.find("F16") == made.end()) {
    convert::convert_to_gguf(std::string(QFORGE_FIXTURES) + "/models/small-llama", f16, {});
    made["F16"] = f16;
  }
  if (file == "F16") return f16;
  const std::string out = cat("/tmp/qforge-engine-bench-small-llama-", file, ".gguf");
  convert::quantize_options o;
  o.ftype = convert::require_mix(file).ftype;
  convert::quantize_gguf(f16, out, o);
  return made[file] = out;
}

struct loaded {
  engine::model model;
  engine::thread_pool pool;
  engine::session session;
  loaded(const std::string& path, int threads)
      : model(engine::model::load(path)),
        pool(threads),
        session(model, pool, prompt_tokens + decode_tokens) {}
};

loaded& get(const std::string& file, int threads) {
  static std::map<std::pair<std::string, int>, std::unique_ptr<loaded>> cache;
  auto& p = cache[{file, threads}];
  if (!p) p = std::make_unique<loaded>(gguf(file), threads);
  return *p;
}

void bm_prefill(benchmark::State& state, const std::string& file) {
  auto& l = get(file, env_int("QFORGE_BENCH_THREADS", 1));
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

void bm_decode(benchmark::State& state, const std::string& file) {
  auto& l = get(file, env_int("QFORGE_BENCH_THREADS", 1));
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
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a.empty() ? "?" : cat(a, " ", b, " ", c);
}

// One llama.cpp sample: {prefill, decode} tok/s, or {0, 0} when the script failed.
std::pair<double, double> llama_cpp_sample(const std::string& path, int threads) {
  // The script sits beside this file (__FILE__ is the path the compiler was given: absolute here).
  const auto script = std::filesystem::path(__FILE__).parent_path() / "llama_cpp_speed.py";
  const std::string cmd =
      cat("python3 ", script.string(), " --threads ", threads, " --prompt ", prompt_tokens,
          " --decode ", decode_tokens, " --reps ", reps, " ", path, " 2>/dev/null");
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  char line[4096];
  while (p && std::fgets(line, sizeof line, p.get()) != nullptr) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("decode_tok_s"))
      return {j["prefill_tok_s"].get<double>(), j["decode_tok_s"].get<double>()};
  }
  return {0, 0};
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void compare_with_llama_cpp() {
  if (std::getenv("QFORGE_BENCH_NO_LLAMA_CPP") != nullptr) return;
  if (std::system("python3 -c 'import llama_cpp' >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "llama.cpp comparison skipped: python3 cannot import llama_cpp\n");
    return;
  }
  const int rounds = env_int("QFORGE_BENCH_ROUNDS", 3);
  const std::string load_before = load_average();
  struct samples {
    std::vector<double> ours_prefill, ours_decode, ref_prefill, ref_decode;
  };
  std::map<std::pair<int, std::string>, samples> s;
  for (int threads : {1, 2})
    for (int round = 0; round < rounds; ++round)
      for (const auto& file : files()) {
        auto& x = s[{threads, file}];
        const auto o =
            engine::measure_speed(get(file, threads).session, prompt_tokens, decode_tokens, reps);
        x.ours_prefill.push_back(o.prefill_tok_s);
        x.ours_decode.push_back(o.decode_tok_s);
        const auto [lp, ld] = llama_cpp_sample(gguf(file), threads);
        if (ld > 0) x.ref_prefill.push_back(lp), x.ref_decode.push_back(ld);
      }
  std::printf(
      "\nsmall-llama, %zu-token prompt then %zu decoded tokens; tok/s, median of %d "
      "interleaved rounds (each the best of %d); load average before %s, after %s\n",
      prompt_tokens, decode_tokens, rounds, reps, load_before.c_str(), load_average().c_str());
  std::printf(
      "| file | threads | decode qforge | decode llama.cpp | ratio | prefill qforge | "
      "prefill llama.cpp | ratio |\n|---|---|---|---|---|---|---|---|\n");
  for (const auto& [key, x] : s) {
    const double od = median(x.ours_decode), rd = median(x.ref_decode);
    const double op = median(x.ours_prefill), rp = median(x.ref_prefill);
    std::printf("| %s | %d | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |\n", key.second.c_str(),
                key.first, od, rd, rd > 0 ? od / rd : 0.0, op, rp, rp > 0 ? op / rp : 0.0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const auto& f : files()) {
    benchmark::RegisterBenchmark(cat("BM_engine_prefill/", f, "/", prompt_tokens).c_str(),
                                 bm_prefill, f)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(cat("BM_engine_decode/", f, "/", decode_tokens).c_str(), bm_decode,
                                 f)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  compare_with_llama_cpp();
  return 0;
}
