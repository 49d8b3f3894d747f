// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/q8_0/ref.hpp"

using namespace qforge;
namespace fs = std::filesystem;

namespace {
const std::string models = std::string(QFORGE_FIXTURES) + "/models/";
const std::string tmp = std::string(QFORGE_TEST_TMP) + "/convert";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::vector<float> floats_of(const format::safetensors::tensor_view& v) { return v.to_f32(); }

// Row-major [rows, cols] floats with llama.cpp's q/k permutation applied, written out as the
// reshape (heads, 2, rows/heads/2, cols) -> swap axes 1,2 -> reshape it is defined as.
std::vector<float> permuted(const std::vector<float>& w, std::size_t rows, std::size_t cols,
                            std::size_t heads) {
  const std::size_t half = rows / heads / 2;
  std::vector<float> out(w.size());
  std::size_t o = 0;
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t i = 0; i < half; ++i)
      for (std::size_t j = 0; j < 2; ++j)
        for (std::size_t c = 0; c < cols; ++c) out[o++] = w[((h * 2 + j) * half + i) * cols + c];
  return out;
}

std::vector<float> gguf_floats(const format::gguf::reader& r, const format::gguf::tensor_info& t) {
  const auto bytes = r.tensor_data(t);
  std::uint64_t n = 1;
  for (auto d : t.dims) n *= d;
  std::vector<float> out(n);
  if (t.type == quant::qtype::f32) {
    std::memcpy(out.data(), bytes.data(), n * 4);
  } else if (t.type == quant::qtype::f16 || t.type == quant::qtype::bf16) {
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = t.type == quant::qtype::f16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
  } else {
    REQUIRE(t.type == quant::qtype::q8_0);
    std::vector<quant::block_q8_0> blocks(n / 32);
    std::memcpy(blocks.data(), bytes.data(), blocks.size() * sizeof(quant::block_q8_0));
    quant::q8_0::decode_ref(blocks, out);
  }
  return out;
}

