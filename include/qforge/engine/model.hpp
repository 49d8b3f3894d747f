// SPDX-License-Identifier: MIT
// A Llama-family model's weights as the forward pass reads them, loaded from a Hugging Face
// checkpoint folder (F32/F16/BF16 safetensors, config.json) or a GGUF file (any type matmul.hpp
// runs, metadata keys as llama.cpp writes them). Weight matrices stay in the memory map in their
// stored encoding; only the small vectors (norm weights, biases, RoPE factors) are copied out as
// float. Shapes are checked against the config here, once, so the forward pass needs no checks.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/engine/config.hpp"
#include "qforge/engine/awq_weights.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::engine {

struct layer_weights {
  matrix wq, wk, wv, wo, gate, up, down;
  std::vector<float> attn_norm, ffn_norm;
  std::vector<float> q_norm, k_norm;  // qwen3, one weight per head dimension
  std::vector<float> bq, bk, bv;      // qwen2 (or attention_bias) q/k/v biases
};

class model {
 public:
  // A folder (HF checkpoint with config.json) or a .gguf file. Throws qforge::error: io (cannot
  // open), format (missing tensor, wrong shape), unsupported (architecture, type, RoPE scaling).
  static model load(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) return load_hf(path);
    return load_gguf(path);
  }

  static model load_hf(const std::string& dir) {
    model m;
    auto ckpt = std::make_shared<format::safetensors::checkpoint>(dir);
    const auto hcfg = format::hf::read_config(dir);
    m.cfg_ = from_hf(hcfg);
    m.source_ = "safetensors";
    m.path_ = dir;
    const auto& c = m.cfg_;
    const auto mat = [&](const std::string& name, std::size_t rows, std::size_t cols) {
      if (const std::string base = name.substr(0, name.size() - 7);
          !ckpt->contains(name) && name.ends_with(".weight") && is_awq_linear(*ckpt, base))
        return awq_matrix(*ckpt, base, rows, cols);  // an AWQ checkpoint's quantized linear
      const auto v = ckpt->view(name);
      const auto shape = v.shape();
      if (shape.size() != 2 || shape[0] != rows || shape[1] != cols)
        throw error(error::kind::format, ckpt->path(),
                    cat("tensor '", name, "': shape ", format::safetensors::detail::shape_string(shape),
                        ", expected [", rows, ", ", cols, "]"));
      return make_matrix(qtype_of(v.type(), name, ckpt->path()), rows, cols, v.bytes(),
                         ckpt->path(), name);
    };
    const auto vec = [&](const std::string& name, std::size_t n) {
      const auto v = ckpt->view(name);
      if (v.numel() != n)
        throw error(error::kind::format, ckpt->path(),
                    cat("tensor '", name, "': ", v.numel(), " elements, expected ", n));
      return v.to_f32();
    };
    m.token_embd = mat("model.embed_tokens.weight", c.vocab, c.hidden);
    m.output_norm = vec("model.norm.weight", c.hidden);
    m.tied_ = !ckpt->contains("lm_head.weight");
    if (m.tied_ && !hcfg.tie_word_embeddings)
      throw error(error::kind::format, ckpt->path(),
                  "no 'lm_head.weight' and config.json does not tie the embeddings");
    m.output = m.tied_ ? m.token_embd : mat("lm_head.weight", c.vocab, c.hidden);
    for (std::uint32_t i = 0; i < c.n_layers; ++i)
      m.layers.push_back(load_layer(c, cat("model.layers.", i, "."), hf_layer_names, mat, vec));
    m.keep_ = std::move(ckpt);
    return m;
  }

  static model load_gguf(const std::string& path) {
    model m;
    auto r = std::make_shared<format::gguf::reader>(path);
    m.cfg_ = from_gguf(*r);
    m.source_ = "gguf";
    m.path_ = path;
    const auto& c = m.cfg_;
    const auto find = [&](const std::string& name) -> const format::gguf::tensor_info& {
      const auto* t = r->find_tensor(name);
      if (t == nullptr) throw error(error::kind::format, path, cat("no tensor '", name, "'"));
      return *t;
    };
    const auto mat = [&](const std::string& name, std::size_t rows, std::size_t cols) {
      const auto& t = find(name);
      if (t.dims.size() != 2 || t.dims[1] != rows || t.dims[0] != cols)
        throw error(error::kind::format, path,
                    cat("tensor '", name, "': ", t.dims.size(), "-D with ne [",
                        t.dims.empty() ? 0 : t.dims[0], ", ", t.dims.size() > 1 ? t.dims[1] : 0,
                        "], expected [", cols, ", ", rows, "]"));
      return make_matrix(t.type, rows, cols, r->tensor_data(t), path, name);
    };
    const auto vec = [&](const std::string& name, std::size_t n) {
      const auto& t = find(name);
      if (t.n_elements() != n)
        throw error(error::kind::format, path,
                    cat("tensor '", name, "': ", t.n_elements(), " elements, expected ", n));
      std::vector<float> out(n);
      lookup_row(make_matrix(t.type, 1, n, r->tensor_data(t), path, name), 0, out);
      return out;
    };
    m.token_embd = mat("token_embd.weight", c.vocab, c.hidden);
    m.output_norm = vec("output_norm.weight", c.hidden);
    m.tied_ = r->find_tensor("output.weight") == nullptr;
    m.output = m.tied_ ? m.token_embd : mat("output.weight", c.vocab, c.hidden);
    if (r->find_tensor("rope_freqs.weight") != nullptr)
      m.cfg_.rope_freq_divisors = vec("rope_freqs.weight", c.head_dim / 2);
    for (std::uint32_t i = 0; i < c.n_layers; ++i)
      m.layers.push_back(load_layer(c, cat("blk.", i, "."), gguf_layer_names, mat, vec));
    m.keep_ = std::move(r);
    return m;
  }

  [[nodiscard]] const model_config& config() const noexcept { return cfg_; }
  [[nodiscard]] const std::string& source() const noexcept { return source_; }  // safetensors|gguf
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] bool tied() const noexcept { return tied_; }

  // Bytes of weight matrices a decode step streams (the embedding only when it is the head too).
  [[nodiscard]] std::size_t matrix_bytes() const noexcept {
    std::size_t n = output.bytes();
    for (const auto& l : layers)
      n += l.wq.bytes() + l.wk.bytes() + l.wv.bytes() + l.wo.bytes() + l.gate.bytes() +
           l.up.bytes() + l.down.bytes();
    return n;
  }

  matrix token_embd, output;
  std::vector<float> output_norm;
  std::vector<layer_weights> layers;

 private:
  // One decoder layer's tensor names after its prefix, in a checkpoint's naming.
  struct layer_names {
    const char *q, *k, *v, *o, *gate, *up, *down, *attn_norm, *ffn_norm, *q_norm, *k_norm, *bq, *bk,
        *bv;
  };
  static constexpr layer_names hf_layer_names{
      "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
      "self_attn.o_proj.weight", "mlp.gate_proj.weight",    "mlp.up_proj.weight",
      "mlp.down_proj.weight",    "input_layernorm.weight",  "post_attention_layernorm.weight",
      "self_attn.q_norm.weight", "self_attn.k_norm.weight", "self_attn.q_proj.bias",
      "self_attn.k_proj.bias",   "self_attn.v_proj.bias"};
  static constexpr layer_names gguf_layer_names{
      "attn_q.weight",      "attn_k.weight",      "attn_v.weight",   "attn_output.weight",
      "ffn_gate.weight",    "ffn_up.weight",      "ffn_down.weight", "attn_norm.weight",
      "ffn_norm.weight",    "attn_q_norm.weight", "attn_k_norm.weight", "attn_q.bias",
      "attn_k.bias",        "attn_v.bias"};

  // mat(name, rows, cols) / vec(name, n): the loader's shape-checked tensor readers.
  template <class Mat, class Vec>
  static layer_weights load_layer(const model_config& c, const std::string& p, const layer_names& n,
                                  Mat& mat, Vec& vec) {
    const std::size_t q_rows = std::size_t{c.n_heads} * c.head_dim;
    const std::size_t kv_rows = std::size_t{c.n_kv_heads} * c.head_dim;
    layer_weights l;
    l.wq = mat(p + n.q, q_rows, c.hidden);
    l.wk = mat(p + n.k, kv_rows, c.hidden);
    l.wv = mat(p + n.v, kv_rows, c.hidden);
    l.wo = mat(p + n.o, c.hidden, q_rows);
    l.gate = mat(p + n.gate, c.ffn, c.hidden);
    l.up = mat(p + n.up, c.ffn, c.hidden);
    l.down = mat(p + n.down, c.hidden, c.ffn);
    l.attn_norm = vec(p + n.attn_norm, c.hidden);
    l.ffn_norm = vec(p + n.ffn_norm, c.hidden);
    if (c.qk_norm) {
      l.q_norm = vec(p + n.q_norm, c.head_dim);
      l.k_norm = vec(p + n.k_norm, c.head_dim);
    }
    if (c.qkv_bias) {
      l.bq = vec(p + n.bq, q_rows);
      l.bk = vec(p + n.bk, kv_rows);
      l.bv = vec(p + n.bv, kv_rows);
    }
    return l;
  }

  static quant::qtype qtype_of(format::safetensors::dtype d, const std::string& name,
                               const std::string& file) {
    using format::safetensors::dtype;
    switch (d) {
      case dtype::f32: return quant::qtype::f32;
      case dtype::f16: return quant::qtype::f16;
      case dtype::bf16: return quant::qtype::bf16;
      default:
        throw error(error::kind::unsupported, file,
                    cat("tensor '", name, "': dtype ", to_string(d),
                        " (the engine reads F32, F16 and BF16 checkpoints)"));
    }
  }

  model_config cfg_;
  std::string source_, path_;
  bool tied_ = false;
  std::shared_ptr<const void> keep_;  // the map every matrix points into
};

}  // namespace qforge::engine
