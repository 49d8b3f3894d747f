// SPDX-License-Identifier: MIT
// GGUF writer -> reader round trips of every value type and several tensor types, streaming-order
// errors, and interop both ways with the reference Python implementation (gguf-py's GGUFReader /
// GGUFWriter, when python3 and the `gguf` package are installed).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/reader.hpp"
#include "qforge/format/gguf/writer.hpp"

using namespace qforge;
using namespace qforge::format;
using gguf::value;
using gguf::value_type;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) {
  const std::string p = std::string(QFORGE_TEST_TMP) + "/" + name;
  fs::remove(p);
  fs::remove(atomic_file::temp_path_for(p));
  return p;
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

// Every scalar type at its edges, strings and arrays of every kind, in a fixed order.
std::vector<std::pair<std::string, value>> all_values(bool nested = true) {
  std::vector<std::pair<std::string, value>> kv;
  kv.emplace_back("t.u8", value::u8(255));
  kv.emplace_back("t.i8", value::i8(-128));
  kv.emplace_back("t.u16", value::u16(65535));
  kv.emplace_back("t.i16", value::i16(-32768));
  kv.emplace_back("t.u32", value::u32(4000000000u));
  kv.emplace_back("t.i32", value::i32(std::numeric_limits<std::int32_t>::min()));
  kv.emplace_back("t.f32", value::f32(1e-5f));
  kv.emplace_back("t.f32_negzero", value::f32(-0.0f));
  kv.emplace_back("t.f32_nan", value::f32(std::numeric_limits<float>::quiet_NaN()));
  kv.emplace_back("t.bool_true", value::boolean(true));
  kv.emplace_back("t.bool_false", value::boolean(false));
  kv.emplace_back("t.string", value::string("h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c"));
  kv.emplace_back("t.string_empty", value::string(""));
  kv.emplace_back("t.u64", value::u64(std::numeric_limits<std::uint64_t>::max()));
  kv.emplace_back("t.i64", value::i64(std::numeric_limits<std::int64_t>::min()));
  kv.emplace_back("t.f64", value::f64(3.141592653589793));
  kv.emplace_back("t.arr_u8", value::numeric_array(std::vector<std::uint8_t>{0, 1, 255}));
  kv.emplace_back("t.arr_i8", value::numeric_array(std::vector<std::int8_t>{-128, 0, 127}));
  kv.emplace_back("t.arr_u16", value::numeric_array(std::vector<std::uint16_t>{1, 65535}));
  kv.emplace_back("t.arr_i16", value::numeric_array(std::vector<std::int16_t>{-2, 2}));
  kv.emplace_back("t.arr_u32", value::u32_array({7, 8, 9}));
  kv.emplace_back("t.arr_i32", value::i32_array({-1, 0, 1, 2147483647}));
  kv.emplace_back("t.arr_f32", value::f32_array({0.5f, -1.25f, 1e30f}));
  kv.emplace_back("t.arr_bool", value::bool_array({true, false, true}));
  kv.emplace_back("t.arr_str", value::string_array({"a", "", "b c", "\xc4\xa0t"}));
  kv.emplace_back("t.arr_u64", value::numeric_array(std::vector<std::uint64_t>{1ull << 63}));
  kv.emplace_back("t.arr_i64", value::numeric_array(std::vector<std::int64_t>{-5, 5}));
  kv.emplace_back("t.arr_f64", value::numeric_array(std::vector<double>{-0.125, 1e300}));
  kv.emplace_back("t.arr_empty_i32", value::i32_array({}));
  kv.emplace_back("t.arr_empty_str", value::string_array({}));
  kv.emplace_back("t.arr_generic_u16",
                  value::array(value_type::u16, {value::u16(3), value::u16(4)}));
  if (!nested) return kv;  // llama.cpp's loader refuses arrays of arrays
  kv.emplace_back("t.arr_nested",
                  value::array(value_type::array, {value::i32_array({1, 2}), value::i32_array({3}),
                                                   value::i32_array({})}));
  kv.emplace_back(
      "t.arr_nested_str",
      value::array(value_type::array,
                   {value::array(value_type::array, {value::string_array({"x", "yz"})})}));
  return kv;
}

struct planned {
  std::string name;
  std::vector<std::uint64_t> dims;
  quant::qtype type;
  std::uint64_t bytes;
};
const std::vector<planned> tensors_plan = {
    {"tok.f32", {8, 3}, quant::qtype::f32, 8 * 3 * 4},
    {"tok.f16", {17}, quant::qtype::f16, 34},
    {"blk.0.q8_0", {64, 2}, quant::qtype::q8_0, 2 * 2 * 34},
    {"blk.0.q4_K", {256, 2, 3}, quant::qtype::q4_k, 6 * 144},
    {"blk.0.q6_K", {512}, quant::qtype::q6_k, 2 * 210},
};

void write_sample(const std::string& path, std::uint32_t alignment, bool nested = true) {
  gguf::writer w;
  w.set(gguf::keys::general_architecture, value::string("llama"));
  if (alignment != 32) w.set(gguf::keys::general_alignment, value::u32(alignment));
  for (auto& [k, v] : all_values(nested)) w.set(k, v);
  for (const auto& t : tensors_plan) w.add_tensor(t.name, t.dims, t.type);
  for (const auto& t : tensors_plan) REQUIRE(w.tensor_bytes(t.name) == t.bytes);
  auto s = w.open(path);
  unsigned seed = 0;
  for (const auto& t : tensors_plan) s.write_tensor(t.name, pattern(t.bytes, ++seed));
  s.finish();
}

bool python_gguf_available() {
  return std::system("python3 -c 'import gguf' >/dev/null 2>&1") == 0;
}

int run_python(const std::string& script_path, const std::string& script, const std::string& arg) {
  {
    std::ofstream f(script_path);
    f << script;
  }
  return std::system(("python3 '" + script_path + "' '" + arg + "'").c_str());
}

}  // namespace

