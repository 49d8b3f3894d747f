// SPDX-License-Identifier: MIT
// Linears of an AWQ checkpoint (AutoAWQ GEMM layout, quant/awq/pack.hpp) as engine matrices: the
// loader asks for "<base>.weight", finds "<base>.qweight" / ".qzeros" / ".scales" instead, checks
// their dtypes and shapes against the [rows, cols] the config implies, and returns a matrix whose
// `awq` view points into the memory map, so matmul() runs the W4A16 path and the checkpoint is
// never expanded. The group size comes from the tensors' shapes (cols / scales rows), which is
// what transformers and vLLM trust too; config.json's quantization_config is not needed here.
#pragma once
#include <string>

#include "qforge/core/error.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/format/safetensors/reader.hpp"

namespace qforge::engine {

// Whether the linear `base` (e.g. "model.layers.0.mlp.up_proj") is stored quantized.
inline bool is_awq_linear(const format::safetensors::checkpoint& c, const std::string& base) {
  return c.contains(base + ".qweight");
}

// Throws error::kind::format naming the tensor for a missing tensor, a dtype other than I32 / F16,
// or a shape that does not match rows (outputs) x cols (inputs).
inline matrix awq_matrix(const format::safetensors::checkpoint& c, const std::string& base,
                         std::size_t rows, std::size_t cols) {
  using format::safetensors::dtype;
  const auto qw = c.view(base + ".qweight"), qz = c.view(base + ".qzeros"),
             sc = c.view(base + ".scales");
  const auto fail = [&](const std::string& what) {
    throw error(error::kind::format, c.path(), cat("AWQ linear '", base, "': ", what));
  };
  const auto shape2 = [&](const format::safetensors::tensor_view& v, dtype t, std::uint64_t r,
                          std::uint64_t k) {
    if (v.type() != t) fail(cat(v.name(), " has dtype ", to_string(v.type()), ", expected ", to_string(t)));
    const auto s = v.shape();
    if (s.size() != 2 || s[0] != r || s[1] != k)
      fail(cat(v.name(), " has shape ", format::safetensors::detail::shape_string(s), ", expected [",
               r, ", ", k, "]"));
  };
  if (rows % 8 != 0) fail(cat(rows, " outputs are not a multiple of 8"));
  if (sc.shape().size() != 2 || sc.shape()[0] == 0 || cols % sc.shape()[0] != 0)
    fail(cat("scales shape ", format::safetensors::detail::shape_string(sc.shape()),
             " does not divide ", cols, " inputs into groups"));
  const std::size_t groups = sc.shape()[0];
  shape2(qw, dtype::i32, cols, rows / 8);
  shape2(qz, dtype::i32, groups, rows / 8);
  shape2(sc, dtype::f16, groups, rows);
  matrix m;
  m.type = quant::qtype::f16;  // unused: the awq view decides
  m.rows = rows;
  m.cols = cols;
  // Average bytes per output row (for bandwidth figures): 4-bit codes, fp16 scale + 4-bit zero.
  m.row_bytes = (cols * 4 + groups * 20) / 8;
  m.data = qw.bytes().data();
  m.awq = {qw.bytes().data(), qz.bytes().data(), sc.bytes().data(), cols, rows, cols / groups};
  return m;
}

}  // namespace qforge::engine
