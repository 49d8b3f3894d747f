// SPDX-License-Identifier: MIT
// xsimd building blocks shared by the Q4_0 / Q4_1 / Q5_0 / Q5_1 / IQ4_NL SIMD bodies. A legacy block
// is 32 weights whose plain encoding is one order-independent reduction (max |x|, or min and max,
// which give the same float in any order on NaN-free input) followed by elementwise float work, so
// the block is vectorised *within* itself without reassociating anything: the lanes repeat
// detail/legacy.hpp's scalar operations exactly, ggml's x86 narrowing casts included. Blocks the
// reduction cannot settle alone (a NaN, a signed-zero or +-a tie) go back to the reference. Raw
// intrinsics appear only under `if constexpr` for x86 archs, each with a generic fallback.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "qforge/core/fp16.hpp"

namespace qforge::quant::detail::legacy_simd {

template <class Arch>
using fbatch = xsimd::batch<float, Arch>;
template <class Arch>
using ibatch = xsimd::batch<std::int32_t, Arch>;

// Vectors per 32-weight block.
template <class Arch>
inline constexpr std::size_t nv = 32 / fbatch<Arch>::size;

// One block in registers plus what the reductions learnt about it.
template <class Arch>
struct block_regs {
  fbatch<Arch> v[nv<Arch>];
  bool has_nan;
  float min, max;  // valid when !has_nan; min from FLT_MAX, max from -FLT_MAX like ggml
};

// Largest / smallest lane of a NaN-free batch (order-independent there).
template <class Arch>
float max_lane(fbatch<Arch> m) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_reduce_max_ps(m);
#endif
#if XSIMD_WITH_AVX
  if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
    __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    r = _mm_max_ss(r, _mm_shuffle_ps(r, r, 0x55));
    return _mm_cvtss_f32(r);
  }
#endif
  alignas(64) float lanes[fbatch<Arch>::size];
  m.store_aligned(lanes);
  float r = lanes[0];
  for (std::size_t k = 1; k < fbatch<Arch>::size; ++k) r = r > lanes[k] ? r : lanes[k];
  return r;
}

template <class Arch>
float min_lane(fbatch<Arch> m) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) return _mm512_reduce_min_ps(m);
#endif
#if XSIMD_WITH_AVX
  if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
    __m128 r = _mm_min_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    r = _mm_min_ps(r, _mm_movehl_ps(r, r));
    r = _mm_min_ss(r, _mm_shuffle_ps(r, r, 0x55));
    return _mm_cvtss_f32(r);
  }
#endif
  alignas(64) float lanes[fbatch<Arch>::size];
  m.store_aligned(lanes);
  float r = lanes[0];
  for (std::size_t k = 1; k < fbatch<Arch>::size; ++k) r = r < lanes[k] ? r : lanes[k];
  return r;
}

// Loads 32 floats and reduces them to min and max (meaningless when has_nan).
template <class Arch>
void load_block(const float* p, block_regs<Arch>& b) noexcept {
  using fb = fbatch<Arch>;
  constexpr std::size_t w = fb::size;
  fb lo(FLT_MAX), hi(-FLT_MAX);
  auto nan = xsimd::isnan(fb(0.0f));
  for (std::size_t r = 0; r < nv<Arch>; ++r) {
    b.v[r] = fb::load_unaligned(p + r * w);
    nan = nan | xsimd::isnan(b.v[r]);  // not v != v: xsimd 8 compares ordered
    lo = xsimd::min(lo, b.v[r]);
    hi = xsimd::max(hi, b.v[r]);
  }
  b.has_nan = xsimd::any(nan);
  b.min = min_lane<Arch>(lo);
  b.max = max_lane<Arch>(hi);
}

// Lanewise detail::low_byte_x86: the low byte of a cvttss2si, as an int32 in [0, 255]. Lanes out of
// int32 range (and NaN) are zeroed first, so NEON's saturating convert agrees with x86's INT32_MIN.
template <class Arch>
ibatch<Arch> low_byte(fbatch<Arch> t) noexcept {
  using fb = fbatch<Arch>;
  t = xsimd::select(xsimd::abs(t) < fb(2147483648.0f), t, fb(0.0f));
  return xsimd::batch_cast<std::int32_t>(t) & ibatch<Arch>(0xFF);
}

// Lanewise detail::clamp_low_byte_x86: bytes >= 128 are negative int8s, which MIN(nmax, .) keeps.
template <class Arch>
ibatch<Arch> clamp_low_byte(fbatch<Arch> t, std::int32_t nmax) noexcept {
  using ib = ibatch<Arch>;
  const ib b = low_byte<Arch>(t);
  return xsimd::select(b >= ib(128), b, xsimd::min(b, ib(nmax)));
}

