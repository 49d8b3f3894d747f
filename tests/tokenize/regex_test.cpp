// SPDX-License-Identifier: MIT
// tokenize/regex.hpp: PCRE2 with the Oniguruma translation must match, code point by code point,
// the classes that HF's Oniguruma matches (data/onig_classes.json, made by make_onig_classes.py),
// and find_all must iterate matches as Oniguruma's find_iter does.
#include "qforge/tokenize/regex.hpp"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using qforge::tokenize::regex;
using qforge::tokenize::span;

namespace {

std::vector<std::pair<std::uint32_t, std::uint32_t>> all(const regex& re, std::string_view s) {
  std::vector<span> m;
  re.find_all(s, m);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> out;
  for (const auto& x : m) out.emplace_back(x.begin, x.end);
  return out;
}

}  // namespace

TEST_CASE("regex: each class matches exactly the code points HF's Oniguruma matches",
          "[tokenize][regex]") {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "data" / "onig_classes.json";
  std::ifstream in(path);
  REQUIRE(in);
  const auto doc = nlohmann::json::parse(in);
  std::size_t checked = 0;
  for (const auto& [pattern, ranges] : doc["classes"].items()) {
    INFO(pattern);
    const regex re(pattern, false, "onig_classes.json", "test");
    std::vector<bool> want(0x110000, false);
    for (const auto& r : ranges)
      for (auto c = r[0].get<std::uint32_t>(); c <= r[1].get<std::uint32_t>(); ++c) want[c] = true;
    std::size_t wrong = 0;
    std::uint32_t first_wrong = 0;
    std::string ch;
    for (char32_t c = 1; c < 0x110000; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      ch.clear();
      qforge::tokenize::utf8::append(ch, c);
      // U+1171E (AHOM SIGN RUKKAPHA) moved from Mn to Mc after PCRE2's Unicode 14; a class can
      // only be widened, so \p{Mn} keeps it.
      if (pattern == "\\p{Mn}" && c == 0x1171E) continue;
      if (re.matches_whole(ch) != want[c]) {
        if (wrong++ == 0) first_wrong = static_cast<std::uint32_t>(c);
      }
    }
    INFO("first differing code point: U+" << std::hex << first_wrong);
    CHECK(wrong == 0);
    ++checked;
  }
  CHECK(checked == 48);
}

TEST_CASE("regex: matches iterate like Oniguruma's find_iter", "[tokenize][regex]") {
  // An empty match touching the previous match's end is skipped; others are reported.
  const regex star("a*", false, "", "test");
  using v = std::vector<std::pair<std::uint32_t, std::uint32_t>>;
  CHECK(all(star, "baab") == v{{0, 0}, {1, 3}, {4, 4}});
  CHECK(all(star, "") == v{{0, 0}});
  // Lookahead sees only the subject handed over.
  const regex ws(R"(\s+(?!\S)|\s+)", false, "", "test");
  CHECK(all(ws, "a   b") == v{{1, 3}, {3, 4}});
  CHECK(all(ws, "a   ") == v{{1, 4}});
  // Steps over multi-byte characters after an empty match.
  CHECK(all(regex("x*", false, "", "test"), "\xC3\xA9x") == v{{0, 0}, {2, 3}});
  // Literal patterns are not regexes.
  CHECK(all(regex("a.b", true, "", "test"), "a.b axb") == v{{0, 3}});
}

TEST_CASE("regex: Oniguruma spellings are translated", "[tokenize][regex]") {
  // \h is a hex digit in Oniguruma (horizontal space in PCRE2).
  CHECK(regex(R"(\h+)", false, "", "t").matches_whole("09afAF"));
  CHECK_FALSE(regex(R"(\h)", false, "", "t").matches_whole(" "));
  // Ruby's \uHHHH.
  CHECK(regex(R"(\u00e9)", false, "", "t").matches_whole("\xC3\xA9"));
  // Ruby's (?m) lets . match a newline; ^ and $ are line anchors.
  CHECK(regex(R"((?m:a.b))", false, "", "t").matches_whole("a\nb"));
  CHECK_FALSE(regex(R"(a.b)", false, "", "t").matches_whole("a\nb"));
  CHECK(all(regex("^x", false, "", "t"), "x\nx").size() == 2);
  // U+180E is not White_Space (PCRE2's own \s still says it is).
  CHECK_FALSE(regex(R"(\s)", false, "", "t").matches_whole("\xE1\xA0\x8E"));
  // Scripts mean Script, not Script_Extensions: U+3001 (、) is Common.
  CHECK_FALSE(regex(R"(\p{Han})", false, "", "t").matches_whole("\xE3\x80\x81"));
  CHECK(regex(R"(\p{Han})", false, "", "t").matches_whole("\xE4\xB8\xAD"));
}

TEST_CASE("regex: a pattern that does not compile names the component and file",
          "[tokenize][regex]") {
  try {
    (void)regex("(unclosed", false, "dir/tokenizer.json", "pre_tokenizer Split");
    FAIL("no exception");
  } catch (const qforge::error& e) {
    CHECK(e.which() == qforge::error::kind::unsupported);
    CHECK(e.path() == "dir/tokenizer.json");
    CHECK_THAT(e.what(), Catch::Contains("pre_tokenizer Split"));
  }
}
