// SPDX-License-Identifier: MIT
// The reader entry points the fuzz targets drive, shared with the regression test that replays
// saved inputs in the normal build. Each entry takes arbitrary bytes, puts them where the reader
// expects a file (a per-process scratch folder; a fixed companion file where the reader needs one,
// such as the shard beside an index or the config beside an AWQ checkpoint), runs the reader and
// touches everything it hands back, so an out-of-bounds view shows up under ASan. qforge::error is
// the only outcome allowed besides success: any other exception escapes and is a finding (libFuzzer
// reports it as a crash), because a tool would print it without the file and problem.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/awq/calibration.hpp"
#include "qforge/convert/imatrix.hpp"
#include "qforge/convert/tokenizer_vocab.hpp"
#include "qforge/core/error.hpp"
#include "qforge/engine/config.hpp"
#include "qforge/engine/forward.hpp"
#include "qforge/engine/model.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/report/documents.hpp"
#include "qforge/tokenize/tokenizer.hpp"

namespace qforge::fuzz {

using bytes = std::span<const std::uint8_t>;

// A scratch folder of this process (TMPDIR, else /tmp): parallel fuzz jobs never share files.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("qforge-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::string put(const std::filesystem::path& p, std::string_view data) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("fuzz harness: cannot write " + p.string());
  return p.string();
}
inline std::string put(const std::filesystem::path& p, bytes data) {
  return put(p, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

// Results go here so the optimiser cannot drop the reads that produced them.
inline volatile double sink_value = 0;
inline void consume(double v) { sink_value = v; }

// Reads every view so ASan checks the bounds the reader promised.
inline float touch(std::span<const std::byte> b) {
  unsigned sum = 0;
  for (auto x : b) sum += std::to_integer<unsigned>(x);
  return static_cast<float>(sum);
}

// One .safetensors file: header, every tensor's bytes, and F32/F16/BF16 conversion.
inline void safetensors_file(bytes data) {
  try {
    const format::safetensors::file f(put(scratch() / "one.safetensors", data));
    float sink = 0;
    for (const auto& t : f.tensors()) {
      const auto v = f.view(t);
      sink += touch(v.bytes());
      if (t.numel() <= (1u << 20) && (v.type() == format::safetensors::dtype::f32 ||
                                      v.type() == format::safetensors::dtype::f16 ||
                                      v.type() == format::safetensors::dtype::bf16))
        sink += v.to_f32().empty() ? 0.0f : 1.0f;
    }
    for (const auto& [k, val] : f.metadata()) sink += static_cast<float>(k.size() + val.size());
    consume(static_cast<double>(sink));
  } catch (const error&) {
  }
}

// The shard the index seeds point at: tensors "a" F32 [2] and "b" F16 [2, 2].
inline std::string_view index_shard() {
  static const std::string shard = [] {
    const std::string header =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"F16","shape":[2,2],"data_offsets":[8,16]}})";
    std::string s(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) s[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return s + header + std::string(16, '\x01');
  }();
  return shard;
}

// A sharded checkpoint: the input is model.safetensors.index.json, next to a fixed shard.
inline void safetensors_index(bytes data) {
  try {
    const auto dir = scratch() / "sharded";
    put(dir / "model-00001-of-00001.safetensors", index_shard());
    put(dir / "model.safetensors.index.json", data);
    const format::safetensors::checkpoint c(dir.string());
    float sink = 0;
    for (const auto& n : c.names()) sink += touch(c.view(n).bytes());
    sink += static_cast<float>(c.total_bytes());
    consume(static_cast<double>(sink));
  } catch (const error&) {
  }
}

// A GGUF file: header, every metadata value (printed), every tensor's bytes, then the engine's
// view of the metadata (what `qforge eval` reads first).
inline void gguf(bytes data) {
  try {
    const format::gguf::reader r(put(scratch() / "one.gguf", data));
    std::size_t sink = 0;
    for (const auto& [k, v] : r.metadata()) sink += to_string(v, 4).size() + k.size();
    for (const auto& t : r.tensors()) sink += static_cast<std::size_t>(touch(r.tensor_data(t)));
    consume(static_cast<double>(sink));
    (void)engine::from_gguf(r);
  } catch (const error&) {
  }
}

// config.json text, then the engine's checks of the numbers it holds.
inline void hf_config(bytes data) {
  try {
    const auto c = format::hf::parse_config(
        std::string(reinterpret_cast<const char*>(data.data()), data.size()), "config.json");
    (void)engine::from_hf(c);
  } catch (const error&) {
  }
}

