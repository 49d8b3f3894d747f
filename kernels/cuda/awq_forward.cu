// SPDX-License-Identifier: MIT
// The forward half of awq::cuda_backend (awq/cuda/backend.hpp): device memory, the calibration
// layout on the device, dense products through cuBLAS, and the block pieces and statistics of
// awq::block_runner / cpu_backend (kernels in awq/cuda/forward_kernels.cuh and attention.cuh).
// awq_quant.cu holds the quantization half. Every kernel and copy goes to the backend's own
// non-blocking stream, so two backends (the search's and the one finishing blocks in the
// background) never wait on each other; device_floats' public upload / download, which know no
// stream, wait for the whole device first.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "qforge/awq/cuda/attention.cuh"
#include "qforge/awq/cuda/attention_mma.cuh"
#include "qforge/awq/cuda/backend_state.hpp"
#include "qforge/awq/cuda/forward_kernels.cuh"
#include "qforge/backend/cuda_check.hpp"
#include "qforge/core/error.hpp"
#include "qforge/engine/cuda/common.cuh"

namespace qforge::awq {

namespace {
using engine::cuda::detail::grid_dim;
using engine::cuda::detail::launch;
namespace fwd = cuda_detail::fwd;

[[noreturn]] void throw_blas(cublasStatus_t s, const char* call) {
  throw error(error::kind::cuda, cat(call, ": cuBLAS status ", static_cast<int>(s)));
}
#define QFORGE_AWQ_CUBLAS_CHECK(call)                                              \
  do {                                                                             \
    const cublasStatus_t qforge_blas_status_ = (call);                             \
    if (qforge_blas_status_ != CUBLAS_STATUS_SUCCESS) throw_blas(qforge_blas_status_, #call); \
  } while (0)

void check(bool ok, const char* who, const std::string& what) {
  if (!ok) throw error(error::kind::argument, cat("awq cuda backend ", who, ": ", what));
}

int as_int(std::size_t v, const char* who) {
  check(v <= static_cast<std::size_t>(INT_MAX), who, cat("size ", v, " is too large"));
  return static_cast<int>(v);
}

// Elementwise launch: one thread per item.
template <class... Params, class... Args>
void launch_items(void (*kernel)(Params...), std::size_t items, cudaStream_t stream,
                  const char* who, Args&&... args) {
  if (items == 0) return;
  launch(kernel, dim3(grid_dim(items, fwd::fwd_threads, who)), dim3(fwd::fwd_threads), 0, stream,
         false, std::forward<Args>(args)...);
}

std::atomic<std::size_t> alloc_now{0}, alloc_peak{0};

template <class T>
T* device_alloc(std::size_t count) {
  if (count == 0) return nullptr;
  void* p = nullptr;
  QFORGE_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
  cuda_detail::note_alloc(count * sizeof(T));
  return static_cast<T*>(p);
}

template <class T>
void device_release(T*& p, std::size_t count) noexcept {
  if (p == nullptr) return;
  cudaFree(p);
  cuda_detail::note_free(count * sizeof(T));
  p = nullptr;
}

std::int32_t* upload_ints(cudaStream_t stream, const std::vector<std::int32_t>& v) {
  std::int32_t* p = device_alloc<std::int32_t>(v.size());
  if (p != nullptr)
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(p, v.data(), v.size() * sizeof(std::int32_t),
                                      cudaMemcpyHostToDevice, stream));
  return p;
}

// Host floats into a device array on the backend's stream (from pageable memory the call returns
// once the data is staged, so the source may go right after).
void put(cudaStream_t stream, device_floats& dst, std::span<const float> host) {
  check(host.size() == dst.size(), "upload", cat(host.size(), " floats into an array of ", dst.size()));
  if (!host.empty())
    QFORGE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), host.data(), host.size_bytes(),
                                      cudaMemcpyHostToDevice, stream));
}

