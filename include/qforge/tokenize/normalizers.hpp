// SPDX-License-Identifier: MIT
// tokenizer.json "normalizer": NFC, NFD, NFKC, NFKD (utf8proc), Prepend, Replace, Strip and
// Sequence, applied as Hugging Face `tokenizers` applies them (normalizers/*.rs): to each piece of
// text between added tokens separately, so Prepend("▁") prefixes every such piece. Offsets are not
// tracked beyond one bit, `at_origin`: whether the text still starts at byte 0 of the caller's
// input, which is what Metaspace's prepend_scheme "first" asks (offsets_original().0 == 0).
// Anything else (Lowercase, BertNormalizer, Precompiled, ...) is refused with its name and the
// file.
#pragma once
#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/tokenize/regex.hpp"
#include "qforge/tokenize/utf8.hpp"

namespace qforge::tokenize {

namespace detail {

// A {"String": s} or {"Regex": r} pattern of Split / Replace.
inline regex read_pattern(const nlohmann::json& j, const std::string& path,
                          std::string_view where) {
  const auto it = j.find("pattern");
  if (it != j.end() && it->is_object()) {
    if (it->contains("String") && (*it)["String"].is_string())
      return regex((*it)["String"].get<std::string>(), true, path, where);
    if (it->contains("Regex") && (*it)["Regex"].is_string())
      return regex((*it)["Regex"].get<std::string>(), false, path, where);
  }
  throw error(error::kind::format, path,
              cat(where, ": \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}"));
}

inline std::string read_string(const nlohmann::json& j, const char* key, const std::string& path,
                               std::string_view where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw error(error::kind::format, path, cat(where, ": \"", key, "\" must be a string"));
  return it->get<std::string>();
}

// Every match of re in s replaced by content (NormalizedString::replace, Replace decoder).
inline std::string replace_all(std::string_view s, const regex& re, std::string_view content,
                               std::vector<span>& scratch) {
  scratch.clear();
  re.find_all(s, scratch);
  if (scratch.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  std::uint32_t at = 0;
  for (const auto& m : scratch) {
    out.append(s.substr(at, m.begin - at));
    out.append(content);
    at = m.end;
  }
  out.append(s.substr(at));
  return out;
}

}  // namespace detail

class normalizer {
 public:
  enum class kind { nfc, nfd, nfkc, nfkd, prepend, replace, strip };

  // Flattens Sequence. `j` is tokenizer.json's "normalizer" value (null: no normalizer).
  static std::vector<normalizer> parse(const nlohmann::json& j, const std::string& path) {
    std::vector<normalizer> out;
    add(j, path, out);
    return out;
  }

  // Normalizes s in place; at_origin becomes false when leading text was removed.
  void apply(std::string& s, bool& at_origin, std::vector<span>& scratch) const {
    switch (kind_) {
      case kind::nfc:
        // Nothing below U+0300 (lead bytes < 0xCC) composes or decomposes under NFC.
        if (!has_byte_at_least(s, 0xCC)) return;
        unicode(s, UTF8PROC_COMPOSE);
        return;
      case kind::nfd:
        unicode(s, UTF8PROC_DECOMPOSE);
        return;
      case kind::nfkc:
        unicode(s, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        return;
      case kind::nfkd:
        unicode(s, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        return;
      case kind::prepend:
        if (!s.empty()) s.insert(0, text_);
        return;
      case kind::replace: {
        scratch.clear();
        pattern_.find_all(s, scratch);
        if (scratch.empty()) return;
        if (scratch.front().begin == 0 && scratch.front().end > 0 && text_.empty())
          at_origin = false;
        s = detail::replace_all(s, pattern_, text_, scratch);
        return;
      }
      case kind::strip: {
        std::size_t b = 0, e = s.size();
        if (left_) {
          while (b < e) {
            std::size_t i = b;
            if (!utf8::is_white_space(utf8::next(s, i))) break;
            b = i;
          }
        }
        if (right_) {
          while (e > b) {
            std::size_t start = e - 1;
            while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
            std::size_t i = start;
            if (!utf8::is_white_space(utf8::next(s, i))) break;
            e = start;
          }
        }
        if (b > 0) at_origin = false;
        s = s.substr(b, e - b);
        return;
      }
    }
  }

  [[nodiscard]] kind which() const noexcept { return kind_; }

 private:
  static bool has_byte_at_least(std::string_view s, unsigned char limit) noexcept {
    for (const char c : s)
      if (static_cast<unsigned char>(c) >= limit) return true;
    return false;
  }

  static void unicode(std::string& s, int options) {
    if (!has_byte_at_least(s, 0x80)) return;  // ASCII is invariant under every form
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                static_cast<utf8proc_ssize_t>(s.size()), &out,
                                static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
    if (n < 0) throw error(error::kind::internal, cat("utf8proc: ", utf8proc_errmsg(n)));
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> hold(out, &std::free);
    s.assign(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  }

  static void add(const nlohmann::json& j, const std::string& path, std::vector<normalizer>& out) {
    if (j.is_null()) return;
    const auto type = format::hf::json_type(j);
    normalizer n;
    if (type == "Sequence") {
      const auto it = j.find("normalizers");
      if (it == j.end() || !it->is_array())
        throw error(error::kind::format, path,
                    "normalizer Sequence without a \"normalizers\" list");
      for (const auto& sub : *it) add(sub, path, out);
      return;
    } else if (type == "NFC") {
      n.kind_ = kind::nfc;
    } else if (type == "NFD") {
      n.kind_ = kind::nfd;
    } else if (type == "NFKC") {
      n.kind_ = kind::nfkc;
    } else if (type == "NFKD") {
      n.kind_ = kind::nfkd;
    } else if (type == "Prepend") {
      n.kind_ = kind::prepend;
      n.text_ = detail::read_string(j, "prepend", path, "normalizer Prepend");
    } else if (type == "Replace") {
      n.kind_ = kind::replace;
      n.pattern_ = detail::read_pattern(j, path, "normalizer Replace");
      n.text_ = detail::read_string(j, "content", path, "normalizer Replace");
    } else if (type == "Strip") {
      n.kind_ = kind::strip;
      n.left_ = format::hf::json_bool(j, "strip_left", true);
      n.right_ = format::hf::json_bool(j, "strip_right", true);
    } else {
      throw error(error::kind::unsupported, path,
                  cat("normalizer '", type.empty() ? j.dump().substr(0, 80) : std::string(type),
                      "' is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, "
                      "Strip, Sequence)"));
    }
    out.push_back(std::move(n));
  }

  kind kind_ = kind::nfc;
  std::string text_;  // Prepend's prefix, Replace's content
  regex pattern_;     // Replace
  bool left_ = true, right_ = true;
};

}  // namespace qforge::tokenize
