// SPDX-License-Identifier: MIT
// The forward pass's inner loops, written once against xsimd and instantiated per ISA: dot products
// of a weight row (F32, F16, BF16 or Q8_0 blocks, read in place) with float activations, integer
// dot products of K-quant / Q8_0 rows with 8-bit activations (engine/quant_dot_simd.hpp), F16/BF16
// row conversion, a register-blocked product of a few float weight rows with a few activation
// rows (prefill), and the attention and SwiGLU steps (their exp within a few ulp of std::exp).
// The float kernels accumulate in float32 with fused multiply-adds, so results
// differ from a sequential sum by rounding only; the integer ones add the activations' 8-bit
// rounding (bound in engine/quant_dot.hpp). Nothing here has to match bytes, except the ordered
// dot / product (engine/ordered_dot.hpp), which every ISA computes in one canonical order for
// searches that must give the same bytes on every backend (AWQ). `ops` is the table of
// one ISA's kernels; cpu_ops() picks the table once, following backend::selected() (and so
// QFORGE_BACKEND): with qforge::kernels linked the AVX2/AVX-512 tables come from
// kernels/cpu/engine_*.cpp (each built with its ISA flags), header-only it is the arch the
// compiler targets.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "qforge/backend/dispatch.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/engine/awq_gemv_simd.hpp"
#include "qforge/engine/ordered_dot_simd.hpp"
#include "qforge/engine/quant_dot_simd.hpp"
#include "qforge/quant/blocks.hpp"

