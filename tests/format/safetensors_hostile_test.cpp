// SPDX-License-Identifier: MIT
// Hostile safetensors files and checkpoint indexes: each must be refused with a qforge::error of
// the right kind whose message names the file and, where one is involved, the tensor. Ends with
// exhaustive truncation and byte-corruption sweeps: whatever the damage, the reader either accepts
// the file or throws qforge::error, never anything else.
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "format/error_capture.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/format/safetensors/writer.hpp"

using namespace qforge::format::safetensors;
using qforge::error;
namespace fs = std::filesystem;
using kind = error::kind;

namespace {

std::string tmp_path(const std::string& name) {
  const fs::path dir = fs::path(QFORGE_TEST_TMP) / "st_hostile";
  fs::create_directories(dir);
  return (dir / name).string();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string u64_le(std::uint64_t n) {
  std::string s(8, '\0');
  for (auto& c : s) {
    c = static_cast<char>(n & 0xffu);
    n >>= 8;
  }
  return s;
}

// A file with the given header text and `data` zero bytes after it.
std::string make(const std::string& name, const std::string& header, std::size_t data = 0) {
  const std::string path = tmp_path(name + ".safetensors");
  write_bytes(path, u64_le(header.size()) + header + std::string(data, '\0'));
  return path;
}

using qforge::test::error_from;

// Opening `path` fails with `k`, the message names the file (by its name) and every part given.
void expect_refused(const std::string& path, kind k, std::initializer_list<std::string> parts) {
  const auto e = error_from([&] { (void)file(path); });
  INFO(e.what());
  CHECK(e.which() == k);
  CHECK(e.path() == path);
  CHECK_THAT(e.what(), Catch::Contains(fs::path(path).filename().string()));
  for (const auto& p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
}

const std::string f32x3 = R"("dtype": "F32", "shape": [3], "data_offsets": [0, 12])";

}  // namespace

TEST_CASE("safetensors hostile: bad header length", "[safetensors][hostile]") {
  const std::string empty = tmp_path("empty.safetensors");
  write_bytes(empty, "");
  expect_refused(empty, kind::format, {"0 bytes"});
  const std::string five = tmp_path("five.safetensors");
  write_bytes(five, std::string("\x02\0\0\0\0", 5));
  expect_refused(five, kind::format, {"5 bytes"});

  const std::string longer = tmp_path("longer.safetensors");
  write_bytes(longer, u64_le(1000) + R"({"x": {}})");
  expect_refused(longer, kind::format, {"header length 1000", "only 9 bytes"});

  const std::string huge = tmp_path("huge.safetensors");
  write_bytes(huge, u64_le(std::uint64_t{1} << 63) + "{}");
  expect_refused(huge, kind::format, {"9223372036854775808"});
  const auto e = error_from([&] { (void)file(huge); });
  CHECK(e.offset() == 0u);

  const std::string one = tmp_path("one.safetensors");
  write_bytes(one, u64_le(1) + "{}");
  expect_refused(one, kind::format, {"header length 1"});
}

TEST_CASE("safetensors hostile: header is not a JSON object", "[safetensors][hostile]") {
  const auto bad = make("notjson", "{\"x\": nope}");
  expect_refused(bad, kind::format, {"invalid JSON"});
  const auto where = error_from([&] { (void)file(bad); }).offset();
  REQUIRE(where.has_value());
  CHECK(*where >= 8u + 6u);  // within 'nope', where the parser gave up
  CHECK(*where < 8u + 10u);
  expect_refused(make("array", "[1, 2, 3]"), kind::format, {"array", "not an object"});
  expect_refused(make("string", "\"tensor\""), kind::format, {"not an object"});
  expect_refused(make("trailing", "{} {}"), kind::format, {"invalid JSON"});
  // nlohmann alone would stop at the NUL and accept.
  expect_refused(make("nulpad", std::string("{}\0\0\0\0\0\0", 8)), kind::format, {"NUL"});
  expect_refused(make("nul_then_more", std::string("{}\0{\"x\": 1}", 12)), kind::format, {"NUL"});
  expect_refused(make("badutf8", "{\"x\xff\": 1}"), kind::format, {"invalid JSON"});
  expect_refused(make("deep", std::string(5000, '[') + std::string(5000, ']')), kind::format,
                 {"nested"});
  // Padding with spaces (what writers do) is fine.
  CHECK(file(make("padded", "{}      ")).tensors().empty());
}

TEST_CASE("safetensors hostile: bad dtype", "[safetensors][hostile]") {
  expect_refused(make("dtype_unknown",
                      R"({"w": {"dtype": "F17", "shape": [3], "data_offsets": [0, 12]}})", 12),
                 kind::format, {"tensor 'w'", "unknown dtype 'F17'"});
  expect_refused(
      make("dtype_case", R"({"w": {"dtype": "f32", "shape": [3], "data_offsets": [0, 12]}})", 12),
      kind::format, {"tensor 'w'", "'f32'"});
  expect_refused(
      make("dtype_num", R"({"w": {"dtype": 4, "shape": [3], "data_offsets": [0, 12]}})", 12),
      kind::format, {"tensor 'w'", "not a string"});
  // A dtype the format defines but qforge does not model.
  expect_refused(
      make("dtype_u32", R"({"w": {"dtype": "U32", "shape": [3], "data_offsets": [0, 12]}})", 12),
      kind::unsupported, {"tensor 'w'", "U32"});
}

TEST_CASE("safetensors hostile: bad entry structure", "[safetensors][hostile]") {
  expect_refused(make("entry_array", R"({"w": [1]})"), kind::format,
                 {"tensor 'w'", "not an object"});
  expect_refused(make("no_shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 12]}})", 12),
                 kind::format, {"tensor 'w'", "'shape'"});
  expect_refused(make("no_offsets", R"({"w": {"dtype": "F32", "shape": [3]}})", 12), kind::format,
                 {"tensor 'w'", "'data_offsets'"});
  expect_refused(make("extra_field", "{\"w\": {" + f32x3 + R"(, "bias": 1}})", 12), kind::format,
                 {"tensor 'w'", "'bias'"});
  expect_refused(
      make("empty_name", R"({"": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}})"),
      kind::format, {"empty name"});
  expect_refused(
      make("dup_field",
           R"({"w": {"dtype": "F32", "dtype": "F16", "shape": [3], "data_offsets": [0, 12]}})", 12),
      kind::format, {"'dtype' appears twice in 'w'"});
}

TEST_CASE("safetensors hostile: bad shape", "[safetensors][hostile]") {
  expect_refused(make("shape_negative",
                      R"({"w": {"dtype": "F32", "shape": [-3], "data_offsets": [0, 12]}})", 12),
                 kind::format, {"tensor 'w'", "-3"});
  expect_refused(make("shape_float",
                      R"({"w": {"dtype": "F32", "shape": [3.0], "data_offsets": [0, 12]}})", 12),
                 kind::format, {"tensor 'w'", "3.0"});
  expect_refused(make("shape_string",
                      R"({"w": {"dtype": "F32", "shape": ["3"], "data_offsets": [0, 12]}})", 12),
                 kind::format, {"tensor 'w'", "non-negative integer"});
  expect_refused(
      make("shape_big",
           R"({"w": {"dtype": "F32", "shape": [18446744073709551616], "data_offsets": [0, 12]}})",
           12),
      kind::format, {"tensor 'w'"});
  expect_refused(make("shape_nested",
                      R"({"w": {"dtype": "F32", "shape": [[3]], "data_offsets": [0, 12]}})", 12),
                 kind::format, {"'w'", "nested"});
  expect_refused(make("shape_object",
                      R"({"w": {"dtype": "F32", "shape": {"a": 3}, "data_offsets": [0, 12]}})", 12),
                 kind::format, {"tensor 'w'", "not an array"});
}

TEST_CASE("safetensors hostile: bad data offsets", "[safetensors][hostile]") {
  expect_refused(
      make("past_end", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})", 11),
      kind::format, {"tensor 'w'", "[0, 12]", "11 bytes"});
  expect_refused(make("begin_after_end",
                      R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 12),
                 kind::format, {"tensor 'w'", "[8, 4]", "begin is past end"});
  expect_refused(make("three_offsets",
                      R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12, 12]}})", 12),
                 kind::format, {"tensor 'w'", "pair"});
  expect_refused(make("negative_offset",
                      R"({"w": {"dtype": "U8", "shape": [2], "data_offsets": [-2, 0]}})", 12),
                 kind::format, {"tensor 'w'", "pair"});
  const auto mismatch =
      make("mismatch", R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 10]}})", 12);
  const auto e = error_from([&] { (void)file(mismatch); });
  CHECK(e.which() == kind::format);
  CHECK(std::string(e.what()) ==
        mismatch + ": tensor 'x': data_offsets [0, 10] but shape [3] \u00d7 F32 = 12 bytes");
}

