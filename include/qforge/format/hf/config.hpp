// SPDX-License-Identifier: MIT
// The model description qforge needs, read from a Hugging Face `config.json` for the Llama family
// (llama, mistral, qwen2, qwen3). Both the transformers-v4 spelling (`rope_theta`, `rope_scaling`) and
// the v5 one (`rope_parameters`) are accepted because checkpoints in the wild carry either.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/json.hpp"

namespace qforge::format::hf {

enum class architecture { llama, mistral, qwen2, qwen3 };

inline const char* to_string(architecture a) noexcept {
  switch (a) {
    case architecture::llama: return "llama";
    case architecture::mistral: return "mistral";
    case architecture::qwen2: return "qwen2";
    case architecture::qwen3: return "qwen3";
  }
  return "?";
}

inline constexpr const char* supported_architectures =
    "LlamaForCausalLM (llama), MistralForCausalLM (mistral), Qwen2ForCausalLM (qwen2), "
    "Qwen3ForCausalLM (qwen3)";

struct rope_scaling {
  std::string type = "none";  // none, linear, llama3, yarn, dynamic, longrope...
  double factor = 1.0;
  std::optional<std::uint32_t> original_max_position_embeddings;
  std::optional<double> low_freq_factor, high_freq_factor;  // llama3
  std::optional<double> beta_fast, beta_slow, attention_factor;  // yarn
};

struct model_config {
  std::string path;                 // the config.json this came from
  architecture arch = architecture::llama;
  std::string hf_architecture;      // e.g. "LlamaForCausalLM"
  std::string model_type;           // e.g. "llama"
  std::uint32_t n_layers = 0;
  std::uint32_t hidden_size = 0;
  std::uint32_t n_heads = 0;
  std::uint32_t n_kv_heads = 0;
  std::uint32_t head_dim = 0;
  bool head_dim_given = false;     // config.json names head_dim (llama.cpp then writes key/value length)
  std::uint32_t intermediate_size = 0;
  std::uint32_t vocab_size = 0;
  std::uint32_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  rope_scaling scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;      // q/k/v (and for llama, o) projections carry a bias
  bool qk_norm = false;             // qwen3: RMSNorm on q and k per head
  std::optional<std::uint32_t> sliding_window;
  std::optional<std::uint32_t> bos_token_id, eos_token_id, pad_token_id;
  std::string torch_dtype;          // "float16", "bfloat16", "float32" or empty
};

namespace detail {

// Bound on every model dimension (layers, widths, heads, vocabulary): 16 M is far above any real
// model (vocabularies reach ~256 K, widths ~64 K) yet keeps what a hostile config can make a reader
// allocate per dimension, and every product of two of them, far below 2^64.
inline constexpr std::int64_t max_dimension = std::int64_t{1} << 24;

// Numbers from the file as text for errors: a hostile value may be an array nested thousands deep,
// which dump() would print in full (recursively).
inline std::string brief(const nlohmann::json& v) {
  if (v.is_structured()) return cat("a JSON ", v.type_name());
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

inline std::uint32_t get_u32(const nlohmann::json& j, const char* key, const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null())
    throw error(error::kind::format, path, cat("missing required key '", key, "'"));
  if (!it->is_number_integer() || it->get<std::int64_t>() <= 0 ||
      it->get<std::int64_t>() > max_dimension)
    throw error(error::kind::format, path,
                cat("key '", key, "' must be an integer in [1, ", max_dimension, "], got ",
                    brief(*it)));
  return it->get<std::uint32_t>();
}

inline std::optional<std::uint32_t> opt_u32(const nlohmann::json& j, const char* key,
                                            const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_array()) {  // eos_token_id may be a list; llama.cpp takes the first
    if (it->empty()) return std::nullopt;
    const auto& first = it->front();
    if (!first.is_number_integer() || first.get<std::int64_t>() < 0 ||
        first.get<std::int64_t>() > std::int64_t{1} << 31)
      throw error(error::kind::format, path,
                  cat("key '", key, "' holds ", brief(first), ", not an integer in [0, 2^31]"));
    return first.get<std::uint32_t>();
  }
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0 ||
      it->get<std::int64_t>() > std::int64_t{1} << 31)
    throw error(error::kind::format, path,
                cat("key '", key, "' must be a non-negative integer, got ", brief(*it)));
  return it->get<std::uint32_t>();
}

