// SPDX-License-Identifier: MIT
// HF checkpoint -> GGUF, the way llama.cpp's converter does it: tensors renamed, q/k rows permuted for
// LLaMA-style RoPE, norms and biases kept in F32, 2-D weights in the requested type (F32, F16, BF16 or
// Q8_0, Q8_0 falling back to F16 for rows that are not a multiple of 32), llama3 RoPE factors emitted
// as `rope_freqs.weight`, tied embeddings written once. Tensors stream to disk one at a time, so memory
// stays near the largest tensor (as float32) whatever the model size.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numbers>
#include <span>
#include <string>
#include <vector>

#include "qforge/convert/gguf_metadata.hpp"
#include "qforge/convert/tensor_names.hpp"
#include "qforge/convert/tokenizer_vocab.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/format/gguf/writer.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/encode.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::convert {

// One output tensor and where it comes from.
struct planned_tensor {
  std::string gguf_name;
  std::string hf_name;                 // empty for generated tensors (rope_freqs)
  std::vector<std::uint64_t> dims;     // GGUF order: dims[0] is the row length
  quant::qtype type = quant::qtype::f32;
  std::uint32_t permute_heads = 0;
  std::vector<float> generated;        // data of generated tensors
};

struct conversion_plan {
  format::hf::model_config config;
  std::vector<planned_tensor> tensors;
  std::uint64_t parameter_count = 0;
  std::vector<std::string> warnings;
};

inline quant::file_type file_type_for(quant::qtype t) {
  switch (t) {
    case quant::qtype::f32: return quant::file_type::all_f32;
    case quant::qtype::f16: return quant::file_type::mostly_f16;
    case quant::qtype::bf16: return quant::file_type::mostly_bf16;
    case quant::qtype::q8_0: return quant::file_type::mostly_q8_0;
    default:
      throw error(error::kind::argument,
                  cat("output type ", quant::name(t),
                      " is not a conversion type (f32, f16, bf16, q8_0); quantization mixes go "
                      "through convert_to_gguf_mix (convert/quantize.hpp)"));
  }
}

// llama.cpp's llama3 RoPE frequency factors, computed in float32 in the same order as its converter.
inline std::vector<float> llama3_rope_factors(const format::hf::model_config& c) {
  const auto& s = c.scaling;
  const float base = static_cast<float>(c.rope_theta);
  const float factor = static_cast<float>(s.factor);
  const float low = static_cast<float>(s.low_freq_factor.value_or(1.0));
  const float high = static_cast<float>(s.high_freq_factor.value_or(4.0));
  const float old_ctx = static_cast<float>(s.original_max_position_embeddings.value_or(8192));
  const float low_wavelen = old_ctx / low;
  const float high_wavelen = old_ctx / high;
  std::vector<float> out;
  for (std::uint32_t i = 0; i < c.head_dim; i += 2) {
    const float freq =
        1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(c.head_dim));
    const float wavelen = static_cast<float>(2.0 * std::numbers::pi) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = (old_ctx / wavelen - low) / (high - low);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
}

