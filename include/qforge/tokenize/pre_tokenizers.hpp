// SPDX-License-Identifier: MIT
// tokenizer.json "pre_tokenizer": Split (the file's regex or string, every delimiter behaviour,
// invert), ByteLevel, Metaspace, Digits, WhitespaceSplit and Sequence, splitting each normalized
// piece the way Hugging Face `tokenizers` does (NormalizedString::split, pre_tokenizers/*.rs):
// patterns are matched inside one piece at a time, empty pieces vanish. ByteLevel's byte -> char
// mapping is not applied here: the BPE model works on raw bytes and maps through a 256-entry table
// (same ids, no re-encoding), so ByteLevel must be the last step, as it is in every published file.
#pragma once
#include <utf8proc.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/tokenize/normalizers.hpp"
#include "qforge/tokenize/regex.hpp"
#include "qforge/tokenize/utf8.hpp"

namespace qforge::tokenize {

// GPT-2's split, which ByteLevel applies itself when use_regex is on
// (pre_tokenizers/byte_level.rs).
inline constexpr std::string_view gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Pieces of one normalized segment: spans of `text`, which points into the segment or `own`.
struct pieces {
  struct piece {
    std::uint32_t begin, end;
    bool at_origin;  // starts at byte 0 of the caller's input (Metaspace "first")
  };
  std::string_view text;
  std::string own;
  std::vector<piece> list;
  // scratch
  std::string next_text;
  std::vector<piece> next_list;
  std::vector<span> matches;
  std::vector<std::pair<span, bool>> marked;

  void reset(std::string_view segment, bool at_origin) {
    text = segment;
    list.clear();
    if (!segment.empty())
      list.push_back({0, static_cast<std::uint32_t>(segment.size()), at_origin});
  }
  [[nodiscard]] std::string_view view(const piece& p) const {
    return text.substr(p.begin, p.end - p.begin);
  }
};

class pre_tokenizer {
 public:
  enum class behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
  enum class kind { split, byte_level, metaspace, digits, whitespace_split };
  enum class prepend { always, first, never };

  // Flattens Sequence; throws error{unsupported} for components it does not implement and for a
  // step after ByteLevel. `byte_level` is set when ByteLevel is present.
  static std::vector<pre_tokenizer> parse(const nlohmann::json& j, const std::string& path,
                                          bool& byte_level) {
    std::vector<pre_tokenizer> out;
    byte_level = false;
    add(j, path, out);
    for (std::size_t i = 0; i < out.size(); ++i)
      if (out[i].kind_ == kind::byte_level) {
        byte_level = true;
        if (i + 1 != out.size())
          throw error(error::kind::unsupported, path,
                      "pre-tokenizer steps after ByteLevel are not supported (they would see "
                      "byte-level characters)");
      }
    return out;
  }

  void apply(pieces& ps) const {
    switch (kind_) {
      case kind::split:
        split_by(ps, behavior_, [&](std::string_view s, std::vector<std::pair<span, bool>>& m) {
          regex_matches(pattern_, s, invert_, ps.matches, m);
        });
        return;
      case kind::byte_level:
        if (add_prefix_space_) {
          rewrite(ps, [](std::string_view s, bool, std::string& out) {
            if (s.front() != ' ') out += ' ';
            out.append(s);
          });
        }
        if (use_regex_) {
          split_by(ps, behavior::isolated,
                   [&](std::string_view s, std::vector<std::pair<span, bool>>& m) {
                     regex_matches(gpt2(), s, false, ps.matches, m);
                   });
        }
        return;
      case kind::metaspace:
        rewrite(ps, [&](std::string_view s, bool at_origin, std::string& out) {
          const bool starts = s.substr(0, replacement_.size()) == replacement_ ||
                              (s.front() == ' ');  // the leading space becomes the replacement
          if (!starts && (prepend_ == prepend::always || (prepend_ == prepend::first && at_origin)))
            out.append(replacement_);
          for (const char c : s) {
            if (c == ' ')
              out.append(replacement_);
            else
              out += c;
          }
        });
        if (split_) {
          split_by(ps, behavior::merged_with_next,
                   [&](std::string_view s, std::vector<std::pair<span, bool>>& m) {
                     char_matches(
                         s, [&](char32_t c) { return c == replacement_cp_; }, m);
                   });
        }
        return;
      case kind::digits:
        split_by(ps, individual_ ? behavior::isolated : behavior::contiguous,
                 [&](std::string_view s, std::vector<std::pair<span, bool>>& m) {
                   char_matches(s, is_numeric, m);
                 });
        return;
      case kind::whitespace_split:
        split_by(ps, behavior::removed,
                 [&](std::string_view s, std::vector<std::pair<span, bool>>& m) {
                   char_matches(s, utf8::is_white_space, m);
                 });
        return;
    }
  }

