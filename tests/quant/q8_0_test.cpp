// SPDX-License-Identifier: MIT
// Q8_0: ggml's golden bytes and floats for the reference and every compiled backend, every backend
// against the reference on generated and real weights, thread-count independence, the validation of
// encode_rows / row_bytes, and the backend registry and QFORGE_BACKEND handling.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/encode.hpp"
#include "qforge/quant/q8_0/ref.hpp"
#include "quant/testdata.hpp"

using namespace qforge;
using quant::block_q8_0;
using quant::qtype;

namespace {

const std::string golden_path = std::string(QFORGE_FIXTURES) + "/golden/ggml/q8_0.safetensors";
const std::string model_path =
    std::string(QFORGE_FIXTURES) + "/models/small-llama/model.safetensors";

std::vector<std::uint8_t> as_bytes(const std::vector<block_q8_0>& b) {
  std::vector<std::uint8_t> out(b.size() * sizeof(block_q8_0));
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

std::vector<std::uint8_t> encode_with(const backend::kernel_table& k, std::span<const float> x) {
  std::vector<block_q8_0> y(x.size() / quant::qk8_0);
  backend::encode_with<quant::q8_0::family>(k, x, y);
  return as_bytes(y);
}

std::vector<std::uint8_t> encode_ref(std::span<const float> x) {
  std::vector<block_q8_0> y(x.size() / quant::qk8_0);
  quant::q8_0::encode_ref(x, y);
  return as_bytes(y);
}

std::vector<float> decode_with(const backend::kernel_table& k, std::span<const std::uint8_t> q) {
  std::vector<block_q8_0> blocks(q.size() / sizeof(block_q8_0));
  std::memcpy(blocks.data(), q.data(), q.size());
  std::vector<float> y(blocks.size() * quant::qk8_0);
  backend::decode_with<quant::q8_0::family>(k, blocks, y);
  return y;
}

// "" when equal, else where the first difference is (Catch would print whole vectors).
std::string diff(const std::vector<std::uint8_t>& got, const std::vector<std::uint8_t>& want) {
  if (got.size() != want.size()) return cat("size ", got.size(), " != ", want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return cat("byte ", i, " (block ", i / sizeof(block_q8_0), ", offset ", i % sizeof(block_q8_0),
                 "): ", int(got[i]), " != ", int(want[i]));
  return "";
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
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
  std::vector<float> input, dequant;
  std::vector<std::uint8_t> quant;
};

std::vector<golden_case> golden_cases() {
  const format::safetensors::file f(golden_path);
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
    g.dequant = f.view(c + ".dequant").to_f32();
    g.quant = u8(f.view(c + ".quant").bytes());
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace

TEST_CASE("q8_0: golden file has the cases the tests expect", "[q8_0][golden]") {
  const auto cases = golden_cases();
  REQUIRE(cases.size() == 14);
  for (const auto& g : cases) {
    INFO(g.name);
    CHECK(g.quant.size() == g.rows * quant::row_bytes(qtype::q8_0, static_cast<std::int64_t>(g.cols)));
  }
}

TEST_CASE("q8_0: reference encoder writes ggml's golden bytes", "[q8_0][golden][scalar]") {
  for (const auto& g : golden_cases()) {
    INFO(g.name);
    CHECK(diff(encode_ref(g.input), g.quant) == "");
  }
}

TEST_CASE("q8_0: every CPU backend writes ggml's golden bytes", "[q8_0][golden][backend]") {
  const auto cases = golden_cases();
  for (const auto* b : runnable_cpu()) {
    for (const auto& g : cases) {
      INFO(b->name() << ": " << g.name);
      CHECK(diff(encode_with(*b->kernels(), g.input), g.quant) == "");
    }
  }
}

TEST_CASE("q8_0: every CPU backend decodes to ggml's golden floats bit for bit",
          "[q8_0][golden][backend]") {
  const auto cases = golden_cases();
  for (const auto* b : runnable_cpu()) {
    for (const auto& g : cases) {
      INFO(b->name() << ": " << g.name);
      CHECK(same_bits(decode_with(*b->kernels(), g.quant), g.dequant));
    }
  }
}

TEST_CASE("q8_0: encode_rows / decode_rows on the goldens, every backend incl. cuda",
          "[q8_0][golden][backend]") {
  const auto cases = golden_cases();
  for (const auto& b : backend::compiled()) {
    if (!b.available()) {
      WARN("not run: " << b.name() << " (not usable on this machine)");
      continue;
    }
    for (const auto& g : cases) {
      INFO(b.name() << ": " << g.name);
      std::vector<std::byte> dst(g.quant.size());
      quant::encode_rows(b, qtype::q8_0, g.input, static_cast<std::int64_t>(g.rows),
                         static_cast<std::int64_t>(g.cols), dst, 3);
      CHECK(diff(u8(dst), g.quant) == "");
    }
  }
  for (const auto& g : cases) {
    INFO(g.name);
    std::vector<float> y(g.rows * g.cols);
    quant::decode_rows(qtype::q8_0, std::as_bytes(std::span(g.quant)),
                       static_cast<std::int64_t>(g.rows), static_cast<std::int64_t>(g.cols), y);
    CHECK(same_bits(y, g.dequant));
  }
}

TEST_CASE("q8_0: each backend writes the reference bytes on generated data", "[q8_0][backend]") {
  // Edge sizes: one block, odd row counts around 128, NaN/inf/subnormal inputs, rounding ties.
  const std::size_t shapes[][2] = {{1, 32}, {3, 96}, {127, 64}, {128, 32}, {129, 160}, {37, 512}};
  for (const auto* b : runnable_cpu()) {
    for (const auto& s : shapes) {
      for (const auto k : testdata::all_kinds) {
        const auto x = testdata::generate(k, s[0], s[1], 7 + s[0]);
        INFO(b->name() << ": " << testdata::name(k) << " " << s[0] << "x" << s[1]);
        const auto want = encode_ref(x);
        CHECK(diff(encode_with(*b->kernels(), x), want) == "");
        // Decoders agree too (NaN payloads included: compare bits).
        const auto scalar = backend::find(backend::id::scalar);
        REQUIRE(scalar != nullptr);
        CHECK(same_bits(decode_with(*b->kernels(), want), decode_with(*scalar->kernels(), want)));
      }
    }
    const auto mixed = testdata::weights(37, 512, 7);
    INFO(b->name() << ": weights(37, 512)");
    CHECK(diff(encode_with(*b->kernels(), mixed), encode_ref(mixed)) == "");
  }
}

TEST_CASE("q8_0: reference rounds half away from zero and keeps float d for qs", "[q8_0][scalar]") {
  // amax = 127 gives d = 1 exactly: x * id = x, so the ties are exact.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 1.49999988f;
  std::vector<block_q8_0> y(1);
  quant::q8_0::encode_ref(x, y);
  CHECK(y[0].d == 0x3c00);  // fp16 1.0
  CHECK(y[0].qs[0] == 127);
  CHECK(y[0].qs[1] == 3);
  CHECK(y[0].qs[2] == -3);
  CHECK(y[0].qs[3] == 1);
  CHECK(y[0].qs[4] == -1);
  CHECK(y[0].qs[5] == 1);
  // A block whose d underflows fp16 still carries qs from the float d.
  std::vector<float> tiny(32, 1e-9f);
  tiny[7] = -2e-9f;
  quant::q8_0::encode_ref(tiny, y);
  CHECK(y[0].d == 0);
  CHECK(y[0].qs[7] == -127);
  CHECK((y[0].qs[0] == 63 || y[0].qs[0] == 64));  // about half of the block max
}

TEST_CASE("q8_0: each backend writes the reference bytes on small-llama weights",
          "[q8_0][backend][real]") {
  const format::safetensors::file model(model_path);
  const char* names[] = {"model.layers.0.self_attn.q_proj.weight",
                         "model.layers.0.mlp.down_proj.weight",
                         "model.layers.5.mlp.gate_proj.weight", "model.embed_tokens.weight"};
  for (const char* n : names) {
    const auto v = model.view(n);
    const auto x = v.to_f32();
    const auto want = encode_ref(x);
    for (const auto* b : runnable_cpu()) {
      INFO(b->name() << ": " << n);
      CHECK(diff(encode_with(*b->kernels(), x), want) == "");
    }
    // Round trip: Q8_0 keeps every weight within about half a step of its block's scale.
    const auto scalar = backend::find(backend::id::scalar);
    const auto y = decode_with(*scalar->kernels(), want);
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
      ref += double(x[i]) * x[i];
    }
    INFO(n << ": relative rms error " << std::sqrt(err / ref));
    CHECK(std::sqrt(err / ref) < 0.01);
  }
}

TEST_CASE("q8_0: encode_rows output does not depend on the thread count", "[q8_0][threads]") {
  const std::size_t rows = 301, cols = 1024;
  const auto x = testdata::weights(rows, cols, 11);
  const std::size_t bytes = rows * quant::row_bytes(qtype::q8_0, cols);
  std::vector<std::byte> first(bytes);
  quant::encode_rows(qtype::q8_0, x, rows, cols, first, 1);
  CHECK(diff(u8(first), encode_ref(x)) == "");
  for (int t : {0, 2, 3, 7, 16, 301, 1000}) {
    INFO("threads " << t);
    std::vector<std::byte> out(bytes, std::byte{0xAA});
    quant::encode_rows(qtype::q8_0, x, rows, cols, out, t);
    CHECK(diff(u8(out), u8(first)) == "");
    std::vector<float> y(rows * cols), y1(rows * cols);
    quant::decode_rows(qtype::q8_0, out, rows, cols, y, t);
    quant::decode_rows(qtype::q8_0, out, rows, cols, y1, 1);
    CHECK(same_bits(y, y1));
  }
}

TEST_CASE("q8_0: encode_rows and row_bytes validate their arguments", "[q8_0][errors]") {
  using kind = error::kind;
  auto kind_of = [](auto&& f) -> std::optional<kind> {
    try {
      f();
    } catch (const error& e) {
      return e.which();
    }
    return std::nullopt;
  };
  std::vector<float> x(4 * 64, 0.5f);
  std::vector<std::byte> dst(4 * 68 + 1);
  const std::span<std::byte> good(dst.data(), 4 * 68);

  CHECK(quant::row_bytes(qtype::q8_0, 4096) == 4352);
  CHECK(quant::row_bytes(qtype::q4_k, 512) == 288);
  CHECK(quant::row_bytes(qtype::f16, 3) == 6);
  CHECK(kind_of([] { (void)quant::row_bytes(qtype::q8_0, 100); }) == kind::argument);
  CHECK(kind_of([] { (void)quant::row_bytes(qtype::q8_0, -32); }) == kind::argument);
  CHECK(kind_of([] { (void)quant::row_bytes(static_cast<qtype>(4), 32); }) == kind::unsupported);

  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, x, 4, 64, good); }) == std::nullopt);
  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, x, 8, 32, dst); }) == kind::argument);
  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, x, 4, 64, dst); }) == kind::argument);
  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, x, 3, 64, good); }) == kind::argument);
  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, x, -4, -64, good); }) == kind::argument);
  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, std::span(x).first(4 * 48), 4, 48,
                                         std::span(dst).first(4 * 51)); }) == kind::argument);
  // Blocks hold a uint16 scale: an odd address is refused rather than written misaligned.
  CHECK(kind_of([&] { quant::encode_rows(qtype::q8_0, x, 4, 64, std::span(dst).subspan(1)); }) ==
        kind::argument);
  CHECK(kind_of([&] { quant::encode_rows(qtype::iq2_xxs, x, 1, 256, good); }) == kind::unsupported);
  CHECK(kind_of([&] { quant::encode_rows(qtype::f16, x, 4, 64, good); }) == kind::unsupported);
  CHECK(quant::can_encode(qtype::q8_0));
  CHECK_FALSE(quant::can_encode(qtype::iq2_xxs));

  try {
    quant::encode_rows(qtype::q8_0, std::span(x).first(4 * 48), 4, 48,
                       std::span(dst).first(4 * 51));
  } catch (const error& e) {
    CHECK_THAT(e.what(), Catch::Contains("48") && Catch::Contains("32-value block"));
  }
  // Nothing to do is not an error.
  CHECK(kind_of([] { quant::encode_rows(qtype::q8_0, {}, 0, 64, {}); }) == std::nullopt);
}

