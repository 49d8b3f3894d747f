// SPDX-License-Identifier: MIT
// The safetensors reader on the real fixture checkpoints: tensor counts and shapes follow from each
// config.json, and the spot values were computed independently with Python (safetensors.numpy for
// F16/F32, raw little-endian uint16 << 16 for BF16), never with qforge.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/format/safetensors/reader.hpp"

using namespace qforge::format::safetensors;
using qforge::error;

namespace {

const std::string models = std::string(QFORGE_FIXTURES) + "/models/";

nlohmann::json config_of(const std::string& model) {
  std::ifstream in(models + model + "/config.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

using shape_t = std::vector<std::uint64_t>;

shape_t shape_of(const tensor_view& v) { return {v.shape().begin(), v.shape().end()}; }

// The tensors a Llama / Qwen3 checkpoint must hold, with shapes derived from its config.json.
std::map<std::string, shape_t> expected_tensors(const nlohmann::json& c, bool qk_norm) {
  const std::uint64_t vocab = c["vocab_size"], hidden = c["hidden_size"],
                      ffn = c["intermediate_size"];
  const std::uint64_t heads = c["num_attention_heads"], kv = c["num_key_value_heads"];
  const std::uint64_t hd = c["head_dim"];
  const int layers = c["num_hidden_layers"];
  std::map<std::string, shape_t> m;
  m["model.embed_tokens.weight"] = {vocab, hidden};
  m["model.norm.weight"] = {hidden};
  if (!c["tie_word_embeddings"].get<bool>()) m["lm_head.weight"] = {vocab, hidden};
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    m[p + "input_layernorm.weight"] = {hidden};
    m[p + "post_attention_layernorm.weight"] = {hidden};
    m[p + "self_attn.q_proj.weight"] = {heads * hd, hidden};
    m[p + "self_attn.k_proj.weight"] = {kv * hd, hidden};
    m[p + "self_attn.v_proj.weight"] = {kv * hd, hidden};
    m[p + "self_attn.o_proj.weight"] = {hidden, heads * hd};
    m[p + "mlp.gate_proj.weight"] = {ffn, hidden};
    m[p + "mlp.up_proj.weight"] = {ffn, hidden};
    m[p + "mlp.down_proj.weight"] = {hidden, ffn};
    if (qk_norm) {
      m[p + "self_attn.q_norm.weight"] = {hd};
      m[p + "self_attn.k_norm.weight"] = {hd};
    }
  }
  return m;
}

void check_layout(const file& f, const std::map<std::string, shape_t>& want, dtype type) {
  REQUIRE(f.tensors().size() == want.size());
  std::uint64_t at = 0;
  for (const auto& t : f.tensors()) {
    INFO(t.name);
    REQUIRE(want.count(t.name) == 1);
    CHECK(t.shape == want.at(t.name));
    CHECK(t.type == type);
    CHECK(t.begin == at);  // offset order, packed back to back as the Python writer does
    CHECK(t.nbytes() == t.numel() * size_of(type));
    at = t.end;
    const auto v = f.view(t.name);
    CHECK(v.name() == t.name);
    CHECK(v.file() == f.path());
    CHECK(v.bytes().size() == t.nbytes());
  }
  CHECK(f.data_start() + at == std::filesystem::file_size(f.path()));
  CHECK(f.metadata().at("format") == "pt");
}

double sum64(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += x;
  return s;
}

}  // namespace

TEST_CASE("safetensors: tiny-llama F16 layout and values", "[safetensors][reader]") {
  const file f(models + "tiny-llama/model.safetensors");
  check_layout(f, expected_tensors(config_of("tiny-llama"), false), dtype::f16);
  CHECK(f.tensors().size() == 39);
  CHECK(f.tensors().front().name == "lm_head.weight");
  CHECK(f.tensors().back().name == "model.norm.weight");

  const auto q = f.view("model.layers.0.self_attn.q_proj.weight").to_f32();
  REQUIRE(q.size() == 256 * 256);
  CHECK(q[0] == -0.0248260498046875f);
  CHECK(q[1 * 256 + 2] == 0.02960205078125f);
  CHECK(q[255 * 256 + 255] == -0.02197265625f);
  // F16 values are multiples of 2^-24 below 2^16, so a double sum is exact in any order.
  CHECK(sum64(q) == -1.3295109868049622);
  const auto norm = f.view("model.norm.weight").to_f32();
  CHECK(norm[0] == 1.33984375f);
  CHECK(norm[255] == 1.515625f);
  CHECK(sum64(norm) == 391.2412109375);
  const auto head = f.view("lm_head.weight").to_f32();
  CHECK(head[4095 * 256 + 255] == 0.11627197265625f);
  CHECK(sum64(head) == 2622.0679180026054);
}

TEST_CASE("safetensors: tiny-qwen3 BF16 layout and values", "[safetensors][reader]") {
  const file f(models + "tiny-qwen3/model.safetensors");
  check_layout(f, expected_tensors(config_of("tiny-qwen3"), true), dtype::bf16);
  CHECK(f.tensors().size() == 46);
  CHECK(f.find("lm_head.weight") == nullptr);  // tied embeddings

  const auto q = f.view("model.layers.0.self_attn.q_proj.weight").to_f32();
  CHECK(q[0] == -0.01416015625f);
  CHECK(q[1 * 256 + 2] == 0.015380859375f);
  CHECK(q[255 * 256 + 255] == 0.0177001953125f);
  CHECK(sum64(q) == Approx(6.098544355481863).epsilon(1e-12));
  const auto qn = f.view("model.layers.0.self_attn.q_norm.weight").to_f32();
  REQUIRE(qn.size() == 64);
  CHECK(qn[0] == 1.3203125f);
  CHECK(qn[63] == 1.125f);
  CHECK(sum64(qn) == 69.90625);
  const auto emb = f.view("model.embed_tokens.weight").to_f32();
  CHECK(emb[4095 * 256 + 255] == 0.052490234375f);
  CHECK(emb[10 * 256 + 20] == 0.0150146484375f);
  CHECK(sum64(emb) == Approx(-1255.6242784038186).epsilon(1e-12));
}

TEST_CASE("safetensors: small-llama F16 layout and values", "[safetensors][reader]") {
  const file f(models + "small-llama/model.safetensors");
  check_layout(f, expected_tensors(config_of("small-llama"), false), dtype::f16);
  CHECK(f.tensors().size() == 57);
  const auto q = f.view("model.layers.0.self_attn.q_proj.weight").to_f32();
  REQUIRE(q.size() == 512 * 512);
  CHECK(q[0] == 0.03887939453125f);
  CHECK(q[1 * 512 + 2] == -0.0843505859375f);
  CHECK(q[255 * 512 + 255] == -0.0011968612670898438f);
  CHECK(sum64(q) == 5.598988950252533);
  const auto head = f.view("lm_head.weight").to_f32();
  CHECK(head[4095 * 512 + 255] == -0.00725555419921875f);
  CHECK(sum64(head) == 1710.4453337788582);
  const auto norm = f.view("model.norm.weight").to_f32();
  CHECK(norm[0] == 1.34375f);
  CHECK(norm[255] == 1.3017578125f);
}

TEST_CASE("safetensors: F32 and I32 tensors of the reference logits", "[safetensors][reader]") {
  const file f(models + "tiny-llama/reference_logits.safetensors");
  REQUIRE(f.tensors().size() == 6);
  CHECK(f.metadata().at("transformers") == "5.17.0");
  CHECK(f.data_start() % 8 == 0);  // this header is padded with spaces

  const auto logits = f.view("prompt0.logits");
  CHECK(logits.type() == dtype::f32);
  CHECK(shape_of(logits) == shape_t{34, 4096});
  const auto l = logits.to_f32();
  CHECK(l[0] == 1.2545616626739502f);
  CHECK(l[1] == 6.392455101013184f);
  CHECK(l[4095] == -8.45528507232666f);
  CHECK(l[33 * 4096 + 100] == -6.9890289306640625f);
  CHECK(sum64(l) == Approx(-360379.94821455213).epsilon(1e-12));

  const auto ids = f.view("prompt0.ids");
  CHECK(ids.type() == dtype::i32);
  CHECK(shape_of(ids) == shape_t{34});
  std::int32_t first[5];
  std::memcpy(first, ids.bytes().data(), sizeof first);
  CHECK(std::vector<std::int32_t>(first, first + 5) ==
        std::vector<std::int32_t>{4088, 40, 2498, 2772, 541});
  try {
    (void)ids.to_f32();
    FAIL("I32 -> F32 should be unsupported");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::unsupported);
    CHECK_THAT(e.what(), Catch::Contains("reference_logits.safetensors") &&
                             Catch::Contains("'prompt0.ids'") && Catch::Contains("I32"));
  }
}

