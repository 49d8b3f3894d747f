// SPDX-License-Identifier: MIT
// read_hf_vocab against the real fixture tokenizers and hand-made ones (tests/convert/data/), and
// against an independent Python computation: the `tokenizers` package for the vocabulary and
// gguf-py's own SpecialVocab (the code convert_hf_to_gguf.py calls) for merges, special ids, add
// flags and the chat template.
#include "qforge/convert/tokenizer_vocab.hpp"

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using qforge::convert::gguf_vocab;
using qforge::convert::read_hf_vocab;
using json = nlohmann::json;

namespace {

constexpr std::int32_t normal = 1, control = 3, user_defined = 4, unused = 5, byte = 6;

std::string fixture(const std::string& name) {
  return std::string(QFORGE_FIXTURES) + "/models/" + name;
}
std::string data(const std::string& name) {
  return (fs::path(__FILE__).parent_path() / "data" / name).string();
}
std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
fs::path scratch(const std::string& name) {
  const auto dir = fs::path(QFORGE_TEST_TMP) / ("vocab_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}
void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

struct capture_cerr {
  std::ostringstream text;
  std::streambuf* old = std::cerr.rdbuf(text.rdbuf());
  ~capture_cerr() { std::cerr.rdbuf(old); }
};

// Mirrors convert_hf_to_gguf.py's get_vocab_base over the `tokenizers` package's view of the file,
// and takes everything else from gguf-py's SpecialVocab itself.
constexpr const char* reference_py = R"PY(
import json, sys
try:
    import gguf, tokenizers
except ImportError:
    sys.exit(77)
d, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def looks_special(t):
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>")) or (t.startswith("<unused") and t.endswith(">")))
tok = tokenizers.Tokenizer.from_file(d + "/tokenizer.json")
rev = {i: s for s, i in tok.get_vocab(with_added_tokens=True).items()}
added = tok.get_added_tokens_decoder()
tokens, types = [], []
for i in range(n):
    if i not in rev:
        tokens.append(f"[PAD{i}]"); types.append(5); continue
    t = rev[i]
    if i in added:
        if added[i].special or looks_special(t):
            types.append(3)
        else:
            t = t.replace("\u2581", " "); types.append(4)
    else:
        types.append(1)
    tokens.append(t)
sv = gguf.SpecialVocab(d, load_merges=True)
ct = sv.chat_template
if isinstance(ct, list):
    ct = next((c["template"] for c in ct if c.get("name") == "default"), None)
json.dump({"tokens": tokens, "types": types, "merges": sv.merges, "ids": sv.special_token_ids,
           "add": sv.add_special_token, "chat_template": ct}, open(out, "w", encoding="utf-8"))
)PY";

// The reference for a byte-level model folder, or null (with a WARN) where Python lacks the
// packages.
json python_reference(const std::string& dir, std::uint32_t n_vocab) {
  const auto tmp = scratch("pyref");
  write(tmp / "ref.py", reference_py);
  const auto out = tmp / "ref.json";
  const std::string cmd = "python3 '" + (tmp / "ref.py").string() + "' '" + dir + "' " +
                          std::to_string(n_vocab) + " '" + out.string() + "' 2>'" +
                          (tmp / "stderr.txt").string() + "'";
  const int rc = std::system(cmd.c_str());
  if (rc != 0 && WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
    WARN("python3 lacks gguf / tokenizers: reference comparison not run");
    return nullptr;
  }
  INFO(slurp((tmp / "stderr.txt").string()));
  REQUIRE(rc == 0);
  return json::parse(slurp(out.string()));
}

std::optional<std::uint32_t> ref_id(const json& ref, const char* typ) {
  if (!ref["ids"].contains(typ)) return std::nullopt;
  return ref["ids"][typ].get<std::uint32_t>();
}
std::optional<bool> ref_add(const json& ref, const char* typ) {
  if (!ref["add"].contains(typ)) return std::nullopt;
  return ref["add"][typ].get<bool>();
}

void check_against_python(const std::string& dir, std::uint32_t n_vocab) {
  const gguf_vocab v = [&] {
    capture_cerr quiet;
    return read_hf_vocab(dir, n_vocab);
  }();
  const json ref = python_reference(dir, n_vocab);
  if (ref.is_null()) return;
  REQUIRE(v.tokens.size() == ref["tokens"].size());
  std::size_t token_diffs = 0, type_diffs = 0;
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i] != ref["tokens"][i].get<std::string>()) ++token_diffs;
    if (v.token_types[i] != ref["types"][i].get<std::int32_t>()) ++type_diffs;
  }
  CHECK(token_diffs == 0);
  CHECK(type_diffs == 0);
  CHECK(v.merges == ref["merges"].get<std::vector<std::string>>());
  CHECK(v.bos_id == ref_id(ref, "bos"));
  CHECK(v.eos_id == ref_id(ref, "eos"));
  CHECK(v.unk_id == ref_id(ref, "unk"));
  CHECK(v.pad_id == ref_id(ref, "pad"));
  CHECK(v.add_bos == ref_add(ref, "bos"));
  // gguf-py 0.19 (PyPI) leaves add_eos unset behind a ByteLevel post-processor where the converter
  // of llama.cpp 0.3.36's tree writes false (tests/interop/reference holds that converter's output).
  if (ref_add(ref, "eos").has_value()) CHECK(v.add_eos == ref_add(ref, "eos"));
  if (ref["chat_template"].is_null())
    CHECK_FALSE(v.chat_template.has_value());
  else
    CHECK(v.chat_template == ref["chat_template"].get<std::string>());
}

}  // namespace

