// SPDX-License-Identifier: MIT
// The GGUF reader against broken and malicious files: every truncation of a valid file, every
// single-byte corruption, and hand-built headers with lying counts, lengths, shapes, types and
// offsets. Each must end in a qforge::error of the right kind whose message names the file: never a
// crash, a bad_alloc, or a silently accepted file.
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/gguf/writer.hpp"

using namespace qforge;
using namespace qforge::format;
using gguf::value;
using gguf::value_type;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) { return std::string(QFORGE_TEST_TMP) + "/" + name; }

void save(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// Hand-assembles GGUF bytes, little-endian, so a test can lie in any field.
struct builder {
  std::vector<std::uint8_t> b;
  builder& raw(std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  template <class U>
  builder& le(U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i)
      b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  builder& u32(std::uint32_t v) { return le(v); }
  builder& u64(std::uint64_t v) { return le(v); }
  builder& str(std::string_view s) { return u64(s.size()).raw(s); }
  builder& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  builder& kv_u32(std::string_view k, std::uint32_t v) { return str(k).u32(4).u32(v); }
  builder& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type,
                  std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (auto d : dims) u64(d);
    return u32(type).u64(offset);
  }
  builder& pad(std::size_t align = 32) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
  builder& zeros(std::size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

// Reads `bytes` from a file; returns the error (REQUIREs that one of ours was thrown).
qforge::error read_error(const std::vector<std::uint8_t>& bytes,
                         const std::string& name = "hostile.gguf") {
  const std::string path = tmp_path(name);
  save(path, bytes);
  try {
    gguf::reader r(path);
  } catch (const qforge::error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find(path) != std::string::npos);
    return e;
  }
  FAIL("reader accepted the file");
  return qforge::error(qforge::error::kind::internal, "unreachable");
}

void expect_format(const builder& b, std::string_view needle) {
  const auto e = read_error(b.b);
  INFO(e.what());
  CHECK(e.which() == qforge::error::kind::format);
  CHECK(std::string(e.what()).find(needle) != std::string::npos);
}

// A valid file whose last tensor is a whole number of alignment units, so no strict prefix of it
// is a complete file.
std::vector<std::uint8_t> valid_file() {
  gguf::writer w;
  w.set("general.architecture", value::string("llama"));
  w.set("n.u32", value::u32(7));
  w.set("n.strs", value::string_array({"ab", "", "c"}));
  w.set("n.f32s", value::f32_array({1, 2}));
  w.set("n.nested", value::array(value_type::array, {value::i32_array({1}), value::i32_array({})}));
  w.set("n.b", value::boolean(true));
  w.add_tensor("a", {64}, quant::qtype::q8_0);  // 68 bytes, padded to 96
  w.add_tensor("b", {8}, quant::qtype::f32);    // 32 bytes, no padding after it
  const std::string path = tmp_path("hostile_valid.gguf");
  auto s = w.open(path);
  s.write_tensor("a", std::vector<std::byte>(68, std::byte{1}));
  s.write_tensor("b", std::vector<std::byte>(32, std::byte{2}));
  s.finish();
  return load(path);
}

}  // namespace

TEST_CASE("gguf hostile: the valid base file reads", "[gguf][hostile]") {
  const auto bytes = valid_file();
  const std::string path = tmp_path("hostile_base.gguf");
  save(path, bytes);
  gguf::reader r(path);
  CHECK(r.tensors().size() == 2);
  CHECK(r.tensor_data(r.tensors()[1]).size() == 32);
  CHECK(r.data_offset() + r.tensors()[1].offset + 32 == bytes.size());
}

TEST_CASE("gguf hostile: every truncation throws", "[gguf][hostile]") {
  const auto bytes = valid_file();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    const auto e =
        read_error(std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(n)));
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(e.offset().has_value());
  }
}

TEST_CASE("gguf hostile: single-byte corruptions never crash", "[gguf][hostile]") {
  const auto bytes = valid_file();
  const std::string path = tmp_path("hostile_flip.gguf");
  int rejected = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (std::uint8_t x :
         {std::uint8_t{0x00}, std::uint8_t{0xff}, std::uint8_t{0x80}, std::uint8_t{0x01}}) {
      auto m = bytes;
      if (m[i] == x) continue;
      m[i] = x;
      save(path, m);
      try {
        gguf::reader r(path);
        for (const auto& t : r.tensors()) (void)r.tensor_data(t);
      } catch (const qforge::error& e) {
        ++rejected;
        if (std::string(e.what()).find(path) == std::string::npos) FAIL_CHECK(e.what());
      }
      // Anything else (bad_alloc, length_error, a signal) escapes and fails the test case.
    }
  }
  CHECK(rejected > 0);
}

