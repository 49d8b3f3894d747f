// SPDX-License-Identifier: MIT
// llama-quantize's mixes: the rules on hand-made cases, then the real thing. For the fixture models
// (and synthetic ones that reach the GQA, 70B, row-length-fallback and odd-order rules), an F16
// GGUF from our converter is quantized by llama.cpp itself (llama_model_quantize through
// llama-cpp-python, tests/convert/llama_quantize.py) and by qforge, and the two files must have the
// same per-tensor types and the same bytes; so must `convert_to_gguf_mix` straight from
// safetensors. With importance matrices (GGUF and legacy .dat) too.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "qforge/convert/quantize.hpp"

using namespace qforge;
namespace fs = std::filesystem;
using convert::mix_info;
using quant::qtype;

namespace {

const std::string models = std::string(QFORGE_FIXTURES) + "/models/";
const fs::path tmp = fs::path(QFORGE_TEST_TMP) / "mix";
const fs::path script = fs::path(__FILE__).parent_path() / "llama_quantize.py";

convert::model_facts llama_facts(std::uint32_t layers, std::uint32_t heads, std::uint32_t kv,
                                 std::uint32_t experts = 0, std::string arch = "llama") {
  return {std::move(arch), layers, heads, kv, experts};
}

// Types of a dense model of `layers` blocks, by name.
std::map<std::string, qtype> plan_types(const mix_info& m, const convert::model_facts& f,
                                        std::uint64_t ffn_row = 768, bool tied = false,
                                        bool imatrix = false) {
  std::vector<convert::mix_tensor> ts;
  ts.push_back({"token_embd.weight", {256, 4096}, qtype::f16});
  if (!tied) ts.push_back({"output.weight", {256, 4096}, qtype::f16});
  ts.push_back({"output_norm.weight", {256}, qtype::f32});
  for (std::uint32_t l = 0; l < f.n_layer; ++l) {
    const auto b = cat("blk.", l, ".");
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"})
      ts.push_back({cat(b, n, ".weight"), {256, 256}, qtype::f16});
    ts.push_back({cat(b, "ffn_down.weight"), {ffn_row, 256}, qtype::f16});
    ts.push_back({cat(b, "attn_norm.weight"), {256}, qtype::f32});
  }
  const auto plan = convert::plan_mix(m, f, ts, imatrix);
  std::map<std::string, qtype> out;
  for (std::size_t i = 0; i < ts.size(); ++i) out[ts[i].name] = plan.types[i];
  return out;
}

bool have_llama_cpp() {
  static const bool ok =
      std::system("python3 -c 'import llama_cpp, gguf, numpy' >/dev/null 2>&1") == 0;
  return ok;
}

// llama.cpp quantizes `in` once per mix into `<stem>-<mix>-llama.gguf`.
void llama_quantize(const fs::path& in, const std::string& stem, const std::vector<mix_info>& ms,
                    const std::string& imatrix = {}) {
  std::string cmd = cat("python3 '", script.string(), "' '", in.string(), "'");
  if (!imatrix.empty()) cmd += cat(" --imatrix '", imatrix, "'");
  for (const auto& m : ms)
    cmd += cat(" ", static_cast<std::uint32_t>(m.ftype), ":'",
               (tmp / cat(stem, "-", m.name, "-llama.gguf")).string(), "'");
  cmd += cat(" 2>'", (tmp / (stem + "-llama.log")).string(), "'");
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::vector<char> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Equal bytes, or a message naming the first differing tensor.
std::string same_file(const fs::path& want, const fs::path& got) {
  const auto a = slurp(want), b = slurp(got);
  if (a == b) return "";
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  std::string where = "header";
  const format::gguf::reader r(want.string());
  for (const auto& t : r.tensors())
    if (i >= r.data_offset() + t.offset && i < r.data_offset() + t.offset + t.size_bytes)
      where = cat("tensor ", t.name, " (", quant::name(t.type), ")");
  return cat(got.string(), " differs from llama.cpp's at byte ", i, " of ", a.size(), " (", where,
             ", sizes ", a.size(), " vs ", b.size(), ")");
}

std::vector<std::pair<std::string, qtype>> file_types(const fs::path& p) {
  const format::gguf::reader r(p.string());
  std::vector<std::pair<std::string, qtype>> out;
  for (const auto& t : r.tensors()) out.emplace_back(t.name, t.type);
  return out;
}

bool all_encodable(const std::vector<std::pair<std::string, qtype>>& ts) {
  for (const auto& [n, t] : ts)
    if (t != qtype::f32 && t != qtype::f16 && !quant::can_encode(t)) return false;
  return true;
}

// Per-tensor types of llama.cpp's output == plan_mix on the input; then qforge's file == llama's.
void compare_mix(const fs::path& f16, const std::string& stem, const mix_info& m,
                 const convert::importance_matrix* im = nullptr,
                 const std::string& model_dir = {}) {
  INFO(stem << " " << m.name);
  const auto llama = tmp / cat(stem, "-", m.name, "-llama.gguf");
  const auto want = file_types(llama);

  const format::gguf::reader in(f16.string());
  std::vector<convert::mix_tensor> ts;
  for (const auto& t : in.tensors()) ts.push_back({t.name, t.dims, t.type});
  const auto plan =
      convert::plan_mix(m, convert::model_facts_from(in, in.path()), ts, im != nullptr);
  std::vector<std::pair<std::string, qtype>> got;
  for (std::size_t i : plan.order) got.emplace_back(ts[i].name, plan.types[i]);
  REQUIRE(got == want);

  if (!all_encodable(want)) {
    WARN(stem << " " << m.name << ": bytes not compared, an encoder is missing");
    return;
  }
  convert::quantize_options opt;
  opt.ftype = m.ftype;
  opt.imatrix = im;
  const auto ours = tmp / cat(stem, "-", m.name, "-qforge.gguf");
  const auto r = convert::quantize_gguf(f16.string(), ours.string(), opt);
  CHECK(r.tensors.size() == want.size());
  CHECK(same_file(llama, ours) == "");
  if (!model_dir.empty()) {
    const auto direct = tmp / cat(stem, "-", m.name, "-direct.gguf");
    convert::convert_to_gguf_mix(model_dir, direct.string(), opt);
    CHECK(same_file(llama, direct) == "");
  }
}

fs::path f16_of(const std::string& model) {
  fs::create_directories(tmp);
  const auto out = tmp / (model + "-f16.gguf");
  convert::conversion_options opt;
  opt.type = qtype::f16;
  convert::convert_to_gguf(models + model, out.string(), opt);
  return out;
}

std::vector<mix_info> all_mixes() { return {std::begin(convert::mixes), std::end(convert::mixes)}; }

// A GGUF with `base`'s metadata (some keys replaced) and random F16 tensors of the given shapes.
fs::path synthetic(const std::string& stem, const fs::path& base,
                   const std::vector<std::pair<std::string, format::gguf::value>>& keys,
                   const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& tensors) {
  const format::gguf::reader r(base.string());
  format::gguf::writer w;
  for (const auto& [k, v] : r.metadata()) w.set(k, v);
  for (const auto& [k, v] : keys) w.set(k, v);
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  for (const auto& [n, d] : tensors) w.add_tensor(n, d, d.size() == 1 ? qtype::f32 : qtype::f16);
  const auto path = tmp / (stem + "-f16.gguf");
  auto out = w.open(path.string());
  for (const auto& t : w.tensors()) {
    std::vector<std::byte> b(static_cast<std::size_t>(t.size_bytes));
    for (std::size_t i = 0; i < b.size(); i += t.type == qtype::f32 ? 4 : 2) {
      const float x = dist(rng);
      if (t.type == qtype::f32) {
        std::memcpy(b.data() + i, &x, 4);
      } else {
        const std::uint16_t h = fp32_to_fp16(x);
        std::memcpy(b.data() + i, &h, 2);
      }
    }
    out.write_tensor(t.name, b);
  }
  out.finish();
  return path;
}

}  // namespace

TEST_CASE("mix: names, file types, default types", "[mix]") {
  CHECK(convert::find_mix("q4_k_m")->ftype == quant::file_type::mostly_q4_k_m);
  CHECK(convert::find_mix("Q4_K_M")->base == qtype::q4_k);
  CHECK(convert::find_mix("Q3_K_L")->ftype == quant::file_type::mostly_q3_k_l);
  CHECK(static_cast<int>(convert::find_mix("q2_k")->ftype) == 10);
  CHECK(static_cast<int>(convert::find_mix("Q5_K_S")->ftype) == 16);
  CHECK_FALSE(convert::find_mix("q4_k_x"));
  CHECK_FALSE(convert::find_mix("f16"));
  CHECK_THROWS_AS(convert::require_mix("q7"), error);
  CHECK(convert::find_mix(quant::file_type::mostly_q6_k)->name == "Q6_K");
}

TEST_CASE("mix: which tensors a mix may change", "[mix]") {
  const std::vector<std::uint64_t> d2{256, 256}, d1{256}, col{256, 1};
  CHECK(convert::allows_quantization("blk.0.attn_q.weight", d2));
  CHECK_FALSE(convert::allows_quantization("blk.0.attn_norm.weight", d2));
  CHECK_FALSE(convert::allows_quantization("blk.0.attn_q.bias", d2));
  CHECK_FALSE(convert::allows_quantization("blk.0.attn_q.weight", d1));
  CHECK_FALSE(convert::allows_quantization("blk.0.attn_q.weight",
                                           col));  // ggml_n_dims == 1
  CHECK_FALSE(convert::allows_quantization("blk.0.ffn_gate_inp.weight", d2));
  CHECK_FALSE(convert::allows_quantization("position_embd.weight", d2));
}

TEST_CASE("mix: llama.cpp's order is by block number, then name", "[mix]") {
  CHECK(convert::llama_order_less("token_embd.weight", "blk.0.attn_q.weight"));
  CHECK(convert::llama_order_less("blk.2.ffn_up.weight", "blk.10.attn_k.weight"));
  CHECK(convert::llama_order_less("blk.3.attn_k.weight", "blk.3.attn_norm.weight"));
  CHECK(convert::llama_order_less("output.weight", "output_norm.weight"));
  CHECK(convert::block_of("blk.17.attn_v.weight") == 17);
  CHECK(convert::block_of("output.weight") == -1);
}

TEST_CASE("mix: Q4_K_M and Q5_K_M give 'more bits' to attn_v / ffn_down layers", "[mix]") {
  const auto q4km = *convert::find_mix("Q4_K_M");
  const auto t = plan_types(q4km, llama_facts(32, 32, 8));
  // use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2
  for (int i = 0; i < 32; ++i) {
    const bool more = i < 4 || i >= 28 || (i - 4) % 3 == 2;
    INFO("layer " << i);
    CHECK(t.at(cat("blk.", i, ".attn_v.weight")) == (more ? qtype::q6_k : qtype::q4_k));
    CHECK(t.at(cat("blk.", i, ".ffn_down.weight")) == (more ? qtype::q6_k : qtype::q4_k));
    CHECK(t.at(cat("blk.", i, ".attn_q.weight")) == qtype::q4_k);
  }
  CHECK(t.at("output.weight") == qtype::q6_k);
  CHECK(t.at("token_embd.weight") == qtype::q4_k);
  CHECK(t.at("output_norm.weight") == qtype::f32);
  const auto q5km = plan_types(*convert::find_mix("Q5_K_M"), llama_facts(32, 32, 8));
  CHECK(q5km.at("blk.0.attn_v.weight") == qtype::q6_k);
  CHECK(q5km.at("blk.4.attn_v.weight") == qtype::q5_k);
}

TEST_CASE("mix: Q2_K / Q3_K / Q4_K_S rules", "[mix]") {
  const auto q2 = plan_types(*convert::find_mix("Q2_K"), llama_facts(8, 8, 4));  // gqa 2
  CHECK(q2.at("blk.0.attn_v.weight") == qtype::q3_k);
  CHECK(q2.at("blk.0.ffn_down.weight") == qtype::q3_k);
  CHECK(q2.at("blk.0.attn_output.weight") == qtype::q3_k);
  CHECK(q2.at("blk.0.attn_q.weight") == qtype::q2_k);
  const auto q2g = plan_types(*convert::find_mix("Q2_K"), llama_facts(8, 8, 2));  // gqa 4
  CHECK(q2g.at("blk.5.attn_v.weight") == qtype::q4_k);

  const auto q3m = plan_types(*convert::find_mix("Q3_K_M"), llama_facts(32, 32, 8));
  CHECK(q3m.at("blk.0.attn_v.weight") == qtype::q5_k);
  CHECK(q3m.at("blk.1.attn_v.weight") == qtype::q5_k);
  CHECK(q3m.at("blk.2.attn_v.weight") == qtype::q4_k);
  CHECK(q3m.at("blk.1.ffn_down.weight") == qtype::q5_k);  // i < 32/16
  CHECK(q3m.at("blk.2.ffn_down.weight") == qtype::q4_k);
  CHECK(q3m.at("blk.2.attn_output.weight") == qtype::q4_k);
  const auto q3l = plan_types(*convert::find_mix("Q3_K_L"), llama_facts(32, 32, 8));
  CHECK(q3l.at("blk.9.attn_v.weight") == qtype::q5_k);
  CHECK(q3l.at("blk.9.ffn_down.weight") == qtype::q5_k);
  CHECK(q3l.at("blk.9.attn_output.weight") == qtype::q5_k);
  const auto q3s = plan_types(*convert::find_mix("Q3_K_S"), llama_facts(32, 32, 8));
  CHECK(q3s.at("blk.0.attn_v.weight") == qtype::q3_k);

  const auto q4s = plan_types(*convert::find_mix("Q4_K_S"), llama_facts(32, 32, 8));
  CHECK(q4s.at("blk.3.attn_v.weight") == qtype::q5_k);
  CHECK(q4s.at("blk.4.attn_v.weight") == qtype::q4_k);
  CHECK(q4s.at("blk.3.ffn_down.weight") == qtype::q5_k);  // i < 32/8
  CHECK(q4s.at("blk.4.ffn_down.weight") == qtype::q4_k);
}

TEST_CASE("mix: 70B, experts, falcon, tied embeddings, imatrix-dependent rules", "[mix]") {
  const auto q4km = *convert::find_mix("Q4_K_M");
  const auto big = plan_types(q4km, llama_facts(80, 64, 8));
  CHECK(big.at("blk.11.attn_v.weight") == qtype::q5_k);  // Q4_K bumped for 70B
  const auto b65 = plan_types(q4km, llama_facts(80, 64, 64));
  CHECK(b65.at("blk.11.attn_v.weight") == qtype::q4_k);  // the 65B has no GQA
  CHECK(plan_types(q4km, llama_facts(80, 64, 8, 0, "qwen2")).at("blk.11.attn_v.weight") ==
        qtype::q5_k);
  CHECK(plan_types(q4km, llama_facts(80, 64, 8, 0, "qwen3")).at("blk.11.attn_v.weight") ==
        qtype::q4_k);

  const auto moe = plan_types(q4km, llama_facts(8, 32, 8, 8));
  CHECK(moe.at("blk.3.attn_v.weight") == qtype::q8_0);
  CHECK(moe.at("blk.3.attn_k.weight") == qtype::q8_0);
  CHECK(moe.at("blk.3.attn_output.weight") == qtype::q5_k);

  const auto falcon = plan_types(q4km, llama_facts(32, 32, 8, 0, "falcon"));
  CHECK(falcon.at("output.weight") == qtype::q8_0);
  CHECK(falcon.at("blk.0.ffn_down.weight") == qtype::q6_k);  // i < n/16
  CHECK(falcon.at("blk.5.ffn_down.weight") == qtype::q4_k);

  const auto tied = plan_types(q4km, llama_facts(4, 4, 2), 768, /*tied=*/true);
  CHECK(tied.at("token_embd.weight") == qtype::q6_k);
  const auto q40 = *convert::find_mix("Q4_0");
  CHECK(plan_types(q40, llama_facts(8, 4, 2)).at("output.weight") == qtype::q6_k);
  CHECK(plan_types(q40, llama_facts(8, 4, 2)).at("blk.0.ffn_down.weight") == qtype::q4_0);
  CHECK(plan_types(q40, llama_facts(8, 4, 2), 768, false, true).at("blk.0.ffn_down.weight") ==
        qtype::q4_1);
  const auto nl = *convert::find_mix("IQ4_NL");
  CHECK(plan_types(nl, llama_facts(8, 4, 2)).at("blk.0.ffn_down.weight") == qtype::q5_k);
  CHECK(plan_types(nl, llama_facts(8, 4, 2), 768, false, true).at("blk.0.ffn_down.weight") ==
        qtype::iq4_nl);
  CHECK(plan_types(nl, llama_facts(8, 8, 2)).at("blk.3.attn_v.weight") == qtype::q5_k);
}

TEST_CASE("mix: row lengths that do not fit the block fall back", "[mix]") {
  CHECK(convert::fallback_type(qtype::q4_k, 384) == qtype::q5_0);
  CHECK(convert::fallback_type(qtype::q5_k, 384) == qtype::q5_1);
  CHECK(convert::fallback_type(qtype::q6_k, 384) == qtype::q8_0);
  CHECK(convert::fallback_type(qtype::q2_k, 384) == qtype::q4_0);
  CHECK(convert::fallback_type(qtype::q3_k, 384) == qtype::q4_0);
  CHECK(convert::fallback_type(qtype::q3_k, 80) == qtype::f16);
  CHECK(convert::fallback_type(qtype::q4_0, 80) == qtype::f16);
  CHECK(convert::fallback_type(qtype::q4_k, 512) == qtype::q4_k);
  const auto t = plan_types(*convert::find_mix("Q4_K_M"), llama_facts(8, 4, 2), 384);
  CHECK(t.at("blk.0.ffn_down.weight") == qtype::q8_0);  // Q6_K (more bits) -> Q8_0
  CHECK(t.at("blk.2.ffn_down.weight") == qtype::q5_0);  // Q4_K -> Q5_0
}

TEST_CASE("mix: per-tensor types and bytes equal llama.cpp's on the fixture models",
          "[mix][llama]") {
  if (!have_llama_cpp()) {
    WARN("not run: python3 with llama_cpp, gguf and numpy is not available");
    return;
  }
  for (const std::string model : {"tiny-llama", "tiny-qwen3", "small-llama"}) {
    const auto f16 = f16_of(model);
    llama_quantize(f16, model, all_mixes());
    for (const auto& m : convert::mixes) compare_mix(f16, model, m, nullptr, models + model);
  }
}

TEST_CASE(
    "mix: fallbacks, GQA, 70B and block order equal llama.cpp's on "
    "synthetic models",
    "[mix][llama]") {
  if (!have_llama_cpp()) {
    WARN("not run: python3 with llama_cpp, gguf and numpy is not available");
    return;
  }
  using format::gguf::value;
  const auto base = f16_of("tiny-llama");
  // Rows of 384 / 320 / 96 / 80 values; blocks 0..2 and 10..11 of 12 present (counters are not
  // block numbers), one [256, 1] weight (1-D to ggml), GQA 4.
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> odd = {
      {"token_embd.weight", {384, 64}},
      {"output.weight", {384, 64}},
      {"output_norm.weight", {384}}};
  for (int l : {0, 1, 2, 10, 11}) {
    const auto b = cat("blk.", l, ".");
    odd.push_back({b + "attn_norm.weight", {384}});
    odd.push_back({b + "attn_q.weight", {384, 96}});
    odd.push_back({b + "attn_k.weight", {96, 32}});
    odd.push_back({b + "attn_v.weight", {l == 1 ? 80u : 384u, 32}});
    odd.push_back({b + "attn_output.weight", {320, 64}});
    odd.push_back({b + "ffn_gate.weight", {512, 64}});
    odd.push_back({b + "ffn_up.weight", {384, 64}});
    odd.push_back({b + "ffn_down.weight", {l == 2 ? 160u : 384u, 64}});
  }
  odd.push_back({"blk.0.extra.weight", {256, 1}});
  const auto p_odd = synthetic("odd", base,
                               {{"llama.block_count", value::u32(12)},
                                {"llama.attention.head_count", value::u32(8)},
                                {"llama.attention.head_count_kv", value::u32(2)}},
                               odd);
  // 80 blocks, 64 heads over 8 kv heads: llama.cpp's 70B rules, use_more_bits over 80 layers.
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> deep = {
      {"token_embd.weight", {256, 32}},
      {"output.weight", {256, 32}},
      {"output_norm.weight", {256}}};
  for (int l = 0; l < 80; ++l)
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_down"})
      deep.push_back({cat("blk.", l, ".", n, ".weight"), {256, 8}});
  const auto p_deep = synthetic("deep", base,
                                {{"llama.block_count", value::u32(80)},
                                 {"llama.attention.head_count", value::u32(64)},
                                 {"llama.attention.head_count_kv", value::u32(8)}},
                                deep);
  for (const auto& [stem, path] : {std::pair{std::string("odd"), p_odd}, {"deep", p_deep}}) {
    llama_quantize(path, stem, all_mixes());
    for (const auto& m : convert::mixes) compare_mix(path, stem, m);
  }
}

namespace {

// Random positive importance data for every 2-D weight of tiny-llama, as llama-imatrix would store
// it (GGUF) and as the legacy tool did (.dat).
struct imatrix_files {
  fs::path gguf, dat;
  std::map<std::string, std::vector<float>> sums;  // raw in_sum2 (GGUF) / stored values (.dat)
};

imatrix_files write_imatrices(const fs::path& f16) {
  const format::gguf::reader r(f16.string());
  imatrix_files out{tmp / "tiny-llama-imatrix.gguf", tmp / "tiny-llama-imatrix.dat", {}};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.01f, 40.0f);
  format::gguf::writer w;
  w.set("general.type", format::gguf::value::string("imatrix"));
  w.set("imatrix.datasets", format::gguf::value::string_array({"calibration.jsonl"}));
  w.set("imatrix.chunk_count", format::gguf::value::u32(12));
  w.set("imatrix.chunk_size", format::gguf::value::u32(512));
  for (const auto& t : r.tensors()) {
    if (t.dims.size() < 2) continue;
    std::vector<float> s(static_cast<std::size_t>(t.dims[0]));
    for (auto& x : s) x = u(rng) * (u(rng) < 2.0f ? 30.0f : 1.0f);  // a few outlier columns
    out.sums[t.name] = s;
    w.add_tensor(t.name + ".in_sum2", {t.dims[0], 1}, qtype::f32);
    w.add_tensor(t.name + ".counts", {1, 1}, qtype::f32);
  }
  auto s = w.open(out.gguf.string());
  for (const auto& t : w.tensors()) {
    std::string_view n = t.name;
    if (n.ends_with(".in_sum2")) {
      s.write_tensor(t.name, std::as_bytes(std::span<const float>(
                                 out.sums.at(std::string(n.substr(0, n.size() - 8))))));
    } else {
      // blk.1.attn_k saw no tokens: llama.cpp uses weights of 1 there
      const float c = n.starts_with("blk.1.attn_k.") ? 0.0f : 6144.0f;
      s.write_tensor(t.name, std::as_bytes(std::span<const float>(&c, 1)));
    }
  }
  s.finish();