inline std::optional<double> opt_number(const nlohmann::json& j, const char* key,
                                        const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number())
    throw error(error::kind::format, path, cat("key '", key, "' must be a number, got ", brief(*it)));
  const double v = it->get<double>();
  if (!std::isfinite(v)) throw error(error::kind::format, path, cat("key '", key, "' is not finite"));
  return v;
}

inline bool opt_bool(const nlohmann::json& j, const char* key, bool fallback,
                     const std::string& path) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw error(error::kind::format, path, cat("key '", key, "' must be true or false"));
  return it->get<bool>();
}

inline void read_rope(const nlohmann::json& j, model_config& c) {
  // v5 keeps theta and scaling together in rope_parameters; v4 has rope_theta + rope_scaling.
  const nlohmann::json* params = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) params = &*it;
  if (auto theta = opt_number(j, "rope_theta", c.path)) c.rope_theta = *theta;
  const nlohmann::json* scaling = params;
  if (auto it = j.find("rope_scaling"); it != j.end() && it->is_object()) scaling = &*it;
  if (params != nullptr) {
    if (auto theta = opt_number(*params, "rope_theta", c.path)) c.rope_theta = *theta;
  }
  if (c.rope_theta <= 0) throw error(error::kind::format, c.path, "rope_theta must be positive");
  if (scaling == nullptr) return;
  std::string type;
  if (auto it = scaling->find("rope_type"); it != scaling->end() && it->is_string())
    type = it->get<std::string>();
  else if (auto it2 = scaling->find("type"); it2 != scaling->end() && it2->is_string())
    type = it2->get<std::string>();
  if (type.empty() || type == "default") return;
  static const char* known[] = {"linear", "llama3", "yarn", "dynamic", "longrope"};
  bool ok = false;
  for (const char* k : known) ok = ok || type == k;
  if (!ok)
    throw error(error::kind::unsupported, c.path,
                cat("rope scaling type '", type, "' is not supported (linear, llama3, yarn, dynamic)"));
  c.scaling.type = type;
  if (auto f = opt_number(*scaling, "factor", c.path)) c.scaling.factor = *f;
  c.scaling.original_max_position_embeddings =
      opt_u32(*scaling, "original_max_position_embeddings", c.path);
  c.scaling.low_freq_factor = opt_number(*scaling, "low_freq_factor", c.path);
  c.scaling.high_freq_factor = opt_number(*scaling, "high_freq_factor", c.path);
  c.scaling.beta_fast = opt_number(*scaling, "beta_fast", c.path);
  c.scaling.beta_slow = opt_number(*scaling, "beta_slow", c.path);
  c.scaling.attention_factor = opt_number(*scaling, "attention_factor", c.path);
  if (c.scaling.type == "llama3" &&
      (!c.scaling.low_freq_factor || !c.scaling.high_freq_factor ||
       !c.scaling.original_max_position_embeddings))
    throw error(error::kind::format, c.path,
                "llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and "
                "original_max_position_embeddings");
}

}  // namespace detail