// Freed arrays stay with their host thread, by exact size, for that thread's next array of the
// size: the search allocates the same sizes for every candidate and block, and cudaMalloc /
// cudaFree synchronise the whole device (stalling the other backend's stream). A thread drives
// one backend, so an array it reuses is ordered after its last use on that backend's stream.
struct array_cache {
  std::multimap<std::size_t, float*> free;
  void release() noexcept {
    for (auto& [n, p] : free) {
      cudaFree(p);
      cuda_detail::note_free(n * sizeof(float));
    }
    free.clear();
  }
  ~array_cache() { release(); }
};
thread_local array_cache cached_arrays;

float* take_array(std::size_t n) {
  if (n == 0) return nullptr;
  auto& c = cached_arrays.free;
  if (auto it = c.find(n); it != c.end()) {
    float* p = it->second;
    c.erase(it);
    return p;
  }
  void* p = nullptr;
  if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) {  // give the cache back, then retry
    cudaGetLastError();
    cached_arrays.release();
    QFORGE_CUDA_CHECK(cudaMalloc(&p, n * sizeof(float)));
  }
  cuda_detail::note_alloc(n * sizeof(float));
  return static_cast<float*>(p);
}

void give_back(float*& p, std::size_t n) noexcept {
  if (p == nullptr) return;
  try {
    cached_arrays.free.emplace(n, p);
  } catch (...) {
    cudaFree(p);
    cuda_detail::note_free(n * sizeof(float));
  }
  p = nullptr;
}

// y [n, out] += bias per output, when the linear has one (linear_forward adds it after the product).
void add_bias(cuda_backend::state& st, const cuda_backend::linear& l, float* y) {
  if (l.bias.size() == 0) return;
  launch_items(fwd::bias_add_kernel, st.tokens * l.out, st.stream, "awq bias", y, l.bias.data(),
               st.tokens * l.out, l.out);
}

// y = x W^T + bias over every token (half_x: x already staged in fp16, see stage_half_x).
void apply(cuda_backend::state& st, const cuda_backend::linear& l, const float* x, float* y,
           const void* half_x = nullptr) {
  cuda_detail::gemm_xwT(st, x, st.tokens, l.in, l.w.data(), l.out, y, 0.0f, false, half_x);
  add_bias(st, l, y);
}

std::vector<double> download_doubles(cuda_backend::state& st, const device_floats& buf,
                                     std::size_t n) {
  std::vector<double> h(n);
  if (n == 0) return h;
  QFORGE_CUDA_CHECK(cudaMemcpyAsync(h.data(), buf.data(), n * sizeof(double),
                                    cudaMemcpyDeviceToHost, st.stream));
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  return h;
}

// Per channel of a [tokens, n]: the stat rows' (or every token's) sum of |x|, max |x| or sum of
// x^2 in double, as the host would compute it up to summation order.
template <fwd::channel_op Op>
std::vector<double> channel_stat(cuda_backend::state& st, const cuda_backend::act& a,
                                 bool every_token) {
  const std::size_t n = a.n;
  const bool all = every_token || st.all_rows;
  const std::size_t nrows = every_token ? st.tokens : st.rows.size();
  if (n == 0 || nrows == 0) return std::vector<double>(n, 0.0);
  // Enough row chunks to fill the device: ~2048 CTAs in all, at least 32 rows per chunk.
  const std::size_t col_blocks = (n + fwd::fwd_threads - 1) / fwd::fwd_threads;
  std::size_t chunks = std::max<std::size_t>(1, 2048 / col_blocks);
  chunks = std::min(chunks, std::min<std::size_t>(65535, (nrows + 31) / 32));
  const std::size_t per = (nrows + chunks - 1) / chunks;
  chunks = (nrows + per - 1) / per;
  cuda_detail::grow(st.red, 2 * (chunks + 1) * n);
  auto* part = reinterpret_cast<double*>(st.red.data());
  double* out = part + chunks * n;
  launch(fwd::channel_partial_kernel<Op>,
         dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks)),
         dim3(fwd::fwd_threads), 0, st.stream, false, a.v.data(), n,
         all ? static_cast<const std::int32_t*>(nullptr) : st.stat_rows,
         as_int(nrows, "channel statistics"), static_cast<int>(per), part);
  launch_items(fwd::channel_combine_kernel, n, st.stream, "awq channel combine", part, n,
               static_cast<int>(chunks), Op == fwd::channel_op::abs_max ? 1 : 0, out);
  std::vector<double> h(n);
  QFORGE_CUDA_CHECK(cudaMemcpyAsync(h.data(), out, n * sizeof(double), cudaMemcpyDeviceToHost,
                                    st.stream));
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  return h;
}