  std::ofstream dat(out.dat, std::ios::binary);
  const auto put = [&](std::int32_t v) { dat.write(reinterpret_cast<const char*>(&v), 4); };
  put(static_cast<std::int32_t>(out.sums.size()));
  for (const auto& [name, v] : out.sums) {
    put(static_cast<std::int32_t>(name.size()));
    dat.write(name.data(), static_cast<std::streamsize>(name.size()));
    put(3);  // ncall
    put(static_cast<std::int32_t>(v.size()));
    dat.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  }
  put(12);
  const std::string ds = "calibration.jsonl";
  put(static_cast<std::int32_t>(ds.size()));
  dat.write(ds.data(), static_cast<std::streamsize>(ds.size()));
  return out;
}

}  // namespace

TEST_CASE("imatrix: both formats read back as llama-quantize normalises them", "[mix][imatrix]") {
  const auto files = write_imatrices(f16_of("tiny-llama"));
  const auto g = convert::read_imatrix(files.gguf.string());
  CHECK_FALSE(g.legacy);
  CHECK(g.chunk_count == 12);
  CHECK(g.chunk_size == 512);
  REQUIRE(g.datasets == std::vector<std::string>{"calibration.jsonl"});
  REQUIRE(g.weights.size() == files.sums.size());
  const auto d = convert::read_imatrix(files.dat.string());
  CHECK(d.legacy);
  CHECK(d.chunk_count == 12);
  CHECK(d.datasets == std::vector<std::string>{"calibration.jsonl"});
  REQUIRE(d.weights.size() == files.sums.size());
  for (const auto& [name, s] : files.sums) {
    INFO(name);
    const auto& gw = *g.find(name);
    const auto& dw = *d.find(name);
    REQUIRE(gw.size() == s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      const bool empty = name.starts_with("blk.1.attn_k.");
      CHECK(gw[i] == (empty ? 1.0f : s[i] / 6144.0f));
      CHECK(dw[i] == s[i] / 3.0f);
    }
  }
  CHECK(g.find("no.such.weight") == nullptr);
}

