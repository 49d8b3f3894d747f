// SPDX-License-Identifier: MIT
// engine::cuda_session speed on a 7B-shaped Llama (32 layers, hidden 4096, 32 heads, ffn 11008,
// vocab 32000) with random weights, through the same loader and session `qforge eval --device
// cuda` uses: the model is written once as a file (FP16 GGUF, a Q4_K_M-typed GGUF with llama.cpp's
// tensor types, an AutoAWQ W4 g128 folder with an FP16 head) into QFORGE_BENCH_DIR (default
// /dev/shm), loaded, uploaded, and timed with engine::measure_speed: prefill of a 512-token prompt
// (best of 3) and 128 decode steps after it (the decode graph). The FP16 model also runs with f16
// math (tensor-core prefill). Kernel-level decode timings of the same shapes, without the loader,
// are in tests/engine/cuda_engine_main.cu. Prints one line per run and bench/RESULTS.md's rows.
// Usage: qforge_bench_cuda_session [f16|q4_k_m|awq ...] (default: all three).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#if defined(QFORGE_HAVE_CUDA_KERNELS)
#include "qforge/core/fp16.hpp"
#include "qforge/engine/cuda/session.hpp"
#include "qforge/engine/measure.hpp"
#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/writer.hpp"
#include "qforge/format/safetensors/writer.hpp"

using namespace qforge;

namespace {

constexpr std::size_t layers = 32, hidden = 4096, heads = 32, kv_heads = 32, ffn = 11008,
                      vocab = 32000, prompt = 512, decode = 128;

struct rng {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  }
  float uniform() noexcept { return static_cast<float>(next() >> 40) / 16777216.0f; }  // [0, 1)
};

std::vector<std::byte> random_bytes(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> b((n + 7) / 8 * 8);
  rng r{seed * 0x9E3779B97F4A7C15ull + 1};
  for (std::size_t i = 0; i < b.size(); i += 8) {
    const std::uint64_t v = r.next();
    std::memcpy(b.data() + i, &v, 8);
  }
  b.resize(n);
  return b;
}

void put16(std::byte* p, float f) {
  const std::uint16_t h = fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}

// rows x cols of type t with random codes and sane fp16 scales (weights around 0.02).
std::vector<std::byte> random_matrix(quant::qtype t, std::size_t rows, std::size_t cols,
                                     std::uint64_t seed) {
  const auto tr = quant::traits(t);
  const std::size_t nb = rows * cols / tr->block_elems;
  auto b = random_bytes(nb * tr->block_bytes, seed);
  rng r{seed + 7};
  for (std::size_t i = 0; i < nb; ++i) {
    std::byte* blk = b.data() + i * tr->block_bytes;
    if (t == quant::qtype::f16) put16(blk, 0.04f * (r.uniform() - 0.5f));
    else if (t == quant::qtype::q4_k) put16(blk, 2e-4f * (1 + r.uniform())), put16(blk + 2, 2e-4f * r.uniform());
    else if (t == quant::qtype::q6_k) put16(blk + 208, 1e-5f * (r.uniform() - 0.5f));
  }
  return b;
}