void check_conversion(const std::string& model, quant::qtype type) {
  INFO(model << " -> " << quant::name(type));
  fs::create_directories(tmp);
  const std::string out = tmp + "/" + model + "-" + std::string(quant::name(type)) + ".gguf";
  convert::conversion_options opt;
  opt.type = type;
  const auto result = convert::convert_to_gguf(models + model, out, opt);
  CHECK_FALSE(fs::exists(atomic_file::temp_path_for(out)));

  const auto cfg = read_json(models + model + "/config.json");
  const format::gguf::reader r(out);
  const std::string arch = cfg["model_type"] == "qwen3" ? "qwen3" : "llama";
  CHECK(r.at("general.architecture").as_string() == arch);
  CHECK(r.at(arch + ".block_count").as_u32() == cfg["num_hidden_layers"].get<std::uint32_t>());
  CHECK(r.at(arch + ".embedding_length").as_u32() == cfg["hidden_size"].get<std::uint32_t>());
  CHECK(r.at(arch + ".feed_forward_length").as_u32() == cfg["intermediate_size"].get<std::uint32_t>());
  CHECK(r.at(arch + ".attention.head_count").as_u32() == cfg["num_attention_heads"].get<std::uint32_t>());
  CHECK(r.at(arch + ".attention.head_count_kv").as_u32() ==
        cfg["num_key_value_heads"].get<std::uint32_t>());
  CHECK(r.at(arch + ".context_length").as_u32() ==
        cfg["max_position_embeddings"].get<std::uint32_t>());
  CHECK(r.at(arch + ".rope.freq_base").as_f32() == static_cast<float>(cfg["rope_theta"].get<double>()));
  CHECK(r.at(arch + ".attention.layer_norm_rms_epsilon").as_f32() ==
        static_cast<float>(cfg["rms_norm_eps"].get<double>()));
  CHECK(r.at("tokenizer.ggml.model").as_string() == "gpt2");
  CHECK(r.at("tokenizer.ggml.tokens").array_size() == cfg["vocab_size"].get<std::size_t>());
  CHECK(r.at("general.file_type").as_u32() == static_cast<std::uint32_t>(convert::file_type_for(type)));

  const format::safetensors::checkpoint ck(models + model);
  const bool tied = cfg.value("tie_word_embeddings", false);
  const std::size_t layers = cfg["num_hidden_layers"];
  const std::size_t per_layer = arch == "qwen3" ? 11 : 9;
  CHECK(r.tensors().size() == 2 + (tied ? 0 : 1) + per_layer * layers);
  CHECK(result.plan.tensors.size() == r.tensors().size());

  const auto heads = cfg["num_attention_heads"].get<std::size_t>();
  const auto kv_heads = cfg["num_key_value_heads"].get<std::size_t>();
  for (const auto& hf : ck.names()) {
    const auto m = convert::map_tensor_name(hf, format::hf::read_config(models + model));
    REQUIRE(m);
    const auto* t = r.find_tensor(m->gguf_name);
    if (tied && hf == "lm_head.weight") {
      CHECK(t == nullptr);
      continue;
    }
    INFO(hf << " -> " << m->gguf_name);
    REQUIRE(t != nullptr);
    const auto view = ck.view(hf);
    const auto shape = view.shape();
    REQUIRE(t->dims.size() == shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i) CHECK(t->dims[i] == shape[shape.size() - 1 - i]);
    auto want = floats_of(view);
    if (arch == "llama" && hf.find("q_proj") != std::string::npos)
      want = permuted(want, shape[0], shape[1], heads);
    if (arch == "llama" && hf.find("k_proj") != std::string::npos)
      want = permuted(want, shape[0], shape[1], kv_heads);
    const bool one_d = shape.size() == 1;
    CHECK(t->type == (one_d ? quant::qtype::f32 : type));
    const auto got = gguf_floats(r, *t);
    REQUIRE(got.size() == want.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      float tol = 0;
      if (t->type == quant::qtype::bf16) tol = std::abs(want[i]) * (1.0f / 256);
      if (t->type == quant::qtype::q8_0) {
        // |error| <= d/2 + 127 |d - fp16(d)| with d = amax/127 of the 32-block: the scale is
        // stored as fp16, whose relative rounding error is at most 2^-11.
        const std::size_t b = i / 32 * 32;
        float amax = 0;
        for (std::size_t k = b; k < b + 32; ++k) amax = std::max(amax, std::abs(want[k]));
        tol = amax / 127 * (0.5f + 127.0f / 2048) + 1e-7f;
      }
      // F16 and F32 outputs of F16/BF16 sources with exact conversions are lossless, except BF16
      // values outside half's range (none in these fixtures) and F16 <- BF16 rounding.
      if (t->type == quant::qtype::f16 && view.type() == format::safetensors::dtype::bf16)
        tol = std::abs(want[i]) * (1.0f / 2048) + 6e-8f;
      if (std::abs(got[i] - want[i]) > tol) ++bad;
    }
    CHECK(bad == 0);
  }
}
}  // namespace

TEST_CASE("convert: llama q/k permutation on a worked example", "[convert]") {
  // 2 heads of 4 rows, 1 column: rows per head are (a0 a1 | b0 b1) halves -> a0 b0 a1 b1.
  const std::vector<float> in = {0, 1, 2, 3, 10, 11, 12, 13};
  std::vector<float> out(8);
  convert::permute_rows_for_llama_rope(std::as_bytes(std::span(in)), std::as_writable_bytes(std::span(out)),
                                       8, sizeof(float), 2);
  CHECK(out == std::vector<float>{0, 2, 1, 3, 10, 12, 11, 13});
}

