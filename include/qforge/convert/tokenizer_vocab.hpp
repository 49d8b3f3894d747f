// SPDX-License-Identifier: MIT
// GGUF tokenizer metadata (tokenizer.ggml.*, tokenizer.chat_template) from a Hugging Face model
// folder, as llama.cpp's convert_hf_to_gguf.py writes it and llama.cpp's loader then trusts.
// Byte-level BPE becomes model "gpt2" (get_vocab_base + _set_vocab_gpt2: token strings as stored,
// added tokens CONTROL or USER_DEFINED, merges, no scores); BPE with byte_fallback and a Sequence
// decoder, the SentencePiece-style Llama 2 / Mistral tokenizer.json, becomes model "llama"
// (gguf-py's LlamaHfVocab, the path taken when there is no tokenizer.model: every score -1000,
// <0xNN> typed BYTE, no merges). Special ids, add_bos / add_eos and the chat template follow
// gguf-py's SpecialVocab. Two choices are ours: tokenizer.ggml.pre comes from the pre-tokenizer's
// regex (pre_tokenizer_id.hpp), and the vocabulary is always padded to the embedding's rows with
// "[PAD<id>]" tokens of type UNUSED.
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

#include "qforge/convert/pre_tokenizer_id.hpp"
#include "qforge/core/error.hpp"
#include "qforge/format/gguf/keys.hpp"

