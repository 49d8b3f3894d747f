// SPDX-License-Identifier: MIT
// Host side of the decode step's small CUDA kernels (engine/cuda/ops.cuh) and of the FP16 dense
// products through cuBLAS (engine/cuda/matvec.hpp): argument checks and launches.
#include <cublas_v2.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qforge/engine/cuda/attention_split.cuh"
#include "qforge/engine/cuda/matvec.hpp"
#include "qforge/engine/cuda/ops.cuh"
#include "qforge/engine/cuda/ops.hpp"

namespace qforge::engine::cuda {

namespace {
using namespace detail;

__half* as_half(std::uint16_t* p) noexcept { return reinterpret_cast<__half*>(p); }

// Multiprocessors of the current device (read once).
std::size_t sm_total() {
  static const std::size_t n = [] {
    int dev = 0, v = 0;
    QFORGE_CUDA_CHECK(cudaGetDevice(&dev));
    QFORGE_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return static_cast<std::size_t>(v);
  }();
  return n;
}

void check_int(std::size_t v, const char* who) {
  if (v > INT_MAX / 2) throw error(error::kind::argument, cat(who, ": size ", v, " is too large"));
}

[[noreturn]] void throw_blas(cublasStatus_t s, const char* call) {
  throw error(error::kind::cuda, cat(call, ": cuBLAS status ", static_cast<int>(s)));
}
#define QFORGE_CUBLAS_CHECK(call)                                               \
  do {                                                                          \
    const cublasStatus_t qforge_blas_status_ = (call);                          \
    if (qforge_blas_status_ != CUBLAS_STATUS_SUCCESS) throw_blas(qforge_blas_status_, #call); \
  } while (0)
}  // namespace

void rms_norm(const float* x, const float* w, std::size_t n, std::size_t tokens, float eps, float* y,
              std::uint16_t* y_f16, const launch_opts& o) {
  if (tokens == 0) return;
  check_int(n, "cuda rms_norm");
  launch(rms_norm_kernel, dim3(grid_dim(tokens, 1, "cuda rms_norm")), dim3(ops_threads), 0,
         o.stream, o.pdl, x, w, static_cast<int>(n), eps, y, as_half(y_f16));
}

std::vector<float> rope_table(const std::vector<double>& inv_freq, std::size_t positions,
                              double linear_factor) {
  const std::size_t half = inv_freq.size();
  std::vector<float> t(positions * half * 2);
  for (std::size_t p = 0; p < positions; ++p) {
    const double pp = static_cast<double>(p) / linear_factor;
    for (std::size_t i = 0; i < half; ++i) {
      const double a = pp * inv_freq[i];
      t[2 * (p * half + i)] = static_cast<float>(std::cos(a));
      t[2 * (p * half + i) + 1] = static_cast<float>(std::sin(a));
    }
  }
  return t;
}

void rope_store(float* q, std::size_t ldq, float* k, std::size_t ldk, const float* v,
                std::size_t ldv, std::size_t tokens, std::size_t n_heads, std::size_t n_kv,
                std::size_t head_dim, bool neox, const float* cos_sin, const int* pos,
                float* k_cache, float* v_cache, const launch_opts& o) {
  if (tokens == 0) return;
  if (head_dim == 0 || head_dim % 2 != 0 || n_kv == 0 || n_heads % n_kv != 0)
    throw error(error::kind::argument, cat("cuda rope_store: ", n_heads, " heads, ", n_kv,
                                           " kv heads of ", head_dim));
  check_int((n_heads + n_kv) * head_dim, "cuda rope_store");
  const std::size_t threads = (n_heads + n_kv) * (head_dim / 2) + n_kv * head_dim;
  launch(rope_store_kernel, dim3(grid_dim(threads, ops_threads, "cuda rope_store"),
                                 grid_dim(tokens, 1, "cuda rope_store")),
         dim3(ops_threads), 0, o.stream, o.pdl, q, ldq, k, ldk, v, ldv, static_cast<int>(n_heads),
         static_cast<int>(n_kv), static_cast<int>(head_dim), neox ? 1 : 0,
         reinterpret_cast<const float2*>(cos_sin), pos, k_cache, v_cache);
}

void attention(const float* q, std::size_t ldq, std::size_t tokens, const float* k_cache,
               const float* v_cache, std::size_t n_heads, std::size_t n_kv, std::size_t head_dim,
               std::size_t max_positions, const int* pos, float* out, std::size_t ldo,
               std::uint16_t* out_f16, const launch_opts& o) {
  if (tokens == 0) return;
  if (head_dim == 0 || head_dim > static_cast<std::size_t>(ops_threads) || n_kv == 0 ||
      n_heads % n_kv != 0)
    throw error(error::kind::argument, cat("cuda attention: ", n_heads, " heads, ", n_kv,
                                           " kv heads of ", head_dim, " (at most ", ops_threads, ")"));
  check_int(n_heads * head_dim, "cuda attention");
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // Split-KV on sm_90 when the cache can outgrow one CTA's slice (attention_split.cuh) and the
  // heads of the given tokens leave SMs idle (decode: 32 CTAs for 132 SMs; a prefill chunk of
  // hundreds of tokens fills the GPU with one CTA per head and token already, and splitting it
  // halved the FP16 prefill rate); the kernel itself leaves all but one CTA per head idle while the
  // context is still short.
  int splits = 1;
  if (o.attention_splits != 1 && max_positions > static_cast<std::size_t>(attn_min_slice) &&
      max_positions <= INT_MAX / 2 && (o.attention_splits > 1 || tokens * n_heads < sm_total()) &&
      has_sm90()) {
    const std::size_t want = (max_positions + attn_min_slice - 1) / attn_min_slice;
    splits = static_cast<int>(std::min<std::size_t>(want, attn_max_splits));
    if (o.attention_splits > 1) splits = std::min(splits, o.attention_splits);
  }
  if (splits > 1) {
    const std::size_t smem =
        static_cast<std::size_t>(attn_slice(static_cast<int>(max_positions), splits)) * sizeof(float);
    if (smem > 48 * 1024)
      QFORGE_CUDA_CHECK(cudaFuncSetAttribute(attention_split_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
    launch_cluster(attention_split_kernel,
                   dim3(static_cast<unsigned>(splits), static_cast<unsigned>(n_heads),
                        grid_dim(tokens, 1, "cuda attention")),
                   dim3(ops_threads), smem, o.stream, o.pdl, static_cast<unsigned>(splits), 0, q,
                   ldq, k_cache, v_cache, static_cast<int>(n_heads), static_cast<int>(n_kv),
                   static_cast<int>(head_dim), pos, scale, out, ldo, as_half(out_f16));
    return;
  }
  const std::size_t smem = max_positions * sizeof(float);
  if (smem > 227 * 1024)
    throw error(error::kind::argument,
                cat("cuda attention: ", max_positions, " positions exceed shared memory"));
  if (smem > 48 * 1024)
    QFORGE_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  launch(attention_kernel, dim3(static_cast<unsigned>(n_heads), grid_dim(tokens, 1, "cuda attention")),
         dim3(ops_threads), smem, o.stream, o.pdl, q, ldq, k_cache, v_cache,
         static_cast<int>(n_heads), static_cast<int>(n_kv), static_cast<int>(head_dim), pos, scale,
         out, ldo, as_half(out_f16));
}

void swiglu(const float* gate_up, std::size_t ffn, std::size_t tokens, float* out,
            std::uint16_t* out_f16, const launch_opts& o) {
  if (tokens == 0 || ffn == 0) return;
  check_int(ffn, "cuda swiglu");
  const std::size_t count = ffn * tokens;
  launch(swiglu_kernel, dim3(grid_dim(count, ops_threads, "cuda swiglu")), dim3(ops_threads), 0,
         o.stream, o.pdl, gate_up, static_cast<int>(ffn), count, out, as_half(out_f16));
}

void embed_f16(const std::uint16_t* table, std::size_t cols, const int* token, float* x,
               std::uint16_t* x_f16, const launch_opts& o) {
  check_int(cols, "cuda embed_f16");
  launch(embed_f16_kernel, dim3(grid_dim(cols, ops_threads, "cuda embed_f16")), dim3(ops_threads),
         0, o.stream, o.pdl, reinterpret_cast<const __half*>(table), static_cast<int>(cols), token,
         x, as_half(x_f16));
}

void advance_position(int* pos, int first, int limit, const launch_opts& o) {
  launch(advance_kernel, dim3(1), dim3(32), 0, o.stream, o.pdl, pos, first, limit);
}

void to_f16(const float* x, std::size_t n, std::uint16_t* y, const launch_opts& o) {
  if (n == 0) return;
  launch(to_f16_kernel, dim3(grid_dim(n, ops_threads, "cuda to_f16")), dim3(ops_threads), 0,
         o.stream, o.pdl, x, n, as_half(y));
}

// --- cuBLAS --------------------------------------------------------------------------------------

namespace {
// cuBLAS allocates nothing itself when given a workspace, which graph capture requires.
constexpr std::size_t blas_workspace_bytes = std::size_t{32} << 20;
}  // namespace

blas::blas() {
  cublasHandle_t h = nullptr;
  QFORGE_CUBLAS_CHECK(cublasCreate(&h));
  handle_ = h;
  if (const cudaError_t e = cudaMalloc(&workspace_, blas_workspace_bytes); e != cudaSuccess) {
    cublasDestroy(h);
    qforge::detail::throw_cuda_error(e, "cudaMalloc(cublas workspace)", __FILE__, __LINE__);
  }
  if (const cublasStatus_t s = cublasSetWorkspace(h, workspace_, blas_workspace_bytes);
      s != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(h);
    cudaFree(workspace_);
    throw_blas(s, "cublasSetWorkspace");
  }
}

blas::~blas() {
  cublasDestroy(static_cast<cublasHandle_t>(handle_));
  cudaFree(workspace_);
}

void dense_f16(blas& b, const std::uint16_t* w, std::size_t rows, std::size_t cols,
               const std::uint16_t* x, std::size_t ldx, std::size_t tokens, float* y,
               std::size_t ldy, bool accumulate, cudaStream_t stream) {
  if (tokens == 0 || rows == 0) return;
  if (cols == 0 || ldx < cols || ldy < rows || rows > INT_MAX || cols > INT_MAX ||
      tokens > INT_MAX || ldx > INT_MAX || ldy > INT_MAX)
    throw error(error::kind::argument,
                cat("cuda dense_f16: ", rows, " x ", cols, ", ldx ", ldx, ", ldy ", ldy));
  auto h = static_cast<cublasHandle_t>(b.handle());
  QFORGE_CUBLAS_CHECK(cublasSetStream(h, stream));
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  // Column-major view: W row-major [rows, cols] is W^T column-major with lda = cols; y^T = W x^T.
  QFORGE_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows),
                                   static_cast<int>(tokens), static_cast<int>(cols), &alpha, w,
                                   CUDA_R_16F, static_cast<int>(cols), x, CUDA_R_16F,
                                   static_cast<int>(ldx), &beta, y, CUDA_R_32F,
                                   static_cast<int>(ldy), CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
}

void dense_f32(blas& b, const float* w, std::size_t rows, std::size_t cols, const float* x,
               std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy, bool accumulate,
               cudaStream_t stream) {
  if (tokens == 0 || rows == 0) return;
  if (cols == 0 || ldx < cols || ldy < rows || rows > INT_MAX || cols > INT_MAX ||
      tokens > INT_MAX || ldx > INT_MAX || ldy > INT_MAX)
    throw error(error::kind::argument,
                cat("cuda dense_f32: ", rows, " x ", cols, ", ldx ", ldx, ", ldy ", ldy));
  auto h = static_cast<cublasHandle_t>(b.handle());
  QFORGE_CUBLAS_CHECK(cublasSetStream(h, stream));
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  QFORGE_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows),
                                  static_cast<int>(tokens), static_cast<int>(cols), &alpha, w,
                                  static_cast<int>(cols), x, static_cast<int>(ldx), &beta, y,
                                  static_cast<int>(ldy)));
}

}  // namespace qforge::engine::cuda