TEST_CASE("safetensors hostile: shape product overflow", "[safetensors][hostile]") {
  // 2^32 * 2^32 elements overflows the element count, 2^62 F32 elements the byte count; both
  // would wrap to a small number a naive reader accepts.
  expect_refused(
      make("overflow_numel",
           R"({"w": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})"),
      kind::format, {"tensor 'w'", "overflow"});
  expect_refused(
      make("overflow_bytes",
           R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})"),
      kind::format, {"tensor 'w'", "overflow"});
  // A zero dimension makes the product 0 even with huge others: legal and empty.
  const file ok(make(
      "zero_dim",
      R"({"w": {"dtype": "F32", "shape": [0, 4611686018427387904], "data_offsets": [0, 0]}})"));
  CHECK(ok.view("w").numel() == 0);
}

TEST_CASE("safetensors hostile: overlapping and duplicate tensors", "[safetensors][hostile]") {
  expect_refused(make("overlap", R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                      12),
                 kind::format, {"tensor 'b'", "overlap tensor 'a'"});
  expect_refused(
      make("same_bytes", R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                                         "b": {"dtype": "I32", "shape": [3], "data_offsets": [0, 12]}})",
           12),
      kind::format, {"overlap"});
  expect_refused(
      make("nested_overlap", R"({"a": {"dtype": "U8", "shape": [12], "data_offsets": [0, 12]},
                                            "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}})",
           12),
      kind::format, {"overlap"});
  expect_refused(make("duplicate", "{\"x\": {" + f32x3 + "}, \"x\": {" + f32x3 + "}}", 12),
                 kind::format, {"tensor 'x' appears twice"});
  expect_refused(
      make("dup_metadata", R"({"__metadata__": {"a": "1"}, "__metadata__": {"a": "2"}})"),
      kind::format, {"'__metadata__'", "twice"});
  // Gaps between tensors and empty tensors at any offset are harmless.
  const file ok(make("gaps", R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                                  "e": {"dtype": "F32", "shape": [0], "data_offsets": [1, 1]},
                                  "b": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}})",
                     12));
  CHECK(ok.tensors().size() == 3);
  CHECK(ok.tensors().back().name == "b");
}

