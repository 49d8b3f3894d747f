// SPDX-License-Identifier: MIT
// Reading a Hugging Face tokenizer.json: the JSON helpers and the vocabulary index that both the
// GGUF converter (convert/tokenizer_vocab.hpp) and the tokenizer (tokenize/) need. The one subtle
// part is the ids of added tokens: the `tokenizers` runtime (Tokenizer::from_file, then
// AddedVocabulary::add_tokens) ignores the ids written in "added_tokens" and gives each token, in
// file order, its model.vocab id when the text is there, else the next id after the model
// vocabulary and the tokens added so far. Every consumer must agree on those ids, so they are
// computed here once.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/json.hpp"

namespace qforge::format::hf {

using json = nlohmann::json;

inline void warn(const std::string& msg) { std::cerr << "qforge: warning: " << msg << '\n'; }

inline bool json_bool(const json& j, const char* key, bool fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

inline std::string_view json_type(const json& j) {
  if (!j.is_object()) return {};
  const auto it = j.find("type");
  return it != j.end() && it->is_string() ? std::string_view(it->get_ref<const std::string&>())
                                          : std::string_view{};
}

inline std::optional<std::string> read_text_if_exists(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(error::kind::io, path, "cannot open for reading");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw error(error::kind::io, path, "read failed");
  return text.str();
}

inline std::optional<json> read_json_if_exists(const std::string& path) {
  auto text = read_text_if_exists(path);
  if (!text) return std::nullopt;
  return parse_json(*text, path);
}

inline std::string in_dir(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

inline std::uint32_t token_id(const json& v, const std::string& path, std::string_view what) {
  if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
      v.get<std::int64_t>() > std::int64_t{INT32_MAX})
    throw error(error::kind::format, path,
                cat(what, ": id must be a non-negative integer, got ", v.dump()));
  return v.get<std::uint32_t>();
}

// One "added_tokens" entry. Missing flags take AddedToken::from's defaults (normalized = !special).
struct added_token {
  std::uint32_t id;
  std::string content;
  bool special;
  bool lstrip = false, rstrip = false, single_word = false;
  bool normalized = true;
};

// The parts of tokenizer.json every consumer needs, validated once.
struct hf_tokenizer {
  std::map<std::uint32_t, std::string> by_id;  // model vocab, then added tokens by their id
  std::uint32_t n_model = 0;                   // entries of model.vocab (transformers' vocab_size)
  std::vector<added_token> added;              // file order
  std::map<std::uint32_t, std::size_t> added_by_id;  // id -> index in added
};

inline hf_tokenizer index_tokenizer(const json& tok, const json& model, const std::string& path) {
  hf_tokenizer h;
  const auto vit = model.find("vocab");
  if (vit == model.end() || !vit->is_object())
    throw error(error::kind::format, path, "model.vocab is missing or not an object");
  for (const auto& [text, id_v] : vit->items()) {
    const auto id = token_id(id_v, path, cat("model.vocab '", text, "'"));
    if (!h.by_id.emplace(id, text).second)
      throw error(
          error::kind::format, path,
          cat("model.vocab: id ", id, " is given to both '", h.by_id[id], "' and '", text, "'"));
  }
  h.n_model = static_cast<std::uint32_t>(h.by_id.size());
  if (const auto ait = tok.find("added_tokens"); ait != tok.end() && !ait->is_null()) {
    if (!ait->is_array()) throw error(error::kind::format, path, "added_tokens is not a list");
    std::map<std::string, std::uint32_t> model_ids;
    for (const auto& [id, text] : h.by_id) model_ids.emplace(text, id);
    std::map<std::string, std::uint32_t> seen;
    std::optional<std::uint32_t> max_added;
    h.added.reserve(ait->size());
    for (const auto& a : *ait) {
      if (!a.is_object() || !a.contains("id") || !a.contains("content") ||
          !a["content"].is_string())
        throw error(error::kind::format, path, cat("added_tokens: malformed entry ", a.dump()));
      const auto file_id = token_id(a["id"], path, "added_tokens");
      auto content = a["content"].get<std::string>();
      if (content.empty() || seen.count(content)) continue;
      std::uint32_t id = h.n_model;
      if (const auto m = model_ids.find(content); m != model_ids.end())
        id = m->second;
      else if (max_added && (*max_added >= h.n_model || h.n_model == 0))
        id = *max_added + 1;
      if (id != file_id)
        warn(cat(path, ": added token '", content, "' is listed with id ", file_id,
                 " but tokenizers loads it as ", id, "; using ", id));
      max_added = std::max(max_added.value_or(0), id);
      seen.emplace(content, id);
      const bool special = json_bool(a, "special", false);
      h.added.push_back({id, std::move(content), special, json_bool(a, "lstrip", false),
                         json_bool(a, "rstrip", false), json_bool(a, "single_word", false),
                         json_bool(a, "normalized", !special)});
    }
    for (std::size_t i = 0; i < h.added.size(); ++i) {
      h.by_id[h.added[i].id] = h.added[i].content;
      h.added_by_id[h.added[i].id] = i;
    }
  }
  return h;
}

}  // namespace qforge::format::hf