TEST_CASE("vocab: fixture tokenizers give llama.cpp's byte-level BPE metadata", "[vocab]") {
  const auto name = GENERATE(as<std::string>{}, "tiny-llama", "tiny-qwen3", "small-llama");
  INFO(name);
  const auto dir = fixture(name);
  const json tok = json::parse(slurp(dir + "/tokenizer.json"));
  const gguf_vocab v = read_hf_vocab(dir, 4096);

  CHECK(v.model == "gpt2");
  CHECK(v.pre == "qwen2");
  REQUIRE(v.tokens.size() == 4096);
  REQUIRE(v.token_types.size() == 4096);
  CHECK(v.scores.empty());  // _set_vocab_gpt2 writes no scores
  CHECK(v.merges.size() == tok["model"]["merges"].size());
  REQUIRE_FALSE(v.merges.empty());
  CHECK(v.merges.front() == "\xC4\xA0 \xC4\xA0");  // ["Ġ", "Ġ"] joined

  // 4 088 trained tokens, 3 specials at 4088..4090, 5 pads up to the embedding's 4 096 rows.
  CHECK(std::count(v.token_types.begin(), v.token_types.end(), normal) == 4088);
  for (std::uint32_t id = 4088; id < 4091; ++id) CHECK(v.token_types[id] == control);
  for (std::uint32_t id = 4091; id < 4096; ++id) {
    CHECK(v.tokens[id] == "[PAD" + std::to_string(id) + "]");
    CHECK(v.token_types[id] == unused);
  }
  CHECK(v.tokens[4088] == tok["added_tokens"][0]["content"].get<std::string>());

  const json config = json::parse(slurp(dir + "/config.json"));
  CHECK(v.bos_id == config["bos_token_id"].get<std::uint32_t>());
  CHECK(v.eos_id == config["eos_token_id"].get<std::uint32_t>());
  CHECK_FALSE(v.unk_id.has_value());
  if (name == "tiny-qwen3") {
    CHECK_FALSE(v.add_eos.has_value());  // no post-processor at all
    CHECK_FALSE(v.add_sep.has_value());
  } else {
    CHECK(v.add_eos == false);  // ByteLevel + TemplateProcessing "<bos> $A": nothing appended
    CHECK(v.add_sep == false);  // pair "<bos> $A <bos> $B": the middle token is not sep/eos
  }
  if (name == "tiny-qwen3") {
    CHECK(v.tokens[4088] == "<|endoftext|>");
    CHECK(v.tokens[4090] == "<|im_end|>");
    CHECK(v.eos_id == 4090u);  // tokenizer_config.json: eos_token <|im_end|>
    CHECK(v.pad_id == 4088u);  // pad_token <|endoftext|>
    // No bos_token in tokenizer_config.json and a template that adds nothing: no add_bos key.
    CHECK_FALSE(v.add_bos.has_value());
    REQUIRE(v.chat_template.has_value());
    CHECK(*v.chat_template == slurp(dir + "/chat_template.jinja"));
  } else {
    CHECK(v.tokens[4088] == "<|begin_of_text|>");
    CHECK(v.tokens[4089] == "<|end_of_text|>");
    CHECK(v.tokens[4090] == "<|eot_id|>");
    CHECK(v.bos_id == 4088u);
    CHECK(v.eos_id == 4089u);
    CHECK_FALSE(v.pad_id.has_value());
    CHECK(v.add_bos == true);  // TemplateProcessing single = [<|begin_of_text|>, A]
    CHECK_FALSE(v.chat_template.has_value());
  }
}