TEST_CASE("gguf: every value type and tensor type round-trips", "[gguf]") {
  for (std::uint32_t alignment : {32u, 64u}) {
    INFO("alignment " << alignment);
    const std::string path = tmp_path("roundtrip_" + std::to_string(alignment) + ".gguf");
    write_sample(path, alignment);
    REQUIRE(fs::exists(path));
    CHECK_FALSE(fs::exists(atomic_file::temp_path_for(path)));

    gguf::reader r(path);
    CHECK(r.path() == path);
    CHECK(r.version() == 3);
    CHECK(r.alignment() == alignment);
    CHECK(r.data_offset() % alignment == 0);

    const auto want = all_values();
    const std::size_t extra = alignment != 32 ? 2 : 1;  // architecture (+ alignment) come first
    REQUIRE(r.metadata().size() == want.size() + extra);
    CHECK(r.metadata()[0].first == "general.architecture");
    for (std::size_t i = 0; i < want.size(); ++i) {
      INFO(want[i].first << " = " << gguf::to_string(want[i].second));
      CHECK(r.metadata()[extra + i].first == want[i].first);
      CHECK(r.metadata()[extra + i].second == want[i].second);
      REQUIRE(r.find(want[i].first) != nullptr);
      CHECK(*r.find(want[i].first) == want[i].second);
    }
    CHECK(r.at("t.u32").as_u32() == 4000000000u);
    CHECK(r.at("t.i8").as_i8() == -128);
    CHECK(std::signbit(r.at("t.f32_negzero").as_f32()));
    CHECK(std::isnan(r.at("t.f32_nan").as_f32()));
    CHECK(r.at("t.f64").as_f64() == 3.141592653589793);
    CHECK(r.at("t.string_empty").as_string().empty());
    CHECK(r.at("t.arr_str").strings() == std::vector<std::string>{"a", "", "b c", "\xc4\xa0t"});
    CHECK(r.at("t.arr_empty_i32").array_size() == 0);
    CHECK(r.at("t.arr_empty_i32").array_type() == value_type::i32);
    CHECK(r.at("t.arr_bool").bools() == std::vector<bool>{true, false, true});
    const auto& nested = r.at("t.arr_nested").nested();
    REQUIRE(nested.size() == 3);
    CHECK(nested[0].numbers<std::int32_t>()[1] == 2);
    CHECK(nested[2].array_size() == 0);
    CHECK(r.at("t.arr_nested_str").element(0).element(0).strings()[1] == "yz");
    CHECK(r.find("missing") == nullptr);
    CHECK_THROWS_AS(r.at("missing"), qforge::error);

    REQUIRE(r.tensors().size() == tensors_plan.size());
    std::uint64_t prev_end = 0;
    unsigned seed = 0;
    for (std::size_t i = 0; i < tensors_plan.size(); ++i) {
      const auto& t = r.tensors()[i];
      const auto& p = tensors_plan[i];
      INFO(p.name);
      CHECK(t.name == p.name);
      CHECK(t.dims == p.dims);
      CHECK(t.type == p.type);
      CHECK(t.size_bytes == p.bytes);
      CHECK(t.offset % alignment == 0);
      CHECK(t.offset >= prev_end);
      CHECK(t.offset - prev_end < alignment);  // packed: only padding between tensors
      prev_end = t.offset + t.size_bytes;
      CHECK(r.find_tensor(p.name) == &t);
      const auto data = r.tensor_data(t);
      const auto expect = pattern(p.bytes, ++seed);
      REQUIRE(data.size() == expect.size());
      CHECK(std::equal(data.begin(), data.end(), expect.begin()));
    }
    CHECK(r.find_tensor("nope") == nullptr);
    // The file ends on an aligned boundary after the last tensor's padding, as ggml writes it.
    CHECK(fs::file_size(path) % alignment == 0);
    CHECK(fs::file_size(path) ==
          r.data_offset() + ((prev_end + alignment - 1) / alignment) * alignment);
  }
}