// 16 int32 lanes in [0, 255] (batches c[0 .. nv/2)) to 16 bytes.
template <class Arch>
void store_bytes16(const ibatch<Arch>* c, std::uint8_t* out) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(c[0]));
    return;
  }
#endif
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
    // packus works per 128-bit lane; the permute restores element order before the final pack.
    const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(c[0], c[1]), 0xD8);
    const __m128i b8 =
        _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), b8);
    return;
  }
#endif
  constexpr std::size_t w = ibatch<Arch>::size;
  alignas(64) std::int32_t tmp[16];
  for (std::size_t r = 0; r < 16 / w; ++r) c[r].store_aligned(tmp + r * w);
  for (int j = 0; j < 16; ++j) out[j] = static_cast<std::uint8_t>(tmp[j]);
}

// Bit 4 of each lane of u (one batch holding positions r*w ...), as the low w bits of the result.
template <class Arch>
std::uint32_t bit4_mask(ibatch<Arch> u) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x10));
#endif
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
    return static_cast<std::uint32_t>(
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(u, 27))));
#endif
  constexpr std::size_t w = ibatch<Arch>::size;
  alignas(64) std::int32_t tmp[w];
  u.store_aligned(tmp);
  std::uint32_t m = 0;
  for (std::size_t k = 0; k < w; ++k) m |= static_cast<std::uint32_t>((tmp[k] >> 4) & 1) << k;
  return m;
}

// detail::pack_q4 on registers: u[r] holds the bytes of weights r*w ...
template <class Arch>
void pack_q4(const ibatch<Arch>* u, std::uint8_t* qs) noexcept {
  using ib = ibatch<Arch>;
  constexpr std::size_t half = nv<Arch> / 2;
  ib c[half];
  for (std::size_t r = 0; r < half; ++r) c[r] = (u[r] | (u[r + half] << 4)) & ib(0xFF);
  store_bytes16<Arch>(c, qs);
}

// detail::pack_q5 on registers.
template <class Arch>
void pack_q5(const ibatch<Arch>* u, std::uint8_t* qs, std::uint8_t* qh) noexcept {
  using ib = ibatch<Arch>;
  constexpr std::size_t w = ib::size;
  constexpr std::size_t half = nv<Arch> / 2;
  ib c[half];
  for (std::size_t r = 0; r < half; ++r) c[r] = (u[r] & ib(0x0F)) | ((u[r + half] & ib(0x0F)) << 4);
  store_bytes16<Arch>(c, qs);
  std::uint32_t h = 0;
  for (std::size_t r = 0; r < nv<Arch>; ++r) h |= bit4_mask<Arch>(u[r]) << (r * w);
  for (int k = 0; k < 4; ++k) qh[k] = static_cast<std::uint8_t>(h >> (8 * k));
}

// w consecutive bytes, zero-extended to int32 lanes (xsimd 8 has no widening load).
template <class Arch>
ibatch<Arch> widen_u8(const std::uint8_t* p) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
#endif
#if XSIMD_WITH_AVX2
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>)
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
#endif
  constexpr std::size_t w = ibatch<Arch>::size;
  alignas(64) std::int32_t q[w];
  for (std::size_t k = 0; k < w; ++k) q[k] = p[k];
  return ibatch<Arch>::load_aligned(q);
}

// The 4-bit codes of one block: out[r] holds weights r*w ... (low nibbles first, then high).
template <class Arch>
void unpack_nibbles(const std::uint8_t* qs, ibatch<Arch>* out) noexcept {
  using ib = ibatch<Arch>;
  constexpr std::size_t w = ib::size;
  constexpr std::size_t half = nv<Arch> / 2;
  for (std::size_t r = 0; r < half; ++r) {
    const ib b = widen_u8<Arch>(qs + r * w);
    out[r] = b & ib(0x0F);
    out[r + half] = b >> 4;  // bytes are non-negative, so the arithmetic shift is logical
  }
}

// Adds the fifth bits of a Q5 block: bit j of qh becomes 0x10 of weight j.
template <class Arch>
void add_fifth_bits(std::uint32_t qh, ibatch<Arch>* q) noexcept {
  using ib = ibatch<Arch>;
  constexpr std::size_t w = ib::size;
  const ib bits(static_cast<std::int32_t>(qh));
  alignas(64) static constexpr std::int32_t lane_bit[32] = {
      1 << 0,  1 << 1,  1 << 2,  1 << 3,  1 << 4,  1 << 5,  1 << 6,  1 << 7,
      1 << 8,  1 << 9,  1 << 10, 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15,
      1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22, 1 << 23,
      1 << 24, 1 << 25, 1 << 26, 1 << 27, 1 << 28, 1 << 29, 1 << 30, INT32_MIN};
  for (std::size_t r = 0; r < nv<Arch>; ++r) {
    const ib m = ib::load_aligned(lane_bit + r * w);
    q[r] = q[r] | xsimd::select((bits & m) != ib(0), ib(0x10), ib(0));
  }
}


