// SPDX-License-Identifier: MIT
// The benchmark table's pieces on their own: answer scoring, the JSONL readers' errors, what an
// artefact is and weighs (the shipped model, a GGUF of it), the CSV / JSON shapes and the advice.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "qforge/convert/hf_to_gguf.hpp"
#include "qforge/report/advice.hpp"
#include "qforge/report/table.hpp"

using namespace qforge;
namespace fs = std::filesystem;

namespace {

const std::string model_dir = std::string(QFORGE_FIXTURES) + "/models/tiny-llama";

std::string write_file(const std::string& name, const std::string& text) {
  const auto p = std::string(QFORGE_TEST_TMP) + "/" + name;
  std::ofstream(p) << text;
  return p;
}

report::task_score score(const std::string& got, const std::string& want) {
  report::task_score s;
  report::score_answer(got, want, s);
  return s;
}

}  // namespace

TEST_CASE("report: exact means the answer starts the continuation at a word boundary", "[report]") {
  CHECK(score(" Moses, saying", "Moses").exact == 1);
  CHECK(score("\n  Moses", " Moses ").exact == 1);
  CHECK(score(" Mosesite", "Moses").exact == 0);
  CHECK(score(" Mosesite", "Moses").contains == 1);
  CHECK(score(" and Moses", "Moses").exact == 0);
  CHECK(score(" and Moses", "Moses").contains == 1);
  CHECK(score(" '__main__':", "'__main__'").exact == 1);
  CHECK(score("", "x").total == 1);
  CHECK(score("", "x").contains == 0);
}

TEST_CASE("report: task and document files fail with the file and line", "[report]") {
  const auto bad = write_file("tasks_bad.jsonl", "{\"prompt\": \"a\", \"expected\": \"b\"}\n\n{\"prompt\": 3}\n");
  try {
    (void)report::read_tasks(bad);
    FAIL("no error");
  } catch (const error& e) {
    CHECK_THAT(e.what(), Catch::Contains("tasks_bad.jsonl") && Catch::Contains("line 3"));
  }
  CHECK_THROWS_WITH(report::read_tasks(write_file("tasks_json.jsonl", "{\"prompt\": \n")),
                    Catch::Contains("line 1: not JSON"));
  CHECK_THROWS_WITH(report::read_tasks(write_file("tasks_empty.jsonl", "\n")), Catch::Contains("no tasks"));
  CHECK_THROWS_AS(report::read_tasks(std::string(QFORGE_TEST_TMP) + "/missing.jsonl"), error);

  const tokenize::tokenizer tok(model_dir);
  const auto docs = report::read_documents(
      write_file("docs.jsonl", "{\"ids\": [1, 2, 3]}\n{\"text\": \"In the beginning\"}\n{\"ids\": []}\n"),
      tok, 4096);
  REQUIRE(docs.size() == 3);
  CHECK(docs[0] == std::vector<std::int32_t>{1, 2, 3});
  const auto ids = tok.encode("In the beginning");
  CHECK(docs[1] == std::vector<std::int32_t>(ids.begin(), ids.end()));
  CHECK(docs[2].empty());
  CHECK(report::read_documents(write_file("docs2.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n"), tok, 4096, 1)
            .size() == 1);
  CHECK_THROWS_WITH(report::read_documents(write_file("docs3.jsonl", "{\"ids\": [5000]}\n"), tok, 4096),
                    Catch::Contains("line 1: token id 5000 outside"));
}

TEST_CASE("report: artefacts are described by what a server loads", "[report]") {
  const auto ckpt = report::describe_artefact(model_dir);
  CHECK(ckpt.kind == report::artefact_kind::checkpoint);
  CHECK(ckpt.format == "HF F16");
  CHECK(ckpt.bytes == fs::file_size(model_dir + "/model.safetensors"));
  // 5.2 M parameters (fixtures README); F16 plus the header: just over 16 bits per weight.
  CHECK(ckpt.weights > 5'000'000);
  CHECK(ckpt.weights < 5'400'000);
  CHECK(ckpt.bits_per_weight() > 16.0);
  CHECK(ckpt.bits_per_weight() < 16.1);

  const auto gguf = std::string(QFORGE_TEST_TMP) + "/report-q8_0.gguf";
  convert::conversion_options o;
  o.type = quant::qtype::q8_0;
  (void)convert::convert_to_gguf(model_dir, gguf, o);
  const auto q8 = report::describe_artefact(gguf);
  CHECK(q8.kind == report::artefact_kind::gguf);
  CHECK(q8.format == "GGUF Q8_0");
  CHECK(q8.weights == ckpt.weights);
  CHECK(q8.bits_per_weight() > 8.5);  // 8.5 bits per Q8_0 weight, norms in F32, the header
  CHECK(q8.bits_per_weight() < 9.0);
  CHECK(report::artefact_config(gguf).vocab == report::artefact_config(model_dir).vocab);
  CHECK_THROWS_WITH(report::describe_artefact(std::string(QFORGE_TEST_TMP) + "/nothing"),
                    Catch::Contains("not found"));
}

TEST_CASE("report: table shapes and advice follow the rows", "[report]") {
  report::bench_report rep;
  rep.settings.ctx = 512;
  for (const char* f : {"HF F16", "GGUF Q4_K_M", "GGUF Q2_K"}) {
    report::bench_row r;
    r.artefact.format = f;
    r.artefact.path = std::string("a \"quoted\" ") + f;
    r.artefact.bytes = 1000;
    r.artefact.weights = 1000;
    r.tokens = 10;
    r.reference = rep.rows.empty();
    rep.rows.push_back(r);
  }
  rep.rows[1].ppl_delta_pct = 1.2;
  rep.rows[2].ppl_delta_pct = 9.5;
  const auto csv = report::to_csv(rep);
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 4);
  CHECK_THAT(csv, Catch::Contains("\"a \"\"quoted\"\" GGUF Q2_K\""));
  const auto j = report::to_json(rep);
  CHECK(j["rows"].size() == 3);
  CHECK(j["settings"]["ctx"] == 512);
  report::advice_options o;
  o.model_ctx = 8192;
  const auto advice = report::advise(rep, o);
  const auto has = [&](const std::string& needle) {
    return std::any_of(advice.begin(), advice.end(),
                       [&](const std::string& a) { return a.find(needle) != std::string::npos; });
  };
  CHECK(has("FLAG: GGUF Q2_K"));
  CHECK_FALSE(has("FLAG: GGUF Q4_K_M"));
  CHECK(has("llama.cpp / Ollama / Apple Silicon: GGUF Q4_K_M"));
  CHECK(has("under 3 B"));
  CHECK(has("long-context"));
}