  [[nodiscard]] kind which() const noexcept { return kind_; }

 private:
  static const regex& gpt2() {
    static const regex re(gpt2_regex, false, "", "ByteLevel");
    return re;
  }

  // Rust's char::is_numeric: general categories Nd, Nl, No.
  static bool is_numeric(char32_t c) {
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
           cat == UTF8PROC_CATEGORY_NO;
  }

  // Pattern::find_matches for a regex: matches and the gaps between them, in order.
  static void regex_matches(const regex& re, std::string_view s, bool invert,
                            std::vector<span>& scratch, std::vector<std::pair<span, bool>>& m) {
    scratch.clear();
    re.find_all(s, scratch);
    std::uint32_t prev = 0;
    for (const auto& x : scratch) {
      if (prev != x.begin) m.push_back({{prev, x.begin}, invert});
      m.push_back({x, !invert});
      prev = x.end;
    }
    if (prev != s.size()) m.push_back({{prev, static_cast<std::uint32_t>(s.size())}, invert});
  }

  // Pattern::find_matches for a char predicate: each matching char alone.
  template <class Pred>
  static void char_matches(std::string_view s, Pred pred, std::vector<std::pair<span, bool>>& m) {
    std::uint32_t last = 0;
    std::size_t i = 0;
    while (i < s.size()) {
      const auto b = static_cast<std::uint32_t>(i);
      const char32_t c = utf8::next(s, i);
      if (pred(c)) {
        if (last < b) m.push_back({{last, b}, false});
        m.push_back({{b, static_cast<std::uint32_t>(i)}, true});
        last = static_cast<std::uint32_t>(i);
      }
    }
    if (s.size() > last) m.push_back({{last, static_cast<std::uint32_t>(s.size())}, false});
  }

  // NormalizedString::split: marks (offsets, is_match) -> kept pieces by behaviour.
  template <class Find>
  static void split_by(pieces& ps, behavior how, Find find) {
    ps.next_list.clear();
    for (const auto& p : ps.list) {
      ps.marked.clear();
      find(ps.view(p), ps.marked);
      auto& m = ps.marked;
      // (span, remove) after applying the behaviour
      std::vector<std::pair<span, bool>>& out = m;  // rewritten in place below
      std::size_t n = 0;
      switch (how) {
        case behavior::isolated:
          for (auto& x : m) x.second = false;
          n = m.size();
          break;
        case behavior::removed:
          n = m.size();
          break;
        case behavior::contiguous: {
          bool prev_match = false;
          for (std::size_t k = 0; k < m.size(); ++k) {
            const bool is_match = m[k].second;
            if (n > 0 && is_match == prev_match)
              out[n - 1].first.end = m[k].first.end;
            else
              out[n++] = {m[k].first, false};
            prev_match = is_match;
          }
          break;
        }
        case behavior::merged_with_previous: {
          bool prev_match = false;
          for (std::size_t k = 0; k < m.size(); ++k) {
            const bool is_match = m[k].second;
            if (n > 0 && is_match && !prev_match)
              out[n - 1].first.end = m[k].first.end;
            else
              out[n++] = {m[k].first, false};
            prev_match = is_match;
          }
          break;
        }
        case behavior::merged_with_next: {
          // Walk backwards: a match is glued to the front of the piece after it.
          std::vector<std::pair<span, bool>> rev;
          bool prev_match = false;
          for (std::size_t k = m.size(); k-- > 0;) {
            const bool is_match = m[k].second;
            if (!rev.empty() && is_match && !prev_match)
              rev.back().first.begin = m[k].first.begin;
            else
              rev.push_back({m[k].first, false});
            prev_match = is_match;
          }
          n = rev.size();
          for (std::size_t k = 0; k < n; ++k) out[k] = rev[n - 1 - k];
          break;
        }
      }
      for (std::size_t k = 0; k < n; ++k) {
        const auto& [sp, remove] = out[k];
        if (remove || sp.begin == sp.end) continue;
        ps.next_list.push_back(
            {p.begin + sp.begin, p.begin + sp.end, p.at_origin && sp.begin == 0});
      }
    }
    std::swap(ps.list, ps.next_list);
  }

