// SPDX-License-Identifier: MIT
// The quantization half of awq::cuda_backend (the forward half is awq_forward.cu): fake
// quantization with or without the clip search, the exact output loss of a fake-quantized linear,
// the clip applied to a host linear, and input covariances (full, or their diagonal group blocks).
// Fake quantization and clipping are bit-identical to awq::detail (awq/group_search.hpp) through
// qforge/awq/cuda/fake_quant.cuh; the loss and the covariances are cuBLAS products in float32 or
// tf32 (never fp16: a covariance or a loss of fp16 operands would drown the differences the
// search compares), the CPU's numbers up to summation order.
// Temporaries live in the state's scratch buffers (cuda_detail::grow): every call uses them only
// between its start and its end, on st.stream, so no call allocates in the steady state.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "qforge/awq/cuda/backend_state.hpp"
#include "qforge/awq/cuda/fake_quant.cuh"
#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"
#include "qforge/quant/awq/ref.hpp"

namespace qforge::awq {

namespace {

namespace cq = cuda_quant;

constexpr int warps_per_cta = 8;
constexpr int cta_threads = warps_per_cta * 32;
// Rows per CTA of the clip kernels: each CTA loads its group's covariance block once (64 KB at
// group 128) and runs the search for this many rows with it.
constexpr int clip_rows_per_cta = 32;

[[noreturn]] void throw_blas(cublasStatus_t s, const char* call) {
  throw error(error::kind::cuda, cat(call, ": cuBLAS status ", static_cast<int>(s)));
}
#define QFORGE_AWQ_CUBLAS_CHECK(call)                                                 \
  do {                                                                                \
    const cublasStatus_t qforge_blas_status_ = (call);                                \
    if (qforge_blas_status_ != CUBLAS_STATUS_SUCCESS) throw_blas(qforge_blas_status_, #call); \
  } while (0)

// --- kernels ----------------------------------------------------------------------------------

// out = Q(half(w * s)) / s, one warp per (row, group): group_search.hpp fake_quantize_scaled.
template <int G>
__global__ void __launch_bounds__(cta_threads)
    fake_quant_kernel(const float* __restrict__ w, const float* __restrict__ s,
                      float* __restrict__ out, std::size_t pairs, int groups, int in) {
  constexpr int E = G / 32;
  const std::size_t p = static_cast<std::size_t>(blockIdx.x) * warps_per_cta + threadIdx.x / 32;
  if (p >= pairs) return;  // the whole warp leaves together
  const int lane = static_cast<int>(threadIdx.x % 32);
  const std::size_t row = p / static_cast<std::size_t>(groups);
  const int col0 = static_cast<int>(p % static_cast<std::size_t>(groups)) * G;
  const float* src = w + row * static_cast<std::size_t>(in) + col0;
  float v[E], sv[E];
#pragma unroll
  for (int e = 0; e < E; ++e) {
    sv[e] = __ldg(s + col0 + lane + 32 * e);
    v[e] = cq::half(cq::mul(src[lane + 32 * e], sv[e]));
  }
  cq::warp_fake_quantize(v);
  float* dst = out + row * static_cast<std::size_t>(in) + col0;
#pragma unroll
  for (int e = 0; e < E; ++e) dst[lane + 32 * e] = cq::div(v[e], sv[e]);
}

// The clip search with the group's covariance block in shared memory. grid.x: group, grid.y: tile
// of clip_rows_per_cta rows, so the CTAs sharing a block are launched side by side and its reads
// after the first come from L2.
//   Scaled (awq::detail::fake_quant with blocks): v = half(w * s), clipped, fake-quantized, / s.
//   !Scaled (awq::detail::clip_linear): v = w, clipped; out may be w.
template <int G, bool Scaled>
__global__ void __launch_bounds__(cta_threads, 2)
    clip_kernel(const float* w, const float* __restrict__ s, const float* __restrict__ blocks,
                float* out, int rows, int in) {
  constexpr int E = G / 32, ld = G + 4;
  extern __shared__ float4 smem4[];  // float4: 16-byte alignment for the vector reads
  float* const C = reinterpret_cast<float*>(smem4);
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  float* const d_s = C + G * ld + warp * 2 * G;
  float* const cd_s = d_s + G;

  const int g = static_cast<int>(blockIdx.x);
  const float4* src = reinterpret_cast<const float4*>(blocks + static_cast<std::size_t>(g) * G * G);
  for (int i = static_cast<int>(threadIdx.x); i < G * G / 4; i += cta_threads) {
    const int a = (4 * i) / G, b = (4 * i) % G;
    *reinterpret_cast<float4*>(C + a * ld + b) = src[i];
  }
  __syncthreads();

  const int r0 = static_cast<int>(blockIdx.y) * clip_rows_per_cta;
  const int r1 = min(rows, r0 + clip_rows_per_cta);
  for (int r = r0 + warp; r < r1; r += warps_per_cta) {
    const std::size_t base = static_cast<std::size_t>(r) * in + static_cast<std::size_t>(g) * G;
    float v[E], sv[E];
#pragma unroll
    for (int e = 0; e < E; ++e) {
      if constexpr (Scaled) {
        sv[e] = __ldg(s + g * G + lane + 32 * e);
        v[e] = cq::half(cq::mul(w[base + lane + 32 * e], sv[e]));
      } else {
        v[e] = w[base + lane + 32 * e];
      }
    }
    const float best_max = cq::warp_clip_max<G>(v, C, d_s, cd_s);
    // best_max is an fp16 value, so the clamped group stays fp16 (as search.hpp notes).
#pragma unroll
    for (int e = 0; e < E; ++e) v[e] = cq::std_clamp(v[e], -best_max, best_max);
    if constexpr (Scaled) {
      cq::warp_fake_quantize(v);
#pragma unroll
      for (int e = 0; e < E; ++e) out[base + lane + 32 * e] = cq::div(v[e], sv[e]);
    } else {
#pragma unroll
      for (int e = 0; e < E; ++e) out[base + lane + 32 * e] = v[e];
    }
  }
}

__global__ void diff_kernel(const float* __restrict__ a, const float* __restrict__ b,
                            float* __restrict__ d, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    d[i] = __fsub_rn(a[i], b[i]);
}

// partial[block] = sum over the block's grid-stride share of double(m[i]) * double(d[i]): the
// CPU's products, in double; fixed grid and tree, so a given size always sums the same way.
constexpr int loss_ctas = 1024;
__global__ void __launch_bounds__(cta_threads)
    loss_partials(const float* __restrict__ m, const float* __restrict__ d, std::size_t n,
                  double* __restrict__ partial) {
  double acc = 0.0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(cta_threads) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * cta_threads)
    acc += static_cast<double>(m[i]) * static_cast<double>(d[i]);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) acc += __shfl_down_sync(0xffffffffu, acc, o);
  __shared__ double warp_sum[warps_per_cta];
  if (threadIdx.x % 32 == 0) warp_sum[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int w = 0; w < warps_per_cta; ++w) s += warp_sum[w];
    partial[blockIdx.x] = s;
  }
}

