// SPDX-License-Identifier: MIT
// The fp16 guard of the AWQ search on doctored copies of tiny-llama: huge norm weights (scale
// candidates whose folding or scaled activations would overflow fp16 are skipped with a warning,
// and the checkpoint stays finite), a weight group whose range no fp16 scale holds (a clear error
// naming the tensor, nothing written), and an F32 source value beyond fp16.
#include <algorithm>
#include <catch2/catch.hpp>

#include "awq/awq_fixture.hpp"

using namespace qforge;
using awq_fixture::doctor;
using format::safetensors::dtype;
namespace fs = std::filesystem;

namespace {

const std::string tmp = std::string(QFORGE_TEST_TMP) + "/awq-fp16-guard";

// Multiplies the F16 tensor `name` of tiny-llama by `factor` (element `only` alone when >= 0).
awq_fixture::tensor_edit scale_f16(std::string name, float factor, long only = -1) {
  return [=](const std::string& n, dtype&, auto&, std::vector<std::byte>& bytes) {
    if (n != name) return true;
    for (std::size_t i = 0; i < bytes.size() / 2; ++i) {
      if (only >= 0 && i != static_cast<std::size_t>(only)) continue;
      std::uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      h = fp32_to_fp16(fp16_to_fp32(h) * factor);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
    return true;
  };
}

// Every float value of the folder's F16 tensors is finite.
void check_finite(const std::string& dir) {
  const format::safetensors::checkpoint ck(dir);
  for (const auto& n : ck.names()) {
    const auto v = ck.view(n);
    if (v.type() != dtype::f16) continue;
    const auto f = v.to_f32();
    INFO(n);
    CHECK(std::all_of(f.begin(), f.end(), [](float x) { return std::isfinite(x); }));
  }
}

}  // namespace

TEST_CASE("fp16 guard: huge norm weights skip the overflowing candidates", "[awq][fp16]") {
  const std::string src = tmp + "/big-norm", out = tmp + "/big-norm-awq";
  doctor(awq_fixture::tiny_llama, src, {},
         scale_f16("model.layers.0.input_layernorm.weight", 30000.0f));
  const auto r = awq_fixture::quantize(src, out);
  std::string all;
  for (const auto& w : r.warnings) all += w + "\n";
  INFO(all);
  const auto& g = r.blocks[0].qkv;
  CHECK(g.rejected > 0);
  CHECK(g.first_rejection.find("model.layers.0") != std::string::npos);
  CHECK(all.find("block 0 q/k/v") != std::string::npos);
  // Only the doctored group is affected.
  CHECK(r.blocks[1].qkv.rejected == 0);
  CHECK(r.blocks[0].gate_up.rejected == 0);
  check_finite(out);
  const format::safetensors::checkpoint ck(out);
  for (float v : ck.view("model.layers.0.input_layernorm.weight").to_f32())
    CHECK(std::fabs(v) <= 65504.0f);
}

TEST_CASE("fp16 guard: when every candidate overflows, s = 1 with warnings", "[awq][fp16]") {
  const std::string src = tmp + "/huge-norm", out = tmp + "/huge-norm-awq";
  // Norm weights up to 64 300: the normed activations overflow fp16 even unscaled.
  doctor(awq_fixture::tiny_llama, src, {},
         scale_f16("model.layers.0.input_layernorm.weight", 100000.0f));
  const auto r = awq_fixture::quantize(src, out);
  std::string all;
  for (const auto& w : r.warnings) all += w + "\n";
  INFO(all);
  CHECK(r.blocks[0].qkv.fp16_fallback);
  CHECK(r.blocks[0].qkv.alpha == -1.0f);
  CHECK(all.find("none left: s = 1") != std::string::npos);
  CHECK(all.find("fp16 serving overflows here anyway") != std::string::npos);
  check_finite(out);
}

TEST_CASE("fp16 guard: a group no fp16 scale can hold is an error naming it", "[awq][fp16]") {
  const std::string src = tmp + "/wide-group", out = tmp + "/wide-group-awq";
  // Row 0 of q_proj: +60000 and -60000 in its first group: the range overflows an fp16 scale.
  doctor(awq_fixture::tiny_llama, src, {},
         [](const std::string& n, dtype&, auto&, std::vector<std::byte>& bytes) {
           if (n == "model.layers.0.self_attn.q_proj.weight") {
             const std::uint16_t hi = fp32_to_fp16(60000.0f), lo = fp32_to_fp16(-60000.0f);
             std::memcpy(bytes.data(), &hi, 2);
             std::memcpy(bytes.data() + 2, &lo, 2);
           }
           return true;
         });
  awq::awq_options o;
  o.grid = 0;  // s = 1 only: round-to-nearest
  o.clip = false;
  fs::remove_all(out);
  try {
    awq_fixture::quantize(src, out, o);
    FAIL("no error");
  } catch (const error& e) {
    INFO(e.what());
    CHECK(e.which() == error::kind::unsupported);
    CHECK(std::string(e.what()).find("model.layers.0.self_attn.q_proj' row 0 group 0") !=
          std::string::npos);
    CHECK(std::string(e.what()).find("even unscaled") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(out));
  CHECK_FALSE(fs::exists(out + ".qforge.tmp"));
}

TEST_CASE("fp16 guard: an F32 source value beyond fp16 is refused by name", "[awq][fp16]") {
  const std::string src = tmp + "/f32-big", out = tmp + "/f32-big-awq";
  doctor(awq_fixture::tiny_llama, src, {},
         [](const std::string& n, dtype& t, auto&, std::vector<std::byte>& bytes) {
           if (n != "model.layers.2.mlp.up_proj.weight") return true;
           std::vector<std::byte> f(bytes.size() * 2);
           for (std::size_t i = 0; i < bytes.size() / 2; ++i) {
             std::uint16_t h;
             std::memcpy(&h, bytes.data() + 2 * i, 2);
             const float v = i == 7 ? 1.0e6f : fp16_to_fp32(h);
             std::memcpy(f.data() + 4 * i, &v, 4);
           }
           bytes = std::move(f);
           t = dtype::f32;
           return true;
         });
  try {
    awq_fixture::quantize(src, out);
    FAIL("no error");
  } catch (const error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("model.layers.2.mlp.up_proj.weight': element 7") !=
          std::string::npos);
  }
  CHECK_FALSE(fs::exists(out));
}
