// SPDX-License-Identifier: MIT
// The measurements of engine/measure.hpp on the fixtures. Perplexity of the 150 eval texts whose HF
// token ids tokenizer_golden.jsonl holds must match an independent float32 numpy implementation
// (tests/engine/reference_ppl.py, itself checked against reference_logits.safetensors to 2e-5),
// from the checkpoint and from its F16 GGUF; KL divergence, top-1 agreement and greedy generation
// are checked for the properties that define them.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/engine/measure.hpp"

namespace {

using namespace qforge;

const std::string fixtures = QFORGE_FIXTURES;

// Token ids of the golden entries whose text is an eval.jsonl document, in file order.
std::vector<std::vector<std::int32_t>> golden_eval_ids(const std::string& model) {
  std::set<std::string> eval;
  std::ifstream e(fixtures + "/data/eval.jsonl");
  for (std::string line; std::getline(e, line);)
    eval.insert(nlohmann::json::parse(line).at("text").get<std::string>());
  std::vector<std::vector<std::int32_t>> out;
  std::ifstream g(fixtures + "/models/" + model + "/tokenizer_golden.jsonl");
  for (std::string line; std::getline(g, line);) {
    const auto j = nlohmann::json::parse(line);
    if (eval.count(j.at("text").get<std::string>()))
      out.push_back(j.at("ids").get<std::vector<std::int32_t>>());
  }
  return out;
}

std::string f16_gguf(const std::string& name) {
  const std::string out = cat(QFORGE_TEST_TMP, "/engine-ppl-", name, "-f16.gguf");
  convert::convert_to_gguf(fixtures + "/models/" + name, out, {});
  return out;
}

struct reference {
  const char* model;
  std::size_t tokens;
  double ppl;  // reference_ppl.py, float32 numpy
};
// python3 tests/engine/reference_ppl.py $QFORGE_FIXTURES <model>
constexpr reference references[] = {
    {"tiny-llama", 45385, 35.66867417361698},
    {"tiny-qwen3", 45310, 27.033375411084172},
    {"small-llama", 45385, 29.391364939990375},
};

}  // namespace

TEST_CASE("engine: perplexity of the golden eval texts matches the numpy reference",
          "[engine][perplexity]") {
  engine::thread_pool pool(2);
  for (const auto& ref : references) {
    const auto docs = golden_eval_ids(ref.model);
    REQUIRE(docs.size() == 150);
    for (const std::string& path : {fixtures + "/models/" + ref.model, f16_gguf(ref.model)}) {
      const auto m = engine::model::load(path);
      engine::session s(m, pool, 512);
      const auto r = engine::perplexity(s, docs);
      INFO(ref.model << " from " << m.source() << ": ppl " << r.ppl() << ", numpy " << ref.ppl);
      WARN(ref.model << " " << m.source() << " ppl " << r.ppl() << " (numpy " << ref.ppl << ") "
                     << r.tokens << " tokens in " << r.seconds << " s");
      CHECK(r.docs == 150);
      CHECK(r.tokens == ref.tokens);
      CHECK(std::abs(r.ppl() / ref.ppl - 1) < 2e-5);
    }
  }
}

TEST_CASE("engine: perplexity protocol: truncation, short documents, max_docs",
          "[engine][perplexity]") {
  engine::thread_pool pool(2);
  const auto m = engine::model::load(fixtures + "/models/tiny-llama");
  engine::session s(m, pool, 64);
  const std::vector<std::vector<std::int32_t>> docs = {
      {4088}, {}, {4088, 39, 324, 449, 1809}, std::vector<std::int32_t>(100, 39)};
  engine::perplexity_options o;
  o.max_tokens = 64;
  const auto r = engine::perplexity(s, docs, o);
  CHECK(r.skipped == 2);
  CHECK(r.docs == 2);
  CHECK(r.tokens == 4 + 63);
  CHECK(r.ppl() > 1.0);
  o.max_docs = 1;
  const auto one = engine::perplexity(s, docs, o);
  CHECK(one.docs == 1);
  CHECK(one.tokens == 4);
  CHECK(one.nll < r.nll);
}

TEST_CASE("engine: KL divergence and top-1 agreement", "[engine][kl]") {
  engine::thread_pool pool(2);
  const std::string name = "tiny-llama";
  auto docs = golden_eval_ids(name);
  docs.resize(12);
  const auto hf = engine::model::load(fixtures + "/models/" + name);
  engine::session a(hf, pool, 512), b(hf, pool, 512);
  const auto same = engine::kl_divergence(a, b, docs);
  CHECK(same.kl_mean() < 1e-9);
  CHECK(same.top1_agreement() == 1.0);
  CHECK(same.test.nll == Approx(same.reference.nll));

  const std::string q8 = cat(QFORGE_TEST_TMP, "/engine-kl-", name, "-q8_0.gguf");
  convert::conversion_options opt;
  opt.type = quant::qtype::q8_0;
  convert::convert_to_gguf(fixtures + "/models/" + name, q8, opt);
  const auto qm = engine::model::load(q8);
  engine::session c(qm, pool, 512);
  const auto d = engine::kl_divergence(c, b, docs);
  WARN("Q8_0 vs F16 checkpoint: KL " << d.kl_mean() << ", top-1 " << d.top1_agreement()
                                     << ", ppl " << d.test.ppl() << " vs " << d.reference.ppl());
  CHECK(d.kl_mean() > 0);
  CHECK(d.kl_mean() < 5e-3);
  CHECK(d.top1_agreement() > 0.95);
  CHECK(d.kl_per_token.size() == d.test.tokens);
  CHECK(std::abs(d.test.ppl() / d.reference.ppl() - 1) < 0.01);
}

TEST_CASE("engine: greedy generation follows the argmax of the full forward pass",
          "[engine][generate]") {
  engine::thread_pool pool(2);
  const auto m = engine::model::load(fixtures + "/models/small-llama");
  const std::size_t V = m.config().vocab;
  const std::vector<std::int32_t> prompt = golden_eval_ids("small-llama").at(3);
  const std::vector<std::int32_t> p(prompt.begin(), prompt.begin() + 20);
  engine::session s(m, pool, 256);
  const auto g = engine::generate_greedy(s, p, 16);
  REQUIRE(g.tokens.size() == 16);
  CHECK(g.prompt_tokens == 20);
  CHECK(g.time_to_first_token() > 0);
  CHECK(g.decode_tok_s() > 0);
  CHECK(s.n_past() == 20 + 15);

  // Re-run prompt + generated tokens as one batch: every generated token is the argmax there.
  std::vector<std::int32_t> all = p;
  all.insert(all.end(), g.tokens.begin(), g.tokens.end() - 1);
  std::vector<float> logits(all.size() * V);
  engine::session full(m, pool, 256);
  full.eval(all, logits);
  for (std::size_t i = 0; i < g.tokens.size(); ++i) {
    const float* row = logits.data() + (p.size() - 1 + i) * V;
    CHECK(std::max_element(row, row + V) - row == g.tokens[i]);
  }

  // A stop token ends generation after it.
  const auto stopped = engine::generate_greedy(s, p, 16, g.tokens[3]);
  CHECK(stopped.tokens.size() <= 4);
  CHECK(stopped.tokens.back() == g.tokens[3]);

  const auto speed = engine::measure_speed(s, 64, 8, 1);
  CHECK(speed.prefill_tok_s > 0);
  CHECK(speed.decode_tok_s > 0);
}
