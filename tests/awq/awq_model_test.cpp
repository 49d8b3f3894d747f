// SPDX-License-Identifier: MIT
// End to end on tiny-llama with the fixtures' calibration prompts: the AWQ folder's files, config
// and tensor layout; the engine loading it (W4A16 products read in place) against the reference
// dequantizer; perplexity by the fixtures' protocol against the AutoAWQ-equivalent reference; and,
// when python3 with numpy + safetensors is present, tests/awq/check_awq.py unpacking the tensors
// with an independent implementation of AutoAWQ's layout and comparing bit for bit.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "qforge/awq/preflight.hpp"
#include "qforge/awq/quantize_model.hpp"
#include "qforge/engine/measure.hpp"
#include "qforge/format/safetensors/writer.hpp"

using namespace qforge;

namespace {
const std::string fixtures = QFORGE_FIXTURES;
const std::string model_dir = fixtures + "/models/tiny-llama";
const std::string out_dir = std::string(QFORGE_TEST_TMP) + "/awq-tiny-llama";

std::vector<std::vector<std::int32_t>> eval_docs(const tokenize::tokenizer& tok) {
  std::ifstream in(fixtures + "/data/eval.jsonl");
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
  std::vector<std::vector<std::int32_t>> docs;
  for (const auto& ids : tok.encode_batch(std::span<const std::string>(texts)))
    docs.emplace_back(ids.begin(), ids.end());
  return docs;
}

// The fixtures' 128 calibration prompts, whole, as `qforge awq` takes them by default.
awq::calibration_set full_calibration(const tokenize::tokenizer& tok) {
  return awq::build_calibration(
      awq::read_calibration_prompts(fixtures + "/data/calibration.jsonl"), tok, {}, 0);
}
}  // namespace