namespace qforge::convert {

struct gguf_vocab {
  std::string model;                // "gpt2" (byte-level BPE) or "llama" (byte_fallback BPE)
  std::string pre;                  // tokenizer.ggml.pre: "qwen2", "llama-bpe", "default", ...
  std::vector<std::string> tokens;  // exactly n_vocab entries
  std::vector<std::int32_t> token_types;  // format::gguf::keys::token_type values, one per token
  std::vector<float> scores;              // "llama": one per token; "gpt2": empty (none written)
  std::vector<std::string> merges;        // "gpt2": "a b" per merge; "llama": empty (none written)
  std::optional<std::uint32_t> bos_id, eos_id, unk_id, pad_id;
  std::optional<bool> add_bos, add_eos;  // absent: key not written, llama.cpp uses its default
  std::optional<bool> add_sep;           // from a pair template, as gguf-py derives it
  // "bos", "eos", "unk", "pad" in the order their ids were found (tokenizer_config.json first, then
  // config.json): llama.cpp's converter writes the id keys in that order.
  std::vector<std::string> id_order;
  std::optional<std::string> chat_template;
};

inline constexpr const char* supported_tokenizer_models =
    "BPE (byte-level, written as \"gpt2\"), BPE with byte_fallback and a Sequence decoder "
    "(SentencePiece-style, written as \"llama\")";

namespace detail {

using json = nlohmann::json;
using ttype = format::gguf::keys::token_type;

using format::hf::in_dir;
using format::hf::read_json_if_exists;
using format::hf::read_text_if_exists;
using format::hf::warn;

// Added tokens that "ought to be" control tokens although their files do not mark them special
// (convert_hf_to_gguf.py's does_token_look_special: command-r, deepseek, gemma).
inline bool looks_special(std::string_view t) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.starts_with(open) && t.ends_with(close);
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") ||  // "<｜...｜>", fullwidth bars (deepseek)
         wrapped("<unused", ">");
}

inline bool is_byte_token(std::string_view t) {  // <0xNN>, SentencePiece's byte pieces
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  return t.size() == 6 && t.starts_with("<0x") && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

inline std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

using format::hf::added_token;
using format::hf::hf_tokenizer;
using format::hf::index_tokenizer;
using format::hf::token_id;

// tokenizer.json merges: "a b" strings (kept as they are) or, since transformers 4.45, ["a", "b"]
// pairs, which exist so that a part may contain a space. gguf-py joins pairs with one space and
// writes a space inside a part as U+0120 ('Ġ', the byte-level alphabet's space), so "a b" splits
// back.
inline std::vector<std::string> read_merges(const json& model, const std::string& path) {
  std::vector<std::string> out;
  const auto mit = model.find("merges");
  if (mit == model.end() || mit->is_null()) return out;
  if (!mit->is_array()) throw error(error::kind::format, path, "model.merges is not a list");
  out.reserve(mit->size());
  for (const auto& m : *mit) {
    if (m.is_string()) {
      out.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.push_back(replace_all(m[0].get<std::string>(), " ", "\xC4\xA0") + ' ' +
                    replace_all(m[1].get<std::string>(), " ", "\xC4\xA0"));
    } else {
      throw error(error::kind::format, path,
                  cat("model.merges[", out.size(), "]: expected \"a b\" or [\"a\", \"b\"], got ",
                      m.dump()));
    }
  }
  return out;
}

// A special-token entry of tokenizer_config.json: a string or an AddedToken dict {"content": ...}.
inline std::optional<std::string> token_content(const json& cfg, const std::string& key) {
  const auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string() && !it->get_ref<const std::string&>().empty()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// gguf-py SpecialVocab: ids for bos/eos/unk/pad, add_bos/add_eos, chat template.
struct special_tokens {
  std::optional<std::uint32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos, add_sep;
  std::optional<std::string> chat_template;
  std::vector<std::string> id_order;
};

inline void set_id(std::optional<std::uint32_t>& slot, std::vector<std::string>& order,
                   std::optional<std::int64_t> id,
                   const char* typ, std::uint32_t n_vocab, const std::string& path) {
  if (!id || slot) return;  // first source wins: tokenizer_config.json, then config.json
  if (*id < 0) throw error(error::kind::format, path, cat(typ, "_token id ", *id, " is negative"));
  if (*id >= n_vocab) {
    warn(cat(path, ": ", typ, " token id ", *id, " is not below n_vocab ", n_vocab, ", skipped"));
    return;
  }
  slot = static_cast<std::uint32_t>(*id);
  order.emplace_back(typ);
}

// tokenizer_config.json, or an empty object when there is none.
inline json read_tokenizer_config(const std::string& dir) {
  const auto cfg_path = in_dir(dir, "tokenizer_config.json");
  json cfg = read_json_if_exists(cfg_path).value_or(json::object());
  if (!cfg.is_object()) throw error(error::kind::format, cfg_path, "not a JSON object");
  return cfg;
}

inline special_tokens read_special(const std::string& dir, const json& tok, const json& cfg,
                                   const hf_tokenizer& h, std::uint32_t n_vocab) {
  special_tokens s;
  const auto cfg_path = in_dir(dir, "tokenizer_config.json");
  // SpecialVocab treats a missing and an empty tokenizer_config.json alike: no names, no template.
  const bool have_cfg = !cfg.empty();

  auto bos = token_content(cfg, "bos_token"), eos = token_content(cfg, "eos_token");
  const auto cls = token_content(cfg, "cls_token"), sep = token_content(cfg, "sep_token");
  if (!bos && cls) bos = cls;  // encoder models name their first token cls
  if (!eos && sep) eos = sep;

  // The post-processor says what HF adds around a single sequence. gguf-py compares the template's
  // special ids with the config's names; we compare contents, so an AddedToken-dict bos_token (old
  // Llama 2 configs) still reads as "adds BOS" where gguf-py's str-vs-dict comparison says no.
  if (const auto pit = tok.find("post_processor"); pit != tok.end() && pit->is_object()) {
    std::vector<const json*> procs;
    if (pit->contains("processors") && (*pit)["processors"].is_array())
      for (const auto& p : (*pit)["processors"]) procs.push_back(&p);
    else
      procs.push_back(&*pit);
    auto special_at = [](const json& item) -> std::optional<std::string> {
      if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object() &&
          item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string())
        return item["SpecialToken"]["id"].get<std::string>();
      return std::nullopt;
    };
    auto sequence_at = [](const json& item) -> std::optional<std::string> {
      if (item.is_object() && item.contains("Sequence") && item["Sequence"].is_object() &&
          item["Sequence"].contains("id") && item["Sequence"]["id"].is_string())
        return item["Sequence"]["id"].get<std::string>();
      return std::nullopt;
    };
    for (const json* p : procs) {
      const auto type = json_type(*p);
      if (type == "ByteLevel") {
        // A ByteLevel post-processor adds nothing: llama.cpp records that explicitly.
        if (!s.add_bos) s.add_bos = false;
        if (!s.add_eos) s.add_eos = false;
      } else if (type == "RobertaProcessing") {
        s.add_bos = true;
        s.add_eos = true;
        s.add_sep = true;
      } else if (type == "TemplateProcessing") {
        const json empty = json::array();
        const json& single = p->contains("single") && (*p)["single"].is_array() ? (*p)["single"] : empty;
        const json& pair = p->contains("pair") && (*p)["pair"].is_array() ? (*p)["pair"] : empty;
        std::optional<std::string> first, last;
        if (single.size() > 1) first = special_at(single.front());
        if (first) {
          if (!have_cfg) bos = first;
          s.add_bos = first == bos || first == cls;
          if (!*s.add_bos)
            warn(cat(dir, ": post-processor starts with unknown special token '", *first, "'"));
        }
        if (single.size() > 1) last = special_at(single.back());
        if (last) {
          // A template that ends in another token than eos_token makes that token the EOS: it is
          // what HF appends, so generation must stop there (gguf-py keeps the old one as EOT).
          if (have_cfg && eos && *last != *eos)
            warn(cat(dir, ": post-processor ends with '", *last, "', not eos_token '", *eos,
                     "': using it as EOS"));
          eos = last;
          s.add_eos = true;
        }
        // "A [sep] [eos] B" between the single template's own first/last tokens: a separator is
        // added when the middle holds the sep (or eos) token and the single form ends in none.
        std::size_t lo = 0, hi = pair.size();
        if (first && hi > 0 && special_at(pair.front()) == first) lo = 1;
        if (last && hi > lo && special_at(pair.back()) == last) --hi;
        if (hi > lo + 2 && sequence_at(pair[lo]) == "A" && sequence_at(pair[hi - 1]) == "B") {
          bool add_sep = false;
          const auto is_sep = [&](const std::optional<std::string>& t) {
            return t && ((sep && *t == *sep) || (eos && *t == *eos));
          };
          if (is_sep(special_at(pair[lo + 1])) && !last) add_sep = true;
          if (hi - lo == 4 && is_sep(special_at(pair[lo + 2]))) add_sep = true;
          s.add_sep = add_sep;
        }
      }
    }
  }

  // Names resolve to ids through the added tokens only (gguf-py does not search the model vocab).
  auto find_added = [&](const std::optional<std::string>& content) -> std::optional<std::int64_t> {
    if (!content) return std::nullopt;
    for (const auto& a : h.added)
      if (a.content == *content) return a.id;
    return std::nullopt;
  };
  if (have_cfg) {
    // The post-processor is what HF tokenizers runs, so it wins over the config's flags (as in
    // gguf-py); the flags only fill in what the post-processor left open.
    if (const auto it = cfg.find("add_bos_token"); it != cfg.end() && it->is_boolean() && !s.add_bos)
      s.add_bos = it->get<bool>();
    if (const auto it = cfg.find("add_eos_token"); it != cfg.end() && it->is_boolean() && !s.add_eos)
      s.add_eos = it->get<bool>();
    if (const auto it = cfg.find("add_sep_token"); it != cfg.end() && it->is_boolean() && !s.add_sep)
      s.add_sep = it->get<bool>();
    set_id(s.bos, s.id_order, find_added(bos), "bos", n_vocab, cfg_path);
    set_id(s.eos, s.id_order, find_added(eos), "eos", n_vocab, cfg_path);
    set_id(s.unk, s.id_order, find_added(token_content(cfg, "unk_token")), "unk", n_vocab, cfg_path);
    set_id(s.pad, s.id_order, find_added(token_content(cfg, "pad_token")), "pad", n_vocab, cfg_path);
  }

  const auto config_path = in_dir(dir, "config.json");
  if (const auto config = read_json_if_exists(config_path); config && config->is_object()) {
    auto id_of = [&](const char* key) -> std::optional<std::int64_t> {
      // Only plain integers count: a list of eos ids (generation stops) names no single EOS.
      const json* where = &*config;
      if (!config->contains(key) && config->contains("text_config") &&
          (*config)["text_config"].is_object())
        where = &(*config)["text_config"];
      const auto it = where->find(key);
      if (it == where->end() || !it->is_number_integer()) return std::nullopt;
      return it->get<std::int64_t>();
    };
    set_id(s.bos, s.id_order, id_of("bos_token_id"), "bos", n_vocab, config_path);
    set_id(s.eos, s.id_order, id_of("eos_token_id"), "eos", n_vocab, config_path);
    set_id(s.unk, s.id_order, id_of("unk_token_id"), "unk", n_vocab, config_path);
    set_id(s.pad, s.id_order, id_of("pad_token_id"), "pad", n_vocab, config_path);
  }

  if (!have_cfg) return s;
  // tokenizer_config.json's own template wins over chat_template.jinja / chat_template.json.
  json tmpl = cfg.contains("chat_template") ? cfg["chat_template"] : json();
  if (tmpl.is_null()) {
    if (auto jinja = read_text_if_exists(in_dir(dir, "chat_template.jinja"))) {
      tmpl = std::move(*jinja);
    } else if (auto cj = read_json_if_exists(in_dir(dir, "chat_template.json"));
               cj && cj->is_object()) {
      tmpl = cj->value("chat_template", json());
    }
  }
  if (tmpl.is_string()) {
    s.chat_template = tmpl.get<std::string>();
  } else if (tmpl.is_array()) {
    // Named templates: tokenizer.chat_template holds the one named "default" (others would go to
    // tokenizer.chat_template.<name>, which this struct does not carry).
    for (const auto& t : tmpl)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
          t["template"].is_string())
        s.chat_template = t["template"].get<std::string>();
  } else if (!tmpl.is_null()) {
    warn(cat(cfg_path, ": chat_template is neither a string nor a list, ignored"));
  }
  return s;
}

}  // namespace detail

