// SPDX-License-Identifier: MIT
// engine::sliding_perplexity on tiny-llama: the stream of the first 8 eval documents (HF ids from
// tokenizer_golden.jsonl, concatenated) must match Hugging Face transformers in float32
// (tests/engine/data/sliding_ppl_reference.json, from reference_sliding_ppl.py) within 1e-4, from
// the checkpoint and from its F16 GGUF; the window bookkeeping is held to a per-target scalar
// reference (one forward pass per scored token); stride == window must equal the per-document
// perplexity of the disjoint chunks, and a stream no longer than the window the plain perplexity.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/engine/sliding_perplexity.hpp"

namespace {

using namespace qforge;
namespace fs = std::filesystem;

const std::string fixtures = QFORGE_FIXTURES;
const std::string root = fs::path(__FILE__).parent_path().parent_path().parent_path().string();

// HF ids of the first `n` eval.jsonl documents (tokenizer_golden.jsonl holds the first 150, in
// eval.jsonl's order), concatenated.
std::vector<std::int32_t> golden_stream(const std::string& model, std::size_t n) {
  std::vector<std::string> eval;
  std::ifstream e(fixtures + "/data/eval.jsonl");
  for (std::string line; eval.size() < n && std::getline(e, line);)
    eval.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
  std::vector<std::int32_t> out;
  std::ifstream g(fixtures + "/models/" + model + "/tokenizer_golden.jsonl");
  std::size_t next = 0;
  for (std::string line; next < eval.size() && std::getline(g, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("text").get<std::string>() != eval[next]) continue;
    const auto ids = j.at("ids").get<std::vector<std::int32_t>>();
    out.insert(out.end(), ids.begin(), ids.end());
    ++next;
  }
  REQUIRE(next == n);
  return out;
}

nlohmann::json reference() {
  std::ifstream in(root + "/tests/engine/data/sliding_ppl_reference.json");
  REQUIRE(in);
  return nlohmann::json::parse(in);
}

// The scalar definition: for each target t, the window that scores it, run up to t from an empty
// cache, and the last position's log-probability of ids[t].
double per_target_nll(engine::session& s, std::span<const std::int32_t> ids,
                      const engine::sliding_options& o, std::size_t& scored) {
  const std::size_t n = ids.size(), V = s.weights().config().vocab;
  std::vector<float> logits(V);
  double nll = 0;
  scored = 0;
  std::size_t scored_to = 0;
  for (std::size_t begin = 0;; begin += o.stride) {
    const std::size_t end = std::min(begin + o.window, n);
    for (std::size_t t = std::max(scored_to, begin + 1); t < end; ++t) {
      s.reset();
      s.eval(ids.subspan(begin, t - begin), logits);
      double z = 0;
      for (float v : logits) z += std::exp(static_cast<double>(v));
      nll += std::log(z) - logits[static_cast<std::size_t>(ids[t])];
      ++scored;
    }
    scored_to = end;
    if (end == n || begin + o.stride + 1 >= n) return nll;
  }
}

}  // namespace

TEST_CASE("engine: sliding-window perplexity matches transformers on tiny-llama",
          "[engine][perplexity][sliding]") {
  const auto ref = reference();
  const std::string name = ref.at("model");
  const auto ids = golden_stream(name, ref.at("docs").get<std::size_t>());
  REQUIRE(ids.size() == ref.at("stream_tokens").get<std::size_t>());
  const std::string gguf = cat(QFORGE_TEST_TMP, "/engine-sliding-", name, "-f16.gguf");
  convert::convert_to_gguf(fixtures + "/models/" + name, gguf, {});
  engine::thread_pool pool(2);
  for (const std::string& path : {fixtures + "/models/" + name, gguf}) {
    const auto m = engine::model::load(path);
    engine::session s(m, pool, 512);
    for (const auto& want : ref.at("results")) {
      engine::sliding_options o;
      o.window = want.at("window");
      o.stride = want.at("stride");
      std::size_t calls = 0;
      const auto r = engine::sliding_perplexity(s, ids, o, [&](std::size_t done, std::size_t total) {
        CHECK(done == ++calls);
        CHECK(total == engine::sliding_windows(ids.size(), o));
      });
      const double ppl = want.at("ppl");
      INFO(name << " " << m.source() << " W " << o.window << " S " << o.stride << ": " << r.ppl()
                << ", transformers " << ppl);
      WARN(name << " " << m.source() << " W " << o.window << " S " << o.stride << ": ppl "
                << r.ppl() << " (transformers " << ppl << ", rel " << r.ppl() / ppl - 1 << ")");
      CHECK(r.windows == want.at("windows").get<std::size_t>());
      CHECK(calls == r.windows);
      CHECK(r.tokens == want.at("tokens").get<std::size_t>());
      CHECK(std::abs(r.ppl() / ppl - 1) < 1e-4);
      if (o.stride < o.window) CHECK(r.tokens == ids.size() - 1);  // every token once
    }
  }
}