// Decides names, shapes and output types for every tensor without reading any weight data.
inline conversion_plan plan_conversion(const format::hf::model_config& cfg,
                                       const format::safetensors::checkpoint& ckpt,
                                       quant::qtype out_type) {
  (void)file_type_for(out_type);  // rejects unsupported output types early
  conversion_plan plan;
  plan.config = cfg;
  if (cfg.scaling.type == "llama3" &&
      (cfg.arch == format::hf::architecture::llama || cfg.arch == format::hf::architecture::mistral)) {
    planned_tensor t;
    t.gguf_name = "rope_freqs.weight";
    t.generated = llama3_rope_factors(cfg);
    t.dims = {t.generated.size()};
    plan.tensors.push_back(std::move(t));
  }
  bool have_embedding = false, have_output = false;
  for (const auto& hf_name : ckpt.names()) {
    const auto& info = ckpt.info(hf_name);
    const auto mapped = map_tensor_name(hf_name, cfg, ckpt.path());
    if (!mapped) continue;
    if (mapped->gguf_name == "output.weight" && cfg.tie_word_embeddings) continue;
    if (info.shape.empty() || info.shape.size() > 2)
      throw error(error::kind::format, ckpt.path(),
                  cat("tensor '", hf_name, "': expected 1 or 2 dimensions, got ", info.shape.size()));
    const auto t = info.type;
    using format::safetensors::dtype;
    if (t != dtype::f32 && t != dtype::f16 && t != dtype::bf16)
      throw error(error::kind::unsupported, ckpt.path(),
                  cat("tensor '", hf_name, "': dtype ", to_string(t),
                      " (only F32, F16 and BF16 checkpoints can be converted)"));
    planned_tensor p;
    p.gguf_name = mapped->gguf_name;
    p.hf_name = hf_name;
    p.permute_heads = mapped->permute_heads;
    p.dims.assign(info.shape.rbegin(), info.shape.rend());
    if (p.permute_heads != 0 && info.shape[0] % (2ull * p.permute_heads) != 0)
      throw error(error::kind::format, ckpt.path(),
                  cat("tensor '", hf_name, "': ", info.shape[0], " rows cannot be split into ",
                      p.permute_heads, " heads of even size"));
    const bool keep_f32 = p.dims.size() == 1 || p.gguf_name.ends_with("_norm.weight") ||
                          !p.gguf_name.ends_with(".weight");
    p.type = keep_f32 ? quant::qtype::f32 : out_type;
    if (p.type == quant::qtype::q8_0 && p.dims[0] % quant::qk8_0 != 0) {
      plan.warnings.push_back(cat(p.gguf_name, ": row length ", p.dims[0],
                                  " is not a multiple of 32, stored as F16"));
      p.type = quant::qtype::f16;
    }
    std::uint64_t n = 1;
    for (auto d : p.dims) n = checked_mul(n, d, ckpt.path());
    plan.parameter_count += n;
    have_embedding = have_embedding || p.gguf_name == "token_embd.weight";
    have_output = have_output || p.gguf_name == "output.weight";
    plan.tensors.push_back(std::move(p));
  }
  if (!have_embedding)
    throw error(error::kind::format, ckpt.path(), "no 'model.embed_tokens.weight' tensor");
  if (!have_output && !cfg.tie_word_embeddings)
    throw error(error::kind::format, ckpt.path(),
                "no 'lm_head.weight' tensor and config.json does not tie the embeddings");
  return plan;
}

