// SPDX-License-Identifier: MIT
// The regexes of tokenizer.json (Split pre-tokenizer, Replace normalizer/decoder) through PCRE2
// with its JIT. Hugging Face `tokenizers` runs them with Oniguruma in Ruby syntax, so a pattern is
// translated where the two engines disagree: \s / \S are Unicode White_Space (PCRE2's \s still
// counts U+180E), \w / \d / \h keep Oniguruma's meanings (letters, marks, decimal digits and
// connectors / decimal digits / hex digits), ^ and $ are line anchors, and Ruby's (?m) is PCRE2's
// (?s). Unicode properties get the code points assigned after PCRE2's Unicode version
// (unicode_extra.hpp), so \p{L} means what it means to the Oniguruma that HF ships. Matches are
// iterated the way Oniguruma's find_iter (onig crate) does: non-overlapping, and an empty match
// right after the previous match is skipped.
#pragma once
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/tokenize/unicode_extra.hpp"
#include "qforge/tokenize/utf8.hpp"

namespace qforge::tokenize {

// [begin, end) byte offsets of one match or piece.
struct span {
  std::uint32_t begin, end;
};

namespace detail {

inline std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

// Per-thread match state: match data (only group 0 is read) and a JIT stack larger than PCRE2's
// 32 KiB default, which a pattern like \s+(?!\S) on a long whitespace run can exhaust.
struct match_scratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr);
  match_scratch() {
    if (!data || !context || !stack) throw std::bad_alloc();
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  match_scratch(const match_scratch&) = delete;
  match_scratch& operator=(const match_scratch&) = delete;
  ~match_scratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

inline match_scratch& thread_scratch() {
  thread_local match_scratch s;
  return s;
}

inline bool is_pcre2_script(std::string_view name) {
  if (name.size() <= 2) return false;  // general categories (L, Lu, ...) and their groups
  const std::string probe = cat("\\p{sc:", name, "}");
  int code = 0;
  PCRE2_SIZE at = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(probe.data()), probe.size(),
                                 PCRE2_UTF | PCRE2_UCP, &code, &at, nullptr);
  pcre2_code_free(re);
  return re != nullptr;
}

// Oniguruma (Ruby syntax) pattern -> PCRE2 pattern with the same meaning; see the file comment.
// `where` names the component in errors.
inline std::string translate_onig(std::string_view p, const std::string& path,
                                  std::string_view where) {
  auto unsupported = [&](std::string_view what) {
    return error(error::kind::unsupported, path,
                 cat(where, ": regex '", p, "': ", what, " has no PCRE2 equivalent here"));
  };
  // Oniguruma's Unicode \w: Alphabetic, marks, decimal digits, connectors, and the Latin-1
  // superscripts and fractions (its Latin-1 ctype table counts them as word characters).
  const std::string word = cat(R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{B2}\x{B3}\x{B9}\x{BC}-\x{BE})",
                               unicode_extra("L"), unicode_extra("M"), unicode_extra("Nd"));
  const std::string digit = cat("\\p{Nd}", unicode_extra("Nd"));
  std::string out;
  out.reserve(p.size() + 16);
  int in_class = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '[') {
      ++in_class;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += "\\]", ++i;  // leading ] is literal
      continue;
    }
    if (c == ']' && in_class > 0) {
      --in_class;
      out += c;
      continue;
    }
    if (c == '(' && in_class == 0 && i + 1 < p.size() && p[i + 1] == '?') {
      // Inline options: Ruby's m is dot-matches-newline, PCRE2's s.
      out += "(?";
      std::size_t j = i + 2;
      while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-'))
        out += p[j] == 'm' ? 's' : p[j], ++j;
      i = j - 1;
      continue;
    }
    if (c != '\\' || i + 1 >= p.size()) {
      out += c;
      continue;
    }
    const char e = p[++i];
    const bool in = in_class > 0;
    switch (e) {
      case 's':
        out += "\\p{White_Space}";
        break;
      case 'S':
        out += "\\P{White_Space}";
        break;
      case 'h':
        out += in ? "0-9a-fA-F" : "[0-9a-fA-F]";
        break;
      case 'H':
        if (in) throw unsupported("\\H inside a class");
        out += "[^0-9a-fA-F]";
        break;
      case 'w':
        out += in ? word : cat("[", word, "]");
        break;
      case 'W':
        if (in) throw unsupported("\\W inside a class");
        out += cat("[^", word, "]");
        break;
      case 'd':
        out += cat(in ? "" : "[", digit, in ? "" : "]");
        break;
      case 'D':
        if (in && !unicode_extra("Nd").empty()) throw unsupported("\\D inside a class");
        out += in ? std::string("\\P{Nd}") : cat("[^", digit, "]");
        break;
      case 'p':
      case 'P': {
        const auto close = p.find('}', i);
        if (i + 1 >= p.size() || p[i + 1] != '{' || close == std::string_view::npos) {
          out += '\\';
          out += e;
          break;
        }
        std::string_view name = p.substr(i + 2, close - i - 2);
        bool negated = e == 'P';
        if (!name.empty() && name[0] == '^') negated = !negated, name.remove_prefix(1);
        // PCRE2's \p{Han} means Script_Extensions=Han; Oniguruma's, like sc:Han, Script=Han.
        const std::string pname = is_pcre2_script(name) ? cat("sc:", name) : std::string(name);
        const std::string prop = cat("\\p{", pname, "}");
        const auto extra = unicode_extra(name);
        if (extra.empty()) {
          out += cat(negated ? "\\P{" : "\\p{", pname, "}");
        } else if (in) {
          if (negated) throw unsupported(cat("\\P{", name, "} inside a class"));
          out += prop + std::string(extra);
        } else {
          out += cat(negated ? "[^" : "[", prop, extra, "]");
        }
        i = close;
        break;
      }
      case 'u':
        // Ruby's \uHHHH; PCRE2 spells it \x{HHHH}.
        if (i + 4 < p.size()) {
          out += cat("\\x{", p.substr(i + 1, 4), "}");
          i += 4;
        } else {
          out += "\\u";
        }
        break;
      default:
        out += '\\';
        out += e;
    }
  }
  return out;
}

}  // namespace detail