// llama.cpp's use_more_bits: the layers Q4_K_M gives Q6_K attn_v / ffn_down.
bool more_bits(std::size_t i, std::size_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

std::string write_gguf(const std::string& dir, bool q4km) {
  using quant::qtype;
  const std::string path = dir + (q4km ? "/qforge-7b-q4_k_m.gguf" : "/qforge-7b-f16.gguf");
  if (std::filesystem::exists(path)) return path;
  namespace k = format::gguf::keys;
  format::gguf::writer w;
  const auto a = [](std::string_view s) { return format::gguf::arch_key("llama", s); };
  w.set(k::general_architecture, format::gguf::value::string("llama"));
  w.set(a(k::block_count), format::gguf::value::u32(layers));
  w.set(a(k::embedding_length), format::gguf::value::u32(hidden));
  w.set(a(k::feed_forward_length), format::gguf::value::u32(ffn));
  w.set(a(k::attention_head_count), format::gguf::value::u32(heads));
  w.set(a(k::attention_head_count_kv), format::gguf::value::u32(kv_heads));
  w.set(a(k::context_length), format::gguf::value::u32(4096));
  w.set(a(k::attention_layer_norm_rms_epsilon), format::gguf::value::f32(1e-5f));
  const std::size_t kvd = kv_heads * hidden / heads;
  struct tensor {
    std::string name;
    qtype type;
    std::size_t rows, cols;
  };
  std::vector<tensor> ts;
  const qtype base = q4km ? qtype::q4_k : qtype::f16;
  ts.push_back({"token_embd.weight", base, vocab, hidden});
  ts.push_back({"output_norm.weight", qtype::f32, 1, hidden});
  ts.push_back({"output.weight", q4km ? qtype::q6_k : qtype::f16, vocab, hidden});
  for (std::size_t i = 0; i < layers; ++i) {
    const std::string p = cat("blk.", i, ".");
    const qtype more = q4km && more_bits(i, layers) ? qtype::q6_k : base;
    ts.push_back({p + "attn_norm.weight", qtype::f32, 1, hidden});
    ts.push_back({p + "attn_q.weight", base, hidden, hidden});
    ts.push_back({p + "attn_k.weight", base, kvd, hidden});
    ts.push_back({p + "attn_v.weight", more, kvd, hidden});
    ts.push_back({p + "attn_output.weight", base, hidden, hidden});
    ts.push_back({p + "ffn_norm.weight", qtype::f32, 1, hidden});
    ts.push_back({p + "ffn_gate.weight", base, ffn, hidden});
    ts.push_back({p + "ffn_up.weight", base, ffn, hidden});
    ts.push_back({p + "ffn_down.weight", more, hidden, ffn});
  }
  for (const auto& t : ts)
    w.add_tensor(t.name, t.rows == 1 ? std::vector<std::uint64_t>{t.cols}
                                     : std::vector<std::uint64_t>{t.cols, t.rows},
                 t.type);
  // One random matrix per (type, shape), shared by every layer: the file and the device copies
  // are still one per tensor.
  std::vector<std::pair<std::string, std::vector<std::byte>>> cache;
  std::vector<float> ones(hidden, 1.0f);
  auto st = w.open(path);
  for (const auto& t : ts) {
    if (t.type == qtype::f32) {
      st.write_tensor(t.name, std::as_bytes(std::span(ones)));
      continue;
    }
    const std::string key = cat(quant::name(t.type), t.rows, "x", t.cols);
    auto it = std::find_if(cache.begin(), cache.end(), [&](const auto& c) { return c.first == key; });
    if (it == cache.end())
      it = cache.insert(cache.end(), {key, random_matrix(t.type, t.rows, t.cols, cache.size() + 1)});
    st.write_tensor(t.name, it->second);
  }
  st.finish();
  return path;
}

std::string write_awq(const std::string& dir) {
  using format::safetensors::dtype;
  const std::string path = dir + "/qforge-7b-awq";
  if (std::filesystem::exists(path + "/model.safetensors")) return path;
  std::filesystem::create_directories(path);
  std::ofstream(path + "/config.json")
      << "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": "
      << hidden << ", \"intermediate_size\": " << ffn << ", \"num_attention_heads\": " << heads
      << ", \"num_key_value_heads\": " << kv_heads << ", \"num_hidden_layers\": " << layers
      << ", \"vocab_size\": " << vocab
      << ", \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
         "\"tie_word_embeddings\": false, \"torch_dtype\": \"float16\", \"quantization_config\": "
         "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 128, \"zero_point\": true, "
         "\"version\": \"gemm\"}}\n";
  constexpr std::size_t g = 128;
  struct awq {
    std::vector<std::byte> qw, qz, sc;
  };
  const auto make = [&](std::size_t in, std::size_t out, std::uint64_t seed) {
    awq a{random_bytes(in * out / 2, seed), random_bytes(in / g * out / 2, seed + 1),
          std::vector<std::byte>(in / g * out * 2)};
    rng r{seed + 2};
    for (std::size_t i = 0; i < in / g * out; ++i) put16(a.sc.data() + 2 * i, 2e-3f * (1 + r.uniform()));
    return a;
  };
  const std::size_t kvd = kv_heads * hidden / heads;
  const awq sq = make(hidden, hidden, 1), skv = make(hidden, kvd, 2), sup = make(hidden, ffn, 3),
            sdown = make(ffn, hidden, 4);
  const auto embd = random_matrix(quant::qtype::f16, vocab, hidden, 5);
  std::vector<std::byte> norm(hidden * 2);
  for (std::size_t i = 0; i < hidden; ++i) put16(norm.data() + 2 * i, 1.0f);
  format::safetensors::writer w;
  w.add("model.embed_tokens.weight", dtype::f16, {vocab, hidden}, embd);
  w.add("lm_head.weight", dtype::f16, {vocab, hidden}, embd);
  w.add("model.norm.weight", dtype::f16, {hidden}, norm);
  const auto lin = [&](const std::string& base, const awq& a, std::size_t in, std::size_t out) {
    w.add(base + ".qweight", dtype::i32, {in, out / 8}, a.qw);
    w.add(base + ".qzeros", dtype::i32, {in / g, out / 8}, a.qz);
    w.add(base + ".scales", dtype::f16, {in / g, out}, a.sc);
  };
  for (std::size_t i = 0; i < layers; ++i) {
    const std::string p = cat("model.layers.", i, ".");
    w.add(p + "input_layernorm.weight", dtype::f16, {hidden}, norm);
    w.add(p + "post_attention_layernorm.weight", dtype::f16, {hidden}, norm);
    lin(p + "self_attn.q_proj", sq, hidden, hidden);
    lin(p + "self_attn.k_proj", skv, hidden, kvd);
    lin(p + "self_attn.v_proj", skv, hidden, kvd);
    lin(p + "self_attn.o_proj", sq, hidden, hidden);
    lin(p + "mlp.gate_proj", sup, hidden, ffn);
    lin(p + "mlp.up_proj", sup, hidden, ffn);
    lin(p + "mlp.down_proj", sdown, ffn, hidden);
  }
  w.write(path + "/model.safetensors");
  return path;
}

void run(const std::string& label, const std::string& path, engine::cuda_options o) {
  std::fprintf(stderr, "loading %s\n", path.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  const auto m = engine::model::load(path);
  engine::cuda_session s(m, prompt + decode, o);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto sp = engine::measure_speed(s, prompt, decode, 3);
  // Decode at positions 64 .. 127 as well: the kernel benchmark's setting, where attention is
  // a small part of a step.
  const auto short_ctx = engine::measure_speed(s, 64, 64, 3);
  const double gb = static_cast<double>(s.device_weight_bytes()) * 1e-9;
  std::printf("%-16s prefill %8.1f tok/s (%zu tokens, ttft %6.1f ms)  decode %7.1f tok/s "
              "(%.2f GB of weights -> %5.0f GB/s), at positions 64..127 %7.1f tok/s  "
              "load+upload %.1f s\n  %s\n",
              label.c_str(), sp.prefill_tok_s, prompt, 1e3 * sp.time_to_first_token,
              sp.decode_tok_s, gb, gb * sp.decode_tok_s, short_ctx.decode_tok_s, load_s,
              s.describe().c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> which;
  for (int i = 1; i < argc; ++i) which.emplace_back(argv[i]);
  if (which.empty()) which = {"f16", "q4_k_m", "awq"};
  const char* env = std::getenv("QFORGE_BENCH_DIR");
  const std::string dir = env != nullptr && *env ? env : "/dev/shm";
  try {
    if (!engine::cuda_device_available()) {
      std::printf("no CUDA device: nothing to time\n");
      return 0;
    }
    std::printf("7B shape: %zu layers, hidden %zu, %zu/%zu heads, ffn %zu, vocab %zu, random "
                "weights; prefill %zu tokens, decode %zu tokens after it\n",
                layers, hidden, heads, kv_heads, ffn, vocab, prompt, decode);
    for (const auto& w : which) {
      std::string path;
      if (w == "f16") path = write_gguf(dir, false);
      else if (w == "q4_k_m") path = write_gguf(dir, true);
      else if (w == "awq") path = write_awq(dir);
      else throw error(error::kind::argument, cat("unknown model '", w, "'"));
      run(w, path, {});
      if (w == "f16") {
        engine::cuda_options o;
        o.dense = engine::cuda_options::math::f16;
        run("f16 (f16 math)", path, o);
      }
      std::filesystem::remove_all(path);
    }
  } catch (const std::exception& e) {
    std::printf("ERROR: %s\n", e.what());
    return 1;
  }
  return 0;
}

#else

int main() {
  std::printf("qforge was built without CUDA kernels: nothing to time\n");
  return 0;
}

#endif
