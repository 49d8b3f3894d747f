// SPDX-License-Identifier: MIT
// The forward pass's attention and SwiGLU kernels (ops::attend, ops::swiglu in engine/kernels.hpp)
// on every engine table this build has and this CPU runs, against plain double-precision loops:
// grouped heads (1-3 query heads per key/value head), head sizes with and without a partial
// vector, position counts around the kernel's four-position step, rows at a stride wider than a
// head (as in the KV cache). Their exp is an approximation (a few ulp), so the checks are bounds,
// not equality; the end-to-end logits are checked in forward_test.cpp.
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "qforge/engine/kernels.hpp"
#include "quant/testdata.hpp"

namespace {

using namespace qforge;

}  // namespace

TEST_CASE("attention kernel: every table matches the plain softmax-weighted sum",
          "[engine][attention]") {
  testdata::rng r(11);
  for (std::size_t d : {64u, 40u})
    for (std::size_t heads : {1u, 2u, 3u})
      for (std::size_t n : {1u, 3u, 4u, 5u, 9u, 37u}) {
        const std::size_t ld = 3 * d;  // rows of a wider cache, the head at offset d
        std::vector<float> q(heads * d), kc(n * ld), vc(n * ld);
        for (auto& x : q) x = r.normal();
        for (auto& x : kc) x = r.normal() * 2;  // wide scores: the softmax is far from flat
        for (auto& x : vc) x = r.normal();
        const float scale = 1.0f / std::sqrt(static_cast<float>(d));
        std::vector<double> want(heads * d, 0.0), mag(heads * d, 0.0);
        for (std::size_t h = 0; h < heads; ++h) {
          std::vector<double> s(n);
          double mx = -1e300, sum = 0;
          for (std::size_t j = 0; j < n; ++j) {
            for (std::size_t i = 0; i < d; ++i) s[j] += double{q[h * d + i]} * kc[j * ld + d + i];
            s[j] *= scale;
            mx = std::max(mx, s[j]);
          }
          for (auto& x : s) sum += (x = std::exp(x - mx));
          for (std::size_t j = 0; j < n; ++j)
            for (std::size_t i = 0; i < d; ++i) {
              want[h * d + i] += s[j] / sum * vc[j * ld + d + i];
              mag[h * d + i] += s[j] / sum * std::fabs(vc[j * ld + d + i]);
            }
        }
        for (const engine::ops* tb : engine::runnable_ops()) {
          INFO(tb->name << ": d " << d << ", heads " << heads << ", n " << n);
          std::vector<float> scores(heads * n), out(heads * d, -1.0f);
          tb->attend(q.data(), heads, kc.data() + d, vc.data() + d, ld, n, d, scale,
                       scores.data(), out.data());
          for (std::size_t i = 0; i < heads * d; ++i)
            CHECK(std::fabs(out[i] - want[i]) <= 1e-5 * mag[i] + 1e-6);
        }
      }
}

TEST_CASE("swiglu kernel: every table gives silu(g) * u within a few ulp", "[engine][attention]") {
  std::vector<float> g, u;
  testdata::rng r(12);
  for (float x = -90.0f; x <= 90.0f; x += 0.0137f) g.push_back(x), u.push_back(r.normal());
  g.push_back(0.0f), u.push_back(1.0f);  // an odd count: the scalar tail
  for (const engine::ops* tb : engine::runnable_ops()) {
    INFO(tb->name);
    std::vector<float> y = g;
    tb->swiglu(y.data(), u.data(), y.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
      const double want = double{g[i]} / (1.0 + std::exp(-double{g[i]})) * u[i];
      INFO("g " << g[i]);
      CHECK(std::fabs(y[i] - want) <= 1e-6 * std::fabs(want) + 1e-30);
    }
  }
}