TEST_CASE("gguf: value accessors are strict, as_uint/as_int accept any integer width", "[gguf]") {
  const value v = value::i32(7);
  CHECK(v.as_i32() == 7);
  try {
    (void)v.as_u32();
    FAIL("as_u32 on an i32 did not throw");
  } catch (const qforge::error& e) {
    CHECK(e.which() == qforge::error::kind::format);
    CHECK(std::string(e.what()).find("i32") != std::string::npos);
    CHECK(std::string(e.what()).find("u32") != std::string::npos);
  }
  CHECK(value::u8(200).as_uint() == 200u);
  CHECK(value::i64(5).as_uint() == 5u);
  CHECK_FALSE(value::i16(-1).as_uint().has_value());
  CHECK(value::i16(-1).as_int() == -1);
  CHECK_FALSE(value::u64(~0ull).as_int().has_value());
  CHECK_FALSE(value::f32(1.0f).as_uint().has_value());
  CHECK_FALSE(value::boolean(true).as_uint().has_value());
  CHECK(value::f32(0.5f).as_float() == 0.5);
  CHECK_THROWS_AS(value::u32(1).strings(), qforge::error);
  CHECK_THROWS_AS(value::i32_array({1}).strings(), qforge::error);
  CHECK_THROWS_AS(value::i32_array({1}).numbers<std::uint32_t>(), qforge::error);
  CHECK_THROWS_AS(value::i32_array({1}).element(1), qforge::error);
  CHECK(value::i32_array({4, -5}).element(1) == value::i32(-5));
  CHECK_THROWS_AS(value::array(value_type::u32, {value::u32(1), value::i32(2)}), qforge::error);
  CHECK(value::u32(1) != value::i32(1));
  CHECK(gguf::keys::arch_key("qwen3", gguf::keys::rope_freq_base) == "qwen3.rope.freq_base");
  CHECK(gguf::arch_key("llama", gguf::keys::attention_head_count_kv) ==
        "llama.attention.head_count_kv");
}

