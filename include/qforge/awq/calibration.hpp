// SPDX-License-Identifier: MIT
// AWQ calibration data: JSON lines of production-like prompts, tokenized with the model's own
// tokenizer. A line is {"instruction": ..., "input": ...} (the prompt is instruction + "\n\n" +
// input, the shape of instruction traffic; input optional) or {"text": ...}. Blank lines are
// skipped; anything else (bad JSON, no usable key, a non-string value, an empty prompt) is an error
// naming the line, and the whole file is checked before anything is used, so a bad file never
// yields a half-calibrated model. By default samples stay whole, so the activation statistics see
// the real prompt-length distribution (only samples above max_seq_len are truncated); block_len
// > 0 instead concatenates them and cuts fixed blocks as AutoAWQ does (the tail that does not fill
// a block is dropped). Nothing else is ever substituted for the user's data.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/core/error.hpp"
#include "qforge/tokenize/tokenizer.hpp"

namespace qforge::awq {

struct calibration_options {
  std::size_t samples = 128;       // first N prompts of the file
  std::size_t max_seq_len = 2048;  // longer samples are truncated to their first max_seq_len tokens
  std::size_t block_len = 0;       // 0: whole samples; N: concatenate, cut into N-token blocks
};

struct length_stats {
  std::size_t count = 0, min = 0, median = 0, p90 = 0, max = 0, total = 0;
};

struct calibration_set {
  std::vector<std::vector<std::int32_t>> sequences;  // what the forward passes run
  std::size_t prompts = 0;        // prompts used
  std::size_t lines = 0;          // prompts in the file
  std::size_t truncated = 0;      // prompts cut at max_seq_len
  length_stats prompt_lengths;    // of the prompts used, before truncation
  std::vector<std::string> warnings;
  [[nodiscard]] std::size_t tokens() const noexcept {
    std::size_t n = 0;
    for (const auto& s : sequences) n += s.size();
    return n;
  }
};

// Every prompt of the file, in order. Throws error::kind::io (cannot open) or ::format (with the
// 1-based line number) for a malformed line, and ::format for a file with no prompt.
inline std::vector<std::string> read_calibration_prompts(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(error::kind::io, path, "cannot open the calibration file");
  std::vector<std::string> out;
  std::size_t line_no = 0;
  const auto bad = [&](const std::string& why) {
    throw error(error::kind::format, path, cat("line ", line_no, ": ", why));
  };
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      bad(cat("not valid JSON (", e.what(), ")"));
    }
    if (!j.is_object()) bad(cat("a JSON ", j.type_name(), ", expected an object"));
    const auto str = [&](const char* key) -> const std::string* {
      const auto it = j.find(key);
      if (it == j.end() || it->is_null()) return nullptr;
      if (!it->is_string()) bad(cat("\"", key, "\" is a JSON ", it->type_name(), ", not a string"));
      return &it->get_ref<const std::string&>();
    };
    std::string prompt;
    if (const auto* ins = str("instruction")) {
      prompt = *ins;
      if (const auto* inp = str("input"); inp != nullptr && !inp->empty()) prompt += "\n\n" + *inp;
    } else if (const auto* text = str("text")) {
      prompt = *text;
    } else {
      bad("no \"instruction\" or \"text\" key");
    }
    if (prompt.empty()) bad("empty prompt");
    out.push_back(std::move(prompt));
  }
  if (out.empty()) throw error(error::kind::format, path, "no calibration prompt in the file");
  return out;
}

inline length_stats lengths_of(std::vector<std::size_t> v) {
  length_stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.count = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = v[(v.size() - 1) / 2];
  s.p90 = v[(v.size() - 1) * 9 / 10];
  for (auto n : v) s.total += n;
  return s;
}

// Tokenizes the first o.samples prompts and shapes them into sequences. Throws
// error::kind::argument for options of 0 or a block longer than max_seq_len, and when block mode
// gets fewer tokens than one block.
inline calibration_set build_calibration(std::span<const std::string> prompts,
                                         const tokenize::tokenizer& tok,
                                         const calibration_options& o, unsigned threads = 0) {
  if (o.samples == 0 || o.max_seq_len < 2)
    throw error(error::kind::argument, "calibration: samples must be > 0 and max_seq_len >= 2");
  calibration_set c;
  c.lines = prompts.size();
  const auto used = prompts.first(std::min(prompts.size(), o.samples));
  c.prompts = used.size();
  const auto ids = tok.encode_batch(used, {}, threads);
  std::vector<std::size_t> lens;
  std::vector<std::int32_t> stream;
  for (const auto& v : ids) {
    lens.push_back(v.size());
    const std::size_t keep = std::min(v.size(), o.max_seq_len);
    c.truncated += keep < v.size();
    if (keep == 0) continue;
    auto& dst = o.block_len == 0 ? c.sequences.emplace_back() : stream;
    for (std::size_t i = 0; i < keep; ++i) dst.push_back(static_cast<std::int32_t>(v[i]));
  }
  if (o.block_len != 0) {
    if (o.block_len > o.max_seq_len)
      throw error(error::kind::argument,
                  cat("calibration: block of ", o.block_len, " tokens exceeds max_seq_len ",
                      o.max_seq_len));
    if (stream.size() < o.block_len)
      throw error(error::kind::argument,
                  cat("calibration: ", stream.size(), " tokens do not fill one block of ",
                      o.block_len));
    for (std::size_t b = 0; b + o.block_len <= stream.size(); b += o.block_len)
      c.sequences.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(b),
                               stream.begin() + static_cast<std::ptrdiff_t>(b + o.block_len));
  }
  c.prompt_lengths = lengths_of(lens);
  const auto& s = c.prompt_lengths;
  if (c.prompts < o.samples)
    c.warnings.push_back(cat("the file holds ", c.prompts, " prompts, fewer than the ", o.samples,
                             " asked for; all of them are used"));
  if (c.prompts < 16)
    c.warnings.push_back(cat("only ", c.prompts,
                             " calibration prompts: the activation statistics will be noisy"));
  if (s.max < 64)
    c.warnings.push_back(cat("every prompt is under 64 tokens (max ", s.max,
                             "): this does not look like real traffic; scales fitted to short "
                             "prompts can hurt long ones"));
  else if (s.min == s.max && s.count > 1)
    c.warnings.push_back(cat("every prompt is exactly ", s.min,
                             " tokens long: this looks synthetic rather than like real prompts"));
  if (c.truncated * 4 > c.prompts)
    c.warnings.push_back(cat(c.truncated, " of ", c.prompts, " prompts were truncated to ",
                             o.max_seq_len, " tokens"));
  return c;
}

}  // namespace qforge::awq
