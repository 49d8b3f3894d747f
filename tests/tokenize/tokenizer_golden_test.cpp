// SPDX-License-Identifier: MIT
// The fixtures' tokenizers against Hugging Face `tokenizers`: every line of each
// tokenizer_golden.jsonl (ids with the post-processor), the decoded text of those ids
// (data/<model>.decode.jsonl, made by make_decode_golden.py), and encode_batch == encode.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/tokenize/tokenizer.hpp"

namespace {

using qforge::tokenize::tokenizer;

struct golden_line {
  std::string text;
  std::vector<std::uint32_t> ids;
  nlohmann::json keep, skip;  // HF decode: true (== text), {"prefix": p} (p + text) or the text
};

std::string data_dir() { return (std::filesystem::path(__FILE__).parent_path() / "data").string(); }

std::string model_dir(const std::string& model) {
  return std::string(QFORGE_FIXTURES) + "/models/" + model;
}

std::vector<golden_line> read_golden(const std::string& model) {
  std::ifstream in(model_dir(model) + "/tokenizer_golden.jsonl");
  std::ifstream dec(data_dir() + "/" + model + ".decode.jsonl");
  REQUIRE(in);
  REQUIRE(dec);
  std::vector<golden_line> out;
  for (std::string line, dline; std::getline(in, line);) {
    REQUIRE(std::getline(dec, dline));
    const auto j = nlohmann::json::parse(line);
    const auto d = nlohmann::json::parse(dline);
    out.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<std::uint32_t>>(),
                   d["keep"], d["skip"]});
  }
  return out;
}

std::string expected_decode(const golden_line& g, const nlohmann::json& e) {
  if (e.is_boolean()) return g.text;
  if (e.is_object()) return e["prefix"].get<std::string>() + g.text;
  return e.get<std::string>();
}

}  // namespace

TEST_CASE("tokenizer: every golden line of the fixtures, ids and decoded text", "[tokenize]") {
  const auto model = GENERATE(as<std::string>{}, "tiny-llama", "tiny-qwen3", "small-llama");
  INFO(model);
  const tokenizer tok(model_dir(model));
  const auto golden = read_golden(model);
  REQUIRE(golden.size() == 306);
  std::size_t ids_ok = 0, keep_ok = 0, skip_ok = 0, round_trips = 0;
  for (const auto& g : golden) {
    INFO("text: " << g.text);
    const auto ids = tok.encode(g.text);
    CHECK(ids == g.ids);
    ids_ok += ids == g.ids;
    const auto keep = tok.decode(g.ids, false);
    const auto skip = tok.decode(g.ids, true);
    CHECK(keep == expected_decode(g, g.keep));
    CHECK(skip == expected_decode(g, g.skip));
    keep_ok += keep == expected_decode(g, g.keep);
    skip_ok += skip == expected_decode(g, g.skip);
    round_trips += g.skip.is_boolean() && skip == g.text;
  }
  CHECK(ids_ok == golden.size());
  CHECK(keep_ok == golden.size());
  CHECK(skip_ok == golden.size());
  // decode(encode(x)) == x wherever HF gives that: all but the NFC-merged accent and the text
  // holding special tokens.
  CHECK(round_trips == 304);
}

TEST_CASE("tokenizer: encode_batch equals encode, any thread count", "[tokenize]") {
  const tokenizer tok(model_dir("tiny-llama"));
  const auto golden = read_golden("tiny-llama");
  std::vector<std::string> texts;
  for (const auto& g : golden) texts.push_back(g.text);
  for (const unsigned threads : {1u, 3u, 0u}) {
    const auto batch = tok.encode_batch(std::span<const std::string>(texts), {}, threads);
    REQUIRE(batch.size() == golden.size());
    for (std::size_t i = 0; i < golden.size(); ++i) CHECK(batch[i] == golden[i].ids);
  }
}

TEST_CASE("tokenizer: without special tokens the llama fixtures drop only the BOS", "[tokenize]") {
  const tokenizer tok(model_dir("small-llama"));
  const auto golden = read_golden("small-llama");
  qforge::tokenize::encode_options opt;
  opt.add_special_tokens = false;
  for (const auto& g : golden) {
    INFO(g.text);
    REQUIRE(!g.ids.empty());
    CHECK(g.ids.front() == 4088);
    CHECK(tok.encode(g.text, opt) == std::vector<std::uint32_t>(g.ids.begin() + 1, g.ids.end()));
  }
}
