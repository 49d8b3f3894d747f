// SPDX-License-Identifier: MIT
// Normalizers, added tokens, decoders and post-processors of tokenize/ on hand-made values;
// expectations follow the rules of each tokenizers component (see the headers).
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/tokenize/tokenizer.hpp"

using namespace qforge::tokenize;
using json = nlohmann::json;
using ids = std::vector<std::uint32_t>;
using strings = std::vector<std::string>;

namespace {

std::string normalize(const std::string& j, std::string s, bool* at_origin = nullptr) {
  const auto chain = normalizer::parse(json::parse(j), "t.json");
  bool origin = true;
  std::vector<span> scratch;
  for (const auto& n : chain) n.apply(s, origin, scratch);
  if (at_origin) *at_origin = origin;
  return s;
}

strings decode_chain(const std::string& j, strings tokens) {
  std::vector<span> scratch;
  for (const auto& d : decoder::parse(json::parse(j), "t.json")) d.apply(tokens, scratch);
  return tokens;
}

json added(std::uint32_t id, const char* content, bool special, bool normalized,
           bool lstrip = false, bool rstrip = false, bool single_word = false) {
  return {{"id", id},
          {"content", content},
          {"special", special},
          {"normalized", normalized},
          {"lstrip", lstrip},
          {"rstrip", rstrip},
          {"single_word", single_word}};
}

// Characters " " and a..z as ids 0..26, no merges, no unk; NFKC normalizer; added tokens.
tokenizer char_tokenizer() {
  json v = {{" ", 0}};
  for (char c = 'a'; c <= 'z'; ++c) v[std::string(1, c)] = c - 'a' + 1;
  json doc = {{"version", "1.0"},
              {"added_tokens",
               {added(27, "<x>", true, false), added(28, "[lst]", true, false, true),
                added(29, "[rst]", true, false, false, true),
                added(30, "sw", false, false, false, false, true),
                added(31, "\xEF\xAC\x81", false, true)}},  // U+FB01 LATIN SMALL LIGATURE FI
              {"normalizer", {{"type", "NFKC"}}},
              {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},
              {"decoder", nullptr},
              {"model", {{"type", "BPE"}, {"vocab", v}, {"merges", json::array()}}}};
  std::ofstream(std::string(QFORGE_TEST_TMP) + "/added_tokens.json") << doc.dump(1);
  return tokenizer(doc, "added_tokens.json");
}

}  // namespace

TEST_CASE("normalizers: Unicode forms, Prepend, Replace, Strip, Sequence", "[tokenize]") {
  CHECK(normalize(R"({"type": "NFC"})", "e\xCC\x81") == "\xC3\xA9");
  CHECK(normalize(R"({"type": "NFD"})", "\xC3\xA9") == "e\xCC\x81");
  CHECK(normalize(R"({"type": "NFKC"})", "\xEF\xAC\x81 \xE2\x91\xA0") == "fi 1");  // ﬁ ①
  CHECK(normalize(R"({"type": "NFKD"})", "\xC3\xA9\xE2\x91\xA0") ==
        "e\xCC\x81"
        "1");
  CHECK(normalize(R"({"type": "NFC"})", "plain ascii") == "plain ascii");
  CHECK(normalize(R"({"type": "Prepend", "prepend": "▁"})", "a") == "▁a");
  CHECK(normalize(R"({"type": "Prepend", "prepend": "▁"})", "").empty());
  CHECK(normalize(R"({"type": "Replace", "pattern": {"String": " "}, "content": "▁"})", " a b") ==
        "▁a▁b");
  CHECK(normalize(R"({"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "})",
                  "a \t\n b") == "a b");
  bool origin = true;
  CHECK(normalize(R"({"type": "Strip", "strip_left": true, "strip_right": true})",
                  "\xE3\x80\x80 a b \n", &origin) == "a b");
  CHECK_FALSE(origin);  // leading text removed: no longer at offset 0
  CHECK(normalize(R"({"type": "Strip", "strip_left": false, "strip_right": true})", " a ") == " a");
  // Order matters: Replace then Prepend differs from Prepend then Replace.
  CHECK(normalize(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": " "},
      {"type": "Replace", "pattern": {"String": " "}, "content": "_"}]})",
                  "a b") == "_a_b");
  try {
    (void)normalizer::parse(json::parse(R"({"type": "Lowercase"})"), "m/tokenizer.json");
    FAIL("no exception");
  } catch (const qforge::error& e) {
    CHECK(e.which() == qforge::error::kind::unsupported);
    CHECK(e.path() == "m/tokenizer.json");
    CHECK_THAT(e.what(), Catch::Contains("'Lowercase'"));
  }
}

