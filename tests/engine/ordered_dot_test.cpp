// SPDX-License-Identifier: MIT
// The ordered float dot product and matrix product (engine/ordered_dot.hpp, the spec;
// ordered_dot_simd.hpp, one body per ISA) on every compiled engine table: each gives the scalar
// reference's bits, on tiny-llama's own weights and embeddings and on lengths around the 16 lanes
// (0, 1, 15, 16, 17, 255, 4097), with odd strides and every tile remainder; engine::matmul_ordered
// gives them too on 1, 2 and 3 threads. Hand-made inputs pin the spec itself: which lane an element
// goes to, the pairwise tree, and the single rounding of a fused multiply-add. This is what keeps
// `qforge awq` byte-identical across backends (tests/reliability/determinism_test.py: the CLI).
#include "qforge/engine/ordered_dot.hpp"

#include <catch2/catch.hpp>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "qforge/engine/kernels.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace {

using namespace qforge;
namespace od = engine::ordered;

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

std::vector<std::uint32_t> bits(const std::vector<float>& v) {
  std::vector<std::uint32_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = bits(v[i]);
  return b;
}

struct fixture {
  std::vector<float> w;    // model.layers.0.mlp.down_proj.weight [256, 768]
  std::vector<float> x;    // embedding rows [4096, 256]
  std::vector<float> qkv;  // model.layers.1.self_attn.q_proj.weight [256, 256]
};

const fixture& tiny() {
  static const fixture f = [] {
    const format::safetensors::checkpoint c(std::string(QFORGE_FIXTURES) + "/models/tiny-llama");
    return fixture{c.view("model.layers.0.mlp.down_proj.weight").to_f32(),
                   c.view("model.embed_tokens.weight").to_f32(),
                   c.view("model.layers.1.self_attn.q_proj.weight").to_f32()};
  }();
  return f;
}

double dot_double(const float* a, const float* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += double{a[i]} * b[i];
  return s;
}

}  // namespace

TEST_CASE("ordered dot: the spec's lanes, tree and fused rounding", "[ordered][engine]") {
  // Element 16 joins element 0 in lane 0, so 1e8 and -1e8 cancel before the 1 of lane 1 is added:
  // a sequential float sum would lose the 1 into 1e8 and return 0.
  std::vector<float> w(17, 1.0f), x(17, 0.0f);
  x[0] = 1e8f, x[1] = 1.0f, x[16] = -1e8f;
  CHECK(od::dot_ref(w.data(), x.data(), 17) == 1.0f);
  // The tree pairs lane j with lane j + 8 first: 1e8 (lane 0) meets -1e8 (lane 8) before lane 1.
  std::vector<float> x2(16, 0.0f);
  x2[0] = 1e8f, x2[1] = 1.0f, x2[8] = -1e8f;
  CHECK(od::dot_ref(w.data(), x2.data(), 16) == 1.0f);
  // Fused: a * a = 1 + 2^-11 + 2^-24 exactly; rounded once after adding -(1 + 2^-11) it leaves
  // 2^-24, where a separate multiply would round the product first and leave 0.
  const float a = 1.0f + std::ldexp(1.0f, -12);
  std::vector<float> w3(17, 0.0f), x3(17, 0.0f);
  w3[0] = 1.0f, x3[0] = -(1.0f + std::ldexp(1.0f, -11));
  w3[16] = a, x3[16] = a;
  CHECK(od::dot_ref(w3.data(), x3.data(), 17) == std::ldexp(1.0f, -24));
  CHECK(bits(od::dot_ref(w.data(), x.data(), 0)) == 0u);  // +0

  for (const engine::ops* t : engine::runnable_ops()) {
    INFO(t->name);
    CHECK(t->dot_f32_ordered(w.data(), x.data(), 17) == 1.0f);
    CHECK(t->dot_f32_ordered(w.data(), x2.data(), 16) == 1.0f);
    CHECK(t->dot_f32_ordered(w3.data(), x3.data(), 17) == std::ldexp(1.0f, -24));
    CHECK(bits(t->dot_f32_ordered(w.data(), x.data(), 0)) == 0u);
  }
}

