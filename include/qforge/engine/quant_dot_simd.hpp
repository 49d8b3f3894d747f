// SPDX-License-Identifier: MIT
// The fast bodies of engine/quant_dot.hpp, templated on the xsimd arch and instantiated per ISA by
// engine/kernels.hpp's make_ops: the activation quantizers (generic xsimd, same bytes as the
// reference), and the integer dot products of Q2_K..Q6_K and Q8_0 rows with them. On x86 (AVX2, and
// AVX-512 builds, which include AVX2) a block's codes are unpacked in 32-byte registers and
// multiplied with maddubs (unsigned codes x signed activations, pairs summed to int16) then madd
// against the sub-block scale (int32): exactly the reference's per-block integer sums, so a row's
// result differs from dot_ref only in how the per-block floats are added. Code offsets and mins
// never enter the inner loop: they are one multiply with the activations' per-16 sums. Other archs
// run the reference, reached only through `else` so that the ISA objects never instantiate it.
// Every function here is a template on Arch, the small helpers included: an inline non-template
// compiled into both the AVX2 and the AVX-512 object could be merged by the linker into the
// AVX-512 copy and reached on an AVX2-only CPU.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#include "qforge/engine/quant_dot.hpp"

namespace qforge::engine::qdot {

// AVX2 integer instructions: the avx2 arch and every AVX-512 arch (xsimd's avx512f does not derive
// from avx2, but -mavx512f implies -mavx2).
template <class Arch>
inline constexpr bool x86_int8 =
    std::is_base_of_v<xsimd::avx2, Arch> || std::is_base_of_v<xsimd::avx512f, Arch>;

// Codes of one group of `n` values (a multiple of the batch size) into qs; returns the scale.
template <class Arch>
float quantize_group(const float* x, std::size_t n, std::int8_t* qs) noexcept {
  using B = xsimd::batch<float, Arch>;
  using I = xsimd::batch<std::int32_t, Arch>;
  constexpr std::size_t W = B::size;
  B m(0.0f);
  // select, not xsimd::max: GCC 12 flags the AVX-512 max intrinsic's pass-through operand as
  // uninitialised once inlined.
  for (std::size_t i = 0; i < n; i += W) {
    const B a = xsimd::abs(B::load_unaligned(x + i));
    m = xsimd::select(a > m, a, m);
  }
  alignas(64) float lanes[W];
  m.store_aligned(lanes);
  float amax = 0;
  for (float v : lanes) amax = amax < v ? v : amax;
  const B inv(amax > 0 ? 127.0f / amax : 0.0f);
  alignas(64) std::int32_t codes[qk];
  for (std::size_t i = 0; i < n; i += W) {
    const B v = B::load_unaligned(x + i) * inv;
#if XSIMD_WITH_AVX512F
    // The maskz form: GCC 12 flags the plain one's undefined pass-through (as in kernels.hpp).
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>)
      _mm512_store_si512(codes + i, _mm512_maskz_cvtps_epi32(0xffff, v));
    else
#endif
      xsimd::nearbyint_as_int(v).store_aligned(codes + i);
  }
  static_assert(sizeof(I) == W * 4);
  for (std::size_t i = 0; i < n; ++i) qs[i] = static_cast<std::int8_t>(codes[i]);
  return amax / 127.0f;
}

template <class Arch>
void quantize_q8_k(const float* x, std::size_t n, act_q8_k* y) noexcept {
  for (std::size_t b = 0; b < n / qk; ++b, x += qk) {
    y[b].d = quantize_group<Arch>(x, qk, y[b].qs);
    for (std::size_t j = 0; j < qk / 16; ++j) {
      int s = 0;
      for (std::size_t i = 0; i < 16; ++i) s += y[b].qs[16 * j + i];
      y[b].bsums[j] = static_cast<std::int16_t>(s);
    }
  }
}

template <class Arch>
void quantize_q8_0(const float* x, std::size_t n, act_q8_0* y) noexcept {
  for (std::size_t b = 0; b < n / quant::qk8_0; ++b, x += quant::qk8_0)
    y[b].d = quantize_group<Arch>(x, quant::qk8_0, y[b].qs);
}

