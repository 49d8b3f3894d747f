// SPDX-License-Identifier: MIT
// The scale searches of detail/scale_search.hpp, lane-parallel: each SIMD lane runs one independent
// search (one super-block's sub-block) and repeats the scalar code's float operations in the same
// order, so every lane's result is bit-identical to the scalar function on that lane's data.
// Branches become per-lane selects with the same (ordered) comparisons as the C source, loops with
// a per-lane early exit run their fixed number of passes (a pass that changes nothing leaves the
// state as it was, so the extra passes are no-ops). Inputs and outputs are "lane-major" (SoA):
// element i of every lane is the batch at p + i * W. Levels are kept as exact small floats.
// Needs -ffp-contract=off like every encoder. Used by the q4_k / q5_k / q6_k simd.hpp bodies.
#pragma once
#include <cstddef>
#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "qforge/quant/detail/scale_search.hpp"

namespace qforge::quant::detail::superblock_lanes {

template <class Arch>
using fb = xsimd::batch<float, Arch>;
template <class Arch>
using ib = xsimd::batch<std::int32_t, Arch>;
template <class Arch>
inline constexpr std::size_t width = fb<Arch>::size;

// Independent searches interleaved per call: enough to cover the add/divide latencies, few enough
// that their state stays in registers (AVX-512 and SVE-class targets have 32 of them).
template <class Arch>
inline constexpr int interleave = width<Arch> >= 16 ? 4 : 2;

template <class Arch>
fb<Arch> at(const float* p, int i) noexcept {
  return fb<Arch>::load_aligned(p + static_cast<std::size_t>(i) * width<Arch>);
}
template <class Arch>
void put(float* p, int i, fb<Arch> v) noexcept {
  v.store_aligned(p + static_cast<std::size_t>(i) * width<Arch>);
}

// nearest_int, lane-wise, with the same bit arithmetic (so out-of-range and NaN lanes agree too).
template <class Arch>
ib<Arch> nearest_int(fb<Arch> v) noexcept {
  const auto bits = xsimd::bitwise_cast<ib<Arch>>(v + fb<Arch>(12582912.0f));
  return (bits & ib<Arch>(0x007fffff)) - ib<Arch>(0x00400000);
}

// MAX(lo, MIN(hi, nearest_int(v))) as an exact float.
template <class Arch>
fb<Arch> level(fb<Arch> v, int lo, int hi) noexcept {
  const ib<Arch> l = xsimd::max(ib<Arch>(lo), xsimd::min(ib<Arch>(hi), nearest_int<Arch>(v)));
  return xsimd::batch_cast<float>(l);
}

// -v by flipping the sign bit, as C's unary minus does (0 - v would turn -0 into +0).
template <class Arch>
fb<Arch> negate(fb<Arch> v) noexcept {
  return v ^ fb<Arch>(-0.0f);
}

// make_qkx2_quants (Qkx3 = false) / make_qkx3_quants (Qkx3 = true; w may then be null: x^2), lane-wise,
// on G independent problems at once: problem g reads x, w and writes L, Laux at offset g * n * W
// (consecutive sub-blocks of a lane-major super-block). The searches are chains of dependent adds
// and divisions, so interleaving G of them keeps the FP pipes busy; each problem's own operations
// stay in the scalar order. scale[g] gets the scale, the_min[g] gets -min.
template <class Arch, bool Qkx3, bool UseMad, int G>
void make_qkx_quants(int n, int nmax, const float* x, const float* w, float* L, float* Laux,
                     fb<Arch>* scale, fb<Arch>* the_min, float rmin, float rdelta,
                     int nstep) noexcept {
  using F = fb<Arch>;
  const std::size_t stride = static_cast<std::size_t>(n) * width<Arch>;
  const auto X = [&](int g, int i) { return at<Arch>(x + g * stride, i); };
  const auto wt = [&](int g, int i, F xi) { return w ? at<Arch>(w + g * stride, i) : xi * xi; };
  const auto err = [](F diff) { return UseMad ? xsimd::abs(diff) : diff * diff; };
  F min[G], max[G], sum_w[G], sum_x[G], best_error[G];
  for (int g = 0; g < G; ++g) {
    min[g] = max[g] = X(g, 0);
    sum_w[g] = wt(g, 0, min[g]);
    sum_x[g] = sum_w[g] * min[g];
  }
  for (int i = 1; i < n; ++i) {
    for (int g = 0; g < G; ++g) {
      const F xi = X(g, i);
      min[g] = xsimd::select(xi < min[g], xi, min[g]);
      max[g] = xsimd::select(xi > max[g], xi, max[g]);
      const F wi = wt(g, i, xi);
      sum_w[g] += wi;
      sum_x[g] += wi * xi;
    }
  }
  const F fnmax(static_cast<float>(nmax));
  using mask = decltype(F(0.0f) == F(0.0f));
  mask degenerate[G];  // ggml returns early for these lanes: L = 0, scale 0, -min as it was here
  F min0[G];
  for (int g = 0; g < G; ++g) {
    min[g] = xsimd::select(min[g] > F(0.0f), F(0.0f), min[g]);
    degenerate[g] = Qkx3 ? (max[g] <= min[g]) : (max[g] == min[g]);
    min0[g] = min[g];
    const F iscale = fnmax / (max[g] - min[g]);
    scale[g] = F(1.0f) / iscale;
    best_error[g] = F(0.0f);
    for (int i = 0; i < n; ++i) {
      const F xi = X(g, i);
      const F l = level<Arch>(iscale * (xi - min[g]), 0, nmax);
      put<Arch>(L + g * stride, i, l);
      best_error[g] += wt(g, i, xi) * err(scale[g] * l + min[g] - xi);
    }
  }
  for (int is = 0; nstep >= 1 && is <= nstep; ++is) {
    const float num = rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax);
    F iscale[G], sum_l[G], sum_l2[G], sum_xl[G];
    for (int g = 0; g < G; ++g) {
      iscale[g] = F(num) / (max[g] - min[g]);  // afresh: an accepted candidate moves min
      sum_l[g] = sum_l2[g] = sum_xl[g] = F(0.0f);
    }
    for (int i = 0; i < n; ++i) {
      for (int g = 0; g < G; ++g) {
        const F xi = X(g, i);
        const F l = level<Arch>(iscale[g] * (xi - min[g]), 0, nmax);
        put<Arch>(Laux + g * stride, i, l);
        const F wl = wt(g, i, xi) * l;
        sum_l[g] += wl;
        sum_l2[g] += wl * l;
        sum_xl[g] += wl * xi;
      }
    }
    F D[G], this_scale[G], this_min[G], cur_error[G];
    for (int g = 0; g < G; ++g) {
      D[g] = sum_w[g] * sum_l2[g] - sum_l[g] * sum_l[g];
      this_scale[g] = (sum_w[g] * sum_xl[g] - sum_x[g] * sum_l[g]) / D[g];
      this_min[g] = (sum_l2[g] * sum_x[g] - sum_l[g] * sum_xl[g]) / D[g];
      const auto pos = this_min[g] > F(0.0f);
      this_min[g] = xsimd::select(pos, F(0.0f), this_min[g]);
      this_scale[g] = xsimd::select(pos, sum_xl[g] / sum_l2[g], this_scale[g]);
      cur_error[g] = F(0.0f);
    }
    for (int i = 0; i < n; ++i) {
      for (int g = 0; g < G; ++g) {
        const F xi = X(g, i);
        const F diff = this_scale[g] * at<Arch>(Laux + g * stride, i) + this_min[g] - xi;
        cur_error[g] += wt(g, i, xi) * err(diff);
      }
    }
    for (int g = 0; g < G; ++g) {
      const auto better = (D[g] > F(0.0f)) & (cur_error[g] < best_error[g]);
      if (!xsimd::any(better)) continue;
      float* Lg = L + g * stride;
      const float* Ag = Laux + g * stride;
      for (int i = 0; i < n; ++i)
        put<Arch>(Lg, i, xsimd::select(better, at<Arch>(Ag, i), at<Arch>(Lg, i)));
      best_error[g] = xsimd::select(better, cur_error[g], best_error[g]);
      scale[g] = xsimd::select(better, this_scale[g], scale[g]);
      min[g] = xsimd::select(better, this_min[g], min[g]);
    }
  }
  for (int g = 0; g < G; ++g) {
    the_min[g] = negate<Arch>(xsimd::select(degenerate[g], min0[g], min[g]));
    scale[g] = xsimd::select(degenerate[g], F(0.0f), scale[g]);
    if (!xsimd::any(degenerate[g])) continue;
    float* Lg = L + g * stride;
    for (int i = 0; i < n; ++i)
      put<Arch>(Lg, i, xsimd::select(degenerate[g], F(0.0f), at<Arch>(Lg, i)));
  }
}

