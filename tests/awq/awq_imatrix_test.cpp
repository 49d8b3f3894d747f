// SPDX-License-Identifier: MIT
// `qforge awq --imatrix-out`: the importance matrix of the calibration pass, in llama.cpp's GGUF
// imatrix layout. Read back by our reader (names, metadata, counts), checked against the squared
// activations recomputed independently for block 0's q/k/v input, used by our K-quant quantizer,
// and (when llama-cpp-python is installed) given to llama.cpp's own llama_model_quantize, whose
// bytes must equal ours.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <iterator>

#include "awq/awq_fixture.hpp"
#include "qforge/convert/quantize.hpp"
#include "qforge/engine/forward.hpp"

using namespace qforge;
namespace fs = std::filesystem;

namespace {

// Per process: ctest runs this binary's cases as parallel processes, each making its own folder
// (a shared one was removed by one case while another read it).
const fs::path tmp = fs::path(QFORGE_TEST_TMP) / cat("awq-imatrix-", ::getpid());
const std::string blk_names[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                 "ffn_gate", "ffn_up", "ffn_down"};

struct produced {
  std::string imatrix;
  std::size_t tokens = 0, sequences = 0;
};

const produced& run() {
  static const produced p = [] {
    fs::create_directories(tmp);
    produced out;
    out.imatrix = (tmp / "tiny-llama.imatrix.gguf").string();
    fs::remove(out.imatrix);
    awq::awq_options o;
    o.imatrix_out = out.imatrix;
    o.imatrix_dataset = awq_fixture::calibration;
    const auto r = awq_fixture::quantize(awq_fixture::tiny_llama, (tmp / "awq").string(), o);
    out.tokens = r.tokens;
    out.sequences = awq_fixture::calib(awq_fixture::tiny_llama).sequences.size();
    return out;
  }();
  return p;
}

std::vector<char> slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("awq imatrix: llama.cpp's GGUF layout, read back by our reader", "[awq][imatrix]") {
  const auto& p = run();
  const format::gguf::reader r(p.imatrix);
  CHECK(r.string_at("general.type") == "imatrix");
  REQUIRE(r.tensors().size() == 2 * 7 * 4);
  // Sorted by name, in_sum2 then counts per entry, as llama-imatrix writes them.
  CHECK(r.tensors()[0].name == "blk.0.attn_k.weight.in_sum2");
  CHECK(r.tensors()[1].name == "blk.0.attn_k.weight.counts");
  CHECK(r.tensors()[0].dims == std::vector<std::uint64_t>{256, 1});
  CHECK(r.tensors()[1].dims == std::vector<std::uint64_t>{1, 1});

  const auto im = convert::read_imatrix(p.imatrix);
  CHECK_FALSE(im.legacy);
  CHECK(im.datasets == std::vector<std::string>{awq_fixture::calibration});
  CHECK(im.chunk_count == p.sequences);
  CHECK(im.chunk_size == (p.tokens + p.sequences / 2) / p.sequences);
  REQUIRE(im.weights.size() == 28);
  for (int l = 0; l < 4; ++l)
    for (const auto& n : blk_names) {
      const auto* w = im.find(cat("blk.", l, ".", n, ".weight"));
      REQUIRE(w != nullptr);
      CHECK(w->size() == (n == "attn_output" ? 256u : n == "ffn_down" ? 768u : 256u));
      for (float x : *w) REQUIRE((std::isfinite(x) && x >= 0.0f));
    }
  // Linears sharing an input share their statistics.
  CHECK(*im.find("blk.2.attn_q.weight") == *im.find("blk.2.attn_v.weight"));
  CHECK(*im.find("blk.1.ffn_gate.weight") == *im.find("blk.1.ffn_up.weight"));
  CHECK(*im.find("blk.1.ffn_gate.weight") != *im.find("blk.1.attn_q.weight"));

  // Counts are the calibration token count.
  for (const auto& t : r.tensors())
    if (t.name.ends_with(".counts")) {
      float c = 0;
      std::memcpy(&c, r.tensor_data(t).data(), 4);
      CHECK(c == static_cast<float>(p.tokens));
    }
}

TEST_CASE("awq imatrix: block 0's q/k/v statistics recomputed from the checkpoint",
          "[awq][imatrix]") {
  const auto& p = run();
  const auto im = convert::read_imatrix(p.imatrix);
  const format::safetensors::checkpoint ck(awq_fixture::tiny_llama);
  const auto emb = ck.view("model.embed_tokens.weight").to_f32();
  auto norm = ck.view("model.layers.0.input_layernorm.weight").to_f32();
  const std::size_t H = 256;
  std::vector<double> want(H, 0.0);
  std::vector<float> y(H);
  std::size_t n = 0;
  for (const auto& seq : awq_fixture::calib(awq_fixture::tiny_llama).sequences)
    for (auto id : seq) {
      engine::detail::rms_norm(emb.data() + static_cast<std::size_t>(id) * H, norm.data(), y.data(),
                               H, 1e-5f);
      for (std::size_t c = 0; c < H; ++c) want[c] += static_cast<double>(y[c]) * y[c];
      ++n;
    }
  REQUIRE(n == p.tokens);
  const auto& got = *im.find("blk.0.attn_q.weight");
  for (std::size_t c = 0; c < H; ++c) {
    INFO("channel " << c);
    CHECK(got[c] == Approx(want[c] / static_cast<double>(n)).epsilon(1e-5));
  }
}

TEST_CASE("awq imatrix: drives qforge quantize, and llama.cpp's quantizer gives the same bytes",
          "[awq][imatrix][llama]") {
  const auto& p = run();
  const auto f16 = tmp / "tiny-llama-f16.gguf";
  convert::conversion_options co;
  co.type = quant::qtype::f16;
  convert::convert_to_gguf(awq_fixture::tiny_llama, f16.string(), co);
  const auto im = convert::read_imatrix(p.imatrix);
  convert::quantize_options opt;
  opt.ftype = quant::file_type::mostly_q4_k_m;
  opt.imatrix = &im;
  const auto with = tmp / "q4_k_m-imatrix.gguf", without = tmp / "q4_k_m.gguf";
  const auto r = convert::quantize_gguf(f16.string(), with.string(), opt);
  std::size_t used = 0;
  for (const auto& t : r.tensors) used += t.imatrix_used ? 1 : 0;
  CHECK(used == 28);
  opt.imatrix = nullptr;
  convert::quantize_gguf(f16.string(), without.string(), opt);
  CHECK(slurp(with) != slurp(without));  // the weights changed the search

  if (std::system("python3 -c 'import llama_cpp, gguf, numpy' >/dev/null 2>&1") != 0) {
    WARN("not compared with llama.cpp: python3 with llama_cpp, gguf and numpy is not available");
    return;
  }
  const auto script =
      fs::path(__FILE__).parent_path().parent_path() / "convert" / "llama_quantize.py";
  const auto theirs = tmp / "q4_k_m-imatrix-llama.gguf";
  const std::string cmd =
      cat("python3 '", script.string(), "' '", f16.string(), "' --imatrix '", p.imatrix, "' 15:'",
          theirs.string(), "' 2>'", (tmp / "llama.log").string(), "'");
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
  CHECK(slurp(theirs) == slurp(with));
}
