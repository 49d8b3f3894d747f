// SPDX-License-Identifier: MIT
// Hugging Face tensor names of the Llama family mapped to the names llama.cpp's loader looks up
// ("model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"), plus which tensors need the
// Q/K row permutation. llama.cpp runs LLaMA-architecture RoPE on interleaved pairs (x0,x1),(x2,x3)..
// while HF rotates the two halves of each head; permuting the rows of q and k once at conversion time
// makes the two agree. Qwen2/Qwen3 map to llama.cpp's NEOX-style RoPE, which rotates halves, so their
// rows are left alone.
#pragma once
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "qforge/format/hf/config.hpp"

namespace qforge::convert {

struct mapped_name {
  std::string gguf_name;
  int layer = -1;  // block index, -1 for global tensors
  // Rows to permute in groups of this many heads (0 = no permutation).
  std::uint32_t permute_heads = 0;
};

// nullopt for tensors llama.cpp drops on purpose (rotary inv_freq buffers); throws
// error::kind::unsupported for a tensor this architecture does not know.
inline std::optional<mapped_name> map_tensor_name(std::string_view hf,
                                                  const format::hf::model_config& cfg,
                                                  const std::string& file = {}) {
  using format::hf::architecture;
  if (hf.ends_with(".rotary_emb.inv_freq")) return std::nullopt;
  if (hf == "model.embed_tokens.weight") return mapped_name{"token_embd.weight"};
  if (hf == "model.norm.weight") return mapped_name{"output_norm.weight"};
  if (hf == "lm_head.weight") return mapped_name{"output.weight"};

  constexpr std::string_view layer_prefix = "model.layers.";
  if (hf.starts_with(layer_prefix)) {
    std::string_view rest = hf.substr(layer_prefix.size());
    const auto dot = rest.find('.');
    std::uint32_t layer = 0;
    if (dot != std::string_view::npos) {
      const auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + dot, layer);
      if (ec == std::errc{} && ptr == rest.data() + dot && layer < cfg.n_layers) {
        const std::string_view leaf = rest.substr(dot + 1);
        struct entry { std::string_view hf, gguf; };
        static constexpr entry table[] = {
            {"input_layernorm.weight", "attn_norm.weight"},
            {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"self_attn.q_proj.weight", "attn_q.weight"},
            {"self_attn.k_proj.weight", "attn_k.weight"},
            {"self_attn.v_proj.weight", "attn_v.weight"},
            {"self_attn.o_proj.weight", "attn_output.weight"},
            {"self_attn.q_proj.bias", "attn_q.bias"},
            {"self_attn.k_proj.bias", "attn_k.bias"},
            {"self_attn.v_proj.bias", "attn_v.bias"},
            {"self_attn.o_proj.bias", "attn_output.bias"},
            {"self_attn.q_norm.weight", "attn_q_norm.weight"},
            {"self_attn.k_norm.weight", "attn_k_norm.weight"},
            {"mlp.gate_proj.weight", "ffn_gate.weight"},
            {"mlp.up_proj.weight", "ffn_up.weight"},
            {"mlp.down_proj.weight", "ffn_down.weight"},
            {"mlp.gate_proj.bias", "ffn_gate.bias"},
            {"mlp.up_proj.bias", "ffn_up.bias"},
            {"mlp.down_proj.bias", "ffn_down.bias"},
        };
        if (leaf.ends_with("rotary_emb.inv_freq")) return std::nullopt;
        for (const auto& e : table) {
          if (leaf != e.hf) continue;
          mapped_name m{cat("blk.", layer, ".", e.gguf), static_cast<int>(layer), 0};
          const bool llama_rope = cfg.arch == architecture::llama || cfg.arch == architecture::mistral;
          if (llama_rope && leaf.starts_with("self_attn.q_proj.")) m.permute_heads = cfg.n_heads;
          if (llama_rope && leaf.starts_with("self_attn.k_proj.")) m.permute_heads = cfg.n_kv_heads;
          return m;
        }
      }
    }
  }
  throw error(error::kind::unsupported, file,
              cat("tensor '", hf, "' has no GGUF name for architecture ", to_string(cfg.arch),
                  " (not a Llama-family decoder tensor, or layer index out of range)"));
}

// Applies llama.cpp's q/k row permutation to a row-major [rows, row_bytes] matrix (or a bias, with
// row_bytes = element size): within each head, rows (half 0: i, half 1: i) become (2i, 2i+1).
inline void permute_rows_for_llama_rope(std::span<const std::byte> in, std::span<std::byte> out,
                                        std::uint64_t rows, std::uint64_t row_bytes,
                                        std::uint32_t n_heads) {
  QFORGE_ASSERT(in.size() == rows * row_bytes && out.size() == in.size());
  QFORGE_ASSERT(n_heads > 0 && rows % (2ull * n_heads) == 0);
  const std::uint64_t head_rows = rows / n_heads;
  const std::uint64_t half = head_rows / 2;
  for (std::uint64_t h = 0; h < n_heads; ++h) {
    for (std::uint64_t i = 0; i < half; ++i) {
      for (std::uint64_t j = 0; j < 2; ++j) {
        const std::uint64_t src = h * head_rows + j * half + i;
        const std::uint64_t dst = h * head_rows + i * 2 + j;
        std::copy_n(in.data() + src * row_bytes, row_bytes, out.data() + dst * row_bytes);
      }
    }
  }
}

}  // namespace qforge::convert