TEST_CASE("vocab: byte-level folders match tokenizers + gguf-py's SpecialVocab",
          "[vocab][python]") {
  SECTION("tiny-llama") { check_against_python(fixture("tiny-llama"), 4096); }
  SECTION("tiny-qwen3") { check_against_python(fixture("tiny-qwen3"), 4096); }
  SECTION("small-llama") { check_against_python(fixture("small-llama"), 4096); }
  SECTION("bpe_pairs") { check_against_python(data("bpe_pairs"), 270); }
}

TEST_CASE("vocab: byte-level BPE with pair merges, added tokens and a trailing special",
          "[vocab]") {
  capture_cerr err;
  const gguf_vocab v = read_hf_vocab(data("bpe_pairs"), 270);
  CHECK_THAT(err.text.str(), Catch::Contains("post-processor ends with '<|end|>'"));
  CHECK(v.model == "gpt2");
  CHECK(v.pre == "gpt-2");  // lone ByteLevel pre-tokenizer with use_regex
  REQUIRE(v.tokens.size() == 270);
  CHECK(v.tokens[32] == "\xC4\xA0");  // byte-level 'Ġ' stays as stored
  CHECK(v.token_types[32] == normal);
  // ["x y", "z"]: the space inside a part becomes U+0120 so "a b" still splits in two.
  CHECK(v.merges == std::vector<std::string>{"\xC4\xA0 t", "h e", "\xC4\xA0t he", "x\xC4\xA0y z"});
  CHECK(v.tokens[259] == "x y");  // vocabulary text is not re-encoded, only merges are
  CHECK(v.tokens[261] == "<|endoftext|>");
  CHECK(v.token_types[261] == control);
  CHECK(v.tokens[262] == "<|tool|>");  // not special in the file but looks it: CONTROL
  CHECK(v.token_types[262] == control);
  CHECK(v.tokens[263] == " my word");  // user-defined "▁" pre-normalised to a space
  CHECK(v.token_types[263] == user_defined);
  CHECK(v.tokens[264] == "<|end|>");
  for (std::uint32_t id = 265; id < 270; ++id) {
    CHECK(v.tokens[id] == "[PAD" + std::to_string(id) + "]");
    CHECK(v.token_types[id] == unused);
  }
  // The template appends <|end|>, so that is what ends a sequence, whatever eos_token says.
  CHECK(v.eos_id == 264u);
  CHECK(v.add_eos == true);
  CHECK_FALSE(v.add_bos.has_value());
  CHECK_FALSE(v.bos_id.has_value());
  CHECK(v.pad_id == 261u);  // AddedToken-dict pad_token
  // tokenizer_config.json's template wins over chat_template.jinja.
  CHECK(v.chat_template == std::string("config-template {{ messages }}"));
}

TEST_CASE("vocab: added tokens take the ids the tokenizers runtime gives them", "[vocab]") {
  // Checked with tokenizers 0.23.3: with <|end|> listed as id 300, Tokenizer.from_file(...)
  // .token_to_id("<|end|>") is 264, the next id after the other added tokens; the embedding row the
  // model learnt for it is 264, so that is where the GGUF must put it.
  const auto dir = scratch("renumbered");
  json tok = json::parse(slurp(data("bpe_pairs/tokenizer.json")));
  tok["added_tokens"][3]["id"] = 300;
  REQUIRE(tok["added_tokens"][3]["content"] == "<|end|>");
  write(dir / "tokenizer.json", tok.dump());
  fs::copy_file(data("bpe_pairs/tokenizer_config.json"), dir / "tokenizer_config.json");
  capture_cerr err;
  const gguf_vocab v = read_hf_vocab(dir.string(), 270);
  CHECK(v.tokens[264] == "<|end|>");
  CHECK(v.token_types[264] == control);
  CHECK(v.eos_id == 264u);
  CHECK_THAT(err.text.str(), Catch::Contains("listed with id 300 but tokenizers loads it as 264"));
}

