// SPDX-License-Identifier: MIT
// PEFT LoRA adapters on any base the engine loads. The adapter folder is what peft's
// save_pretrained writes: adapter_config.json (r, lora_alpha, use_rslora, target_modules, ...) and
// adapter_model.safetensors ("base_model.model.model.layers.<i>.<module>.lora_A.weight" [r, in] and
// ".lora_B.weight" [out, r]). Each update scale * B A is attached to its linear as a low_rank and
// added after the base product (engine/matmul.hpp), never merged into the weights: the same adapter
// then runs unchanged on the FP16 checkpoint, an AWQ folder or a GGUF file, which is how it is
// served (vLLM and llama.cpp apply adapters on top of quantized bases) and what the "trained on
// FP16, served on INT4" drift is about. For a GGUF llama base, whose q/k rows llama.cpp's converter
// permuted for interleaved RoPE, B's rows are permuted the same way.
//
// Refused with a clear error rather than half-applied: DoRA, rank/alpha patterns, fan_in_fan_out
// layouts, trained biases, modules_to_save (replaced embeddings or heads), adapters on anything but
// the blocks' seven linears, tensors that match no linear, and shapes that do not fit the model.
#pragma once
#include <cmath>
#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "qforge/core/error.hpp"
#include "qforge/engine/model.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::engine {

struct lora_adapter {
  std::string path;
  std::size_t rank = 0;
  double alpha = 0, scale = 0;
  // Keyed by "<layer>.<module>", e.g. "3.q_proj"; values hold A, B and the scale.
  std::map<std::string, std::shared_ptr<const low_rank>> updates;
};

namespace detail {

inline constexpr const char* lora_modules[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                               "gate_proj", "up_proj", "down_proj"};

inline matrix& linear_of(layer_weights& l, const std::string& module) {
  if (module == "q_proj") return l.wq;
  if (module == "k_proj") return l.wk;
  if (module == "v_proj") return l.wv;
  if (module == "o_proj") return l.wo;
  if (module == "gate_proj") return l.gate;
  if (module == "up_proj") return l.up;
  return l.down;
}

// llama.cpp's q/k row order for interleaved RoPE: within each head, row j * (d/2) + i moves to
// 2 i + j, so the pairs RoPE rotates sit next to each other.
inline std::vector<float> permute_rows_for_interleaved_rope(const std::vector<float>& b,
                                                            std::size_t heads, std::size_t head_dim,
                                                            std::size_t rank) {
  std::vector<float> out(b.size());
  const std::size_t half = head_dim / 2;
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t j = 0; j < 2; ++j)
      for (std::size_t i = 0; i < half; ++i) {
        const std::size_t from = h * head_dim + j * half + i, to = h * head_dim + 2 * i + j;
        std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(from * rank), rank,
                    out.begin() + static_cast<std::ptrdiff_t>(to * rank));
      }
  return out;
}

}  // namespace detail

