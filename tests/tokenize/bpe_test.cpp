// SPDX-License-Identifier: MIT
// tokenize/bpe.hpp and whole hand-made tokenizers: a byte-level BPE, and SentencePiece-style BPEs
// with byte_fallback as Llama 2 / Mistral publish them (Prepend + Replace normalizer, or a
// Metaspace pre-tokenizer). Expected ids are worked out by hand from the merge ranks; the
// tokenizer.json files are also written to QFORGE_TEST_TMP for checking against HF.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/tokenize/tokenizer.hpp"

using qforge::tokenize::bpe;
using qforge::tokenize::tokenizer;
using ids = std::vector<std::uint32_t>;
using json = nlohmann::json;

namespace {

ids run(const bpe& m, std::string_view word) {
  ids out;
  m.encode_word(word, out);
  return out;
}

json model(json vocab, json merges) {
  return {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
}

tokenizer save_and_load(const json& doc, const std::string& name) {
  std::ofstream(std::string(QFORGE_TEST_TMP) + "/" + name + ".json") << doc.dump(1);
  return tokenizer(doc, name + ".json");
}

// Llama 2 style: <unk> <s> </s>, the 256 byte tokens, then pieces.
json spm_vocab() {
  json v = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) v[bpe::byte_token(static_cast<unsigned char>(b))] = 3 + b;
  const char* pieces[] = {"▁",  "h",   "e",   "l",      "o",  "w",  "r",    "d",  "▁h",
                          "ll", "▁he", "llo", "▁hello", "▁w", "or", "▁wor", "ld", "▁world"};
  std::uint32_t id = 259;
  for (const char* p : pieces) v[p] = id++;
  return v;
}
json spm_merges() {
  return {"▁ h", "l l", "▁h e", "ll o", "▁he llo", "▁ w", "o r", "▁w or", "l d", "▁wor ld"};
}
json spm_added() {
  json a = json::array();
  const char* names[] = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < 3; ++i)
    a.push_back({{"id", i},
                 {"content", names[i]},
                 {"single_word", false},
                 {"lstrip", false},
                 {"rstrip", false},
                 {"normalized", false},
                 {"special", true}});
  return a;
}
json bos_template() {
  return json::parse(R"({"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}})");
}
json spm_model() {
  json m = model(spm_vocab(), spm_merges());
  m["unk_token"] = "<unk>";
  m["fuse_unk"] = true;
  m["byte_fallback"] = true;
  return m;
}

}  // namespace

TEST_CASE("bpe: lowest rank first, leftmost on ties", "[tokenize][bpe]") {
  const json v = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // (b,c) outranks (a,b): abc -> a bc -> abc.
  const bpe m1(model(v, {"b c", "a b", "a bc"}), "t", false);
  CHECK(run(m1, "abc") == ids{5});
  CHECK(run(m1, "ab") == ids{3});
  CHECK(run(m1, "cab") == ids{2, 3});
  // No rank for (ab,c) or (a,bc): abc stops at ab c.
  const bpe m2(model(v, {"a b", "b c"}), "t", false);
  CHECK(run(m2, "abc") == ids{3, 2});
  CHECK(run(m2, "abab") == ids{3, 3});
  CHECK(run(m2, "bbc") == ids{1, 4});
  // The pair encoding of merges means the same; a part may then contain a space.
  const bpe m3(model(v, json::parse(R"([["b", "c"], ["a", "bc"]])")), "t", false);
  CHECK(run(m3, "abc") == ids{5});
  const bpe m4(model({{"a b", 0}, {"c", 1}, {"a bc", 2}}, json::parse(R"([["a b", "c"]])")), "t",
               false);
  CHECK(m4.token_to_id("a bc") == 2u);
}

TEST_CASE("bpe: unknown characters: unk, fuse_unk, dropped", "[tokenize][bpe]") {
  const json v = {{"<unk>", 0}, {"a", 1}, {"b", 2}};
  json m = model(v, json::array());
  CHECK(run(bpe(m, "t", false), "axb") == ids{1, 2});  // no unk_token: dropped, as HF does
  m["unk_token"] = "<unk>";
  CHECK(run(bpe(m, "t", false), "axyb") == ids{1, 0, 0, 2});
  m["fuse_unk"] = true;
  CHECK(run(bpe(m, "t", false), "axyb\xC3\xA9") == ids{1, 0, 2, 0});
  m["unk_token"] = "<nope>";
  CHECK_THROWS_AS(bpe(m, "t", false), qforge::error);
}

TEST_CASE("bpe: ignore_merges and continuing_subword_prefix", "[tokenize][bpe]") {
  json m = model({{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}}, {"a b"});
  CHECK(run(bpe(m, "t", false), "abc") == ids{3, 2});
  m["ignore_merges"] = true;  // a whole-word hit skips merging (Llama 3)
  CHECK(run(bpe(m, "t", false), "abc") == ids{4});
  CHECK(run(bpe(m, "t", false), "abab") == ids{3, 3});
  // With a prefix, non-initial characters are looked up as ##x and merges drop the prefix.
  json p = model({{"a", 0}, {"##b", 1}, {"ab", 2}, {"##a", 3}}, {"a ##b"});
  p["continuing_subword_prefix"] = "##";
  CHECK(run(bpe(p, "t", false), "ab") == ids{2});
  CHECK(run(bpe(p, "t", false), "aa") == ids{0, 3});
}