// Float32 attention (attention.cuh), or with tensor_cores the fp16-operand one (attention_mma.cuh;
// D 64 or 128 only).
template <int D>
void attention_d(cuda_backend::state& st, const float* q, const float* k, const float* v,
                 float* out, bool tensor_cores) {
  const auto& c = st.cfg;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  if constexpr (fwd::mma_attn_supported(D)) {
    if (tensor_cores) {
      constexpr std::size_t smem = fwd::mma_attn_smem_bytes<D>();
      QFORGE_CUDA_CHECK(cudaFuncSetAttribute(fwd::attention_mma_kernel<D>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(smem)));
      const dim3 grid(grid_dim(st.tokens, 16 * fwd::mma_attn_warps, "awq attention"), c.n_heads);
      launch(fwd::attention_mma_kernel<D>, grid, dim3(32 * fwd::mma_attn_warps), smem, st.stream,
             false, q, k, v, out, static_cast<const int*>(st.seq_first),
             static_cast<int>(st.tokens), static_cast<int>(st.q_dim), static_cast<int>(st.kv_dim),
             static_cast<int>(c.n_heads / c.n_kv_heads), scale);
      return;
    }
  }
  constexpr std::size_t smem = fwd::attn_smem_bytes<D>();
  QFORGE_CUDA_CHECK(cudaFuncSetAttribute(fwd::attention_kernel<D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
  const dim3 grid(grid_dim(st.tokens, fwd::attn_bq, "awq attention"), c.n_heads);
  launch(fwd::attention_kernel<D>, grid, dim3(fwd::attn_threads), smem, st.stream, false, q, k, v,
         out, static_cast<const int*>(st.seq_first), static_cast<int>(st.tokens),
         static_cast<int>(st.q_dim), static_cast<int>(st.kv_dim),
         static_cast<int>(c.n_heads / c.n_kv_heads), scale);
}

}  // namespace

// --- device_floats -------------------------------------------------------------------------------

device_floats::device_floats(std::size_t n) : p_(take_array(n)), n_(n) {}

device_floats::~device_floats() { give_back(p_, n_); }

device_floats::device_floats(device_floats&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}

device_floats& device_floats::operator=(device_floats&& o) noexcept {
  if (this != &o) {
    give_back(p_, n_);
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
  }
  return *this;
}

// The backends' streams do not order with these plain copies, so the device is idle first.
void device_floats::upload(std::span<const float> host) {
  check(host.size() == n_, "upload", cat(host.size(), " floats into an array of ", n_));
  if (n_ == 0) return;
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  QFORGE_CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(float), cudaMemcpyHostToDevice));
}

std::vector<float> device_floats::download() const {
  std::vector<float> h(n_);
  if (n_ == 0) return h;
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  QFORGE_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(float), cudaMemcpyDeviceToHost));
  return h;
}

// --- shared helpers (backend_state.hpp) --------------------------------------------------------