TEST_CASE("added tokens: lstrip, rstrip, single_word, normalized, as plain text", "[tokenize]") {
  const auto tok = char_tokenizer();
  CHECK(tok.encode("a<x>b") == ids{1, 27, 2});
  CHECK(tok.encode("a  [lst]b") == ids{1, 28, 2});  // the spaces before it are swallowed
  CHECK(tok.encode("a[rst]  b") == ids{1, 29, 2});  // the spaces after it are swallowed
  CHECK(tok.encode("a [rst]b") == ids{1, 0, 29, 2});
  // single_word: "sw" only between non-word characters.
  CHECK(tok.encode("sw asw sw") == ids{30, 0, 1, 19, 23, 0, 30});
  CHECK(tok.encode("sw_") == ids{19, 23});  // '_' is a word character; not in the vocabulary
  // normalized = true: matched in the NFKC text, so both spellings find it.
  CHECK(tok.encode("xfiy") == ids{24, 31, 25});
  CHECK(tok.encode("x\xEF\xAC\x81y") == ids{24, 31, 25});
  CHECK(tok.decode(ids{31}) == "fi");  // decoding shows the normalized content
  // split_special_tokens: special ones become text ('<', '>' are unknown: dropped); the
  // non-special ones are still matched.
  encode_options opt;
  opt.split_special_tokens = true;
  CHECK(tok.encode("a<x>b sw", opt) == ids{1, 24, 2, 0, 30});
  CHECK(tok.token_to_id("<x>") == 27u);
  CHECK(tok.id_to_token(3) == "c");
  // No decoder: tokens joined by spaces; skip_special_tokens drops special ones.
  CHECK(tok.decode(ids{1, 27, 2}) == "a <x> b");
  CHECK(tok.decode(ids{1, 27, 2}, true) == "a b");
  CHECK(tok.decode(ids{1, 9999, 2}) == "a b");  // unknown ids are skipped
}

TEST_CASE("decoders: each component", "[tokenize]") {
  CHECK(decode_chain(R"({"type": "Strip", "content": " ", "start": 1, "stop": 1})",
                     {" a ", "  b  ", "c"}) == strings{"a", " b ", "c"});
  CHECK(decode_chain(R"({"type": "Replace", "pattern": {"Regex": "a+"}, "content": "x"})",
                     {"baab", "c"}) == strings{"bxb", "c"});
  CHECK(decode_chain(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"})",
                     {"▁a▁", "▁b"}) == strings{"a", " b"});
  CHECK(decode_chain(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"})",
                     {"▁a", "▁b"}) == strings{" a", " b"});
  CHECK(decode_chain(R"({"type": "ByteFallback"})",
                     {"<0x61>", "<0xC3>", "<0xA9>", "x", "<0xFF>", "<0xZZ>"}) ==
        strings{"a\xC3\xA9", "x", "\xEF\xBF\xBD", "<0xZZ>"});
  CHECK(decode_chain(R"({"type": "Fuse"})", {"a", "b", "c"}) == strings{"abc"});
  // ByteLevel: the alphabet back to bytes; a token with another character passes as its bytes.
  CHECK(decode_chain(R"({"type": "ByteLevel"})", {"Ġa", "\xE2\x82\xAC", "Ċ"}) ==
        strings{" a\xE2\x82\xAC\n"});
  CHECK(decode_chain(R"({"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                        {"type": "Fuse"}]})",
                     {"<0x68>", "i"}) == strings{"hi"});
  CHECK_THROWS_AS(decoder::parse(json::parse(R"({"type": "WordPiece"})"), "t"), qforge::error);
}

TEST_CASE("post-processors: Template, Roberta, Bert, ByteLevel, Sequence", "[tokenize]") {
  const auto tmpl = post_processor::parse(json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "[END]", "type_id": 0}}],
      "pair": [], "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [7], "tokens": ["[CLS]"]},
                                     "[END]": {"id": "[END]", "ids": [8, 9], "tokens": ["a", "b"]}}})"),
                                          "t");
  CHECK(tmpl.apply({1, 2}) == ids{7, 1, 2, 8, 9});
  CHECK(tmpl.apply({}) == ids{7, 8, 9});
  const auto roberta = post_processor::parse(
      json::parse(
          R"({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": true, "add_prefix_space": true})"),
      "t");
  CHECK(roberta.apply({5}) == ids{0, 5, 2});
  const auto seq = post_processor::parse(json::parse(R"({"type": "Sequence", "processors": [
      {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
      {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}]})"),
                                         "t");
  CHECK(seq.apply({5}) == ids{101, 5, 102});
  CHECK_THROWS_AS(post_processor::parse(json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<missing>", "type_id": 0}}], "special_tokens": {}})"),
                                        "t"),
                  qforge::error);
}
