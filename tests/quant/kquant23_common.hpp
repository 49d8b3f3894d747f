// SPDX-License-Identifier: MIT
// Shared checks of the K-quant tests (tests/quant/q{2,3,4,5,6}_k_test.cpp), written once over the
// family type: ggml's golden bytes and floats for the reference, every compiled CPU backend and
// encode_rows; every backend against the reference on generated data (with and without importance
// weights, non-finite values included), on every SIMD tail length and on small-llama weights;
// round-trip error, per element for the scale+min types Q4_K and Q5_K.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/detail/scale_search.hpp"
#include "qforge/quant/encode.hpp"
#include "quant/testdata.hpp"

namespace qforge::kq23 {

inline const std::string model_path =
    std::string(QFORGE_FIXTURES) + "/models/small-llama/model.safetensors";

struct golden_case {
  std::string name;
  std::size_t rows = 0, cols = 0;
  std::vector<float> input, imatrix, dequant;  // imatrix empty when the case has none
  std::vector<std::uint8_t> quant;
};

inline std::vector<std::uint8_t> u8(std::span<const std::byte> b) {
  std::vector<std::uint8_t> out(b.size());
  std::memcpy(out.data(), b.data(), b.size());
  return out;
}

inline std::vector<golden_case> golden_cases(const std::string& type) {
  const format::safetensors::file f(std::string(QFORGE_FIXTURES) + "/golden/ggml/" + type +
                                    ".safetensors");
  std::vector<golden_case> out;
  for (int i = 0;; ++i) {
    const std::string c = "case" + std::to_string(i);
    if (f.find(c + ".input") == nullptr) break;
    golden_case g;
    g.name = c + " (" + f.metadata().at(c) + ")";
    const auto in = f.view(c + ".input");
    g.rows = in.shape()[0];
    g.cols = in.shape()[1];
    g.input = in.to_f32();
    if (f.find(c + ".imatrix") != nullptr) g.imatrix = f.view(c + ".imatrix").to_f32();
    g.dequant = f.view(c + ".dequant").to_f32();
    g.quant = u8(f.view(c + ".quant").bytes());
    out.push_back(std::move(g));
  }
  return out;
}

// "" when equal, else where the first difference is (Catch would print whole vectors).
template <class Block>
std::string diff(const std::vector<std::uint8_t>& got, const std::vector<std::uint8_t>& want) {
  if (got.size() != want.size()) return cat("size ", got.size(), " != ", want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return cat("byte ", i, " (block ", i / sizeof(Block), ", offset ", i % sizeof(Block),
                 "): ", int(got[i]), " != ", int(want[i]));
  return "";
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The CPU backends this machine can run; warns about the compiled-but-unusable ones.
inline std::vector<const backend::entry*> runnable_cpu() {
  std::vector<const backend::entry*> out;
  for (const auto& b : backend::compiled()) {
    if (b.kernels() == nullptr) continue;
    if (!b.available()) {
      WARN("not run: " << b.name() << " (compiled, CPU lacks it)");
      continue;
    }
    out.push_back(&b);
  }
  return out;
}

template <class Family>
struct codec {
  using block = typename Family::block;
  static constexpr std::size_t elems = quant::qk_k;

  static std::vector<std::uint8_t> as_bytes(const std::vector<block>& b) {
    std::vector<std::uint8_t> out(b.size() * sizeof(block));
    std::memcpy(out.data(), b.data(), out.size());
    return out;
  }
  // Row by row when weighted (the kernels take weights for one row), all rows at once otherwise.
  static std::vector<std::uint8_t> encode(const backend::kernel_table* k, std::span<const float> x,
                                          std::size_t cols, const std::vector<float>& imatrix) {
    std::vector<block> y(x.size() / elems);
    const std::size_t rows = x.size() / cols, per_row = cols / elems;
    if (imatrix.empty()) {
      if (k) backend::encode_with<Family>(*k, x, y);
      else Family::encode_ref(x, y, nullptr);
    } else {
      for (std::size_t r = 0; r < rows; ++r) {
        const auto xr = x.subspan(r * cols, cols);
        const auto yr = std::span(y).subspan(r * per_row, per_row);
        if (k) backend::encode_with<Family>(*k, xr, yr, imatrix.data());
        else Family::encode_ref(xr, yr, imatrix.data());
      }
    }
    return as_bytes(y);
  }
  static std::vector<float> decode(const backend::kernel_table* k,
                                   const std::vector<std::uint8_t>& q) {
    std::vector<block> blocks(q.size() / sizeof(block));
    std::memcpy(blocks.data(), q.data(), q.size());
    std::vector<float> y(blocks.size() * elems);
    if (k) backend::decode_with<Family>(*k, blocks, y);
    else Family::decode_ref(blocks, y);
    return y;
  }
};

// Relative RMS error of a round trip, weighted by w (one weight per column) when given.
inline double rel_rms(const std::vector<float>& x, const std::vector<float>& y, std::size_t cols,
                      const std::vector<float>& w = {}) {
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double wi = w.empty() ? 1.0 : w[i % cols];
    err += wi * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += wi * double(x[i]) * x[i];
  }
  return ref > 0 ? std::sqrt(err / ref) : std::sqrt(err);
}

// Importance weights shaped like llama.cpp's (mean squared activations: positive, a few large).
inline std::vector<float> imatrix_for(std::size_t cols, std::uint64_t seed) {
  testdata::rng r(seed);
  std::vector<float> w(cols);
  for (auto& v : w) {
    const float a = r.normal();
    v = a * a + 0.01f;
    if (r.below(50) == 0) v *= 30.0f;
  }
  return w;
}

template <class Family>
void check_golden(const std::string& type) {
  using C = codec<Family>;
  using block = typename Family::block;
  const auto cases = golden_cases(type);
  REQUIRE(cases.size() == 14);
  int weighted = 0;
  for (const auto& g : cases) {
    INFO(g.name);
    weighted += !g.imatrix.empty();
    REQUIRE(g.quant.size() == g.rows * quant::row_bytes(Family::type, std::int64_t(g.cols)));
    CHECK(diff<block>(C::encode(nullptr, g.input, g.cols, g.imatrix), g.quant) == "");
    CHECK(same_bits(C::decode(nullptr, g.quant), g.dequant));
  }
  CHECK(weighted == 7);
  for (const auto* b : runnable_cpu()) {
    for (const auto& g : cases) {
      INFO(b->name() << ": " << g.name);
      CHECK(diff<block>(C::encode(b->kernels(), g.input, g.cols, g.imatrix), g.quant) == "");
      CHECK(same_bits(C::decode(b->kernels(), g.quant), g.dequant));
    }
  }
}

// encode_rows / decode_rows (threads, imatrix span) on the goldens, every backend with kernels.
template <class Family>
void check_golden_entry_points(const std::string& type) {
  using block = typename Family::block;
  const auto cases = golden_cases(type);
  for (const auto* b : runnable_cpu()) {
    for (const auto& g : cases) {
      INFO(b->name() << ": " << g.name);
      std::vector<block> dst(g.quant.size() / sizeof(block));
      const auto bytes = std::as_writable_bytes(std::span(dst));
      quant::encode_rows(*b, Family::type, g.input, std::int64_t(g.rows), std::int64_t(g.cols),
                         bytes, 3, g.imatrix);
      CHECK(diff<block>(u8(bytes), g.quant) == "");
    }
  }
  for (const auto& g : cases) {
    INFO(g.name);
    std::vector<block> src(g.quant.size() / sizeof(block));
    std::memcpy(src.data(), g.quant.data(), g.quant.size());
    std::vector<float> y(g.rows * g.cols);
    quant::decode_rows(Family::type, std::as_bytes(std::span(src)), std::int64_t(g.rows),
                       std::int64_t(g.cols), y, 2);
    CHECK(same_bits(y, g.dequant));
  }
}

// Every backend == reference on generated rows: edge sizes (1 super-block, odd row counts), every
// testdata kind (non-finite and subnormal values included), with and without importance weights.
template <class Family>
void check_generated() {
  using C = codec<Family>;
  using block = typename Family::block;
  const std::size_t shapes[][2] = {{1, 256}, {3, 512}, {7, 768}, {17, 256}, {5, 2048}};
  const auto scalar = backend::find(backend::id::scalar);
  REQUIRE(scalar != nullptr);
  for (const auto& s : shapes) {
    for (const auto k : testdata::all_kinds) {
      const auto x = testdata::generate(k, s[0], s[1], 5 + s[0]);
      for (const bool weighted : {false, true}) {
        const auto w = weighted ? imatrix_for(s[1], s[0] + 99) : std::vector<float>{};
        const auto want = C::encode(nullptr, x, s[1], w);
        const auto dec = C::decode(nullptr, want);
        for (const auto* b : runnable_cpu()) {
          INFO(b->name() << ": " << testdata::name(k) << " " << s[0] << "x" << s[1]
                         << (weighted ? " imatrix" : ""));
          CHECK(diff<block>(C::encode(b->kernels(), x, s[1], w), want) == "");
          CHECK(same_bits(C::decode(b->kernels(), want), dec));
        }
      }
    }
  }
  const auto mixed = testdata::weights(37, 1024, 7);
  const auto want = C::encode(nullptr, mixed, 1024, {});
  for (const auto* b : runnable_cpu()) {
    INFO(b->name() << ": weights(37, 1024)");
    CHECK(diff<block>(C::encode(b->kernels(), mixed, 1024, {}), want) == "");
  }
}

// small-llama tensors: every backend == reference (plain and weighted), bounded round-trip error,
// and the weighted path lowering the weighted error it optimises.
template <class Family>
void check_real(double max_rel_rms) {
  using C = codec<Family>;
  using block = typename Family::block;
  const format::safetensors::file model(model_path);
  const char* names[] = {"model.layers.0.self_attn.q_proj.weight",
                         "model.layers.0.mlp.down_proj.weight",
                         "model.layers.5.mlp.gate_proj.weight", "model.embed_tokens.weight"};
  for (const char* n : names) {
    const auto v = model.view(n);
    const std::size_t cols = v.shape()[1];
    auto x = v.to_f32();
    if (x.size() > 256 * cols) x.resize(256 * cols);  // 256 rows are plenty, keeps the test quick
    const auto w = imatrix_for(cols, 17);
    const auto plain = C::encode(nullptr, x, cols, {});
    const auto weighted = C::encode(nullptr, x, cols, w);
    for (const auto* b : runnable_cpu()) {
      INFO(b->name() << ": " << n);
      CHECK(diff<block>(C::encode(b->kernels(), x, cols, {}), plain) == "");
      CHECK(diff<block>(C::encode(b->kernels(), x, cols, w), weighted) == "");
    }
    const auto yp = C::decode(nullptr, plain), yw = C::decode(nullptr, weighted);
    const double e_plain = rel_rms(x, yp, cols), e_w_plain = rel_rms(x, yp, cols, w),
                 e_w_weighted = rel_rms(x, yw, cols, w);
    INFO(n << ": relative rms " << e_plain << ", imatrix-weighted " << e_w_plain << " (plain) vs "
           << e_w_weighted << " (weighted)");
    CHECK(e_plain < max_rel_rms);
    CHECK(e_w_weighted < e_w_plain);
  }
}

// A row of n super-blocks, plain and weighted: the SIMD bodies group super-blocks by lane count, so
// 1..33 blocks cover partial groups of 4, 8 and 16 lanes.
template <class Family>
void check_superblock_tails() {
  using C = codec<Family>;
  using block = typename Family::block;
  for (std::size_t nb = 1; nb <= 33; nb += (nb < 18 ? 1 : 5)) {
    const std::size_t cols = 256 * nb;
    const auto x = testdata::weights(2, cols, nb);
    const auto w = imatrix_for(cols, nb);
    const auto plain = C::encode(nullptr, x, cols, {}), weighted = C::encode(nullptr, x, cols, w);
    for (const auto* b : runnable_cpu()) {
      INFO(b->name() << ": " << nb << " super-blocks per row");
      CHECK(diff<block>(C::encode(b->kernels(), x, cols, {}), plain) == "");
      CHECK(diff<block>(C::encode(b->kernels(), x, cols, w), weighted) == "");
    }
  }
}

// Q4_K / Q5_K (levels 0..max_level, 6-bit scale and min per 32 weights): with d, dmin and the codes
// fixed, each weight is rounded to the nearest level, so the error of an unclamped weight is at most
// half of d*sc (plus float rounding).
template <class Family>
void check_half_step_scale_min(int max_level) {
  const auto x = testdata::generate(testdata::kind::normal, 8, 512, 3);
  std::vector<typename Family::block> y(x.size() / 256);
  Family::encode_ref(x, y, nullptr);
  std::vector<float> back(x.size());
  Family::decode_ref(y, back);
  int clamped = 0, checked = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto& b = y[i / 256];
    std::uint8_t sc, m;
    quant::detail::get_scale_min_k4(static_cast<int>(i % 256 / 32), b.scales, &sc, &m);
    const float step = fp16_to_fp32(b.d) * sc;
    const float lo = -fp16_to_fp32(b.dmin) * m, hi = lo + static_cast<float>(max_level) * step;
    if (x[i] < lo || x[i] > hi) {
      ++clamped;
      continue;
    }
    ++checked;
    CHECK(std::fabs(back[i] - x[i]) <= 0.5f * step * 1.0001f + 1e-7f);
  }
  CHECK(checked > 3800);
  CHECK(clamped < 250);  // the 6-bit mins and scales round, so a few edge weights fall outside
}

}  // namespace qforge::kq23