TEST_CASE("vocab: SentencePiece-style BPE becomes model llama as LlamaHfVocab writes it",
          "[vocab]") {
  // Expected values worked out by hand from gguf-py's LlamaHfVocab (transformers is not installed
  // here to run it); the special ids and add flags were confirmed with gguf.SpecialVocab(
  // "tests/convert/data/spm_llama", n_vocab=272): bos 1, eos 2, unk 0, pad 0, add_bos True, add_eos
  // False.
  const gguf_vocab v = read_hf_vocab(data("spm_llama"), 280);
  CHECK(v.model == "llama");
  CHECK(v.pre == "default");
  REQUIRE(v.tokens.size() == 280);
  REQUIRE(v.scores.size() == 280);
  CHECK(std::all_of(v.scores.begin(), v.scores.end(), [](float s) { return s == -1000.0f; }));
  CHECK(v.merges.empty());  // the SPM path of llama.cpp ranks by score; merges are not written
  CHECK(v.tokens[0] == "<unk>");
  for (std::uint32_t id = 0; id < 3; ++id) CHECK(v.token_types[id] == control);
  CHECK(v.tokens[3] == "<0x00>");
  CHECK(v.tokens[258] == "<0xFF>");
  CHECK(std::count(v.token_types.begin(), v.token_types.end(), byte) == 256);
  for (std::uint32_t id = 3; id < 259; ++id) CHECK(v.token_types[id] == byte);
  CHECK(v.tokens[259] == "\xE2\x96\x81");  // "▁" kept: llama.cpp's SPM tokenizer expects it
  CHECK(v.tokens[267] == "\xE2\x96\x81the");
  for (std::uint32_t id = 259; id < 270; ++id) CHECK(v.token_types[id] == normal);
  CHECK(v.tokens[270] == "<extra>");
  CHECK(v.token_types[270] == user_defined);
  CHECK(v.tokens[271] == "<|im_end|>");
  CHECK(v.token_types[271] == control);
  for (std::uint32_t id = 272; id < 280; ++id) {
    CHECK(v.tokens[id] == "[PAD" + std::to_string(id) + "]");
    CHECK(v.token_types[id] == unused);
  }
  CHECK(v.bos_id == 1u);
  CHECK(v.eos_id == 2u);  // from an AddedToken dict
  CHECK(v.unk_id == 0u);
  CHECK(v.pad_id == 0u);  // pad_token null in tokenizer_config.json, 0 in config.json
  CHECK(v.add_bos == true);
  CHECK(v.add_eos == false);
  REQUIRE(v.chat_template.has_value());  // the "default" of the named templates
  CHECK(v.chat_template->starts_with("{{ bos_token }}{% for m in messages %}[INST]"));
}

