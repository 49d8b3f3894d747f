// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <string>

#include "qforge/format/hf/config.hpp"

using namespace qforge;
using qforge::format::hf::architecture;
using qforge::format::hf::parse_config;
using qforge::format::hf::read_config;

namespace {
const std::string models = std::string(QFORGE_FIXTURES) + "/models/";

error::kind kind_of(const std::string& text) {
  try {
    (void)parse_config(text, "config.json");
  } catch (const error& e) {
    CHECK(std::string(e.what()).find("config.json") != std::string::npos);
    return e.which();
  }
  FAIL("no error for " << text);
  return error::kind::internal;
}
}  // namespace

TEST_CASE("hf config: the fixture models read as their README table says", "[format][hf]") {
  const auto llama = read_config(models + "tiny-llama");
  CHECK(llama.arch == architecture::llama);
  CHECK(llama.n_layers == 4);
  CHECK(llama.hidden_size == 256);
  CHECK(llama.n_heads == 4);
  CHECK(llama.n_kv_heads == 2);
  CHECK(llama.head_dim == 64);
  CHECK(llama.head_dim_given);
  CHECK(llama.intermediate_size == 768);
  CHECK(llama.vocab_size == 4096);
  CHECK(llama.rope_theta == 10000.0);
  CHECK(llama.rms_norm_eps == 1e-5);
  CHECK_FALSE(llama.tie_word_embeddings);
  CHECK_FALSE(llama.attention_bias);
  CHECK_FALSE(llama.qk_norm);
  CHECK(llama.scaling.type == "none");
  CHECK(llama.bos_token_id == 4088u);

  const auto qwen = read_config(models + "tiny-qwen3");
  CHECK(qwen.arch == architecture::qwen3);
  CHECK(qwen.rope_theta == 1e6);
  CHECK(qwen.rms_norm_eps == 1e-6);
  CHECK(qwen.tie_word_embeddings);
  CHECK(qwen.qk_norm);
  CHECK(qwen.torch_dtype == "bfloat16");

  const auto small = read_config(models + "small-llama");
  CHECK(small.n_layers == 6);
  CHECK(small.hidden_size == 512);
  CHECK(small.n_heads == 8);
  CHECK(small.n_kv_heads == 4);
  CHECK(small.intermediate_size == 1280);
  CHECK(small.rope_theta == 500000.0);
}

TEST_CASE("hf config: rope parameters in both spellings, llama3 and yarn scaling kept", "[format][hf]") {
  const std::string base =
      R"("architectures":["LlamaForCausalLM"],"num_hidden_layers":2,"hidden_size":64,)"
      R"("num_attention_heads":4,"intermediate_size":128,"vocab_size":100,)";
  auto c = parse_config("{" + base + R"("rope_theta":5e5,"rope_scaling":{"rope_type":"llama3","factor":8.0,)"
                        R"("low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}})",
                        "config.json");
  CHECK(c.rope_theta == 5e5);
  CHECK(c.scaling.type == "llama3");
  CHECK(c.scaling.factor == 8.0);
  CHECK(c.scaling.original_max_position_embeddings == 8192u);
  CHECK(c.head_dim == 16);
  CHECK_FALSE(c.head_dim_given);
  CHECK(c.n_kv_heads == 4);  // absent: as many as the query heads

  c = parse_config("{" + base + R"("rope_parameters":{"rope_theta":1e6,"rope_type":"yarn","factor":4.0,)"
                   R"("original_max_position_embeddings":32768,"beta_fast":32,"beta_slow":1}})",
                   "config.json");
  CHECK(c.rope_theta == 1e6);
  CHECK(c.scaling.type == "yarn");
  CHECK(c.scaling.beta_fast == 32.0);

  c = parse_config("{" + base + R"("rope_scaling":{"type":"linear","factor":2.0}})", "config.json");
  CHECK(c.scaling.type == "linear");
  CHECK(c.scaling.factor == 2.0);

  c = parse_config(R"({"architectures":["Qwen2ForCausalLM"],"num_hidden_layers":2,"hidden_size":64,)"
                   R"("num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,"vocab_size":100})",
                   "config.json");
  CHECK(c.arch == architecture::qwen2);
  CHECK(c.attention_bias);  // Qwen2 always has q/k/v biases
}

TEST_CASE("hf config: bad configs name the file and the problem", "[format][hf]") {
  const std::string ok_tail = R"("num_hidden_layers":2,"hidden_size":64,"num_attention_heads":4,)"
                              R"("intermediate_size":128,"vocab_size":100})";
  CHECK(kind_of("{not json") == error::kind::format);
  CHECK(kind_of("[1,2]") == error::kind::format);
  CHECK(kind_of(R"({"architectures":["GPT2LMHeadModel"],)" + ok_tail) == error::kind::unsupported);
  try {
    (void)parse_config(R"({"architectures":["BertModel"],)" + ok_tail, "x/config.json");
  } catch (const error& e) {
    CHECK(std::string(e.what()).find("LlamaForCausalLM") != std::string::npos);  // lists supported
  }
  CHECK(kind_of(R"({"architectures":["LlamaForCausalLM"],"hidden_size":64})") == error::kind::format);
  CHECK(kind_of(R"({"architectures":["LlamaForCausalLM"],"num_hidden_layers":-2,"hidden_size":64,)"
                R"("num_attention_heads":4,"intermediate_size":128,"vocab_size":100})") ==
        error::kind::format);
  CHECK(kind_of(R"({"architectures":["LlamaForCausalLM"],"num_key_value_heads":3,)" + ok_tail) ==
        error::kind::format);
  CHECK(kind_of(R"({"architectures":["LlamaForCausalLM"],"rope_scaling":{"type":"weird"},)" + ok_tail) ==
        error::kind::unsupported);
  CHECK_THROWS_AS(read_config("/nonexistent/model"), error);
}