// Q4_K / Q5_K scale bytes: the eight 6-bit scales and mins of get_scale_min_k4, four at a time
// through 32-bit words (bytes 0-3 hold scales 0-3 and the top bits of scales 4-7, bytes 4-7 the
// mins 0-3 and the top bits of mins 4-7, bytes 8-11 the low nibbles of scales / mins 4-7).
template <class Arch>
void unpack_k4(const std::uint8_t* p, std::uint8_t sc[8], std::uint8_t m[8]) noexcept {
  std::uint32_t w[3];
  std::memcpy(w, p, 12);
  const std::uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
  const std::uint32_t s[2] = {w[0] & lo6, (w[2] & lo4) | (((w[0] >> 6) & lo2) << 4)};
  const std::uint32_t n[2] = {w[1] & lo6, ((w[2] >> 4) & lo4) | (((w[1] >> 6) & lo2) << 4)};
  std::memcpy(sc, s, 8);
  std::memcpy(m, n, 8);
}

// Q3_K scale bytes: the sixteen 6-bit scales of q3_k::scale_of, minus 32. Bytes 0-7 hold the low
// nibbles (scales 0-7 low, 8-15 high), bytes 8-11 the top bit pairs (pair k of byte 8 + i belongs
// to scale 4k + i).
template <class Arch>
void unpack_k3(const std::uint8_t* p, std::int16_t sc[16]) noexcept {
  std::uint32_t w[3];
  std::memcpy(w, p, 12);
  const std::uint32_t lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
  const std::uint32_t v[4] = {(w[0] & lo4) | ((w[2] & lo2) << 4),
                              (w[1] & lo4) | (((w[2] >> 2) & lo2) << 4),
                              ((w[0] >> 4) & lo4) | (((w[2] >> 4) & lo2) << 4),
                              ((w[1] >> 4) & lo4) | (((w[2] >> 6) & lo2) << 4)};
  std::uint8_t u[16];
  std::memcpy(u, v, 16);
  for (int j = 0; j < 16; ++j) sc[j] = static_cast<std::int16_t>(u[j] - 32);
}

template <class Arch>
float half(std::uint16_t h) noexcept {
#if defined(__F16C__)
  if constexpr (x86_int8<Arch>)
    return _cvtsh_ss(h);
  else
#endif
    return fp16_to_fp32(h);
}

#if XSIMD_WITH_AVX2
namespace x86 {

template <class Arch>
__m256i load(const void* p) noexcept {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 32 unsigned codes x 32 signed activations: adjacent pairs summed (int16, no saturation: codes
// < 64), then pairs of those times the int16 scale of their lane, as 8 int32.
template <class Arch>
__m256i dot32(__m256i u, const std::int8_t* a, __m256i scale) noexcept {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, load<Arch>(a)), scale);
}

// int16 lanes 0-7 (values 0-15 of a 32) get `lo`, lanes 8-15 (values 16-31) get `hi`.
template <class Arch>
__m256i scales2(int lo, int hi) noexcept {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(hi)),
                          _mm_set1_epi16(static_cast<short>(lo)));
}

template <class Arch>
__m256i bytes(int v) noexcept {
  return _mm256_set1_epi8(static_cast<char>(v));
}

// sum_j bsums[j] * s16[j] over the 16 groups, as 8 int32 lanes.
template <class Arch>
__m256i group_sums(const std::int16_t* bsums, __m256i s16) noexcept {
  return _mm256_madd_epi16(load<Arch>(bsums), s16);
}

template <class Arch>
float hsum(__m256 v) noexcept {
  return xsimd::hadd(xsimd::batch<float, xsimd::avx2>(v));
}

