// SPDX-License-Identifier: MIT
// Error-compensated rounding (quant/awq/gptq.hpp): the factor is the inverse covariance's Cholesky
// factor, the pass keeps the plain quantizer's group parameters, with nothing to compensate it
// gives round-to-nearest's codes, dead channels are handled, and on tiny-llama's real activations
// (RMS-normed embeddings of the calibration prompts, the q/k/v and gate/up input of block 0) it
// lowers the output error every linear is judged by.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/engine/thread_pool.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/awq/gptq.hpp"
#include "qforge/quant/awq/ref.hpp"

using namespace qforge::quant::awq;

namespace {

const std::string fixtures = QFORGE_FIXTURES;

std::vector<float> random_spd(std::size_t n, std::size_t samples, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(samples * n), h(n * n, 0.0f);
  for (auto& v : x) v = nd(rng);
  for (std::size_t t = 0; t < samples; ++t)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) h[i * n + j] += x[t * n + i] * x[t * n + j] / static_cast<float>(samples);
  return h;
}

// mean over rows of d^T H d, d = dequantized - w.
double output_error(const quantized_matrix& m, const std::vector<float>& w,
                    const std::vector<float>& h) {
  const auto dq = dequantize(m);
  const std::size_t n = m.in;
  double total = 0;
  std::vector<double> d(n);
  for (std::size_t r = 0; r < m.out; ++r) {
    for (std::size_t k = 0; k < n; ++k) d[k] = static_cast<double>(dq[r * n + k]) - w[r * n + k];
    for (std::size_t i = 0; i < n; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < n; ++j) s += h[i * n + j] * d[j];
      total += d[i] * s;
    }
  }
  return total / static_cast<double>(m.out);
}

quantized_matrix gptq(const std::vector<float>& w, std::size_t out, std::size_t in,
                      std::size_t group, const gptq_factor& f) {
  auto m = make_quantized(out, in, group);
  quantize_rows(w.data(), m, 0, out);
  gptq_rows(w.data(), f, m, 0, out);
  return m;
}

}  // namespace

TEST_CASE("gptq factor: U^T U is the inverse of the dampened covariance", "[awq][gptq]") {
  const std::size_t n = 37;
  const auto h = random_spd(n, 200, 3);
  for (const bool act_order : {false, true}) {
    INFO("act_order " << act_order);
    const double damp = 0.01;
    const auto f = factor_inverse_covariance(h, n, damp, act_order, "test");
    double mean = 0;
    for (std::size_t j = 0; j < n; ++j) mean += h[j * n + j] / n;
    // A = P (H + damp mean I) P in round order; (U^T U) A must be I.
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::size_t k = 0; k < n; ++k) {
          double utu = 0;
          for (std::size_t l = 0; l < n; ++l) utu += double(f.u[l * n + i]) * f.u[l * n + k];
          const std::size_t ck = f.order[k], cj = f.order[j];
          s += utu * (h[ck * n + cj] + (ck == cj ? damp * mean : 0.0));
        }
        worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
      }
    CHECK(worst < 1e-4);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < i; ++j) REQUIRE(f.u[i * n + j] == 0.0f);
    if (act_order)
      for (std::size_t p = 1; p < n; ++p)
        CHECK(h[f.order[p - 1] * n + f.order[p - 1]] >= h[f.order[p] * n + f.order[p]]);
    // Rows spread over threads compute the same values.
    qforge::engine::thread_pool pool(3);
    const auto fp = factor_inverse_covariance(
        h, n, damp, act_order, "test",
        [&](std::size_t count, auto&& fn) { pool.parallel_for(count, 1, fn); });
    CHECK(fp.u == f.u);
    CHECK(fp.order == f.order);
  }
}

TEST_CASE("gptq: with nothing to compensate the codes are round-to-nearest's", "[awq][gptq]") {
  const std::size_t out = 16, in = 256, group = 64;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(out * in);
  for (auto& v : w) v = half(nd(rng));
  std::vector<float> h(in * in, 0.0f);
  for (std::size_t j = 0; j < in; ++j) h[j * in + j] = 1.0f;
  const auto rtn = quantize(w, out, in, group);
  for (const bool act_order : {false, true}) {
    const auto m = gptq(w, out, in, group, factor_inverse_covariance(h, in, 0.01, act_order, "id"));
    CHECK(m.q == rtn.q);
    CHECK(m.scales == rtn.scales);
    CHECK(m.zeros == rtn.zeros);
  }
}