TEST_CASE("gguf: set() replaces in place, alignment relayouts declared tensors", "[gguf]") {
  gguf::writer w;
  w.set("a", value::u32(1));
  w.set("b", value::u32(2));
  w.set("a", value::string("x"));
  REQUIRE(w.metadata().size() == 2);
  CHECK(w.metadata()[0].first == "a");
  CHECK(w.metadata()[0].second.as_string() == "x");
  w.add_tensor("t0", {3}, quant::qtype::f32);  // 12 bytes
  w.add_tensor("t1", {3}, quant::qtype::f32);
  CHECK(w.tensors()[1].offset == 32);
  w.set(gguf::keys::general_alignment, value::u32(128));
  CHECK(w.tensors()[1].offset == 128);
  CHECK_THROWS_AS(w.set(gguf::keys::general_alignment, value::u32(48)), qforge::error);
  CHECK_THROWS_AS(w.set(gguf::keys::general_alignment, value::u64(64)), qforge::error);
  CHECK_THROWS_AS(w.set("", value::u32(1)), qforge::error);

  const std::string path = tmp_path("relayout.gguf");
  auto s = w.open(path);
  s.write_tensor("t0", pattern(12, 1));
  s.write_tensor("t1", pattern(12, 2));
  s.finish();
  gguf::reader r(path);
  CHECK(r.alignment() == 128);
  CHECK(r.tensors()[1].offset == 128);
  CHECK(r.at("a").as_string() == "x");
}

TEST_CASE("gguf: add_tensor validates shapes and names", "[gguf]") {
  gguf::writer w;
  auto is_argument = [](auto&& f) {
    try {
      f();
    } catch (const qforge::error& e) {
      return e.which() == qforge::error::kind::argument;
    }
    return false;
  };
  CHECK(is_argument([&] { w.add_tensor("q", {100, 2}, quant::qtype::q4_k); }));
  CHECK(is_argument([&] { w.add_tensor("q", {48}, quant::qtype::q8_0); }));
  CHECK(is_argument([&] { w.add_tensor("z", {4, 0}, quant::qtype::f32); }));
  CHECK(is_argument([&] { w.add_tensor("d", {1, 1, 1, 1, 1}, quant::qtype::f32); }));
  CHECK(is_argument([&] { w.add_tensor("e", {}, quant::qtype::f32); }));
  CHECK(is_argument([&] { w.add_tensor(std::string(64, 'n'), {4}, quant::qtype::f32); }));
  CHECK(is_argument([&] { w.add_tensor("u", {4}, static_cast<quant::qtype>(4)); }));
  CHECK(is_argument([&] { w.add_tensor("o", {1ull << 40, 1ull << 40}, quant::qtype::f32); }));
  w.add_tensor(std::string(63, 'n'), {4}, quant::qtype::f32);
  w.add_tensor("ok", {256, 3}, quant::qtype::q4_k);
  CHECK(w.tensor_bytes("ok") == 3 * 144);
  CHECK(is_argument([&] { w.add_tensor("ok", {4}, quant::qtype::f32); }));
  CHECK(is_argument([&] { (void)w.tensor_bytes("missing"); }));
}

