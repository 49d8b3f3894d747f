// SPDX-License-Identifier: MIT
// Generic CUDA kernels for the block families whose scalar reference encodes one block with a
// QFORGE_HD function (the K-quants, Q4_0/Q4_1/Q5_0/Q5_1, IQ4_NL): one GPU thread owns one block
// and runs that very function, so the GPU writes the reference's bytes by construction as long as
// the device's float operations are the host's. They are: nvcc's `/` and sqrtf are IEEE-rounded
// (its default -prec-div / -prec-sqrt, no fast math), denormals are kept (no -ftz), and the
// translation unit MUST be built with --fmad=false so that no a*b+c in the shared reference code
// is fused (the host reference is built with -ffp-contract=off, ggml without FMA). Vectorising
// inside a block is not possible without re-associating its sums, and the searches are
// compute-bound, so parallelism comes from the number of blocks (26 M super-blocks in a 7B model).
// Where a thread reads its block from: `direct` (global memory through L1: the searches stay inside
// one 32- or 16-weight sub-block at a time, so each warp's working set is small) or `shared` (the
// CTA first copies its blocks to shared memory with coalesced loads, padded to E + 1 floats so the
// threads' strided reads hit 32 different banks; this caps occupancy). Decoders run one thread per
// output float with explicitly rounded float ops. Non-finite inputs: a GPU returns one canonical
// NaN where x86 propagates the operand's payload and sign, so blocks holding NaN or inf may encode
// differently from the host; finite inputs give identical bytes. Host wrappers take device
// pointers and a stream and throw qforge::error (argument, cuda).
#pragma once

#if !defined(__CUDACC__)
#error "detail/cuda_blocks.cuh needs nvcc"
#endif
#if defined(__USE_FAST_MATH__)
#error "qforge's CUDA encoders need IEEE division and sqrt: do not build them with --use_fast_math"
#endif
#define QFORGE_BLOCKS_CUDA_MIN_ARCH 700
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < QFORGE_BLOCKS_CUDA_MIN_ARCH
#error "qforge block CUDA kernels need sm_70 or newer"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/quant/detail/legacy.hpp"

namespace qforge::quant::cuda_detail {

enum class staging { direct, shared };

// The staging the public encode_cuda functions use (both are tested to give the same bytes). On an
// H100 the compute-bound 256-weight searches ran 1.5x faster direct (more resident threads), the
// bandwidth-bound 32-weight encoders 1.35x faster shared (coalesced loads).
template <int Elems>
inline constexpr staging default_staging = Elems >= 256 ? staging::direct : staging::shared;

// Threads per CTA: fewer for 256-weight blocks so the shared tile (threads * 257 floats) fits the
// default 48 KiB and the last CTA of a small tensor idles fewer lanes.
template <int Elems>
inline constexpr int encode_threads = Elems >= 256 ? 32 : 128;

template <int Elems>
inline constexpr std::size_t tile_bytes =
    std::size_t{encode_threads<Elems>} * (Elems + 1) * sizeof(float);

// F: a family's device traits (see q4_k/cuda.cuh): `block`, `elems`, `weighted_needs_row_stat`,
// encode(x, y), encode_weighted(x, qw, row_stat, y), decode_one(block, j).
// qw_row holds one importance weight per column (cols = blocks_per_row * elems); row_stat, when the
// family needs it, one float per row (the legacy types' row mean square).
template <class F, bool Weighted, staging S>
__global__ void __launch_bounds__(encode_threads<F::elems>)
    encode_kernel(const float* __restrict__ x, typename F::block* __restrict__ y, std::size_t nb,
                  const float* __restrict__ qw_row, std::size_t blocks_per_row,
                  const float* __restrict__ row_stat) {
  constexpr int E = F::elems;
  constexpr int T = encode_threads<E>;
  const std::size_t b0 = static_cast<std::size_t>(blockIdx.x) * T;
  const std::size_t b = b0 + threadIdx.x;
  const float* xb = x + b * E;
  if constexpr (S == staging::shared) {
    extern __shared__ float tile[];
    const std::size_t left = nb - b0;
    const int count = static_cast<int>(left < T ? left : T) * E;
    const float* src = x + b0 * E;
    for (int k = static_cast<int>(threadIdx.x); k < count; k += T)
      tile[(k / E) * (E + 1) + k % E] = src[k];
    __syncthreads();
    xb = tile + threadIdx.x * (E + 1);
  }
  if (b >= nb) return;
  typename F::block out;
  if constexpr (Weighted) {
    const std::size_t col_block = b % blocks_per_row;
    const float stat = F::weighted_needs_row_stat ? row_stat[b / blocks_per_row] : 0.0f;
    F::encode_weighted(xb, qw_row + col_block * E, stat, out);
  } else {
    F::encode(xb, out);
  }
  y[b] = out;
}

// The legacy weighted paths' row statistic, summed in the reference's order by one thread per row.
// (A template only so that every TU including this header may define it.)
template <class F>
__global__ void row_mean_square_kernel(const float* __restrict__ x, std::size_t rows,
                                       std::size_t cols, float* __restrict__ out) {
  const std::size_t r = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r < rows) out[r] = detail::row_mean_square(x + r * cols, cols);
}