// Parses config.json text; `path` is used in error messages only.
inline model_config parse_config(const std::string& text, const std::string& path) {
  const nlohmann::json j = parse_json(text, path);
  if (!j.is_object()) throw error(error::kind::format, path, "config.json must be a JSON object");
  model_config c;
  c.path = path;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() &&
                                         it->front().is_string())
    c.hf_architecture = it->front().get<std::string>();
  if (auto it = j.find("model_type"); it != j.end() && it->is_string())
    c.model_type = it->get<std::string>();
  struct known { const char* hf; const char* type; architecture arch; };
  static constexpr known table[] = {
      {"LlamaForCausalLM", "llama", architecture::llama},
      {"MistralForCausalLM", "mistral", architecture::mistral},
      {"Qwen2ForCausalLM", "qwen2", architecture::qwen2},
      {"Qwen3ForCausalLM", "qwen3", architecture::qwen3},
  };
  bool found = false;
  for (const auto& k : table) {
    if (c.hf_architecture == k.hf || (c.hf_architecture.empty() && c.model_type == k.type)) {
      c.arch = k.arch;
      found = true;
      break;
    }
  }
  if (!found)
    throw error(error::kind::unsupported, path,
                cat("unsupported architecture '",
                    c.hf_architecture.empty() ? c.model_type : c.hf_architecture,
                    "'; supported: ", supported_architectures));

  c.n_layers = detail::get_u32(j, "num_hidden_layers", path);
  c.hidden_size = detail::get_u32(j, "hidden_size", path);
  c.n_heads = detail::get_u32(j, "num_attention_heads", path);
  c.n_kv_heads = detail::opt_u32(j, "num_key_value_heads", path).value_or(c.n_heads);
  c.intermediate_size = detail::get_u32(j, "intermediate_size", path);
  c.vocab_size = detail::get_u32(j, "vocab_size", path);
  c.max_position_embeddings =
      detail::opt_u32(j, "max_position_embeddings", path).value_or(2048);
  if (auto hd = detail::opt_u32(j, "head_dim", path); hd && *hd > 0) {
    if (*hd > detail::max_dimension)
      throw error(error::kind::format, path,
                  cat("head_dim ", *hd, " is over the limit of ", detail::max_dimension));
    c.head_dim = *hd;
    c.head_dim_given = true;
  } else {
    if (c.hidden_size % c.n_heads != 0)
      throw error(error::kind::format, path,
                  cat("hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
                      c.n_heads, " and no head_dim is given"));
    c.head_dim = c.hidden_size / c.n_heads;
  }
  if (c.n_kv_heads == 0 || c.n_heads % c.n_kv_heads != 0)
    throw error(error::kind::format, path,
                cat("num_attention_heads ", c.n_heads, " is not a multiple of num_key_value_heads ",
                    c.n_kv_heads));
  if (c.head_dim % 2 != 0)
    throw error(error::kind::format, path, cat("head_dim ", c.head_dim, " must be even for RoPE"));
  c.rms_norm_eps = detail::opt_number(j, "rms_norm_eps", path).value_or(1e-6);
  detail::read_rope(j, c);
  c.tie_word_embeddings = detail::opt_bool(j, "tie_word_embeddings", false, path);
  // Qwen2 always has q/k/v biases (its config has no switch); the others follow attention_bias.
  c.attention_bias = c.arch == architecture::qwen2 ||
                     detail::opt_bool(j, "attention_bias", false, path);
  c.qk_norm = c.arch == architecture::qwen3;
  if (detail::opt_bool(j, "use_sliding_window", c.arch == architecture::mistral, path))
    c.sliding_window = detail::opt_u32(j, "sliding_window", path);
  c.bos_token_id = detail::opt_u32(j, "bos_token_id", path);
  c.eos_token_id = detail::opt_u32(j, "eos_token_id", path);
  c.pad_token_id = detail::opt_u32(j, "pad_token_id", path);
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string())
    c.torch_dtype = it->get<std::string>();
  else if (auto it2 = j.find("dtype"); it2 != j.end() && it2->is_string())
    c.torch_dtype = it2->get<std::string>();
  return c;
}

// Reads `<model_dir>/config.json`.
inline model_config read_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(error::kind::io, path, "cannot open (is this a Hugging Face model folder?)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

}  // namespace qforge::format::hf