// One problem (G = 1), returning the scale.
template <class Arch, bool Qkx3, bool UseMad>
fb<Arch> make_qkx_quants(int n, int nmax, const float* x, const float* w, float* L, float* Laux,
                         fb<Arch>* the_min, float rmin, float rdelta, int nstep) noexcept {
  fb<Arch> scale;
  make_qkx_quants<Arch, Qkx3, UseMad, 1>(n, nmax, x, w, L, Laux, &scale, the_min, rmin, rdelta,
                                         nstep);
  return scale;
}

// make_qp_quants, lane-wise. L receives the uint8 levels (as floats, wrapped modulo 256 like C).
template <class Arch>
fb<Arch> make_qp_quants(int n, int nmax, const float* x, float* L, const float* qw) noexcept {
  using F = fb<Arch>;
  using I = ib<Arch>;
  const auto as_u8 = [](I l) { return xsimd::batch_cast<float>(l & I(0xFF)); };
  F max(0.0f);
  for (int i = 0; i < n; ++i) {
    const F xi = at<Arch>(x, i);
    max = xsimd::select(max > xi, max, xi);
  }
  const auto zero = max < F(group_max_eps);
  const F fnmax(static_cast<float>(nmax));
  F iscale = fnmax / max;
  const F scale = F(1.0f) / iscale;
  F best_mse(0.0f);
  for (int i = 0; i < n; ++i) {
    const F xi = at<Arch>(x, i);
    const F diff = xi - scale * as_u8(nearest_int<Arch>(iscale * xi));
    best_mse += at<Arch>(qw, i) * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const F iscale_is = F(0.1f * static_cast<float>(is) + static_cast<float>(nmax)) / max;
    const F scale_is = F(1.0f) / iscale_is;
    F mse(0.0f);
    for (int i = 0; i < n; ++i) {
      const F xi = at<Arch>(x, i);
      const F l = xsimd::batch_cast<float>(xsimd::min(I(nmax), nearest_int<Arch>(iscale_is * xi)));
      const F diff = xi - scale_is * l;
      mse += at<Arch>(qw, i) * diff * diff;
    }
    const auto better = mse < best_mse;
    best_mse = xsimd::select(better, mse, best_mse);
    iscale = xsimd::select(better, iscale_is, iscale);
  }
  F sumlx(0.0f), suml2(0.0f);
  for (int i = 0; i < n; ++i) {
    const F xi = at<Arch>(x, i);
    const I l = xsimd::min(I(nmax), nearest_int<Arch>(iscale * xi));
    put<Arch>(L, i, as_u8(l));
    const F fl = xsimd::batch_cast<float>(l);
    const F w = at<Arch>(qw, i);
    sumlx += w * xi * fl;
    suml2 += w * fl * fl;
  }
  for (int itry = 0; itry < 5; ++itry) {
    auto changed = F(0.0f) != F(0.0f);
    for (int i = 0; i < n; ++i) {
      const F w = at<Arch>(qw, i);
      const F xi = at<Arch>(x, i);
      const F li = at<Arch>(L, i);
      F slx = sumlx - w * xi * li;
      F sl2 = suml2 - w * li * li;
      const auto ok = (slx > F(0.0f)) & (sl2 > F(0.0f));
      const I new_l = xsimd::min(I(nmax), nearest_int<Arch>(xi * sl2 / slx));
      const F fl = xsimd::batch_cast<float>(new_l);
      slx += w * xi * fl;
      sl2 += w * fl * fl;
      const auto take = ok & (fl != li) & (slx * slx * suml2 > sumlx * sumlx * sl2);
      put<Arch>(L, i, xsimd::select(take, as_u8(new_l), li));
      sumlx = xsimd::select(take, slx, sumlx);
      suml2 = xsimd::select(take, sl2, suml2);
      changed = changed | take;
    }
    if (!xsimd::any(changed)) break;
  }
  if (xsimd::any(zero))
    for (int i = 0; i < n; ++i) put<Arch>(L, i, xsimd::select(zero, F(0.0f), at<Arch>(L, i)));
  const F r = xsimd::select(suml2 > F(0.0f), sumlx / suml2, F(0.0f));
  return xsimd::select(zero, F(0.0f), r);
}