TEST_CASE("imatrix: quantized bytes equal llama-quantize --imatrix", "[mix][imatrix][llama]") {
  if (!have_llama_cpp()) {
    WARN("not run: python3 with llama_cpp, gguf and numpy is not available");
    return;
  }
  const auto f16 = f16_of("tiny-llama");
  const auto files = write_imatrices(f16);
  const auto g = convert::read_imatrix(files.gguf.string());
  const auto d = convert::read_imatrix(files.dat.string());
  llama_quantize(f16, "imat-gguf", all_mixes(), files.gguf.string());
  for (const auto& m : convert::mixes)
    compare_mix(f16, "imat-gguf", m, &g,
                m.ftype == quant::file_type::mostly_q4_k_m ? models + "tiny-llama" : std::string{});
  const std::vector<mix_info> some = {*convert::find_mix("Q4_K_M"), *convert::find_mix("Q2_K"),
                                      *convert::find_mix("IQ4_NL"), *convert::find_mix("Q4_0")};
  llama_quantize(f16, "imat-dat", some, files.dat.string());
  for (const auto& m : some) compare_mix(f16, "imat-dat", m, &d);
  // The keys llama-quantize's tool adds
  const format::gguf::reader r((tmp / "imat-gguf-Q4_K_M-qforge.gguf").string());
  CHECK(r.string_at("quantize.imatrix.file") == files.gguf.string());
  CHECK(r.uint_at("quantize.imatrix.entries_count") == files.sums.size());
  CHECK(r.uint_at("quantize.imatrix.chunks_count") == 12);
  CHECK(r.metadata().back().first == "quantize.imatrix.chunks_count");
}

