// SPDX-License-Identifier: MIT
// Added tokens (tokenizer.json "added_tokens"), found in the text before pre-tokenization as
// Hugging Face `tokenizers` finds them (tokenizer/added_vocabulary.rs): tokens with normalized =
// false are matched in the raw input, the others in each normalized piece (their content
// normalized first); matching is leftmost-longest and non-overlapping; single_word keeps a match
// only between non-word characters (\w as Rust's regex means it), lstrip / rstrip widen it over
// adjacent White_Space. With split_special_tokens (HF's encode_special_tokens) the special ones are
// skipped and so tokenized as plain text.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/tokenize/normalizers.hpp"
#include "qforge/tokenize/regex.hpp"
#include "qforge/tokenize/utf8.hpp"

namespace qforge::tokenize {

// A piece of text, or an added token found there (id set).
struct segment {
  span where;
  std::optional<std::uint32_t> id;
};

class added_vocabulary {
 public:
  added_vocabulary() = default;
  // `tokens` in file order with their runtime ids (format::hf::index_tokenizer); `norm` is the
  // tokenizer's normalizer, applied to the content of normalized tokens.
  added_vocabulary(const std::vector<format::hf::added_token>& tokens,
                   const std::vector<normalizer>& norm) {
    std::vector<span> scratch;
    for (const auto& t : tokens) {
      std::string pattern = t.content;
      if (t.normalized) {
        bool origin = true;
        for (const auto& n : norm) n.apply(pattern, origin, scratch);
      }
      if (pattern.empty()) continue;
      // Decoding returns the normalized content, as simple_id_to_token does.
      decoded_.emplace(t.id, t.normalized ? pattern : t.content);
      info_.push_back({t.id, t.special, t.lstrip, t.rstrip, t.single_word});
      (t.normalized ? normalized_ : raw_).add(pattern, info_.size() - 1);
      if (t.special) special_text_.insert(t.content);
    }
  }

  // Splits text into pieces and added tokens (find_matches). `normalized_set`: match the tokens
  // with normalized = true (text is a normalized piece) instead of the others (raw input).
  void split(std::string_view text, bool normalized_set, bool split_special,
             std::vector<segment>& out) const {
    const trie& t = normalized_set ? normalized_ : raw_;
    if (text.empty()) return;
    if (t.empty()) {
      out.push_back({{0, static_cast<std::uint32_t>(text.size())}, std::nullopt});
      return;
    }
    std::size_t start_offset = 0;
    std::size_t i = 0;
    while (i < text.size()) {
      const auto hit = t.longest_at(text, i);
      if (!hit) {
        i = t.next_candidate(text, i + 1);
        continue;
      }
      std::size_t start = i, stop = i + hit->length;
      i = stop;
      const auto& info = info_[hit->token];
      if (split_special && info.special) continue;
      if (info.single_word) {
        const bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
        const bool stop_space = stop == text.size() || !starts_with_word(text.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (info.lstrip) start = std::max(space_start_at_end(text.substr(0, start)), start_offset);
      if (info.rstrip) stop += space_len_at_start(text.substr(stop));
      if (start_offset < start)
        out.push_back(
            {{static_cast<std::uint32_t>(start_offset), static_cast<std::uint32_t>(start)},
             std::nullopt});
      out.push_back(
          {{static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(stop)}, info.id});
      start_offset = stop;
    }
    if (start_offset != text.size())
      out.push_back(
          {{static_cast<std::uint32_t>(start_offset), static_cast<std::uint32_t>(text.size())},
           std::nullopt});
  }

  [[nodiscard]] bool has_raw() const noexcept { return !raw_.empty(); }
  [[nodiscard]] bool has_normalized() const noexcept { return !normalized_.empty(); }
  // HF's is_special_token compares the token's text with the special contents, not ids.
  [[nodiscard]] bool is_special_text(const std::string& text) const {
    return special_text_.count(text) > 0;
  }
  [[nodiscard]] const std::string* text_of(std::uint32_t id) const {
    const auto it = decoded_.find(id);
    return it == decoded_.end() ? nullptr : &it->second;
  }
  // id -> text as decoding shows it
  [[nodiscard]] const std::unordered_map<std::uint32_t, std::string>& entries() const noexcept {
    return decoded_;
  }

 private:
  struct token_info {
    std::uint32_t id;
    bool special, lstrip, rstrip, single_word;
  };

  // Byte trie for leftmost-longest search; the first-byte filter skips most of the text.
  class trie {
   public:
    struct hit {
      std::size_t length, token;
    };
    void add(std::string_view s, std::size_t token) {
      if (nodes_.empty()) nodes_.emplace_back();
      std::size_t n = 0;
      for (const char c : s) {
        const auto b = static_cast<unsigned char>(c);
        std::size_t next = 0;
        for (const auto& [k, v] : nodes_[n].children)
          if (k == b) next = v;
        if (next == 0) {
          next = nodes_.size();
          nodes_[n].children.emplace_back(b, next);
          nodes_.emplace_back();
        }
        n = next;
      }
      // A later token with the same text keeps the first's entry, like HF's map of contents.
      if (!nodes_[n].token) nodes_[n].token = token;
      first_[static_cast<unsigned char>(s[0])] = true;
    }
    [[nodiscard]] bool empty() const noexcept { return nodes_.empty(); }
    [[nodiscard]] std::size_t next_candidate(std::string_view text, std::size_t i) const noexcept {
      while (i < text.size() && !first_[static_cast<unsigned char>(text[i])]) ++i;
      return i;
    }
    [[nodiscard]] std::optional<hit> longest_at(std::string_view text, std::size_t i) const {
      std::optional<hit> best;
      std::size_t n = 0;
      for (std::size_t k = i; k < text.size(); ++k) {
        const auto b = static_cast<unsigned char>(text[k]);
        std::size_t next = 0;
        for (const auto& [c, v] : nodes_[n].children)
          if (c == b) next = v;
        if (next == 0) break;
        n = next;
        if (nodes_[n].token) best = hit{k + 1 - i, *nodes_[n].token};
      }
      return best;
    }

   private:
    struct node {
      std::vector<std::pair<unsigned char, std::size_t>> children;
      std::optional<std::size_t> token;
    };
    std::vector<node> nodes_;
    std::array<bool, 256> first_{};
  };

  // Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
  static bool is_word_char(std::string_view ch) {
    static const regex word(R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])", false, "",
                            "added token");
    return word.matches_whole(ch);
  }
  static bool ends_with_word(std::string_view s) {
    std::size_t b = s.size() - 1;
    while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
    return is_word_char(s.substr(b));
  }
  static bool starts_with_word(std::string_view s) {
    std::size_t i = 0;
    utf8::next(s, i);
    return is_word_char(s.substr(0, i));
  }
  static std::size_t space_start_at_end(std::string_view s) {
    std::size_t e = s.size();
    while (e > 0) {
      std::size_t b = e - 1;
      while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
      std::size_t i = b;
      if (!utf8::is_white_space(utf8::next(s, i))) break;
      e = b;
    }
    return e;
  }
  static std::size_t space_len_at_start(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      std::size_t j = i;
      if (!utf8::is_white_space(utf8::next(s, j))) break;
      i = j;
    }
    return i;
  }

  std::vector<token_info> info_;
  std::unordered_map<std::uint32_t, std::string> decoded_;
  std::unordered_set<std::string> special_text_;
  trie raw_, normalized_;
};

}  // namespace qforge::tokenize
