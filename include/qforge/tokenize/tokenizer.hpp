// SPDX-License-Identifier: MIT
// A tokenizer loaded from a Hugging Face tokenizer.json that gives the ids Hugging Face
// `tokenizers` gives (Tokenizer::encode(text, add_special_tokens)): invalid UTF-8 repaired, added
// tokens found in the raw text, the rest normalized, added tokens found again in the normalized
// text, pre-tokenized, run through the BPE model, then the post-processor. Supported: BPE models
// (byte-level as GPT-2 / Llama 3 / Qwen publish them, SentencePiece-style with byte_fallback and
// Metaspace or Prepend/Replace as Llama 2 / Mistral do) with the components listed in
// normalizers.hpp, pre_tokenizers.hpp, post_processor.hpp and decoders.hpp; anything else is
// refused naming the component and the file. Not read: tokenizer.model (SentencePiece protobuf
// only checkpoints), tokenizer_config.json (transformers' overrides such as add_bos_token), and the
// file's "truncation" / "padding" (batch shaping, left to the caller; a warning says so).
// Thread-safe after construction: encode / encode_batch / decode only read shared state.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/tokenize/added_tokens.hpp"
#include "qforge/tokenize/bpe.hpp"
#include "qforge/tokenize/decoders.hpp"
#include "qforge/tokenize/normalizers.hpp"
#include "qforge/tokenize/post_processor.hpp"
#include "qforge/tokenize/pre_tokenizers.hpp"
#include "qforge/tokenize/utf8.hpp"
#include "qforge/tokenize/worker_pool.hpp"

namespace qforge::tokenize {

struct encode_options {
  bool add_special_tokens = true;     // run the post-processor (BOS / EOS), HF's default
  bool split_special_tokens = false;  // special added tokens are plain text (encode_special_tokens)
  // Invalid UTF-8: false replaces each maximal ill-formed subpart by U+FFFD (the text HF receives
  // from Python's errors="replace" or Rust's from_utf8_lossy); true throws error{argument} with
  // the byte offset.
  bool strict_utf8 = false;
};

class tokenizer {
 public:
  // `path`: a model folder (reads <path>/tokenizer.json) or a tokenizer.json file. Throws
  // qforge::error: io (missing / unreadable), format (invalid JSON or structure), unsupported
  // (a model, normalizer, pre-tokenizer, post-processor or decoder not implemented here).
  explicit tokenizer(const std::string& path) {
    std::error_code ec;
    path_ =
        std::filesystem::is_directory(path, ec) ? format::hf::in_dir(path, "tokenizer.json") : path;
    auto doc = format::hf::read_json_if_exists(path_);
    if (!doc) throw error(error::kind::io, path_, "not found");
    load(*doc);
  }
  // From an already parsed document; `path` only names it in errors.
  tokenizer(const nlohmann::json& doc, std::string path) : path_(std::move(path)) { load(doc); }

  tokenizer(tokenizer&&) noexcept = default;
  tokenizer& operator=(tokenizer&&) noexcept = default;

  // Token ids of one text. Throws error{argument} for invalid UTF-8 with strict_utf8 only.
  [[nodiscard]] std::vector<std::uint32_t> encode(std::string_view text,
                                                  const encode_options& opt = {}) const {
    std::string repaired;
    if (const auto bad = utf8::first_invalid(text)) {
      if (opt.strict_utf8)
        throw error(error::kind::argument, "", *bad, "input text is not valid UTF-8");
      repaired = utf8::make_valid(text);
      text = repaired;
    }
    scratch s;
    std::vector<std::uint32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    added_.split(text, false, opt.split_special_tokens, s.raw);
    for (const auto& seg : s.raw) {
      if (seg.id)
        ids.push_back(*seg.id);
      else
        encode_piece(text.substr(seg.where.begin, seg.where.end - seg.where.begin),
                     seg.where.begin == 0, opt, s, ids);
    }
    return opt.add_special_tokens ? post_.apply(std::move(ids)) : ids;
  }

  // encode() of every text on `threads` threads (0: all hardware threads, from a shared pool of
  // long-lived workers); result i belongs to texts[i] whatever the thread count. The first
  // exception thrown by any text is rethrown.
  template <class Text>
  [[nodiscard]] std::vector<std::vector<std::uint32_t>> encode_batch(std::span<const Text> texts,
                                                                     const encode_options& opt = {},
                                                                     unsigned threads = 0) const {
    std::vector<std::vector<std::uint32_t>> out(texts.size());
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(std::min<std::size_t>(threads, texts.size()));
    std::atomic<std::size_t> next{0};
    std::exception_ptr failure;
    std::mutex failure_lock;
    auto work = [&] {
      try {
        for (std::size_t i; (i = next.fetch_add(1)) < texts.size();)
          out[i] = encode(std::string_view(texts[i]), opt);
      } catch (...) {
        const std::lock_guard<std::mutex> g(failure_lock);
        if (!failure) failure = std::current_exception();
        next = texts.size();
      }
    };
    if (threads <= 1) {
      work();
    } else if (std::unique_lock<std::mutex> lock(pool_lock(), std::try_to_lock);
               lock && threads == worker_pool::shared().size()) {
      // Long-lived workers keep their per-thread BPE caches and regex scratch warm between
      // batches (HF relies on rayon's global pool the same way).
      worker_pool::shared().run(work);
    } else {
      std::vector<std::thread> pool;
      pool.reserve(threads);
      for (unsigned t = 0; t < threads; ++t) pool.emplace_back(work);
      for (auto& t : pool) t.join();
    }
    if (failure) std::rethrow_exception(failure);
    return out;
  }

