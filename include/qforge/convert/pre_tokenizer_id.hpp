// SPDX-License-Identifier: MIT
// Picks tokenizer.ggml.pre, the name under which llama.cpp selects its built-in pre-tokenizer
// regexes, from a tokenizer.json. llama.cpp's converter hashes the token ids of a fixed test text,
// which needs the tokenizer itself; we read the pre-tokenizer's structure instead (a ByteLevel
// pre-tokenizer with its own regex, or a Split regex followed by a regex-free ByteLevel) and look
// the regex up in a table of the ones llama.cpp implements (src/llama-vocab.cpp keeps each
// tokenizer.json original as a comment beside its rewrite). Anything else falls back to "default"
// with a warning: llama.cpp then uses its generic split, so text tokenizes, but not always as
// Hugging Face does.
#pragma once
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "qforge/format/hf/tokenizer_json.hpp"

namespace qforge::convert {

// The Split regexes as they appear in tokenizer.json (after JSON unescaping).
namespace pre_regex {
// GPT-2's; tokenizers' ByteLevel pre-tokenizer applies it itself when use_regex is on.
inline constexpr std::string_view gpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k style): case-insensitive contractions, digits in runs of up to three.
inline constexpr std::string_view llama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 / Qwen3: as Llama 3 but every digit alone.
inline constexpr std::string_view qwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: Qwen2's with combining marks (\p{M}) kept inside words.
inline constexpr std::string_view qwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-4o (o200k): words split at case changes, contractions attached.
inline constexpr std::string_view gpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace pre_regex

namespace detail {

using format::hf::json_bool;
using format::hf::json_type;

// The pre name for one Split regex; empty when llama.cpp has no rewrite of it.
inline std::string pre_for_regex(std::string_view regex, bool ignore_merges) {
  if (regex == pre_regex::gpt2) return "gpt-2";
  // "llama-bpe" also switches on ignore_merges in llama.cpp (whole-word vocabulary hits skip the
  // merges); "smaug-bpe" is the same regex without it, for Llama-3-style files that merge as usual.
  if (regex == pre_regex::llama3) return ignore_merges ? "llama-bpe" : "smaug-bpe";
  if (regex == pre_regex::qwen2) return "qwen2";
  if (regex == pre_regex::qwen35) return "qwen35";
  if (regex == pre_regex::gpt4o) return "gpt-4o";
  return {};
}

inline std::string describe_pre(const nlohmann::json& pre) {
  std::string d = pre.dump();
  if (d.size() > 300) d = d.substr(0, 300) + "...";
  return d;
}

}  // namespace detail

// tokenizer.ggml.pre for a byte-level BPE tokenizer.json (the whole document). `path` only names
// the file in the warning printed (to stderr) when nothing in the table matches and "default" is
// returned. Never throws on odd structure: an unrecognised pre-tokenizer is a quality problem for
// the converted model, not a reason to refuse it (llama.cpp's converter refuses; we warn).
inline std::string pre_tokenizer_id(const nlohmann::json& tokenizer, const std::string& path) {
  const nlohmann::json* model = nullptr;
  if (const auto it = tokenizer.find("model"); it != tokenizer.end()) model = &*it;
  const bool ignore_merges =
      model && model->is_object() && detail::json_bool(*model, "ignore_merges", false);

  std::string found;
  const auto pit = tokenizer.find("pre_tokenizer");
  const nlohmann::json pre = pit == tokenizer.end() ? nlohmann::json() : *pit;
  const auto type = detail::json_type(pre);
  if (type == "ByteLevel") {
    if (detail::json_bool(pre, "use_regex", true)) found = "gpt-2";
  } else if (type == "Sequence" && pre.contains("pretokenizers") &&
             pre["pretokenizers"].is_array()) {
    // Recognised shape: exactly one Split (Isolated, not inverted, a Regex pattern) and one
    // ByteLevel that does not split again; a lone regex-splitting ByteLevel counts as GPT-2.
    const auto& steps = pre["pretokenizers"];
    const nlohmann::json* split = nullptr;
    int byte_level = 0, byte_level_regex = 0, other = 0;
    for (const auto& s : steps) {
      const auto t = detail::json_type(s);
      if (t == "Split" && !split) {
        split = &s;
      } else if (t == "ByteLevel") {
        ++byte_level;
        if (detail::json_bool(s, "use_regex", true)) ++byte_level_regex;
      } else {
        ++other;
      }
    }
    if (other == 0 && byte_level == 1) {
      if (!split && byte_level_regex == 1) {
        found = "gpt-2";
      } else if (split && byte_level_regex == 0) {
        const auto behavior = split->find("behavior");
        const auto pattern = split->find("pattern");
        const bool isolated = behavior != split->end() && behavior->is_string() &&
                              behavior->get<std::string>() == "Isolated";
        const bool inverted = detail::json_bool(*split, "invert", false);
        if (isolated && !inverted && pattern != split->end() && pattern->is_object() &&
            pattern->contains("Regex") && (*pattern)["Regex"].is_string())
          found = detail::pre_for_regex((*pattern)["Regex"].get<std::string>(), ignore_merges);
      }
    }
  }
  if (found.empty()) {
    std::cerr << "qforge: warning: " << path
              << ": pre-tokenizer not recognised, writing tokenizer.ggml.pre = \"default\" "
                 "(llama.cpp may split text differently from Hugging Face): "
              << detail::describe_pre(pre) << '\n';
    return "default";
  }
  return found;
}

}  // namespace qforge::convert
