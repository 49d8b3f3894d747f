// SPDX-License-Identifier: MIT
// AWQ's quantizer (quant/awq/ref.hpp) and clip search (quant/awq/search.hpp clip_row) on the
// device, bit for bit with the CPU: the checkpoint the CUDA search writes must be the CPU's, and a
// fake-quantized weight that differs in one bit changes the losses the scale search compares.
// Every float operation below is the single IEEE operation the C++ performs, spelled with the
// round-to-nearest intrinsics so that neither contraction (the build uses --fmad=false as well) nor
// fast-math flags can change it; half() is one hardware fp32 -> fp16 -> fp32 round trip, which is
// round-to-nearest-even with subnormals like qforge::fp32_to_fp16. std::max / std::min / std::clamp
// are written as the same comparisons libstdc++ makes (first argument kept on ties and NaN).
// The clip search's error d^T C d follows the engine's ordered dot (engine/ordered_dot.hpp: 16
// lanes fed by fused multiply-adds in increasing index, then a fixed pairwise tree), which is what
// the CPU's dot_f32_ordered / gemm_ordered compute on every ISA, so the errors and hence the
// chosen thresholds are the CPU's bits too. Only non-finite weights may differ: NaN payloads
// (the GPU's NaN is canonical), never a finite result (the fp16 guard keeps the search finite).
// Layout: one warp per (row, group); lane l holds the group's elements l, l + 32, ... (E = group /
// 32 of them), so loads are coalesced. Max / min / |max| are reduced across lanes as trees, which
// is exact: they are order-free once NaNs are handled as the sequential loop does (below).
#pragma once
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "qforge/core/config.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/quant/awq/search.hpp"

namespace qforge::awq::cuda_quant {

// --- scalar pieces (host and device), one IEEE operation each --------------------------------

QFORGE_HD inline float half(float x) noexcept {
#if defined(__CUDA_ARCH__)
  return __half2float(__float2half_rn(x));
#else
  return fp16_to_fp32(fp32_to_fp16(x));
#endif
}

// torch.round (ties to even): nearbyint and rint agree in the default rounding mode.
QFORGE_HD inline float round_even(float x) noexcept { return rintf(x); }

#if defined(__CUDA_ARCH__)
QFORGE_HD inline float add(float a, float b) noexcept { return __fadd_rn(a, b); }
QFORGE_HD inline float sub(float a, float b) noexcept { return __fsub_rn(a, b); }
QFORGE_HD inline float mul(float a, float b) noexcept { return __fmul_rn(a, b); }
QFORGE_HD inline float div(float a, float b) noexcept { return __fdiv_rn(a, b); }
QFORGE_HD inline float fma(float a, float b, float c) noexcept { return __fmaf_rn(a, b, c); }
#else
QFORGE_HD inline float add(float a, float b) noexcept { return a + b; }
QFORGE_HD inline float sub(float a, float b) noexcept { return a - b; }
QFORGE_HD inline float mul(float a, float b) noexcept { return a * b; }
QFORGE_HD inline float div(float a, float b) noexcept { return a / b; }
QFORGE_HD inline float fma(float a, float b, float c) noexcept { return std::fma(a, b, c); }
#endif

// std::max, std::min, std::clamp (libstdc++: min(max(v, lo), hi)) on floats.
QFORGE_HD inline float std_max(float a, float b) noexcept { return a < b ? b : a; }
QFORGE_HD inline float std_min(float a, float b) noexcept { return b < a ? b : a; }
QFORGE_HD inline float std_clamp(float v, float lo, float hi) noexcept {
  return std_min(std_max(v, lo), hi);
}

// static_cast<std::uint8_t> of a clamped code: 0..15 exactly; NaN gives 0 as x86 and the GPU's
// truncating conversions do (said once here rather than left to either compiler).
QFORGE_HD inline int to_code(float v) noexcept { return v == v ? static_cast<int>(v) : 0; }

// A group's scale and zero point (ref.hpp quantize_group). zero_f is the clamped float the codes
// are computed with, zero the uint8 the dequantization subtracts.
struct group_params {
  float scale;
  float zero_f;
  int zero;
};

// From the group's max and min, as quantize_group derives them.
QFORGE_HD inline group_params params_of(float mx, float mn) noexcept {
  constexpr float q = static_cast<float>(quant::awq::max_q);
  const float range = std_max(half(sub(mx, mn)), half(1e-5f));
  const float scale = half(div(range, q));
  const float z = std_clamp(-round_even(half(div(mn, scale))), 0.0f, q);
  return {scale, z, to_code(z)};
}

QFORGE_HD inline int quantize_value(float w, const group_params& p) noexcept {
  constexpr float q = static_cast<float>(quant::awq::max_q);
  return to_code(std_clamp(add(round_even(half(div(w, p.scale))), p.zero_f), 0.0f, q));
}

// ref.hpp dequantize_value: half((q - zero) * scale); q - zero is an exact small integer.
QFORGE_HD inline float dequantize_value(int code, const group_params& p) noexcept {
  return half(mul(static_cast<float>(code - p.zero), p.scale));
}

QFORGE_HD inline float fake_quantize_value(float w, const group_params& p) noexcept {
  return dequantize_value(quantize_value(w, p), p);
}

// --- warp-cooperative pieces (device) ---------------------------------------------------------

#if defined(__CUDACC__)

inline constexpr unsigned full_mask = 0xffffffffu;

// Max and min of a group held by a warp, as quantize_group's sequential loop finds them:
// mx = w[0], then mx = (mx < w[i]) ? w[i] : mx. That loop never picks up a NaN after w[0], and is
// NaN throughout when w[0] is: so reduce the non-NaN values (fmaxf / fminf skip NaN; ties between
// +0 and -0 cannot change any code, scale or dequantized value), then let element 0 (lane 0's
// first) decide.
template <int E>
inline __device__ group_params warp_params(const float (&v)[E]) {
  float mx = -INFINITY, mn = INFINITY;
#pragma unroll
  for (int e = 0; e < E; ++e) mx = fmaxf(mx, v[e]), mn = fminf(mn, v[e]);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    mx = fmaxf(mx, __shfl_xor_sync(full_mask, mx, o));
    mn = fminf(mn, __shfl_xor_sync(full_mask, mn, o));
  }
  const float first = __shfl_sync(full_mask, v[0], 0);
  if (first != first) mx = mn = first;
  return params_of(mx, mn);
}