namespace cuda_detail {

void note_alloc(std::size_t bytes) noexcept {
  const std::size_t now = alloc_now.fetch_add(bytes) + bytes;
  std::size_t peak = alloc_peak.load();
  while (now > peak && !alloc_peak.compare_exchange_weak(peak, now)) {
  }
}
void note_free(std::size_t bytes) noexcept { alloc_now.fetch_sub(bytes); }
std::size_t peak_alloc() noexcept { return alloc_peak.load(); }

// The old buffer goes first so the peak never holds both. cudaFree waits for the device, so work
// still queued on the old buffer is done before it goes.
void grow(device_floats& buf, std::size_t n) {
  if (buf.size() >= n) return;
  buf = device_floats{};
  buf = device_floats(n);
}

void grow_raw(void*& p, std::size_t& have, std::size_t bytes) {
  if (have >= bytes) return;
  auto* b = static_cast<std::byte*>(p);
  device_release(b, have);
  p = nullptr;
  have = 0;
  p = device_alloc<std::byte>(bytes);
  have = bytes;
}

const void* stage_half_x(cuda_backend::state& st, const float* x, std::size_t n, std::size_t in) {
  if (st.opt.dense != cuda_backend_options::math::f16 || n * in == 0) return nullptr;
  grow_raw(st.half_x, st.half_x_bytes, n * in * sizeof(__half));
  launch_items(fwd::to_half_kernel, n * in, st.stream, "awq to_half", x,
               static_cast<__half*>(st.half_x), n * in);
  return st.half_x;
}

void gemm_xwT(cuda_backend::state& st, const float* x, std::size_t n, std::size_t in,
              const float* w, std::size_t out, float* y, float beta, bool precise,
              const void* half_x) {
  if (n == 0 || out == 0) return;
  const int m_ = as_int(out, "gemm"), k_ = as_int(std::max<std::size_t>(in, 1), "gemm");
  as_int(n, "gemm");
  using math = cuda_backend_options::math;
  math mode = st.opt.dense;
  if (precise && mode == math::f16) mode = math::tf32;
  const float alpha = 1.0f;
  // Column-major view: w row-major [out, in] is a column-major [in, out] matrix (ld in), so OP_T
  // makes it W [out, in]; x row-major [n, in] is column-major X^T [in, n] (ld in). Then
  // C = W X^T is [out, n] column-major (ld out), i.e. y row-major [n, out] = x W^T.
  if (mode != math::f16) {
    const cublasComputeType_t ct =
        mode == math::f32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    QFORGE_AWQ_CUBLAS_CHECK(cublasGemmEx(st.blas, CUBLAS_OP_T, CUBLAS_OP_N, m_,
                                         static_cast<int>(n), static_cast<int>(in), &alpha, w,
                                         CUDA_R_32F, k_, x, CUDA_R_32F, k_, &beta, y, CUDA_R_32F,
                                         m_, ct, CUBLAS_GEMM_DEFAULT));
    return;
  }
  // fp16 operands: w, and x unless the caller staged it once for several products. One product
  // over every token (cuBLAS is most efficient on the whole; the fp16 copy of a 7B MLP's 65 536 x
  // 11 008 activations is 1.4 GiB).
  grow_raw(st.half_w, st.half_w_bytes, out * in * sizeof(__half));
  launch_items(fwd::to_half_kernel, out * in, st.stream, "awq to_half", w,
               static_cast<__half*>(st.half_w), out * in);
  if (half_x == nullptr) half_x = stage_half_x(st, x, n, in);
  QFORGE_AWQ_CUBLAS_CHECK(cublasGemmEx(st.blas, CUBLAS_OP_T, CUBLAS_OP_N, m_, static_cast<int>(n),
                                       static_cast<int>(in), &alpha, st.half_w, CUDA_R_16F, k_,
                                       half_x, CUDA_R_16F, k_, &beta, y, CUDA_R_32F, m_,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

const float* stat_rows_of(cuda_backend::state& st, const float* x, std::size_t n,
                          device_floats& dst) {
  if (st.all_rows) return x;
  const std::size_t count = st.rows.size() * n;
  grow(dst, count);
  launch_items(fwd::gather_rows_kernel, count, st.stream, "awq gather rows", x,
               static_cast<const int*>(st.stat_rows), n, dst.data(), count);
  return dst.data();
}

}  // namespace cuda_detail

// --- cuda_backend: construction and data -------------------------------------------------------

cuda_backend::state::~state() {
  device_release(pos, tokens);
  device_release(seq_first, tokens);
  device_release(stat_rows, rows.size());
  auto* hx = static_cast<std::byte*>(half_x);
  device_release(hx, half_x_bytes);
  auto* hw = static_cast<std::byte*>(half_w);
  device_release(hw, half_w_bytes);
  if (blas != nullptr) cublasDestroy(blas);
  if (stream != nullptr) cudaStreamDestroy(stream);
}

cuda_backend::cuda_backend(const engine::model_config& c, std::vector<std::size_t> seq_len,
                           std::vector<std::size_t> rows, const cuda_backend_options& o)
    : s_(std::make_unique<state>()) {
  state& st = *s_;
  st.cfg = c;
  st.opt = o;
  check(c.head_dim > 0 && c.head_dim % 2 == 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
            c.n_heads % c.n_kv_heads == 0,
        "config", cat("head_dim ", c.head_dim, ", heads ", c.n_heads, "/", c.n_kv_heads));
  std::vector<std::int32_t> pos, first;
  for (const std::size_t len : seq_len) {
    const std::size_t f = st.tokens;
    st.tokens += len;
    check(st.tokens <= static_cast<std::size_t>(INT_MAX), "layout", "too many tokens");
    st.longest = std::max(st.longest, len);
    for (std::size_t i = 0; i < len; ++i) {
      pos.push_back(static_cast<std::int32_t>(i));
      first.push_back(static_cast<std::int32_t>(f));
    }
  }
  std::vector<std::int32_t> rows32;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    check(rows[i] < st.tokens && (i == 0 || rows[i] > rows[i - 1]), "layout",
          cat("stat row ", rows[i], " (index ", i, ") is out of order or past ", st.tokens,
              " tokens"));
    rows32.push_back(static_cast<std::int32_t>(rows[i]));
  }
  st.seq_len = std::move(seq_len);
  st.rows = std::move(rows);
  st.all_rows = st.rows.size() == st.tokens;
  st.q_dim = std::size_t{c.n_heads} * c.head_dim;
  st.kv_dim = std::size_t{c.n_kv_heads} * c.head_dim;

  QFORGE_CUDA_CHECK(cudaSetDevice(o.device));
  // Non-blocking: the background backend's work must not serialise with this one's through the
  // legacy stream; every copy of ours is on the stream.
  QFORGE_CUDA_CHECK(cudaStreamCreateWithFlags(&st.stream, cudaStreamNonBlocking));
  QFORGE_AWQ_CUBLAS_CHECK(cublasCreate(&st.blas));
  QFORGE_AWQ_CUBLAS_CHECK(cublasSetStream(st.blas, st.stream));

  // RoPE tables exactly as block_runner builds them (angle in double, cos/sin cast to float).
  const std::size_t half = c.head_dim / 2;
  std::vector<float> cs(st.longest * half), sn(st.longest * half);
  for (std::size_t p = 0; p < st.longest; ++p)
    for (std::size_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) / c.rope_linear_factor *
                       c.inv_freq(static_cast<std::uint32_t>(i));
      cs[p * half + i] = static_cast<float>(std::cos(a));
      sn[p * half + i] = static_cast<float>(std::sin(a));
    }
  st.rope_cos = device_floats(cs.size());
  put(st.stream, st.rope_cos, cs);
  st.rope_sin = device_floats(sn.size());
  put(st.stream, st.rope_sin, sn);
  st.pos = upload_ints(st.stream, pos);
  st.seq_first = upload_ints(st.stream, first);
  st.stat_rows = upload_ints(st.stream, rows32);
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(st.stream));  // the host vectors go at return
}

