// SPDX-License-Identifier: MIT
// Bad tokenizer.json files and bad text: unsupported components are refused naming the component
// and the file; invalid UTF-8 gives the ids HF gives for Python's bytes.decode("utf-8",
// "replace") of the same bytes (ids below from tokenizers 0.23 on tiny-qwen3), or an error with
// the byte offset in strict mode; pathological whitespace runs and repeats still match HF.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/tokenize/tokenizer.hpp"

using qforge::error;
using qforge::tokenize::tokenizer;
using ids = std::vector<std::uint32_t>;
using json = nlohmann::json;

namespace {

const std::string qwen = std::string(QFORGE_FIXTURES) + "/models/tiny-qwen3";

json fixture_json() {
  std::ifstream in(qwen + "/tokenizer.json");
  return json::parse(in);
}

// Writes doc as <tmp>/<name>/tokenizer.json and loads the folder; returns the error thrown.
error load_error(const json& doc, const std::string& name) {
  const auto dir = std::filesystem::path(QFORGE_TEST_TMP) / name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << doc.dump();
  try {
    (void)tokenizer(dir.string());
  } catch (const error& e) {
    CHECK(e.path() == (dir / "tokenizer.json").string());
    return e;
  }
  FAIL("no exception for " << name);
  return error(error::kind::internal, "unreachable");
}

}  // namespace

TEST_CASE("hostile: unsupported components name themselves and the file", "[tokenize]") {
  struct swap {
    const char* key;
    const char* value;
    const char* named;
  };
  const swap cases[] = {
      {"normalizer", R"({"type": "BertNormalizer", "clean_text": true})", "'BertNormalizer'"},
      {"normalizer",
       R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled", "precompiled_charsmap": ""}]})",
       "'Precompiled'"},
      {"pre_tokenizer",
       R"({"type": "Sequence", "pretokenizers": [{"type": "Punctuation", "behavior": "Isolated"}]})",
       "'Punctuation'"},
      {"post_processor", R"({"type": "Mystery"})", "'Mystery'"},
      {"decoder", R"({"type": "CTC", "pad_token": "<pad>"})", "'CTC'"},
      {"pre_tokenizer",
       R"({"type": "Split", "pattern": {"Regex": "(?<=a"}, "behavior": "Isolated", "invert": false})",
       "pre_tokenizer Split"},
  };
  int n = 0;
  for (const auto& c : cases) {
    INFO(c.value);
    auto doc = fixture_json();
    doc[c.key] = json::parse(c.value);
    const auto e = load_error(doc, "hostile_" + std::to_string(n++));
    CHECK(e.which() == error::kind::unsupported);
    CHECK_THAT(e.what(), Catch::Contains(c.named));
  }
  auto doc = fixture_json();
  doc["model"]["type"] = "WordPiece";
  const auto e = load_error(doc, "hostile_model");
  CHECK(e.which() == error::kind::unsupported);
  CHECK_THAT(e.what(), Catch::Contains("'WordPiece'"));
}

TEST_CASE("hostile: missing, malformed and inconsistent files", "[tokenize]") {
  try {
    (void)tokenizer(std::string(QFORGE_TEST_TMP) + "/no_such_model");
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::io);
  }
  const auto dir = std::filesystem::path(QFORGE_TEST_TMP) / "hostile_json";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0,}}})";
  try {
    (void)tokenizer(dir.string());
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::format);
    CHECK(e.offset().has_value());
  }
  auto doc = fixture_json();
  doc["model"]["merges"].push_back("Ġ nonexistent");
  CHECK(load_error(doc, "hostile_merge").which() == error::kind::format);
  doc = fixture_json();
  doc["model"]["vocab"]["dup"] = 5;  // an id given twice
  CHECK(load_error(doc, "hostile_dup").which() == error::kind::format);
}

TEST_CASE("hostile: invalid UTF-8 is replaced as Python's errors=\"replace\" does", "[tokenize]") {
  const tokenizer tok(qwen);
  // a FF b E2 82 (truncated): one U+FFFD each (171 123 121 is U+FFFD's three byte tokens).
  CHECK(tok.encode("a\xFF"
                   "b\xE2\x82") == ids{64, 171, 123, 121, 65, 171, 123, 121});
  // A UTF-16 surrogate (ED A0 80) is three maximal subparts.
  CHECK(tok.encode("\xED\xA0\x80x") == ids{171, 123, 121, 171, 123, 121, 171, 123, 121, 87});
  // An overlong '/' is two; a truncated 4-byte sequence is one; special tokens still match.
  CHECK(tok.encode("\xC0\xAF<|im_end|>\xF0\x9F\x98") ==
        ids{171, 123, 121, 171, 123, 121, 4090, 171, 123, 121});
  qforge::tokenize::encode_options strict;
  strict.strict_utf8 = true;
  try {
    (void)tok.encode("ab\xFF", strict);
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.which() == error::kind::argument);
    CHECK(e.offset() == 2u);
  }
  CHECK(tok.encode("ab", strict) == ids{394});
}

TEST_CASE("hostile: long runs", "[tokenize]") {
  const tokenizer tok(qwen);
  // 100 000 spaces: \s+(?!\S) backtracks over the whole run (needs a JIT stack beyond 32 KiB).
  const auto spaces = tok.encode("a" + std::string(100000, ' ') + "b");
  REQUIRE(spaces.size() == 3127);
  CHECK(spaces.front() == 64);
  CHECK(std::count(spaces.begin(), spaces.end(), 486u) == 3124);
  CHECK(spaces[3125] == 3950);
  CHECK(spaces.back() == 279);
  // One 100 000-letter word: merging must stay fast (heap, not rescans).
  const auto rep = tok.encode("a" + std::string(99998, 'b') + "a");
  REQUIRE(rep.size() == 99998);
  CHECK(rep.front() == 3455);
  CHECK(std::count(rep.begin(), rep.end(), 65u) == 99996);
  CHECK(rep.back() == 64);
  std::string ab;
  for (int i = 0; i < 50000; ++i) ab += "ab";
  CHECK(tok.encode(ab) == ids(50000, 394));
}