// out[g][a][b] = c[(g * group + a) * n + g * group + b]: the diagonal blocks of c [n, n].
__global__ void diag_blocks_kernel(const float* __restrict__ c, std::size_t n, int group,
                                   float* __restrict__ out) {
  const std::size_t total = n * static_cast<std::size_t>(group);
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t gg = static_cast<std::size_t>(group) * group;
    const std::size_t g = i / gg, a = (i % gg) / group, b = i % group;
    out[i] = c[(g * group + a) * n + g * group + b];
  }
}

// --- host helpers -----------------------------------------------------------------------------

unsigned grid_for(std::size_t n, std::size_t per_cta, std::size_t cap = 65535u * 8u) {
  const std::size_t b = (n + per_cta - 1) / per_cta;
  return static_cast<unsigned>(b == 0 ? 1 : (b < cap ? b : cap));
}

void check_group(std::size_t group, std::size_t in, const char* who) {
  if (!quant::awq::valid_group(group))
    throw error(error::kind::argument, cat(who, ": AWQ group size ", group, " (32, 64 or 128)"));
  if (in % group != 0)
    throw error(error::kind::argument,
                cat(who, ": ", in, " input channels are not a multiple of the group size ", group));
  if (in > static_cast<std::size_t>(INT32_MAX))
    throw error(error::kind::argument, cat(who, ": ", in, " input channels are too many"));
}