TEST_CASE("engine: sliding-window bookkeeping equals scoring each target in its own window",
          "[engine][perplexity][sliding]") {
  const auto m = engine::model::load(fixtures + "/models/tiny-llama");
  engine::thread_pool pool(2);
  engine::session s(m, pool, 64);
  const auto all = golden_stream("tiny-llama", 2);
  const std::span<const std::int32_t> ids(all.data(), 61);
  for (const auto& [w, st] : {std::pair<std::size_t, std::size_t>{16, 5}, {16, 16}, {16, 1},
                             {2, 1}, {2, 2}, {13, 12}}) {
    const engine::sliding_options o{w, st};
    std::size_t scored = 0;
    const double want = per_target_nll(s, ids, o, scored);
    const auto r = engine::sliding_perplexity(s, ids, o);
    INFO("W " << w << " S " << st);
    CHECK(r.tokens == scored);
    CHECK(r.windows == engine::sliding_windows(ids.size(), o));
    CHECK(std::abs(r.nll / want - 1) < 1e-5);
  }
  // W = 2, S = 2: each disjoint pair scores its second token only.
  const auto pairs = engine::sliding_perplexity(s, ids, {2, 2});
  CHECK(pairs.tokens == 30);
  CHECK(pairs.windows == 30);  // the 61st token alone would be a window with nothing to score
}

TEST_CASE("engine: sliding window == stride is the perplexity of disjoint chunks, a short stream "
          "one window",
          "[engine][perplexity][sliding]") {
  const auto m = engine::model::load(fixtures + "/models/tiny-llama");
  engine::thread_pool pool(2);
  engine::session s(m, pool, 512);
  const auto ids = golden_stream("tiny-llama", 3);  // 4245 tokens
  REQUIRE(ids.size() > 1000);

  // W = S = 128 over the first 1000 tokens: chunks of 128 (the last of 104), scored per document.
  const std::span<const std::int32_t> head(ids.data(), 1000);
  std::vector<std::vector<std::int32_t>> chunks;
  for (std::size_t b = 0; b < head.size(); b += 128)
    chunks.emplace_back(head.begin() + static_cast<std::ptrdiff_t>(b),
                        head.begin() + static_cast<std::ptrdiff_t>(std::min(b + 128, head.size())));
  engine::perplexity_options po;
  po.max_tokens = 128;
  const auto per_doc = engine::perplexity(s, chunks, po);
  const auto disjoint = engine::sliding_perplexity(s, head, {128, 128});
  CHECK(disjoint.windows == chunks.size());
  CHECK(disjoint.tokens == per_doc.tokens);
  CHECK(disjoint.tokens == 1000 - chunks.size());
  CHECK(std::abs(disjoint.nll / per_doc.nll - 1) < 1e-6);
  // Overlap gives every later window context: lower perplexity than the disjoint chunks.
  CHECK(engine::sliding_perplexity(s, head, {128, 32}).ppl() < disjoint.ppl());

  // A stream of 300 tokens with W = 512: one window, the whole stream's plain perplexity.
  const std::vector<std::vector<std::int32_t>> one = {{ids.begin(), ids.begin() + 300}};
  const auto plain = engine::perplexity(s, one);
  for (const std::size_t st : {1, 256, 512}) {
    const auto r = engine::sliding_perplexity(s, one[0], {512, st});
    CHECK(r.windows == 1);
    CHECK(r.tokens == 299);
    CHECK(std::abs(r.nll / plain.nll - 1) < 1e-6);
  }
  // Exactly W tokens is one window too; W + 1 needs a second one scoring the last token.
  CHECK(engine::sliding_perplexity(s, head.first(128), {128, 64}).windows == 1);
  const auto two = engine::sliding_perplexity(s, head.first(129), {128, 64});
  CHECK(two.windows == 2);
  CHECK(two.tokens == 128);
}

TEST_CASE("engine: sliding-window perplexity refuses bad windows and streams",
          "[engine][perplexity][sliding]") {
  const auto m = engine::model::load(fixtures + "/models/tiny-llama");
  engine::thread_pool pool(2);
  engine::session s(m, pool, 64);
  const std::vector<std::int32_t> ids(100, 39), one = {4088}, none;
  const auto refused = [&](std::span<const std::int32_t> x, engine::sliding_options o) {
    try {
      (void)engine::sliding_perplexity(s, x, o);
    } catch (const error& e) {
      return e.which() == error::kind::argument;
    }
    return false;
  };
  CHECK(refused(ids, {1, 1}));      // W < 2
  CHECK(refused(ids, {0, 1}));      // W < 2
  CHECK(refused(ids, {16, 0}));     // S < 1
  CHECK(refused(ids, {16, 17}));    // S > W
  CHECK(refused(none, {16, 8}));    // empty stream
  CHECK(refused(one, {16, 8}));     // nothing to predict
  CHECK(refused(ids, {128, 64}));   // the cache of 64 cannot hold the window
  CHECK_FALSE(refused(ids, {64, 64}));
  CHECK_FALSE(refused(std::span(ids).first(40), {128, 64}));  // shorter than W: fits the cache
  CHECK(engine::sliding_windows(1000, {256, 128}) == 7);
  CHECK(engine::sliding_windows(256, {256, 128}) == 1);
  CHECK(engine::sliding_windows(258, {256, 256}) == 2);
  CHECK(engine::sliding_windows(257, {256, 256}) == 1);  // the 257th token alone: nothing to score
  CHECK(engine::sliding_windows(257, {256, 255}) == 2);
}