TEST_CASE("backend: registry, names and QFORGE_BACKEND", "[backend][dispatch]") {
  const auto list = backend::compiled();
  REQUIRE(!list.empty());
  CHECK(list.front().which() == backend::id::scalar);
  CHECK(list.front().available());
  for (const auto& b : list) {
    CHECK(backend::parse(b.name()) == b.which());
    CHECK(backend::find(b.which()) == &b);
    if (b.which() != backend::id::cuda) CHECK(b.kernels() != nullptr);
    if (b.kernels() != nullptr) CHECK(b.kernels()->which == b.which());
  }
#if defined(__x86_64__) && defined(QFORGE_HAVE_KERNELS)
  CHECK(backend::find(backend::id::avx2) != nullptr);
  CHECK(backend::find(backend::id::avx512) != nullptr);
#endif
  CHECK_FALSE(backend::parse("sse2").has_value());

  // With no override the choice is the last (fastest) available CPU backend.
  const auto& best = backend::pick(list, std::nullopt);
  CHECK(best.available());
  for (const auto& b : list)
    if (b.available() && b.kernels() != nullptr) CHECK(b.which() <= best.which());
  CHECK(&backend::pick(list, backend::id::scalar) == &list.front());
  for (const auto& b : list) {
    if (b.available()) continue;
    try {
      (void)backend::pick(list, b.which());
      FAIL("picked an unusable backend");
    } catch (const error& e) {
      CHECK(e.which() == error::kind::unsupported);
    }
  }
  // The environment is read by backend_override(); selected() caches its first answer.
  const char* saved = std::getenv("QFORGE_BACKEND");
  const std::string saved_value = saved ? saved : "";
  ::setenv("QFORGE_BACKEND", "bogus", 1);
  CHECK_THROWS_AS(backend::backend_override(), error);
  ::setenv("QFORGE_BACKEND", "scalar", 1);
  CHECK(backend::backend_override() == backend::id::scalar);
  ::setenv("QFORGE_BACKEND", "", 1);
  CHECK_FALSE(backend::backend_override().has_value());
  if (saved) ::setenv("QFORGE_BACKEND", saved_value.c_str(), 1);
  else ::unsetenv("QFORGE_BACKEND");
  CHECK(backend::selected().available());
  INFO("selected: " << backend::selected().name());
  CHECK(backend::cpu_kernels()[quant::qtype::q8_0].encode != nullptr);
}
