// SPDX-License-Identifier: MIT
// The BPE model of tokenizer.json, as Hugging Face `tokenizers` runs it (models/bpe/model.rs
// merge_word, word.rs merge_all): a word starts as one symbol per character (per byte for
// byte-level vocabularies), characters missing from the vocabulary become <0xNN> byte tokens
// (byte_fallback) or unk (fused when fuse_unk), then the adjacent pair of lowest merge rank is
// merged, leftmost first, until no pair has a rank. ignore_merges looks the whole word up first.
// Merges come as "a b" strings or ["a", "b"] pairs. Results of words under 256 bytes are cached per
// thread (as HF does), so the model is safe to share between threads after construction.
#pragma once
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"
#include "qforge/tokenize/utf8.hpp"

namespace qforge::tokenize {

namespace detail {

inline std::uint64_t hash_bytes(std::string_view s) noexcept {
  // 8 bytes at a time, multiply-xorshift mixing: words are short, lookups are the hot path.
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    __builtin_memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  std::uint64_t tail = 0;
  __builtin_memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0x94D049BB133111EBull;
  return h ^ (h >> 29);
}

// Open-addressing map from strings (kept in one arena) to V; the first insert of a key wins.
template <class V>
class string_table {
 public:
  [[nodiscard]] const V* find(std::string_view k) const noexcept {
    if (slots_.empty()) return nullptr;
    const std::uint64_t h = hash_bytes(k);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.hash == h && s.len == k.size() && std::string_view(keys_.data() + s.off, s.len) == k)
        return &s.value;
    }
  }
  void insert(std::string_view k, V v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const std::uint64_t h = hash_bytes(k);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (!s.used) {
        s = {h, static_cast<std::uint32_t>(keys_.size()), static_cast<std::uint32_t>(k.size()),
             std::move(v), true};
        keys_.append(k);
        ++size_;
        return;
      }
      if (s.hash == h && std::string_view(keys_.data() + s.off, s.len) == k) return;
    }
  }
  void clear() noexcept {
    for (auto& s : slots_) s.used = false;
    keys_.clear();
    size_ = 0;
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  template <class F>
  void for_each(F f) const {
    for (const auto& s : slots_)
      if (s.used) f(std::string_view(keys_.data() + s.off, s.len), s.value);
  }

 private:
  struct slot {
    std::uint64_t hash = 0;
    std::uint32_t off = 0, len = 0;
    V value{};
    bool used = false;
  };
  void grow() {
    std::vector<slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, slot{});
    mask_ = slots_.size() - 1;
    for (auto& s : old) {
      if (!s.used) continue;
      std::size_t i = s.hash & mask_;
      while (slots_[i].used) i = (i + 1) & mask_;
      slots_[i] = std::move(s);
    }
  }
  std::vector<slot> slots_;
  std::string keys_;
  std::size_t size_ = 0, mask_ = 0;
};

// Open-addressing map (left id, right id) -> (rank, merged id); the hottest lookup of merging.
class pair_map {
 public:
  struct value {
    std::uint32_t rank, id;
  };
  // Never without slots: a model with no "merges" never calls reserve(), and find() must still
  // see an empty table rather than index an empty vector.
  pair_map() { reserve(0); }
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, empty);
    values_.assign(cap, {});
    mask_ = cap - 1;
  }
  // Later entries replace earlier ones, as collecting into HF's hash map does.
  void insert(std::uint32_t a, std::uint32_t b, value v) {
    const std::uint64_t k = key(a, b);
    std::size_t i = slot(k);
    while (keys_[i] != empty && keys_[i] != k) i = (i + 1) & mask_;
    keys_[i] = k;
    values_[i] = v;
  }
  [[nodiscard]] const value* find(std::uint32_t a, std::uint32_t b) const noexcept {
    const std::uint64_t k = key(a, b);
    for (std::size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return &values_[i];
      if (keys_[i] == empty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t empty = ~std::uint64_t{0};
  static std::uint64_t key(std::uint32_t a, std::uint32_t b) noexcept {
    return (std::uint64_t{a} << 32) | b;
  }
  [[nodiscard]] std::size_t slot(std::uint64_t k) const noexcept {
    return static_cast<std::size_t>((k * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
  }
  std::vector<std::uint64_t> keys_;
  std::vector<value> values_;
  std::size_t mask_ = 0;
};

// The byte-level alphabet (GPT-2's bytes_to_unicode): printable Latin-1 bytes stand for
// themselves, the other 68 bytes map to U+0100.. in byte order.
inline const std::array<std::string, 256>& byte_level_chars() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      utf8::append(t[b], printable ? static_cast<char32_t>(b) : next++);
    }
    return t;
  }();
  return table;
}

}  // namespace detail