TEST_CASE("gguf: piecewise streaming writes the same bytes as whole tensors", "[gguf]") {
  gguf::writer w;
  w.set("k", value::u32(1));
  w.add_tensor("a", {64, 5}, quant::qtype::q8_0);
  w.add_tensor("b", {10}, quant::qtype::f16);
  const auto a = pattern(w.tensor_bytes("a"), 3);
  const auto b = pattern(w.tensor_bytes("b"), 4);
  const std::string whole = tmp_path("whole.gguf");
  const std::string pieces = tmp_path("pieces.gguf");
  {
    auto s = w.open(whole);
    s.write_tensor("a", a);
    s.write_tensor("b", b);
    s.finish();
  }
  {
    auto s = w.open(pieces);
    s.begin_tensor("a");
    for (std::size_t i = 0; i < a.size(); i += 7)
      s.append(std::span<const std::byte>(a).subspan(i, std::min<std::size_t>(7, a.size() - i)));
    s.end_tensor();
    s.begin_tensor("b");
    s.append(b);
    s.end_tensor();
    s.finish();
  }
  std::ifstream f1(whole, std::ios::binary), f2(pieces, std::ios::binary);
  const std::string s1((std::istreambuf_iterator<char>(f1)), {});
  const std::string s2((std::istreambuf_iterator<char>(f2)), {});
  CHECK(!s1.empty());
  CHECK(s1 == s2);
}