void check_blocks(const std::vector<float>& blocks, std::size_t in, std::size_t group,
                  const char* who) {
  if (blocks.size() != in * group)
    throw error(error::kind::argument, cat(who, ": ", blocks.size(), " covariance block values for ",
                                           in, " channels in groups of ", group, " (expected ",
                                           in * group, ")"));
}

// From pageable host memory the copy is staged before cudaMemcpyAsync returns, so the caller's
// vector may go away at once; the kernels after it on st.stream see the data.
void upload_async(cuda_backend::state& st, float* dst, const float* host, std::size_t n) {
  if (n != 0)
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice,
                                      st.stream));
}

// Downloads and waits: the calls that return host data synchronise here.
void download_sync(cuda_backend::state& st, float* host, const float* src, std::size_t n) {
  if (n != 0)
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost,
                                      st.stream));
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(st.stream));
}

// Precision of the statistics products: float32 when the search runs in f32, else tf32 tensor
// cores with float32 sums (the products' f16 mode is not offered to covariances).
cublasComputeType_t stat_compute(const cuda_backend::state& st) {
  return st.opt.dense == cuda_backend_options::math::f32 ? CUBLAS_COMPUTE_32F
                                                         : CUBLAS_COMPUTE_32F_FAST_TF32;
}

template <int G>
void launch_fake_quant(cuda_backend::state& st, const float* w, const float* s, float* out,
                       std::size_t rows, std::size_t in) {
  const std::size_t groups = in / G, pairs = rows * groups;
  if (pairs == 0) return;
  const std::size_t ctas = (pairs + warps_per_cta - 1) / warps_per_cta;
  if (ctas > static_cast<std::size_t>(INT32_MAX))
    throw error(error::kind::argument, cat("cuda fake_quant: ", rows, " x ", in, " is too large"));
  fake_quant_kernel<G><<<static_cast<unsigned>(ctas), cta_threads, 0, st.stream>>>(
      w, s, out, pairs, static_cast<int>(groups), static_cast<int>(in));
  QFORGE_CUDA_CHECK_LAUNCH();
}

template <int G, bool Scaled>
void launch_clip(cuda_backend::state& st, const float* w, const float* s, const float* blocks,
                 float* out, std::size_t rows, std::size_t in) {
  if (rows == 0 || in == 0) return;
  const std::size_t tiles = (rows + clip_rows_per_cta - 1) / clip_rows_per_cta;
  if (tiles > 65535u || rows > static_cast<std::size_t>(INT32_MAX))
    throw error(error::kind::argument, cat("cuda clip search: ", rows, " rows are too many"));
  constexpr std::size_t smem = (static_cast<std::size_t>(G) * (G + 4) +
                                static_cast<std::size_t>(warps_per_cta) * 2 * G) * sizeof(float);
  // 74 KB at group 128: above the 48 KB a kernel gets without asking.
  QFORGE_CUDA_CHECK(cudaFuncSetAttribute(clip_kernel<G, Scaled>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(in / G), static_cast<unsigned>(tiles));
  clip_kernel<G, Scaled><<<grid, cta_threads, smem, st.stream>>>(
      w, s, blocks, out, static_cast<int>(rows), static_cast<int>(in));
  QFORGE_CUDA_CHECK_LAUNCH();
}

// Dispatches f<G>() for the three group sizes (checked before).
template <class F>
void by_group(std::size_t group, F&& f) {
  switch (group) {
    case 32: f.template operator()<32>(); break;
    case 64: f.template operator()<64>(); break;
    default: f.template operator()<128>(); break;
  }
}

}  // namespace

// --- fake quantization and clipping -------------------------------------------------------------