TEST_CASE("bpe: a merge naming a token missing from the vocabulary is refused", "[tokenize][bpe]") {
  try {
    (void)bpe(model({{"a", 0}, {"b", 1}}, {"a b"}), "m/tokenizer.json", false);
    FAIL("no exception");
  } catch (const qforge::error& e) {
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(e.path() == "m/tokenizer.json");
    CHECK_THAT(e.what(), Catch::Contains("'ab'"));
  }
}

TEST_CASE("tokenizer: byte-level BPE", "[tokenize][bpe]") {
  // Byte b has id b through its byte-level character; then Ġh (256) and Ġhi (257).
  const auto& chars = qforge::tokenize::detail::byte_level_chars();
  json v = json::object();
  for (int b = 0; b < 256; ++b) v[chars[b]] = b;
  v["Ġh"] = 256;
  v["Ġhi"] = 257;
  json doc = {
      {"version", "1.0"},
      {"model", model(v, {"Ġ h", "Ġh i"})},
      {"pre_tokenizer",
       json::parse(
           R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true})")},
      {"decoder",
       json::parse(
           R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})")}};
  const auto tok = save_and_load(doc, "byte_level");
  // "hi" | " hi" | "é" (bytes C3 A9) | "\n"
  CHECK(tok.encode("hi hi\xC3\xA9\n") == ids{104, 105, 257, 195, 169, 10});
  CHECK(tok.decode(ids{104, 105, 257, 195, 169, 10}) == "hi hi\xC3\xA9\n");
  // Half a character decodes to U+FFFD.
  CHECK(tok.decode(ids{104, 195}) == "h\xEF\xBF\xBD");
}

TEST_CASE("tokenizer: SentencePiece-style BPE, Prepend + Replace, byte_fallback",
          "[tokenize][bpe]") {
  json doc = {{"version", "1.0"},
              {"added_tokens", spm_added()},
              {"normalizer", json::parse(R"({"type": "Sequence", "normalizers": [
                 {"type": "Prepend", "prepend": "▁"},
                 {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})")},
              {"pre_tokenizer", nullptr},
              {"post_processor", bos_template()},
              {"decoder", json::parse(R"({"type": "Sequence", "decoders": [
                 {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                 {"type": "ByteFallback"}, {"type": "Fuse"},
                 {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})")},
              {"model", spm_model()}};
  const auto tok = save_and_load(doc, "spm_prepend");
  // "▁hello▁world": ▁h, ll, ▁he, llo, ▁hello, ▁w, or, ▁wor, ld, ▁world.
  CHECK(tok.encode("hello world") == ids{1, 271, 276});
  // 'i' is not a piece: <0x69> = 3 + 0x69.
  CHECK(tok.encode("hi") == ids{1, 267, 108});
  // é is two byte tokens; the leading ▁ stays alone.
  CHECK(tok.encode("\xC3\xA9") == ids{1, 259, 198, 172});
  // Every piece between added tokens gets its own ▁ from Prepend.
  CHECK(tok.encode("hello</s>hello") == ids{1, 271, 2, 271});
  CHECK(tok.encode("") == ids{1});
  qforge::tokenize::encode_options raw;
  raw.add_special_tokens = false;
  CHECK(tok.encode("hello", raw) == ids{271});
  CHECK(tok.decode(ids{1, 271, 276}, true) == "hello world");
  CHECK(tok.decode(ids{1, 271, 276}, false) == "<s> hello world");
  CHECK(tok.decode(ids{1, 259, 198, 172}, true) == "\xC3\xA9");
  // A run of byte tokens that is not UTF-8 (A9 69) is one U+FFFD per byte token.
  CHECK(tok.decode(ids{267, 172, 108}, true) == "h\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_CASE("tokenizer: SentencePiece-style BPE with Metaspace (prepend_scheme first)",
          "[tokenize][bpe]") {
  json doc = {
      {"version", "1.0"},
      {"added_tokens", spm_added()},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       json::parse(
           R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})")},
      {"post_processor", bos_template()},
      {"decoder",
       json::parse(
           R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})")},
      {"model", spm_model()}};
  const auto tok = save_and_load(doc, "spm_metaspace");
  CHECK(tok.encode("hello world") == ids{1, 271, 276});
  // Only text at the very start gets ▁: after </s>, "hello" is h e llo.
  CHECK(tok.encode("hello</s>hello") == ids{1, 271, 2, 260, 261, 270});
  CHECK(tok.encode("</s>hello") == ids{1, 2, 260, 261, 270});
  CHECK(tok.decode(ids{1, 271, 276}, true) == "hello world");
  CHECK(tok.decode(ids{271, 2, 260, 261, 270}) == "hello</s>hello");
}