TEST_CASE("gguf: stream misuse throws and leaves no file behind", "[gguf]") {
  gguf::writer w;
  w.set("k", value::u32(1));
  w.add_tensor("first", {8}, quant::qtype::f32);
  w.add_tensor("second", {32}, quant::qtype::q8_0);
  const auto first = pattern(32, 1);
  const auto second = pattern(34, 2);

  auto expect_nothing = [](const std::string& path, auto&& body) {
    try {
      body();
      FAIL("no error");
    } catch (const qforge::error& e) {
      CHECK(e.which() == qforge::error::kind::argument);
      CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    CHECK_FALSE(fs::exists(path));
    CHECK_FALSE(fs::exists(atomic_file::temp_path_for(path)));
  };

  SECTION("out of order") {
    const std::string path = tmp_path("err_order.gguf");
    auto s = w.open(path);
    CHECK(fs::exists(atomic_file::temp_path_for(path)));  // header already written
    expect_nothing(path, [&] { s.write_tensor("second", second); });
    // The stream is dead after an error: finish() cannot commit a half-written file.
    CHECK_THROWS_AS(s.finish(), qforge::error);
    CHECK_FALSE(fs::exists(path));
  }
  SECTION("short tensor") {
    const std::string path = tmp_path("err_short.gguf");
    auto s = w.open(path);
    expect_nothing(path, [&] { s.write_tensor("first", std::span(first).first(31)); });
  }
  SECTION("long tensor") {
    const std::string path = tmp_path("err_long.gguf");
    auto s = w.open(path);
    s.write_tensor("first", first);
    expect_nothing(path, [&] { s.write_tensor("second", pattern(35, 2)); });
  }
  SECTION("missing tensor at finish") {
    const std::string path = tmp_path("err_missing.gguf");
    auto s = w.open(path);
    s.write_tensor("first", first);
    expect_nothing(path, [&] { s.finish(); });
  }
  SECTION("unknown tensor / extra tensor") {
    const std::string path = tmp_path("err_extra.gguf");
    auto s = w.open(path);
    expect_nothing(path, [&] { s.write_tensor("third", first); });
  }
  SECTION("dropped without finish") {
    const std::string path = tmp_path("err_dropped.gguf");
    {
      auto s = w.open(path);
      s.write_tensor("first", first);
    }
    CHECK_FALSE(fs::exists(path));
    CHECK_FALSE(fs::exists(atomic_file::temp_path_for(path)));
  }
  SECTION("append outside a tensor, finish twice") {
    const std::string path = tmp_path("err_append.gguf");
    auto s = w.open(path);
    s.write_tensor("first", first);
    s.write_tensor("second", second);
    s.finish();
    CHECK(fs::exists(path));
    CHECK_THROWS_AS(s.finish(), qforge::error);
    CHECK_THROWS_AS(s.append(first), qforge::error);
    CHECK(fs::exists(path));  // a finished file stays
  }
}

// gguf-py's reader must see exactly what we wrote: keys in order, value types, values, shapes.
static const char* verify_script = R"PY(
import sys, math
import numpy as np
import gguf
from gguf import GGUFValueType as T
r = gguf.GGUFReader(sys.argv[1])
f = r.fields
def val(k): return f[k].contents()
def typ(k): return [int(t) for t in f[k].types]
exp_types = {
 "t.u8": [0], "t.i8": [1], "t.u16": [2], "t.i16": [3], "t.u32": [4], "t.i32": [5], "t.f32": [6],
 "t.bool_true": [7], "t.string": [8], "t.u64": [10], "t.i64": [11], "t.f64": [12],
 "t.arr_u8": [9, 0], "t.arr_i8": [9, 1], "t.arr_u16": [9, 2], "t.arr_i16": [9, 3],
 "t.arr_u32": [9, 4], "t.arr_i32": [9, 5], "t.arr_f32": [9, 6], "t.arr_bool": [9, 7],
 "t.arr_str": [9, 8], "t.arr_u64": [9, 10], "t.arr_i64": [9, 11], "t.arr_f64": [9, 12],
 "t.arr_nested": [9, 9, 5],
}
for k, t in exp_types.items():
    assert typ(k) == t, (k, typ(k), t)
assert val("general.architecture") == "llama"
assert int(val("general.alignment")) == 64
assert val("t.u8") == 255 and val("t.i8") == -128 and val("t.u16") == 65535 and val("t.i16") == -32768
assert val("t.u32") == 4000000000 and val("t.i32") == -2**31
assert abs(val("t.f32") - 1e-5) < 1e-12 and math.isnan(val("t.f32_nan"))
assert val("t.bool_true") is True and val("t.bool_false") is False
assert val("t.string") == "h\u00e9llo \u4e16\u754c" and val("t.string_empty") == ""
assert val("t.u64") == 2**64 - 1 and val("t.i64") == -2**63 and val("t.f64") == 3.141592653589793
assert val("t.arr_u8") == [0, 1, 255] and val("t.arr_i8") == [-128, 0, 127]
assert val("t.arr_i32") == [-1, 0, 1, 2147483647] and val("t.arr_f32") == [0.5, -1.25, np.float32(1e30)]
assert val("t.arr_bool") == [True, False, True]
assert val("t.arr_str") == ["a", "", "b c", "\u0120t"]
assert val("t.arr_u64") == [2**63] and val("t.arr_f64") == [-0.125, 1e300]
assert val("t.arr_empty_i32") == [] and val("t.arr_empty_str") == []
assert val("t.arr_nested") == [1, 2, 3]   # gguf-py flattens nested arrays
keys = [k for k in f.keys() if not k.startswith("GGUF.")]
assert keys[0] == "general.architecture" and keys[1] == "general.alignment" and keys[2] == "t.u8", keys[:3]
exp = [("tok.f32", [8, 3], 0, 96), ("tok.f16", [17], 1, 34), ("blk.0.q8_0", [64, 2], 8, 136),
       ("blk.0.q4_K", [256, 2, 3], 12, 864), ("blk.0.q6_K", [512], 14, 420)]
assert len(r.tensors) == len(exp)
for t, (name, shape, ty, nbytes) in zip(r.tensors, exp):
    assert t.name == name, (t.name, name)
    assert [int(x) for x in t.shape] == shape, (name, t.shape)
    assert int(t.tensor_type) == ty and int(t.n_bytes) == nbytes, (name, t.tensor_type, t.n_bytes)
    assert t.data_offset % 64 == 0
print("gguf-py read OK")
)PY";

TEST_CASE("gguf: gguf-py reads what we write", "[gguf][interop]") {
  if (!python_gguf_available()) {
    WARN("not run: python3 with the gguf package is not available");
    return;
  }
  const std::string path = tmp_path("for_python.gguf");
  write_sample(path, 64);
  CHECK(run_python(tmp_path("verify_gguf.py"), verify_script, path) == 0);
}