TEST_CASE("gptq: a never-active channel takes the zero point, the rest still improve",
          "[awq][gptq]") {
  const std::size_t out = 8, in = 64, group = 32;
  auto h = random_spd(in, 300, 5);
  for (std::size_t k = 0; k < in; ++k) h[5 * in + k] = h[k * in + 5] = 0.0f;
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(out * in);
  for (auto& v : w) v = half(nd(rng));
  const auto f = factor_inverse_covariance(h, in, 0.01, false, "dead");
  CHECK(f.dead[5] == 1);
  const auto m = gptq(w, out, in, group, f);
  for (std::size_t r = 0; r < out; ++r)
    CHECK(dequantize_value(m.q[r * in + 5], m.params(r, 0)) == 0.0f);
  CHECK(output_error(m, w, h) < output_error(quantize(w, out, in, group), w, h));
}

TEST_CASE("gptq factor: a non-finite or mis-sized covariance is an error naming it", "[awq][gptq]") {
  std::vector<float> h(16, 0.0f);
  h[0] = NAN;
  CHECK_THROWS_WITH(factor_inverse_covariance(h, 4, 0.01, false, "blk.0 q"),
                    Catch::Contains("blk.0 q") && Catch::Contains("not finite"));
  CHECK_THROWS_WITH(factor_inverse_covariance(h, 5, 0.01, false, "blk.0 q"),
                    Catch::Contains("16 values for 5 channels"));
}

TEST_CASE("gptq on tiny-llama's real activations: same group parameters, lower output error",
          "[awq][gptq][fixtures]") {
  const std::string model = fixtures + "/models/tiny-llama";
  const qforge::format::safetensors::checkpoint ck(model);
  const auto emb = ck.view("model.embed_tokens.weight").to_f32();
  const auto norm = ck.view("model.layers.0.input_layernorm.weight").to_f32();
  const auto norm2 = ck.view("model.layers.0.post_attention_layernorm.weight").to_f32();
  const std::size_t H = norm.size();
  // The calibration prompts' ids (the golden file's last 128 lines).
  std::vector<std::vector<int>> prompts;
  {
    std::ifstream in(model + "/tokenizer_golden.jsonl");
    std::string line;
    while (std::getline(in, line)) prompts.push_back(nlohmann::json::parse(line)["ids"].get<std::vector<int>>());
  }
  REQUIRE(prompts.size() >= 128);
  // Covariances of RMSNorm(e) * w for the two norms of block 0 (before any attention: the
  // statistics of real token embeddings, as q/k/v of block 0 see them).
  std::vector<double> h1(H * H, 0.0), h2(H * H, 0.0);
  std::size_t tokens = 0;
  std::vector<float> a(H), b(H);
  for (std::size_t p = prompts.size() - 128; p < prompts.size(); ++p)
    for (int id : prompts[p]) {
      const float* e = emb.data() + static_cast<std::size_t>(id) * H;
      double ss = 0;
      for (std::size_t c = 0; c < H; ++c) ss += double(e[c]) * e[c];
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(H)) + 1e-5f);
      for (std::size_t c = 0; c < H; ++c) a[c] = e[c] * inv * norm[c], b[c] = e[c] * inv * norm2[c];
      for (std::size_t i = 0; i < H; ++i)
        for (std::size_t j = 0; j < H; ++j) h1[i * H + j] += double(a[i]) * a[j], h2[i * H + j] += double(b[i]) * b[j];
      ++tokens;
    }
  std::vector<float> c1(H * H), c2(H * H);
  for (std::size_t i = 0; i < H * H; ++i) c1[i] = float(h1[i] / double(tokens)), c2[i] = float(h2[i] / double(tokens));

  for (const auto& [name, cov] : {std::pair{"model.layers.0.self_attn.q_proj.weight", &c1},
                                  std::pair{"model.layers.0.mlp.gate_proj.weight", &c2}}) {
    const auto v = ck.view(name);
    const auto w = v.to_f32();
    const std::size_t out = w.size() / H;
    const auto rtn = quantize(w, out, H, 128);
    const double e_rtn = output_error(rtn, w, *cov);
    for (const bool act_order : {false, true}) {
      INFO(name << " act_order " << act_order);
      const auto m = gptq(w, out, H, 128, factor_inverse_covariance(*cov, H, 0.01, act_order, name));
      CHECK(m.scales == rtn.scales);
      CHECK(m.zeros == rtn.zeros);
      CHECK(m.q != rtn.q);
      const double e = output_error(m, w, *cov);
      WARN(name << (act_order ? " act-order" : "") << ": output error " << e << " vs RTN " << e_rtn
                << " (" << e / e_rtn << ")");
      CHECK(e < 0.8 * e_rtn);
    }
  }
}