// --- groups of w blocks: the per-block scalars computed w at a time ------------------------------
// A group is w consecutive blocks; lane b of a "group vector" belongs to block b. The per-block
// reductions become one transpose-and-reduce network, and d, 1/d and the fast-path test become
// vector operations, so the scalar work per block shrinks to a broadcast and an fp16 conversion.

struct op_min {
  template <class B> B operator()(B a, B b) const noexcept { return xsimd::min(a, b); }
  static float scalar(float a, float b) noexcept { return a < b ? a : b; }
};
struct op_max {
  template <class B> B operator()(B a, B b) const noexcept { return xsimd::max(a, b); }
  static float scalar(float a, float b) noexcept { return a > b ? a : b; }
};
struct op_add {
  template <class B> B operator()(B a, B b) const noexcept { return a + b; }
  static float scalar(float a, float b) noexcept { return a + b; }
};

// a[0 .. w) to one vector whose lane b is the reduction of a[b]'s lanes. Only used where the order
// does not matter (min / max of NaN-free data, or a sum only tested for NaN).
template <class Arch, class Op>
fbatch<Arch> transpose_reduce(const fbatch<Arch>* a, Op op) noexcept {
  using fb = fbatch<Arch>;
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    fb t[8], u[4], v[2];
    for (int k = 0; k < 8; ++k)
      t[k] = op(fb(_mm512_unpacklo_ps(a[2 * k], a[2 * k + 1])),
                fb(_mm512_unpackhi_ps(a[2 * k], a[2 * k + 1])));
    for (int k = 0; k < 4; ++k)
      u[k] = op(fb(_mm512_shuffle_ps(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0))),
                fb(_mm512_shuffle_ps(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2))));
    for (int k = 0; k < 2; ++k)
      v[k] = op(fb(_mm512_shuffle_f32x4(u[2 * k], u[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0))),
                fb(_mm512_shuffle_f32x4(u[2 * k], u[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1))));
    return op(fb(_mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(2, 0, 2, 0))),
              fb(_mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(3, 1, 3, 1))));
  }
#endif
#if XSIMD_WITH_AVX
  if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
    fb t[4], u[2];
    for (int k = 0; k < 4; ++k)
      t[k] = op(fb(_mm256_unpacklo_ps(a[2 * k], a[2 * k + 1])),
                fb(_mm256_unpackhi_ps(a[2 * k], a[2 * k + 1])));
    for (int k = 0; k < 2; ++k)
      u[k] = op(fb(_mm256_shuffle_ps(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0))),
                fb(_mm256_shuffle_ps(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2))));
    return op(fb(_mm256_permute2f128_ps(u[0], u[1], 0x20)),
              fb(_mm256_permute2f128_ps(u[0], u[1], 0x31)));
  }
#endif
  constexpr std::size_t w = fb::size;
  alignas(64) float lanes[w * w], out[w];
  for (std::size_t b = 0; b < w; ++b) a[b].store_aligned(lanes + b * w);
  for (std::size_t b = 0; b < w; ++b) {
    float r = lanes[b * w];
    for (std::size_t k = 1; k < w; ++k) r = Op::scalar(r, lanes[b * w + k]);
    out[b] = r;
  }
  return fb::load_aligned(out);
}

// Per-block min, max and a finiteness probe (NaN in lane b iff block b holds a NaN or an infinity:
// x - x is 0 for finite x), for the w blocks at p.
template <class Arch>
struct group_stats {
  fbatch<Arch> lo, hi, probe;
};

template <class Arch>
group_stats<Arch> reduce_group(const float* p) noexcept {
  using fb = fbatch<Arch>;
  constexpr std::size_t w = fb::size;
  fb lo[w], hi[w], pr[w];
  for (std::size_t b = 0; b < w; ++b) {
    const float* q = p + b * 32;
    fb v = fb::load_unaligned(q);
    fb l = v, h = v, z = v - v;
    for (std::size_t r = 1; r < nv<Arch>; ++r) {
      v = fb::load_unaligned(q + r * w);
      l = xsimd::min(l, v);
      h = xsimd::max(h, v);
      z = z + (v - v);
    }
    lo[b] = l;
    hi[b] = h;
    pr[b] = z;
  }
  return {transpose_reduce<Arch>(lo, op_min{}), transpose_reduce<Arch>(hi, op_max{}),
          transpose_reduce<Arch>(pr, op_add{})};
}