// Q4_K and Q5_K: chunk c of 32 qs bytes holds sub-block 2c in its low nibbles and 2c + 1 in its
// high nibbles; Q5_K's fifth bits for those are bits 2c and 2c + 1 of qh.
template <class Arch, class Block>
[[gnu::always_inline]] inline __m256i body_q45(const Block& b, const act_q8_k& a,
                                               int& msum) noexcept {
  std::uint8_t sc[8], m[8];
  unpack_k4<Arch>(b.scales, sc, m);
  msum = 0;
  for (int j = 0; j < 8; ++j) msum += m[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
  const __m256i low = bytes<Arch>(0x0F);
  [[maybe_unused]] __m256i hb, one = bytes<Arch>(1);
  if constexpr (std::is_same_v<Block, quant::block_q5_k>) hb = load<Arch>(b.qh);
  __m256i acc = _mm256_setzero_si256();
  for (int c = 0; c < 4; ++c) {
    const __m256i q = load<Arch>(b.qs + 32 * c);
    __m256i lo = _mm256_and_si256(q, low), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
    if constexpr (std::is_same_v<Block, quant::block_q5_k>) {
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
      hi = _mm256_or_si256(hi,
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4));
      hb = _mm256_srli_epi16(hb, 2);
    }
    acc = _mm256_add_epi32(acc, dot32<Arch>(lo, a.qs + 64 * c, _mm256_set1_epi16(sc[2 * c])));
    acc = _mm256_add_epi32(acc,
                           dot32<Arch>(hi, a.qs + 64 * c + 32, _mm256_set1_epi16(sc[2 * c + 1])));
  }
  return acc;
}

template <class Arch>
[[gnu::always_inline]] inline __m256i body(const quant::block_q4_k& b, const act_q8_k& a,
                                           int& msum) noexcept {
  return body_q45<Arch>(b, a, msum);
}
template <class Arch>
[[gnu::always_inline]] inline __m256i body(const quant::block_q5_k& b, const act_q8_k& a,
                                           int& msum) noexcept {
  return body_q45<Arch>(b, a, msum);
}

// Q6_K: per half of 128, ql bytes 0-31 / 32-63 hold values 0-31 / 32-63 in their low nibbles and
// 64-95 / 96-127 in their high nibbles; qh bit pairs 0, 2, 4, 6 are those four runs' top bits.
// Codes stay unsigned (0..63); the -32 is 32 * sum_j sc_j * bsum_j.
template <class Arch>
[[gnu::always_inline]] inline __m256i body(const quant::block_q6_k& b, const act_q8_k& a,
                                           int& msum) noexcept {
  msum = 0;
  const __m256i low = bytes<Arch>(0x0F), top = bytes<Arch>(0x30);
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    const __m256i l0 = load<Arch>(b.ql + 64 * h), l1 = load<Arch>(b.ql + 64 * h + 32);
    const __m256i hb = load<Arch>(b.qh + 32 * h);
    const std::int8_t* sc = b.scales + 8 * h;
    const std::int8_t* x = a.qs + 128 * h;
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(hb, 4), top)),
        _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(hb, 2), top)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(hb, top)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low),
                        _mm256_and_si256(_mm256_srli_epi16(hb, 2), top))};
    for (int r = 0; r < 4; ++r)
      acc = _mm256_add_epi32(
          acc, dot32<Arch>(q[r], x + 32 * r, scales2<Arch>(sc[2 * r], sc[2 * r + 1])));
  }
  const __m256i s16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  return _mm256_sub_epi32(acc, _mm256_slli_epi32(group_sums<Arch>(a.bsums, s16), 5));
}

// Q3_K: per half of 128, shift s of the 32 qs bytes gives values 32s..32s+31, whose third bit is
// hmask bit 4h + s; codes 0..7 unsigned, the -4 folded into the group sums.
template <class Arch>
[[gnu::always_inline]] inline __m256i body(const quant::block_q3_k& b, const act_q8_k& a,
                                           int& msum) noexcept {
  msum = 0;
  alignas(32) std::int16_t sc[16];
  unpack_k3<Arch>(b.scales, sc);
  const __m256i three = bytes<Arch>(3), one = bytes<Arch>(1);
  __m256i hm = load<Arch>(b.hmask);
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    __m256i q = load<Arch>(b.qs + 32 * h);
    for (int s = 0; s < 4; ++s) {
      const __m256i u = _mm256_or_si256(_mm256_and_si256(q, three),
                                        _mm256_slli_epi16(_mm256_and_si256(hm, one), 2));
      const int j = 8 * h + 2 * s;
      acc = _mm256_add_epi32(
          acc, dot32<Arch>(u, a.qs + 32 * (4 * h + s), scales2<Arch>(sc[j], sc[j + 1])));
      q = _mm256_srli_epi16(q, 2);
      hm = _mm256_srli_epi16(hm, 1);
    }
  }
  return _mm256_sub_epi32(acc, _mm256_slli_epi32(group_sums<Arch>(a.bsums, load<Arch>(sc)), 2));
}