TEST_CASE("vocab: errors name the file", "[vocab][errors]") {
  using qforge::error;
  SECTION("unsupported model type lists the supported ones") {
    try {
      read_hf_vocab(data("wordpiece"), 16);
      FAIL("no throw");
    } catch (const error& e) {
      CHECK(e.which() == error::kind::unsupported);
      CHECK(e.path() == data("wordpiece/tokenizer.json"));
      CHECK_THAT(e.what(), Catch::Contains("WordPiece") && Catch::Contains("supported: BPE"));
    }
  }
  SECTION("Unigram is refused too") {
    const auto dir = scratch("unigram");
    write(dir / "tokenizer.json",
          R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.5]]}})");
    CHECK_THROWS_WITH(
        read_hf_vocab(dir.string(), 8),
        Catch::Contains("tokenizer.json") && Catch::Contains("'Unigram' is not supported"));
  }
  SECTION("malformed JSON") {
    try {
      read_hf_vocab(data("malformed"), 16);
      FAIL("no throw");
    } catch (const error& e) {
      CHECK(e.which() == error::kind::format);
      CHECK(e.path() == data("malformed/tokenizer.json"));
      REQUIRE(e.offset().has_value());
      CHECK(*e.offset() == slurp(data("malformed/tokenizer.json")).find(",,") + 1);
    }
  }
  SECTION("missing tokenizer.json") {
    try {
      read_hf_vocab(data("no-such-model"), 16);
      FAIL("no throw");
    } catch (const error& e) {
      CHECK(e.which() == error::kind::io);
      CHECK(e.path() == data("no-such-model/tokenizer.json"));
    }
  }
  SECTION("malformed tokenizer_config.json is named, not tokenizer.json") {
    const auto dir = scratch("badcfg");
    fs::copy_file(data("bpe_pairs/tokenizer.json"), dir / "tokenizer.json");
    write(dir / "tokenizer_config.json", "{\"eos_token\": }");
    CHECK_THROWS_WITH(read_hf_vocab(dir.string(), 270),
                      Catch::Contains("tokenizer_config.json: byte"));
  }
  SECTION("an embedding smaller than the vocabulary") {
    capture_cerr quiet;
    try {
      read_hf_vocab(data("bpe_pairs"), 264);  // <|end|> has id 264
      FAIL("no throw");
    } catch (const error& e) {
      CHECK(e.which() == error::kind::argument);
      CHECK_THAT(e.what(), Catch::Contains("'<|end|>' has id 264") && Catch::Contains("264 rows"));
    }
    CHECK_THROWS_AS(read_hf_vocab(data("bpe_pairs"), 0), error);
  }
  SECTION("a vocab id used twice") {
    const auto dir = scratch("dupid");
    write(dir / "tokenizer.json",
          R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})");
    CHECK_THROWS_WITH(read_hf_vocab(dir.string(), 4), Catch::Contains("id 0 is given to both"));
  }
  SECTION("a merge of three parts") {
    const auto dir = scratch("badmerge");
    write(dir / "tokenizer.json",
          R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b", "c"]]}})");
    capture_cerr quiet;
    CHECK_THROWS_WITH(read_hf_vocab(dir.string(), 4), Catch::Contains("model.merges[0]"));
  }
}

TEST_CASE("vocab: tokenizer.ggml.pre from the pre-tokenizer regex", "[vocab][pre]") {
  using qforge::convert::pre_tokenizer_id;
  namespace rx = qforge::convert::pre_regex;
  auto split_then_bytes = [](std::string_view regex, bool ignore_merges) {
    return json{{"model", {{"type", "BPE"}, {"ignore_merges", ignore_merges}}},
                {"pre_tokenizer",
                 {{"type", "Sequence"},
                  {"pretokenizers",
                   {{{"type", "Split"},
                     {"pattern", {{"Regex", std::string(regex)}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}}};
  };
  CHECK(pre_tokenizer_id(split_then_bytes(rx::llama3, true), "t") == "llama-bpe");
  // Same regex, but merges always apply: llama-bpe would turn llama.cpp's ignore_merges on.
  CHECK(pre_tokenizer_id(split_then_bytes(rx::llama3, false), "t") == "smaug-bpe");
  CHECK(pre_tokenizer_id(split_then_bytes(rx::qwen2, false), "t") == "qwen2");
  CHECK(pre_tokenizer_id(split_then_bytes(rx::qwen35, false), "t") == "qwen35");
  CHECK(pre_tokenizer_id(split_then_bytes(rx::gpt2, false), "t") == "gpt-2");
  CHECK(pre_tokenizer_id(split_then_bytes(rx::gpt4o, false), "t") == "gpt-4o");
  // The fixtures' regex is Qwen2's exactly (read from the file, not from our table).
  const json fixture_tok = json::parse(slurp(fixture("tiny-llama") + "/tokenizer.json"));
  CHECK(fixture_tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get<std::string>() ==
        rx::qwen2);

  SECTION("anything else is 'default' with a warning") {
    capture_cerr err;
    CHECK(pre_tokenizer_id(split_then_bytes(R"(\p{L}+|\s+)", false), "odd/tokenizer.json") ==
          "default");
    CHECK_THAT(err.text.str(),
               Catch::Contains("odd/tokenizer.json") && Catch::Contains("\"default\""));
    auto inverted = split_then_bytes(rx::qwen2, false);
    inverted["pre_tokenizer"]["pretokenizers"][0]["invert"] = true;
    CHECK(pre_tokenizer_id(inverted, "t") == "default");
    auto regex_twice = split_then_bytes(rx::qwen2, false);
    regex_twice["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
    CHECK(pre_tokenizer_id(regex_twice, "t") == "default");
    CHECK(pre_tokenizer_id(json{{"pre_tokenizer", nullptr}}, "t") == "default");
    CHECK(pre_tokenizer_id(json{{"pre_tokenizer", {{"type", "Metaspace"}}}}, "t") == "default");
  }
}
