// SPDX-License-Identifier: MIT
// Parsing the JSON files of a Hugging Face folder (config.json, tokenizer.json, ...) from strangers.
// nlohmann parses any depth without recursion, but much of what follows does recurse: dump() in an
// error message, readers that walk nested objects. A 200 KB config.json of nested brackets
// overflowed the stack that way, so nesting is bounded while parsing (real files stay under ten
// levels). Errors name the file and byte, without nlohmann's "[json.exception...]" tag.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "qforge/core/error.hpp"

namespace qforge::format::hf {

inline constexpr int max_json_depth = 64;

inline error json_error(const std::string& path, const nlohmann::json::exception& e) {
  std::string_view what = e.what();
  if (const auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
  if (const auto* pe = dynamic_cast<const nlohmann::json::parse_error*>(&e))
    // byte is 1-based and points just past the offending character.
    return error(error::kind::format, path, pe->byte > 0 ? pe->byte - 1 : 0,
                 cat("invalid JSON: ", what));
  return error(error::kind::format, path, cat("invalid JSON: ", what));
}

// Throws error::kind::format naming `path` for invalid JSON or nesting deeper than max_depth.
inline nlohmann::json parse_json(std::string_view text, const std::string& path,
                                 int max_depth = max_json_depth) {
  using event = nlohmann::json::parse_event_t;
  const auto limit = [&](int depth, event ev, nlohmann::json&) {
    if ((ev == event::object_start || ev == event::array_start) && depth >= max_depth)
      throw error(error::kind::format, path, cat("JSON nested deeper than ", max_depth, " levels"));
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), limit);
  } catch (const nlohmann::json::exception& e) {
    throw json_error(path, e);
  }
}

}  // namespace qforge::format::hf