TEST_CASE("safetensors hostile: bad metadata", "[safetensors][hostile]") {
  expect_refused(make("meta_number", R"({"__metadata__": {"format": "pt", "step": 5}})"),
                 kind::format, {"'step'", "not a string"});
  expect_refused(make("meta_null", R"({"__metadata__": {"x": null}})"), kind::format, {"'x'"});
  expect_refused(make("meta_array", R"({"__metadata__": ["pt"]})"), kind::format, {"__metadata__"});
}

TEST_CASE("safetensors hostile: missing files and tensors", "[safetensors][hostile]") {
  const std::string gone = tmp_path("does_not_exist.safetensors");
  const auto e = error_from([&] { (void)file(gone); });
  CHECK(e.which() == kind::io);
  CHECK_THAT(e.what(), Catch::Contains("does_not_exist.safetensors"));

  const file f(make("one_tensor", "{\"w\": {" + f32x3 + "}}", 12));
  const auto m = error_from([&] { (void)f.view("v"); });
  CHECK(m.which() == kind::format);
  CHECK_THAT(m.what(), Catch::Contains("one_tensor.safetensors") && Catch::Contains("'v'"));
}

namespace {

// A folder with shards a.safetensors (tensors a1, a2) and b.safetensors (b1) and the given index.
std::string sharded(const std::string& name, const std::string& index_json) {
  const fs::path dir = fs::path(QFORGE_TEST_TMP) / "st_hostile" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  static const std::vector<std::byte> data(8);
  writer a, b;
  a.add("a1", dtype::u8, {4}, std::span(data).first(4));
  a.add("a2", dtype::u8, {4}, std::span(data).first(4));
  b.add("b1", dtype::u8, {8}, data);
  a.write((dir / "a.safetensors").string());
  b.write((dir / "b.safetensors").string());
  std::ofstream(dir / "model.safetensors.index.json") << index_json;
  return dir.string();
}

void expect_index_refused(const std::string& dir, kind k,
                          std::initializer_list<std::string> parts) {
  const auto e = error_from([&] { (void)checkpoint(dir); });
  INFO(e.what());
  CHECK(e.which() == k);
  CHECK_THAT(e.what(), Catch::Contains("model.safetensors.index.json"));
  for (const auto& p : parts) CHECK_THAT(e.what(), Catch::Contains(p));
}

}  // namespace

