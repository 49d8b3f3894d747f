// SPDX-License-Identifier: MIT
// Error-compensated rounding into the AWQ format (the GPTQ update of Frantar et al., 2022, with
// the group parameters fixed beforehand). Round-to-nearest picks each weight's code on its own;
// here the weights of an output row are rounded one input channel at a time and each rounding
// error is pushed onto the channels not yet rounded, in the direction that keeps the row's output
// x . (w - q) small for inputs x with covariance H = E[x x^T]. With U upper triangular and
// U^T U = H^-1, rounding channel j with error e moves channel k > j by -e U[j][k] / U[j][j]: the
// minimiser of the remaining quadratic error given channels 0..j fixed.
//
// What stays AWQ: each group's fp16 scale and 4-bit zero are computed before the pass, from the
// range of `range_w` (the folded, clipped weights the plain quantizer would see), by
// quantize_group; only the choice of code per weight changes. So the checkpoint is an ordinary
// AutoAWQ GEMM one, and with H = I (nothing to compensate) the codes are round-to-nearest's.
// Channels are visited in input order or, with act_order, by decreasing H[j][j] (the error of the
// most active channels is then spread over the most others); the groups stay those of the
// stored layout either way, which is why the parameters are fixed first.
//
// Everything is plain scalar code in a fixed order (double for the factorisation, float for the
// row updates, rows independent), so the codes do not depend on thread count or CPU backend.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/quant/awq/ref.hpp"

namespace qforge::quant::awq {

struct gptq_factor {
  std::size_t n = 0;
  std::vector<std::size_t> order;  // position p rounds input channel order[p]
  std::vector<float> u;            // [n, n] upper triangular, in `order`'s positions
  std::vector<std::uint8_t> dead;  // per input channel: never active (H[j][j] == 0)
};

namespace detail {

// Runs fn(b, e) over [0, n) in one piece: the default of the `par` arguments below, which a
// caller replaces with a thread pool's parallel_for (every split computes the same values).
struct sequential {
  template <class Fn>
  void operator()(std::size_t n, Fn&& fn) const {
    if (n != 0) fn(std::size_t{0}, n);
  }
};

// sum_k a[k] b[k] in a fixed order: lane k % 8 accumulates in k order, lanes combine as a fixed
// tree. Eight independent chains instead of one (the factorisation is bound by this dot's
// latency otherwise); the order is the source's, whatever the target ISA.
inline double dot_fixed(const double* a, const double* b, std::size_t n) noexcept {
  double l[8] = {};
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (std::size_t t = 0; t < 8; ++t) l[t] += a[k + t] * b[k + t];
  for (std::size_t t = 0; k < n; ++k, ++t) l[t] += a[k] * b[k];
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// Lower-triangular L with L L^T = a ([n, n] row-major, symmetric); false when a is not positive
// definite to working precision. Row by row, L[i][j] = (a[i][j] - sum_k<j L[i][k] L[j][k]) / L[j][j]
// with the sum by dot_fixed; rows go in tiles so that each finished row j is read once per tile
// (the work is memory-bound otherwise), and a tile's rows are independent against the rows above
// it. Tiling and threads change no value.
template <class ForRange>
bool cholesky_lower(std::vector<double>& a, std::size_t n, ForRange&& par) {
  constexpr std::size_t tile = 64;
  const auto entry = [&](std::size_t i, std::size_t j) {
    return a[i * n + j] - dot_fixed(a.data() + i * n, a.data() + j * n, j);
  };
  for (std::size_t i0 = 0; i0 < n; i0 += tile) {
    const std::size_t i1 = std::min(n, i0 + tile);
    par(i1 - i0, [&](std::size_t b, std::size_t e) {
      for (std::size_t j = 0; j < i0; ++j)
        for (std::size_t i = i0 + b; i < i0 + e; ++i) a[i * n + j] = entry(i, j) / a[j * n + j];
    });
    for (std::size_t i = i0; i < i1; ++i)
      for (std::size_t j = i0; j <= i; ++j) {
        const double s = entry(i, j);
        if (j < i) {
          a[i * n + j] = s / a[j * n + j];
        } else {
          if (!(s > 0)) return false;
          a[i * n + i] = std::sqrt(s);
        }
      }
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) a[i * n + j] = 0;
  return true;
}

}  // namespace detail

// The factor for inputs with covariance h ([n, n], row-major, symmetric). damp * mean(diag h) is
// added to the diagonal (GPTQ's dampening: the calibration set cannot pin every direction; 0.01
// is GPTQ's default); when the result is still not positive definite, tenfold more is tried up to
// three times before the error. Channels with H[j][j] == 0 are `dead`. O(n^3 / 3) in double;
// par(count, fn) may spread independent rows over threads.
template <class ForRange = detail::sequential>
gptq_factor factor_inverse_covariance(std::span<const float> h, std::size_t n, double damp,
                                      bool act_order, const std::string& what, ForRange&& par = {}) {
  if (h.size() != n * n)
    throw error(error::kind::argument, cat(what, ": covariance of ", h.size(), " values for ", n, " channels"));
  gptq_factor f;
  f.n = n;
  f.dead.assign(n, 0);
  double mean_diag = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const double d = h[j * n + j];
    if (!std::isfinite(d)) throw error(error::kind::argument, cat(what, ": covariance is not finite"));
    if (d == 0) f.dead[j] = 1;
    mean_diag += d;
  }
  mean_diag = n ? mean_diag / static_cast<double>(n) : 0;
  if (mean_diag <= 0) mean_diag = 1;
  f.order.resize(n);
  std::iota(f.order.begin(), f.order.end(), std::size_t{0});
  if (act_order)
    std::stable_sort(f.order.begin(), f.order.end(),
                     [&](std::size_t a, std::size_t b) { return h[a * n + a] > h[b * n + b]; });