// Q2_K: like Q3_K without the high bit; 4-bit scale and min per 16.
template <class Arch>
[[gnu::always_inline]] inline __m256i body(const quant::block_q2_k& b, const act_q8_k& a,
                                           int& msum) noexcept {
  msum = 0;
  for (int j = 0; j < 16; ++j) msum += (b.scales[j] >> 4) * a.bsums[j];
  const __m256i three = bytes<Arch>(3);
  __m256i acc = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    __m256i q = load<Arch>(b.qs + 32 * h);
    for (int s = 0; s < 4; ++s) {
      const int j = 8 * h + 2 * s;
      acc = _mm256_add_epi32(acc,
                             dot32<Arch>(_mm256_and_si256(q, three), a.qs + 32 * (4 * h + s),
                                         scales2<Arch>(b.scales[j] & 0xF, b.scales[j + 1] & 0xF)));
      q = _mm256_srli_epi16(q, 2);
    }
  }
  return acc;
}

// Blocks' int32 lanes scaled by d_w * d_a into float lanes; the mins term (dmin * d_a * msum)
// summed apart so it costs nothing for types without mins.
template <class Arch, class Block>
float dot_k(const Block* w, const act_q8_k* a, std::size_t nb) noexcept {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float mins = 0;
  for (std::size_t b = 0; b < nb; ++b) {
    int msum;
    const __m256 s = _mm256_cvtepi32_ps(body<Arch>(w[b], a[b], msum));
    const __m256 d = _mm256_set1_ps(half<Arch>(w[b].d) * a[b].d);
    if (b & 1)
      acc1 = _mm256_fmadd_ps(d, s, acc1);
    else
      acc0 = _mm256_fmadd_ps(d, s, acc0);
    if constexpr (requires { w[b].dmin; })
      mins += half<Arch>(w[b].dmin) * a[b].d * static_cast<float>(msum);
  }
  return hsum<Arch>(_mm256_add_ps(acc0, acc1)) - mins;
}

// Q8_0: signed x signed through maddubs by moving the weight's sign onto the activation.
template <class Arch>
float dot_q8_0(const quant::block_q8_0* w, const act_q8_0* a, std::size_t nb) noexcept {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (std::size_t b = 0; b < nb; ++b) {
    const __m256i q = load<Arch>(w[b].qs);
    const __m256i p = _mm256_madd_epi16(
        _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(load<Arch>(a[b].qs), q)), ones);
    const __m256 d = _mm256_set1_ps(half<Arch>(w[b].d) * a[b].d);
    if (b & 1)
      acc1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc1);
    else
      acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum<Arch>(_mm256_add_ps(acc0, acc1));
}

}  // namespace x86
#endif

#if XSIMD_WITH_AVX512BW
// AVX-512BW: the same per-block integer sums with two 32-value runs per 64-byte register, so half
// the multiply-adds; per-run scales come from one int16 scale register through vpermw (Q6_K) or
// vpshufb (Q4_K / Q5_K). Four rows per pass (rows_k): a row of these small models is 2-5 blocks,
// so the per-row set-up and final reduction cost as much as a block. Q2_K, Q3_K and Q8_0 keep the
// 256-bit bodies (a two-blocks-per-register Q8_0 body measured slower on Zen 5).
namespace x512 {

// Masked forms throughout, even for casts and inserts: GCC 12 flags the plain forms' undefined
// pass-through operand as uninitialised once inlined (as kernels.hpp notes).
template <class Arch>
__m512i join(__m256i lo, __m256i hi) noexcept {
  return _mm512_mask_broadcast_i64x4(_mm512_maskz_broadcast_i64x4(0x0f, lo), 0xf0, hi);
}

template <class Arch>
__m512i twice(const void* p) noexcept {
  return _mm512_maskz_broadcast_i64x4(0xff, x86::load<Arch>(p));
}

template <class Arch>
__m512i load(const void* p) noexcept {
  return _mm512_loadu_si512(p);
}

// vpermw indices: int16 lanes 8k..8k+7 select scale first + k, k < 4: for runs of 16 values.
template <class Arch>
__m512i pick4(int first) noexcept {
  return _mm512_add_epi16(
      _mm512_set1_epi16(static_cast<short>(first)),
      _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                         16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                        3));
}

