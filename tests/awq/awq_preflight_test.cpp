// SPDX-License-Identifier: MIT
// The vLLM serving preflight (awq/preflight.hpp) on a real AWQ folder of tiny-llama and on
// doctored copies (wrong group size, bits, dtype, missing and non-finite tensors, a bad
// modules_to_not_convert, tied embeddings), and on synthetic folders whose shapes hit each of
// vLLM's refusals: heads per rank, int32 packing per shard, Marlin's tile minimums and the
// fallback to the AWQ GEMM kernel.
#include <algorithm>
#include <catch2/catch.hpp>
#include <limits>
#include <unistd.h>

#include "awq/awq_fixture.hpp"
#include "qforge/awq/preflight.hpp"

using namespace qforge;
using awq_fixture::doctor;
using format::safetensors::dtype;
namespace fs = std::filesystem;

namespace {

// Per process: ctest runs each test case as its own process, in parallel, and every one of them
// quantizes the real folder; sharing one path let a process read it while another rewrote it.
const std::string tmp = std::string(QFORGE_TEST_TMP) + "/awq-preflight-" + std::to_string(::getpid());
// Removed at exit, so that the per-process folders do not pile up in the build tree.
const struct tmp_cleanup {
  ~tmp_cleanup() {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
  }
} cleanup;

const std::string& real_folder() {
  static const std::string dir = [] {
    const std::string d = tmp + "/tiny-llama-awq";
    awq_fixture::quantize(awq_fixture::tiny_llama, d);
    return d;
  }();
  return dir;
}

bool has_finding(const awq::vllm_preflight& r, bool error, const std::string& tensor,
                 const std::string& text) {
  return std::any_of(r.findings.begin(), r.findings.end(), [&](const auto& f) {
    return f.error == error && f.tensor == tensor && f.message.find(text) != std::string::npos;
  });
}

std::string findings(const awq::vllm_preflight& r) { return awq::format_vllm_table(r); }

// A synthetic AWQ folder (zero tensors of the right shapes): Llama with the given dimensions.
// float_linears: HF linear names stored unquantized (".weight" F16).
struct synth {
  std::uint32_t hidden = 256, heads = 4, kv = 2, head_dim = 64, ffn = 768, layers = 1;
  long long group = 128;
  std::string dtype_name = "float16";
  nlohmann::json not_convert = nullptr;
  std::vector<std::string> float_linears;
};
std::string write_synth(const std::string& name, const synth& s) {
  const std::string dir = tmp + "/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  nlohmann::json c = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_size", s.hidden},
                      {"num_attention_heads", s.heads},
                      {"num_key_value_heads", s.kv},
                      {"head_dim", s.head_dim},
                      {"intermediate_size", s.ffn},
                      {"num_hidden_layers", s.layers},
                      {"vocab_size", 64},
                      {"tie_word_embeddings", false},
                      {"torch_dtype", s.dtype_name},
                      {"quantization_config",
                       {{"quant_method", "awq"},
                        {"bits", 4},
                        {"group_size", s.group},
                        {"zero_point", true},
                        {"version", "gemm"},
                        {"modules_to_not_convert", s.not_convert}}}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  std::vector<std::vector<std::byte>> keep;
  format::safetensors::writer w;
  const auto add = [&](const std::string& n, dtype t, std::vector<std::uint64_t> shape) {
    std::uint64_t count = 1;
    for (auto d : shape) count *= d;
    keep.emplace_back(count * format::safetensors::size_of(t));
    w.add(n, t, std::move(shape), keep.back());
  };
  keep.reserve(256);
  const std::uint64_t H = s.hidden, F = s.ffn, QD = std::uint64_t{s.heads} * s.head_dim,
                      KVD = std::uint64_t{s.kv} * s.head_dim;
  const std::uint64_t g = s.group > 0 ? static_cast<std::uint64_t>(s.group) : 0;
  add("model.embed_tokens.weight", dtype::f16, {64, H});
  add("model.norm.weight", dtype::f16, {H});
  add("lm_head.weight", dtype::f16, {64, H});
  for (std::uint32_t l = 0; l < s.layers; ++l) {
    const std::string p = cat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", dtype::f16, {H});
    add(p + "post_attention_layernorm.weight", dtype::f16, {H});
    const std::tuple<const char*, std::uint64_t, std::uint64_t> lin[] = {
        {"self_attn.q_proj", QD, H}, {"self_attn.k_proj", KVD, H}, {"self_attn.v_proj", KVD, H},
        {"self_attn.o_proj", H, QD}, {"mlp.gate_proj", F, H},      {"mlp.up_proj", F, H},
        {"mlp.down_proj", H, F}};
    for (const auto& [n, out, in] : lin) {
      const std::string base = p + n;
      if (std::find(s.float_linears.begin(), s.float_linears.end(), base) !=
          s.float_linears.end()) {
        add(base + ".weight", dtype::f16, {out, in});
        continue;
      }
      const std::uint64_t gi = g ? g : in;
      add(base + ".qweight", dtype::i32, {in, out / 8});
      add(base + ".qzeros", dtype::i32, {in / gi, out / 8});
      add(base + ".scales", dtype::f16, {in / gi, out});
    }
  }
  w.write(dir + "/model.safetensors");
  return dir;
}

}  // namespace

