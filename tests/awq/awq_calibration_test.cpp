// SPDX-License-Identifier: MIT
// Calibration data: prompt assembly, errors naming the line, whole samples vs blocks, truncation,
// the length distribution and its warnings, on the fixtures' real prompts and tokenizer.
#include <catch2/catch.hpp>

#include <fstream>

#include "qforge/awq/calibration.hpp"

using namespace qforge;

namespace {
const std::string fixtures = QFORGE_FIXTURES;
const std::string calib_file = fixtures + "/data/calibration.jsonl";

std::string write_tmp(const std::string& name, const std::string& text) {
  const std::string p = std::string(QFORGE_TEST_TMP) + "/" + name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string error_of(const std::string& text) {
  try {
    awq::read_calibration_prompts(write_tmp("bad.jsonl", text));
  } catch (const error& e) {
    CHECK(e.which() == error::kind::format);
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("awq calibration: prompts are instruction + blank line + input, or text", "[awq][calib]") {
  const auto p = awq::read_calibration_prompts(write_tmp(
      "ok.jsonl",
      "{\"instruction\": \"Define\", \"input\": \"word\"}\n\n"
      "{\"instruction\": \"Say hi\"}\r\n{\"instruction\": \"Say hi\", \"input\": \"\"}\n"
      "{\"text\": \"plain\"}\n"));
  REQUIRE(p.size() == 4);
  CHECK(p[0] == "Define\n\nword");
  CHECK(p[1] == "Say hi");
  CHECK(p[2] == "Say hi");
  CHECK(p[3] == "plain");
}

TEST_CASE("awq calibration: a malformed line is an error naming it", "[awq][calib]") {
  CHECK_THAT(error_of("{\"text\": \"a\"}\n{\"text\": \"b\"\n"), Catch::Contains("line 2"));
  CHECK_THAT(error_of("{\"text\": \"a\"}\n\n{\"prompt\": \"b\"}\n"), Catch::Contains("line 3"));
  CHECK_THAT(error_of("[1, 2]\n"), Catch::Contains("line 1"));
  CHECK_THAT(error_of("{\"instruction\": 5}\n"), Catch::Contains("line 1"));
  CHECK_THAT(error_of("{\"text\": \"\"}\n"), Catch::Contains("empty prompt"));
  CHECK_THAT(error_of("\n\n"), Catch::Contains("no calibration prompt"));
  CHECK_THROWS_AS(awq::read_calibration_prompts(fixtures + "/no/such.jsonl"), error);
}

TEST_CASE("awq calibration: the fixtures' prompts, whole and in blocks", "[awq][calib]") {
  const tokenize::tokenizer tok(fixtures + "/models/tiny-llama");
  const auto prompts = awq::read_calibration_prompts(calib_file);
  REQUIRE(prompts.size() == 128);
  awq::calibration_options o;
  auto c = awq::build_calibration(prompts, tok, o, 1);
  CHECK(c.sequences.size() == 128);
  CHECK(c.truncated == 0);
  CHECK(c.prompt_lengths.min == 23);
  CHECK(c.prompt_lengths.max == 880);
  CHECK(c.prompt_lengths.median < c.prompt_lengths.p90);
  CHECK(c.warnings.empty());
  CHECK(c.sequences[0][0] == 4088);  // BOS from the post-processor
  const std::size_t total = c.tokens();

  o.block_len = 512;
  c = awq::build_calibration(prompts, tok, o, 1);
  CHECK(c.sequences.size() == total / 512);
  for (const auto& s : c.sequences) CHECK(s.size() == 512);

  o = {};
  o.max_seq_len = 64;
  o.samples = 10;
  c = awq::build_calibration(prompts, tok, o, 1);
  CHECK(c.sequences.size() == 10);
  for (const auto& s : c.sequences) CHECK(s.size() <= 64);
  CHECK(c.truncated > 0);
  CHECK(!c.warnings.empty());  // only 10 prompts

  const std::vector<std::string> short_ones(32, "Hello there.");
  c = awq::build_calibration(short_ones, tok, {}, 1);
  bool warned = false;
  for (const auto& w : c.warnings) warned |= w.find("under 64 tokens") != std::string::npos;
  CHECK(warned);
}