// A compiled pattern, shareable between threads (PCRE2 code is read-only once JIT-compiled).
class regex {
 public:
  regex() = default;
  // `literal`: the pattern is plain text (tokenizer.json's {"String": ...}); else Oniguruma
  // syntax ({"Regex": ...}). Throws error{unsupported} naming `where` and `path` when the pattern
  // does not compile.
  regex(std::string_view pattern, bool literal, const std::string& path, std::string_view where)
      : source_(pattern) {
    const std::string translated =
        literal ? std::string(pattern) : detail::translate_onig(pattern, path, where);
    const std::uint32_t options =
        PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
    pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int code = 0;
    PCRE2_SIZE at = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), options, &code, &at, cc);
    pcre2_compile_context_free(cc);
    if (!re)
      throw error(error::kind::unsupported, path,
                  cat(where, ": regex '", pattern, "' does not compile (PCRE2, as '", translated,
                      "', at ", at, "): ", detail::pcre2_message(code)));
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // interpreter fallback when JIT is unavailable
    code_ = std::shared_ptr<pcre2_code>(re, pcre2_code_free);
  }

  [[nodiscard]] const std::string& source() const noexcept { return source_; }

  // Whether the pattern matches all of s (valid UTF-8).
  [[nodiscard]] bool matches_whole(std::string_view s) const {
    auto& m = detail::thread_scratch();
    const int rc =
        pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                    PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED | PCRE2_ENDANCHORED, m.data, m.context);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
      throw error(error::kind::internal,
                  cat("regex '", source_, "': match failed: ", detail::pcre2_message(rc)));
    return rc >= 0;
  }
  [[nodiscard]] bool empty() const noexcept { return !code_; }

  // Appends every match in text to out, as Oniguruma's find_iter yields them. text must be valid
  // UTF-8. Throws error{internal} if PCRE2 gives up (resource limits on pathological input).
  void find_all(std::string_view text, std::vector<span>& out) const {
    auto& s = detail::thread_scratch();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t from = 0;
    std::optional<std::size_t> last_match_end;
    while (from <= text.size()) {
      const int rc = pcre2_match(code_.get(), subject, text.size(), from, PCRE2_NO_UTF_CHECK,
                                 s.data, s.context);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0)
        throw error(error::kind::internal,
                    cat("regex '", source_, "': match failed: ", detail::pcre2_message(rc)));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
      const std::size_t b = ov[0], e = ov[1];
      if (b == e) {
        // Step over one character so the search progresses; an empty match touching the previous
        // match's end is not reported.
        from = e < text.size() ? e + utf8::sequence_length(static_cast<unsigned char>(text[e]))
                               : e + 1;
        if (last_match_end == e) continue;
      } else {
        from = e;
      }
      last_match_end = e;
      out.push_back({static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(e)});
    }
  }

 private:
  std::string source_;
  std::shared_ptr<pcre2_code> code_;
};

}  // namespace qforge::tokenize