cuda_backend::linear cuda_backend::fake_quant(const linear& w, std::span<const float> s,
                                              std::size_t group,
                                              const std::vector<float>* blocks) {
  state& st = *s_;
  check_group(group, w.in, "cuda fake_quant");
  if (s.size() != w.in)
    throw error(error::kind::argument,
                cat("cuda fake_quant: ", s.size(), " scales for ", w.in, " input channels"));
  if (blocks != nullptr) check_blocks(*blocks, w.in, group, "cuda fake_quant");

  linear q;
  q.out = w.out, q.in = w.in;
  q.w = device_floats(w.out * w.in);
  if (w.bias.size() != 0) {
    q.bias = device_floats(w.bias.size());
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(q.bias.data(), w.bias.data(), w.bias.size() * sizeof(float),
                                      cudaMemcpyDeviceToDevice, st.stream));
  }
  cuda_detail::grow(st.g, w.in);
  upload_async(st, st.g.data(), s.data(), s.size());
  if (blocks == nullptr) {
    by_group(group, [&]<int G>() {
      launch_fake_quant<G>(st, w.w.data(), st.g.data(), q.w.data(), w.out, w.in);
    });
  } else {
    cuda_detail::grow(st.u, blocks->size());
    upload_async(st, st.u.data(), blocks->data(), blocks->size());
    by_group(group, [&]<int G>() {
      launch_clip<G, true>(st, w.w.data(), st.g.data(), st.u.data(), q.w.data(), w.out, w.in);
    });
  }
  return q;
}

void cuda_backend::clip_linear(linear_f32& l, const std::vector<float>& blocks, std::size_t group) {
  state& st = *s_;
  check_group(group, l.in, "cuda clip_linear");
  check_blocks(blocks, l.in, group, "cuda clip_linear");
  if (l.w.size() != l.out * l.in)
    throw error(error::kind::argument, cat("cuda clip_linear: '", l.name, "' holds ", l.w.size(),
                                           " weights for [", l.out, ", ", l.in, "]"));
  cuda_detail::grow(st.g, l.w.size());
  cuda_detail::grow(st.u, blocks.size());
  upload_async(st, st.g.data(), l.w.data(), l.w.size());
  upload_async(st, st.u.data(), blocks.data(), blocks.size());
  by_group(group, [&]<int G>() {
    launch_clip<G, false>(st, st.g.data(), nullptr, st.u.data(), st.g.data(), l.out, l.in);
  });
  download_sync(st, l.w.data(), st.g.data(), l.w.size());
}

// --- loss ---------------------------------------------------------------------------------------

double cuda_backend::linear_loss(const linear& w, const linear& wq, const cov& c) {
  state& st = *s_;
  if (w.out != wq.out || w.in != wq.in || c.n != w.in)
    throw error(error::kind::argument,
                cat("cuda linear_loss: [", w.out, ", ", w.in, "] against [", wq.out, ", ", wq.in,
                    "] with a covariance of ", c.n, " channels"));
  const std::size_t n = w.out * w.in;
  if (n == 0) return 0.0;
  cuda_detail::grow(st.g, n);  // d = wq - w
  cuda_detail::grow(st.u, n);  // m = d C
  cuda_detail::grow(st.a, 2 * loss_ctas);  // loss_ctas doubles
  diff_kernel<<<grid_for(n, cta_threads), cta_threads, 0, st.stream>>>(wq.w.data(), w.w.data(),
                                                                       st.g.data(), n);
  QFORGE_CUDA_CHECK_LAUNCH();
  // m [out, in] = d [out, in] C^T, and C^T = C up to rounding (and d^T C^T d = d^T C d exactly).
  cuda_detail::gemm_xwT(st, st.g.data(), w.out, w.in, c.v.data(), w.in, st.u.data(), 0.0f, true);
  double* partial = reinterpret_cast<double*>(st.a.data());
  loss_partials<<<loss_ctas, cta_threads, 0, st.stream>>>(st.u.data(), st.g.data(), n, partial);
  QFORGE_CUDA_CHECK_LAUNCH();
  std::vector<double> host(loss_ctas);
  QFORGE_CUDA_CHECK(cudaMemcpyAsync(host.data(), partial, loss_ctas * sizeof(double),
                                    cudaMemcpyDeviceToHost, st.stream));
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  double sum = 0.0;
  for (const double v : host) sum += v;
  return sum / static_cast<double>(w.out);
}