TEST_CASE("ordered dot: every backend gives the reference's bits on tiny-llama",
          "[ordered][engine]") {
  const auto& f = tiny();
  REQUIRE(f.w.size() == 256u * 768u);
  // Lengths around the lane count and the vector widths, and one past a long multiple (4097);
  // offsets so that rows start unaligned.
  const std::size_t lengths[] = {0, 1, 3, 8, 15, 16, 17, 31, 33, 64, 255, 256, 768, 4097};
  for (const engine::ops* t : engine::runnable_ops()) {
    INFO(t->name);
    for (const std::size_t n : lengths)
      for (const std::size_t off : {std::size_t{0}, std::size_t{1}, std::size_t{5}}) {
        INFO("n " << n << ", offset " << off);
        const float* a = f.w.data() + 3 * 768 + off;
        const float* b = f.x.data() + 100 * 256 + 7 * off;
        const float want = od::dot_ref(a, b, n);
        CHECK(bits(t->dot_f32_ordered(a, b, n)) == bits(want));
        // And it is a dot product: within the rounding bound of n / 16 fused steps per lane plus
        // the 4 levels of the tree, relative to the sum of |terms|.
        double mag = 0;
        for (std::size_t i = 0; i < n; ++i) mag += std::fabs(double{a[i]} * b[i]);
        const double steps = static_cast<double>((n + 15) / 16 + 4);
        CHECK(std::fabs(want - dot_double(a, b, n)) <= steps * std::ldexp(1.0, -24) * mag);
      }
  }
}

TEST_CASE("ordered gemm: every backend, tile and stride gives the reference's bits",
          "[ordered][engine]") {
  const auto& f = tiny();
  // Rows and tokens past every tile shape (4 x 4, 2 x 3, 2 x 2 and their remainders); leading
  // dimensions larger than n; outputs interleaved in y with ldy > rows.
  for (const std::size_t n : {1u, 15u, 17u, 64u, 255u, 768u}) {
    for (const std::size_t rows : {1u, 2u, 3u, 4u, 5u, 9u}) {
      for (const std::size_t tokens : {1u, 2u, 3u, 4u, 5u, 7u}) {
        INFO("n " << n << ", rows " << rows << ", tokens " << tokens);
        // Rows of down_proj, unaligned; activations from the embedding at a stride that is no
        // multiple of 16 (rows may overlap: they are only read).
        const std::size_t ldw = 768, ldx = 259, ldy = rows + 2;
        const float* w = f.w.data() + 1;
        const float* x = f.x.data() + 11;
        std::vector<float> want(tokens * ldy, -7.0f);
        od::gemm_ref(w, ldw, rows, x, ldx, tokens, n, want.data(), ldy);
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t t = 0; t < tokens; ++t)
            REQUIRE(bits(want[t * ldy + r]) ==
                    bits(od::dot_ref(w + r * ldw, x + t * ldx, n)));
        for (const engine::ops* tb : engine::runnable_ops()) {
          INFO(tb->name);
          std::vector<float> got(tokens * ldy, -7.0f);  // padding must stay untouched
          tb->gemm_ordered(w, ldw, rows, x, ldx, tokens, n, got.data(), ldy);
          CHECK(bits(got) == bits(want));
        }
      }
    }
  }
}

TEST_CASE("matmul_ordered: the reference's bits on any thread count", "[ordered][engine]") {
  const auto& f = tiny();
  // q_proj [256, 256] times 37 embedding rows, and down_proj [256, 768] times 768-wide rows.
  struct product {
    const float* w;
    std::size_t rows, cols;
  };
  for (const product p : {product{f.qkv.data(), 256, 256}, product{f.w.data(), 256, 768}}) {
    const std::size_t tokens = 37;
    std::vector<float> want(tokens * p.rows);
    od::gemm_ref(p.w, p.cols, p.rows, f.x.data(), p.cols, tokens, p.cols, want.data(), p.rows);
    for (const int threads : {1, 2, 3}) {
      INFO(threads << " threads, cols " << p.cols);
      engine::thread_pool pool(threads);
      std::vector<float> got(tokens * p.rows);
      engine::matmul_ordered(p.w, p.rows, p.cols, f.x.data(), p.cols, tokens, got.data(), p.rows,
                             pool);
      CHECK(bits(got) == bits(want));
    }
  }
}
