// SPDX-License-Identifier: MIT
// Serving preflight for vLLM: replays, on an AWQ folder, the checks vLLM's AWQ loaders make before
// they run a single token, so a checkpoint that vLLM would refuse (or load onto a slower kernel) is
// caught when it is written instead of at serve time. Facts from vLLM's
// model_executor/layers/quantization/{awq,awq_marlin}.py and utils/marlin_utils.py:
// - config: quant_method "awq"; bits 4 ("bits" or "w_bit": the AWQ GEMM kernel takes 4 only, and
//   Marlin's zero-point type list holds uint4 only); group_size ("group_size" or "q_group_size")
//   and zero_point required; awq_marlin is picked when bits 4, zero_point true and group_size in
//   {-1, 32, 64, 128}; the plain "awq" method otherwise.
// - GPUs: awq_marlin needs compute capability >= 8.0 and runs fp16 or bf16 activations; the AWQ
//   GEMM kernel needs >= 7.5 and fp16 activations only ("torch.bfloat16 is not supported for
//   quantization method awq").
// - per tensor-parallel rank, AWQ GEMM: input_size_per_partition % group_size == 0 and
//   output_size_per_partition % 8 == 0 (pack factor); Marlin (verify_marlin_supports_shape):
//   output % 64 (min_thread_n), input % 128 (min_thread_k), input % group_size when group_size <
//   input_size. A layer failing Marlin's shape falls back to the AWQ GEMM kernel, whose rules then
//   apply (and whose fp16-only kernel cannot run bf16 activations).
// - sharding (Llama-family): q/k/v fused into one column-parallel qkv_proj (heads % tp == 0; KV
//   heads split when tp < kv_heads, else replicated, needing tp % kv_heads == 0), gate/up into
//   gate_up_proj (ffn % tp == 0), both split on the output; o_proj and down_proj row-parallel,
//   split on the input. Each packed shard must hold whole int32 columns (8 outputs).
// - modules_to_not_convert: a linear is left unquantized when any entry is a substring of its
//   name, all shards of a fused layer must agree; a null list is inferred from the tensor dtypes
//   by recent vLLM. Tied embeddings: lm_head.weight is not read; untied, it must be present.
// Model-level problems (config, tensor names, shapes, dtypes, non-finite or fp16-overflowing
// values) are findings; tensor-parallel sizes are judged per GPU class. "Loads" means these
// checks pass, not that the model fits in memory.
#pragma once
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::awq {

struct preflight_finding {
  bool error = true;   // false: a warning (vLLM loads, but something deserves attention)
  std::string tensor;  // the tensor or module concerned, may be empty
  std::string message;
};

// One GPU class at one tensor-parallel size.
struct vllm_load {
  bool loads = false;
  std::string kernel;              // "awq_marlin", "awq", or "-" when refused
  std::size_t gemm_fallbacks = 0;  // awq_marlin: layers that fall back to the AWQ GEMM kernel
  std::string reason;              // why it is refused, or what falls back
};

struct vllm_tp {
  std::uint32_t tp = 1;
  vllm_load ampere;  // compute capability >= 8.0 (Ampere, Ada, Hopper, Blackwell)
  vllm_load turing;  // compute capability 7.5
};

struct vllm_preflight {
  std::string dir;
  int bits = 0;
  long long group = 0;
  bool zero_point = false;
  std::string act_dtype = "float16";  // what `--dtype auto` gives: the config's torch_dtype
  bool marlin_config = false;         // awq_marlin is chosen on sm >= 8.0
  std::vector<preflight_finding> findings;
  std::vector<vllm_tp> tps;

  [[nodiscard]] bool model_ok() const {
    return std::none_of(findings.begin(), findings.end(), [](const auto& f) { return f.error; });
  }
  [[nodiscard]] const vllm_tp* find(std::uint32_t tp) const {
    for (const auto& t : tps)
      if (t.tp == tp) return &t;
    return nullptr;
  }
};

namespace detail {

// The four vLLM modules of a decoder block and the HF linears each fuses.
struct vllm_module {
  const char* fused;
  std::vector<const char*> shards;
  bool row_parallel;
};
inline const std::vector<vllm_module>& vllm_modules() {
  static const std::vector<vllm_module> m = {
      {"self_attn.qkv_proj", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, false},
      {"self_attn.o_proj", {"self_attn.o_proj"}, true},
      {"mlp.gate_up_proj", {"mlp.gate_proj", "mlp.up_proj"}, false},
      {"mlp.down_proj", {"mlp.down_proj"}, true}};
  return m;
}

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::string shape_str(std::span<const std::uint64_t> s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += cat(i ? ", " : "", s[i]);
  return out + "]";
}

// Per-rank facts of one vLLM module at one TP size.
struct rank_shape {
  std::vector<std::uint64_t> parts;  // output shards of a column-parallel module (one if row)
  std::uint64_t out = 0, in = 0, in_full = 0;
};

// Why the AWQ GEMM kernel (and vLLM's packed loader) refuses the shape, or "".
inline std::string gemm_refusal(const rank_shape& r, long long group) {
  if (group <= 0)
    return cat("group_size ", group,
               " needs awq_marlin (the AWQ GEMM kernel takes a positive group)");
  const auto g = static_cast<std::uint64_t>(group);
  if (r.in % g != 0) return cat("input ", r.in, " per rank is not a multiple of group_size ", g);
  for (auto p : r.parts)
    if (p % 8 != 0)
      return cat("output shard ", p, " per rank is not a multiple of 8 (int32 packing)");
  return "";
}

// Why Marlin's shape check refuses (the layer then falls back to AWQ GEMM), or "".
inline std::string marlin_refusal(const rank_shape& r, long long group) {
  if (r.out % 64 != 0)
    return cat("output ", r.out, " per rank is not a multiple of 64 (min_thread_n)");
  if (r.in % 128 != 0)
    return cat("input ", r.in, " per rank is not a multiple of 128 (min_thread_k)");
  const std::uint64_t g = group <= 0 ? r.in_full : static_cast<std::uint64_t>(group);
  if (g < r.in_full && r.in % g != 0)
    return cat("input ", r.in, " per rank is not a multiple of group_size ", g);
  return "";
}

}  // namespace detail

// Runs the preflight on `dir` for each TP size in `tps`. Never throws for a bad folder: every
// problem becomes a finding (an unreadable config or checkpoint is one error finding).
inline vllm_preflight check_vllm(const std::string& dir,
                                 const std::vector<std::uint32_t>& tps = {1, 2, 4, 8}) {
  using format::safetensors::dtype;
  vllm_preflight r;
  r.dir = dir;
  const auto fail = [&](std::string tensor, std::string msg) {
    r.findings.push_back({true, std::move(tensor), std::move(msg)});
  };
  const auto warn = [&](std::string tensor, std::string msg) {
    r.findings.push_back({false, std::move(tensor), std::move(msg)});
  };
  const auto refuse_all = [&](const std::string& why) {
    for (auto tp : tps) r.tps.push_back({tp, {false, "-", 0, why}, {false, "-", 0, why}});
    return r;
  };

  // --- config.json and its quantization_config
  format::hf::model_config hc;
  nlohmann::json j;
  try {
    hc = format::hf::read_config(dir);
    std::ifstream in(dir + "/config.json");
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    fail("config.json", e.what());
    return refuse_all("config.json unusable");
  }
  const auto qit = j.find("quantization_config");
  if (qit == j.end() || !qit->is_object()) {
    fail("config.json", "no quantization_config: vLLM would load this as an unquantized model");
    return refuse_all("not an AWQ checkpoint");
  }
  const auto& q = *qit;
  const auto key = [&](std::initializer_list<const char*> names) -> const nlohmann::json* {
    for (const char* n : names)
      if (auto it = q.find(n); it != q.end() && !it->is_null()) return &*it;
    return nullptr;
  };
  if (const auto* m = key({"quant_method"}); !m || !m->is_string() || detail::lower(*m) != "awq")
    fail("config.json", cat("quantization_config.quant_method is ", m ? m->dump() : "missing",
                            ", expected \"awq\""));
  const auto* bits = key({"w_bit", "bits"});
  const auto* group = key({"q_group_size", "group_size"});
  const auto* zp = key({"zero_point"});
  if (!bits || !bits->is_number_integer())
    fail("config.json", "quantization_config.bits is missing or not an integer");
  else
    r.bits = bits->get<int>();
  if (!group || !group->is_number_integer())
    fail("config.json", "quantization_config.group_size is missing or not an integer");
  else
    r.group = group->get<long long>();
  if (!zp || !zp->is_boolean())
    fail("config.json",
         "quantization_config.zero_point is missing or not a boolean (vLLM requires it)");
  else
    r.zero_point = zp->get<bool>();
  if (r.bits != 0 && r.bits != 4)
    fail("config.json", cat("bits ", r.bits,
                            ": vLLM's AWQ kernels take 4-bit weights only (Marlin "
                            "has no 8-bit zero-point type, AWQ GEMM is 4-bit)"));
  if (r.group == 0 || r.group < -1)
    fail("config.json", cat("group_size ", r.group, " is not valid"));
  if (const auto* v = key({"version"}); v && (!v->is_string() || detail::lower(*v) != "gemm"))
    warn("config.json", cat("version ", v->dump(),
                            ": vLLM reads the GEMM layout only "
                            "(qweight [in, out / 8]); the shape checks below judge it"));
  const bool lm_head_quantized =
      key({"lm_head"}) && key({"lm_head"})->is_boolean() && key({"lm_head"})->get<bool>();
  std::vector<std::string> not_convert;
  bool list_given = false;
  if (const auto* m = key({"modules_to_not_convert"})) {
    if (!m->is_array()) {
      fail("config.json", "modules_to_not_convert must be null or a list of module names");
    } else {
      for (const auto& e : *m) {
        if (!e.is_string()) {
          fail("config.json", cat("modules_to_not_convert holds a non-string: ", e.dump()));
          continue;
        }
        not_convert.push_back(e.get<std::string>());
      }
      list_given = !not_convert.empty();
    }
  }
  r.marlin_config = r.bits == 4 && r.zero_point &&
                    (r.group == -1 || r.group == 32 || r.group == 64 || r.group == 128);
  {
    const std::string d = detail::lower(hc.torch_dtype);
    // vLLM's --dtype auto: the config dtype, float32 (or none) served as float16.
    r.act_dtype = d == "bfloat16" ? "bfloat16" : "float16";
  }

  // --- tensors
  std::optional<format::safetensors::checkpoint> ck;
  try {
    ck.emplace(dir);
  } catch (const std::exception& e) {
    fail("model.safetensors", e.what());
    return refuse_all("no readable safetensors");
  }
  const std::uint64_t H = hc.hidden_size, F = hc.intermediate_size, D = hc.head_dim;
  const std::uint64_t QD = std::uint64_t{hc.n_heads} * D, KVD = std::uint64_t{hc.n_kv_heads} * D;
  std::set<std::string> expected;
  std::set<std::string> used_entries;
  const auto is_float = [](dtype t) {
    return t == dtype::f16 || t == dtype::bf16 || t == dtype::f32;
  };
  const bool fp16_act = r.act_dtype == "float16";
  const auto scan = [&](const std::string& name) {
    const auto v = ck->view(name);
    if (!is_float(v.type())) return;
    const auto f = v.to_f32();
    for (std::size_t i = 0; i < f.size(); ++i) {
      if (!std::isfinite(f[i])) return fail(name, cat("element ", i, " is ", f[i]));
      if (fp16_act && v.type() != dtype::f16 && std::fabs(f[i]) > 65504.0f)
        return fail(name, cat("element ", i, " = ", f[i],
                              " overflows fp16, the dtype vLLM serves "
                              "this model in"));
    }
  };
  const auto need_float = [&](const std::string& name, std::vector<std::uint64_t> shape) {
    expected.insert(name);
    if (!ck->contains(name)) return fail(name, "missing");
    const auto v = ck->view(name);
    if (!is_float(v.type()))
      return fail(name, cat("dtype ", format::safetensors::to_string(v.type()), ", expected F16"));
    if (!std::equal(v.shape().begin(), v.shape().end(), shape.begin(), shape.end()))
      return fail(name, cat("shape ", detail::shape_str(v.shape()), ", expected ",
                            detail::shape_str(shape), " from config.json"));
    scan(name);
  };
  const auto need_int = [&](const std::string& name, std::vector<std::uint64_t> shape) {
    expected.insert(name);
    if (!ck->contains(name)) return fail(name, "missing");
    const auto v = ck->view(name);
    if (v.type() != dtype::i32)
      return fail(name, cat("dtype ", format::safetensors::to_string(v.type()), ", expected I32"));
    if (!std::equal(v.shape().begin(), v.shape().end(), shape.begin(), shape.end()))
      fail(name, cat("shape ", detail::shape_str(v.shape()), ", expected ",
                     detail::shape_str(shape), " from config.json and group_size ", r.group));
  };
  // A quantized linear: qweight I32 [in, out/8], qzeros I32 [in/G, out/8], scales F16 [in/G, out].
  const auto check_linear = [&](const std::string& base, std::uint64_t out, std::uint64_t in,
                                bool quantized, bool bias) {
    if (quantized) {
      const std::uint64_t g = r.group > 0 ? static_cast<std::uint64_t>(r.group) : in;
      if (in % g != 0 || out % 8 != 0) {
        fail(base, cat("[", out, ", ", in, "] cannot be AWQ-packed with group_size ", g,
                       " (input % group, output % 8)"));
        for (const char* s : {".qweight", ".qzeros", ".scales"}) expected.insert(base + s);
      } else {
        need_int(base + ".qweight", {in, out / 8});
        need_int(base + ".qzeros", {in / g, out / 8});
        need_float(base + ".scales", {in / g, out});
      }
    } else {
      need_float(base + ".weight", {out, in});
    }
    if (bias) {
      need_float(base + ".bias", {out});
    } else if (ck->contains(base + ".bias")) {
      expected.insert(base + ".bias");
      fail(base + ".bias",
           "present, but config.json gives this layer no bias (attention_bias / "
           "mlp_bias): vLLM has no parameter for it");
    }
  };
  const auto skipped_by_list = [&](const std::string& base) {
    bool hit = false;
    for (const auto& e : not_convert)
      if (base.find(e) != std::string::npos) {
        used_entries.insert(e);
        hit = true;
      }
    return hit;
  };

  struct linear_def {
    const char* name;
    std::uint64_t out, in;
    bool bias;
  };
  const bool llama_o_bias = hc.attention_bias && hc.arch != format::hf::architecture::qwen2;
  const bool mlp_bias =
      j.contains("mlp_bias") && j["mlp_bias"].is_boolean() && j["mlp_bias"].get<bool>();
  const linear_def defs[] = {{"self_attn.q_proj", QD, H, hc.attention_bias},
                             {"self_attn.k_proj", KVD, H, hc.attention_bias},
                             {"self_attn.v_proj", KVD, H, hc.attention_bias},
                             {"self_attn.o_proj", H, QD, llama_o_bias},
                             {"mlp.gate_proj", F, H, mlp_bias},
                             {"mlp.up_proj", F, H, mlp_bias},
                             {"mlp.down_proj", H, F, mlp_bias}};
  // quantized[layer][linear index]
  std::vector<std::array<bool, 7>> quantized(hc.n_layers);
  for (std::uint32_t l = 0; l < hc.n_layers; ++l) {
    const std::string p = cat("model.layers.", l, ".");
    for (std::size_t i = 0; i < 7; ++i) {
      const std::string base = p + defs[i].name;
      const bool has_q = ck->contains(base + ".qweight");
      const bool has_w = ck->contains(base + ".weight");
      if (has_q && has_w)
        fail(base, "holds both qweight and weight: vLLM has no parameter for one of them");
      const bool skip = skipped_by_list(base);
      bool qz = has_q || (!has_w && !skip);
      if (list_given && skip && has_q)
        fail(base + ".qweight",
             "quantized, but modules_to_not_convert lists it: vLLM would expect " + base +
                 ".weight");
      if (list_given && !skip && has_w && !has_q)
        fail(base + ".weight",
             "not quantized, but no modules_to_not_convert entry matches it: "
             "vLLM would expect " +
                 base + ".qweight (add it to the list)");
      if (!list_given && has_w && !has_q)
        warn(base + ".weight",
             "not quantized while modules_to_not_convert is null: recent vLLM "
             "infers the list from the dtypes, older versions refuse; list it");
      if (list_given) qz = !skip;
      if (has_q) qz = true;
      if (has_w && !has_q) qz = false;
      quantized[l][i] = qz;
      check_linear(base, defs[i].out, defs[i].in, qz, defs[i].bias);
    }
    // All shards of a fused vLLM layer share one precision.
    for (const auto& [a, b, fused] :
         {std::tuple{0, 2, "self_attn.qkv_proj"}, {4, 5, "mlp.gate_up_proj"}})
      for (int i = a + 1; i <= b; ++i)
        if (quantized[l][static_cast<std::size_t>(i)] != quantized[l][static_cast<std::size_t>(a)])
          fail(p + fused,
               cat("some but not all of its shards are quantized (", defs[a].name, " ",
                   quantized[l][static_cast<std::size_t>(a)] ? "is" : "is not", ", ", defs[i].name,
                   " ", quantized[l][static_cast<std::size_t>(i)] ? "is" : "is not",
                   "): vLLM refuses mixed precision in a fused layer"));
    need_float(p + "input_layernorm.weight", {H});
    need_float(p + "post_attention_layernorm.weight", {H});
    if (hc.qk_norm) {
      need_float(p + "self_attn.q_norm.weight", {D});
      need_float(p + "self_attn.k_norm.weight", {D});
    }
  }
  need_float("model.embed_tokens.weight", {hc.vocab_size, H});
  need_float("model.norm.weight", {H});
  if (hc.tie_word_embeddings) {
    for (const char* s : {".weight", ".qweight"})
      if (ck->contains(std::string("lm_head") + s)) {
        expected.insert(std::string("lm_head") + s);
        warn(std::string("lm_head") + s,
             "tie_word_embeddings is true: vLLM ties lm_head to the embeddings and ignores it");
      }
  } else if (ck->contains("lm_head.qweight") || lm_head_quantized) {
    if (!lm_head_quantized)
      fail("lm_head.qweight", "quantized lm_head but quantization_config.lm_head is not true");
    else
      check_linear("lm_head", hc.vocab_size, H, true, false);
  } else {
    need_float("lm_head.weight", {hc.vocab_size, H});
  }
  for (const auto& n : ck->names())
    if (!expected.count(n) && !n.ends_with("rotary_emb.inv_freq"))
      fail(n, "not a tensor of this architecture: vLLM's loader has no parameter for it");
  for (const auto& e : not_convert)
    if (!used_entries.count(e) && e != "lm_head")
      warn("config.json", cat("modules_to_not_convert entry '", e, "' matches no linear"));

  // --- tensor-parallel sizes
  const bool bf16 = r.act_dtype == "bfloat16";
  for (const auto tp : tps) {
    vllm_tp t;
    t.tp = tp;
    std::string why;
    if (!r.model_ok())
      why = "the checkpoint has errors (listed below)";
    else if (tp == 0)
      why = "TP 0";
    else if (hc.n_heads % tp != 0)
      why = cat(hc.n_heads, " attention heads do not split over ", tp, " ranks");
    else if (tp < hc.n_kv_heads ? hc.n_kv_heads % tp != 0 : tp % hc.n_kv_heads != 0)
      why =
          cat(hc.n_kv_heads, " KV heads neither split over nor replicate evenly on ", tp, " ranks");
    else if (F % tp != 0)
      why = cat("intermediate_size ", F, " does not split over ", tp, " ranks");
    if (!why.empty()) {
      t.ampere = t.turing = {false, "-", 0, why};
      r.tps.push_back(t);
      continue;
    }
    const std::uint64_t kv_rank = (hc.n_kv_heads >= tp ? hc.n_kv_heads / tp : 1) * D;
    // First refusal of each kind over all quantized modules: the packed loader (both kernels),
    // the AWQ GEMM kernel, Marlin then its GEMM fallback; and the Marlin fallbacks.
    std::string loader_why, gemm_why, both_why, marlin_note;
    std::size_t fallbacks = 0;
    for (std::uint32_t l = 0; l < hc.n_layers; ++l) {
      std::size_t first = 0;
      for (const auto& m : detail::vllm_modules()) {
        const bool qz = quantized[l][first];
        first += m.shards.size();
        if (!qz) continue;
        detail::rank_shape s;
        if (m.shards.size() == 3)
          s.parts = {QD / tp, kv_rank, kv_rank}, s.in = s.in_full = H;
        else if (m.shards.size() == 2)
          s.parts = {F / tp, F / tp}, s.in = s.in_full = H;
        else if (std::string_view(m.fused) == "self_attn.o_proj")
          s.parts = {H}, s.in = QD / tp, s.in_full = QD;
        else
          s.parts = {H}, s.in = F / tp, s.in_full = F;
        for (auto p : s.parts) s.out += p;
        const std::string name = cat("model.layers.", l, ".", m.fused, ": ");
        for (auto p : s.parts)
          if (p % 8 != 0 && loader_why.empty())
            loader_why =
                cat(name, "output shard ", p, " per rank is not a multiple of 8 (int32 packing)");
        const auto g = detail::gemm_refusal(s, r.group);
        if (!g.empty() && gemm_why.empty()) gemm_why = name + g;
        if (const auto mr = detail::marlin_refusal(s, r.group); !mr.empty()) {
          if (fallbacks++ == 0) marlin_note = name + mr;
          if (!g.empty() && both_why.empty())
            both_why = cat(name, mr, ", and for the AWQ GEMM fallback: ", g);
        }
      }
    }
    const auto gemm_load = [&]() -> vllm_load {
      if (!loader_why.empty()) return {false, "-", 0, loader_why};
      if (!gemm_why.empty()) return {false, "-", 0, gemm_why};
      if (bf16)
        return {false, "-", 0,
                "the AWQ GEMM kernel takes fp16 activations only: serve with --dtype float16"};
      return {true, "awq", 0, ""};
    };
    t.turing = gemm_load();
    if (!r.marlin_config) {
      t.ampere = gemm_load();
    } else if (!loader_why.empty() || !both_why.empty()) {
      t.ampere = {false, "-", 0, loader_why.empty() ? both_why : loader_why};
    } else if (fallbacks > 0 && bf16) {
      t.ampere = {false, "-", fallbacks,
                  cat(fallbacks,
                      " layers fall back to the fp16-only AWQ GEMM kernel under bf16 "
                      "activations (",
                      marlin_note, "): serve with --dtype float16")};
    } else {
      t.ampere = {true, "awq_marlin", fallbacks,
                  fallbacks
                      ? cat(fallbacks, " layers on the AWQ GEMM kernel (first ", marlin_note, ")")
                      : std::string()};
    }
    r.tps.push_back(t);
  }
  return r;
}

// The report as text: a header line, the TP table, the reasons (each once, with the TP sizes and
// GPU classes it applies to), then the findings.
inline std::string format_vllm_table(const vllm_preflight& r) {
  std::string s = r.bits == 0 ? cat("vLLM preflight of ", r.dir, "\n")
                              : cat("vLLM preflight of ", r.dir, ": AWQ ", r.bits, "-bit, group ",
                                    r.group, r.zero_point ? ", zero point" : ", no zero point",
                                    ", activations ", r.act_dtype, "\n");
  const auto cell = [](const vllm_load& l) {
    if (!l.loads) return std::string("refused");
    return l.gemm_fallbacks ? cat(l.kernel, " + ", l.gemm_fallbacks, " awq") : l.kernel;
  };
  char line[160];
  std::snprintf(line, sizeof line, "  %-4s %-28s %-18s\n", "TP", "sm >= 8.0 (Ampere, Hopper)",
                "sm 7.5 (Turing)");
  s += line;
  std::vector<std::pair<std::string, std::string>> reasons;  // reason, where it applies
  const auto note = [&](const std::string& why, const std::string& where) {
    if (why.empty()) return;
    for (auto& [w, at] : reasons)
      if (w == why) return void(at += ", " + where);
    reasons.emplace_back(why, where);
  };
  for (const auto& t : r.tps) {
    std::snprintf(line, sizeof line, "  %-4u %-28s %-18s\n", t.tp, cell(t.ampere).c_str(),
                  cell(t.turing).c_str());
    s += line;
    if (t.ampere.reason == t.turing.reason) {
      note(t.ampere.reason, cat("TP ", t.tp));
    } else {
      note(t.ampere.reason, cat("TP ", t.tp, " sm >= 8.0"));
      note(t.turing.reason, cat("TP ", t.tp, " sm 7.5"));
    }
  }
  for (const auto& [why, at] : reasons) s += cat("  ", at, ": ", why, "\n");
  for (const auto& f : r.findings)
    s += cat("  ", f.error ? "error" : "warning", ": ",
             f.tensor.empty() ? "" : "'" + f.tensor + "': ", f.message, "\n");
  return s;
}

}  // namespace qforge::awq
