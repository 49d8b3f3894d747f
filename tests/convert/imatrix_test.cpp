// SPDX-License-Identifier: MIT
// Hostile importance-matrix files: each defect is refused with a qforge::error naming the file (and
// the entry or byte where it helps), never read out of bounds or accepted as garbage weights.
#include "qforge/convert/imatrix.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "qforge/format/gguf/writer.hpp"

using namespace qforge;
namespace fs = std::filesystem;

namespace {

const fs::path tmp = fs::path(QFORGE_TEST_TMP) / "imatrix";

// A legacy .dat image built field by field.
struct dat {
  std::vector<char> b;
  dat& i32(std::int32_t v) {
    const char* p = reinterpret_cast<const char*>(&v);
    b.insert(b.end(), p, p + 4);
    return *this;
  }
  dat& str(const std::string& s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  dat& f32s(const std::vector<float>& v) {
    const char* p = reinterpret_cast<const char*>(v.data());
    b.insert(b.end(), p, p + v.size() * 4);
    return *this;
  }
  dat& entry(const std::string& name, std::int32_t ncall, const std::vector<float>& v) {
    return i32(static_cast<std::int32_t>(name.size()))
        .str(name)
        .i32(ncall)
        .i32(static_cast<std::int32_t>(v.size()))
        .f32s(v);
  }
  std::string save(const std::string& stem) const {
    fs::create_directories(tmp);
    const auto p = (tmp / (stem + ".dat")).string();
    std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
    return p;
  }
};

// The error a read throws (kind format expected), as text.
std::string refused(const std::string& path) {
  try {
    (void)convert::read_imatrix(path);
  } catch (const error& e) {
    CHECK(e.which() == error::kind::format);
    CHECK(e.path() == path);
    return e.what();
  }
  FAIL("accepted " << path);
  return {};
}

struct gguf_entry {
  std::string name;
  std::vector<float> sums, counts;
  quant::qtype type = quant::qtype::f32;
  bool drop_counts = false;
};

std::string write_gguf(const std::string& stem, const std::vector<gguf_entry>& es,
                       bool metadata = true) {
  fs::create_directories(tmp);
  format::gguf::writer w;
  if (metadata) {
    w.set("imatrix.datasets", format::gguf::value::string_array({"d.txt"}));
    w.set("imatrix.chunk_count", format::gguf::value::u32(3));
    w.set("imatrix.chunk_size", format::gguf::value::u32(512));
  }
  for (const auto& e : es) {
    const std::uint64_t nmat = e.counts.empty() ? 1 : e.counts.size();
    w.add_tensor(e.name + ".in_sum2", {e.sums.size() / nmat, nmat}, e.type);
    if (!e.drop_counts) w.add_tensor(e.name + ".counts", {1, nmat}, quant::qtype::f32);
  }
  const auto p = (tmp / (stem + ".gguf")).string();
  auto s = w.open(p);
  for (const auto& e : es) {
    if (e.type == quant::qtype::f32) {
      s.write_tensor(e.name + ".in_sum2", std::as_bytes(std::span<const float>(e.sums)));
    } else {
      std::vector<std::byte> z(e.sums.size() * 2);
      s.write_tensor(e.name + ".in_sum2", z);
    }
    if (!e.drop_counts)
      s.write_tensor(e.name + ".counts", std::as_bytes(std::span<const float>(e.counts)));
  }
  s.finish();
  return p;
}

}  // namespace

TEST_CASE("imatrix dat: a well-formed file, with and without its trailer", "[imatrix]") {
  const auto p = dat{}
                     .i32(2)
                     .entry("a.weight", 4, {4, 8})
                     .entry("b.weight", 0, {3})
                     .i32(9)
                     .i32(4)
                     .str("data")
                     .save("good");
  const auto m = convert::read_imatrix(p);
  CHECK(m.legacy);
  CHECK(*m.find("a.weight") == std::vector<float>{1, 2});
  CHECK(*m.find("b.weight") == std::vector<float>{3});  // ncall 0: values as stored
  CHECK(m.chunk_count == 9);
  CHECK(m.datasets == std::vector<std::string>{"data"});
  const auto q = dat{}.i32(1).entry("a.weight", 1, {5}).save("no-trailer");
  CHECK(convert::read_imatrix(q).chunk_count == 0);
}

TEST_CASE("imatrix dat: hostile files are refused", "[imatrix]") {
  CHECK_THAT(refused(dat{}.save("empty")), Catch::Contains("truncated"));
  CHECK_THAT(refused(dat{}.i32(0).save("zero")), Catch::Contains("entry count 0"));
  CHECK_THAT(refused(dat{}.i32(-5).save("negative")), Catch::Contains("entry count -5"));
  CHECK_THAT(refused(dat{}.i32(2).entry("a", 1, {1}).save("missing-entry")),
             Catch::Contains("truncated"));
  CHECK_THAT(refused(dat{}.i32(1).i32(-1).save("neg-name")), Catch::Contains("name of entry 1"));
  CHECK_THAT(refused(dat{}.i32(1).i32(1 << 30).str("abc").save("huge-name")),
             Catch::Contains("left in the file"));
  CHECK_THAT(refused(dat{}.i32(1).i32(3).str("a\0b").i32(1).i32(1).f32s({1}).save("nul")),
             Catch::Contains("NUL"));
  CHECK_THAT(refused(dat{}.i32(1).i32(1).str("a").i32(1).i32(0).save("no-values")),
             Catch::Contains("0 values"));
  CHECK_THAT(refused(dat{}.i32(1).i32(1).str("a").i32(1).i32(1 << 29).f32s({1}).save("huge-vals")),
             Catch::Contains("bytes left"));
  CHECK_THAT(refused(dat{}.i32(2).entry("a", 1, {1}).entry("a", 1, {2}).save("dup")),
             Catch::Contains("twice"));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK_THAT(refused(dat{}.i32(1).entry("a", 1, {1, nan}).save("nan")),
             Catch::Contains("not finite"));
  CHECK_THAT(refused(dat{}.i32(1).entry("a", 1, {1}).i32(3).save("half-trailer")),
             Catch::Contains("dataset name length"));
  CHECK_THAT(refused(dat{}.i32(1).entry("a", 1, {1}).i32(3).i32(2).str("ab!").save("extra")),
             Catch::Contains("unexpected bytes"));
}

TEST_CASE("imatrix gguf: weights are in_sum2 / round(count), 1 for unseen matrices", "[imatrix]") {
  const auto p = write_gguf(
      "good", {{"x.weight", {2, 4, 6, 8, 10, 12}, {1.6f, 0.0f}}, {"y.weight", {3, 6}, {3.0f}}});
  const auto m = convert::read_imatrix(p);
  CHECK_FALSE(m.legacy);
  CHECK(m.chunk_count == 3);
  CHECK(m.chunk_size == 512);
  CHECK(m.datasets == std::vector<std::string>{"d.txt"});
  CHECK(*m.find("x.weight") == std::vector<float>{1, 2, 3, 1, 1, 1});  // 1.6 rounds to 2
  CHECK(*m.find("y.weight") == std::vector<float>{1, 2});
}

TEST_CASE("imatrix gguf: hostile files are refused", "[imatrix]") {
  CHECK_THAT(refused(write_gguf("no-meta", {{"x.weight", {1}, {1}}}, false)),
             Catch::Contains("imatrix.datasets"));
  CHECK_THAT(refused(write_gguf("no-tensors", {})), Catch::Contains("in_sum2"));
  gguf_entry half{"x.weight", {1, 2}, {1}};
  half.drop_counts = true;
  CHECK_THAT(refused(write_gguf("half", {half})), Catch::Contains("no counts"));
  gguf_entry f16{"x.weight", {1, 2}, {1}};
  f16.type = quant::qtype::f16;
  CHECK_THAT(refused(write_gguf("f16", {f16})), Catch::Contains("F32"));
  CHECK_THAT(refused(write_gguf("neg-count", {{"x.weight", {1, 2}, {-1}}})),
             Catch::Contains("count 0"));
  const float inf = std::numeric_limits<float>::infinity();
  CHECK_THAT(refused(write_gguf("inf-sum", {{"x.weight", {1, inf}, {1}}})),
             Catch::Contains("not finite"));
  // Truncated copy of a good file: the GGUF reader's own checks answer.
  const auto good = write_gguf("to-cut", {{"x.weight", {1, 2}, {1}}});
  const auto cut = (tmp / "cut.gguf").string();
  fs::copy_file(good, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  CHECK_THROWS_AS(convert::read_imatrix(cut), error);
  CHECK_THROWS_AS(convert::read_imatrix((tmp / "does-not-exist").string()), error);
}