TEST_CASE("gguf hostile: header", "[gguf][hostile]") {
  SECTION("bad magic") {
    builder b;
    b.raw("GGML").u32(3).u64(0).u64(0);
    const auto e = read_error(b.b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(e.offset() == 0u);
  }
  SECTION("empty file") { CHECK(read_error({}).which() == qforge::error::kind::format); }
  SECTION("version 1") {
    builder b;
    b.header(0, 0, 1);
    CHECK(read_error(b.b).which() == qforge::error::kind::unsupported);
  }
  SECTION("version 4") {
    builder b;
    b.header(0, 0, 4);
    CHECK(read_error(b.b).which() == qforge::error::kind::unsupported);
  }
  SECTION("big-endian file") {
    builder b;
    b.header(0, 0, 0x03000000u);
    const auto e = read_error(b.b);
    CHECK(e.which() == qforge::error::kind::unsupported);
    CHECK(std::string(e.what()).find("endian") != std::string::npos);
  }
  SECTION("version 2 reads") {
    builder b;
    b.header(0, 1, 2).kv_u32("k", 5);
    const std::string path = tmp_path("hostile_v2.gguf");
    save(path, b.b);
    gguf::reader r(path);
    CHECK(r.version() == 2);
    CHECK(r.at("k").as_u32() == 5);
  }
  SECTION("huge n_tensors") {
    builder b;
    b.header(1ull << 40, 0);
    const auto e = read_error(b.b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(e.offset() == 8u);
  }
  SECTION("huge n_kv") {
    builder b;
    b.header(0, ~0ull).kv_u32("k", 1);
    const auto e = read_error(b.b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(e.offset() == 16u);
  }
}

TEST_CASE("gguf hostile: metadata", "[gguf][hostile]") {
  SECTION("huge key length") {
    builder b;
    b.header(0, 1).u64(1ull << 62).zeros(64);
    expect_format(b, "length");
  }
  SECTION("key longer than 1 MiB") {
    builder b;
    b.header(0, 1).u64((1ull << 20) + 1).zeros((1u << 20) + 64);
    expect_format(b, "limit");
  }
  SECTION("huge string value length") {
    builder b;
    b.header(0, 1).str("k").u32(8).u64(~0ull).zeros(16);
    expect_format(b, "key 'k'");
  }
  SECTION("string value longer than the file") {
    builder b;
    b.header(0, 1).str("k").u32(8).u64(1000).raw("short");
    expect_format(b, "truncated");
  }
  SECTION("huge array count") {
    builder b;
    b.header(0, 1).str("k").u32(9).u32(4).u64(1ull << 61).zeros(64);
    const auto e = read_error(b.b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(std::string(e.what()).find("key 'k'") != std::string::npos);
  }
  SECTION("huge string array count") {
    builder b;
    b.header(0, 1).str("k").u32(9).u32(8).u64(1ull << 40).zeros(64);
    expect_format(b, "key 'k'");
  }
  SECTION("huge nested array count") {
    builder b;
    b.header(0, 1).str("k").u32(9).u32(9).u64(~0ull).zeros(64);
    expect_format(b, "key 'k'");
  }
  SECTION("unknown value type") {
    builder b;
    b.header(0, 1).str("k").u32(13).u32(0);
    expect_format(b, "unknown value type 13");
  }
  SECTION("unknown array element type") {
    builder b;
    b.header(0, 1).str("k").u32(9).u32(99).u64(0);
    expect_format(b, "unknown array element type 99");
  }
  SECTION("duplicate key") {
    builder b;
    b.header(0, 2).kv_u32("dup", 1).kv_u32("dup", 2);
    const auto e = read_error(b.b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(std::string(e.what()).find("duplicate key 'dup'") != std::string::npos);
    CHECK(e.offset() == 24u + 8 + 3 + 4 + 4);
  }
  SECTION("empty key") {
    builder b;
    b.header(0, 1).kv_u32("", 1);
    expect_format(b, "empty key");
  }
  SECTION("arrays nested too deep") {
    auto nest = [](int levels) {
      builder b;
      b.header(0, 1).str("deep").u32(9);
      for (int i = 1; i < levels; ++i) b.u32(9).u64(1);  // array of one array of ...
      b.u32(5).u64(1).u32(42);                           // ... of one i32
      return b;
    };
    expect_format(nest(9), "nested deeper");
    const std::string path = tmp_path("hostile_nest8.gguf");
    save(path, nest(8).b);
    gguf::reader r(path);  // 8 levels is the limit, and legal
    value v = r.at("deep");
    for (int i = 1; i < 8; ++i) v = v.element(0);
    CHECK(v.numbers<std::int32_t>()[0] == 42);
  }
  SECTION("alignment 0") {
    builder b;
    b.header(0, 1).kv_u32("general.alignment", 0);
    expect_format(b, "power of two");
  }
  SECTION("alignment 3") {
    builder b;
    b.header(0, 1).kv_u32("general.alignment", 3);
    expect_format(b, "power of two");
  }
  SECTION("alignment of the wrong type") {
    builder b;
    b.header(0, 1).str("general.alignment").u32(10).u64(64);
    expect_format(b, "must be u32");
  }
}

TEST_CASE("gguf hostile: tensor infos and data", "[gguf][hostile]") {
  // One metadata entry, then the tensor infos under test, then an aligned data section.
  auto file = [](const std::function<void(builder&)>& tensors, std::uint64_t n_tensors,
                 std::size_t data_bytes) {
    builder b;
    b.header(n_tensors, 1).kv_u32("k", 1);
    tensors(b);
    b.pad().zeros(data_bytes);
    return b;
  };
  SECTION("5 dims") {
    expect_format(file([](builder& b) { b.tensor("t", {1, 1, 1, 1, 1}, 0, 0); }, 1, 64), "5 dims");
  }
  SECTION("dim 0") {
    expect_format(file([](builder& b) { b.tensor("t", {4, 0}, 0, 0); }, 1, 64), "is 0");
  }
  SECTION("unknown tensor type") {
    expect_format(file([](builder& b) { b.tensor("t", {4}, 4, 0); }, 1, 64),
                  "unknown ggml type id 4");
    expect_format(file([](builder& b) { b.tensor("t", {4}, 1000, 0); }, 1, 64), "tensor 't'");
  }
  SECTION("row not a multiple of the block") {
    expect_format(file([](builder& b) { b.tensor("t", {100}, 12, 0); }, 1, 256), "multiple of 256");
  }
  SECTION("element count overflow") {
    expect_format(file(
                      [](builder& b) {
                        b.tensor("t", {1ull << 32, 1ull << 32, 2}, 0, 0);
                      },
                      1, 64),
                  "overflows");
    expect_format(file([](builder& b) { b.tensor("t", {1ull << 62}, 0, 0); }, 1, 64), "overflows");
  }
  SECTION("misaligned offset") {
    const auto e = read_error(file([](builder& b) { b.tensor("t", {4}, 0, 16); }, 1, 64).b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(std::string(e.what()).find("not a multiple of 32") != std::string::npos);
    CHECK(std::string(e.what()).find("tensor 't'") != std::string::npos);
  }
  SECTION("data past end of file") {
    expect_format(file([](builder& b) { b.tensor("t", {64}, 0, 0); }, 1, 255), "past the end");
    expect_format(file([](builder& b) { b.tensor("t", {4}, 0, 1ull << 63); }, 1, 64), "tensor 't'");
    expect_format(file([](builder& b) { b.tensor("t", {4}, 0, ~0ull - 31); }, 1, 64), "t");
  }
  SECTION("overlapping tensors") {
    const auto e = read_error(file(
                                  [](builder& b) {
                                    b.tensor("a", {16}, 0, 0);  // 64 bytes at 0
                                    b.tensor("b", {8}, 0, 32);  // 32 bytes at 32: overlaps a
                                  },
                                  2, 128)
                                  .b);
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(std::string(e.what()).find("overlaps") != std::string::npos);
  }
  SECTION("out-of-order but disjoint tensors are fine") {
    const std::string path = tmp_path("hostile_reordered.gguf");
    save(path, file(
                   [](builder& b) {
                     b.tensor("a", {8}, 0, 32);
                     b.tensor("b", {8}, 0, 0);
                   },
                   2, 64)
                   .b);
    gguf::reader r(path);
    CHECK(r.find_tensor("a")->offset == 32);
  }
  SECTION("duplicate tensor name") {
    expect_format(file(
                      [](builder& b) {
                        b.tensor("same", {8}, 0, 0);
                        b.tensor("same", {8}, 0, 32);
                      },
                      2, 64),
                  "duplicate tensor name 'same'");
  }
  SECTION("huge tensor name length") {
    expect_format(file([](builder& b) { b.u64(1ull << 50); }, 1, 64), "length");
  }
  SECTION("tensor_data of a foreign tensor_info is refused") {
    const std::string path = tmp_path("hostile_foreign.gguf");
    save(path, file([](builder& b) { b.tensor("t", {8}, 0, 0); }, 1, 32).b);
    gguf::reader r(path);
    gguf::tensor_info fake = r.tensors()[0];
    fake.offset = 1ull << 40;
    CHECK_THROWS_AS(r.tensor_data(fake), qforge::error);
  }
}