TEST_CASE("quantize: bad input is refused before any output exists", "[mix]") {
  const auto f16 = f16_of("tiny-llama");
  const auto out = tmp / "refused.gguf";
  fs::remove(out);
  convert::quantize_options opt;
  opt.ftype = quant::file_type::mostly_f16;
  CHECK_THROWS_AS(convert::quantize_gguf(f16.string(), out.string(), opt), error);
  // Quantized input: no requantizing.
  opt.ftype = quant::file_type::mostly_q8_0;
  const auto q8 = tmp / "tiny-llama-q8.gguf";
  convert::quantize_gguf(f16.string(), q8.string(), opt);
  opt.ftype = quant::file_type::mostly_q4_k_m;
  try {
    convert::quantize_gguf(q8.string(), out.string(), opt);
    FAIL("requantizing accepted");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::unsupported);
    CHECK(std::string(e.what()).find("q8_0") != std::string::npos);
  }
  // An imatrix entry of the wrong length names the imatrix file and the tensor.
  convert::importance_matrix im;
  im.path = "fake.imatrix";
  im.weights["blk.0.attn_q.weight"] = std::vector<float>(100, 1.0f);
  opt.imatrix = &im;
  try {
    convert::quantize_gguf(f16.string(), out.string(), opt);
    FAIL("bad imatrix accepted");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::format);
    CHECK(e.path() == "fake.imatrix");
    CHECK(std::string(e.what()).find("blk.0.attn_q.weight") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(atomic_file::temp_path_for(out.string())));
  CHECK_THROWS_AS(convert::quantize_gguf((tmp / "missing.gguf").string(), out.string(), opt),
                  error);
}

TEST_CASE("quantize: output is the same whatever the thread count", "[mix]") {
  const auto f16 = f16_of("tiny-llama");
  convert::quantize_options opt;
  opt.ftype = quant::file_type::mostly_q4_k_m;
  opt.threads = 1;
  std::size_t calls = 0;
  opt.on_tensor = [&](std::size_t i, std::size_t n, const convert::quantized_tensor& t) {
    ++calls;
    CHECK(i == calls);
    CHECK(n == 39);
    CHECK_FALSE(t.name.empty());
  };
  convert::quantize_gguf(f16.string(), (tmp / "t1.gguf").string(), opt);
  CHECK(calls == 39);
  opt.threads = 3;
  opt.on_tensor = nullptr;
  convert::quantize_gguf(f16.string(), (tmp / "t3.gguf").string(), opt);
  CHECK(slurp(tmp / "t1.gguf") == slurp(tmp / "t3.gguf"));
}
