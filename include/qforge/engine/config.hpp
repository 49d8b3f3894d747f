// SPDX-License-Identifier: MIT
// The hyperparameters the forward pass needs, from either source a model comes in: a Hugging Face
// config.json (format/hf/config.hpp) or a GGUF file's `{arch}.*` metadata. The one fact that differs
// between the two for the same weights is the RoPE pairing: llama.cpp's converter permutes the q/k
// rows of LLaMA-architecture models so that its RoPE can rotate adjacent pairs (x0,x1),(x2,x3)...,
// while HF (and llama.cpp's NEOX mode, used for qwen2/qwen3) rotates the two halves of each head.
// llama3 frequency scaling is carried as per-pair divisors (`rope_freqs.weight` in a GGUF), which
// is how both sources are expressed here.
#pragma once
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/hf/config.hpp"

namespace qforge::engine {

enum class rope_style {
  neox,        // rotate (x[i], x[i + d/2]): HF everywhere, GGUF qwen2/qwen3
  interleaved  // rotate (x[2i], x[2i+1]): GGUF llama (rows permuted by the converter)
};

struct model_config {
  format::hf::architecture arch = format::hf::architecture::llama;
  std::uint32_t n_layers = 0, hidden = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn = 0;
  std::uint32_t vocab = 0;   // rows of the output head (embedding rows, padding included)
  std::uint32_t max_ctx = 2048;
  float rms_eps = 1e-6f;
  double rope_theta = 10000.0;
  rope_style rope = rope_style::neox;
  double rope_linear_factor = 1.0;      // positions are divided by this ("linear" scaling)
  std::vector<float> rope_freq_divisors;  // head_dim/2 entries (llama3 scaling) or empty
  bool qkv_bias = false, qk_norm = false;
  std::optional<std::uint32_t> bos_id, eos_id;
  bool add_bos = false;  // whether the tokenizer prepends BOS (perplexity protocol)

  // Inverse frequency of rotation pair i (0 <= i < head_dim/2), in double: HF computes it in
  // float32, but the difference is far below any tolerance used here and double keeps the angle
  // exact at long positions.
  [[nodiscard]] double inv_freq(std::uint32_t i) const {
    double f = std::pow(rope_theta, -2.0 * i / head_dim);
    if (!rope_freq_divisors.empty()) f /= rope_freq_divisors[i];
    return f;
  }
};

namespace detail {
inline void check_shape(const model_config& c, const std::string& path) {
  if (c.n_layers == 0 || c.hidden == 0 || c.n_heads == 0 || c.n_kv_heads == 0 || c.head_dim == 0 ||
      c.ffn == 0)
    throw error(error::kind::format, path, "model shape has a zero dimension");
  if (c.n_heads % c.n_kv_heads != 0)
    throw error(error::kind::format, path,
                cat(c.n_heads, " attention heads are not a multiple of ", c.n_kv_heads,
                    " key/value heads"));
  if (c.head_dim % 2 != 0)
    throw error(error::kind::format, path, cat("head_dim ", c.head_dim, " is odd"));
}

// HF's llama3 rule as per-pair divisors of the inverse frequency (1 for high frequencies, `factor`
// for low ones, a smooth blend between).
inline std::vector<float> llama3_divisors(const format::hf::model_config& c) {
  const auto& s = c.scaling;
  const double factor = s.factor, low = s.low_freq_factor.value_or(1.0),
               high = s.high_freq_factor.value_or(4.0);
  const double old_ctx = s.original_max_position_embeddings.value_or(8192);
  std::vector<float> out;
  for (std::uint32_t i = 0; i < c.head_dim / 2; ++i) {
    const double f = std::pow(c.rope_theta, -2.0 * i / c.head_dim);
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen < old_ctx / high) {
      out.push_back(1.0f);
    } else if (wavelen > old_ctx / low) {
      out.push_back(static_cast<float>(factor));
    } else {
      const double smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth)));
    }
  }
  return out;
}
}  // namespace detail

