// SPDX-License-Identifier: MIT
// The CPU forward pass against transformers: the logits of every fixture prompt equal
// reference_logits.safetensors (float32 HF run) within 1e-3 x max|logit|, for the three fixture
// models, read from the HF checkpoint and from our F16 GGUF of it (whose llama q/k rows are permuted
// for interleaved RoPE, so this also checks the pairing). Decoding token by token through the KV
// cache must give the prefill logits; a Q8_0 GGUF must stay close.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/engine/forward.hpp"
#include "qforge/engine/model.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "reference_logits.hpp"

namespace {

using namespace qforge;

const std::string models = std::string(QFORGE_FIXTURES) + "/models/";

using prompt = testdata::reference_prompt;

std::vector<prompt> reference_prompts(const std::string& name) {
  return testdata::read_reference_prompts(models + name + "/reference_logits.safetensors");
}

// Converted once per model and type per test run, into the test scratch folder.
std::string gguf_of(const std::string& name, quant::qtype type) {
  const std::string out = cat(QFORGE_TEST_TMP, "/engine-", name, "-", quant::name(type), ".gguf");
  static std::vector<std::string> made;
  if (std::find(made.begin(), made.end(), out) == made.end()) {
    convert::conversion_options opt;
    opt.type = type;
    convert::convert_to_gguf(models + name, out, opt);
    made.push_back(out);
  }
  return out;
}

struct diff {
  float max_abs = 0, max_ref = 0;
};

diff compare(std::span<const float> got, std::span<const float> want) {
  diff d;
  for (std::size_t i = 0; i < want.size(); ++i) {
    d.max_abs = std::max(d.max_abs, std::abs(got[i] - want[i]));
    d.max_ref = std::max(d.max_ref, std::abs(want[i]));
  }
  return d;
}

void check_reference_logits(const engine::model& m, const std::string& name, float rel_tol) {
  engine::thread_pool pool(2);
  engine::session s(m, pool, 1024);
  const std::size_t V = m.config().vocab;
  for (const auto& p : reference_prompts(name)) {
    std::vector<float> logits(p.ids.size() * V);
    s.reset();
    s.eval(p.ids, logits);
    const diff d = compare(logits, p.logits);
    INFO(name << " (" << m.source() << ") prompt of " << p.ids.size() << " tokens: max |d| "
              << d.max_abs << ", max |logit| " << d.max_ref);
    WARN(name << " " << m.source() << " T=" << p.ids.size() << " max|d|=" << d.max_abs
              << " rel=" << d.max_abs / d.max_ref);
    CHECK(d.max_abs <= rel_tol * d.max_ref);
  }
}

const char* const all_models[] = {"tiny-llama", "tiny-qwen3", "small-llama"};

}  // namespace

TEST_CASE("engine: HF checkpoint logits equal transformers' float32 logits", "[engine][forward]") {
  for (const char* name : all_models) {
    const auto m = engine::model::load(models + name);
    check_reference_logits(m, name, 1e-3f);
  }
}

TEST_CASE("engine: F16 GGUF logits equal transformers' float32 logits", "[engine][forward][gguf]") {
  for (const char* name : all_models) {
    const auto m = engine::model::load(gguf_of(name, quant::qtype::f16));
    REQUIRE(m.source() == "gguf");
    // llama GGUFs carry permuted q/k rows, which only interleaved RoPE undoes.
    CHECK((m.config().rope == engine::rope_style::interleaved) ==
          (std::string(name).find("llama") != std::string::npos));
    check_reference_logits(m, name, 1e-3f);
  }
}

TEST_CASE("engine: Q8_0 GGUF logits stay near the float32 logits", "[engine][forward][gguf]") {
  // 8-bit weights move logits by a few percent of their range; a wrong block layout or scale moves
  // them by the whole range.
  for (const char* name : all_models) {
    const auto m = engine::model::load(gguf_of(name, quant::qtype::q8_0));
    check_reference_logits(m, name, 0.05f);
  }
}

TEST_CASE("engine: decoding through the KV cache gives the prefill logits", "[engine][forward]") {
  for (const char* name : all_models) {
    const auto m = engine::model::load(models + name);
    engine::thread_pool pool(2);
    const auto p = reference_prompts(name)[1];
    const std::size_t V = m.config().vocab, T = p.ids.size();
    engine::session prefill(m, pool, T);
    std::vector<float> all(T * V);
    prefill.eval(p.ids, all);

    // A prefix as a batch, then the rest one token at a time.
    engine::session dec(m, pool, T);
    const std::size_t split = T / 3;
    std::vector<float> last(V);
    dec.eval(std::span(p.ids).first(split), last);
    diff worst;
    for (std::size_t t = split; t < T; ++t) {
      dec.eval(std::span(p.ids).subspan(t, 1), last);
      const diff d = compare(last, std::span(all).subspan(t * V, V));
      worst.max_abs = std::max(worst.max_abs, d.max_abs);
      worst.max_ref = std::max(worst.max_ref, d.max_ref);
    }
    INFO(name << ": max |d| " << worst.max_abs << " over " << T - split << " decoded tokens");
    CHECK(dec.n_past() == T);
    CHECK(worst.max_abs <= 1e-4f * worst.max_ref);
    // The single-logit form of eval returns the last row of the full form.
    CHECK(compare(last, std::span(all).subspan((T - 1) * V, V)).max_abs <= 1e-4f * worst.max_ref);
  }
}

TEST_CASE("engine: eval rejects bad input", "[engine][forward]") {
  const auto m = engine::model::load(models + "tiny-llama");
  engine::thread_pool pool(1);
  engine::session s(m, pool, 4);
  std::vector<float> logits(m.config().vocab);
  const std::vector<std::int32_t> too_many(5, 1), bad_id{static_cast<std::int32_t>(4096)};
  CHECK_THROWS_AS(s.eval(too_many, logits), error);
  CHECK_THROWS_AS(s.eval(bad_id, logits), error);
  std::vector<float> wrong(7);
  CHECK_THROWS_AS(s.eval(std::vector<std::int32_t>{1}, wrong), error);
  CHECK(s.n_past() == 0);
  CHECK_THROWS_AS(engine::model::load(models + "does-not-exist.gguf"), error);
}