template <class F>
__global__ void __launch_bounds__(256)
    decode_kernel(const typename F::block* __restrict__ x, float* __restrict__ y, std::size_t n) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = F::decode_one(x[i / F::elems], static_cast<int>(i % F::elems));
}

inline unsigned grid_for(std::size_t items, int per_cta, const char* who) {
  const std::size_t ctas =
      (items + static_cast<std::size_t>(per_cta) - 1) / static_cast<std::size_t>(per_cta);
  if (ctas > 0x7fffffffu)
    throw error(error::kind::argument, cat(who, " cuda: ", items, " items exceed one grid"));
  return static_cast<unsigned>(ctas);
}

template <class F, bool Weighted, staging S>
void launch_encode(const float* x, std::size_t nb, typename F::block* y, const float* qw,
                   std::size_t blocks_per_row, const float* row_stat, cudaStream_t stream) {
  constexpr int T = encode_threads<F::elems>;
  const std::size_t smem = S == staging::shared ? tile_bytes<F::elems> : 0;
  encode_kernel<F, Weighted, S>
      <<<grid_for(nb, T, F::name), T, smem, stream>>>(x, y, nb, qw, blocks_per_row, row_stat);
  QFORGE_CUDA_CHECK_LAUNCH();
}

// n floats at device x (n % elems == 0) into n / elems blocks at device y, the family's unweighted
// reference path (ggml_quantize_chunk without an importance matrix).
template <class F, staging S = default_staging<F::elems>>
void encode_blocks(const float* x, std::size_t n, typename F::block* y, cudaStream_t stream) {
  if (n % F::elems != 0)
    throw error(error::kind::argument,
                cat(F::name, " cuda encode: ", n, " values, not a multiple of ", F::elems));
  if (n == 0) return;
  launch_encode<F, false, S>(x, n / F::elems, y, nullptr, 1, nullptr, stream);
}

// rows x cols floats (row-major, cols % elems == 0) with one importance weight per column at
// device imatrix: the weighted path, as ggml_quantize_chunk runs it row by row. The legacy types
// first compute each row's mean square into a temporary device buffer (stream-ordered).
template <class F, staging S = default_staging<F::elems>>
void encode_blocks_weighted(const float* x, std::size_t rows, std::size_t cols,
                            const float* imatrix, typename F::block* y, cudaStream_t stream) {
  if (cols == 0 || cols % F::elems != 0)
    throw error(error::kind::argument, cat(F::name, " cuda encode: row of ", cols,
                                           " values, not a multiple of ", F::elems));
  if (imatrix == nullptr)
    throw error(error::kind::argument, cat(F::name, " cuda encode: null importance matrix"));
  if (rows == 0) return;
  const std::size_t bpr = cols / F::elems;
  if constexpr (F::weighted_needs_row_stat) {
    float* stat = nullptr;
    QFORGE_CUDA_CHECK(
        cudaMallocAsync(reinterpret_cast<void**>(&stat), rows * sizeof(float), stream));
    row_mean_square_kernel<F>
        <<<grid_for(rows, 128, F::name), 128, 0, stream>>>(x, rows, cols, stat);
    try {
      QFORGE_CUDA_CHECK_LAUNCH();
      launch_encode<F, true, S>(x, rows * bpr, y, imatrix, bpr, stat, stream);
    } catch (...) {
      cudaFreeAsync(stat, stream);
      throw;
    }
    QFORGE_CUDA_CHECK(cudaFreeAsync(stat, stream));
  } else {
    launch_encode<F, true, S>(x, rows * bpr, y, imatrix, bpr, nullptr, stream);
  }
}

// nb blocks at device x into nb * elems floats at device y. Finite results are the reference's
// bits; NaNs come out as the GPU's canonical NaN.
template <class F>
void decode_blocks(const typename F::block* x, std::size_t nb, float* y, cudaStream_t stream) {
  const std::size_t n = nb * F::elems;
  if (n == 0) return;
  decode_kernel<F><<<grid_for(n, 256, F::name), 256, 0, stream>>>(x, y, n);
  QFORGE_CUDA_CHECK_LAUNCH();
}

}  // namespace qforge::quant::cuda_detail