cuda_backend::~cuda_backend() {
  s_.reset();
  cached_arrays.release();
}

std::size_t cuda_backend::tokens() const noexcept { return s_->tokens; }
std::size_t cuda_backend::stat_rows() const noexcept { return s_->rows.size(); }
std::size_t cuda_backend::peak_bytes() const noexcept { return cuda_detail::peak_alloc(); }

cuda_backend::act cuda_backend::make_act(std::size_t n) {
  return {n, device_floats(s_->tokens * n)};
}

void cuda_backend::upload(act& a, std::span<const float> host) {
  check(host.size() == s_->tokens * a.n && a.v.size() == host.size(), "upload",
        cat(host.size(), " floats for ", s_->tokens, " tokens x ", a.n));
  if (host.empty()) return;
  // Pageable source: the call returns once the data is staged, so `host` may go right after.
  QFORGE_CUDA_CHECK(cudaMemcpyAsync(a.v.data(), host.data(), host.size_bytes(),
                                    cudaMemcpyHostToDevice, s_->stream));
}

std::vector<float> cuda_backend::download(const act& a) {
  std::vector<float> h(a.v.size());
  if (h.empty()) return h;
  QFORGE_CUDA_CHECK(cudaMemcpyAsync(h.data(), a.v.data(), h.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost, s_->stream));
  QFORGE_CUDA_CHECK(cudaStreamSynchronize(s_->stream));
  return h;
}

