// SPDX-License-Identifier: MIT
// The legacy 32-weight types Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL: ggml's golden bytes (with and without
// importance weights) and golden floats for the reference and every compiled backend, every backend
// against the reference on generated inputs (NaN, infinities, signed zeros, ties included) and on
// small-llama's weights, the error each type leaves on real weights, and what an importance matrix
// buys. One templated body per check, instantiated for the five families.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/encode.hpp"
#include "qforge/quant/iq4_nl/family.hpp"
#include "qforge/quant/q4_0/family.hpp"
#include "qforge/quant/q4_1/family.hpp"
#include "qforge/quant/q5_0/family.hpp"
#include "qforge/quant/q5_1/family.hpp"
#include "quant/testdata.hpp"

using namespace qforge;
using quant::qtype;

namespace {

constexpr std::size_t qk = 32;

const std::string model_path =
    std::string(QFORGE_FIXTURES) + "/models/small-llama/model.safetensors";

template <class F>
std::string type_name() {
  return std::string(quant::name(F::type));
}

template <class F>
std::vector<std::uint8_t> as_bytes(const std::vector<typename F::block>& b) {
  std::vector<std::uint8_t> out(b.size() * sizeof(typename F::block));
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

// rows x cols through one kernel table (null = the reference headers), with ggml's calling
// convention for importance weights: one row per call.
template <class F>
std::vector<std::uint8_t> encode(const backend::kernel_table* k, std::span<const float> x,
                                 std::size_t cols, const float* imatrix) {
  using block = typename F::block;
  std::vector<block> y(x.size() / qk);
  const std::size_t rows = x.size() / cols, per_row = cols / qk;
  auto run = [&](std::span<const float> xs, std::span<block> ys, const float* w) {
    if (k == nullptr) F::encode_ref(xs, ys, w);
    else backend::encode_with<F>(*k, xs, ys, w);
  };
  if (imatrix == nullptr) {
    run(x, y, nullptr);
  } else {
    for (std::size_t r = 0; r < rows; ++r)
      run(x.subspan(r * cols, cols), std::span(y).subspan(r * per_row, per_row), imatrix);
  }
  return as_bytes<F>(y);
}

template <class F>
std::vector<float> decode(const backend::kernel_table* k, std::span<const std::uint8_t> q) {
  using block = typename F::block;
  std::vector<block> blocks(q.size() / sizeof(block));
  std::memcpy(blocks.data(), q.data(), q.size());
  std::vector<float> y(blocks.size() * qk);
  if (k == nullptr) F::decode_ref(blocks, y);
  else backend::decode_with<F>(*k, blocks, y);
  return y;
}

// "" when equal, else where the first difference is (Catch would print whole vectors).
std::string diff(const std::vector<std::uint8_t>& got, const std::vector<std::uint8_t>& want,
                 std::size_t block_bytes) {
  if (got.size() != want.size()) return cat("size ", got.size(), " != ", want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return cat("byte ", i, " (block ", i / block_bytes, ", offset ", i % block_bytes,
                 "): ", int(got[i]), " != ", int(want[i]));
  return "";
}

std::string float_diff(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return cat("size ", got.size(), " != ", want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0)
      return cat("float ", i, ": ", got[i], " != ", want[i]);
  return "";
}

std::vector<std::uint8_t> u8(std::span<const std::byte> b) {
  std::vector<std::uint8_t> out(b.size());
  std::memcpy(out.data(), b.data(), b.size());
  return out;
}

// The CPU backends this machine can run; warns about the compiled-but-unusable ones.
std::vector<const backend::entry*> runnable_cpu() {
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

struct golden_case {
  std::string name;
  std::size_t rows, cols;
  std::vector<float> input, imatrix, dequant;
  std::vector<std::uint8_t> quant;
};

std::vector<golden_case> golden_cases(const std::string& type) {
  const format::safetensors::file f(std::string(QFORGE_FIXTURES) + "/golden/ggml/" + type +
                                    ".safetensors");
  std::vector<golden_case> out;
  for (int i = 0;; ++i) {
    const std::string c = "case" + std::to_string(i);
    if (f.find(c + ".input") == nullptr) break;
    golden_case g;
    g.name = type + " " + c + " (" + f.metadata().at(c) + ")";
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

const float* weights_of(const golden_case& g) {
  return g.imatrix.empty() ? nullptr : g.imatrix.data();
}

// Positive importance weights with a wide spread (some near zero), like squared activations.
std::vector<float> random_imatrix(std::size_t cols, std::uint64_t seed) {
  testdata::rng r(seed);
  std::vector<float> w(cols);
  for (auto& v : w) {
    const float n = r.normal();
    v = r.below(50) == 0 ? 0.0f : n * n * (0.1f + 10.0f * r.uniform());
  }
  return w;
}

double rel_rms(std::span<const float> x, std::span<const float> y, const float* w = nullptr,
               std::size_t cols = 1) {
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double wi = w ? w[i % cols] : 1.0;
    err += wi * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    ref += wi * double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

const char* const real_tensors[] = {"model.layers.0.self_attn.q_proj.weight",
                                    "model.layers.0.mlp.down_proj.weight",
                                    "model.layers.5.mlp.gate_proj.weight",
                                    "model.embed_tokens.weight"};

// ggml's own quantizer from llama-cpp-python's libggml-base.so ($QFORGE_GGML_LIB, else found
// through python3), or null when it is not installed.
using ggml_quantize_chunk_fn = std::size_t (*)(int, const float*, void*, std::int64_t, std::int64_t,
                                               std::int64_t, const float*);
ggml_quantize_chunk_fn ggml_quantize_chunk() {
  static const ggml_quantize_chunk_fn fn = []() -> ggml_quantize_chunk_fn {
    std::string path;
    if (const char* env = std::getenv("QFORGE_GGML_LIB"); env != nullptr && *env != '\0') {
      path = env;
    } else if (FILE* p = ::popen("python3 -c \"import llama_cpp,os;"
                                 "print(os.path.dirname(llama_cpp.__file__))\" 2>/dev/null",
                                 "r")) {
      char buf[4096] = {};
      const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
      ::pclose(p);
      std::string dir = got ? buf : "";
      while (!dir.empty() && (dir.back() == '\n' || dir.back() == '\r')) dir.pop_back();
      if (!dir.empty()) path = dir + "/lib/libggml-base.so";
    }
    void* h = path.empty() ? nullptr : ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    return h ? reinterpret_cast<ggml_quantize_chunk_fn>(::dlsym(h, "ggml_quantize_chunk"))
             : nullptr;
  }();
  return fn;
}

}  // namespace

#define LEGACY_FAMILIES                                                                 \
  quant::q4_0::family, quant::q4_1::family, quant::q5_0::family, quant::q5_1::family, \
      quant::iq4_nl::family

TEMPLATE_TEST_CASE("legacy: golden files have the expected cases", "[legacy][golden]",
                   LEGACY_FAMILIES) {
  const auto cases = golden_cases(type_name<TestType>());
  REQUIRE(cases.size() == 14);
  int weighted = 0;
  for (const auto& g : cases) {
    INFO(g.name);
    CHECK(g.quant.size() == g.rows * quant::row_bytes(TestType::type, std::int64_t(g.cols)));
    CHECK((g.imatrix.empty() || g.imatrix.size() == g.cols));
    weighted += g.imatrix.empty() ? 0 : 1;
  }
  CHECK(weighted == 7);  // every kind once with, once without importance weights
}

TEMPLATE_TEST_CASE("legacy: reference encoder writes ggml's golden bytes", "[legacy][golden][scalar]",
                   LEGACY_FAMILIES) {
  for (const auto& g : golden_cases(type_name<TestType>())) {
    INFO(g.name);
    CHECK(diff(encode<TestType>(nullptr, g.input, g.cols, weights_of(g)), g.quant,
               sizeof(typename TestType::block)) == "");
  }
}

TEMPLATE_TEST_CASE("legacy: every CPU backend writes ggml's golden bytes and floats",
                   "[legacy][golden][backend]", LEGACY_FAMILIES) {
  const auto cases = golden_cases(type_name<TestType>());
  for (const auto* b : runnable_cpu()) {
    for (const auto& g : cases) {
      INFO(b->name() << ": " << g.name);
      CHECK(diff(encode<TestType>(b->kernels(), g.input, g.cols, weights_of(g)), g.quant,
                 sizeof(typename TestType::block)) == "");
      CHECK(float_diff(decode<TestType>(b->kernels(), g.quant), g.dequant) == "");
    }
  }
  for (const auto& g : cases) {
    INFO("reference decoder: " << g.name);
    CHECK(float_diff(decode<TestType>(nullptr, g.quant), g.dequant) == "");
  }
}

TEMPLATE_TEST_CASE("legacy: encode_rows / decode_rows on the goldens, every backend",
                   "[legacy][golden][backend]", LEGACY_FAMILIES) {
  const auto cases = golden_cases(type_name<TestType>());
  for (const auto& b : backend::compiled()) {
    if (!b.available()) {
      WARN("not run: " << b.name() << " (not usable on this machine)");
      continue;
    }
    for (const auto& g : cases) {
      INFO(b.name() << ": " << g.name);
      std::vector<std::byte> dst(g.quant.size());
      const auto rows = std::int64_t(g.rows), cols = std::int64_t(g.cols);
      try {
        quant::encode_rows(b, TestType::type, g.input, rows, cols, dst, 3, g.imatrix);
      } catch (const error& e) {
        // Only a device backend may decline a type or the importance weights; it must say so.
        REQUIRE(b.kernels() == nullptr);
        CHECK(e.which() == error::kind::unsupported);
        WARN("not run: " << b.name() << ": " << e.what());
        continue;
      }
      CHECK(diff(u8(dst), g.quant, sizeof(typename TestType::block)) == "");
    }
  }
  for (const auto& g : cases) {
    INFO(g.name);
    std::vector<float> y(g.rows * g.cols);
    quant::decode_rows(TestType::type, std::as_bytes(std::span(g.quant)), std::int64_t(g.rows),
                       std::int64_t(g.cols), y, 2);
    CHECK(float_diff(y, g.dequant) == "");
  }
}

TEMPLATE_TEST_CASE("legacy: each backend writes the reference bytes on generated data",
                   "[legacy][backend]", LEGACY_FAMILIES) {
  // Edge sizes: one block, odd row counts around 128, and every generated kind, the non-finite
  // and tie-shaped ones included; with and without importance weights.
  const std::size_t shapes[][2] = {{1, 32}, {3, 96}, {127, 64}, {128, 32}, {129, 160}, {37, 512}};
  const auto runnable = runnable_cpu();
  const auto* scalar = backend::find(backend::id::scalar);
  REQUIRE(scalar != nullptr);
  for (const auto& s : shapes) {
    const auto imatrix = random_imatrix(s[1], s[0]);
    for (const auto k : testdata::all_kinds) {
      const auto x = testdata::generate(k, s[0], s[1], 7 + s[0]);
      for (const float* w : {static_cast<const float*>(nullptr), imatrix.data()}) {
        const auto want = encode<TestType>(nullptr, x, s[1], w);
        const auto want_y = decode<TestType>(nullptr, want);
        for (const auto* b : runnable) {
          INFO(b->name() << ": " << testdata::name(k) << " " << s[0] << "x" << s[1]
                         << (w ? " imatrix" : ""));
          CHECK(diff(encode<TestType>(b->kernels(), x, s[1], w), want,
                     sizeof(typename TestType::block)) == "");
          CHECK(float_diff(decode<TestType>(b->kernels(), want), want_y) == "");
        }
      }
    }
  }
}

TEMPLATE_TEST_CASE("legacy: the SIMD fall-back cases (ties, signed zeros, NaN, inf) match",
                   "[legacy][backend]", LEGACY_FAMILIES) {
  // Blocks built so that the order-dependent parts of ggml's scans decide the bytes.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> blocks;
  auto base = [](float v) { return std::vector<float>(qk, v); };
  auto b = base(0.25f); b[3] = 1.0f; b[20] = -1.0f; blocks.push_back(b);    // +a before -a
  b = base(0.25f); b[3] = -1.0f; b[20] = 1.0f; blocks.push_back(b);         // -a before +a
  b = base(0.0f); b[0] = -0.0f; b[9] = 0.5f; blocks.push_back(b);           // -0 is the min
  b = base(-0.0f); b[5] = 0.0f; b[9] = -0.5f; blocks.push_back(b);          // -0 is the max
  b = base(0.0f); b[1] = -0.0f; blocks.push_back(b);                        // all zero, mixed signs
  b = base(-0.0f); blocks.push_back(b);                                     // all -0
  b = base(0.1f); b[7] = nan; blocks.push_back(b);                          // a NaN
  b = base(0.1f); b[7] = inf; blocks.push_back(b);                          // +inf
  b = base(-0.1f); b[30] = -inf; b[2] = 3.0f; blocks.push_back(b);          // -inf
  b = base(1e-40f); b[4] = -3e-39f; blocks.push_back(b);                    // subnormal scale
  b = base(3e38f); b[4] = -3e38f; blocks.push_back(b);                      // max - min overflows
  for (int j = 0; j < int(qk); ++j) b[std::size_t(j)] = float(j - 16) * 0.5f;
  blocks.push_back(b);                                                      // exact grid, ties
  std::vector<float> x;
  for (const auto& blk : blocks) x.insert(x.end(), blk.begin(), blk.end());
  const auto want = encode<TestType>(nullptr, x, x.size(), nullptr);
  for (const auto* be : runnable_cpu()) {
    INFO(be->name());
    CHECK(diff(encode<TestType>(be->kernels(), x, x.size(), nullptr), want,
               sizeof(typename TestType::block)) == "");
  }
}

TEMPLATE_TEST_CASE("legacy: the reference equals ggml's library on generated data",
                   "[legacy][ggml]", LEGACY_FAMILIES) {
  // Beyond the goldens: every generated kind (NaN, inf, subnormal scales, exact ties, signed
  // zeros) through ggml_quantize_chunk itself, where llama-cpp-python is installed.
  const auto fn = ggml_quantize_chunk();
  if (fn == nullptr) {
    WARN("not run: libggml-base.so not found (set QFORGE_GGML_LIB)");
    return;
  }
  const std::size_t shapes[][2] = {{3, 96}, {37, 512}};
  for (const auto& s : shapes) {
    const auto imatrix = random_imatrix(s[1], 3 + s[0]);
    for (const auto k : testdata::all_kinds) {
      const auto x = testdata::generate(k, s[0], s[1], 11 + s[0]);
      for (const float* w : {static_cast<const float*>(nullptr), imatrix.data()}) {
        INFO(type_name<TestType>() << ": " << testdata::name(k) << " " << s[0] << "x" << s[1]
                                   << (w ? " imatrix" : ""));
        std::vector<std::uint8_t> got(x.size() / qk * sizeof(typename TestType::block));
        fn(static_cast<int>(TestType::type), x.data(), got.data(), 0, std::int64_t(s[0]),
           std::int64_t(s[1]), w);
        CHECK(diff(encode<TestType>(nullptr, x, s[1], w), got,
                   sizeof(typename TestType::block)) == "");
      }
    }
  }
}

TEMPLATE_TEST_CASE("legacy: each backend writes the reference bytes on small-llama weights",
                   "[legacy][backend][real]", LEGACY_FAMILIES) {
  const format::safetensors::file model(model_path);
  const auto runnable = runnable_cpu();
  for (const char* n : real_tensors) {
    const auto v = model.view(n);
    const std::size_t cols = v.shape()[1];
    const auto x = v.to_f32();
    const auto imatrix = random_imatrix(cols, 5);
    // The weighted search is slow (IQ4_NL above all): a slice of rows is enough for it.
    const std::span<const float> xw = std::span(x).first(std::min<std::size_t>(64, x.size() / cols) * cols);
    const auto want = encode<TestType>(nullptr, x, cols, nullptr);
    const auto want_w = encode<TestType>(nullptr, xw, cols, imatrix.data());
    for (const auto* b : runnable) {
      INFO(b->name() << ": " << n);
      CHECK(diff(encode<TestType>(b->kernels(), x, cols, nullptr), want,
                 sizeof(typename TestType::block)) == "");
      CHECK(diff(encode<TestType>(b->kernels(), xw, cols, imatrix.data()), want_w,
                 sizeof(typename TestType::block)) == "");
    }
  }
}

TEST_CASE("legacy: round-trip error on small-llama weights is bounded and ordered",
          "[legacy][real]") {
  // Relative rms error of each type on real weights: every type stays under its bound, one more
  // bit roughly halves the error, an offset (m) beats a symmetric scale, and IQ4_NL's non-linear
  // levels beat Q4_0's uniform ones at the same size.
  const format::safetensors::file model(model_path);
  const auto x = model.view("model.layers.0.mlp.down_proj.weight").to_f32();
  auto err = [&](auto fam) {
    using F = decltype(fam);
    const auto q = encode<F>(nullptr, x, qk, nullptr);
    return rel_rms(x, decode<F>(nullptr, q));
  };
  const double e40 = err(quant::q4_0::family{}), e41 = err(quant::q4_1::family{});
  const double e50 = err(quant::q5_0::family{}), e51 = err(quant::q5_1::family{});
  const double enl = err(quant::iq4_nl::family{});
  INFO("q4_0 " << e40 << " q4_1 " << e41 << " q5_0 " << e50 << " q5_1 " << e51 << " iq4_nl "
               << enl);
  CHECK(e40 < 0.10);
  CHECK(e41 < 0.09);
  CHECK(e50 < 0.05);
  CHECK(e51 < 0.045);
  CHECK(enl < 0.09);
  CHECK(e41 < e40);
  CHECK(e51 < e50);
  CHECK(e50 < 0.6 * e40);
  CHECK(e51 < 0.6 * e41);
  CHECK(enl < e40);
}

TEMPLATE_TEST_CASE("legacy: importance weights lower the weighted error on real weights",
                   "[legacy][real][imatrix]", LEGACY_FAMILIES) {
  // What --imatrix is for: with column weights, the error measured in those weights drops.
  const format::safetensors::file model(model_path);
  const auto v = model.view("model.layers.0.self_attn.q_proj.weight");
  const std::size_t cols = v.shape()[1];
  const auto all = v.to_f32();
  const std::span<const float> x = std::span(all).first(64 * cols);
  const auto imatrix = random_imatrix(cols, 9);
  const double plain = rel_rms(x, decode<TestType>(nullptr, encode<TestType>(nullptr, x, cols, nullptr)),
                               imatrix.data(), cols);
  const double weighted = rel_rms(
      x, decode<TestType>(nullptr, encode<TestType>(nullptr, x, cols, imatrix.data())),
      imatrix.data(), cols);
  INFO(type_name<TestType>() << ": plain " << plain << ", weighted " << weighted);
  CHECK(weighted < plain);
}

TEST_CASE("legacy: reference formulas on hand-made blocks", "[legacy][scalar]") {
  // Q4_0: the extreme weight (sign kept) maps to level -8, d = max / -8.
  std::vector<float> x(qk, 0.0f);
  x[0] = -8.0f, x[1] = 4.0f, x[2] = 7.0f, x[17] = -1.0f;
  std::vector<quant::block_q4_0> q40(1);
  quant::q4_0::encode_ref(x, q40);
  CHECK(q40[0].d == fp32_to_fp16(1.0f));
  CHECK((q40[0].qs[0] & 0x0F) == 0);    // -8 / 1 + 8.5 -> 0
  CHECK((q40[0].qs[1] & 0x0F) == 12);   // 4 + 8.5 -> 12
  CHECK((q40[0].qs[2] & 0x0F) == 15);   // 7 + 8.5 -> 15
  CHECK((q40[0].qs[1] >> 4) == 7);      // weight 17: -1 + 8.5 -> 7
  // All-zero block: d = 0 / -8 = -0, stored as fp16 -0 (0x8000), codes 8.
  std::vector<float> z(qk, 0.0f);
  quant::q4_0::encode_ref(z, q40);
  CHECK(q40[0].d == 0x8000);
  CHECK(q40[0].qs[0] == 0x88);
  // Q5_1: min/max, 31 steps, fifth bit in qh.
  std::vector<float> r(qk);
  for (std::size_t j = 0; j < qk; ++j) r[j] = float(j) - 1.0f;  // -1 .. 30
  std::vector<quant::block_q5_1> q51(1);
  quant::q5_1::encode_ref(r, q51);
  CHECK(q51[0].d == fp32_to_fp16(1.0f));
  CHECK(q51[0].m == fp32_to_fp16(-1.0f));
  CHECK(quant::detail::load_qh(q51[0].qh) == 0xFFFF0000u);  // weights 16..31 have q >= 16
  // IQ4_NL: best_index_int8 ties go up, outside values clamp.
  using quant::iq4_nl::best_index_int8;
  using quant::iq4_nl::kvalues;
  CHECK(best_index_int8(16, kvalues, -500.0f) == 0);
  CHECK(best_index_int8(16, kvalues, 500.0f) == 15);
  CHECK(best_index_int8(16, kvalues, 7.0f) == 9);   // halfway between 1 and 13
  CHECK(best_index_int8(16, kvalues, 6.9f) == 8);
  CHECK(best_index_int8(16, kvalues, -10.0f) == 7);
}

TEST_CASE("iq4_nl: the branch-free level search equals ggml's binary search", "[iq4_nl][scalar]") {
  // Every multiple of 1/256 across the table and beyond, each level and midpoint with its float
  // neighbours (where the float subtraction in the tie test decides), and the non-finite values.
  using quant::iq4_nl::best_index_int8;
  using quant::iq4_nl::kvalues;
  using quant::iq4_nl::nearest_level;
  std::vector<float> xs;
  for (int i = -140 * 256; i <= 140 * 256; ++i) xs.push_back(float(i) / 256.0f);
  for (int k = 0; k < 16; ++k) {
    std::vector<float> centres = {float(kvalues[k])};
    if (k < 15) centres.push_back((float(kvalues[k]) + float(kvalues[k + 1])) / 2.0f);
    for (float c : centres) {
      float lo = c, hi = c;
      for (int s = 0; s < 64; ++s) {
        xs.push_back(lo);
        xs.push_back(hi);
        lo = std::nextafter(lo, -1e9f);
        hi = std::nextafter(hi, 1e9f);
      }
    }
  }
  for (float v : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  0.0f, -0.0f, 1e-30f, -1e-30f, 3e38f, -3e38f})
    xs.push_back(v);
  std::size_t bad = 0;
  for (float v : xs) {
    if (nearest_level(v) != best_index_int8(16, kvalues, v)) {
      if (bad++ < 5) WARN("x = " << v << ": " << nearest_level(v) << " vs "
                                 << best_index_int8(16, kvalues, v));
    }
  }
  CHECK(bad == 0);
  CHECK(xs.size() > 70000);
}
