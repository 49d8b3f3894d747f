// SPDX-License-Identifier: MIT
// tokenize/pre_tokenizers.hpp on hand-made "pre_tokenizer" values; expected pieces worked out from
// the rules of tokenizers' NormalizedString::split and each pre-tokenizer.
#include "qforge/tokenize/pre_tokenizers.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using qforge::tokenize::pieces;
using qforge::tokenize::pre_tokenizer;
using strings = std::vector<std::string>;

namespace {

strings split(const std::string& json, std::string_view text, bool at_origin = true) {
  bool byte_level = false;
  const auto steps = pre_tokenizer::parse(nlohmann::json::parse(json), "t.json", byte_level);
  pieces ps;
  ps.reset(text, at_origin);
  for (const auto& s : steps) s.apply(ps);
  strings out;
  for (const auto& p : ps.list) out.emplace_back(ps.view(p));
  return out;
}

std::string split_json(const char* behavior, bool invert = false,
                       const char* pattern = R"({"String": " "})") {
  return std::string(R"({"type": "Split", "pattern": )") + pattern + R"(, "behavior": ")" +
         behavior + R"(", "invert": )" + (invert ? "true" : "false") + "}";
}

}  // namespace

TEST_CASE("pre_tokenizers: Split behaviours", "[tokenize]") {
  const std::string text = "How are  you?";
  CHECK(split(split_json("Removed"), text) == strings{"How", "are", "you?"});
  CHECK(split(split_json("Isolated"), text) == strings{"How", " ", "are", " ", " ", "you?"});
  // A match joins the piece before it; the second of two adjacent matches stands alone.
  CHECK(split(split_json("MergedWithPrevious"), text) == strings{"How ", "are ", " ", "you?"});
  CHECK(split(split_json("MergedWithNext"), text) == strings{"How", " are", " ", " you?"});
  CHECK(split(split_json("Contiguous"), text) == strings{"How", " ", "are", "  ", "you?"});
  // invert: the pattern names what to keep.
  CHECK(split(split_json("Removed", true, R"({"Regex": "\\w+"})"), text) ==
        strings{"How", "are", "you"});
  // A String pattern is literal text, not a regex.
  CHECK(split(split_json("Isolated", false, R"({"String": "."})"), "a.b c") ==
        strings{"a", ".", "b c"});
}

TEST_CASE("pre_tokenizers: the Llama 3 / Qwen2 Split regex", "[tokenize]") {
  const std::string j =
      R"({"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false})";
  // Case-insensitive contractions, one digit per piece, the space before a word kept with it,
  // trailing whitespace of a run left for the next word.
  CHECK(split(j, "I'M 42 years   old!\n\n") ==
        strings{"I", "'M", " ", "4", "2", " years", "  ", " old", "!\n\n"});
  CHECK(split(j, "x  \ny") == strings{"x", "  \n", "y"});
}

TEST_CASE("pre_tokenizers: ByteLevel", "[tokenize]") {
  // Pieces stay raw bytes: the model maps them through the byte-level alphabet.
  CHECK(split(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})",
              "Hello  there's") == strings{" Hello", " ", " there", "'s"});
  CHECK(split(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})",
              "Hello there") == strings{"Hello", " there"});
  CHECK(split(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})",
              "Hello there") == strings{"Hello there"});
  bool bl = false;
  CHECK_THROWS_AS(
      pre_tokenizer::parse(nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [
        {"type": "ByteLevel"}, {"type": "Digits", "individual_digits": true}]})"),
                           "t.json", bl),
      qforge::error);
}

TEST_CASE("pre_tokenizers: Metaspace", "[tokenize]") {
  const char* always =
      R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true})";
  CHECK(split(always, "Hey friend") == strings{"▁Hey", "▁friend"});
  // A leading space already is the replacement; two replacements in a row stay apart.
  CHECK(split(always, "  Hey") == strings{"▁", "▁Hey"});
  CHECK(
      split(
          R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": false})",
          "Hey friend") == strings{"▁Hey▁friend"});
  const char* first =
      R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false})";
  CHECK(split(first, "Hey", true) == strings{"▁Hey"});
  CHECK(split(first, "Hey", false) == strings{"Hey"});
  CHECK(split(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"})",
              "Hey you") == strings{"Hey", "▁you"});
  // Legacy files say add_prefix_space: false instead of "never".
  CHECK(
      split(
          R"({"type": "Metaspace", "replacement": "_", "add_prefix_space": false, "prepend_scheme": "never"})",
          "a b") == strings{"a", "_b"});
}

TEST_CASE("pre_tokenizers: Digits, WhitespaceSplit, Sequence", "[tokenize]") {
  CHECK(split(R"({"type": "Digits", "individual_digits": true})", "Call 123 please") ==
        strings{"Call ", "1", "2", "3", " please"});
  CHECK(split(R"({"type": "Digits", "individual_digits": false})", "Call 123 please") ==
        strings{"Call ", "123", " please"});
  // Any Unicode number: U+0663 ARABIC-INDIC DIGIT THREE, U+00BD VULGAR FRACTION ONE HALF.
  CHECK(split(R"({"type": "Digits", "individual_digits": false})", "a\xD9\xA3\xC2\xBD") ==
        strings{"a", "\xD9\xA3\xC2\xBD"});
  CHECK(split(R"({"type": "WhitespaceSplit"})", "Hey  man!\tok\xE3\x80\x80x") ==
        strings{"Hey", "man!", "ok", "x"});
  CHECK(split(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                 {"type": "Digits", "individual_digits": true}]})",
              "ab12 c3") == strings{"ab", "1", "2", "c", "3"});
  bool bl = false;
  try {
    (void)pre_tokenizer::parse(nlohmann::json::parse(R"({"type": "BertPreTokenizer"})"), "m/t.json",
                               bl);
    FAIL("no exception");
  } catch (const qforge::error& e) {
    CHECK(e.which() == qforge::error::kind::unsupported);
    CHECK(e.path() == "m/t.json");
    CHECK_THAT(e.what(), Catch::Contains("BertPreTokenizer"));
  }
}