TEST_CASE("convert: tensor names follow llama.cpp", "[convert]") {
  const auto cfg = format::hf::read_config(models + "tiny-llama");
  CHECK(convert::map_tensor_name("model.layers.3.self_attn.q_proj.weight", cfg)->gguf_name ==
        "blk.3.attn_q.weight");
  CHECK(convert::map_tensor_name("model.layers.3.self_attn.q_proj.weight", cfg)->permute_heads == 4);
  CHECK(convert::map_tensor_name("model.layers.0.self_attn.k_proj.weight", cfg)->permute_heads == 2);
  CHECK(convert::map_tensor_name("model.layers.0.mlp.down_proj.weight", cfg)->gguf_name ==
        "blk.0.ffn_down.weight");
  CHECK_FALSE(convert::map_tensor_name("model.layers.0.self_attn.rotary_emb.inv_freq", cfg));
  CHECK_THROWS_AS(convert::map_tensor_name("model.layers.9.mlp.up_proj.weight", cfg), error);  // > n_layers
  CHECK_THROWS_AS(convert::map_tensor_name("vision_tower.patch_embed.weight", cfg), error);
  const auto qwen = format::hf::read_config(models + "tiny-qwen3");
  CHECK(convert::map_tensor_name("model.layers.1.self_attn.q_norm.weight", qwen)->gguf_name ==
        "blk.1.attn_q_norm.weight");
  CHECK(convert::map_tensor_name("model.layers.1.self_attn.q_proj.weight", qwen)->permute_heads == 0);
}

TEST_CASE("convert: size labels as model cards write them", "[convert]") {
  CHECK(convert::size_label(5'246'208) == "5.2M");
  CHECK(convert::size_label(20'700'000) == "21M");
  CHECK(convert::size_label(7'241'732'096) == "7.2B");
  CHECK(convert::size_label(70'553'706'496) == "71B");
  CHECK(convert::display_name_from_dir("/x/tiny-llama/") == "Tiny Llama");
}

TEST_CASE("convert: llama3 rope factors", "[convert]") {
  format::hf::model_config c;
  c.head_dim = 128;
  c.rope_theta = 500000;
  c.scaling.type = "llama3";
  c.scaling.factor = 8;
  c.scaling.low_freq_factor = 1;
  c.scaling.high_freq_factor = 4;
  c.scaling.original_max_position_embeddings = 8192;
  const auto f = convert::llama3_rope_factors(c);
  REQUIRE(f.size() == 64);
  CHECK(f.front() == 1.0f);  // high frequencies untouched
  CHECK(f.back() == 8.0f);   // low frequencies scaled by the factor
  for (std::size_t i = 1; i < f.size(); ++i) CHECK(f[i] >= f[i - 1]);
}

TEST_CASE("convert: fixtures convert tensor by tensor and key by key", "[convert][fixtures]") {
  for (const char* model : {"tiny-llama", "tiny-qwen3"})
    for (auto type : {quant::qtype::f16, quant::qtype::bf16, quant::qtype::f32, quant::qtype::q8_0})
      check_conversion(model, type);
}

TEST_CASE("convert: bad input fails cleanly and leaves no partial artefact", "[convert]") {
  fs::create_directories(tmp);
  const std::string out = tmp + "/bad.gguf";
  {
    std::ofstream(out) << "previous complete artefact";
  }
  // Unsupported output type for this command.
  convert::conversion_options opt;
  opt.type = quant::qtype::q4_k;
  CHECK_THROWS_AS(convert::convert_to_gguf(models + "tiny-llama", out, opt), error);

  // Unsupported architecture: a copy of tiny-llama whose config names GPT-2.
  const std::string dir = tmp + "/gpt2-model";
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(models + "tiny-llama/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  auto cfg = read_json(models + "tiny-llama/config.json");
  cfg["architectures"] = {"GPT2LMHeadModel"};
  cfg["model_type"] = "gpt2";
  std::ofstream(dir + "/config.json") << cfg.dump();
  try {
    convert::convert_to_gguf(dir, out, {});
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::unsupported);
    CHECK(std::string(e.what()).find("config.json") != std::string::npos);
  }

  // Corrupt weights: the checkpoint is cut short.
  cfg = read_json(models + "tiny-llama/config.json");
  std::ofstream(dir + "/config.json") << cfg.dump();
  {
    std::ifstream in(models + "tiny-llama/model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir + "/model.safetensors", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  try {
    convert::convert_to_gguf(dir, out, {});
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::format);
    CHECK(std::string(e.what()).find("model.safetensors") != std::string::npos);
  }

  std::ifstream in(out);
  std::string kept((std::istreambuf_iterator<char>(in)), {});
  CHECK(kept == "previous complete artefact");
  CHECK_FALSE(fs::exists(atomic_file::temp_path_for(out)));
}