cuda_backend::linear cuda_backend::upload(const linear_f32& l) {
  check(l.w.size() == l.out * l.in && (l.bias.empty() || l.bias.size() == l.out), "upload",
        cat(l.name, ": ", l.w.size(), " weights, ", l.bias.size(), " biases for ", l.out, " x ",
            l.in));
  linear d{l.out, l.in, device_floats(l.w.size()), device_floats(l.bias.size())};
  put(s_->stream, d.w, l.w);
  put(s_->stream, d.bias, l.bias);
  return d;
}

void cuda_backend::set_qk_norms(std::span<const float> q_norm, std::span<const float> k_norm) {
  const std::size_t D = s_->cfg.head_dim;
  check((q_norm.empty() || q_norm.size() == D) && (k_norm.empty() || k_norm.size() == D),
        "set_qk_norms", cat(q_norm.size(), " and ", k_norm.size(), " weights for head dim ", D));
  s_->q_norm = device_floats(q_norm.size());
  put(s_->stream, s_->q_norm, q_norm);
  s_->k_norm = device_floats(k_norm.size());
  put(s_->stream, s_->k_norm, k_norm);
}

// --- forward pieces ----------------------------------------------------------------------------

void cuda_backend::norm(const act& x, std::span<const float> w, act& out) {
  state& st = *s_;
  check(w.size() == x.n && out.n == x.n, "norm",
        cat(w.size(), " weights for rows of ", x.n, " into rows of ", out.n));
  if (st.tokens == 0 || x.n == 0) return;
  cuda_detail::grow(st.norm_w, w.size());
  QFORGE_CUDA_CHECK(cudaMemcpyAsync(st.norm_w.data(), w.data(), w.size_bytes(),
                                    cudaMemcpyHostToDevice, st.stream));
  launch(fwd::rms_norm_kernel, dim3(grid_dim(st.tokens, 1, "awq norm")), dim3(fwd::fwd_threads),
         0, st.stream, false, static_cast<const float*>(x.v.data()),
         static_cast<const float*>(st.norm_w.data()), out.v.data(), as_int(x.n, "norm"),
         st.cfg.rms_eps);
}