  // A = P H P in round order (dead channels: identity rows). With B = A reversed in both indices
  // and B = L L^T, V = reverse(L) is upper triangular with A = V V^T, so U = V^-1 gives
  // U^T U = A^-1 without forming the inverse.
  double eps = damp;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> b(n * n);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const std::size_t ci = f.order[n - 1 - i], cj = f.order[n - 1 - j];
        double v = (f.dead[ci] || f.dead[cj]) ? (ci == cj ? 1.0 : 0.0) : h[ci * n + cj];
        if (ci == cj) v += eps * mean_diag;
        b[i * n + j] = v;
      }
    if (detail::cholesky_lower(b, n, par)) {
      std::vector<double> v(n * n, 0.0);  // V[k][j] = L[n-1-k][n-1-j], upper triangular
      for (std::size_t k = 0; k < n; ++k)
        for (std::size_t j = k; j < n; ++j) v[k * n + j] = b[(n - 1 - k) * n + (n - 1 - j)];
      b = {};
      // Row i of U from U[i, :] V = e_i, left to right (each entry's sum in k order). Rows are
      // independent; a tile of them shares each row of V while it is in cache.
      f.u.assign(n * n, 0.0f);
      constexpr std::size_t tile = 16;
      par((n + tile - 1) / tile, [&](std::size_t t0, std::size_t t1) {
        std::vector<double> acc(tile * n);
        for (std::size_t t = t0; t < t1; ++t) {
          const std::size_t i0 = t * tile, i1 = std::min(n, i0 + tile);
          std::fill(acc.begin(), acc.end(), 0.0);
          for (std::size_t k = i0; k < n; ++k) {
            const double* vk = v.data() + k * n;
            for (std::size_t i = i0; i < std::min(i1, k + 1); ++i) {
              double* ai = acc.data() + (i - i0) * n;
              const double x = ((k == i ? 1.0 : 0.0) - ai[k]) / vk[k];
              f.u[i * n + k] = static_cast<float>(x);
              for (std::size_t j = k + 1; j < n; ++j) ai[j] += x * vk[j];
            }
          }
        }
      });
      return f;
    }
    if (attempt == 3)
      throw error(error::kind::argument,
                  cat(what, ": the input covariance is not positive definite even with ", eps,
                      " x its mean diagonal added"));
    eps = eps > 0 ? eps * 10 : 1e-4;
  }
}

// Codes of rows [r0, r1) of w ([m.out, m.in], the weights to approximate) by error-compensated
// rounding with m's group parameters (quantize_rows of the range weights first) and the factor f (f.n == m.in).
// Rows are handled in tiles that share each row of U while it is in cache; a row's arithmetic is
// the same whatever tile it falls in.
inline void gptq_rows(const float* w, const gptq_factor& f, quantized_matrix& m, std::size_t r0,
                      std::size_t r1) {
  const std::size_t n = m.in, groups = n / m.group;
  constexpr std::size_t tile = 8;
  std::vector<float> rows(tile * n), err(tile);
  std::vector<group_params> params(tile * groups);
  for (std::size_t t0 = r0; t0 < r1; t0 += tile) {
    const std::size_t nt = std::min(tile, r1 - t0);
    for (std::size_t t = 0; t < nt; ++t) {
      for (std::size_t p = 0; p < n; ++p) {
        const std::size_t c = f.order[p];
        rows[t * n + p] = f.dead[c] ? 0.0f : w[(t0 + t) * n + c];
      }
      for (std::size_t g = 0; g < groups; ++g) params[t * groups + g] = m.params(t0 + t, g);
    }
    for (std::size_t p = 0; p < n; ++p) {
      const std::size_t c = f.order[p];
      const float* up = f.u.data() + p * n;
      for (std::size_t t = 0; t < nt; ++t) {
        const group_params gp = params[t * groups + c / m.group];
        const float v = rows[t * n + p];
        const float code = std::clamp(round_even(half(v / gp.scale)) + static_cast<float>(gp.zero),
                                      0.0f, static_cast<float>(max_q));
        const auto q = static_cast<std::uint8_t>(code);
        m.q[(t0 + t) * n + c] = q;
        err[t] = (v - dequantize_value(q, gp)) / up[p];
      }
      for (std::size_t t = 0; t < nt; ++t) {
        float* r = rows.data() + t * n;
        const float e = err[t];
        for (std::size_t k = p + 1; k < n; ++k) r[k] -= e * up[k];
      }
    }
  }
}

}  // namespace qforge::quant::awq
