// SPDX-License-Identifier: MIT
// Shared scale searches of the K-quants (and the legacy types' weighted paths): qforge's own
// spelling of the helper functions in ggml-quants.c, with ggml's argument order in snake_case. Each
// one must give the bytes ggml-base gives (built for plain x86-64: no FMA, float arithmetic, every
// reduction in source order), so the bodies keep ggml's order of float operations, its int -> float
// conversion points and its comparison forms (`a > b ? a : b` differs from std::max on NaN).
// Translation units using this must be compiled with -ffp-contract=off (no a*b+c fusion). Shared by
// host and CUDA code; no xsimd.
#pragma once
#include <cmath>
#include <cstdint>

#include "qforge/core/config.hpp"
#include "qforge/core/fp16.hpp"

namespace qforge::quant::detail {

// ggml's GROUP_MAX_EPS*: a group whose largest magnitude is below this is treated as all zero.
inline constexpr float group_max_eps = 1e-15f;
inline constexpr float group_max_eps_iq3_xxs = 1e-8f;
inline constexpr float group_max_eps_iq2_s = 1e-8f;
inline constexpr float group_max_eps_iq1_m = 1e-7f;
inline constexpr float group_max_eps_iq1_s = 1e-12f;

// ggml: MIN(a, b) / MAX(a, b) are `a < b ? a : b` / `a > b ? a : b`.
QFORGE_HD inline int imin(int a, int b) noexcept { return a < b ? a : b; }
QFORGE_HD inline int imax(int a, int b) noexcept { return a > b ? a : b; }

// ggml: nearest_int. Adding 1.5 * 2^23 pushes the integer part into the low mantissa bits, so the
// FPU's round-half-to-even does the rounding; valid for |fval| <= 2^22 - 1 (ggml asserts that, we
// keep the same bit arithmetic outside the range so every backend agrees on garbage too).
QFORGE_HD inline int nearest_int(float fval) noexcept {
  const float val = fval + 12582912.0f;
  const std::uint32_t bits = float_bits(val);
  return static_cast<int>(bits & 0x007fffffu) - 0x00400000;
}

// The per-element weight ggml's make_qx_quants picks when no importance weights are given.
QFORGE_HD inline float qx_weight(const float* qw, int rmse_type, const float* x, int i) noexcept {
  if (qw) return qw[i];
  if (rmse_type == 1) return x[i] * x[i];
  if (rmse_type == 2) return 1.0f;
  if (rmse_type == 3) return std::fabs(x[i]);
  return std::sqrt(std::fabs(x[i]));
}

// ggml: make_qx_quants. Symmetric search: L[i] in [0, 2*nmax) (stored offset by nmax), returns the
// scale. rmse_type 0 = plain rounding with d = max / -nmax; < 0 = one weighted refit, then early
// return; otherwise 18 extra candidate scales (nmax + 0.1*is, is = -9..9).
QFORGE_HD inline float make_qx_quants(int n, int nmax, const float* x, std::int8_t* L, int rmse_type,
                                      const float* qw) noexcept {
  float max = 0;
  float amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < group_max_eps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = -fnmax / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      const int l = nearest_int(iscale * x[i]);
      L[i] = static_cast<std::int8_t>(nmax + imax(-nmax, imin(nmax - 1, l)));
    }
    return 1 / iscale;
  }
  bool return_early = false;
  if (rmse_type < 0) {
    rmse_type = -rmse_type;
    return_early = true;
  }
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = imax(-nmax, imin(nmax - 1, l));
    L[i] = static_cast<std::int8_t>(l + nmax);
    const float w = qx_weight(qw, rmse_type, x, i);
    const float fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fnmax + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = imax(-nmax, imin(nmax - 1, l));
      const float w = qx_weight(qw, rmse_type, x, i);
      const float fl = static_cast<float>(l);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<std::int8_t>(nmax + imax(-nmax, imin(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// ggml: make_q3_quants. Symmetric like make_qx_quants, but with do_rmse the refinement moves one
// element at a time (up to 5 sweeps) with x^2 weights. L[i] in [0, 2*nmax).
QFORGE_HD inline float make_q3_quants(int n, int nmax, const float* x, std::int8_t* L,
                                      bool do_rmse) noexcept {
  float max = 0;
  float amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < group_max_eps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -static_cast<float>(nmax) / max;
  if (do_rmse) {
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = imax(-nmax, imin(nmax - 1, l));
      L[i] = static_cast<std::int8_t>(l);
      const float w = x[i] * x[i];
      const float fl = static_cast<float>(l);
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    for (int itry = 0; itry < 5; ++itry) {
      int n_changed = 0;
      for (int i = 0; i < n; ++i) {
        const float w = x[i] * x[i];
        const float li = static_cast<float>(L[i]);
        float slx = sumlx - w * x[i] * li;
        if (slx > 0) {
          float sl2 = suml2 - w * li * li;
          int new_l = nearest_int(x[i] * sl2 / slx);
          new_l = imax(-nmax, imin(nmax - 1, new_l));
          if (new_l != L[i]) {
            const float fl = static_cast<float>(new_l);
            slx += w * x[i] * fl;
            sl2 += w * fl * fl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
              L[i] = static_cast<std::int8_t>(new_l);
              sumlx = slx;
              suml2 = sl2;
              ++n_changed;
            }
          }
        }
      }
      if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
  }
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = imax(-nmax, imin(nmax - 1, l));
    L[i] = static_cast<std::int8_t>(l + nmax);
  }
  return 1 / iscale;
}

// ggml's make_qkx2_quants and make_qkx3_quants, one search: asymmetric (scale and min, L[i] in
// [0, nmax]) with weights (null: w = x^2): start at (max - min) / nmax, then try
// iscale = (rmin + rdelta*is + nmax) / (max - min) for is = 0..nstep, refit scale and min by weighted
// least squares, keep the lowest weighted error (|diff| when use_mad, diff^2 otherwise). Writes -min
// (>= 0) to *the_min; Laux is n bytes scratch. The two differ only in the degenerate-block test:
// max == min (qkx2) or max <= min (qkx3).
QFORGE_HD inline float make_qkx_quants(int n, int nmax, const float* x, const float* weights,
                                       std::uint8_t* L, float* the_min, std::uint8_t* Laux,
                                       float rmin, float rdelta, int nstep, bool use_mad,
                                       bool degenerate_at_or_below) noexcept {
  float min = x[0];
  float max = x[0];
  float sum_w = weights ? weights[0] : x[0] * x[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights ? weights[i] : x[i] * x[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (degenerate_at_or_below ? max <= min : max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = fnmax / (max - min);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<std::uint8_t>(imax(0, imin(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    const float w = weights ? weights[i] : x[i] * x[i];
    best_mad += w * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + fnmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = imax(0, imin(nmax, l));
      Laux[i] = static_cast<std::uint8_t>(l);
      const float w = weights ? weights[i] : x[i] * x[i];
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        const float w = weights ? weights[i] : x[i] * x[i];
        mad += w * diff;
      }
      if (mad < best_mad) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_mad = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

QFORGE_HD inline float make_qkx2_quants(int n, int nmax, const float* x, const float* weights,
                                        std::uint8_t* L, float* the_min, std::uint8_t* Laux,
                                        float rmin, float rdelta, int nstep, bool use_mad) noexcept {
  return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, false);
}

QFORGE_HD inline float make_qkx3_quants(int n, int nmax, const float* x, const float* weights,
                                        std::uint8_t* L, float* the_min, std::uint8_t* Laux,
                                        float rmin, float rdelta, int nstep, bool use_mad) noexcept {
  return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, use_mad, true);
}

// ggml: make_qp_quants. Quantises non-negative values (the sub-block scales or mins of the weighted
// Q2_K/Q4_K/Q5_K paths) to [0, nmax] with importance weights. ggml stores the first rounding into
// uint8_t without a lower clamp and only clamps from above afterwards; negative inputs therefore
// wrap modulo 256 exactly as in C, which we reproduce with the same conversions.
QFORGE_HD inline float make_qp_quants(int n, int nmax, const float* x, std::uint8_t* L,
                                      const float* quant_weights) noexcept {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < group_max_eps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = fnmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    const float w = quant_weights[i];
    best_mse += w * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + fnmax) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale_is * x[i]);
      l = imin(nmax, l);
      const float diff = x[i] - scale_is * static_cast<float>(l);
      const float w = quant_weights[i];
      mse += w * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = imin(nmax, l);
    L[i] = static_cast<std::uint8_t>(l);
    const float w = quant_weights[i];
    const float fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = quant_weights[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      float sl2 = suml2 - w * li * li;
      if (slx > 0 && sl2 > 0) {
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = imin(nmax, new_l);
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<std::uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ggml: get_scale_min_k4. Unpacks sub-block j's 6-bit scale and min from Q4_K/Q5_K's 12 bytes:
// j < 4 in the low 6 bits of bytes j and j+4; j >= 4 split into a nibble of byte j+4 and the top two
// bits of bytes j-4 (scale) and j (min).
QFORGE_HD inline void get_scale_min_k4(int j, const std::uint8_t* q, std::uint8_t* d,
                                       std::uint8_t* m) noexcept {
  if (j < 4) {
    *d = static_cast<std::uint8_t>(q[j] & 63);
    *m = static_cast<std::uint8_t>(q[j + 4] & 63);
  } else {
    *d = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The inverse of get_scale_min_k4 as ggml's Q4_K/Q5_K encoders write it (ls, lm < 64).
QFORGE_HD inline void set_scale_min_k4(int j, std::uint8_t* q, std::uint8_t ls,
                                       std::uint8_t lm) noexcept {
  if (j < 4) {
    q[j] = ls;
    q[j + 4] = lm;
  } else {
    q[j + 4] = static_cast<std::uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    q[j - 4] = static_cast<std::uint8_t>(q[j - 4] | ((ls >> 4) << 6));
    q[j - 0] = static_cast<std::uint8_t>(q[j - 0] | ((lm >> 4) << 6));
  }
}

}  // namespace qforge::quant::detail