void cuda_backend::self_attn(const linear& q, const linear& k, const linear& v, const linear& o,
                             const act& xn, act& out, act* attn_in) {
  state& st = *s_;
  const auto& c = st.cfg;
  const std::size_t D = c.head_dim;
  check(q.in == xn.n && k.in == xn.n && v.in == xn.n && q.out == st.q_dim &&
            k.out == st.kv_dim && v.out == st.kv_dim && o.in == st.q_dim && o.out == out.n &&
            (attn_in == nullptr || attn_in->n == st.q_dim),
        "self_attn",
        cat("shapes q ", q.out, "x", q.in, ", k ", k.out, "x", k.in, ", v ", v.out, "x", v.in,
            ", o ", o.out, "x", o.in, " for input width ", xn.n, " and output width ", out.n));
  if (c.qk_norm)
    check(s_->q_norm.size() == D && s_->k_norm.size() == D, "self_attn",
          "the model has q/k norms but set_qk_norms gave none");
  if (D != 64 && D != 128 && D != 192 && D != 256)
    throw error(error::kind::unsupported,
                cat("awq cuda backend: attention head dim ", D, " (64, 128, 192 or 256)"));
  if (st.tokens == 0) return;
  const std::size_t T = st.tokens;
  cuda_detail::grow(st.q, T * st.q_dim);
  cuda_detail::grow(st.k, T * st.kv_dim);
  cuda_detail::grow(st.v, T * st.kv_dim);
  // The attention output goes straight into attn_in when the caller wants it (no copy).
  float* a = attn_in != nullptr ? attn_in->v.data() : nullptr;
  if (a == nullptr) {
    cuda_detail::grow(st.a, T * st.q_dim);
    a = st.a.data();
  }
  // q, k and v share their input: in fp16 math it is converted once.
  const void* hx = cuda_detail::stage_half_x(st, xn.v.data(), T, xn.n);
  cuda_detail::gemm_xwT(st, xn.v.data(), T, xn.n, q.w.data(), q.out, st.q.data(), 0.0f, false, hx);
  cuda_detail::gemm_xwT(st, xn.v.data(), T, xn.n, k.w.data(), k.out, st.k.data(), 0.0f, false, hx);
  apply(st, v, xn.v.data(), st.v.data(), hx);
  // q and k biases are added in the per-head kernel, before the norm, as linear_forward does.
  const bool norms = c.qk_norm;
  const std::size_t jobs = T * (c.n_heads + c.n_kv_heads);
  launch(fwd::qk_norm_rope_kernel, dim3(grid_dim(jobs, fwd::rope_warps, "awq rope")),
         dim3(32 * fwd::rope_warps), 0, st.stream, false, st.q.data(), st.k.data(),
         q.bias.size() != 0 ? static_cast<const float*>(q.bias.data()) : nullptr,
         k.bias.size() != 0 ? static_cast<const float*>(k.bias.data()) : nullptr,
         norms ? static_cast<const float*>(st.q_norm.data()) : nullptr,
         norms ? static_cast<const float*>(st.k_norm.data()) : nullptr,
         static_cast<const float*>(st.rope_cos.data()),
         static_cast<const float*>(st.rope_sin.data()), static_cast<const int*>(st.pos),
         static_cast<int>(T), static_cast<int>(c.n_heads), static_cast<int>(c.n_kv_heads),
         static_cast<int>(D), c.rope == engine::rope_style::neox ? 1 : 0, c.rms_eps);
  // f16 math runs the two attention products on tensor cores with fp16 operands, as its dense
  // products; tf32 keeps float32 (its activations never pass through fp16's range).
  const bool tc = st.opt.dense == cuda_backend_options::math::f16;
  switch (D) {
    case 64: attention_d<64>(st, st.q.data(), st.k.data(), st.v.data(), a, tc); break;
    case 128: attention_d<128>(st, st.q.data(), st.k.data(), st.v.data(), a, tc); break;
    case 192: attention_d<192>(st, st.q.data(), st.k.data(), st.v.data(), a, tc); break;
    default: attention_d<256>(st, st.q.data(), st.k.data(), st.v.data(), a, tc); break;
  }
  apply(st, o, a, out.v.data());
}

