// SPDX-License-Identifier: MIT
// tokenizer.json "decoder": token strings -> text, as Hugging Face `tokenizers` decodes
// (decoders/*.rs): each decoder maps the list of token strings to a new list (decode_chain), the
// result is concatenated. ByteLevel maps the byte-level alphabet back to bytes (a token with any
// other character passes as its own bytes) and repairs invalid UTF-8 with U+FFFD per maximal
// subpart; ByteFallback turns runs of <0xNN> into their bytes, or one U+FFFD per byte when the run
// is not valid UTF-8; Metaspace turns the replacement back into spaces (dropped in the first token
// unless prepend_scheme is "never"); Strip, Replace, Fuse and Sequence as upstream. No decoder:
// tokens joined by single spaces.
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/tokenize/bpe.hpp"
#include "qforge/tokenize/normalizers.hpp"
#include "qforge/tokenize/pre_tokenizers.hpp"
#include "qforge/tokenize/utf8.hpp"

namespace qforge::tokenize {

class decoder {
 public:
  enum class kind { byte_level, metaspace, byte_fallback, fuse, strip, replace };

  // Flattens Sequence; `j` is the "decoder" value (null: none).
  static std::vector<decoder> parse(const nlohmann::json& j, const std::string& path) {
    std::vector<decoder> out;
    add(j, path, out);
    return out;
  }

  void apply(std::vector<std::string>& tokens, std::vector<span>& scratch) const {
    switch (kind_) {
      case kind::byte_level: {
        std::string bytes;
        for (const auto& t : tokens) {
          const std::size_t mark = bytes.size();
          std::size_t i = 0;
          bool all = true;
          while (i < t.size() && all) {
            const char32_t c = utf8::next(t, i);
            const int b = c < byte_of().size() ? byte_of()[c] : -1;
            if (b < 0)
              all = false;
            else
              bytes += static_cast<char>(b);
          }
          if (!all) bytes.replace(mark, std::string::npos, t);
        }
        tokens.assign(1, utf8::make_valid(bytes));
        return;
      }
      case kind::metaspace:
        for (std::size_t k = 0; k < tokens.size(); ++k) {
          std::string out;
          const std::string& t = tokens[k];
          for (std::size_t at = 0;;) {
            const auto hit = t.find(text_, at);
            out.append(t, at, hit == std::string::npos ? std::string::npos : hit - at);
            if (hit == std::string::npos) break;
            if (k != 0 || prepend_ == pre_tokenizer::prepend::never) out += ' ';
            at = hit + text_.size();
          }
          tokens[k] = std::move(out);
        }
        return;
      case kind::byte_fallback: {
        std::vector<std::string> out;
        std::string run;
        std::size_t run_len = 0;
        auto flush = [&] {
          if (run_len == 0) return;
          if (!utf8::first_invalid(run))
            out.push_back(run);
          else
            for (std::size_t k = 0; k < run_len; ++k) out.emplace_back(utf8::replacement_char);
          run.clear();
          run_len = 0;
        };
        for (auto& t : tokens) {
          if (const int b = fallback_byte(t); b >= 0) {
            run += static_cast<char>(b);
            ++run_len;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        return;
      }
      case kind::fuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        return;
      }
      case kind::strip:
        for (auto& t : tokens) {
          std::vector<std::pair<std::size_t, char32_t>> chars;  // (byte offset, char)
          for (std::size_t i = 0; i < t.size();) {
            const std::size_t b = i;
            chars.emplace_back(b, utf8::next(t, i));
          }
          std::size_t start = 0, stop = chars.size();
          for (std::size_t k = 0; k < start_ && k < chars.size() && chars[k].second == cp_; ++k)
            start = k + 1;
          for (std::size_t k = 0; k < stop_ && k < chars.size(); ++k) {
            const std::size_t idx = chars.size() - k - 1;
            if (chars[idx].second != cp_) break;
            stop = idx;
          }
          if (start >= stop) {
            t.clear();
          } else {
            const std::size_t b = chars[start].first;
            const std::size_t e = stop < chars.size() ? chars[stop].first : t.size();
            t = t.substr(b, e - b);
          }
        }
        return;
      case kind::replace:
        for (auto& t : tokens) t = detail::replace_all(t, pattern_, text_, scratch);
        return;
    }
  }

 private:
  // Byte-level char -> byte (-1: not in the alphabet); the alphabet ends at U+0143.
  static const std::array<int, 0x144>& byte_of() {
    static const std::array<int, 0x144> table = [] {
      std::array<int, 0x144> t;
      t.fill(-1);
      const auto& chars = detail::byte_level_chars();
      for (int b = 0; b < 256; ++b) {
        std::size_t i = 0;
        t[utf8::next(chars[b], i)] = b;
      }
      return t;
    }();
    return table;
  }

  // <0xNN> -> NN; u8::from_str_radix also takes a '+' sign ("<0x+F>").
  static int fallback_byte(std::string_view t) {
    if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
    auto hex = [](char c) {
      return c >= '0' && c <= '9'   ? c - '0'
             : c >= 'a' && c <= 'f' ? c - 'a' + 10
             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : -1;
    };
    if (t[3] == '+') return hex(t[4]);
    const int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }

  static void add(const nlohmann::json& j, const std::string& path, std::vector<decoder>& out) {
    if (j.is_null()) return;
    const auto type = format::hf::json_type(j);
    decoder d;
    if (type == "Sequence") {
      const auto it = j.find("decoders");
      if (it == j.end() || !it->is_array())
        throw error(error::kind::format, path, "decoder Sequence without a \"decoders\" list");
      for (const auto& sub : *it) add(sub, path, out);
      return;
    } else if (type == "ByteLevel") {
      d.kind_ = kind::byte_level;
    } else if (type == "Metaspace") {
      d.kind_ = kind::metaspace;
      pre_tokenizer::read_metaspace(j, path, d.text_, d.cp_, d.prepend_);
    } else if (type == "ByteFallback") {
      d.kind_ = kind::byte_fallback;
    } else if (type == "Fuse") {
      d.kind_ = kind::fuse;
    } else if (type == "Strip") {
      d.kind_ = kind::strip;
      const auto content = detail::read_string(j, "content", path, "decoder Strip");
      std::size_t i = 0;
      if (content.empty() || utf8::first_invalid(content) ||
          (d.cp_ = utf8::next(content, i), i != content.size()))
        throw error(error::kind::format, path, "decoder Strip: content must be one character");
      d.start_ = j.value("start", std::size_t{0});
      d.stop_ = j.value("stop", std::size_t{0});
    } else if (type == "Replace") {
      d.kind_ = kind::replace;
      d.pattern_ = detail::read_pattern(j, path, "decoder Replace");
      d.text_ = detail::read_string(j, "content", path, "decoder Replace");
    } else {
      throw error(error::kind::unsupported, path,
                  cat("decoder '", type.empty() ? j.dump().substr(0, 80) : std::string(type),
                      "' is not supported (supported: ByteLevel, Metaspace, ByteFallback, Fuse, "
                      "Strip, Replace, Sequence)"));
    }
    out.push_back(std::move(d));
  }

  kind kind_ = kind::fuse;
  std::string text_;  // Metaspace replacement, Replace content
  char32_t cp_ = 0;   // Metaspace replacement / Strip content
  pre_tokenizer::prepend prepend_ = pre_tokenizer::prepend::always;
  std::size_t start_ = 0, stop_ = 0;
  regex pattern_;
};

}  // namespace qforge::tokenize
