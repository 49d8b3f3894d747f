// SPDX-License-Identifier: MIT
// The safetensors writer: byte-exact round trips of every dtype through the reader, header padding,
// argument checks, atomic replacement, and a sharded checkpoint (2 shards + index) built from the
// tiny-llama fixture whose values must match the original file.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qforge/core/fp16.hpp"
#include "format/error_capture.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/format/safetensors/writer.hpp"

using namespace qforge::format::safetensors;
using qforge::error;
namespace fs = std::filesystem;

namespace {

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::path(QFORGE_TEST_TMP) / ("st_writer_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = static_cast<std::byte>((i * 131u + seed * 17u + 7u) & 0xffu);
  return v;
}

std::uint64_t header_length(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char b[8];
  in.read(reinterpret_cast<char*>(b), 8);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[i];
  return n;
}

using qforge::test::error_from;

}  // namespace

TEST_CASE("safetensors writer: every dtype round trips byte for byte", "[safetensors][writer]") {
  const std::string path = fresh_dir("dtypes") + "/all.safetensors";
  writer w;
  std::vector<std::vector<std::byte>> keep;
  std::vector<std::string> names;
  unsigned seed = 0;
  for (dtype t : all_dtypes) {
    // An odd element count so later tensors start at unaligned offsets.
    const std::vector<std::uint64_t> shape{3, 5};
    keep.push_back(pattern(15 * size_of(t), seed++));
    names.push_back("t." + std::string(to_string(t)));
    w.add(names.back(), t, shape, keep.back());
  }
  keep.push_back(pattern(size_of(dtype::f64), 99));
  w.add("scalar", dtype::f64, {}, keep.back());
  w.add("empty", dtype::bf16, {0, 4}, {});
  w.set_metadata("format", "pt");
  w.set_metadata("note", "caf\u00e9 \"quoted\"");
  w.set_metadata("note", "replaced");
  w.write(path);

  CHECK(header_length(path) % 8 == 0);
  const file f(path);
  CHECK(f.data_start() % 8 == 0);
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "replaced"}});
  REQUIRE(f.tensors().size() == all_dtypes.size() + 2);
  for (std::size_t i = 0; i < all_dtypes.size(); ++i) {
    const auto& t = f.tensors()[i];  // data-offset order == add() order
    INFO(names[i]);
    CHECK(t.name == names[i]);
    CHECK(t.type == all_dtypes[i]);
    CHECK(t.shape == std::vector<std::uint64_t>{3, 5});
    CHECK(to_string(t.type) == names[i].substr(2));
    const auto b = f.view(t.name).bytes();
    REQUIRE(b.size() == keep[i].size());
    CHECK(std::memcmp(b.data(), keep[i].data(), b.size()) == 0);
  }
  const auto s = f.view("scalar");
  CHECK(s.shape().empty());
  CHECK(s.numel() == 1);
  CHECK(std::memcmp(s.bytes().data(), keep.back().data(), 8) == 0);
  const auto e = f.view("empty");
  CHECK(e.numel() == 0);
  CHECK(e.bytes().empty());
  CHECK(e.to_f32().empty());
}

TEST_CASE("safetensors writer: F32/F16/BF16 read back as the floats written",
          "[safetensors][writer]") {
  // Values exact in all three types, plus signed zero, a subnormal half and infinity.
  const std::vector<float> x{1.0f,  -2.5f,     0.15625f, -0.0f,
                             0.0f,  3.0f / 64, 0x1p-24f, -std::numeric_limits<float>::infinity(),
                             256.0f};
  std::vector<std::uint16_t> h, b;
  for (float v : x) {
    h.push_back(qforge::fp32_to_fp16(v));
    b.push_back(qforge::fp32_to_bf16(v));
  }
  // BF16 has no subnormal at 2^-24: it is a normal bfloat16, exact as well.
  const std::string path = fresh_dir("floats") + "/floats.safetensors";
  writer w;
  w.add("f32", dtype::f32, {x.size()}, std::as_bytes(std::span(x)));
  w.add("f16", dtype::f16, {x.size()}, std::as_bytes(std::span(h)));
  w.add("bf16", dtype::bf16, {3, 3}, std::as_bytes(std::span(b)));
  w.write(path);
  const file f(path);
  for (const char* name : {"f32", "f16", "bf16"}) {
    INFO(name);
    const auto got = f.view(name).to_f32();
    REQUIRE(got.size() == x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      CHECK(got[i] == x[i]);
      CHECK(std::signbit(got[i]) == std::signbit(x[i]));
    }
  }
}

TEST_CASE("safetensors writer: rejects bad arguments", "[safetensors][writer]") {
  writer w;
  const std::vector<std::byte> twelve(12);
  w.add("x", dtype::f32, {3}, twelve);
  auto e = error_from([&] { w.add("x", dtype::f32, {3}, twelve); });
  CHECK(e.which() == error::kind::argument);
  CHECK_THAT(e.what(), Catch::Contains("'x'"));
  e = error_from([&] { w.add("y", dtype::f32, {4}, twelve); });
  CHECK(e.which() == error::kind::argument);
  CHECK_THAT(e.what(), Catch::Contains("tensor 'y': shape [4] \u00d7 F32 = 16 bytes but 12"));
  e = error_from([&] { w.add("big", dtype::f16, {1ull << 32, 1ull << 32}, twelve); });
  CHECK(e.which() == error::kind::argument);
  CHECK_THAT(e.what(), Catch::Contains("'big'") && Catch::Contains("overflow"));
  e = error_from([&] { w.add("__metadata__", dtype::u8, {12}, twelve); });
  CHECK(e.which() == error::kind::argument);
  e = error_from([&] { w.add("", dtype::u8, {12}, twelve); });
  CHECK(e.which() == error::kind::argument);
  CHECK(w.size() == 1);
}

