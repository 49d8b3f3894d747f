// SPDX-License-Identifier: MIT
// LoRA on the engine: the shipped adapter (examples/adapters/tiny-llama-lora, trained with peft)
// on tiny-llama gives the logits stock transformers + peft gave (tests/engine/data/
// lora_reference.safetensors, float32) within 1e-3 x max|logit|, both on the HF checkpoint and on
// an F16 GGUF of it (q/k rows permuted: the adapter's B rows must follow); on a Q4_K_M base it stays
// as close as the base alone is; bad adapters fail with the file and the reason.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/convert/quantize.hpp"
#include "qforge/engine/forward.hpp"
#include "qforge/engine/lora.hpp"
#include "reference_logits.hpp"

using namespace qforge;
namespace fs = std::filesystem;

namespace {

const std::string root = fs::path(__FILE__).parent_path().parent_path().parent_path().string();
const std::string base_dir = root + "/examples/models/tiny-llama";
const std::string adapter_dir = root + "/examples/adapters/tiny-llama-lora";

std::vector<testdata::reference_prompt> reference() {
  return testdata::read_reference_prompts(root + "/tests/engine/data/lora_reference.safetensors");
}

std::vector<float> logits_of(const engine::model& m, const std::vector<std::int32_t>& ids) {
  engine::thread_pool pool(2);
  engine::session s(m, pool, 256);
  std::vector<float> out(ids.size() * m.config().vocab);
  s.eval(ids, out);
  return out;
}

// max |a - b| / max |b|
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, mx = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    mx = std::max(mx, static_cast<double>(std::fabs(b[i])));
  }
  return d / mx;
}

std::string gguf(quant::qtype type, const char* mix = nullptr) {
  const std::string out = cat(QFORGE_TEST_TMP, "/lora-base-", mix ? mix : quant::name(type), ".gguf");
  if (mix) {
    convert::quantize_options q;
    q.ftype = convert::require_mix(mix).ftype;
    (void)convert::convert_to_gguf_mix(base_dir, out, q);
  } else {
    convert::conversion_options o;
    o.type = type;
    (void)convert::convert_to_gguf(base_dir, out, o);
  }
  return out;
}

}  // namespace

TEST_CASE("lora: the shipped adapter reproduces transformers + peft", "[lora]") {
  const auto adapter = engine::read_lora(adapter_dir);
  CHECK(adapter.rank == 8);
  CHECK(adapter.scale == Approx(2.0));
  CHECK(adapter.updates.size() == 4 * 7);
  const auto ref = reference();

  auto plain = engine::model::load(base_dir);
  auto with = engine::model::load(base_dir);
  engine::attach_lora(with, adapter);
  auto with_gguf = engine::model::load(gguf(quant::qtype::f16));
  engine::attach_lora(with_gguf, adapter);
  const auto q4_path = gguf(quant::qtype::f16, "q4_k_m");
  const auto plain_q4 = engine::model::load(q4_path);
  auto with_q4 = engine::model::load(q4_path);
  engine::attach_lora(with_q4, adapter);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    INFO("prompt " << i);
    const auto got = logits_of(with, ref[i].ids);
    CHECK(rel_diff(got, ref[i].logits) <= 1e-3);
    CHECK(rel_diff(logits_of(with_gguf, ref[i].ids), ref[i].logits) <= 1e-3);
    // The adapter matters: without it the logits are far off the reference.
    CHECK(rel_diff(logits_of(plain, ref[i].ids), ref[i].logits) > 2e-2);
    // On a 4-bit base the adapter's result drifts from its FP16 result by the same order as the
    // base model alone (measured: 2-3x more, the "trained on FP16, served on INT4" gap this
    // feature exists to show), not by an order of magnitude, which would point to a misapplied
    // update.
    const double base_drift = rel_diff(logits_of(plain_q4, ref[i].ids), logits_of(plain, ref[i].ids));
    const double adapter_drift = rel_diff(logits_of(with_q4, ref[i].ids), got);
    INFO("Q4_K_M drift: base " << base_drift << ", with adapter " << adapter_drift);
    CHECK(adapter_drift > 0);
    CHECK(adapter_drift < 4 * base_drift);
  }
}

TEST_CASE("lora: adapters that cannot be applied fail clearly", "[lora]") {
  const std::string tmp = cat(QFORGE_TEST_TMP, "/lora-bad");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  CHECK_THROWS_WITH(engine::read_lora(tmp), Catch::Contains("adapter_config.json") && Catch::Contains("not found"));
  fs::copy_file(adapter_dir + "/adapter_model.safetensors", tmp + "/adapter_model.safetensors");
  const auto config_with = [&](const std::string& json) { std::ofstream(tmp + "/adapter_config.json") << json; };
  config_with(R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_dora": true})");
  CHECK_THROWS_WITH(engine::read_lora(tmp), Catch::Contains("DoRA"));
  config_with(R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "modules_to_save": ["lm_head"]})");
  CHECK_THROWS_WITH(engine::read_lora(tmp), Catch::Contains("modules_to_save"));
  config_with(R"({"peft_type": "LORA", "r": 4, "lora_alpha": 16})");
  CHECK_THROWS_WITH(engine::read_lora(tmp), Catch::Contains("r = 4"));
  config_with(R"({"peft_type": "PREFIX_TUNING", "r": 8, "lora_alpha": 16})");
  CHECK_THROWS_AS(engine::read_lora(tmp), error);
  config_with(R"({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": true})");
  CHECK(engine::read_lora(tmp).scale == Approx(16 / std::sqrt(8.0)));

  // An adapter of a model with other shapes.
  auto other = engine::model::load(std::string(QFORGE_FIXTURES) + "/models/small-llama");
  CHECK_THROWS_WITH(engine::attach_lora(other, engine::read_lora(adapter_dir)),
                    Catch::Contains("another model"));
}