// And the reverse: a file from gguf-py's GGUFWriter through our reader.
static const char* write_script = R"PY(
import sys
import numpy as np
import gguf
w = gguf.GGUFWriter(sys.argv[1], arch="qwen3")
w.add_custom_alignment(64)
w.add_uint32("qwen3.block_count", 4)
w.add_float32("qwen3.attention.layer_norm_rms_epsilon", 1e-6)
w.add_bool("tokenizer.ggml.add_bos_token", False)
w.add_string("tokenizer.chat_template", "{{ x }}")
w.add_array("tokenizer.ggml.tokens", ["a", "b", ""])
w.add_array("tokenizer.ggml.scores", [0.5, -1.0])
w.add_array("tokenizer.ggml.token_type", [1, 3, 6])
w.add_uint64("x.u64", 2**40)
w.add_int8("x.i8", -3)
w.add_float64("x.f64", 0.25)
w.add_tensor("token_embd.weight", np.arange(24, dtype=np.float32).reshape(3, 8))
w.add_tensor("blk.0.ffn.weight", np.arange(64, dtype=np.float16).reshape(2, 32))
q8 = np.arange(2 * 2 * 34, dtype=np.uint8).reshape(2, 68)
w.add_tensor("blk.0.q8", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
)PY";

TEST_CASE("gguf: we read what gguf-py writes", "[gguf][interop]") {
  if (!python_gguf_available()) {
    WARN("not run: python3 with the gguf package is not available");
    return;
  }
  const std::string path = tmp_path("from_python.gguf");
  REQUIRE(run_python(tmp_path("write_gguf.py"), write_script, path) == 0);
  gguf::reader r(path);
  CHECK(r.version() == 3);
  CHECK(r.alignment() == 64);
  CHECK(r.string_at(gguf::keys::general_architecture) == "qwen3");
  CHECK(r.uint_at(gguf::arch_key("qwen3", gguf::keys::block_count)) == 4);
  CHECK(r.at(gguf::arch_key("qwen3", gguf::keys::attention_layer_norm_rms_epsilon)).as_f32() ==
        1e-6f);
  CHECK(r.at(gguf::keys::tokenizer_add_bos_token).as_bool() == false);
  CHECK(r.at(gguf::keys::tokenizer_chat_template).as_string() == "{{ x }}");
  CHECK(r.at(gguf::keys::tokenizer_tokens).strings() == std::vector<std::string>{"a", "b", ""});
  const auto scores = r.at(gguf::keys::tokenizer_scores).numbers<float>();
  REQUIRE(scores.size() == 2);
  CHECK(scores[1] == -1.0f);
  const auto& types = r.at(gguf::keys::tokenizer_token_type);
  REQUIRE(types.array_size() == 3);
  CHECK(types.element(2).as_int() == 6);  // gguf-py picks the integer width itself
  CHECK(r.at("x.u64").as_u64() == (1ull << 40));
  CHECK(r.at("x.i8").as_i8() == -3);
  CHECK(r.at("x.f64").as_f64() == 0.25);

  REQUIRE(r.tensors().size() == 3);
  const auto* e = r.find_tensor("token_embd.weight");
  REQUIRE(e != nullptr);
  CHECK(e->dims == std::vector<std::uint64_t>{8, 3});  // numpy (3, 8) -> ggml ne = {8, 3}
  CHECK(e->type == quant::qtype::f32);
  const auto d = r.tensor_data(*e);
  REQUIRE(d.size() == 96);
  float f5 = 0;
  std::memcpy(&f5, d.data() + 5 * 4, 4);
  CHECK(f5 == 5.0f);
  const auto* h = r.find_tensor("blk.0.ffn.weight");
  REQUIRE(h != nullptr);
  CHECK(h->type == quant::qtype::f16);
  CHECK(h->dims == std::vector<std::uint64_t>{32, 2});
  const auto* q = r.find_tensor("blk.0.q8");
  REQUIRE(q != nullptr);
  CHECK(q->type == quant::qtype::q8_0);
  CHECK(q->dims == std::vector<std::uint64_t>{64, 2});
  CHECK(q->size_bytes == 136);
  CHECK(std::to_integer<int>(r.tensor_data(*q)[135]) == 135);
}