TEST_CASE("safetensors hostile: checkpoint index", "[safetensors][hostile][checkpoint]") {
  const checkpoint good(sharded(
      "good",
      R"({"weight_map": {"a1": "a.safetensors", "a2": "a.safetensors", "b1": "b.safetensors"}})"));
  CHECK(good.names() == std::vector<std::string>{"a1", "a2", "b1"});

  expect_index_refused(
      sharded(
          "missing_shard",
          R"({"weight_map": {"a1": "a.safetensors", "a2": "a.safetensors", "b1": "b.safetensors", "c1": "c.safetensors"}})"),
      kind::io, {"'c.safetensors'", "'c1'", "does not exist"});
  expect_index_refused(
      sharded("escape",
              R"({"weight_map": {"a1": "../x", "a2": "a.safetensors", "b1": "b.safetensors"}})"),
      kind::format, {"tensor 'a1'", "'../x'", "plain file name"});
  expect_index_refused(sharded("absolute", R"({"weight_map": {"a1": "/etc/passwd"}})"),
                       kind::format, {"'/etc/passwd'"});
  expect_index_refused(sharded("dotdot", R"({"weight_map": {"a1": ".."}})"), kind::format,
                       {"'..'"});
  expect_index_refused(sharded("nul", R"({"weight_map": {"a1": "a.safetensors\u0000.txt"}})"),
                       kind::format, {"plain file name", "\\x00"});
  expect_index_refused(
      sharded(
          "absent_tensor",
          R"({"weight_map": {"a1": "a.safetensors", "a2": "a.safetensors", "a3": "a.safetensors", "b1": "b.safetensors"}})"),
      kind::format, {"tensor 'a3'", "'a.safetensors'", "does not hold it"});
  expect_index_refused(
      sharded(
          "misplaced",
          R"({"weight_map": {"a1": "a.safetensors", "a2": "b.safetensors", "b1": "b.safetensors"}})"),
      kind::format, {"'a2'"});
  expect_index_refused(
      sharded("unlisted", R"({"weight_map": {"a1": "a.safetensors", "b1": "b.safetensors"}})"),
      kind::format, {"'a2'", "does not list"});
  expect_index_refused(sharded("not_json", R"({"weight_map": )"), kind::format, {"invalid JSON"});
  expect_index_refused(sharded("array_root", R"([{"weight_map": {}}])"), kind::format,
                       {"not an object"});
  expect_index_refused(sharded("no_map", R"({"metadata": {}})"), kind::format, {"weight_map"});
  expect_index_refused(sharded("map_array", R"({"weight_map": ["a.safetensors"]})"), kind::format,
                       {"weight_map", "array"});
  expect_index_refused(sharded("map_number", R"({"weight_map": {"a1": 1}})"), kind::format,
                       {"tensor 'a1'", "not a file name"});
  expect_index_refused(
      sharded("map_dup", R"({"weight_map": {"a1": "a.safetensors", "a1": "b.safetensors"}})"),
      kind::format, {"'a1'", "twice"});
  expect_index_refused(
      sharded("top_dup", R"({"weight_map": {"a1": "a.safetensors"}, "weight_map": {}})"),
      kind::format, {"key 'weight_map' appears twice"});
  expect_index_refused(sharded("map_empty", R"({"weight_map": {}})"), kind::format, {"no tensors"});
}

