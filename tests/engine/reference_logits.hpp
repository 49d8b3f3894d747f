// SPDX-License-Identifier: MIT
// The prompts of a reference-logits file (the fixtures' reference_logits.safetensors, the LoRA
// fixture's lora_reference.safetensors): promptN.ids I32 [T] and promptN.logits F32 [T, vocab],
// shared by the engine tests that hold a forward pass to transformers.
#pragma once
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::testdata {

struct reference_prompt {
  std::vector<std::int32_t> ids;
  std::vector<float> logits;  // [T, vocab]
};

inline std::vector<reference_prompt> read_reference_prompts(const std::string& path, int count = 3) {
  const format::safetensors::file f(path);
  std::vector<reference_prompt> out;
  for (int i = 0; i < count; ++i) {
    reference_prompt p;
    const auto ids = f.view(cat("prompt", i, ".ids"));
    REQUIRE(ids.type() == format::safetensors::dtype::i32);
    p.ids.resize(ids.numel());
    std::memcpy(p.ids.data(), ids.bytes().data(), ids.bytes().size());
    p.logits = f.view(cat("prompt", i, ".logits")).to_f32();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace qforge::testdata