class bpe {
 public:
  // `model` is tokenizer.json's "model" object (type BPE); byte_level: the pre-tokenizer hands
  // over raw bytes (ByteLevel), which map to vocabulary characters through the byte-level table.
  bpe(const nlohmann::json& model, const std::string& path, bool byte_level)
      : byte_level_(byte_level), uid_(next_uid()) {
    using format::hf::json_bool;
    const auto vit = model.find("vocab");
    if (vit == model.end() || !vit->is_object())
      throw error(error::kind::format, path, "model.vocab is missing or not an object");
    for (const auto& [text, v] : vit->items()) {
      const auto id = format::hf::token_id(v, path, cat("model.vocab '", text, "'"));
      vocab_.insert(text, id);
      n_ids_ = std::max<std::uint64_t>(n_ids_, std::uint64_t{id} + 1);
    }
    if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"] != 0.0)
      throw error(error::kind::unsupported, path,
                  "BPE dropout is not supported (not deterministic)");
    auto opt_string = [&](const char* key) -> std::string {
      const auto it = model.find(key);
      return it != model.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    prefix_ = opt_string("continuing_subword_prefix");
    suffix_ = opt_string("end_of_word_suffix");
    if (const auto unk = opt_string("unk_token"); !unk.empty()) {
      const auto* id = vocab_.find(unk);
      if (!id)
        throw error(error::kind::format, path,
                    cat("model.unk_token '", unk, "' is not in model.vocab"));
      unk_ = *id;
    }
    fuse_unk_ = json_bool(model, "fuse_unk", false);
    byte_fallback_ = json_bool(model, "byte_fallback", false);
    ignore_merges_ = json_bool(model, "ignore_merges", false);
    read_merges(model, path);
    const auto& chars = detail::byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      const auto* id = vocab_.find(chars[b]);
      byte_ids_[b] = id ? *id : none;
      const auto* fb = vocab_.find(byte_token(static_cast<unsigned char>(b)));
      fallback_ids_[b] = fb ? *fb : none;
    }
  }