TEST_CASE("safetensors hostile: checkpoint folders", "[safetensors][hostile][checkpoint]") {
  const fs::path dir = fs::path(QFORGE_TEST_TMP) / "st_hostile" / "two_files";
  fs::remove_all(dir);
  fs::create_directories(dir);
  writer().write((dir / "x.safetensors").string());
  writer().write((dir / "y.safetensors").string());
  auto e = error_from([&] { (void)checkpoint(dir.string()); });
  CHECK(e.which() == kind::format);
  CHECK_THAT(e.what(), Catch::Contains("x.safetensors") && Catch::Contains("y.safetensors"));

  fs::remove(dir / "x.safetensors");
  fs::remove(dir / "y.safetensors");
  e = error_from([&] { (void)checkpoint(dir.string()); });
  CHECK(e.which() == kind::io);
  e = error_from([&] { (void)checkpoint((dir / "nothing_here").string()); });
  CHECK(e.which() == kind::io);

  // A bad shard reports the shard itself.
  const std::string bad = sharded(
      "bad_shard",
      R"({"weight_map": {"a1": "a.safetensors", "a2": "a.safetensors", "b1": "b.safetensors"}})");
  write_bytes(bad + "/b.safetensors", u64_le(4) + "[1] ");
  e = error_from([&] { (void)checkpoint(bad); });
  CHECK(e.which() == kind::format);
  CHECK(e.path() == bad + "/b.safetensors");
}

TEST_CASE("safetensors hostile: every truncation and every corrupted header byte",
          "[safetensors][hostile]") {
  const std::string good = tmp_path("sweep_source.safetensors");
  const std::vector<std::byte> data(64, std::byte{0x3c});
  writer w;
  w.set_metadata("format", "pt");
  w.add("a", dtype::f16, {2, 3}, std::span(data).first(12));
  w.add("b", dtype::bf16, {5}, std::span(data).first(10));
  w.add("c", dtype::f32, {4}, std::span(data).first(16));
  w.write(good);
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string path = tmp_path("sweep.safetensors");
  std::size_t refused = 0, accepted = 0;
  auto attempt = [&](const std::string& content) {
    write_bytes(path, content);
    try {
      const file f(path);
      for (const auto& t : f.tensors()) {
        const auto v = f.view(t.name);
        CHECK(v.bytes().size() == t.nbytes());
        if (v.type() == dtype::f32 || v.type() == dtype::f16 || v.type() == dtype::bf16)
          CHECK(v.to_f32().size() == v.numel());
      }
      ++accepted;
    } catch (const error& e) {
      CHECK((e.which() == kind::format || e.which() == kind::unsupported));
      ++refused;
    }
  };
  for (std::size_t n = 0; n < bytes.size(); ++n) attempt(bytes.substr(0, n));
  CHECK(refused == bytes.size());  // every truncation cuts into the last tensor's bytes
  const auto header_end = static_cast<std::size_t>(file(good).data_start());
  for (std::size_t i = 0; i < header_end; ++i)
    for (char v : {'\x00', '"', ',', '1', '[', '}', '\xff'}) {
      std::string c = bytes;
      c[i] = v;
      attempt(c);
    }
  CHECK(accepted > 0);
}