void cuda_backend::mlp(const linear& gate, const linear& up, const linear& down, const act& xn,
                       act& out, act* act_out) {
  state& st = *s_;
  const std::size_t F = gate.out, T = st.tokens;
  check(gate.in == xn.n && up.in == xn.n && up.out == F && down.in == F && down.out == out.n &&
            (act_out == nullptr || act_out->n == F),
        "mlp",
        cat("shapes gate ", gate.out, "x", gate.in, ", up ", up.out, "x", up.in, ", down ",
            down.out, "x", down.in, " for input width ", xn.n, " and output width ", out.n));
  if (T == 0) return;
  cuda_detail::grow(st.g, T * F);
  cuda_detail::grow(st.u, T * F);
  const void* hx = cuda_detail::stage_half_x(st, xn.v.data(), T, xn.n);  // shared by gate and up
  apply(st, gate, xn.v.data(), st.g.data(), hx);
  apply(st, up, xn.v.data(), st.u.data(), hx);
  if (act_out == nullptr && st.opt.dense == cuda_backend_options::math::f16) {
    // The down product's fp16 operand straight from the SwiGLU (no float pass in between).
    cuda_detail::grow_raw(st.half_x, st.half_x_bytes, T * F * sizeof(__half));
    launch_items(fwd::swiglu_half_kernel, T * F, st.stream, "awq swiglu",
                 static_cast<const float*>(st.g.data()), static_cast<const float*>(st.u.data()),
                 static_cast<__half*>(st.half_x), T * F);
    apply(st, down, nullptr, out.v.data(), st.half_x);
    return;
  }
  // silu(g) * u straight into act_out when the caller wants it (no copy).
  float* h = act_out != nullptr ? act_out->v.data() : st.g.data();
  launch_items(fwd::swiglu_kernel, T * F, st.stream, "awq swiglu",
               static_cast<const float*>(st.g.data()), static_cast<const float*>(st.u.data()), h,
               T * F);
  apply(st, down, h, out.v.data());
}

void cuda_backend::add(const act& a, const act& b, act& out) {
  check(a.v.size() == b.v.size() && out.v.size() == a.v.size(), "add",
        cat(a.v.size(), " + ", b.v.size(), " into ", out.v.size()));
  launch_items(fwd::add_kernel, a.v.size(), s_->stream, "awq add",
               static_cast<const float*>(a.v.data()), static_cast<const float*>(b.v.data()),
               out.v.data(), a.v.size());
}

// --- statistics --------------------------------------------------------------------------------

double cuda_backend::mse_rows(const act& a, const act& b) {
  state& st = *s_;
  check(a.n == b.n && a.v.size() == b.v.size(), "mse_rows", cat("widths ", a.n, " and ", b.n));
  const std::size_t NS = st.rows.size();
  // No rows or no columns: the CPU divides 0 by 0.
  if (NS == 0 || a.n == 0) return std::numeric_limits<double>::quiet_NaN();
  cuda_detail::grow(st.red, 2 * NS);
  auto* per_row = reinterpret_cast<double*>(st.red.data());
  launch(fwd::row_mse_kernel, dim3(grid_dim(NS, 1, "awq mse_rows")), dim3(fwd::fwd_threads), 0,
         st.stream, false, static_cast<const float*>(a.v.data()),
         static_cast<const float*>(b.v.data()),
         st.all_rows ? static_cast<const int*>(nullptr) : static_cast<const int*>(st.stat_rows),
         as_int(a.n, "mse_rows"), per_row);
  // The mean over rows on the host, in row order: the CPU's outer sum exactly.
  const std::vector<double> m = download_doubles(st, st.red, NS);
  double acc = 0;
  for (const double v : m) acc += v;
  return acc / static_cast<double>(NS);
}

std::vector<float> cuda_backend::channel_abs_mean(const act& a) {
  const std::vector<double> s = channel_stat<fwd::channel_op::abs_sum>(*s_, a, false);
  const std::size_t rows = s_->rows.size();
  std::vector<float> out(a.n);
  for (std::size_t c = 0; c < a.n; ++c)
    out[c] = rows ? static_cast<float>(s[c] / static_cast<double>(rows)) : 0.0f;
  return out;
}

std::vector<float> cuda_backend::channel_abs_max(const act& a) {
  const std::vector<double> m = channel_stat<fwd::channel_op::abs_max>(*s_, a, false);
  return std::vector<float>(m.begin(), m.end());  // maxima of floats: exact
}

std::vector<double> cuda_backend::channel_sq_sum(const act& a) {
  return channel_stat<fwd::channel_op::sq_sum>(*s_, a, true);
}

}  // namespace qforge::awq