// ggml's own parser (gguf_init_from_file in the libggml-base that llama-cpp-python ships), which is
// stricter than gguf-py: tensors packed in order, data blob fully present. It reports its view of
// the layout; it must agree with ours.
static const char* ggml_script = R"PY(
import sys, os, ctypes
import llama_cpp
lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
class Params(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.POINTER(ctypes.c_void_p))]
lib.gguf_init_from_file.restype = ctypes.c_void_p
lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, Params]
for name, res in [("gguf_get_n_tensors", ctypes.c_int64), ("gguf_get_n_kv", ctypes.c_int64),
                  ("gguf_get_data_offset", ctypes.c_size_t), ("gguf_get_alignment", ctypes.c_size_t),
                  ("gguf_get_version", ctypes.c_uint32)]:
    getattr(lib, name).restype = res
    getattr(lib, name).argtypes = [ctypes.c_void_p]
lib.gguf_get_tensor_name.restype = ctypes.c_char_p
lib.gguf_get_tensor_name.argtypes = [ctypes.c_void_p, ctypes.c_int64]
lib.gguf_get_tensor_offset.restype = ctypes.c_size_t
lib.gguf_get_tensor_offset.argtypes = [ctypes.c_void_p, ctypes.c_int64]
lib.gguf_get_tensor_type.restype = ctypes.c_int
lib.gguf_get_tensor_type.argtypes = [ctypes.c_void_p, ctypes.c_int64]
ggml_ctx = ctypes.c_void_p()
ctx = lib.gguf_init_from_file(sys.argv[1].encode(), Params(False, ctypes.pointer(ggml_ctx)))
if not ctx:
    sys.exit("ggml refused the file")
with open(sys.argv[1] + ".ggml.txt", "w") as out:
    print(lib.gguf_get_version(ctx), lib.gguf_get_n_kv(ctx), lib.gguf_get_alignment(ctx),
          lib.gguf_get_data_offset(ctx), lib.gguf_get_n_tensors(ctx), file=out)
    for i in range(lib.gguf_get_n_tensors(ctx)):
        print(lib.gguf_get_tensor_name(ctx, i).decode(), lib.gguf_get_tensor_offset(ctx, i),
              lib.gguf_get_tensor_type(ctx, i), file=out)
)PY";

TEST_CASE("gguf: ggml's own gguf parser accepts what we write", "[gguf][interop]") {
  if (std::system("python3 -c 'import llama_cpp' >/dev/null 2>&1") != 0) {
    WARN("not run: python3 with llama_cpp (llama-cpp-python) is not available");
    return;
  }
  for (std::uint32_t alignment : {32u, 64u}) {
    INFO("alignment " << alignment);
    const std::string path = tmp_path("for_ggml_" + std::to_string(alignment) + ".gguf");
    write_sample(path, alignment, /*nested=*/false);
    fs::remove(path + ".ggml.txt");
    REQUIRE(run_python(tmp_path("ggml_gguf.py"), ggml_script, path) == 0);
    gguf::reader r(path);
    std::ifstream in(path + ".ggml.txt");
    std::uint64_t version = 0, n_kv = 0, align = 0, data_offset = 0, n_tensors = 0;
    in >> version >> n_kv >> align >> data_offset >> n_tensors;
    CHECK(version == 3);
    CHECK(n_kv == r.metadata().size());
    CHECK(align == alignment);
    CHECK(data_offset == r.data_offset());
    REQUIRE(n_tensors == r.tensors().size());
    for (const auto& t : r.tensors()) {
      std::string name;
      std::uint64_t offset = 0, type = 0;
      in >> name >> offset >> type;
      CHECK(name == t.name);
      CHECK(offset == t.offset);
      CHECK(type == static_cast<std::uint64_t>(t.type));
    }
  }
}
