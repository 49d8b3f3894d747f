// SPDX-License-Identifier: MIT
// Host side of engine/cuda/session_ops.hpp: the expansion switch over the GGUF block families
// (their reference CUDA decoders, quant/<type>/cuda.cuh) and the launches of session_ops.cuh.
#include <climits>
#include <cstddef>
#include <cstdint>

#include "qforge/engine/cuda/session_ops.cuh"
#include "qforge/engine/cuda/session_ops.hpp"
#include "qforge/quant/iq4_nl/cuda.cuh"
#include "qforge/quant/q2_k/cuda.cuh"
#include "qforge/quant/q3_k/cuda.cuh"
#include "qforge/quant/q4_0/cuda.cuh"
#include "qforge/quant/q4_1/cuda.cuh"
#include "qforge/quant/q4_k/cuda.cuh"
#include "qforge/quant/q5_0/cuda.cuh"
#include "qforge/quant/q5_1/cuda.cuh"
#include "qforge/quant/q5_k/cuda.cuh"
#include "qforge/quant/q6_k/cuda.cuh"
#include "qforge/quant/q8_0/cuda.cuh"

namespace qforge::engine::cuda {

namespace {
using namespace detail;
constexpr int threads = 256;
}  // namespace

bool can_expand(quant::qtype t) noexcept {
  using quant::qtype;
  switch (t) {
    case qtype::f16: case qtype::q4_0: case qtype::q4_1: case qtype::q5_0: case qtype::q5_1:
    case qtype::q8_0: case qtype::iq4_nl: case qtype::q2_k: case qtype::q3_k: case qtype::q4_k:
    case qtype::q5_k: case qtype::q6_k:
      return true;
    default:
      return false;
  }
}

void expand(quant::qtype t, const void* w, std::size_t rows, std::size_t cols, float* out,
            cudaStream_t s) {
  using quant::qtype;
  if (!can_expand(t))
    throw error(error::kind::unsupported, cat("cuda expand: no decoder for ", quant::name(t)));
  const auto tr = quant::traits(t);
  if (cols % tr->block_elems != 0)
    throw error(error::kind::argument, cat("cuda expand: ", cols, " columns of ", quant::name(t)));
  const std::size_t n = rows * cols;
  if (n == 0) return;
  namespace q = quant;
  switch (t) {
    case qtype::f16:
      f16_to_f32_kernel<<<grid_dim(n, threads, "cuda expand"), threads, 0, s>>>(
          static_cast<const __half*>(w), n, out);
      QFORGE_CUDA_CHECK(cudaGetLastError());
      break;
    case qtype::q4_0: q::q4_0::decode_cuda(static_cast<const q::block_q4_0*>(w), n / 32, out, s); break;
    case qtype::q4_1: q::q4_1::decode_cuda(static_cast<const q::block_q4_1*>(w), n / 32, out, s); break;
    case qtype::q5_0: q::q5_0::decode_cuda(static_cast<const q::block_q5_0*>(w), n / 32, out, s); break;
    case qtype::q5_1: q::q5_1::decode_cuda(static_cast<const q::block_q5_1*>(w), n / 32, out, s); break;
    case qtype::q8_0: q::q8_0::decode_cuda(static_cast<const q::block_q8_0*>(w), n / 32, out, s); break;
    case qtype::iq4_nl: q::iq4_nl::decode_cuda(static_cast<const q::block_iq4_nl*>(w), n / 32, out, s); break;
    case qtype::q2_k: q::q2_k::decode_cuda(static_cast<const q::block_q2_k*>(w), n / 256, out, s); break;
    case qtype::q3_k: q::q3_k::decode_cuda(static_cast<const q::block_q3_k*>(w), n / 256, out, s); break;
    case qtype::q4_k: q::q4_k::decode_cuda(static_cast<const q::block_q4_k*>(w), n / 256, out, s); break;
    case qtype::q5_k: q::q5_k::decode_cuda(static_cast<const q::block_q5_k*>(w), n / 256, out, s); break;
    default: q::q6_k::decode_cuda(static_cast<const q::block_q6_k*>(w), n / 256, out, s); break;
  }
}

void expand_awq(const awq_matrix& w, float* out, cudaStream_t s) {
  if (w.out % 8 != 0 || w.group == 0 || w.in % w.group != 0 || w.in > INT_MAX || w.out > INT_MAX)
    throw error(error::kind::argument,
                cat("cuda expand_awq: in ", w.in, ", out ", w.out, ", group ", w.group));
  const std::size_t n = w.in * (w.out / 8);
  if (n == 0) return;
  awq_expand_kernel<<<grid_dim(n, threads, "cuda expand_awq"), threads, 0, s>>>(
      w.qweight, w.qzeros, reinterpret_cast<const __half*>(w.scales), static_cast<int>(w.in),
      static_cast<int>(w.out), static_cast<int>(w.group), out);
  QFORGE_CUDA_CHECK(cudaGetLastError());
}

void add_bias(float* y, std::size_t ldy, std::size_t n, std::size_t tokens, const float* b,
              const launch_opts& o) {
  if (tokens == 0 || n == 0) return;
  if (n > INT_MAX) throw error(error::kind::argument, cat("cuda add_bias: ", n, " values"));
  launch(add_bias_kernel, dim3(grid_dim(n, threads, "cuda add_bias"), grid_dim(tokens, 1, "cuda add_bias")),
         dim3(threads), 0, o.stream, o.pdl, y, ldy, static_cast<int>(n), b);
}

void head_rms_norm(float* x, std::size_t ldx, std::size_t heads, std::size_t head_dim,
                   std::size_t tokens, const float* w, float eps, const launch_opts& o) {
  if (tokens == 0 || heads == 0) return;
  if (head_dim == 0 || head_dim > INT_MAX || heads > INT_MAX)
    throw error(error::kind::argument, cat("cuda head_rms_norm: ", heads, " heads of ", head_dim));
  launch(head_rms_norm_kernel, dim3(static_cast<unsigned>(heads), grid_dim(tokens, 1, "cuda head_rms_norm")),
         dim3(32), 0, o.stream, o.pdl, x, ldx, static_cast<int>(head_dim), w, eps);
}

}  // namespace qforge::engine::cuda
