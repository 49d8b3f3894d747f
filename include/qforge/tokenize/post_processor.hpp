// SPDX-License-Identifier: MIT
// tokenizer.json "post_processor" for a single sequence with add_special_tokens (HF's default):
// TemplateProcessing's "single" template (special tokens by their "ids" lists, $A for the text),
// RobertaProcessing / BertProcessing (cls, text, sep), ByteLevel (offsets only: no ids change) and
// Sequence, each applied to the previous one's output as processors/sequence.rs does. Pair
// templates are not used: the tokenizer encodes one text at a time.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/hf/tokenizer_json.hpp"

namespace qforge::tokenize {

class post_processor {
 public:
  // `j`: the "post_processor" value (null: nothing is added).
  static post_processor parse(const nlohmann::json& j, const std::string& path) {
    post_processor p;
    p.add(j, path);
    return p;
  }

  // ids of the text -> ids with the special tokens around it.
  [[nodiscard]] std::vector<std::uint32_t> apply(std::vector<std::uint32_t> ids) const {
    for (const auto& t : steps_) {
      std::vector<std::uint32_t> out;
      out.reserve(ids.size() + t.size());
      for (const auto& item : t) {
        if (item.empty())
          out.insert(out.end(), ids.begin(), ids.end());
        else
          out.insert(out.end(), item.begin(), item.end());
      }
      ids = std::move(out);
    }
    return ids;
  }

  // Whether any step puts tokens around the text.
  [[nodiscard]] bool adds_tokens() const noexcept {
    for (const auto& s : steps_)
      if (s.size() > 1) return true;
    return false;
  }

 private:
  // One template: its items in order; an empty item stands for the text.
  using step = std::vector<std::vector<std::uint32_t>>;

  static std::uint32_t pair_id(const nlohmann::json& j, const char* key, const std::string& path) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer())
      throw error(error::kind::format, path,
                  cat("post_processor: \"", key, "\" must be [token, id]"));
    return format::hf::token_id((*it)[1], path, cat("post_processor ", key));
  }

  void add(const nlohmann::json& j, const std::string& path) {
    if (j.is_null()) return;
    const auto type = format::hf::json_type(j);
    if (type == "Sequence") {
      const auto it = j.find("processors");
      if (it == j.end() || !it->is_array())
        throw error(error::kind::format, path, "post_processor Sequence without \"processors\"");
      for (const auto& sub : *it) add(sub, path);
    } else if (type == "ByteLevel") {
      // trim_offsets only moves offsets.
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      steps_.push_back({{pair_id(j, "cls", path)}, {}, {pair_id(j, "sep", path)}});
    } else if (type == "TemplateProcessing") {
      const auto single = j.find("single");
      if (single == j.end() || !single->is_array())
        throw error(error::kind::format, path, "TemplateProcessing without a \"single\" list");
      const auto specials = j.find("special_tokens");
      step s;
      for (const auto& item : *single) {
        if (item.contains("Sequence")) {
          const auto& seq = item["Sequence"];
          if (!seq.is_object() || seq.value("id", std::string()) != "A")
            throw error(error::kind::format, path,
                        cat("TemplateProcessing single: sequence ", seq.dump(),
                            " (only $A exists for one text)"));
          s.emplace_back();
        } else if (item.contains("SpecialToken") && item["SpecialToken"].is_object() &&
                   item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
          const auto name = item["SpecialToken"]["id"].get<std::string>();
          if (specials == j.end() || !specials->is_object() || !specials->contains(name))
            throw error(
                error::kind::format, path,
                cat("TemplateProcessing: special token '", name, "' is not in special_tokens"));
          const auto& entry = (*specials)[name];
          const auto ids = entry.find("ids");
          if (ids == entry.end() || !ids->is_array() || ids->empty())
            throw error(error::kind::format, path,
                        cat("TemplateProcessing: special token '", name, "' has no ids"));
          std::vector<std::uint32_t> v;
          for (const auto& id : *ids) v.push_back(format::hf::token_id(id, path, name));
          s.push_back(std::move(v));
        } else {
          throw error(error::kind::format, path,
                      cat("TemplateProcessing single: malformed item ", item.dump()));
        }
      }
      steps_.push_back(std::move(s));
    } else {
      throw error(error::kind::unsupported, path,
                  cat("post_processor '", type.empty() ? j.dump().substr(0, 80) : std::string(type),
                      "' is not supported (supported: TemplateProcessing, ByteLevel, "
                      "RobertaProcessing, BertProcessing, Sequence)"));
    }
  }

  std::vector<step> steps_;
};

}  // namespace qforge::tokenize
