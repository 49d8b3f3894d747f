// SPDX-License-Identifier: MIT
// llama-quantize as a library: an F32/F16/BF16 GGUF (or a Hugging Face checkpoint, through the F16
// conversion plan) in, one of llama.cpp's quantization mixes out, byte for byte the file
// llama_model_quantize writes from the same F16 GGUF. What that takes: the metadata copied in order
// with `general.quantization_version` and `general.file_type` moved to the end (ggml's set_val
// removes a key and appends it), `quantize.imatrix.*` after them when importance data were used
// (what the llama-quantize tool adds), tensors in llama.cpp's order (block number, then name;
// convert/mix.hpp), each tensor's type from the mix, data read as floats exactly as ggml widens
// F16/BF16, then encoded with the importance weights of its name (one vector per expert matrix).
// Straight from safetensors, a tensor's floats are the F16-rounded values the F16 GGUF would hold,
// so both routes give the same bytes. Tensors stream one at a time through gguf::writer::stream
// (atomic output); encoding is multi-threaded inside quant::encode_rows, and the bytes never depend
// on the thread count.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/convert/imatrix.hpp"
#include "qforge/convert/mix.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/gguf/writer.hpp"
#include "qforge/quant/encode.hpp"

namespace qforge::convert {

// One output tensor, as reported to the progress callback and in the result.
struct quantized_tensor {
  std::string name;
  std::vector<std::uint64_t> dims;  // dims[0] is the row length
  quant::qtype from = quant::qtype::f32;
  quant::qtype to = quant::qtype::f32;
  bool imatrix_used = false;
};

struct quantize_options {
  quant::file_type ftype = quant::file_type::mostly_q4_k_m;  // one of convert::mixes
  int threads = 0;                                           // 0: all hardware threads
  const importance_matrix* imatrix = nullptr;  // importance weights by tensor name, or none
  // Write `quantize.imatrix.file/dataset/entries_count/chunks_count` as the llama-quantize tool
  // does when given --imatrix (llama_model_quantize itself writes none of them).
  bool imatrix_keys = true;
  // Called after each tensor is written: (index from 1, count, the tensor).
  std::function<void(std::size_t, std::size_t, const quantized_tensor&)> on_tensor;
};

struct quantize_result {
  std::vector<quantized_tensor> tensors;  // in file order
  std::vector<std::string> warnings;      // row-length fallbacks, tensors without importance data
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  double seconds = 0;
};

namespace detail {

// A tensor of the model being quantized and how to get its bytes (in `type`).
struct source_tensor {
  std::string name;
  std::vector<std::uint64_t> dims;
  quant::qtype type = quant::qtype::f32;
  std::function<std::vector<std::byte>()> bytes;
};

inline std::vector<float> widen(quant::qtype t, std::span<const std::byte> b, std::uint64_t n) {
  std::vector<float> f(static_cast<std::size_t>(n));
  if (t == quant::qtype::f32) {
    std::memcpy(f.data(), b.data(), f.size() * sizeof(float));
    return f;
  }
  for (std::size_t i = 0; i < f.size(); ++i) {
    std::uint16_t h;
    std::memcpy(&h, b.data() + 2 * i, 2);
    f[i] = t == quant::qtype::f16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
  }
  return f;
}

// llama-quantize's kv_overrides strings are char[128]: longer paths are cut to 127 bytes.
inline std::string override_string(const std::string& s) { return s.substr(0, 127); }

inline quantize_result quantize_model(
    const std::vector<std::pair<std::string, format::gguf::value>>& meta,
    const std::vector<source_tensor>& src, const std::string& src_path, const std::string& out_path,
    const quantize_options& opt) {
  using format::gguf::value;
  namespace keys = format::gguf::keys;
  const auto t0 = std::chrono::steady_clock::now();
  const auto mix = find_mix(opt.ftype);
  if (!mix)
    throw error(error::kind::argument,
                cat("file type ", static_cast<std::uint32_t>(opt.ftype),
                    " is not a quantization mix (known: ", mix_names(), ")"));
  const importance_matrix* im =
      opt.imatrix && !opt.imatrix->weights.empty() ? opt.imatrix : nullptr;

  format::gguf::writer w;
  for (const auto& [k, v] : meta)
    if (k != keys::general_quantization_version && k != keys::general_file_type &&
        k != "split.no" && k != "split.count" && k != "split.tensors.count")
      w.set(k, v);
  const model_facts facts = model_facts_from(w, src_path);
  w.set(keys::general_quantization_version, value::u32(keys::quantization_version));
  w.set(keys::general_file_type, value::u32(static_cast<std::uint32_t>(mix->ftype)));
  if (im && opt.imatrix_keys) {
    w.set("quantize.imatrix.file", value::string(override_string(im->path)));
    if (!im->datasets.empty())
      w.set("quantize.imatrix.dataset", value::string(override_string(im->datasets[0])));
    w.set("quantize.imatrix.entries_count",
          value::u32(static_cast<std::uint32_t>(im->weights.size())));
    if (im->chunk_count > 0) w.set("quantize.imatrix.chunks_count", value::u32(im->chunk_count));
  }

  std::vector<mix_tensor> mt;
  mt.reserve(src.size());
  for (const auto& t : src) mt.push_back({t.name, t.dims, t.type});
  const mix_plan plan = plan_mix(*mix, facts, mt, im != nullptr);
  quantize_result result;
  result.warnings = plan.warnings;

  // Every check before the output file exists.
  for (std::size_t i : plan.order) {
    const auto& t = src[i];
    const auto to = plan.types[i];
    std::vector<std::uint64_t> dims(
        t.dims.begin(), t.dims.begin() + static_cast<std::ptrdiff_t>(effective_dims(t.dims)));
    if (to != t.type) {
      if (t.type != quant::qtype::f32 && t.type != quant::qtype::f16 &&
          t.type != quant::qtype::bf16)
        throw error(error::kind::unsupported, src_path,
                    cat("tensor '", t.name, "' is ", quant::name(t.type),
                        ": only F32, F16 and BF16 tensors can be quantized (no requantizing)"));
      if (to != quant::qtype::f16 && !quant::can_encode(to))
        throw error(error::kind::unsupported,
                    cat(mix->name, " needs ", quant::name(to), " for tensor '", t.name,
                        "', which this qforge build cannot encode yet"));
      if (dims.size() > 3)
        throw error(error::kind::unsupported, src_path,
                    cat("tensor '", t.name, "': quantizing ", dims.size(), "-D tensors"));
      if (im && role_of(t.name) != tensor_role::token_embd)
        if (const auto* v = im->find(t.name)) {
          const std::uint64_t want = dims[0] * (dims.size() > 2 ? dims[2] : 1);
          if (v->size() != want)
            throw error(error::kind::format, im->path,
                        cat("entry '", t.name, "' has ", v->size(),
                            " importance weights, the tensor needs ", want));
        }
    }
    w.add_tensor(t.name, dims, to);
    result.tensors.push_back({t.name, std::move(dims), t.type, to, false});
  }

  auto out = w.open(out_path);
  for (std::size_t k = 0; k < plan.order.size(); ++k) {
    const auto& t = src[plan.order[k]];
    auto& info = result.tensors[k];
    const auto in = t.bytes();
    result.bytes_read += in.size();
    if (info.to == t.type) {
      out.write_tensor(t.name, in);
      result.bytes_written += in.size();
    } else {
      std::uint64_t n = 1;
      for (auto d : t.dims) n *= d;
      const auto f = widen(t.type, in, n);
      const std::uint64_t cols = t.dims[0], rows = n / cols;
      std::vector<std::byte> dst(static_cast<std::size_t>(w.tensor_bytes(t.name)));
      if (info.to == quant::qtype::f16) {
        for (std::size_t i = 0; i < f.size(); ++i) {
          const std::uint16_t h = fp32_to_fp16(f[i]);
          std::memcpy(dst.data() + 2 * i, &h, 2);
        }
      } else {
        const std::vector<float>* iw = im ? im->find(t.name) : nullptr;
        if (iw && iw->size() != cols * (t.dims.size() > 2 ? t.dims[2] : 1))
          iw = nullptr;  // token_embd
        if (im && !iw)
          result.warnings.push_back(cat(t.name, ": no importance weights, quantized without"));
        info.imatrix_used = iw != nullptr;
        // One importance vector per expert matrix of ne[1] rows (a single one for 2-D weights).
        const std::uint64_t per = t.dims.size() > 1 ? t.dims[1] : 1;
        const std::size_t row_bytes = quant::row_bytes(info.to, static_cast<std::int64_t>(cols));
        for (std::uint64_t m0 = 0; m0 < rows; m0 += per) {
          const std::uint64_t r = std::min(per, rows - m0);
          std::span<const float> weights;
          if (iw)
            weights = std::span<const float>(*iw).subspan(static_cast<std::size_t>(m0 / per * cols),
                                                          cols);
          quant::encode_rows(info.to, std::span<const float>(f).subspan(m0 * cols, r * cols),
                             static_cast<std::int64_t>(r), static_cast<std::int64_t>(cols),
                             std::span<std::byte>(dst).subspan(m0 * row_bytes, r * row_bytes),
                             opt.threads, weights);
        }
      }
      out.write_tensor(t.name, dst);
      result.bytes_written += dst.size();
    }
    if (opt.on_tensor) opt.on_tensor(k + 1, plan.order.size(), info);
  }
  out.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace detail

// Quantizes the GGUF `in_path` into `out_path` (written atomically) with the mix `opt.ftype`.
// Throws error(format) for a malformed input or an imatrix entry of the wrong size,
// error(unsupported) for quantized input tensors or types this build cannot encode, error(io) for
// I/O failures.
inline quantize_result quantize_gguf(const std::string& in_path, const std::string& out_path,
                                     const quantize_options& opt) {
  const format::gguf::reader r(in_path);
  if (const auto* n = r.find("split.count"); n && n->as_uint().value_or(1) > 1)
    throw error(error::kind::unsupported, in_path,
                "split GGUF (split.count > 1): merge the shards first (llama-gguf-split --merge)");
  std::vector<detail::source_tensor> src;
  src.reserve(r.tensors().size());
  for (const auto& t : r.tensors())
    src.push_back({t.name, t.dims, t.type, [&r, &t] {
                     const auto b = r.tensor_data(t);
                     return std::vector<std::byte>(b.begin(), b.end());
                   }});
  return detail::quantize_model(r.metadata(), src, in_path, out_path, opt);
}

// `qforge gguf MODEL_DIR --type q4_k_m`: the Hugging Face checkpoint converted with the F16 plan
// (convert/hf_to_gguf.hpp) and quantized tensor by tensor in memory, giving the bytes quantize_gguf
// gives on the F16 GGUF. `name` is general.name (empty: from the folder name).
inline quantize_result convert_to_gguf_mix(const std::string& model_dir,
                                           const std::string& out_path, const quantize_options& opt,
                                           const std::string& name = {}) {
  const auto cfg = format::hf::read_config(model_dir);
  const format::safetensors::checkpoint ckpt(model_dir);
  const conversion_plan plan = plan_conversion(cfg, ckpt, quant::qtype::f16);
  const auto vocab = read_checked_vocab(model_dir, cfg, ckpt);
  format::gguf::writer header;
  write_model_header(header, {cfg, vocab, name.empty() ? display_name_from_dir(model_dir) : name,
                              plan.parameter_count, quant::file_type::mostly_f16});
  std::vector<std::byte> scratch;
  std::vector<detail::source_tensor> src;
  src.reserve(plan.tensors.size());
  for (const auto& t : plan.tensors)
    src.push_back({t.gguf_name, t.dims, t.type, [&, tp = &t] {
                     return detail::planned_tensor_bytes(ckpt, *tp, opt.threads, scratch);
                   }});
  auto result = detail::quantize_model(header.metadata(), src, model_dir, out_path, opt);
  result.warnings.insert(result.warnings.begin(), plan.warnings.begin(), plan.warnings.end());
  return result;
}

}  // namespace qforge::convert