TEST_CASE("preflight: a real tiny-llama AWQ folder", "[awq][preflight]") {
  const auto r = awq::check_vllm(real_folder(), {1, 2, 4, 8});
  INFO(findings(r));
  CHECK(r.model_ok());
  CHECK(r.findings.empty());
  CHECK(r.bits == 4);
  CHECK(r.group == 128);
  CHECK(r.zero_point);
  CHECK(r.marlin_config);
  CHECK(r.act_dtype == "float16");
  REQUIRE(r.tps.size() == 4);
  for (std::uint32_t tp : {1u, 2u}) {
    const auto& t = *r.find(tp);
    CHECK(t.ampere.loads);
    CHECK(t.ampere.kernel == "awq_marlin");
    CHECK(t.ampere.gemm_fallbacks == 0);
    CHECK(t.turing.loads);
    CHECK(t.turing.kernel == "awq");
  }
  // TP 4: o_proj sees 64 inputs per rank, below Marlin's 128 and not a multiple of the group.
  const auto& t4 = *r.find(4);
  CHECK_FALSE(t4.ampere.loads);
  CHECK_FALSE(t4.turing.loads);
  CHECK(t4.ampere.reason.find("model.layers.0.self_attn.o_proj") != std::string::npos);
  CHECK(t4.ampere.reason.find("min_thread_k") != std::string::npos);
  CHECK(t4.turing.reason.find("group_size 128") != std::string::npos);
  // TP 8: 4 heads.
  CHECK(r.find(8)->ampere.reason.find("4 attention heads") != std::string::npos);
  const auto table = awq::format_vllm_table(r);
  CHECK(table.find("awq_marlin") != std::string::npos);
  CHECK(table.find("refused") != std::string::npos);
}