// From a parsed config.json. `vocab` is the embedding's row count. Throws kind::unsupported for a
// RoPE scaling the engine does not implement (yarn, dynamic, longrope).
inline model_config from_hf(const format::hf::model_config& h) {
  model_config c;
  c.arch = h.arch;
  c.n_layers = h.n_layers;
  c.hidden = h.hidden_size;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.head_dim;
  c.ffn = h.intermediate_size;
  c.vocab = h.vocab_size;
  c.max_ctx = h.max_position_embeddings;
  c.rms_eps = static_cast<float>(h.rms_norm_eps);
  c.rope_theta = h.rope_theta;
  c.rope = rope_style::neox;
  if (h.scaling.type == "linear") {
    c.rope_linear_factor = h.scaling.factor;
  } else if (h.scaling.type == "llama3") {
    c.rope_freq_divisors = detail::llama3_divisors(h);
  } else if (h.scaling.type != "none") {
    throw error(error::kind::unsupported, h.path,
                cat("rope scaling '", h.scaling.type, "' is not implemented by the engine"));
  }
  c.qkv_bias = h.attention_bias;
  c.qk_norm = h.qk_norm;
  c.bos_id = h.bos_token_id;
  c.eos_id = h.eos_token_id;
  // The Llama fixtures (and Llama 3) prepend BOS through their post-processor; Qwen adds none.
  c.add_bos = (h.arch == format::hf::architecture::llama ||
               h.arch == format::hf::architecture::mistral) &&
              h.bos_token_id.has_value();
  detail::check_shape(c, h.path);
  return c;
}

// From GGUF metadata (llama.cpp's keys). rope_freqs.weight, when present, is read by the loader.
inline model_config from_gguf(const format::gguf::reader& r) {
  using format::hf::architecture;
  namespace k = format::gguf::keys;
  model_config c;
  const std::string arch = r.string_at(k::general_architecture);
  if (arch == "llama") c.arch = architecture::llama;
  else if (arch == "qwen2") c.arch = architecture::qwen2;
  else if (arch == "qwen3") c.arch = architecture::qwen3;
  else
    throw error(error::kind::unsupported, r.path(),
                cat("general.architecture '", arch, "': the engine runs llama, qwen2, qwen3"));
  const auto a = [&](std::string_view s) { return format::gguf::arch_key(arch, s); };
  const auto u32 = [&](std::string_view s) {
    const std::uint64_t v = r.uint_at(a(s));
    if (v > (std::uint64_t{1} << 31))
      throw error(error::kind::format, r.path(), cat("key '", a(s), "' is out of range: ", v));
    return static_cast<std::uint32_t>(v);
  };
  const auto f64 = [&](std::string_view s, double fallback) {
    const auto* v = r.find(a(s));
    if (v == nullptr) return fallback;
    if (auto f = v->as_float()) return *f;
    throw error(error::kind::format, r.path(), cat("key '", a(s), "' is not a float"));
  };
  c.n_layers = u32(k::block_count);
  c.hidden = u32(k::embedding_length);
  c.n_heads = u32(k::attention_head_count);
  if (c.n_heads == 0)  // checked here: head_dim below divides by it before check_shape runs
    throw error(error::kind::format, r.path(), cat("key '", a(k::attention_head_count), "' is 0"));
  c.n_kv_heads = r.find(a(k::attention_head_count_kv)) ? u32(k::attention_head_count_kv)
                                                       : c.n_heads;
  c.ffn = u32(k::feed_forward_length);
  c.head_dim = r.find(a(k::attention_key_length)) ? u32(k::attention_key_length)
                                                  : c.hidden / c.n_heads;
  c.max_ctx = r.find(a(k::context_length)) ? u32(k::context_length) : 2048;
  c.rms_eps = static_cast<float>(f64(k::attention_layer_norm_rms_epsilon, 1e-5));
  c.rope_theta = f64(k::rope_freq_base, 10000.0);
  c.rope = c.arch == architecture::llama ? rope_style::interleaved : rope_style::neox;
  if (const auto* t = r.find(a(k::rope_scaling_type))) {
    const std::string& type = t->as_string();
    if (type == "linear") c.rope_linear_factor = f64(k::rope_scaling_factor, 1.0);
    else if (type != "none")
      throw error(error::kind::unsupported, r.path(),
                  cat("rope scaling '", type, "' is not implemented by the engine"));
  }
  c.qk_norm = c.arch == architecture::qwen3;
  c.qkv_bias = r.find_tensor("blk.0.attn_q.bias") != nullptr;
  const auto opt_id = [&](std::string_view key) -> std::optional<std::uint32_t> {
    if (r.find(key) == nullptr) return std::nullopt;
    return static_cast<std::uint32_t>(r.uint_at(key));
  };
  c.bos_id = opt_id(k::tokenizer_bos_token_id);
  c.eos_id = opt_id(k::tokenizer_eos_token_id);
  if (const auto* v = r.find(k::tokenizer_add_bos_token)) c.add_bos = v->as_bool();
  else c.add_bos = c.arch == architecture::llama && c.bos_id.has_value();
  const auto* embd = r.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2)
    throw error(error::kind::format, r.path(), "no 2-D 'token_embd.weight' tensor");
  c.vocab = static_cast<std::uint32_t>(embd->dims[1]);
  detail::check_shape(c, r.path());
  return c;
}

}  // namespace qforge::engine
