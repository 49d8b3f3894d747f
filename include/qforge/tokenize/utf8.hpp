// SPDX-License-Identifier: MIT
// UTF-8 helpers of the tokenizer: decoding a code point, appending one, and making arbitrary bytes
// valid. Hugging Face `tokenizers` only ever sees valid text (a Rust &str, or a Python str the
// caller decoded); bytes that are not UTF-8 reach it after Python's bytes.decode("utf-8",
// "replace") or Rust's String::from_utf8_lossy, which agree: each maximal ill-formed subpart (the
// Unicode Standard's "substitution of maximal subparts", chapter 3.9) becomes one U+FFFD. The
// tokenizer applies the same rule, so its ids equal HF's on the replaced text; the ByteLevel and
// ByteFallback decoders use it too, as HF's do.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace qforge::tokenize::utf8 {

inline constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  // U+FFFD

// Bytes of the sequence a lead byte starts (1 for ASCII and for invalid leads).
inline std::size_t sequence_length(unsigned char lead) noexcept {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : lead < 0xF8 ? 4 : 1;
}

// Decodes the code point at s[i] of valid UTF-8 and advances i past it.
inline char32_t next(std::string_view s, std::size_t& i) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const std::size_t n = sequence_length(b0);
  char32_t c = b0 & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return c;
}

inline void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Length of the well-formed sequence at s[i], or 0 with `bad` set to the length of its maximal
// ill-formed subpart (at least 1). Table 3-7 of the Unicode Standard: the second byte's range
// depends on the lead (E0, ED, F0, F4 narrow it), so overlongs and surrogates are ill-formed.
inline std::size_t well_formed_at(std::string_view s, std::size_t i, std::size_t& bad) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    bad = 1;
    return 0;
  }
  for (std::size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      bad = k;
      return 0;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
      bad = k;
      return 0;
    }
  }
  return n;
}

// Byte offset of the first ill-formed sequence, or nullopt when s is valid UTF-8.
inline std::optional<std::size_t> first_invalid(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    // Eight ASCII bytes at a time: most text is ASCII and this is the hot path of encode().
    while (i + 8 <= s.size()) {
      std::uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    std::size_t bad = 0;
    const std::size_t n = well_formed_at(s, i, bad);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

// s with every maximal ill-formed subpart replaced by U+FFFD (Rust's from_utf8_lossy).
inline std::string make_valid(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t bad = 0;
    const std::size_t n = well_formed_at(s, i, bad);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append(replacement_char);
      i += bad;
    }
  }
  return out;
}

// Unicode White_Space (Rust's char::is_whitespace, regex's \s, Oniguruma's \s): stable since
// Unicode 6.3 moved U+180E out.
inline bool is_white_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace qforge::tokenize::utf8