TEST_CASE("preflight: doctored configs", "[awq][preflight]") {
  const auto& src = real_folder();
  SECTION("group size that does not match the tensors") {
    doctor(src, tmp + "/group64", [](auto& j) { j["quantization_config"]["group_size"] = 64; });
    const auto r = awq::check_vllm(tmp + "/group64");
    INFO(findings(r));
    CHECK_FALSE(r.model_ok());
    CHECK(has_finding(r, true, "model.layers.0.self_attn.q_proj.qzeros", "expected [4, 32]"));
    CHECK(has_finding(r, true, "model.layers.0.self_attn.q_proj.scales", "expected [4, 256]"));
    for (const auto& t : r.tps) CHECK_FALSE(t.ampere.loads);
  }
  SECTION("8 bits") {
    doctor(src, tmp + "/bits8", [](auto& j) { j["quantization_config"]["bits"] = 8; });
    const auto r = awq::check_vllm(tmp + "/bits8");
    CHECK(has_finding(r, true, "config.json", "4-bit weights only"));
    CHECK_FALSE(r.marlin_config);
  }
  SECTION("group 256 is not a Marlin group: plain awq, and the tensors disagree") {
    doctor(src, tmp + "/group256", [](auto& j) { j["quantization_config"]["group_size"] = 256; });
    const auto r = awq::check_vllm(tmp + "/group256");
    CHECK_FALSE(r.marlin_config);
    CHECK(has_finding(r, true, "model.layers.3.mlp.down_proj.qzeros", "expected [3, 32]"));
  }
  SECTION("no zero_point: vLLM's from_config needs the key") {
    doctor(src, tmp + "/nozp", [](auto& j) { j["quantization_config"].erase("zero_point"); });
    CHECK(has_finding(awq::check_vllm(tmp + "/nozp"), true, "config.json", "zero_point"));
  }
  SECTION("bf16 activations: Marlin only") {
    doctor(src, tmp + "/bf16", [](auto& j) { j["torch_dtype"] = "bfloat16"; });
    const auto r = awq::check_vllm(tmp + "/bf16", {1});
    INFO(findings(r));
    CHECK(r.model_ok());
    CHECK(r.act_dtype == "bfloat16");
    CHECK(r.tps[0].ampere.loads);
    CHECK_FALSE(r.tps[0].turing.loads);
    CHECK(r.tps[0].turing.reason.find("--dtype float16") != std::string::npos);
  }
  SECTION("modules_to_not_convert naming a quantized linear") {
    doctor(src, tmp + "/mtnc", [](auto& j) {
      j["quantization_config"]["modules_to_not_convert"] = {"model.layers.2.mlp.down_proj",
                                                            "vision"};
    });
    const auto r = awq::check_vllm(tmp + "/mtnc");
    INFO(findings(r));
    CHECK(has_finding(r, true, "model.layers.2.mlp.down_proj.qweight",
                      "modules_to_not_convert lists it"));
    CHECK(has_finding(r, false, "config.json", "'vision' matches no linear"));
    CHECK_FALSE(r.model_ok());
  }
  SECTION("tied embeddings: lm_head present is ignored; untied and missing is an error") {
    doctor(src, tmp + "/tied", [](auto& j) { j["tie_word_embeddings"] = true; });
    const auto r = awq::check_vllm(tmp + "/tied");
    CHECK(r.model_ok());
    CHECK(has_finding(r, false, "lm_head.weight", "ties lm_head"));
    doctor(src, tmp + "/nohead", {},
           [](const std::string& n, auto&, auto&, auto&) { return n != "lm_head.weight"; });
    CHECK(has_finding(awq::check_vllm(tmp + "/nohead"), true, "lm_head.weight", "missing"));
  }
}

TEST_CASE("preflight: doctored tensors", "[awq][preflight]") {
  const auto& src = real_folder();
  SECTION("missing scales") {
    doctor(src, tmp + "/noscales", {}, [](const std::string& n, auto&, auto&, auto&) {
      return n != "model.layers.1.mlp.up_proj.scales";
    });
    const auto r = awq::check_vllm(tmp + "/noscales");
    CHECK(has_finding(r, true, "model.layers.1.mlp.up_proj.scales", "missing"));
    CHECK_FALSE(r.find(1)->ampere.loads);
  }
  SECTION("wrong dtype and shape") {
    doctor(src, tmp + "/dtype", {}, [](const std::string& n, dtype& t, auto& shape, auto& bytes) {
      if (n == "model.layers.0.self_attn.k_proj.qzeros") t = dtype::f32;
      if (n == "model.layers.0.self_attn.v_proj.qweight") {
        shape = {128, 32};  // same bytes, wrong shape
        (void)bytes;
      }
      return true;
    });
    const auto r = awq::check_vllm(tmp + "/dtype");
    CHECK(has_finding(r, true, "model.layers.0.self_attn.k_proj.qzeros", "expected I32"));
    CHECK(has_finding(r, true, "model.layers.0.self_attn.v_proj.qweight", "expected [256, 16]"));
  }
  SECTION("a non-finite scale, an unknown tensor, an unexpected bias") {
    doctor(src, tmp + "/nan", {},
           [](const std::string& n, auto&, auto&, std::vector<std::byte>& bytes) {
             if (n == "model.layers.3.self_attn.o_proj.scales") {
               const std::uint16_t inf = 0x7c00;
               std::memcpy(bytes.data() + 10, &inf, 2);
             }
             return true;
           },
           {{"model.layers.0.mlp.extra.weight", {1.0f, 2.0f}},
            {"model.layers.1.self_attn.q_proj.bias", std::vector<float>(256, 0.0f)}});
    const auto r = awq::check_vllm(tmp + "/nan");
    CHECK(has_finding(r, true, "model.layers.3.self_attn.o_proj.scales", "element 5 is inf"));
    CHECK(has_finding(r, true, "model.layers.0.mlp.extra.weight",
                      "not a tensor of this architecture"));
    CHECK(has_finding(r, true, "model.layers.1.self_attn.q_proj.bias", "no bias"));
  }
}