  // Replaces every piece by f(piece text, at_origin) in a new buffer.
  template <class F>
  static void rewrite(pieces& ps, F f) {
    ps.next_text.clear();
    ps.next_list.clear();
    for (const auto& p : ps.list) {
      const auto b = static_cast<std::uint32_t>(ps.next_text.size());
      f(ps.view(p), p.at_origin, ps.next_text);
      ps.next_list.push_back({b, static_cast<std::uint32_t>(ps.next_text.size()), p.at_origin});
    }
    std::swap(ps.own, ps.next_text);
    ps.text = ps.own;
    std::swap(ps.list, ps.next_list);
  }

  static void add(const nlohmann::json& j, const std::string& path,
                  std::vector<pre_tokenizer>& out) {
    using format::hf::json_bool;
    if (j.is_null()) return;
    const auto type = format::hf::json_type(j);
    pre_tokenizer t;
    if (type == "Sequence") {
      const auto it = j.find("pretokenizers");
      if (it == j.end() || !it->is_array())
        throw error(error::kind::format, path,
                    "pre_tokenizer Sequence without a \"pretokenizers\" list");
      for (const auto& sub : *it) add(sub, path, out);
      return;
    } else if (type == "Split") {
      t.kind_ = kind::split;
      t.pattern_ = detail::read_pattern(j, path, "pre_tokenizer Split");
      t.behavior_ = read_behavior(j, path);
      t.invert_ = json_bool(j, "invert", false);
    } else if (type == "ByteLevel") {
      t.kind_ = kind::byte_level;
      t.add_prefix_space_ = json_bool(j, "add_prefix_space", true);
      t.use_regex_ = json_bool(j, "use_regex", true);
    } else if (type == "Metaspace") {
      t.kind_ = kind::metaspace;
      read_metaspace(j, path, t.replacement_, t.replacement_cp_, t.prepend_);
      t.split_ = json_bool(j, "split", true);
    } else if (type == "Digits") {
      t.kind_ = kind::digits;
      t.individual_ = json_bool(j, "individual_digits", false);
    } else if (type == "WhitespaceSplit") {
      t.kind_ = kind::whitespace_split;
    } else {
      throw error(error::kind::unsupported, path,
                  cat("pre_tokenizer '", type.empty() ? j.dump().substr(0, 80) : std::string(type),
                      "' is not supported (supported: Split, ByteLevel, Metaspace, Digits, "
                      "WhitespaceSplit, Sequence)"));
    }
    out.push_back(std::move(t));
  }

  static behavior read_behavior(const nlohmann::json& j, const std::string& path) {
    const std::string b = j.value("behavior", std::string("Isolated"));
    if (b == "Removed") return behavior::removed;
    if (b == "Isolated") return behavior::isolated;
    if (b == "MergedWithPrevious") return behavior::merged_with_previous;
    if (b == "MergedWithNext") return behavior::merged_with_next;
    if (b == "Contiguous") return behavior::contiguous;
    throw error(error::kind::unsupported, path, cat("pre_tokenizer Split: behavior '", b, "'"));
  }

 public:
  // Metaspace's fields, shared with its decoder: one-char replacement, prepend_scheme (with the
  // legacy add_prefix_space: false meaning "never").
  static void read_metaspace(const nlohmann::json& j, const std::string& path, std::string& rep,
                             char32_t& rep_cp, prepend& scheme) {
    rep = detail::read_string(j, "replacement", path, "Metaspace");
    std::size_t i = 0;
    if (rep.empty() || utf8::first_invalid(rep) || (rep_cp = utf8::next(rep, i), i != rep.size()))
      throw error(error::kind::format, path, "Metaspace: replacement must be one character");
    const std::string s = j.value("prepend_scheme", std::string("always"));
    scheme = s == "first" ? prepend::first : s == "never" ? prepend::never : prepend::always;
    if (s != "first" && s != "never" && s != "always")
      throw error(error::kind::format, path, cat("Metaspace: prepend_scheme '", s, "'"));
    if (j.contains("add_prefix_space") && j["add_prefix_space"] == false) scheme = prepend::never;
  }

 private:
  kind kind_ = kind::split;
  regex pattern_;
  behavior behavior_ = behavior::isolated;
  bool invert_ = false;
  bool add_prefix_space_ = true, use_regex_ = true;  // ByteLevel
  std::string replacement_;                          // Metaspace
  char32_t replacement_cp_ = 0;
  prepend prepend_ = prepend::always;
  bool split_ = true;
  bool individual_ = false;  // Digits
};

}  // namespace qforge::tokenize
