// SPDX-License-Identifier: MIT
// qforge tokenize MODEL_DIR [--text T | --file F]: the ids the model's tokenizer.json gives (the
// same as Hugging Face `tokenizers`), so people can check their calibration / evaluation data.
// --text shows each token; --file tokenizes every line (a JSONL line's --field, "text" by default)
// on all cores and prints totals, token-count statistics and the texts that do not round-trip.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "qforge/tokenize/tokenizer.hpp"

namespace qforge::cli {

namespace {

struct tokenize_args {
  std::string model_dir, text, file, field = "text";
  bool whole = false, ids = false, no_special = false, split_special = false, strict = false;
  int threads = 0;
};

// Printable form of a token: C escapes for control bytes, the rest as is.
std::string show(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\' || c == '\'')
      out += std::string("\\") + c;
    else if (b < 0x20 || b == 0x7F)
      out += cat("\\x", "0123456789abcdef"[b >> 4], "0123456789abcdef"[b & 15]);
    else
      out += c;
  }
  return out;
}

std::vector<std::string> read_texts(const tokenize_args& a) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) throw error(error::kind::io, a.file, "cannot open for reading");
  std::vector<std::string> texts;
  if (a.whole) {
    std::ostringstream all;
    all << in.rdbuf();
    texts.push_back(all.str());
    return texts;
  }
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.front() == '{') {
      // A JSONL line: take its text field.
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw error(error::kind::format, a.file, cat("line ", line_no + 1, ": ", e.what()));
      }
      if (!j.is_object() || !j.contains(a.field) || !j[a.field].is_string())
        throw error(error::kind::format, a.file,
                    cat("line ", line_no + 1, ": no string field \"", a.field, "\""));
      texts.push_back(j[a.field].get<std::string>());
    } else {
      texts.push_back(std::move(line));
    }
  }
  return texts;
}

void run(const tokenize_args& a) {
  const tokenize::tokenizer tok(a.model_dir);
  tokenize::encode_options opt;
  opt.add_special_tokens = !a.no_special;
  opt.split_special_tokens = a.split_special;
  opt.strict_utf8 = a.strict;

  if (!a.text.empty() || a.file.empty()) {
    const auto ids = tok.encode(a.text, opt);
    if (a.ids) {
      for (std::size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %u" : "%u", ids[i]);
      std::printf("\n");
      return;
    }
    std::printf("%zu tokens\n", ids.size());
    for (const auto id : ids)
      std::printf("  %8u  '%s'\n", id, show(tok.id_to_token(id).value_or("?")).c_str());
    const auto back = tok.decode(ids, true);
    std::printf("decode: '%s'%s\n", show(back).c_str(),
                back == a.text ? " (same as the input)" : " (differs from the input)");
    return;
  }

  const auto texts = read_texts(a);
  const auto t0 = std::chrono::steady_clock::now();
  const auto all = tok.encode_batch(std::span<const std::string>(texts), opt,
                                    static_cast<unsigned>(std::max(0, a.threads)));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::size_t bytes = 0, tokens = 0, not_round_trip = 0;
  std::vector<std::size_t> counts;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    bytes += texts[i].size();
    tokens += all[i].size();
    counts.push_back(all[i].size());
    if (a.ids) {
      for (std::size_t k = 0; k < all[i].size(); ++k) std::printf(k ? " %u" : "%u", all[i][k]);
      std::printf("\n");
    }
    if (tok.decode(all[i], true) != texts[i]) {
      if (not_round_trip < 5 && !a.ids)
        std::printf("  text %zu does not decode back to itself: '%.60s'\n", i + 1,
                    show(texts[i]).c_str());
      ++not_round_trip;
    }
  }
  if (a.ids) return;
  std::sort(counts.begin(), counts.end());
  auto pct = [&](double p) {
    return counts.empty()
               ? std::size_t{0}
               : counts[std::min(counts.size() - 1,
                                 static_cast<std::size_t>(p * static_cast<double>(counts.size())))];
  };
  std::printf("%s: %zu texts, %zu bytes, %zu tokens (%.2f bytes/token), %.3f s (%.1f MB/s)\n",
              a.file.c_str(), texts.size(), bytes, tokens,
              tokens ? static_cast<double>(bytes) / static_cast<double>(tokens) : 0.0, seconds,
              seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0);
  std::printf("tokens per text: min %zu, median %zu, p90 %zu, max %zu\n", pct(0), pct(0.5),
              pct(0.9), counts.empty() ? 0 : counts.back());
  std::printf(
      "%zu of %zu texts do not decode back to themselves (normalization, special tokens "
      "in the text, invalid UTF-8)\n",
      not_round_trip, texts.size());
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto args = std::make_shared<tokenize_args>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Tokenize text with a model's tokenizer.json (the ids Hugging Face gives)");
  cmd->add_option("MODEL_DIR", args->model_dir, "Model folder (or a tokenizer.json file)")
      ->required();
  auto* text = cmd->add_option("--text", args->text, "Text to tokenize; shows every token");
  cmd->add_option("--file", args->file,
                  "File of texts: one per line, or JSONL (see --field); prints statistics")
      ->excludes(text);
  cmd->add_option("--field", args->field, "JSONL field holding the text")->capture_default_str();
  cmd->add_flag("--whole", args->whole, "The whole --file is one text");
  cmd->add_flag("--ids", args->ids, "Print only the ids, one line per text");
  cmd->add_flag("--no-special", args->no_special, "Do not add BOS / EOS (post-processor)");
  cmd->add_flag("--split-special", args->split_special,
                "Tokenize special tokens written in the text as plain text");
  cmd->add_flag("--strict-utf8", args->strict,
                "Fail on invalid UTF-8 (default: U+FFFD per bad sequence, as Python's "
                "errors=\"replace\")");
  cmd->add_option("-j,--threads", args->threads, "Worker threads for --file (0: all cores)")
      ->capture_default_str();
  cmd->callback([args] { run(*args); });
}

}  // namespace qforge::cli