template <class Arch>
__m512i dot64(__m512i u, __m512i a, __m512i scale) noexcept {
  return _mm512_madd_epi16(_mm512_maddubs_epi16(u, a), scale);
}

template <class Arch>
__m512i bytes(int v) noexcept {
  return _mm512_set1_epi8(static_cast<char>(v));
}

// Q4_K / Q5_K, activations side, once per block for every row that uses it. Register k holds the
// 32 activations of run 4(k/2) + k%2 in its lower half and of run 4(k/2) + k%2 + 2 in its upper
// half: what the nibbles of one 64-byte load of qs line up with (qs bytes 0-31 hold runs 0 / 1 in
// their low / high nibbles, bytes 32-63 runs 2 / 3, bytes 64-127 runs 4-7 likewise). pairs: int16
// lanes 8-15 the sums of the activations' 16-value groups 2j and 2j + 1 (the runs' sums), lanes
// 0-7 zero, to meet the mins in scales_k4's layout.
template <class Arch>
[[gnu::always_inline]] inline void prep_q45(const act_q8_k& a, __m512i x[4],
                                            __m256i& pairs) noexcept {
  for (int k = 0; k < 4; ++k) {
    const std::int8_t* p = a.qs + 128 * (k / 2) + 32 * (k % 2);
    x[k] = join<Arch>(x86::load<Arch>(p), x86::load<Arch>(p + 64));
  }
  const __m256i bs = x86::load<Arch>(a.bsums);
  // hadd: 64-bit words [runs 0-3, runs 0-3, runs 4-7, runs 4-7]; keep words 0 and 2 as 2 and 3.
  pairs = _mm256_maskz_permutex_epi64(0xc, _mm256_hadd_epi16(bs, bs), 0x80);
}

// Q4_K / Q5_K scale bytes (get_scale_min_k4) as int16 lanes [sc0..sc7, m0..m7], in registers:
// bytes 0-3 hold sc0-3 (low 6 bits) and the top bits of sc4-7, bytes 4-7 m0-3 and the top bits of
// m4-7, bytes 8-11 the low nibbles of sc4-7 and (high nibbles) of m4-7. Reads 16 bytes from p: the
// 4 after the scales are the block's first qs bytes.
template <class Arch>
[[gnu::always_inline]] inline __m256i scales_k4(const std::uint8_t* p) noexcept {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i b8 = _mm_set1_epi8(0x0F), lo6 = _mm_set1_epi8(0x3F), top = _mm_set1_epi8(0x30);
  // Bytes 8-11 twice, the second copy shifted down a nibble: low nibbles of sc4-7 then of m4-7.
  const __m128i twice8 = _mm_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m128i nib =
      _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi8(q, twice8), _mm_setr_epi32(0, 4, 0, 0)), b8);
  // Each byte's top two bits to bits 4-5 (a 16-bit shift; the mask drops the neighbour's bits).
  const __m128i hi = _mm_or_si128(nib, _mm_and_si128(_mm_srli_epi16(q, 2), top));
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi32(_mm_and_si128(q, lo6), hi));
}

// One Q4_K / Q5_K block of a row against prep_q45's activations: int32 lanes summing to
// sum_j sc_j (q . a)_j, and in `mins` int32 lanes summing to sum_j m_j bsum_j.
template <class Arch, class Block>
[[gnu::always_inline]] inline __m512i body_q45(const Block& b, const __m512i x[4], __m256i pairs,
                                               __m256i& mins) noexcept {
  const __m256i u = scales_k4<Arch>(b.scales);
  mins = _mm256_madd_epi16(u, pairs);
  // Every 128-bit lane the eight scales; vpshufb picks run j's as int16 words per lane.
  const __m512i sc = _mm512_maskz_broadcast_i32x4(0xffff, _mm256_castsi256_si128(u));
  const __m512i low = bytes<Arch>(0x0F);
  const __m512i q01 = load<Arch>(b.qs), q23 = load<Arch>(b.qs + 64);
  __m512i v[4] = {_mm512_and_si512(q01, low), _mm512_and_si512(_mm512_srli_epi16(q01, 4), low),
                  _mm512_and_si512(q23, low), _mm512_and_si512(_mm512_srli_epi16(q23, 4), low)};
  __m512i p[4];
  for (int k = 0; k < 4; ++k) {
    const int j = 4 * (k / 2) + k % 2;  // the lower half's run; the upper half's is j + 2
    if constexpr (std::is_same_v<Block, quant::block_q5_k>) {
      const __m512i hb = _mm512_srlv_epi16(
          twice<Arch>(b.qh), join<Arch>(_mm256_set1_epi16(static_cast<short>(j)),
                                        _mm256_set1_epi16(static_cast<short>(j + 2))));
      v[k] = _mm512_or_si512(v[k], _mm512_slli_epi16(_mm512_and_si512(hb, bytes<Arch>(1)), 4));
    }
    const __m512i pick = join<Arch>(_mm256_set1_epi16(static_cast<short>(0x0101 * 2 * j + 0x100)),
                                    _mm256_set1_epi16(static_cast<short>(0x0101 * 2 * j + 0x504)));
    p[k] = dot64<Arch>(v[k], x[k], _mm512_shuffle_epi8(sc, pick));
  }
  return _mm512_add_epi32(_mm512_add_epi32(p[0], p[1]), _mm512_add_epi32(p[2], p[3]));
}