namespace qforge::engine {

// Kernels never throw and never check sizes: the callers in matmul.hpp own the shapes. Weight
// pointers have no alignment (safetensors data sits at any offset); Q8_0 rows hold n / 32 blocks.
struct ops {
  float (*dot_f32)(const std::byte* w, const float* x, std::size_t n) noexcept;
  float (*dot_f16)(const std::byte* w, const float* x, std::size_t n) noexcept;
  float (*dot_bf16)(const std::byte* w, const float* x, std::size_t n) noexcept;
  float (*dot_q8_0)(const std::byte* w, const float* x, std::size_t n) noexcept;
  void (*f16_to_f32)(const std::byte* src, float* dst, std::size_t n) noexcept;
  void (*bf16_to_f32)(const std::byte* src, float* dst, std::size_t n) noexcept;
  // y[t * ldy + r] = sum_k w[r * ldw + k] * x[t * ldx + k] for r < rows, t < tokens, k < n.
  void (*gemm)(const float* w, std::size_t ldw, std::size_t rows, const float* x, std::size_t ldx,
               std::size_t tokens, std::size_t n, float* y, std::size_t ldy) noexcept;
  // Attention of `heads` query heads (q: heads * d floats) that share one key/value head over n
  // cached positions (rows k + j * ld, v + j * ld): s = scale * q_h . k_j, softmax over j,
  // out[h * d + i] = sum_j p_j v_j[i]. scores: heads * n floats of scratch. One call per group
  // reads each cached row once for all its query heads.
  // g[i] = silu(g[i]) * u[i] for i < n.
  void (*swiglu)(float* g, const float* u, std::size_t n) noexcept;
  void (*attend)(const float* q, std::size_t heads, const float* k, const float* v, std::size_t ld,
                 std::size_t n, std::size_t d, float scale, float* scores, float* out) noexcept;
  // Activations quantized once per product (engine/quant_dot.hpp): n / 256 qdot::act_q8_k or n / 32
  // qdot::act_q8_0 into `a`, then integer dot products of rows of n values with them.
  void (*quantize_q8_k)(const float* x, std::size_t n, std::byte* a) noexcept;
  void (*quantize_q8_0)(const float* x, std::size_t n, std::byte* a) noexcept;
  float (*dot_q2_k_q8)(const std::byte* w, const std::byte* a, std::size_t n) noexcept;
  float (*dot_q3_k_q8)(const std::byte* w, const std::byte* a, std::size_t n) noexcept;
  float (*dot_q4_k_q8)(const std::byte* w, const std::byte* a, std::size_t n) noexcept;
  float (*dot_q5_k_q8)(const std::byte* w, const std::byte* a, std::size_t n) noexcept;
  float (*dot_q6_k_q8)(const std::byte* w, const std::byte* a, std::size_t n) noexcept;
  float (*dot_q8_0_q8)(const std::byte* w, const std::byte* a, std::size_t n) noexcept;
  // The same products for `rows` consecutive rows of n values from w: y[r] = dot(row r, a), each
  // the value the dot above gives (several rows per pass where an ISA has a body for it).
  using qrows_fn = void (*)(const std::byte* w, std::size_t rows, const std::byte* a,
                            std::size_t n, float* y) noexcept;
  qrows_fn rows_q2_k_q8, rows_q3_k_q8, rows_q4_k_q8, rows_q5_k_q8, rows_q6_k_q8, rows_q8_0_q8;
  // One token through a linear in AutoAWQ's GEMM layout (engine/awq_gemv_simd.hpp): y[8p + j] for
  // packs p in [p0, p1), (p1 - p0) % awq_simd::chunk_packs == 0; sums: awq_simd::group_sums of x.
  void (*gemv_awq)(const quant::awq::gemm_view& w, const float* x, const float* sums, float* y,
                   std::size_t p0, std::size_t p1) noexcept;
  // The ordered (backend-independent) float dot and product of engine/ordered_dot.hpp, same
  // arguments as dot_f32 (on floats) and gemm; slower than those, for AWQ's search.
  float (*dot_f32_ordered)(const float* w, const float* x, std::size_t n) noexcept;
  void (*gemm_ordered)(const float* w, std::size_t ldw, std::size_t rows, const float* x,
                       std::size_t ldx, std::size_t tokens, std::size_t n, float* y,
                       std::size_t ldy) noexcept;
  const char* name;
};

namespace kernel_detail {

inline std::uint16_t load_u16(const std::byte* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline float load_f32(const std::byte* p) noexcept {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

template <class Arch>
using fb = xsimd::batch<float, Arch>;

// a * b + c, fused where the ISA has it (ordered::has_fused_madd), else two roundings.
template <class Arch>
fb<Arch> madd(fb<Arch> a, fb<Arch> b, fb<Arch> c) noexcept {
  if constexpr (ordered::has_fused_madd<Arch>())
    return ordered::fused_madd<Arch>(a, b, c);
  else
    return a * b + c;
}

// One vector of floats from unaligned half / bfloat16 / int8 values. The AVX-512 paths use the
// all-lanes maskz forms: GCC 12 reports the plain forms' undefined pass-through operand as
// uninitialised (-Wmaybe-uninitialized) once inlined.
template <class Arch>
fb<Arch> load_f16(const std::byte* p) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
#endif
#if XSIMD_WITH_AVX2 && defined(__F16C__)
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#endif
  alignas(64) float t[fb<Arch>::size];
  for (std::size_t i = 0; i < fb<Arch>::size; ++i) t[i] = fp16_to_fp32(load_u16(p + 2 * i));
  return fb<Arch>::load_aligned(t);
}

template <class Arch>
fb<Arch> load_bf16(const std::byte* p) noexcept {
  // bfloat16 is the top half of a float: widen to 32 bits and shift.
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
        0xffff,
        _mm512_maskz_cvtepu16_epi32(0xffff,
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
        16));
#endif
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
#endif
  alignas(64) float t[fb<Arch>::size];
  for (std::size_t i = 0; i < fb<Arch>::size; ++i) t[i] = bf16_to_fp32(load_u16(p + 2 * i));
  return fb<Arch>::load_aligned(t);
}

// One fp16 scale. A template (not a plain inline function) so that each ISA's object holds its own
// copy: the F16C instruction must never leak into the baseline build through the linker.
template <class Arch>
float half_to_float(std::uint16_t h) noexcept {
#if defined(__F16C__)
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch> || std::is_base_of_v<xsimd::avx512f, Arch>)
    return _cvtsh_ss(h);
#endif
  return fp16_to_fp32(h);
}

template <class Arch>
fb<Arch> load_i8(const std::int8_t* p) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_maskz_cvtepi32_ps(
        0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#endif
  alignas(64) float t[fb<Arch>::size];
  for (std::size_t i = 0; i < fb<Arch>::size; ++i) t[i] = static_cast<float>(p[i]);
  return fb<Arch>::load_aligned(t);
}

// Dot product of a converted weight row with x, four independent accumulators so the FMA latency
// is hidden; `load` turns weight bytes at element index i into one vector.
template <class Arch, std::size_t Bytes, class Load, class Scalar>
float dot_with(const std::byte* w, const float* x, std::size_t n, Load load,
               Scalar scalar) noexcept {
  using B = fb<Arch>;
  constexpr std::size_t W = B::size;
  B a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
  std::size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    a0 = madd<Arch>(load(w + i * Bytes), B::load_unaligned(x + i), a0);
    a1 = madd<Arch>(load(w + (i + W) * Bytes), B::load_unaligned(x + i + W), a1);
    a2 = madd<Arch>(load(w + (i + 2 * W) * Bytes), B::load_unaligned(x + i + 2 * W), a2);
    a3 = madd<Arch>(load(w + (i + 3 * W) * Bytes), B::load_unaligned(x + i + 3 * W), a3);
  }
  for (; i + W <= n; i += W) a0 = madd<Arch>(load(w + i * Bytes), B::load_unaligned(x + i), a0);
  float s = xsimd::hadd((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += scalar(w + i * Bytes) * x[i];
  return s;
}

template <class Arch>
float dot_q8_0(const std::byte* w, const float* x, std::size_t n) noexcept {
  using B = fb<Arch>;
  constexpr std::size_t W = B::size;
  const auto* blocks = reinterpret_cast<const quant::block_q8_0*>(w);
  static_assert(quant::qk8_0 % W == 0, "a Q8_0 block must be a whole number of vectors");
  B acc0(0.0f), acc1(0.0f);
  for (std::size_t b = 0; b < n / quant::qk8_0; ++b) {
    const auto& blk = blocks[b];
    const float* xb = x + b * quant::qk8_0;
    B s = load_i8<Arch>(blk.qs) * B::load_unaligned(xb);
    for (std::size_t j = W; j < quant::qk8_0; j += W)
      s = madd<Arch>(load_i8<Arch>(blk.qs + j), B::load_unaligned(xb + j), s);
    // Alternate accumulators: consecutive blocks do not wait on each other's FMA.
    if (b & 1) acc1 = madd<Arch>(B(half_to_float<Arch>(blk.d)), s, acc1);
    else acc0 = madd<Arch>(B(half_to_float<Arch>(blk.d)), s, acc0);
  }
  return xsimd::hadd(acc0 + acc1);
}

template <class Arch, class Load>
void convert_row(const std::byte* src, float* dst, std::size_t n, Load load,
                 float (*scalar)(std::uint16_t) noexcept) noexcept {
  constexpr std::size_t W = fb<Arch>::size;
  std::size_t i = 0;
  for (; i + W <= n; i += W) load(src + 2 * i).store_unaligned(dst + i);
  for (; i < n; ++i) dst[i] = scalar(load_u16(src + 2 * i));
}

// NR weight rows x NT activation rows at once: each loaded vector feeds NT (or NR) FMAs, which is
// what makes prefill compute-bound rather than load-bound.
template <class Arch, std::size_t NR, std::size_t NT>
void gemm_tile(const float* w, std::size_t ldw, const float* x, std::size_t ldx, std::size_t n,
               float* y, std::size_t ldy) noexcept {
  using B = fb<Arch>;
  constexpr std::size_t W = B::size;
  B acc[NR][NT];
  for (auto& r : acc)
    for (auto& a : r) a = B(0.0f);
  std::size_t k = 0;
  for (; k + W <= n; k += W) {
    B xv[NT];
    for (std::size_t t = 0; t < NT; ++t) xv[t] = B::load_unaligned(x + t * ldx + k);
    for (std::size_t r = 0; r < NR; ++r) {
      const B wv = B::load_unaligned(w + r * ldw + k);
      for (std::size_t t = 0; t < NT; ++t) acc[r][t] = madd<Arch>(wv, xv[t], acc[r][t]);
    }
  }
  for (std::size_t r = 0; r < NR; ++r) {
    for (std::size_t t = 0; t < NT; ++t) {
      float s = xsimd::hadd(acc[r][t]);
      for (std::size_t j = k; j < n; ++j) s += w[r * ldw + j] * x[t * ldx + j];
      y[t * ldy + r] = s;
    }
  }
}

template <class Arch, std::size_t NR>
void gemm_rows(const float* w, std::size_t ldw, const float* x, std::size_t ldx,
               std::size_t tokens, std::size_t n, float* y, std::size_t ldy) noexcept {
  // 4 x NT accumulators + NT activations + 1 weight vector: 21 of AVX-512's 32 registers, 16 of 16
  // with AVX2 (narrower ISAs spill a little; they are the fallback).
  constexpr std::size_t NT = fb<Arch>::size >= 16 ? 4 : 3;
  std::size_t t = 0;
  for (; t + NT <= tokens; t += NT) gemm_tile<Arch, NR, NT>(w, ldw, x + t * ldx, ldx, n, y + t * ldy, ldy);
  for (; t < tokens; ++t) gemm_tile<Arch, NR, 1>(w, ldw, x + t * ldx, ldx, n, y + t * ldy, ldy);
}

template <class Arch>
void gemm(const float* w, std::size_t ldw, std::size_t rows, const float* x, std::size_t ldx,
          std::size_t tokens, std::size_t n, float* y, std::size_t ldy) noexcept {
  std::size_t r = 0;
  for (; r + 4 <= rows; r += 4) gemm_rows<Arch, 4>(w + r * ldw, ldw, x, ldx, tokens, n, y + r, ldy);
  for (; r < rows; ++r) gemm_rows<Arch, 1>(w + r * ldw, ldw, x, ldx, tokens, n, y + r, ldy);
}

// e^x, Cephes' expf scheme: n = round(x / ln 2) (the 1.5 * 2^23 addition rounds to an integer
// in the low bits), a degree-5 polynomial on the remainder, 2^n through the exponent bits; within
// about 2 ulp of std::exp. x is clamped to [-87.3, 88.3]: e^x bottoms out near 1e-38 instead of
// 0 and never overflows, which neither softmax (x <= 0) nor SiLU can tell apart.
template <class Arch>
fb<Arch> exp_approx(fb<Arch> x) noexcept {
  using B = fb<Arch>;
  using I = xsimd::batch<std::int32_t, Arch>;
  x = xsimd::select(x < B(-87.3f), B(-87.3f), x);
  x = xsimd::select(x > B(88.3f), B(88.3f), x);
  const B magic(12582912.0f);
  const B t = madd<Arch>(x, B(1.44269504088896341f), magic);
  const B n = t - magic;
  B r = madd<Arch>(n, B(-0.693359375f), x);
  r = madd<Arch>(n, B(2.12194440e-4f), r);
  B p(1.9875691500e-4f);
  p = madd<Arch>(p, r, B(1.3981999507e-3f));
  p = madd<Arch>(p, r, B(8.3334519073e-3f));
  p = madd<Arch>(p, r, B(4.1665795894e-2f));
  p = madd<Arch>(p, r, B(1.6666665459e-1f));
  p = madd<Arch>(p, r, B(5.0000001201e-1f));
  const B y = madd<Arch>(p, r * r, r + B(1.0f));
  // (n + 127) * 2^23 by a multiply: xsimd's AVX-512 shift trips GCC 12's uninitialised warning.
  const I e = (xsimd::bitwise_cast<I>(t) - xsimd::bitwise_cast<I>(magic) + I(127)) * I(1 << 23);
  return y * xsimd::bitwise_cast<B>(e);
}

// g[i] = silu(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i] (the SwiGLU gate).
template <class Arch>
void swiglu(float* g, const float* u, std::size_t n) noexcept {
  using B = fb<Arch>;
  constexpr std::size_t W = B::size;
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const B x = B::load_unaligned(g + i);
    (x / (B(1.0f) + exp_approx<Arch>(-x)) * B::load_unaligned(u + i)).store_unaligned(g + i);
  }
  for (; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// Scores four positions at a time per head, the softmax with exp_approx, then the weighted sum
// of values two heads at a time: eight output vectors in registers, each value row loaded once.
template <class Arch>
void attend(const float* q, std::size_t heads, const float* k, const float* v, std::size_t ld,
            std::size_t n, std::size_t d, float scale, float* scores, float* out) noexcept {
  using B = fb<Arch>;
  constexpr std::size_t W = B::size;
  const std::size_t dv = d / W * W;
  // Four positions per pass: four independent sums per head rather than one dependent chain.
  const auto block = [&]<std::size_t P>(std::size_t j0) {
    for (std::size_t h = 0; h < heads; ++h) {
      const float* qh = q + h * d;
      B acc[P];
      for (auto& a : acc) a = B(0.0f);
      for (std::size_t i = 0; i < dv; i += W) {
        const B qv = B::load_unaligned(qh + i);
        for (std::size_t p = 0; p < P; ++p)
          acc[p] = madd<Arch>(B::load_unaligned(k + (j0 + p) * ld + i), qv, acc[p]);
      }
      for (std::size_t p = 0; p < P; ++p) {
        const float* kj = k + (j0 + p) * ld;
        float sc = xsimd::hadd(acc[p]);
        for (std::size_t i = dv; i < d; ++i) sc += kj[i] * qh[i];
        scores[h * n + j0 + p] = sc * scale;
      }
    }
  };
  std::size_t j0 = 0;
  for (; j0 + 4 <= n; j0 += 4) block.template operator()<4>(j0);
  for (; j0 < n; ++j0) block.template operator()<1>(j0);
  for (std::size_t h = 0; h < heads; ++h) {
    float* s = scores + h * n;
    float mx = s[0];
    for (std::size_t j = 1; j < n; ++j) mx = mx < s[j] ? s[j] : mx;
    B sums(0.0f);
    std::size_t j = 0;
    for (; j + W <= n; j += W) {
      const B e = exp_approx<Arch>(B::load_unaligned(s + j) - B(mx));
      e.store_unaligned(s + j);
      sums += e;
    }
    float sum = xsimd::hadd(sums);
    for (; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
    const float inv = 1.0f / sum;
    for (j = 0; j < n; ++j) s[j] *= inv;
  }
  std::size_t h = 0;
  for (; h + 2 <= heads && d % (4 * W) == 0; h += 2) {
    const float* p0 = scores + h * n;
    const float* p1 = p0 + n;
    for (std::size_t i = 0; i < d; i += 4 * W) {
      B a[2][4];
      for (auto& r : a)
        for (auto& x : r) x = B(0.0f);
      for (std::size_t j = 0; j < n; ++j) {
        const float* vj = v + j * ld + i;
        const B w0(p0[j]), w1(p1[j]);
        for (std::size_t c = 0; c < 4; ++c) {
          const B vv = B::load_unaligned(vj + c * W);
          a[0][c] = madd<Arch>(w0, vv, a[0][c]);
          a[1][c] = madd<Arch>(w1, vv, a[1][c]);
        }
      }
      for (std::size_t c = 0; c < 4; ++c) {
        a[0][c].store_unaligned(out + h * d + i + c * W);
        a[1][c].store_unaligned(out + (h + 1) * d + i + c * W);
      }
    }
  }
  for (; h < heads; ++h) {
    const float* p = scores + h * n;
    float* o = out + h * d;
    std::size_t i = 0;
    for (; i < dv; i += W) {
      B a(0.0f);
      for (std::size_t j = 0; j < n; ++j) a = madd<Arch>(B(p[j]), B::load_unaligned(v + j * ld + i), a);
      a.store_unaligned(o + i);
    }
    for (; i < d; ++i) {
      float a = 0;
      for (std::size_t j = 0; j < n; ++j) a += p[j] * v[j * ld + i];
      o[i] = a;
    }
  }
}

template <class Arch, class Block, class Act>
void qdot_rows(const std::byte* w, std::size_t rows, const std::byte* a, std::size_t n,
               float* y) noexcept {
  constexpr std::size_t per = sizeof(Act) == sizeof(qdot::act_q8_0) ? quant::qk8_0 : qdot::qk;
  qdot::dot_rows<Arch>(reinterpret_cast<const Block*>(w), n / per, rows,
                       reinterpret_cast<const Act*>(a), y);
}

// The integer dot of one row of Block against activations of format Act (n values).
template <class Arch, class Block, class Act>
float qdot_row(const std::byte* w, const std::byte* a, std::size_t n) noexcept {
  constexpr std::size_t per = sizeof(Act) == sizeof(qdot::act_q8_0) ? quant::qk8_0 : qdot::qk;
  return qdot::dot<Arch>(reinterpret_cast<const Block*>(w), reinterpret_cast<const Act*>(a),
                        n / per);
}

inline float f16_scalar(const std::byte* p) noexcept { return fp16_to_fp32(load_u16(p)); }
inline float bf16_scalar(const std::byte* p) noexcept { return bf16_to_fp32(load_u16(p)); }

}  // namespace kernel_detail

// The table for one xsimd arch. Instantiate only in a TU compiled for that arch.
template <class Arch>
constexpr ops make_ops(const char* name) noexcept {
  namespace d = kernel_detail;
  ops o{};
  o.dot_f32 = [](const std::byte* w, const float* x, std::size_t n) noexcept {
    return d::dot_with<Arch, 4>(
        w, x, n,
        [](const std::byte* p) { return d::fb<Arch>::load_unaligned(reinterpret_cast<const float*>(p)); },
        d::load_f32);
  };
  o.dot_f16 = [](const std::byte* w, const float* x, std::size_t n) noexcept {
    return d::dot_with<Arch, 2>(w, x, n, d::load_f16<Arch>, d::f16_scalar);
  };
  o.dot_bf16 = [](const std::byte* w, const float* x, std::size_t n) noexcept {
    return d::dot_with<Arch, 2>(w, x, n, d::load_bf16<Arch>, d::bf16_scalar);
  };
  o.dot_q8_0 = d::dot_q8_0<Arch>;
  o.f16_to_f32 = [](const std::byte* s, float* y, std::size_t n) noexcept {
    d::convert_row<Arch>(s, y, n, d::load_f16<Arch>, fp16_to_fp32);
  };
  o.bf16_to_f32 = [](const std::byte* s, float* y, std::size_t n) noexcept {
    d::convert_row<Arch>(s, y, n, d::load_bf16<Arch>, bf16_to_fp32);
  };
  o.gemm = d::gemm<Arch>;
  o.attend = d::attend<Arch>;
  o.swiglu = d::swiglu<Arch>;
  o.quantize_q8_k = [](const float* x, std::size_t n, std::byte* a) noexcept {
    qdot::quantize_q8_k<Arch>(x, n, reinterpret_cast<qdot::act_q8_k*>(a));
  };
  o.quantize_q8_0 = [](const float* x, std::size_t n, std::byte* a) noexcept {
    qdot::quantize_q8_0<Arch>(x, n, reinterpret_cast<qdot::act_q8_0*>(a));
  };
  o.dot_q2_k_q8 = d::qdot_row<Arch, quant::block_q2_k, qdot::act_q8_k>;
  o.dot_q3_k_q8 = d::qdot_row<Arch, quant::block_q3_k, qdot::act_q8_k>;
  o.dot_q4_k_q8 = d::qdot_row<Arch, quant::block_q4_k, qdot::act_q8_k>;
  o.dot_q5_k_q8 = d::qdot_row<Arch, quant::block_q5_k, qdot::act_q8_k>;
  o.dot_q6_k_q8 = d::qdot_row<Arch, quant::block_q6_k, qdot::act_q8_k>;
  o.dot_q8_0_q8 = d::qdot_row<Arch, quant::block_q8_0, qdot::act_q8_0>;
  o.rows_q2_k_q8 = d::qdot_rows<Arch, quant::block_q2_k, qdot::act_q8_k>;
  o.rows_q3_k_q8 = d::qdot_rows<Arch, quant::block_q3_k, qdot::act_q8_k>;
  o.rows_q4_k_q8 = d::qdot_rows<Arch, quant::block_q4_k, qdot::act_q8_k>;
  o.rows_q5_k_q8 = d::qdot_rows<Arch, quant::block_q5_k, qdot::act_q8_k>;
  o.rows_q6_k_q8 = d::qdot_rows<Arch, quant::block_q6_k, qdot::act_q8_k>;
  o.rows_q8_0_q8 = d::qdot_rows<Arch, quant::block_q8_0, qdot::act_q8_0>;
  o.gemv_awq = [](const quant::awq::gemm_view& w, const float* x, const float* sums, float* y,
                  std::size_t p0, std::size_t p1) noexcept {
    awq_simd::gemv<Arch>(
        w, x, sums, y, p0, p1,
        [](d::fb<Arch> a, d::fb<Arch> b, d::fb<Arch> c) { return d::madd<Arch>(a, b, c); },
        [](const std::byte* p) { return d::load_f16<Arch>(p); });
  };
  o.dot_f32_ordered = ordered::dot<Arch>;
  o.gemm_ordered = ordered::gemm<Arch>;
  o.name = name;
  return o;
}

#if defined(QFORGE_HAVE_KERNELS)
namespace detail {
// kernels/cpu/engine_ops.cpp: the compiled table for backend `b`, or nullptr when this build or
// this CPU has none.
const ops* library_ops(backend::id b) noexcept;
}  // namespace detail
#endif

// The kernels the engine uses, decided on first call: the table of the selected CPU backend
// (QFORGE_BACKEND honoured; cuda selected means the best CPU one here), else the compiler's own
// arch. Throws like backend::selected() when QFORGE_BACKEND names an unusable backend.
inline const ops& cpu_ops() {
  static const ops* chosen = [] {
    backend::id want = backend::selected().which();
    if (want == backend::id::cuda) want = backend::cpu_kernels().which;
#if defined(QFORGE_HAVE_KERNELS)
    if (const ops* o = detail::library_ops(want)) return o;
#endif
    static constexpr ops native = make_ops<xsimd::default_arch>("native");
    return &native;
  }();
  return *chosen;
}

// Every kernel table this build has and this CPU can run: the compiler's own arch ("native")
// first, then each compiled CPU backend that is available. Tests hold them to the references,
// benchmarks compare them.
inline std::vector<const ops*> runnable_ops() {
  static constexpr ops native = make_ops<xsimd::default_arch>("native");
  std::vector<const ops*> out{&native};
#if defined(QFORGE_HAVE_KERNELS)
  for (const auto& e : backend::compiled())
    if (e.available() && e.which() != backend::id::scalar && e.which() != backend::id::cuda)
      if (const ops* o = detail::library_ops(e.which())) out.push_back(o);
#endif
  return out;
}

}  // namespace qforge::engine