  // Appends the ids of one pre-tokenized word (raw bytes when byte_level, else UTF-8 text).
  void encode_word(std::string_view word, std::vector<std::uint32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      const std::string_view key = byte_level_ ? to_byte_level(word) : word;
      if (const auto* id = vocab_.find(key)) {
        out.push_back(*id);
        return;
      }
    }
    auto& c = cache();
    const bool cacheable = word.size() < 256;
    if (cacheable) {
      if (const auto* hit = c.map.find(word)) {
        out.insert(out.end(), c.ids.begin() + hit->first, c.ids.begin() + hit->first + hit->second);
        return;
      }
    }
    const std::size_t first = out.size();
    merge_word(word, out);
    if (cacheable) {
      if (c.map.size() >= cache_capacity) {
        c.map.clear();
        c.ids.clear();
      }
      c.map.insert(word, {static_cast<std::uint32_t>(c.ids.size()),
                          static_cast<std::uint32_t>(out.size() - first)});
      c.ids.insert(c.ids.end(), out.begin() + first, out.end());
    }
  }

  [[nodiscard]] std::optional<std::uint32_t> token_to_id(std::string_view token) const {
    const auto* id = vocab_.find(token);
    return id ? std::optional<std::uint32_t>(*id) : std::nullopt;
  }
  [[nodiscard]] const detail::string_table<std::uint32_t>& vocab() const noexcept { return vocab_; }
  // One past the largest model id.
  [[nodiscard]] std::uint64_t id_bound() const noexcept { return n_ids_; }
  [[nodiscard]] bool byte_level() const noexcept { return byte_level_; }

  static std::string byte_token(unsigned char b) {
    static constexpr char hex[] = "0123456789ABCDEF";
    return {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
  }

 private:
  static constexpr std::uint32_t none = ~std::uint32_t{0};
  static constexpr std::size_t cache_capacity = 1 << 15;

  struct symbol {
    std::uint32_t id;
    std::int32_t prev, next;
    std::uint32_t len;  // bytes; 0 once merged into its left neighbour
  };
  struct candidate {
    std::uint32_t rank, pos, id;
    // std heaps keep the largest on top: "largest" = lowest rank, then leftmost.
    bool operator<(const candidate& o) const noexcept {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  struct thread_cache {
    std::uint64_t owner = 0;
    detail::string_table<std::pair<std::uint32_t, std::uint32_t>> map;  // word -> ids (off, n)
    std::vector<std::uint32_t> ids;
    std::vector<symbol> symbols;
    std::vector<candidate> heap;
    std::string text;
  };

  static std::uint64_t next_uid() {
    static std::atomic<std::uint64_t> n{0};
    return ++n;
  }
  // One cache per thread, tied to the last model used on it (a model's uid is never reused).
  thread_cache& cache() const {
    thread_local thread_cache c;
    if (c.owner != uid_) {
      c.map.clear();
      c.owner = uid_;
    }
    return c;
  }

  std::string_view to_byte_level(std::string_view raw) const {
    auto& s = cache().text;
    s.clear();
    const auto& chars = detail::byte_level_chars();
    for (const char b : raw) s += chars[static_cast<unsigned char>(b)];
    return s;
  }

  void read_merges(const nlohmann::json& model, const std::string& path) {
    const auto mit = model.find("merges");
    if (mit == model.end() || mit->is_null()) return;
    if (!mit->is_array()) throw error(error::kind::format, path, "model.merges is not a list");
    merges_.reserve(mit->size());
    std::uint32_t rank = 0;
    std::string merged;
    for (const auto& m : *mit) {
      std::string a, b;
      if (m.is_string()) {
        const auto& s = m.get_ref<const std::string&>();
        const auto sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          throw error(
              error::kind::format, path,
              cat("model.merges[", rank, "]: '", s, "' is not two tokens split by a space"));
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        a = m[0].get<std::string>();
        b = m[1].get<std::string>();
      } else {
        throw error(error::kind::format, path,
                    cat("model.merges[", rank, "]: expected \"a b\" or [\"a\", \"b\"]"));
      }
      auto id_of = [&](const std::string& t) {
        const auto* id = vocab_.find(t);
        if (!id)
          throw error(error::kind::format, path,
                      cat("model.merges[", rank, "]: token '", t, "' is not in model.vocab"));
        return *id;
      };
      if (!prefix_.empty() && b.starts_with(prefix_))
        merged = a + b.substr(prefix_.size());
      else
        merged = a + b;
      merges_.insert(id_of(a), id_of(b), {rank, id_of(merged)});
      ++rank;
    }
  }

  // A character (or byte-level char) missing from the vocabulary: byte tokens, unk, or nothing.
  void unknown(std::string_view s, std::uint32_t len, std::vector<symbol>& syms,
               std::optional<std::pair<std::uint32_t, std::uint32_t>>& unk) const {
    if (byte_fallback_) {
      bool all = true;
      for (const char b : s) all = all && fallback_ids_[static_cast<unsigned char>(b)] != none;
      if (all) {
        // HF adds these before a pending unk (merge_word flushes unk only on a vocabulary hit).
        for (const char b : s) push(syms, fallback_ids_[static_cast<unsigned char>(b)], 1);
        return;
      }
    }
    if (!unk_) return;  // HF drops the character silently
    if (unk && fuse_unk_) {
      unk->second += len;
    } else {
      flush_unk(syms, unk);
      unk = std::pair{*unk_, len};
    }
  }
  static void flush_unk(std::vector<symbol>& syms,
                        std::optional<std::pair<std::uint32_t, std::uint32_t>>& unk) {
    if (unk) push(syms, unk->first, unk->second);
    unk.reset();
  }
  static void push(std::vector<symbol>& syms, std::uint32_t id, std::uint32_t len) {
    const auto n = static_cast<std::int32_t>(syms.size());
    syms.push_back({id, n - 1, n + 1, len});
  }

  void merge_word(std::string_view word, std::vector<std::uint32_t>& out) const {
    auto& c = cache();
    auto& syms = c.symbols;
    syms.clear();
    std::optional<std::pair<std::uint32_t, std::uint32_t>> unk;
    const bool affixes = !prefix_.empty() || !suffix_.empty();
    if (byte_level_ && !affixes) {
      const auto& chars = detail::byte_level_chars();
      for (const char ch : word) {
        const auto b = static_cast<unsigned char>(ch);
        if (byte_ids_[b] != none) {
          flush_unk(syms, unk);
          push(syms, byte_ids_[b], 1);
        } else {
          unknown(chars[b], 1, syms, unk);
        }
      }
    } else {
      std::string holder;  // continuing_subword_prefix / end_of_word_suffix on byte-level text
      std::string_view text = word;
      if (byte_level_) text = holder = to_byte_level(word);
      std::string s;
      std::size_t i = 0;
      while (i < text.size()) {
        const std::size_t b = i;
        utf8::next(text, i);
        s.assign(text.substr(b, i - b));
        if (b > 0) s.insert(0, prefix_);
        if (i == text.size()) s += suffix_;
        const auto len = static_cast<std::uint32_t>(i - b);
        if (const auto* id = vocab_.find(s)) {
          flush_unk(syms, unk);
          push(syms, *id, len);
        } else {
          unknown(s, len, syms, unk);
        }
      }
    }
    flush_unk(syms, unk);
    if (syms.empty()) return;
    syms.back().next = -1;

    auto& heap = c.heap;
    heap.clear();
    for (std::size_t k = 0; k + 1 < syms.size(); ++k)
      if (const auto* m = merges_.find(syms[k].id, syms[k + 1].id))
        heap.push_back({m->rank, static_cast<std::uint32_t>(k), m->id});
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const candidate top = heap.back();
      heap.pop_back();
      symbol& left = syms[top.pos];
      if (left.len == 0 || left.next == -1) continue;
      symbol& right = syms[static_cast<std::size_t>(left.next)];
      const auto* now = merges_.find(left.id, right.id);
      if (!now || now->id != top.id) continue;  // stale: a neighbour changed since
      left.id = top.id;
      left.len += right.len;
      left.next = right.next;
      right.len = 0;
      if (left.next != -1)
        syms[static_cast<std::size_t>(left.next)].prev = static_cast<std::int32_t>(top.pos);
      if (left.prev != -1) {
        const auto p = static_cast<std::size_t>(left.prev);
        if (const auto* m = merges_.find(syms[p].id, left.id)) {
          heap.push_back({m->rank, static_cast<std::uint32_t>(p), m->id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (left.next != -1) {
        const auto n = static_cast<std::size_t>(left.next);
        if (const auto* m = merges_.find(left.id, syms[n].id)) {
          heap.push_back({m->rank, top.pos, m->id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
    for (std::int32_t k = 0; k != -1; k = syms[static_cast<std::size_t>(k)].next)
      out.push_back(syms[static_cast<std::size_t>(k)].id);
  }

  detail::string_table<std::uint32_t> vocab_;
  detail::pair_map merges_;
  std::uint64_t n_ids_ = 0;
  std::array<std::uint32_t, 256> byte_ids_{}, fallback_ids_{};
  std::optional<std::uint32_t> unk_;
  std::string prefix_, suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  bool byte_level_ = false;
  std::uint64_t uid_;
};

}  // namespace qforge::tokenize