TEST_CASE("awq model: tiny-llama end to end", "[awq][model]") {
  engine::thread_pool pool(0);
  const tokenize::tokenizer tok(model_dir);
  const auto calib = full_calibration(tok);
  awq::awq_options o;
  o.overwrite = true;
  const auto r = awq::quantize_model(model_dir, calib, out_dir, o, pool);
  CHECK(r.blocks.size() == 4);
  CHECK(r.tokens == calib.tokens());

  namespace fs = std::filesystem;
  CHECK(fs::exists(out_dir + "/model.safetensors"));
  CHECK(fs::exists(out_dir + "/tokenizer.json"));
  CHECK(fs::exists(out_dir + "/generation_config.json"));
  CHECK(!fs::exists(out_dir + ".qforge.tmp"));
  std::ifstream cf(out_dir + "/config.json");
  const auto cfg = nlohmann::json::parse(cf);
  const auto& q = cfg.at("quantization_config");
  CHECK(q.at("quant_method") == "awq");
  CHECK(q.at("bits") == 4);
  CHECK(q.at("group_size") == 128);
  CHECK(q.at("zero_point") == true);
  CHECK(q.at("version") == "gemm");
  CHECK(q.at("modules_to_not_convert").is_null());

  const format::safetensors::checkpoint ck(out_dir);
  using format::safetensors::dtype;
  const auto shape = [&](const std::string& n) {
    const auto s = ck.view(n).shape();
    return std::vector<std::uint64_t>(s.begin(), s.end());
  };
  CHECK(ck.view("model.layers.0.self_attn.k_proj.qweight").type() == dtype::i32);
  CHECK(shape("model.layers.0.self_attn.k_proj.qweight") == std::vector<std::uint64_t>{256, 16});
  CHECK(shape("model.layers.0.self_attn.k_proj.qzeros") == std::vector<std::uint64_t>{2, 16});
  CHECK(shape("model.layers.0.self_attn.k_proj.scales") == std::vector<std::uint64_t>{2, 128});
  CHECK(shape("model.layers.3.mlp.down_proj.qweight") == std::vector<std::uint64_t>{768, 32});
  CHECK(ck.view("model.layers.3.mlp.down_proj.scales").type() == dtype::f16);
  CHECK(ck.view("lm_head.weight").type() == dtype::f16);
  CHECK(!ck.contains("model.layers.0.self_attn.q_proj.weight"));

  // The engine's in-place decoding equals the reference dequantizer up to the fp16 rounding the
  // reference applies to (q - z) * s. Dump both for the Python check.
  const auto m = engine::model::load(out_dir);
  REQUIRE(m.layers[0].wq.awq.qweight != nullptr);
  format::safetensors::writer dump;
  std::deque<std::vector<float>> keep;
  for (const char* name : {"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"}) {
    const std::string base = cat("model.layers.1.", name);
    const auto& mat = name[0] == 's' ? (name[10] == 'q' ? m.layers[1].wq : m.layers[1].wv)
                                     : m.layers[1].down;
    quant::awq::gemm_tensors t;
    t.in = mat.cols, t.out = mat.rows, t.group = 128;
    const auto rd = [&](const std::string& n, auto& v) {
      const auto b = ck.view(n).bytes();
      v.resize(b.size() / sizeof(v[0]));
      std::memcpy(v.data(), b.data(), b.size());
    };
    rd(base + ".qweight", t.qweight);
    rd(base + ".qzeros", t.qzeros);
    rd(base + ".scales", t.scales);
    auto& ref = keep.emplace_back(quant::awq::dequantize(quant::awq::unpack_gemm(t)));
    auto& eng = keep.emplace_back(mat.rows * mat.cols);
    quant::awq::decode_rows(mat.awq, 0, mat.rows / 8, eng.data());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
      bad += std::fabs(ref[i] - eng[i]) > std::fabs(eng[i]) * 1e-3f + 1e-7f;
    CHECK(bad == 0);
    const std::uint64_t rows = mat.rows, cols = mat.cols;
    dump.add(base + ".ref", dtype::f32, {rows, cols},
             {reinterpret_cast<const std::byte*>(ref.data()), ref.size() * 4});
    dump.add(base + ".engine", dtype::f32, {rows, cols},
             {reinterpret_cast<const std::byte*>(eng.data()), eng.size() * 4});
  }
  const std::string dump_path = std::string(QFORGE_TEST_TMP) + "/awq-dequant.safetensors";
  dump.write(dump_path);

  engine::session s(m, pool, 512);
  const auto ppl = engine::perplexity(s, eval_docs(tok)).ppl();
  WARN("tiny-llama AWQ perplexity " << ppl << " (FP 19.7992, RTN 20.0247, AutoAWQ-eq 20.0839)");
  CHECK(ppl < 20.0839);  // required: at or below the AutoAWQ-equivalent reference
  CHECK(ppl > 19.7992);

  const std::string script =
      (std::filesystem::path(__FILE__).parent_path() / "check_awq.py").string();
  if (std::system("python3 -c 'import numpy, safetensors' 2>/dev/null") != 0) {
    WARN("not run: check_awq.py (python3 with numpy and safetensors missing)");
  } else {
    const std::string cmd = cat("python3 ", script, " ", out_dir, " ", dump_path);
    CHECK(std::system(cmd.c_str()) == 0);
  }
}

TEST_CASE("awq model: tiny-llama with error-compensated rounding (--gptq)", "[awq][model][gptq]") {
  engine::thread_pool pool(0);
  const tokenize::tokenizer tok(model_dir);
  const auto calib = full_calibration(tok);
  awq::awq_options o;
  o.overwrite = true;
  o.gptq = true;
  const std::string dir = out_dir + "-gptq";
  awq::quantize_model(model_dir, calib, dir, o, pool);
  // Same format: what the loader and vLLM's preflight accept for the plain quantizer.
  CHECK(awq::check_vllm(dir).model_ok());
  const auto m = engine::model::load(dir);
  REQUIRE(m.layers[0].wq.awq.qweight != nullptr);
  engine::session s(m, pool, 512);
  const auto ppl = engine::perplexity(s, eval_docs(tok)).ppl();
  WARN("tiny-llama AWQ --gptq perplexity " << ppl
                                           << " (FP 19.7992, RTN 20.0247, AutoAWQ-eq 20.0839)");
  CHECK(ppl < 20.0247);  // the goal: below round-to-nearest (AutoAWQ's recipe is not, here)
  CHECK(ppl > 19.7992);
}