  // Text of ids (Tokenizer::decode): unknown ids are dropped, special added tokens too when
  // skip_special_tokens; then the decoder chain.
  [[nodiscard]] std::string decode(std::span<const std::uint32_t> ids,
                                   bool skip_special_tokens = false) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (const auto id : ids) {
      const std::string* t = added_.text_of(id);
      if (!t) {
        const auto it = id_to_model_.find(id);
        if (it == id_to_model_.end()) continue;
        t = &it->second;
      }
      if (skip_special_tokens && added_.is_special_text(*t)) continue;
      tokens.push_back(*t);
    }
    if (decoders_.empty()) {
      std::string out;
      for (std::size_t k = 0; k < tokens.size(); ++k) {
        if (k) out += ' ';
        out += tokens[k];
      }
      return out;
    }
    std::vector<span> scratch;
    for (const auto& d : decoders_) d.apply(tokens, scratch);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  // The id of a token string (added tokens first, then the model vocabulary).
  [[nodiscard]] std::optional<std::uint32_t> token_to_id(std::string_view token) const {
    for (const auto& [id, text] : added_.entries())
      if (text == token) return id;
    return model_->token_to_id(token);
  }
  [[nodiscard]] std::optional<std::string> id_to_token(std::uint32_t id) const {
    if (const auto* t = added_.text_of(id)) return *t;
    const auto it = id_to_model_.find(id);
    return it == id_to_model_.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
  // One past the largest id the tokenizer can produce (model and added tokens).
  [[nodiscard]] std::uint64_t id_bound() const noexcept { return id_bound_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  static std::mutex& pool_lock() {
    static std::mutex m;
    return m;
  }

  struct scratch {
    std::vector<segment> raw, normalized;
    std::string norm;
    pieces pre;
    std::vector<span> matches;
  };

  void encode_piece(std::string_view text, bool at_origin, const encode_options& opt, scratch& s,
                    std::vector<std::uint32_t>& ids) const {
    std::string_view norm = text;
    if (!normalizers_.empty()) {
      s.norm.assign(text);
      for (const auto& n : normalizers_) n.apply(s.norm, at_origin, s.matches);
      norm = s.norm;
    }
    if (norm.empty()) return;
    if (!added_.has_normalized()) {
      pre_tokenize_and_model(norm, at_origin, s, ids);
      return;
    }
    s.normalized.clear();
    added_.split(norm, true, opt.split_special_tokens, s.normalized);
    for (const auto& seg : s.normalized) {
      if (seg.id)
        ids.push_back(*seg.id);
      else
        pre_tokenize_and_model(norm.substr(seg.where.begin, seg.where.end - seg.where.begin),
                               at_origin && seg.where.begin == 0, s, ids);
    }
  }

  void pre_tokenize_and_model(std::string_view text, bool at_origin, scratch& s,
                              std::vector<std::uint32_t>& ids) const {
    s.pre.reset(text, at_origin);
    for (const auto& p : pre_tokenizers_) p.apply(s.pre);
    for (const auto& p : s.pre.list) model_->encode_word(s.pre.view(p), ids);
  }

  void load(const nlohmann::json& doc) {
    using format::hf::json_type;
    if (!doc.is_object()) throw error(error::kind::format, path_, "not a JSON object");
    const auto mit = doc.find("model");
    if (mit == doc.end() || !mit->is_object())
      throw error(error::kind::format, path_, "no \"model\" object");
    // Files written by tokenizers < 0.14 may leave the BPE model untagged.
    const std::string type = mit->contains("type")     ? std::string(json_type(*mit))
                             : mit->contains("merges") ? "BPE"
                                                       : "";
    if (type != "BPE")
      throw error(error::kind::unsupported, path_,
                  cat("model '", type.empty() ? mit->dump().substr(0, 60) : type,
                      "' is not supported (supported: BPE)"));
    for (const char* key : {"truncation", "padding"})
      if (doc.contains(key) && !doc[key].is_null())
        format::hf::warn(cat(path_, ": \"", key, "\" is set in the file; not applied"));
    auto section = [&](const char* key) -> const nlohmann::json& {
      static const nlohmann::json null;
      const auto it = doc.find(key);
      return it == doc.end() ? null : *it;
    };
    normalizers_ = normalizer::parse(section("normalizer"), path_);
    bool byte_level = false;
    pre_tokenizers_ = pre_tokenizer::parse(section("pre_tokenizer"), path_, byte_level);
    model_ = std::make_unique<bpe>(*mit, path_, byte_level);
    post_ = post_processor::parse(section("post_processor"), path_);
    decoders_ = decoder::parse(section("decoder"), path_);
    const auto index = format::hf::index_tokenizer(doc, *mit, path_);
    added_ = added_vocabulary(index.added, normalizers_);
    id_bound_ = index.by_id.empty() ? 0 : std::uint64_t{index.by_id.rbegin()->first} + 1;
    id_to_model_.reserve(model_->vocab().size());
    model_->vocab().for_each(
        [&](std::string_view text, std::uint32_t id) { id_to_model_.emplace(id, text); });
  }

  std::string path_;
  std::vector<normalizer> normalizers_;
  std::vector<pre_tokenizer> pre_tokenizers_;
  std::unique_ptr<bpe> model_;
  post_processor post_;
  std::vector<decoder> decoders_;
  added_vocabulary added_;
  std::unordered_map<std::uint32_t, std::string> id_to_model_;
  std::uint64_t id_bound_ = 0;
};

}  // namespace qforge::tokenize