TEST_CASE("safetensors: to_f32 checks the output size", "[safetensors][reader]") {
  const file f(models + "tiny-llama/model.safetensors");
  std::vector<float> out(255);
  try {
    f.view("model.norm.weight").to_f32(out);
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::argument);
    CHECK_THAT(e.what(), Catch::Contains("'model.norm.weight'"));
  }
  out.resize(256);
  f.view("model.norm.weight").to_f32(out);
  CHECK(out[0] == 1.33984375f);
}

TEST_CASE("safetensors: checkpoint folder picks model.safetensors", "[safetensors][checkpoint]") {
  // The folder also holds reference_logits.safetensors: model.safetensors must win.
  const checkpoint ck(models + "tiny-llama");
  const auto names = ck.names();
  REQUIRE(names.size() == 39);
  CHECK(names.front() == "lm_head.weight");
  CHECK(names.back() == "model.norm.weight");
  CHECK(ck.files().size() == 1);
  CHECK(ck.contains("model.layers.3.mlp.up_proj.weight"));
  CHECK_FALSE(ck.contains("prompt0.logits"));
  CHECK(ck.info("model.layers.1.self_attn.k_proj.weight").shape == shape_t{128, 256});
  // 10 490 368 bytes of tensor data, the end of the last data_offsets per Python.
  CHECK(ck.total_bytes() == 10490368);
  CHECK(ck.view("model.norm.weight").to_f32()[255] == 1.515625f);
  try {
    (void)ck.view("model.layers.4.mlp.up_proj.weight");
    FAIL("expected an error");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::format);
    CHECK_THAT(e.what(), Catch::Contains("tiny-llama") &&
                             Catch::Contains("'model.layers.4.mlp.up_proj.weight'"));
  }

  const checkpoint single(models + "tiny-qwen3/model.safetensors");
  CHECK(single.names().size() == 46);
  CHECK(single.info("model.embed_tokens.weight").type == dtype::bf16);
}

TEST_CASE("safetensors: views stay valid after the file is moved or copied",
          "[safetensors][reader]") {
  std::vector<tensor_view> views;
  std::vector<file> keep;
  {
    file f(models + "tiny-llama/model.safetensors");
    views.push_back(f.view("model.norm.weight"));
    keep.push_back(std::move(f));
  }
  keep.push_back(keep.front());
  keep.erase(keep.begin());
  CHECK(views.front().file() == models + "tiny-llama/model.safetensors");
  CHECK(views.front().to_f32()[0] == 1.33984375f);
}