// make_qx_quants with rmse_type 1 (the only form the K-quants use), lane-wise, on G independent
// problems at offsets g * n * W (as make_qkx_quants above): weights qw, or x^2 when qw is null.
// L receives the offset levels (l + nmax) as floats; Ltmp is G * n batches of scratch.
template <class Arch, int G>
void make_qx_quants_rmse1(int n, int nmax, const float* x, float* L, const float* qw, float* Ltmp,
                          fb<Arch>* scale) noexcept {
  using F = fb<Arch>;
  const std::size_t stride = static_cast<std::size_t>(n) * width<Arch>;
  const auto X = [&](int g, int i) { return at<Arch>(x + g * stride, i); };
  const auto wt = [&](int g, int i, F xi) { return qw ? at<Arch>(qw + g * stride, i) : xi * xi; };
  const F fnmax(static_cast<float>(nmax));
  F max[G], amax[G], sumlx[G], suml2[G], best[G];
  for (int g = 0; g < G; ++g) max[g] = amax[g] = F(0.0f);
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < G; ++g) {
      const F xi = X(g, i);
      const F ax = xsimd::abs(xi);
      const auto bigger = ax > amax[g];
      amax[g] = xsimd::select(bigger, ax, amax[g]);
      max[g] = xsimd::select(bigger, xi, max[g]);
    }
  }
  for (int g = 0; g < G; ++g) {
    const F iscale = F(-static_cast<float>(nmax)) / max[g];
    sumlx[g] = suml2[g] = F(0.0f);
    for (int i = 0; i < n; ++i) {
      const F xi = X(g, i);
      const F l = level<Arch>(iscale * xi, -nmax, nmax - 1);
      put<Arch>(L + g * stride, i, l + fnmax);
      const F w = wt(g, i, xi);
      sumlx[g] += w * xi * l;
      suml2[g] += w * l * l;
    }
    scale[g] = xsimd::select(suml2[g] == F(0.0f), F(0.0f), sumlx[g] / suml2[g]);
    best[g] = scale[g] * sumlx[g];
  }
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float num = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is));
    F iscale[G];
    for (int g = 0; g < G; ++g) {
      iscale[g] = F(num) / max[g];
      sumlx[g] = suml2[g] = F(0.0f);
    }
    for (int i = 0; i < n; ++i) {
      for (int g = 0; g < G; ++g) {
        const F xi = X(g, i);
        const F l = level<Arch>(iscale[g] * xi, -nmax, nmax - 1);
        put<Arch>(Ltmp + g * stride, i, l);
        const F w = wt(g, i, xi);
        sumlx[g] += w * xi * l;
        suml2[g] += w * l * l;
      }
    }
    for (int g = 0; g < G; ++g) {
      const auto better = (suml2[g] > F(0.0f)) & (sumlx[g] * sumlx[g] > best[g] * suml2[g]);
      if (!xsimd::any(better)) continue;
      float* Lg = L + g * stride;
      const float* Tg = Ltmp + g * stride;
      for (int i = 0; i < n; ++i)
        put<Arch>(Lg, i, xsimd::select(better, at<Arch>(Tg, i) + fnmax, at<Arch>(Lg, i)));
      const F new_scale = sumlx[g] / suml2[g];
      scale[g] = xsimd::select(better, new_scale, scale[g]);
      best[g] = xsimd::select(better, new_scale * sumlx[g], best[g]);
    }
  }
  for (int g = 0; g < G; ++g) {
    const auto zero = amax[g] < F(group_max_eps);
    scale[g] = xsimd::select(zero, F(0.0f), scale[g]);
    if (!xsimd::any(zero)) continue;
    float* Lg = L + g * stride;
    for (int i = 0; i < n; ++i) put<Arch>(Lg, i, xsimd::select(zero, F(0.0f), at<Arch>(Lg, i)));
  }
}

// One problem (G = 1), returning the scale.
template <class Arch>
fb<Arch> make_qx_quants_rmse1(int n, int nmax, const float* x, float* L, const float* qw,
                              float* Ltmp) noexcept {
  fb<Arch> scale;
  make_qx_quants_rmse1<Arch, 1>(n, nmax, x, L, qw, Ltmp, &scale);
  return scale;
}

// Lane-major copy of `lanes` blocks of n floats (block k at src + k * stride); lanes beyond
// `used` repeat the last used block, so every lane computes on real data.
template <class Arch>
void to_lanes(const float* src, std::size_t stride, std::size_t used, int n, float* out) noexcept {
  constexpr std::size_t W = width<Arch>;
  for (std::size_t k = 0; k < W; ++k) {
    const float* s = src + (k < used ? k : used - 1) * stride;
    for (int e = 0; e < n; ++e) out[static_cast<std::size_t>(e) * W + k] = s[e];
  }
}

}  // namespace qforge::quant::detail::superblock_lanes