// The per-block scalars of a group, in memory for the per-block pass: d and 1/d as ggml computes
// them, the offset m (Q4_1 / Q5_1), and which blocks the fast path may take. A fast block is finite
// and has a normal, finite d, so every x / d lands in [0, 2^5] after the offset and the x86 cast
// semantics reduce to a truncation; other blocks (ties, zeros, NaN, inf, subnormal scales) take
// the reference.
template <class Arch>
struct group_scalars {
  alignas(64) std::uint16_t dh[fbatch<Arch>::size];  // fp16 of d and m
  alignas(64) std::uint16_t mh[fbatch<Arch>::size];
  alignas(64) float d[fbatch<Arch>::size];
  alignas(64) float id[fbatch<Arch>::size];
  alignas(64) float m[fbatch<Arch>::size];
  alignas(64) float fast[fbatch<Arch>::size];
};

// fp32_to_fp16 of every lane. The F16C / AVX-512 conversion (round to nearest even) equals
// core/fp16.hpp's on every non-NaN float (checked exhaustively over all 2^32 patterns); the fast
// blocks this serves never have a NaN scale.
template <class Arch>
void store_fp16(fbatch<Arch> v, std::uint16_t* out) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out),
                       _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return;
  }
#endif
#if XSIMD_WITH_AVX2 && defined(__F16C__)
  if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
    _mm_store_si128(reinterpret_cast<__m128i*>(out),
                    _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return;
  }
#endif
  constexpr std::size_t w = fbatch<Arch>::size;
  alignas(64) float lanes[w];
  v.store_aligned(lanes);
  for (std::size_t k = 0; k < w; ++k) out[k] = fp32_to_fp16(lanes[k]);
}

// Q4_0 / Q5_0: d = max / -levels, max the signed value of largest magnitude.
template <class Arch>
void symmetric_scalars(const group_stats<Arch>& s, float levels, group_scalars<Arch>& g) noexcept {
  using fb = fbatch<Arch>;
  const fb neg_lo = -s.lo;
  const fb max = xsimd::select(s.hi > neg_lo, s.hi, s.lo);
  const fb d = max / fb(-levels);
  const auto fast = (s.probe == fb(0.0f)) & (s.hi != neg_lo) & (xsimd::abs(d) >= fb(FLT_MIN));
  d.store_aligned(g.d);
  store_fp16<Arch>(d, g.dh);
  (fb(1.0f) / d).store_aligned(g.id);
  fb(0.0f).store_aligned(g.m);
  xsimd::select(fast, fb(1.0f), fb(0.0f)).store_aligned(g.fast);
}

// Q4_1 / Q5_1: d = (max - min) / steps, m = min; a zero min or max may be +0 or -0 depending on
// which came first, so those blocks take the reference too.
template <class Arch>
void asymmetric_scalars(const group_stats<Arch>& s, float steps, group_scalars<Arch>& g) noexcept {
  using fb = fbatch<Arch>;
  const fb d = (s.hi - s.lo) / fb(steps);
  const auto fast = (s.probe == fb(0.0f)) & (s.lo != fb(0.0f)) & (s.hi != fb(0.0f)) &
                    (d >= fb(FLT_MIN)) & (d <= fb(FLT_MAX));
  d.store_aligned(g.d);
  store_fp16<Arch>(d, g.dh);
  (fb(1.0f) / d).store_aligned(g.id);
  s.lo.store_aligned(g.m);
  store_fp16<Arch>(s.lo, g.mh);
  xsimd::select(fast, fb(1.0f), fb(0.0f)).store_aligned(g.fast);
}

// One fast block's codes: trunc(t) capped at nmax, t = x * id + offset (symmetric) or
// (x - m) * id + offset (asymmetric); t is in [0, 2^5] here, so this is ggml's cast exactly.
template <class Arch, bool Asym>
void fast_codes(const float* p, float id, float m, float offset, std::int32_t nmax,
                ibatch<Arch>* u) noexcept {
  using fb = fbatch<Arch>;
  using ib = ibatch<Arch>;
  constexpr std::size_t w = fb::size;
  const fb vid(id), vm(m), voff(offset);
  for (std::size_t r = 0; r < nv<Arch>; ++r) {
    fb v = fb::load_unaligned(p + r * w);
    if constexpr (Asym) v = v - vm;
    u[r] = xsimd::min(xsimd::batch_cast<std::int32_t>(v * vid + voff), ib(nmax));
  }
}

}  // namespace qforge::quant::detail::legacy_simd
