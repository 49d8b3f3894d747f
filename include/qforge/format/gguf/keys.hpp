// SPDX-License-Identifier: MIT
// GGUF metadata key names as llama.cpp reads them (gguf-py's constants.Keys, llama-arch.cpp's
// LLM_KV_NAMES). Architecture-specific keys are stored as suffixes and joined with arch_key(), so
// "llama" + rope_freq_base reads "llama.rope.freq_base". A misspelt key is not an error anywhere:
// llama.cpp silently falls back to its default, which is why every writer uses these constants.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace qforge::format::gguf::keys {

// Each constant is its key with '.' -> '_' (and "ggml." dropped), so a grep for either finds both.

// general.*
inline constexpr std::string_view general_architecture = "general.architecture";
inline constexpr std::string_view general_name = "general.name";
inline constexpr std::string_view general_alignment = "general.alignment";  // u32, power of two
inline constexpr std::string_view general_file_type = "general.file_type";  // u32, llama_ftype
inline constexpr std::string_view general_quantization_version = "general.quantization_version";

inline constexpr std::uint32_t default_alignment = 32;
inline constexpr std::uint32_t quantization_version = 2;  // GGML_QNT_VERSION, a u32 value

// Suffixes under "{arch}.": join with arch_key().
inline constexpr std::string_view vocab_size = "vocab_size";
inline constexpr std::string_view context_length = "context_length";
inline constexpr std::string_view embedding_length = "embedding_length";
inline constexpr std::string_view block_count = "block_count";
inline constexpr std::string_view feed_forward_length = "feed_forward_length";
inline constexpr std::string_view attention_head_count = "attention.head_count";
inline constexpr std::string_view attention_head_count_kv = "attention.head_count_kv";
inline constexpr std::string_view attention_layer_norm_rms_epsilon =
    "attention.layer_norm_rms_epsilon";
inline constexpr std::string_view attention_layer_norm_epsilon = "attention.layer_norm_epsilon";
inline constexpr std::string_view attention_key_length = "attention.key_length";
inline constexpr std::string_view attention_value_length = "attention.value_length";
inline constexpr std::string_view rope_dimension_count = "rope.dimension_count";
inline constexpr std::string_view rope_freq_base = "rope.freq_base";
inline constexpr std::string_view rope_scaling_type =
    "rope.scaling.type";  // "none", "linear", "yarn"
inline constexpr std::string_view rope_scaling_factor = "rope.scaling.factor";
inline constexpr std::string_view rope_scaling_original_context_length =
    "rope.scaling.original_context_length";
inline constexpr std::string_view rope_scaling_attn_factor = "rope.scaling.attn_factor";
inline constexpr std::string_view rope_scaling_yarn_log_multiplier =
    "rope.scaling.yarn_log_multiplier";
inline constexpr std::string_view rope_scaling_yarn_beta_fast = "rope.scaling.yarn_beta_fast";
inline constexpr std::string_view rope_scaling_yarn_beta_slow = "rope.scaling.yarn_beta_slow";

// tokenizer.*
inline constexpr std::string_view tokenizer_model =
    "tokenizer.ggml.model";                                              // "gpt2": byte-level BPE
inline constexpr std::string_view tokenizer_pre = "tokenizer.ggml.pre";  // pre-tokenizer regex set
inline constexpr std::string_view tokenizer_tokens = "tokenizer.ggml.tokens";
inline constexpr std::string_view tokenizer_token_type = "tokenizer.ggml.token_type";  // i32 each
inline constexpr std::string_view tokenizer_scores = "tokenizer.ggml.scores";          // f32 each
inline constexpr std::string_view tokenizer_merges = "tokenizer.ggml.merges";          // "a b"
inline constexpr std::string_view tokenizer_bos_token_id = "tokenizer.ggml.bos_token_id";
inline constexpr std::string_view tokenizer_eos_token_id = "tokenizer.ggml.eos_token_id";
inline constexpr std::string_view tokenizer_eot_token_id = "tokenizer.ggml.eot_token_id";
inline constexpr std::string_view tokenizer_unknown_token_id = "tokenizer.ggml.unknown_token_id";
inline constexpr std::string_view tokenizer_padding_token_id = "tokenizer.ggml.padding_token_id";
inline constexpr std::string_view tokenizer_add_bos_token = "tokenizer.ggml.add_bos_token";
inline constexpr std::string_view tokenizer_add_eos_token = "tokenizer.ggml.add_eos_token";
inline constexpr std::string_view tokenizer_chat_template = "tokenizer.chat_template";

// llama_token_type values stored in tokenizer.ggml.token_type.
enum class token_type : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

// "{arch}.{suffix}", e.g. arch_key("qwen3", rope_freq_base) == "qwen3.rope.freq_base".
inline std::string arch_key(std::string_view arch, std::string_view suffix) {
  std::string k;
  k.reserve(arch.size() + 1 + suffix.size());
  k.append(arch).append(1, '.').append(suffix);
  return k;
}

}  // namespace qforge::format::gguf::keys

namespace qforge::format::gguf {
using keys::arch_key;
}  // namespace qforge::format::gguf