// fake_quantize_row on one group held by a warp (v replaced by its quantize-dequantize image).
template <int E>
inline __device__ void warp_fake_quantize(float (&v)[E]) {
  const group_params p = warp_params(v);
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] = fake_quantize_value(v[e], p);
}

// The ordered dot's pairwise tree over 16 lanes (engine/ordered_dot.hpp combine()).
// Written out step by step: register arrays need indices the compiler can resolve.
template <int H>
inline __device__ void tree_step(float (&l)[16]) {
#pragma unroll
  for (int j = 0; j < H; ++j) l[j] = add(l[j], l[j + H]);
}
inline __device__ float lane_tree(float (&l)[16]) {
  tree_step<8>(l);
  tree_step<4>(l);
  tree_step<2>(l);
  tree_step<1>(l);
  return l[0];
}

// clip_row's search on one group of G weights held by a warp (v: lane's elements lane + 32 e):
// returns the threshold to clamp the group to. C: the group's covariance block in shared memory,
// rows of G floats at stride G + 4 (16-byte aligned rows whose float4 reads by 8 consecutive lanes
// hit 8 distinct bank quads); d_s, cd_s: this warp's G-float shared scratch (16-byte aligned).
template <int G>
inline __device__ float warp_clip_max(const float (&v)[G / 32], const float* C, float* d_s,
                                      float* cd_s) {
  constexpr int E = G / 32, ld = G + 4;
  const int lane = static_cast<int>(threadIdx.x % 32);
  // amax = max(amax, |w|) from 0: a NaN is never picked, so the tree of non-NaN values is exact.
  float amax = 0.0f;
#pragma unroll
  for (int e = 0; e < E; ++e) amax = std_max(amax, fabsf(v[e]));
#pragma unroll
  for (int o = 16; o > 0; o /= 2) amax = std_max(amax, __shfl_xor_sync(full_mask, amax, o));

  // err is a float on the CPU too (dot_f32_ordered), compared as a double: same order as floats.
  float best = INFINITY, best_max = amax;
  for (int i = 0; i < quant::awq::clip_steps; ++i) {
    const float ratio =
        sub(1.0f, div(static_cast<float>(i), static_cast<float>(quant::awq::clip_grid)));
    const float mx = half(mul(amax, ratio));
    float cur[E];
#pragma unroll
    for (int e = 0; e < E; ++e) cur[e] = std_clamp(v[e], -mx, mx);
    const group_params p = warp_params(cur);
#pragma unroll
    for (int e = 0; e < E; ++e) d_s[lane + 32 * e] = sub(fake_quantize_value(cur[e], p), v[e]);
    __syncwarp();

    // cd = C d (gemm_ordered): lane computes rows a = lane + 32 m, each with its own 16 lanes;
    // increasing i feeds lane i % 16 in increasing order, as the reference loop does.
    float acc[E][16];
#pragma unroll
    for (int m = 0; m < E; ++m)
#pragma unroll
      for (int j = 0; j < 16; ++j) acc[m][j] = 0.0f;
#pragma unroll
    for (int c = 0; c < G; c += 16) {
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const float4 dv = *reinterpret_cast<const float4*>(d_s + c + 4 * t);
#pragma unroll
        for (int m = 0; m < E; ++m) {
          const float4 cv = *reinterpret_cast<const float4*>(C + (lane + 32 * m) * ld + c + 4 * t);
          acc[m][4 * t + 0] = fma(cv.x, dv.x, acc[m][4 * t + 0]);
          acc[m][4 * t + 1] = fma(cv.y, dv.y, acc[m][4 * t + 1]);
          acc[m][4 * t + 2] = fma(cv.z, dv.z, acc[m][4 * t + 2]);
          acc[m][4 * t + 3] = fma(cv.w, dv.w, acc[m][4 * t + 3]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < E; ++m) cd_s[lane + 32 * m] = lane_tree(acc[m]);
    __syncwarp();

    // err = dot(cd, d): lanes 0..15 are the reference's 16 lanes; the shuffle tree adds lane j + h
    // into lane j for h = 8, 4, 2, 1, exactly combine()'s steps (lanes >= 16 carry unused values).
    const int j = lane % 16;
    float l = 0.0f;
#pragma unroll
    for (int k = j; k < G; k += 16) l = fma(cd_s[k], d_s[k], l);
#pragma unroll
    for (int h = 8; h > 0; h /= 2) l = add(l, __shfl_down_sync(full_mask, l, h));
    const float err = __shfl_sync(full_mask, l, 0);
    if (err < best) {  // strict: the first of equal errors wins, as on the CPU
      best = err;
      best_max = mx;
    }
    __syncwarp();  // d_s / cd_s are rewritten by the next threshold
  }
  return best_max;
}

#endif  // __CUDACC__

}  // namespace qforge::awq::cuda_quant
