// SPDX-License-Identifier: MIT
// awq::detail::weight_guard, the O(in + rows) form of the fp16 guard's weight check, gives the full
// scan's answer (weight_overflow) for every candidate: on tiny-llama's real block-0 linears with
// the search's own candidate scales (nothing overflows), with scales that push one weight, one
// group's range, the folded norm or the folded previous rows out of fp16 (the same message), and
// on many random scales over weights sized to sit near the edge.
#include <catch2/catch.hpp>

#include <random>

#include "awq/awq_fixture.hpp"

using namespace qforge;
namespace ad = awq::detail;

namespace {

awq::linear_f32 synthetic(std::size_t out, std::size_t in, float amplitude, std::uint32_t seed) {
  awq::linear_f32 l;
  l.name = "synthetic";
  l.out = out, l.in = in;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amplitude, amplitude);
  for (std::size_t i = 0; i < out * in; ++i) l.w.push_back(quant::awq::half(u(rng)));
  return l;
}

}  // namespace

TEST_CASE("awq weight guard: the full scan's answer on tiny-llama's block 0", "[awq][guard]") {
  engine::thread_pool pool(0);
  const format::safetensors::checkpoint ck(awq_fixture::tiny_llama);
  const auto c = engine::from_hf(format::hf::read_config(awq_fixture::tiny_llama));
  const std::size_t H = c.hidden, F = c.ffn, KVD = std::size_t{c.n_kv_heads} * c.head_dim,
                    QD = std::size_t{c.n_heads} * c.head_dim, G = 128;
  const std::string p = "model.layers.0.";
  const auto q = ad::load_linear(ck, p + "self_attn.q_proj", QD, H, pool);
  const auto k = ad::load_linear(ck, p + "self_attn.k_proj", KVD, H, pool);
  const auto v = ad::load_linear(ck, p + "self_attn.v_proj", KVD, H, pool);
  const auto up = ad::load_linear(ck, p + "mlp.up_proj", F, H, pool);
  const auto down = ad::load_linear(ck, p + "mlp.down_proj", H, F, pool);
  const auto norm = ck.view(p + "input_layernorm.weight").to_f32();
  const awq::linear_f32* qkv[] = {&q, &k, &v};
  const awq::linear_f32* d[] = {&down};
  const ad::weight_guard g_qkv(qkv, G, norm, 0, "norm", pool);
  const ad::weight_guard g_down(d, G, up.w, up.out, "up", pool);
  const auto full_qkv = [&](const std::vector<float>& s) {
    return ad::weight_overflow(qkv, s, G, norm, true, "norm");
  };
  const auto full_down = [&](const std::vector<float>& s) {
    return ad::weight_overflow(d, s, G, up.w, false, "up");
  };

  // The search's candidates (x_mean taken as 1: the weights decide the spread).
  const std::span<const float> ws[] = {q.w, k.w, v.w};
  const auto wm = quant::awq::weight_abs_mean(ws, H, G);
  for (float a : {0.0f, 0.3f, 0.6f, 0.95f}) {
    const auto s = quant::awq::candidate_scales(std::vector<float>(H, 1.0f), wm, a);
    CHECK(g_qkv(s) == full_qkv(s));
    CHECK(g_qkv(s).empty());
  }
  std::vector<float> s(H, 1.0f);
  CHECK(g_qkv(s).empty());
  s[7] = 1e7f;  // one column of q/k/v scaled past fp16
  CHECK(!g_qkv(s).empty());
  CHECK(g_qkv(s) == full_qkv(s));
  s.assign(H, 1.0f);
  s[3] = 1e-9f;  // the folded norm weight norm / s overflows
  CHECK(g_qkv(s).find("'norm' element 3") != std::string::npos);
  CHECK(g_qkv(s) == full_qkv(s));
  std::vector<float> sd(F, 1.0f);
  CHECK(g_down(sd).empty());
  sd[11] = 1e-9f;  // up's row 11 / s overflows
  CHECK(g_down(sd).find("'up' row 11") != std::string::npos);
  CHECK(g_down(sd) == full_down(sd));
}

TEST_CASE("awq weight guard: random scales near fp16's edge", "[awq][guard]") {
  engine::thread_pool pool(0);
  // A group range overflows before its elements do: values of both signs near 40000.
  const auto l = synthetic(16, 256, 40000.0f, 1);
  const awq::linear_f32* ls[] = {&l};
  const std::vector<float> divided(256, 1.0f);
  const ad::weight_guard guard(ls, 128, divided, 0, "divided", pool);
  const auto full = [&](const std::vector<float>& s) {
    return ad::weight_overflow(ls, s, 128, divided, true, "divided");
  };
  CHECK(full(std::vector<float>(256, 1.0f)).find("scaled range") != std::string::npos);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> e(-4.0f, 1.0f);
  int overflowing = 0, clear = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<float> s(256);
    const float width = trial % 2 ? 0.2f : 1.0f;
    for (auto& x : s) x = std::pow(10.0f, e(rng) * width - (trial % 4 < 2 ? 0.0f : 0.6f));
    const auto want = full(s);
    CHECK(guard(s) == want);
    (want.empty() ? clear : overflowing)++;
  }
  // Both answers occur, so the comparison covers the fast path and the fallback.
  CHECK(overflowing > 20);
  CHECK(clear > 20);
}
