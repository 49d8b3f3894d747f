// SPDX-License-Identifier: MIT
// The text inputs of a benchmark, read from JSON lines: evaluation documents ({"text"} tokenized
// with the model's tokenizer, or {"ids"} used as they are) and tasks ({"prompt", "expected"},
// answered by greedy decoding). A malformed line is an error naming the file and line; nothing is
// silently skipped except blank lines.
#pragma once
#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qforge/core/error.hpp"
#include "qforge/tokenize/tokenizer.hpp"

namespace qforge::report {

struct task {
  std::string prompt, expected;
};

namespace detail {

// Calls fn(json, line_no) for every non-blank line; parse errors name the line.
template <class Fn>
void for_each_json_line(const std::string& path, Fn&& fn) {
  std::ifstream in(path);
  if (!in) throw error(error::kind::io, path, "cannot open");
  std::size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw error(error::kind::format, path, cat("line ", line_no, ": not JSON (", e.what(), ")"));
    }
    if (!j.is_object()) throw error(error::kind::format, path, cat("line ", line_no, ": not an object"));
    fn(j, line_no);
  }
}

inline std::string string_field(const nlohmann::json& j, const char* key, const std::string& path,
                                std::size_t line_no) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw error(error::kind::format, path, cat("line ", line_no, ": no string \"", key, "\""));
  return it->get<std::string>();
}

}  // namespace detail

// Token ids of each document (at most max_docs, 0: all). Ids must lie inside `vocab`.
inline std::vector<std::vector<std::int32_t>> read_documents(const std::string& path,
                                                             const tokenize::tokenizer& tok,
                                                             std::uint32_t vocab,
                                                             std::size_t max_docs = 0) {
  std::vector<std::string> texts;
  std::vector<std::vector<std::int32_t>> docs;
  std::vector<std::size_t> order;  // index in docs of each text (a placeholder until encoded)
  detail::for_each_json_line(path, [&](const nlohmann::json& j, std::size_t line_no) {
    if (max_docs && docs.size() == max_docs) return;
    if (const auto ids = j.find("ids"); ids != j.end()) {
      // Checked element by element before any conversion: nlohmann turns 6.4e113 or 2^40 into an
      // int32_t without a word (undefined behaviour for the float).
      if (!ids->is_array())
        throw error(error::kind::format, path, cat("line ", line_no, ": \"ids\" is not a list of integers"));
      std::vector<std::int32_t> d;
      d.reserve(ids->size());
      for (const auto& v : *ids) {
        if (!v.is_number_integer())
          throw error(error::kind::format, path, cat("line ", line_no, ": \"ids\" is not a list of integers"));
        const bool in_range = v.is_number_unsigned() ? v.get<std::uint64_t>() < vocab
                                                     : v.get<std::int64_t>() >= 0 &&
                                                           v.get<std::int64_t>() < std::int64_t{vocab};
        if (!in_range)
          throw error(error::kind::format, path,
                      cat("line ", line_no, ": token id ", v.dump(), " outside the vocabulary of ", vocab));
        d.push_back(static_cast<std::int32_t>(v.get<std::int64_t>()));
      }
      docs.push_back(std::move(d));
      return;
    }
    order.push_back(docs.size());
    texts.push_back(detail::string_field(j, "text", path, line_no));
    docs.emplace_back();  // placeholder, filled below
  });
  if (texts.empty()) return docs;
  const auto encoded = tok.encode_batch(std::span<const std::string>(texts));
  for (std::size_t t = 0; t < encoded.size(); ++t)
    docs[order[t]].assign(encoded[t].begin(), encoded[t].end());
  return docs;
}

inline std::vector<task> read_tasks(const std::string& path) {
  std::vector<task> tasks;
  detail::for_each_json_line(path, [&](const nlohmann::json& j, std::size_t line_no) {
    tasks.push_back({detail::string_field(j, "prompt", path, line_no),
                     detail::string_field(j, "expected", path, line_no)});
    if (tasks.back().expected.find_first_not_of(" \t\n") == std::string::npos)
      throw error(error::kind::format, path, cat("line ", line_no, ": empty \"expected\""));
  });
  if (tasks.empty()) throw error(error::kind::format, path, "no tasks");
  return tasks;
}

}  // namespace qforge::report
