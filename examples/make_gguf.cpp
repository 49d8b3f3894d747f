// SPDX-License-Identifier: MIT
// make_gguf MODEL_DIR OUT.gguf [TYPE]: a Hugging Face checkpoint to a GGUF file llama.cpp and
// Ollama load. TYPE is f16 (default), bf16, f32, q8_0 or a llama-quantize mix such as q4_k_m; the
// bytes are llama.cpp's own (its converter for plain types, llama-quantize for mixes).
#include <cstdio>
#include <string>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/convert/quantize.hpp"

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR OUT.gguf [f16|bf16|f32|q8_0|q4_k_m|...]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1], out = argv[2], type = argc > 3 ? argv[3] : "f16";
  if (const auto mix = qforge::convert::find_mix(type); mix && type != "q8_0" && type != "Q8_0") {
    qforge::convert::quantize_options q;
    q.ftype = mix->ftype;
    const auto r = qforge::convert::convert_to_gguf_mix(model, out, q);
    std::printf("%s: %zu tensors, %llu bytes\n", out.c_str(), r.tensors.size(),
                static_cast<unsigned long long>(r.bytes_written));
    return 0;
  }
  qforge::convert::conversion_options o;
  o.type = type == "bf16"   ? qforge::quant::qtype::bf16
           : type == "f32"  ? qforge::quant::qtype::f32
           : type == "q8_0" ? qforge::quant::qtype::q8_0
                            : qforge::quant::qtype::f16;
  const auto r = qforge::convert::convert_to_gguf(model, out, o);
  std::printf("%s: %zu tensors, %llu bytes\n", out.c_str(), r.plan.tensors.size(),
              static_cast<unsigned long long>(r.bytes_written));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "make_gguf: %s\n", e.what());
  return 1;
}