// Reads and checks an adapter folder. Throws error(io) for missing files, error(format) for
// malformed ones, error(unsupported) for the adapter kinds listed above.
inline lora_adapter read_lora(const std::string& dir) {
  const std::string cfg_path = dir + "/adapter_config.json";
  const auto cfg = format::hf::read_json_if_exists(cfg_path);
  if (!cfg) throw error(error::kind::io, cfg_path, "not found (expected a PEFT LoRA adapter folder)");
  if (!cfg->is_object()) throw error(error::kind::format, cfg_path, "not a JSON object");
  const auto unsupported = [&](const std::string& what) {
    return error(error::kind::unsupported, cfg_path, what);
  };
  if (cfg->value("peft_type", std::string("LORA")) != "LORA")
    throw unsupported(cat("peft_type ", cfg->value("peft_type", std::string()), " (only LORA)"));
  if (cfg->value("use_dora", false)) throw unsupported("DoRA adapters (use_dora) are not supported");
  if (cfg->value("fan_in_fan_out", false)) throw unsupported("fan_in_fan_out adapters are not supported");
  if (cfg->value("bias", std::string("none")) != "none")
    throw unsupported("adapters with trained biases (bias != \"none\") are not supported");
  for (const char* k : {"rank_pattern", "alpha_pattern"})
    if (cfg->contains(k) && !(*cfg)[k].is_null() && !(*cfg)[k].empty())
      throw unsupported(cat("per-module '", k, "' is not supported"));
  if (cfg->contains("modules_to_save") && !(*cfg)["modules_to_save"].is_null() &&
      !(*cfg)["modules_to_save"].empty())
    throw unsupported("modules_to_save (fully trained extra modules) is not supported");
  lora_adapter a;
  a.path = dir;
  const auto r = cfg->find("r");
  const auto alpha = cfg->find("lora_alpha");
  if (r == cfg->end() || !r->is_number_integer() || r->get<long long>() <= 0)
    throw error(error::kind::format, cfg_path, "'r' must be a positive integer");
  if (alpha == cfg->end() || !alpha->is_number())
    throw error(error::kind::format, cfg_path, "'lora_alpha' must be a number");
  a.rank = r->get<std::size_t>();
  a.alpha = alpha->get<double>();
  a.scale = cfg->value("use_rslora", false) ? a.alpha / std::sqrt(static_cast<double>(a.rank))
                                            : a.alpha / static_cast<double>(a.rank);

  const format::safetensors::checkpoint st(dir + "/adapter_model.safetensors");
  const std::string prefix = "base_model.model.model.layers.";
  std::map<std::string, std::pair<std::vector<float>, std::vector<std::uint64_t>>> a_of, b_of;
  for (const auto& name : st.names()) {
    const auto fail = [&](const std::string& what) {
      return error(error::kind::unsupported, st.path(), cat("tensor '", name, "': ", what));
    };
    if (!name.starts_with(prefix)) throw fail("not a LoRA update of a decoder block's linear");
    const auto rest = name.substr(prefix.size());  // "<i>.self_attn.q_proj.lora_A.weight"
    const auto dot = rest.find('.');
    const auto layer = rest.substr(0, dot);
    if (dot == std::string::npos || layer.empty() || layer.find_first_not_of("0123456789") != std::string::npos)
      throw fail("no layer index");
    std::string module;
    for (const char* m : detail::lora_modules)
      if (rest.find(cat(".", m, ".")) != std::string::npos) module = m;
    const bool is_a = rest.ends_with(".lora_A.weight"), is_b = rest.ends_with(".lora_B.weight");
    if (module.empty() || (!is_a && !is_b))
      throw fail("expected <layer>.<q|k|v|o|gate|up|down>_proj.lora_A/B.weight");
    const auto v = st.view(name);
    if (v.shape().size() != 2) throw fail("not a matrix");
    std::vector<std::uint64_t> shape(v.shape().begin(), v.shape().end());
    if ((is_a ? shape[0] : shape[1]) != a.rank)
      throw fail(cat("rank ", is_a ? shape[0] : shape[1], ", adapter_config.json says r = ", a.rank));
    (is_a ? a_of : b_of)[cat(layer, ".", module)] = {v.to_f32(), shape};
  }
  for (auto& [key, av] : a_of) {
    const auto b = b_of.find(key);
    if (b == b_of.end())
      throw error(error::kind::format, st.path(), cat("layer ", key, ": lora_A without lora_B"));
    auto d = std::make_shared<low_rank>();
    d->rank = a.rank;
    d->a = std::move(av.first);
    d->b = std::move(b->second.first);
    d->scale = static_cast<float>(a.scale);
    a.updates[key] = std::move(d);
    b_of.erase(b);
  }
  if (!b_of.empty())
    throw error(error::kind::format, st.path(), cat("layer ", b_of.begin()->first, ": lora_B without lora_A"));
  if (a.updates.empty()) throw error(error::kind::format, st.path(), "no LoRA tensors");
  return a;
}

// Attaches every update to its linear in `m`. Throws error(argument) when the adapter does not fit
// the model (a layer it lacks, or shapes of another model).
inline void attach_lora(model& m, const lora_adapter& a) {
  const auto& c = m.config();
  for (const auto& [key, d] : a.updates) {
    const auto dot = key.find('.');
    const auto layer = std::stoul(key.substr(0, dot));
    const auto module = key.substr(dot + 1);
    if (layer >= m.layers.size())
      throw error(error::kind::argument, a.path,
                  cat("adapter has layer ", layer, ", the model ", m.layers.size(), " layers"));
    matrix& w = detail::linear_of(m.layers[layer], module);
    if (d->a.size() != d->rank * w.cols || d->b.size() != w.rows * d->rank)
      throw error(error::kind::argument, a.path,
                  cat("layer ", key, ": update of ", d->b.size() / d->rank, "x", d->a.size() / d->rank,
                      ", the model's linear is ", w.rows, "x", w.cols, " (an adapter of another model?)"));
    if (c.rope == rope_style::interleaved && (module == "q_proj" || module == "k_proj")) {
      auto p = std::make_shared<low_rank>(*d);
      p->b = detail::permute_rows_for_interleaved_rope(
          d->b, module == "q_proj" ? c.n_heads : c.n_kv_heads, c.head_dim, d->rank);
      w.lora = std::move(p);
    } else {
      w.lora = d;
    }
  }
}

}  // namespace qforge::engine