// Q6_K. Per half h, ql bytes 64h..64h+63 hold values 0-63 (low nibbles) and 64-127 (high) of the
// half in order; their top bits are qh bytes 32h.. at shifts 0 / 2 (values 0-31 / 32-63) and 4 / 6.
template <class Arch>
[[gnu::always_inline]] inline __m512i body_q6(const quant::block_q6_k& b, const act_q8_k& a,
                                              __m256i& corr) noexcept {
  const __m256i s16 =
      _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
  corr = _mm256_slli_epi32(x86::group_sums<Arch>(a.bsums, s16), 5);
  const __m512i s512 = _mm512_maskz_broadcast_i64x4(0xff, s16);
  const __m512i low = bytes<Arch>(0x0F), top = bytes<Arch>(0x30);
  const __m512i up = join<Arch>(_mm256_set1_epi16(4), _mm256_set1_epi16(2));
  const __m512i down = join<Arch>(_mm256_setzero_si256(), _mm256_set1_epi16(2));
  __m512i acc = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    const __m512i l = load<Arch>(b.ql + 64 * h);
    const __m512i hb = twice<Arch>(b.qh + 32 * h);
    const __m512i q0 =
        _mm512_or_si512(_mm512_and_si512(l, low), _mm512_and_si512(_mm512_sllv_epi16(hb, up), top));
    const __m512i q1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low),
                                       _mm512_and_si512(_mm512_srlv_epi16(hb, down), top));
    const std::int8_t* x = a.qs + 128 * h;
    acc = _mm512_add_epi32(
        acc, dot64<Arch>(q0, load<Arch>(x), _mm512_permutexvar_epi16(pick4<Arch>(8 * h), s512)));
    acc =
        _mm512_add_epi32(acc, dot64<Arch>(q1, load<Arch>(x + 64),
                                          _mm512_permutexvar_epi16(pick4<Arch>(8 * h + 4), s512)));
  }
  return acc;
}

// R rows' sums into y[0, R): per row, the two halves of its float lanes plus its mins lanes, then
// the eight lanes in the same tree whatever R is (so a row's result does not depend on how many
// rows were taken with it, nor on the thread count).
template <class Arch, std::size_t R>
[[gnu::always_inline]] inline void finish(const __m512* acc, const __m256* accm,
                                          float* y) noexcept {
  __m256 t[4];
  for (std::size_t r = 0; r < 4; ++r) {
    const __m512 s = acc[r < R ? r : 0];
    t[r] = _mm256_add_ps(_mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xff, s, 0),
                                       _mm512_maskz_extractf32x8_ps(0xff, s, 1)),
                         accm[r < R ? r : 0]);
  }
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(t[0], t[1]), _mm256_hadd_ps(t[2], t[3]));
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  if constexpr (R == 4) {
    _mm_storeu_ps(y, s);
  } else {
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, s);
    for (std::size_t r = 0; r < R; ++r) y[r] = lanes[r];
  }
}

