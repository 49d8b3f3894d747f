// SPDX-License-Identifier: MIT
// The importance matrix AWQ's calibration pass gives for free: per quantized linear, the sum over
// calibration tokens of each input channel's squared activation, and the token count, written in
// llama.cpp's GGUF imatrix format under the GGUF tensor names (convert/tensor_names.hpp:
// model.layers.3.self_attn.q_proj -> blk.3.attn_q.weight) so `qforge quantize --imatrix` and
// llama-quantize make the K-quants activation-aware with it. The activations are the ones the block
// sees during AWQ's unquantized forward pass (q/k/v: the attention-normed input; o: the attention
// output; gate/up: the MLP-normed input; down: silu(gate) * up), in the original basis, before any
// scale is folded; every calibration token counts, the first of each sequence too, as llama-imatrix
// counts every token of a chunk. The block input is the previous block's unquantized output by
// default, its quantized output with awq_options::propagate_quantized. Sums are kept in double and
// stored as float. q/k/v and gate/up share an input, hence identical entries, as llama-imatrix
// writes them too. The q/k row permutation llama.cpp applies to Llama's q/k weights moves rows
// (outputs) only, so the per-input-channel statistics need none.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "qforge/convert/imatrix.hpp"
#include "qforge/convert/tensor_names.hpp"
#include "qforge/engine/thread_pool.hpp"
#include "qforge/format/hf/config.hpp"

namespace qforge::awq {

class imatrix_accumulator {
 public:
  // Adds rows x [rows, n] as the input of every HF linear named in `linears` (base names without
  // ".weight"). Columns are split across the pool; the sums do not depend on the thread count.
  void add(std::initializer_list<std::string> linears, const float* x, std::size_t rows,
           std::size_t n, engine::thread_pool& pool) {
    std::vector<double> s(n, 0.0);
    pool.parallel_for(n, 64, [&](std::size_t b, std::size_t e) {
      for (std::size_t t = 0; t < rows; ++t) {
        const float* row = x + t * n;
        for (std::size_t c = b; c < e; ++c) s[c] += static_cast<double>(row[c]) * row[c];
      }
    });
    add_sums(linears, s, rows);
  }

  // The same from per-channel sums of squares over `rows` tokens, computed elsewhere (a backend).
  void add_sums(std::initializer_list<std::string> linears, const std::vector<double>& s,
                std::size_t rows) {
    const std::size_t n = s.size();
    for (const auto& name : linears) {
      auto& e = entries_[name];
      if (e.sum2.empty()) e.sum2.assign(n, 0.0);
      QFORGE_ASSERT(e.sum2.size() == n);
      for (std::size_t c = 0; c < n; ++c) e.sum2[c] += s[c];
      e.tokens += rows;
    }
  }

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  // Per GGUF tensor name, the raw statistics llama-imatrix would store.
  [[nodiscard]] std::map<std::string, convert::imatrix_sums, std::less<>> gguf_entries(
      const format::hf::model_config& cfg) const {
    std::map<std::string, convert::imatrix_sums, std::less<>> out;
    for (const auto& [hf, e] : entries_) {
      const auto m = convert::map_tensor_name(hf + ".weight", cfg);
      QFORGE_ASSERT(m.has_value());
      auto& d = out[m->gguf_name];
      d.in_sum2.assign(e.sum2.begin(), e.sum2.end());
      d.counts = {static_cast<float>(e.tokens)};
    }
    return out;
  }

  // Writes the file atomically. chunk_count: calibration sequences; chunk_size: tokens per
  // sequence, rounded (llama-imatrix's tokens per chunk; with both, count / chunk_size gives the
  // chunk count back, as llama-imatrix --in-file computes it).
  void write(const std::string& path, const format::hf::model_config& cfg,
             const std::vector<std::string>& datasets, std::uint32_t chunk_count,
             std::uint32_t chunk_size) const {
    convert::write_imatrix_gguf(path, gguf_entries(cfg), datasets, chunk_count, chunk_size);
  }

 private:
  struct entry {
    std::vector<double> sum2;
    std::uint64_t tokens = 0;
  };
  std::map<std::string, entry> entries_;
};

}  // namespace qforge::awq