TEST_CASE("preflight: shapes against vLLM's tensor-parallel rules", "[awq][preflight]") {
  SECTION("Marlin's tiles fail, the AWQ GEMM fallback takes the layer") {
    synth s;
    s.ffn = 736;  // down_proj input 736: a multiple of 32, not of Marlin's 128
    s.group = 32;
    const auto r = awq::check_vllm(write_synth("marlin-fallback", s), {1, 2});
    INFO(findings(r));
    REQUIRE(r.model_ok());
    CHECK(r.tps[0].ampere.loads);
    CHECK(r.tps[0].ampere.kernel == "awq_marlin");
    CHECK(r.tps[0].ampere.gemm_fallbacks == 1);
    CHECK(r.tps[0].ampere.reason.find("model.layers.0.mlp.down_proj") != std::string::npos);
    // TP 2: 368 per rank is not a multiple of 32.
    CHECK_FALSE(r.tps[1].ampere.loads);
    CHECK(r.tps[1].ampere.reason.find("input 368") != std::string::npos);
    // bf16: the fallback kernel is fp16-only.
    s.dtype_name = "bfloat16";
    const auto b = awq::check_vllm(write_synth("marlin-fallback-bf16", s), {1});
    CHECK_FALSE(b.tps[0].ampere.loads);
    CHECK(b.tps[0].ampere.reason.find("fp16-only") != std::string::npos);
  }
  SECTION("output shards that do not fill int32 columns") {
    synth s;
    s.heads = 8, s.kv = 8, s.head_dim = 36, s.group = 32;  // q/k/v per rank at TP 8: 36 outputs
    s.ffn = 1024;
    const auto r = awq::check_vllm(write_synth("odd-shards", s), {1, 8});
    INFO(findings(r));
    REQUIRE(r.model_ok());
    CHECK(r.tps[0].turing.loads);
    CHECK_FALSE(r.tps[1].turing.loads);
    CHECK(r.tps[1].turing.reason.find("self_attn.qkv_proj: output shard 36") != std::string::npos);
    CHECK_FALSE(r.tps[1].ampere.loads);
  }
  SECTION("KV heads: replicated when TP exceeds them, refused when they do not divide") {
    synth s;
    s.heads = 12, s.kv = 3, s.head_dim = 64, s.hidden = 768, s.ffn = 1536, s.group = 64;
    const auto r = awq::check_vllm(write_synth("kv3", s), {2, 3, 6});
    INFO(findings(r));
    CHECK(r.tps[0].ampere.reason.find("3 KV heads") != std::string::npos);
    CHECK(r.tps[1].ampere.loads);  // 1 KV head per rank
    CHECK(r.tps[2].ampere.loads);  // each KV head replicated twice
  }
  SECTION("modules_to_not_convert and unquantized linears") {
    synth s;
    s.float_linears = {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                       "model.layers.0.self_attn.v_proj"};
    // null list: recent vLLM infers it; a warning per linear.
    auto r = awq::check_vllm(write_synth("float-null", s));
    CHECK(r.model_ok());
    CHECK(has_finding(r, false, "model.layers.0.self_attn.k_proj.weight", "null"));
    // a list that covers them: clean.
    s.not_convert = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    r = awq::check_vllm(write_synth("float-listed", s));
    INFO(findings(r));
    CHECK(r.findings.empty());
    CHECK(r.find(1)->ampere.loads);
    // a list that misses k and v.
    s.not_convert = {"model.layers.0.self_attn.q_proj"};
    r = awq::check_vllm(write_synth("float-partial", s));
    CHECK(has_finding(r, true, "model.layers.0.self_attn.k_proj.weight",
                      "no modules_to_not_convert entry"));
    // a fused layer with mixed precision.
    s.float_linears = {"model.layers.0.mlp.gate_proj"};
    s.not_convert = {"mlp.gate_proj"};
    r = awq::check_vllm(write_synth("float-mixed", s));
    CHECK(has_finding(r, true, "model.layers.0.mlp.gate_up_proj", "some but not all"));
  }
  SECTION("an unreadable folder is a finding, not an exception") {
    const auto r = awq::check_vllm(tmp + "/does-not-exist");
    CHECK_FALSE(r.model_ok());
    CHECK(has_finding(r, true, "config.json", "cannot open"));
    CHECK_FALSE(r.find(1)->ampere.loads);
  }
}
