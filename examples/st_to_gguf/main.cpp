// SPDX-License-Identifier: MIT
// Embedding qforge's headers: open a Hugging Face safetensors checkpoint, look at it, write a GGUF
// that llama.cpp loads, then read the GGUF back. Header-only (qforge::qforge): no compiled kernels,
// the Q8_0 encoder runs the scalar path or the SIMD arch this file was compiled for.
//
//   st_to_gguf MODEL_DIR OUT.gguf [f16|bf16|f32|q8_0]
#include <cstdio>
#include <string>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR OUT.gguf [f16|bf16|f32|q8_0]\n", argv[0]);
    return 2;
  }
  const std::string model_dir = argv[1], out = argv[2], type = argc > 3 ? argv[3] : "f16";
  try {
    // 1. The checkpoint: config.json and every tensor, memory-mapped (nothing is read yet).
    const auto config = qforge::format::hf::read_config(model_dir);
    const qforge::format::safetensors::checkpoint weights(model_dir);
    std::printf("%s: %s, %u layers, hidden %u, %zu tensors, %.1f MiB\n", model_dir.c_str(),
                config.hf_architecture.c_str(), config.n_layers, config.hidden_size,
                weights.names().size(), static_cast<double>(weights.total_bytes()) / (1 << 20));

    // A tensor is a zero-copy view; to_f32() widens F16/BF16 on demand.
    const auto embed = weights.view("model.embed_tokens.weight");
    const auto first_row = embed.to_f32();
    std::printf("token 0 embedding starts %.5f %.5f %.5f\n", first_row[0], first_row[1],
                first_row[2]);

    // 2. Convert: names, q/k permutation, tokenizer metadata, streaming atomic write.
    qforge::convert::conversion_options options;
    options.type = type == "q8_0"   ? qforge::quant::qtype::q8_0
                   : type == "bf16" ? qforge::quant::qtype::bf16
                   : type == "f32"  ? qforge::quant::qtype::f32
                                    : qforge::quant::qtype::f16;
    options.on_tensor = [](std::size_t i, std::size_t n, const qforge::convert::planned_tensor& t) {
      std::fprintf(stderr, "\r[%zu/%zu] %-32s", i, n, t.gguf_name.c_str());
    };
    const auto result = qforge::convert::convert_to_gguf(model_dir, out, options);
    std::fprintf(stderr, "\n");
    std::printf("wrote %s: %zu tensors in %.2f s\n", out.c_str(), result.plan.tensors.size(),
                result.seconds);

    // 3. Read it back the way a loader would.
    const qforge::format::gguf::reader gguf(out);
    std::printf("GGUF v%u: architecture %s, %llu tokens, first tensor %s (%s)\n", gguf.version(),
                gguf.at("general.architecture").as_string().c_str(),
                static_cast<unsigned long long>(gguf.at("tokenizer.ggml.tokens").array_size()),
                gguf.tensors().front().name.c_str(),
                std::string(qforge::quant::name(gguf.tensors().front().type)).c_str());
  } catch (const qforge::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