// --- covariances ------------------------------------------------------------------------------

cuda_backend::cov cuda_backend::covariance(const act& a) {
  state& st = *s_;
  const std::size_t n = a.n, rows = stat_rows();
  if (n > static_cast<std::size_t>(INT32_MAX) || rows > static_cast<std::size_t>(INT32_MAX))
    throw error(error::kind::argument, cat("cuda covariance: [", rows, ", ", n, "] is too large"));
  cov c;
  c.n = n;
  c.v = device_floats(n * n);
  if (n == 0) return c;
  const float* x = cuda_detail::stat_rows_of(st, a.v.data(), n, st.q);  // [rows, n]
  // Column-major, x is X^T (n x rows, ld n): C = X^T (X^T)^T, alpha = 1 / rows as the CPU's
  // float multiply after the sum. A plain GEMM fills both triangles (SYRK would leave one).
  const float alpha = 1.0f / static_cast<float>(rows), beta = 0.0f;
  const int ni = static_cast<int>(n), ri = static_cast<int>(rows);
  QFORGE_AWQ_CUBLAS_CHECK(cublasSetStream(st.blas, st.stream));
  QFORGE_AWQ_CUBLAS_CHECK(cublasGemmEx(st.blas, CUBLAS_OP_N, CUBLAS_OP_T, ni, ni, ri, &alpha, x,
                                       CUDA_R_32F, ni, x, CUDA_R_32F, ni, &beta, c.v.data(),
                                       CUDA_R_32F, ni, stat_compute(st), CUBLAS_GEMM_DEFAULT));
  return c;
}

std::vector<float> cuda_backend::group_covariance(const act& a, std::size_t group) {
  state& st = *s_;
  const std::size_t n = a.n, rows = stat_rows();
  check_group(group, n, "cuda group_covariance");
  if (rows > static_cast<std::size_t>(INT32_MAX))
    throw error(error::kind::argument, cat("cuda group_covariance: ", rows, " rows are too many"));
  std::vector<float> out(n * group);
  if (n == 0) return out;
  const float* x = cuda_detail::stat_rows_of(st, a.v.data(), n, st.q);  // [rows, n]
  cuda_detail::grow(st.u, out.size());
  // Block b is columns b*group .. of x: column-major rows b*group.. of X^T (stride `group` between
  // batches, ld n), times its own transpose -> [group, group] at b * group^2 (ld group). Its
  // column-major layout is the row-major one transposed, and the block is symmetric.
  const float alpha = 1.0f / static_cast<float>(rows), beta = 0.0f;
  const int gi = static_cast<int>(group), ni = static_cast<int>(n), ri = static_cast<int>(rows);
  const long long sg = static_cast<long long>(group);
  QFORGE_AWQ_CUBLAS_CHECK(cublasSetStream(st.blas, st.stream));
  QFORGE_AWQ_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      st.blas, CUBLAS_OP_N, CUBLAS_OP_T, gi, gi, ri, &alpha, x, CUDA_R_32F, ni, sg, x, CUDA_R_32F,
      ni, sg, &beta, st.u.data(), CUDA_R_32F, gi, sg * sg, static_cast<int>(n / group),
      stat_compute(st), CUBLAS_GEMM_DEFAULT));
  download_sync(st, out.data(), st.u.data(), out.size());
  return out;
}

std::vector<float> cuda_backend::cov_blocks(const cov& c, std::size_t group) {
  state& st = *s_;
  check_group(group, c.n, "cuda cov_blocks");
  std::vector<float> out(c.n * group);
  if (out.empty()) return out;
  cuda_detail::grow(st.u, out.size());
  diag_blocks_kernel<<<grid_for(out.size(), cta_threads), cta_threads, 0, st.stream>>>(
      c.v.data(), c.n, static_cast<int>(group), st.u.data());
  QFORGE_CUDA_CHECK_LAUNCH();
  download_sync(st, out.data(), st.u.data(), out.size());
  return out;
}

}  // namespace qforge::awq