TEST_CASE("safetensors writer: replaces atomically and leaves no file on failure",
          "[safetensors][writer]") {
  const std::string dir = fresh_dir("atomic");
  const std::string path = dir + "/out.safetensors";
  const std::vector<std::byte> a = pattern(8, 1), b = pattern(4, 2);
  writer first;
  first.add("a", dtype::u8, {8}, a);
  first.write(path);
  writer second;
  second.add("b", dtype::u8, {4}, b);
  second.write(path);
  CHECK(file(path).tensors().size() == 1);
  CHECK(file(path).find("b") != nullptr);

  writer bad;
  bad.add("\xff\xfe not utf-8", dtype::u8, {8}, a);
  const auto e = error_from([&] { bad.write(path); });
  CHECK(e.which() == error::kind::argument);
  CHECK(file(path).find("b") != nullptr);  // the previous file is untouched
  for (const auto& entry : fs::directory_iterator(dir))
    CHECK(entry.path().filename() == "out.safetensors");  // no temporary left behind
}

TEST_CASE("safetensors writer: a file with no tensors", "[safetensors][writer]") {
  const std::string path = fresh_dir("empty") + "/none.safetensors";
  writer().write(path);
  CHECK(header_length(path) == 8);  // "{}" padded with spaces
  const file f(path);
  CHECK(f.tensors().empty());
  CHECK(f.metadata().empty());
}

TEST_CASE("safetensors: sharded checkpoint written from tiny-llama", "[safetensors][checkpoint]") {
  const file src(std::string(QFORGE_FIXTURES) + "/models/tiny-llama/model.safetensors");
  const std::string dir = fresh_dir("sharded");
  const std::string s1 = "model-00001-of-00002.safetensors",
                    s2 = "model-00002-of-00002.safetensors";
  // Layers 0-1 and the embedding in shard 1, the rest in shard 2; added in reverse name order so
  // a shard's data-offset order differs from the index's key order.
  writer w1, w2;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  std::uint64_t total = 0;
  for (auto it = src.tensors().rbegin(); it != src.tensors().rend(); ++it) {
    const bool first = it->name.rfind("model.layers.0.", 0) == 0 ||
                       it->name.rfind("model.layers.1.", 0) == 0 ||
                       it->name == "model.embed_tokens.weight";
    (first ? w1 : w2).add(src.view(it->name));
    index["weight_map"][it->name] = first ? s1 : s2;
    total += it->nbytes();
  }
  index["metadata"]["total_size"] = total;
  w1.write(dir + "/" + s1);
  w2.write(dir + "/" + s2);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);

  for (const std::string& where : {dir, dir + "/model.safetensors.index.json"}) {
    INFO(where);
    const checkpoint ck(where);
    CHECK(ck.path() == where);
    REQUIRE(ck.files().size() == 2);
    CHECK(ck.files()[0].path() == dir + "/" + s1);
    const auto names = ck.names();
    REQUIRE(names.size() == 39);
    CHECK(w1.size() == 19);
    // Shard 1 first, and within it the order the tensors were added (reverse of the source).
    CHECK(names.front() == "model.layers.1.self_attn.v_proj.weight");
    CHECK(names[18] == "model.embed_tokens.weight");
    CHECK(names[19] == "model.norm.weight");
    CHECK(names.back() == "lm_head.weight");
    CHECK(ck.total_bytes() == total);
    CHECK(ck.total_bytes() == 10490368);
    for (const auto& t : src.tensors()) {
      INFO(t.name);
      REQUIRE(ck.contains(t.name));
      CHECK(ck.info(t.name).shape == t.shape);
      const auto got = ck.view(t.name).bytes();
      const auto want = src.view(t.name).bytes();
      REQUIRE(got.size() == want.size());
      CHECK(std::memcmp(got.data(), want.data(), got.size()) == 0);
    }
    CHECK(ck.view("model.layers.0.self_attn.q_proj.weight").to_f32()[1 * 256 + 2] ==
          0.02960205078125f);
    CHECK(ck.view("model.layers.0.self_attn.q_proj.weight").file() == dir + "/" + s1);
  }
}

TEST_CASE("safetensors: checkpoint folder with one differently named file",
          "[safetensors][checkpoint]") {
  const std::string dir = fresh_dir("single");
  const std::vector<std::byte> a = pattern(6, 3);
  writer w;
  w.add("w", dtype::i16, {3}, a);
  w.write(dir + "/weights.safetensors");
  const checkpoint ck(dir);
  CHECK(ck.names() == std::vector<std::string>{"w"});
  CHECK(ck.total_bytes() == 6);
}
