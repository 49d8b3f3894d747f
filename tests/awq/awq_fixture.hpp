// SPDX-License-Identifier: MIT
// Shared by the AWQ tests: a real AWQ folder of tiny-llama from 8 calibration prompts (a few
// seconds), and a way to copy a folder with its config.json and tensors doctored.
#pragma once
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/awq/quantize_model.hpp"
#include "qforge/format/safetensors/writer.hpp"
#include "qforge/tokenize/tokenizer.hpp"

namespace awq_fixture {

namespace fs = std::filesystem;
inline const std::string fixtures = QFORGE_FIXTURES;
inline const std::string tiny_llama = fixtures + "/models/tiny-llama";
inline const std::string calibration = fixtures + "/data/calibration.jsonl";

inline qforge::awq::calibration_set calib(const std::string& model, std::size_t samples = 8) {
  const qforge::tokenize::tokenizer tok(model);
  const auto prompts = qforge::awq::read_calibration_prompts(calibration);
  qforge::awq::calibration_options co;
  co.samples = samples;
  return qforge::awq::build_calibration(prompts, tok, co, 0);
}

// `model` quantized into `out` (replaced) with the given options.
inline qforge::awq::awq_result quantize(const std::string& model, const std::string& out,
                                        qforge::awq::awq_options o = {}) {
  qforge::engine::thread_pool pool(0);
  o.overwrite = true;
  fs::remove_all(out);
  return qforge::awq::quantize_model(model, calib(model), out, o, pool);
}

// Copies the folder `src` to `dst` (replaced), passing config.json through edit_config and every
// tensor through edit_tensor(name, dtype, shape, bytes): return false to drop the tensor.
using tensor_edit = std::function<bool(const std::string&, qforge::format::safetensors::dtype&,
                                       std::vector<std::uint64_t>&, std::vector<std::byte>&)>;
inline void doctor(const std::string& src, const std::string& dst,
                   const std::function<void(nlohmann::json&)>& edit_config,
                   const tensor_edit& edit_tensor = {},
                   const std::vector<std::pair<std::string, std::vector<float>>>& add_f16 = {}) {
  fs::remove_all(dst);
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().extension() != ".safetensors" && e.path().filename() != "config.json")
      fs::copy_file(e.path(), fs::path(dst) / e.path().filename());
  nlohmann::json j;
  {
    std::ifstream in(src + "/config.json");
    j = nlohmann::json::parse(in);
  }
  if (edit_config) edit_config(j);
  std::ofstream(dst + "/config.json") << j.dump(2);
  const qforge::format::safetensors::checkpoint ck(src);
  std::vector<std::vector<std::byte>> keep;
  keep.reserve(ck.names().size() + add_f16.size());
  qforge::format::safetensors::writer w;
  for (const auto& n : ck.names()) {
    const auto v = ck.view(n);
    auto type = v.type();
    std::vector<std::uint64_t> shape(v.shape().begin(), v.shape().end());
    std::vector<std::byte> bytes(v.bytes().begin(), v.bytes().end());
    if (edit_tensor && !edit_tensor(n, type, shape, bytes)) continue;
    keep.push_back(std::move(bytes));
    w.add(n, type, shape, keep.back());
  }
  for (const auto& [n, vals] : add_f16) {
    std::vector<std::byte> b(vals.size() * 2);
    for (std::size_t i = 0; i < vals.size(); ++i) {
      const std::uint16_t h = qforge::fp32_to_fp16(vals[i]);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
    keep.push_back(std::move(b));
    w.add(n, qforge::format::safetensors::dtype::f16, {vals.size()}, keep.back());
  }
  w.write(dst + "/model.safetensors");
}

}  // namespace awq_fixture