// tokenizer.json: load, encode texts that reach every stage (added tokens, normalizer, split
// regex, byte fallback), decode; then the GGUF converter's reading of the same file.
inline void tokenizer(bytes data) {
  try {
    const auto dir = scratch() / "tok";
    put(dir / "tokenizer.json", data);
    const tokenize::tokenizer tok(dir.string());
    for (const std::string_view text :
         {std::string_view("Hello world, it's 2024!  \n\tcafe\xcc\x81 \xe4\xb8\xad\xe6\x96\x87"),
          std::string_view("<|begin_of_text|><s> </s>\xff\xfe bad utf8"), std::string_view("")}) {
      const auto ids = tok.encode(text);
      (void)tok.decode(ids);
    }
    (void)convert::read_hf_vocab(dir.string(), 64);
  } catch (const error&) {
  }
}

// tokenizer_config.json beside a fixed small tokenizer.json, read by the GGUF converter.
inline void tokenizer_config(bytes data) {
  try {
    const auto dir = scratch() / "tokcfg";
    put(dir / "tokenizer.json",
        std::string_view(
            R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<s>":3,"</s>":4},)"
            R"("merges":["a b"]},"added_tokens":[{"id":3,"content":"<s>","special":true},)"
            R"({"id":4,"content":"</s>","special":true}],"pre_tokenizer":null})"));
    put(dir / "tokenizer_config.json", data);
    (void)convert::read_hf_vocab(dir.string(), 8);
  } catch (const error&) {
  }
}

// Calibration JSON lines (qforge awq --calibration).
inline void calibration(bytes data) {
  try {
    const auto prompts = awq::read_calibration_prompts(put(scratch() / "calib.jsonl", data));
    (void)awq::lengths_of(std::vector<std::size_t>(prompts.size(), 1));
  } catch (const error&) {
  }
}

// A tokenizer for eval documents; the smallest that encodes anything.
inline const tokenize::tokenizer& eval_tokenizer() {
  static const tokenize::tokenizer tok(
      nlohmann::json::parse(
          R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}})"),
      "eval-tokenizer.json");
  return tok;
}

// Evaluation documents and tasks (qforge bench / eval JSON lines).
inline void eval_jsonl(bytes data) {
  const auto path = put(scratch() / "eval.jsonl", data);
  try {
    (void)report::read_documents(path, eval_tokenizer(), 64, 16);
  } catch (const error&) {
  }
  try {
    (void)report::read_tasks(path);
  } catch (const error&) {
  }
}

// llama.cpp importance matrix, either format (told apart by the GGUF magic).
inline void imatrix(bytes data) {
  try {
    const auto m = convert::read_imatrix(put(scratch() / "imatrix.bin", data));
    float sink = 0;
    for (const auto& [k, w] : m.weights)
      for (float x : w) sink += x;
    consume(static_cast<double>(sink));
  } catch (const error&) {
  }
}

// The config of the micro AWQ model the awq seeds hold (make_corpus.py writes matching tensors):
// one Llama layer, hidden 64, 2 heads of 32, 1 KV head, FFN 128, vocab 64, tied embeddings.
inline constexpr std::string_view awq_config = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "vocab_size": 64, "max_position_embeddings": 64,
  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
  "torch_dtype": "float16",
  "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemm",
                          "zero_point": true}})";

// An AWQ checkpoint folder: the input is its model.safetensors; load it and run two tokens.
inline void awq_checkpoint(bytes data) {
  try {
    const auto dir = scratch() / "awq";
    put(dir / "config.json", awq_config);
    put(dir / "model.safetensors", data);
    const auto m = engine::model::load(dir.string());
    engine::thread_pool pool(1);
    engine::session s(m, pool, 4);
    std::vector<float> logits(m.config().vocab);
    const std::int32_t ids[] = {1, 2};
    s.eval(ids, logits);
  } catch (const error&) {
  }
}

struct target {
  const char* name;
  void (*run)(bytes);
};

// Every target, by the name of its corpus folder (tests/fuzz/corpus/<name>, regressions/<name>).
inline constexpr target targets[] = {
    {"safetensors", safetensors_file}, {"safetensors_index", safetensors_index},
    {"gguf", gguf},                    {"hf_config", hf_config},
    {"tokenizer", tokenizer},          {"tokenizer_config", tokenizer_config},
    {"calibration", calibration},      {"eval_jsonl", eval_jsonl},
    {"imatrix", imatrix},              {"awq", awq_checkpoint},
};

}  // namespace qforge::fuzz