// R consecutive rows of nb blocks (row r at w + r * nb) . the same nb activation blocks: each
// block's activations are loaded once for the R rows, and the R rows' lanes are reduced together.
template <class Arch, class Block, std::size_t R>
void rows_k(const Block* w, std::size_t nb, const act_q8_k* a, float* y) noexcept {
  constexpr bool q6 = std::is_same_v<Block, quant::block_q6_k>;
  __m512 acc[R];
  __m256 accm[R];
  for (std::size_t r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();
  for (std::size_t b = 0; b < nb; ++b) {
    [[maybe_unused]] __m512i x[4];
    [[maybe_unused]] __m256i pairs;
    if constexpr (!q6) prep_q45<Arch>(a[b], x, pairs);
    for (std::size_t r = 0; r < R; ++r) {
      const Block& blk = w[r * nb + b];
      __m256i side;
      if constexpr (q6) {
        // The code offset is scaled like the codes: subtract it in int32, exactly.
        __m512i s = body_q6<Arch>(blk, a[b], side);
        s = _mm512_sub_epi32(s, _mm512_maskz_broadcast_i64x4(0x0f, side));
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(half<Arch>(blk.d) * a[b].d),
                                 _mm512_maskz_cvtepi32_ps(0xffff, s), acc[r]);
      } else {
        const __m512i s = body_q45<Arch, Block>(blk, x, pairs, side);
        // d and dmin are adjacent fp16 values: convert and scale both at once.
        static_assert(offsetof(Block, dmin) == offsetof(Block, d) + 2);
        std::uint32_t dd;
        std::memcpy(&dd, reinterpret_cast<const std::byte*>(&blk) + offsetof(Block, d), 4);
        const __m128 f =
            _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dd))), _mm_set1_ps(a[b].d));
        acc[r] = _mm512_fmadd_ps(_mm512_maskz_broadcastss_ps(0xffff, f),
                                 _mm512_maskz_cvtepi32_ps(0xffff, s), acc[r]);
        accm[r] = _mm256_fnmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(f)),
                                   _mm256_cvtepi32_ps(side), accm[r]);
      }
    }
  }
  finish<Arch, R>(acc, accm, y);
}

}  // namespace x512
#endif

template <class Arch, class Block>
inline constexpr bool wide_rows =
#if XSIMD_WITH_AVX512BW
    (std::is_same_v<Block, quant::block_q4_k> || std::is_same_v<Block, quant::block_q5_k> ||
     std::is_same_v<Block, quant::block_q6_k>) &&
    std::is_base_of_v<xsimd::avx512bw, Arch>;
#else
    false;
#endif

// Row of nb K-quant blocks . nb act_q8_k blocks.
template <class Arch, class Block>
float dot(const Block* w, const act_q8_k* a, std::size_t nb) noexcept {
#if XSIMD_WITH_AVX512BW
  if constexpr (wide_rows<Arch, Block>) {
    float y;
    x512::rows_k<Arch, Block, 1>(w, nb, a, &y);
    return y;
  } else
#endif
#if XSIMD_WITH_AVX2 && defined(__FMA__)
      if constexpr (x86_int8<Arch>)
    return x86::dot_k<Arch>(w, a, nb);
  else
#endif
    return dot_ref(w, a, nb);
}

// Row of nb Q8_0 blocks . nb act_q8_0 blocks.
template <class Arch>
float dot(const quant::block_q8_0* w, const act_q8_0* a, std::size_t nb) noexcept {
#if XSIMD_WITH_AVX2 && defined(__FMA__)
  if constexpr (x86_int8<Arch>)
    return x86::dot_q8_0<Arch>(w, a, nb);
  else
#endif
    return dot_ref(w, a, nb);
}

// y[r] = row r . a for r < rows, rows of nb blocks one after another from w: the products of one
// matrix with one token's activations. The AVX-512 bodies take four rows per pass (same result per
// row as dot()); the others one row at a time.
template <class Arch, class Block, class Act>
void dot_rows(const Block* w, std::size_t nb, std::size_t rows, const Act* a, float* y) noexcept {
  std::size_t r = 0;
#if XSIMD_WITH_AVX512BW
  if constexpr (wide_rows<Arch, Block>)
    for (; r + 4 <= rows; r += 4) x512::rows_k<Arch, Block, 4>(w + r * nb, nb, a, y + r);
#endif
  for (; r < rows; ++r) y[r] = dot<Arch>(w + r * nb, a, nb);
}

}  // namespace qforge::engine::qdot