namespace detail {

// Converts one tensor's source bytes (already permuted) to the planned GGUF type.
inline std::vector<std::byte> encode_tensor(const planned_tensor& p,
                                            format::safetensors::dtype src_type,
                                            std::span<const std::byte> src, int threads) {
  using format::safetensors::dtype;
  std::uint64_t n = 1;
  for (auto d : p.dims) n *= d;
  const bool same = (src_type == dtype::f32 && p.type == quant::qtype::f32) ||
                    (src_type == dtype::f16 && p.type == quant::qtype::f16) ||
                    (src_type == dtype::bf16 && p.type == quant::qtype::bf16);
  if (same) return {src.begin(), src.end()};

  std::vector<float> f(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    if (src_type == dtype::f32) {
      std::memcpy(&f[i], src.data() + 4 * i, 4);
    } else {
      std::uint16_t h;
      std::memcpy(&h, src.data() + 2 * i, 2);
      f[i] = src_type == dtype::f16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
    }
  }
  std::vector<std::byte> out;
  switch (p.type) {
    case quant::qtype::f32:
      out.resize(n * 4);
      std::memcpy(out.data(), f.data(), n * 4);
      break;
    case quant::qtype::f16:
    case quant::qtype::bf16: {
      out.resize(n * 2);
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint16_t h = p.type == quant::qtype::f16 ? fp32_to_fp16(f[i]) : fp32_to_bf16(f[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      break;
    }
    default: {
      const auto cols = static_cast<std::int64_t>(p.dims[0]);
      const auto rows = static_cast<std::int64_t>(n / p.dims[0]);
      out.resize(quant::row_bytes(p.type, cols) * static_cast<std::size_t>(rows));
      quant::encode_rows(p.type, f, rows, cols, out, threads);
    }
  }
  return out;
}

// The bytes of one planned tensor in its planned type (read, permuted, converted); `scratch` holds
// the permuted source between calls. Also used by convert/quantize.hpp for the K-quant mixes.
inline std::vector<std::byte> planned_tensor_bytes(const format::safetensors::checkpoint& ckpt,
                                                   const planned_tensor& t, int threads,
                                                   std::vector<std::byte>& scratch,
                                                   std::uint64_t* bytes_read = nullptr) {
  if (t.hf_name.empty()) {
    const auto b = std::as_bytes(std::span<const float>(t.generated));
    return {b.begin(), b.end()};
  }
  const auto view = ckpt.view(t.hf_name);
  std::span<const std::byte> src = view.bytes();
  if (t.permute_heads != 0) {
    const auto rows = view.shape()[0];
    scratch.resize(src.size());
    permute_rows_for_llama_rope(src, scratch, rows, src.size() / rows, t.permute_heads);
    src = scratch;
  }
  if (bytes_read) *bytes_read += src.size();
  return encode_tensor(t, view.type(), src, threads);
}

}  // namespace detail

struct conversion_options {
  quant::qtype type = quant::qtype::f16;
  std::string name;   // general.name; empty: derived from the folder name
  int threads = 0;    // 0: all hardware threads
  // Called after each tensor: (index from 1, count, the tensor). For progress output.
  std::function<void(std::size_t, std::size_t, const planned_tensor&)> on_tensor;
};

struct conversion_result {
  conversion_plan plan;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  double seconds = 0;
};

// The tokenizer's vocabulary, padded to the embedding's rows, once config.json's vocab_size is
// checked against those rows.
inline gguf_vocab read_checked_vocab(const std::string& model_dir,
                                     const format::hf::model_config& cfg,
                                     const format::safetensors::checkpoint& ckpt) {
  const auto& embd = ckpt.info("model.embed_tokens.weight");
  const auto n_vocab = static_cast<std::uint32_t>(embd.shape[0]);
  if (n_vocab != cfg.vocab_size)
    throw error(error::kind::format, cfg.path,
                cat("vocab_size ", cfg.vocab_size, " but model.embed_tokens.weight has ", n_vocab,
                    " rows"));
  return read_hf_vocab(model_dir, n_vocab);
}

// Converts the checkpoint in `model_dir` into `out_path` (written atomically). Throws qforge::error.
inline conversion_result convert_to_gguf(const std::string& model_dir, const std::string& out_path,
                                         const conversion_options& opt = {}) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto cfg = format::hf::read_config(model_dir);
  const format::safetensors::checkpoint ckpt(model_dir);
  conversion_result result;
  result.plan = plan_conversion(cfg, ckpt, opt.type);
  auto& plan = result.plan;

  const auto vocab = read_checked_vocab(model_dir, cfg, ckpt);

  format::gguf::writer w;
  write_model_header(w, {cfg, vocab, opt.name.empty() ? display_name_from_dir(model_dir) : opt.name,
                         plan.parameter_count, file_type_for(opt.type)});
  for (const auto& t : plan.tensors) w.add_tensor(t.gguf_name, t.dims, t.type);

  auto out = w.open(out_path);
  std::vector<std::byte> permuted;
  for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
    const auto& t = plan.tensors[i];
    const auto bytes =
        detail::planned_tensor_bytes(ckpt, t, opt.threads, permuted, &result.bytes_read);
    out.write_tensor(t.gguf_name, bytes);
    result.bytes_written += bytes.size();
    if (opt.on_tensor) opt.on_tensor(i + 1, plan.tensors.size(), t);
  }
  out.finish();
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace qforge::convert