// Reads <model_dir>/tokenizer.json (required), tokenizer_config.json, config.json and
// chat_template.jinja / chat_template.json (optional). n_vocab is the embedding's row count (config
// vocab_size): ids missing below it become "[PAD<id>]" of type UNUSED, so tokens.size() == n_vocab.
// Throws qforge::error naming the file: io (tokenizer.json missing or unreadable), format (invalid
// JSON, malformed vocab / merges / added tokens), unsupported (a tokenizer model other than BPE,
// such as WordPiece or Unigram), argument (n_vocab 0, or a token id not below n_vocab). Warnings
// (an unrecognised pre-tokenizer, a special id out of range) go to stderr.
inline gguf_vocab read_hf_vocab(const std::string& model_dir, std::uint32_t n_vocab) {
  using namespace detail;
  const auto path = in_dir(model_dir, "tokenizer.json");
  auto tok = read_json_if_exists(path);
  if (!tok)
    throw error(error::kind::io, path, "not found (a Hugging Face fast tokenizer is required)");
  if (!tok->is_object()) throw error(error::kind::format, path, "not a JSON object");
  if (n_vocab == 0) throw error(error::kind::argument, path, "n_vocab must be positive");

  const auto mit = tok->find("model");
  if (mit == tok->end() || !mit->is_object())
    throw error(error::kind::format, path, "no \"model\" object");
  const json& model = *mit;
  // Files written by tokenizers < 0.14 may leave the BPE model untagged.
  const std::string type = model.contains("type")     ? std::string(json_type(model))
                           : model.contains("merges") ? "BPE"
                                                      : "";
  if (type != "BPE")
    throw error(error::kind::unsupported, path,
                cat("tokenizer model '", type.empty() ? model.dump().substr(0, 60) : type,
                    "' is not supported; supported: ", supported_tokenizer_models));

  const auto h = index_tokenizer(*tok, model, path);
  if (!h.by_id.empty() && h.by_id.rbegin()->first >= n_vocab)
    throw error(error::kind::argument, path,
                cat("token '", h.by_id.rbegin()->second, "' has id ", h.by_id.rbegin()->first,
                    " but the embedding has only ", n_vocab, " rows"));

  // LlamaModel.set_vocab's order: LlamaHfVocab when byte_fallback and a Sequence decoder (the
  // SentencePiece converter's output), else the GPT-2 path (Llama 3, Qwen, GPT-2 itself).
  const bool byte_fallback = json_bool(model, "byte_fallback", false);
  const auto dit = tok->find("decoder");
  const bool sequence_decoder = dit != tok->end() && json_type(*dit) == "Sequence";
  const bool spm = byte_fallback && sequence_decoder;
  const json cfg = read_tokenizer_config(model_dir);

  gguf_vocab v;
  v.tokens.resize(n_vocab);
  v.token_types.resize(n_vocab);
  auto pad = [&](std::uint32_t id) {
    v.tokens[id] = cat("[PAD", id, "]");
    v.token_types[id] = static_cast<std::int32_t>(ttype::unused);
  };

  if (spm) {
    v.model = "llama";
    v.pre = "default";  // llama.cpp's SPM tokenizer has no pre-tokenizer
    // LlamaHfVocab has no scores to give (tokenizer.json keeps merge ranks, not piece scores) and
    // writes no merges: llama.cpp's SPM tokenizer then breaks ties by position.
    v.scores.assign(n_vocab, -1000.0f);
    // LlamaHfVocab types transformers' all_special_ids CONTROL: the tokens tokenizer_config.json
    // names (bos, eos, unk, ..., additional_special_tokens), found anywhere in the vocabulary, and
    // the added tokens flagged special.
    std::vector<bool> special(n_vocab, false);
    for (const auto& a : h.added)
      if (a.special) special[a.id] = true;
    std::vector<std::string> named;
    for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                            "cls_token", "mask_token"})
      if (auto c = token_content(cfg, key)) named.push_back(std::move(*c));
    if (const auto it = cfg.find("additional_special_tokens"); it != cfg.end() && it->is_array())
      for (const auto& e : *it) {
        if (e.is_string())
          named.push_back(e.get<std::string>());
        else if (e.is_object() && e.contains("content") && e["content"].is_string())
          named.push_back(e["content"].get<std::string>());
      }
    for (const auto& [id, text] : h.by_id)
      if (std::find(named.begin(), named.end(), text) != named.end()) special[id] = true;
    for (std::uint32_t id = 0; id < n_vocab; ++id) {
      const auto it = h.by_id.find(id);
      if (it == h.by_id.end()) {
        pad(id);
        continue;
      }
      v.tokens[id] = it->second;
      ttype t = ttype::normal;
      if (id < h.n_model && is_byte_token(it->second))
        t = ttype::byte;
      else if (special[id])
        t = ttype::control;
      else if (id >= h.n_model && h.added_by_id.count(id))
        t = ttype::user_defined;
      v.token_types[id] = static_cast<std::int32_t>(t);
    }
  } else {
    v.model = "gpt2";
    v.pre = pre_tokenizer_id(*tok, path);
    if (dit != tok->end() && json_type(*dit) != "ByteLevel")
      warn(cat(path,
               ": BPE without a ByteLevel decoder (nor byte_fallback with a Sequence one); "
               "writing it as byte-level \"gpt2\" as llama.cpp's converter does"));
    for (std::uint32_t id = 0; id < n_vocab; ++id) {
      const auto it = h.by_id.find(id);
      if (it == h.by_id.end()) {
        pad(id);
        continue;
      }
      ttype t = ttype::normal;
      std::string text = it->second;
      if (const auto a = h.added_by_id.find(id); a != h.added_by_id.end()) {
        // llama.cpp matches CONTROL / USER_DEFINED text verbatim against the raw input, so a
        // user-defined SentencePiece-style "▁" must already be the space it stands for.
        if (h.added[a->second].special || looks_special(text)) {
          t = ttype::control;
        } else {
          t = ttype::user_defined;
          text = replace_all(std::move(text), "\xE2\x96\x81", " ");
        }
      }
      v.tokens[id] = std::move(text);
      v.token_types[id] = static_cast<std::int32_t>(t);
    }
    v.merges = read_merges(model, path);
    if (v.merges.empty())
      warn(cat(path, ": byte-level BPE without merges; the GGUF will not tokenize"));
  }

  auto s = read_special(model_dir, *tok, cfg, h, n_vocab);
  v.bos_id = s.bos;
  v.eos_id = s.eos;
  v.unk_id = s.unk;
  v.pad_id = s.pad;
  v.id_order = s.id_order;
  v.add_bos = s.add_bos;
  v.add_eos = s.add_eos;
  v.add_sep = s.add_sep;
  v.chat_template = std::move(s.chat_template);
  return v;
}

}  // namespace qforge::convert
