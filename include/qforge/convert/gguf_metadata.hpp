// SPDX-License-Identifier: MIT
// The GGUF key/value header llama.cpp expects for a Llama-family model: `general.*`, the architecture
// hyper-parameters and the tokenizer. Keys, value types and their order follow what llama.cpp's own
// converter writes, so a qforge file and a convert_hf_to_gguf.py file differ in nothing a loader reads.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "qforge/convert/tokenizer_vocab.hpp"
#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/writer.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::convert {

// GGUF architecture name: llama.cpp runs Mistral (v0.1-style dense) models as "llama".
inline const char* gguf_architecture(format::hf::architecture a) noexcept {
  using format::hf::architecture;
  switch (a) {
    case architecture::llama:
    case architecture::mistral: return "llama";
    case architecture::qwen2: return "qwen2";
    case architecture::qwen3: return "qwen3";
  }
  return "llama";
}

// "5.2M", "7.2B": two significant digits at least, the way model cards and llama.cpp label sizes.
inline std::string size_label(std::uint64_t params) {
  double scaled = static_cast<double>(params);
  const char* suffix = "K";
  if (params > 1'000'000'000'000ull) { scaled /= 1e12; suffix = "T"; }
  else if (params > 1'000'000'000ull) { scaled /= 1e9; suffix = "B"; }
  else if (params > 1'000'000ull) { scaled /= 1e6; suffix = "M"; }
  else { scaled /= 1e3; }
  const auto integer_digits = std::to_string(static_cast<long long>(std::nearbyint(scaled)));
  std::size_t significant = integer_digits.find_first_not_of('0') == std::string::npos
                                ? 0
                                : integer_digits.size() - integer_digits.find_first_not_of('0');
  const int decimals = significant >= 2 ? 0 : static_cast<int>(2 - significant);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f%s", decimals, scaled, suffix);
  return buf;
}

// "tiny-llama" -> "Tiny Llama": the display name when the user gives none.
inline std::string display_name_from_dir(const std::string& model_dir) {
  std::string base = model_dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (const auto slash = base.rfind('/'); slash != std::string::npos) base = base.substr(slash + 1);
  std::string out;
  bool start = true;
  for (char ch : base) {
    if (ch == '-' || ch == '_') {
      out += ' ';
      start = true;
    } else {
      out += start && ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 'a' + 'A') : ch;
      start = false;
    }
  }
  return out;
}

inline void write_vocab(format::gguf::writer& w, const gguf_vocab& v) {
  using format::gguf::value;
  w.set("tokenizer.ggml.model", value::string(v.model));
  w.set("tokenizer.ggml.pre", value::string(v.pre));
  w.set("tokenizer.ggml.tokens", value::string_array(v.tokens));
  if (!v.scores.empty()) w.set("tokenizer.ggml.scores", value::f32_array(v.scores));
  w.set("tokenizer.ggml.token_type", value::i32_array(v.token_types));
  if (!v.merges.empty()) w.set("tokenizer.ggml.merges", value::string_array(v.merges));
  const auto put_id = [&](std::string_view typ) {
    if (typ == "bos" && v.bos_id) w.set("tokenizer.ggml.bos_token_id", value::u32(*v.bos_id));
    if (typ == "eos" && v.eos_id) w.set("tokenizer.ggml.eos_token_id", value::u32(*v.eos_id));
    if (typ == "unk" && v.unk_id) w.set("tokenizer.ggml.unknown_token_id", value::u32(*v.unk_id));
    if (typ == "pad" && v.pad_id) w.set("tokenizer.ggml.padding_token_id", value::u32(*v.pad_id));
  };
  for (const auto& typ : v.id_order) put_id(typ);
  for (const char* typ : {"bos", "eos", "unk", "pad"}) put_id(typ);  // no-op for keys already set
  if (v.add_bos) w.set("tokenizer.ggml.add_bos_token", value::boolean(*v.add_bos));
  if (v.add_eos) w.set("tokenizer.ggml.add_eos_token", value::boolean(*v.add_eos));
  if (v.add_sep) w.set("tokenizer.ggml.add_sep_token", value::boolean(*v.add_sep));
  if (v.chat_template) w.set("tokenizer.chat_template", value::string(*v.chat_template));
}

struct header_inputs {
  const format::hf::model_config& config;
  const gguf_vocab& vocab;
  std::string name;                 // general.name
  std::uint64_t parameter_count;    // for general.size_label
  quant::file_type file_type;
};

inline void write_model_header(format::gguf::writer& w, const header_inputs& in) {
  namespace k = format::gguf::keys;
  using format::gguf::value;
  const auto& c = in.config;
  const std::string arch = gguf_architecture(c.arch);
  const auto a = [&](std::string_view suffix) { return format::gguf::arch_key(arch, suffix); };

  w.set(std::string(k::general_architecture), value::string(arch));
  w.set("general.type", value::string("model"));
  w.set(std::string(k::general_name), value::string(in.name));
  w.set("general.size_label", value::string(size_label(in.parameter_count)));
  w.set(a("block_count"), value::u32(c.n_layers));
  w.set(a("context_length"), value::u32(c.max_position_embeddings));
  w.set(a("embedding_length"), value::u32(c.hidden_size));
  w.set(a("feed_forward_length"), value::u32(c.intermediate_size));
  w.set(a("attention.head_count"), value::u32(c.n_heads));
  w.set(a("attention.head_count_kv"), value::u32(c.n_kv_heads));
  const auto& s = c.scaling;
  if (s.type == "linear") {
    w.set(a("rope.scaling.type"), value::string("linear"));
    w.set(a("rope.scaling.factor"), value::f32(static_cast<float>(s.factor)));
  } else if (s.type == "yarn") {
    w.set(a("rope.scaling.type"), value::string("yarn"));
    w.set(a("rope.scaling.factor"), value::f32(static_cast<float>(s.factor)));
    if (s.original_max_position_embeddings)
      w.set(a("rope.scaling.original_context_length"),
            value::u32(*s.original_max_position_embeddings));
    if (s.attention_factor)
      w.set(a("rope.scaling.attn_factor"), value::f32(static_cast<float>(*s.attention_factor)));
    if (s.beta_fast)
      w.set(a("rope.scaling.yarn_beta_fast"), value::f32(static_cast<float>(*s.beta_fast)));
    if (s.beta_slow)
      w.set(a("rope.scaling.yarn_beta_slow"), value::f32(static_cast<float>(*s.beta_slow)));
  }
  // llama3 scaling travels as the rope_freqs.weight tensor, not as keys.
  w.set(a("rope.freq_base"), value::f32(static_cast<float>(c.rope_theta)));
  w.set(a("attention.layer_norm_rms_epsilon"), value::f32(static_cast<float>(c.rms_norm_eps)));
  if (c.head_dim_given) {
    w.set(a("attention.key_length"), value::u32(c.head_dim));
    w.set(a("attention.value_length"), value::u32(c.head_dim));
  }
  w.set(std::string(k::general_file_type), value::u32(static_cast<std::uint32_t>(in.file_type)));
  if (arch == "llama") {
    w.set(a("vocab_size"), value::u32(c.vocab_size));
    w.set(a("rope.dimension_count"), value::u32(c.head_dim));
  }
  w.set(std::string(k::general_quantization_version), value::u32(2));
  write_vocab(w, in.vocab);
}

}  // namespace qforge::convert
