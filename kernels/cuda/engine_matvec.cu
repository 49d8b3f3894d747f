// SPDX-License-Identifier: MIT
// Compiled instantiations of the engine's quantized CUDA matvecs (engine/cuda/matvec_blocks.cuh,
// matvec_awq.cuh) behind the host API of engine/cuda/matvec.hpp: argument checks, then a switch
// from run-time (type, tokens, rows per warp) to the template instance. Batches above 8 tokens are
// cut into launches of 8.
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "qforge/engine/cuda/matvec.hpp"
#include "qforge/engine/cuda/matvec_awq.cuh"
#include "qforge/engine/cuda/matvec_blocks.cuh"

namespace qforge::engine::cuda {

namespace {
using namespace detail;

// Rows per warp for one token, the best of 1 / 2 / 4 per type on the H100 across 4096x4096,
// 11008x4096 and 4096x11008 (bench/device/run_cuda_engine.sh): more rows share each activation
// read but cost registers (Q4_K with 8-bit x: 139 at 4 rows, one CTA per SM; 80 at 2, three), and
// Q4_K is the type with the fewest weight bytes per activation read. Q4_K with 8-bit x takes 2
// rows once a matrix has enough of them to keep three CTAs per SM busy (11008 rows: 81.3 % of
// copy bandwidth at 2, 78.7 % at 4; 4096 rows: 61.7 / 58.6 % at 2 against 61.0 / 65.6 % at 4).
template <class U>
int default_rows_per_warp(std::size_t rows) noexcept {
  if constexpr (std::is_same_v<U, q4_k_q8_unit>) return rows >= 8192 ? 2 : 4;
  else if constexpr (std::is_same_v<U, q4_k_unit>) return 4;
  else if constexpr (std::is_same_v<U, q6_k_q8_unit>) return 2;
  else if constexpr (std::is_same_v<U, f16_unit>) return 2;
  else return 1;
}

bool aligned(const void* p, std::size_t a) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) % a == 0;
}

// The prologue as the kernels take it.
struct pro_args {
  int op = prologue_none;
  const float* w = nullptr;
  float eps = 0.0f;
};

template <class U, int NT>
void launch_nt(int rpw, const std::uint8_t* w, std::size_t row_bytes, std::size_t rows,
               std::size_t cols, const float* x, std::size_t ldx, float* y, std::size_t ldy,
               bool acc, const launch_opts& o, const pro_args& p) {
  const auto go = [&](auto r) {
    launch_matvec<U, decltype(r)::value, NT>(w, row_bytes, rows, cols, x, ldx, y, ldy, acc,
                                             o.stream, o.pdl, o.early_trigger, p.op, p.w, p.eps);
  };
  if constexpr (NT == 1) {
    if (rpw == 1) go(std::integral_constant<int, 1>{});
    else if (rpw == 4) go(std::integral_constant<int, 4>{});
    else go(std::integral_constant<int, 2>{});
  } else if constexpr (NT == 2) {
    if (rpw == 1) go(std::integral_constant<int, 1>{});
    else go(std::integral_constant<int, 2>{});
  } else {
    go(std::integral_constant<int, 1>{});
  }
}

template <class U>
void run_blocks(const std::uint8_t* w, std::size_t row_bytes, std::size_t rows, std::size_t cols,
                const float* x, std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy,
                bool acc, const launch_opts& o, const pro_args& p) {
  const int rpw = o.rows_per_warp != 0 ? o.rows_per_warp : default_rows_per_warp<U>(rows);
  if constexpr (U::int8_x) {  // single tokens only (matvec() picks these units for them)
    QFORGE_ASSERT(tokens == 1);
    launch_nt<U, 1>(rpw, w, row_bytes, rows, cols, x, ldx, y, ldy, acc, o, p);
  } else {
    // Tokens per launch: as many as max_batch and the shared-memory copy of x allow.
    const std::size_t per_token = x_smem_bytes<U>(cols, 1);
    const std::size_t cap = std::min<std::size_t>(max_batch, max_smem / per_token);
    if (cap == 0)
      throw error(error::kind::argument,
                  cat(U::name, ": ", cols, " columns do not fit in shared memory"));
    for (std::size_t t0 = 0; t0 < tokens; t0 += cap) {
      const std::size_t nt = std::min(cap, tokens - t0);
      const float* xt = x + t0 * ldx;
      float* yt = y + t0 * ldy;
      switch (nt) {
        case 1: launch_nt<U, 1>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        case 2: launch_nt<U, 2>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        case 3: launch_nt<U, 3>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        case 4: launch_nt<U, 4>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        case 5: launch_nt<U, 5>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        case 6: launch_nt<U, 6>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        case 7: launch_nt<U, 7>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
        default: launch_nt<U, 8>(rpw, w, row_bytes, rows, cols, xt, ldx, yt, ldy, acc, o, p); break;
      }
    }
  }
}

pro_args check_prologue(const char* who, const x_prologue& pre, std::size_t cols, std::size_t ldx) {
  switch (pre.kind) {
    case x_prologue::op::none: return {};
    case x_prologue::op::rms_norm:
      if (pre.norm_weight == nullptr || !aligned(pre.norm_weight, 16))
        throw error(error::kind::argument, cat(who, ": rms_norm needs 16-byte aligned weights"));
      return {prologue_rms_norm, pre.norm_weight, pre.eps};
    case x_prologue::op::swiglu:
      if (ldx < 2 * cols)
        throw error(error::kind::argument, cat(who, ": swiglu needs ldx >= ", 2 * cols));
      return {prologue_swiglu, nullptr, 0.0f};
  }
  throw error(error::kind::argument, cat(who, ": unknown prologue"));
}

void check_x(const char* who, const float* x, std::size_t ldx, std::size_t cols, const float* y,
             std::size_t ldy, std::size_t rows) {
  if (x == nullptr || y == nullptr)
    throw error(error::kind::argument, cat(who, ": null x or y"));
  if (!aligned(x, 16) || ldx % 4 != 0 || ldx < cols)
    throw error(error::kind::argument,
                cat(who, ": x must be 16-byte aligned with ldx % 4 == 0 and ldx >= ", cols,
                    " (ldx ", ldx, ")"));
  if (ldy < rows) throw error(error::kind::argument, cat(who, ": ldy ", ldy, " < ", rows, " rows"));
  if (rows > INT_MAX || cols > INT_MAX)
    throw error(error::kind::argument, cat(who, ": ", rows, " x ", cols, " is too large"));
}
}  // namespace

bool can_matvec(quant::qtype t) noexcept {
  using quant::qtype;
  return t == qtype::q4_k || t == qtype::q6_k || t == qtype::q8_0 || t == qtype::f16;
}

void matvec(quant::qtype type, const void* w, std::size_t rows, std::size_t cols, const float* x,
            std::size_t ldx, std::size_t tokens, float* y, std::size_t ldy, bool accumulate,
            const launch_opts& opts, const x_prologue& pre) {
  using quant::qtype;
  if (!can_matvec(type))
    throw error(error::kind::unsupported, cat("cuda matvec: no kernel for ", quant::name(type)));
  if (tokens == 0 || rows == 0) return;
  const auto tr = quant::traits(type);
  const std::size_t need = type == qtype::q4_k || type == qtype::q6_k ? quant::qk_k : unit_elems;
  if (cols == 0 || cols % need != 0)
    throw error(error::kind::argument, cat("cuda matvec ", quant::name(type), ": ", cols,
                                           " columns, not a multiple of ", need));
  if (w == nullptr || !aligned(w, 16))
    throw error(error::kind::argument, "cuda matvec: weights must be 16-byte aligned");
  if (opts.rows_per_warp != 0 && opts.rows_per_warp != 1 && opts.rows_per_warp != 2 &&
      opts.rows_per_warp != 4)
    throw error(error::kind::argument, cat("cuda matvec: rows_per_warp ", opts.rows_per_warp));
  check_x("cuda matvec", x, ldx, cols, y, ldy, rows);
  const pro_args p = check_prologue("cuda matvec", pre, cols, ldx);
  const std::size_t row_bytes = cols / tr->block_elems * tr->block_bytes;
  const auto* wb = static_cast<const std::uint8_t*>(w);
  const auto run = [&](auto unit) {
    run_blocks<typename decltype(unit)::type>(wb, row_bytes, rows, cols, x, ldx, tokens, y, ldy,
                                              accumulate, opts, p);
  };
  const bool int8 = tokens == 1 && opts.int8_activations;  // single tokens: the CPU decode's codes
  switch (type) {
    case qtype::q4_k:
      int8 ? run(std::type_identity<q4_k_q8_unit>{}) : run(std::type_identity<q4_k_unit>{});
      break;
    case qtype::q6_k:
      int8 ? run(std::type_identity<q6_k_q8_unit>{}) : run(std::type_identity<q6_k_unit>{});
      break;
    case qtype::q8_0: run(std::type_identity<q8_0_unit>{}); break;
    default: run(std::type_identity<f16_unit>{}); break;
  }
}

// --- AWQ -----------------------------------------------------------------------------------------

awq_workspace::awq_workspace(std::size_t max_in, std::size_t max_out)
    : max_in_(max_in), max_out_(max_out) {
  const std::size_t floats = std::size_t{awq_k_splits(max_in)} * max_batch * max_out;
  const std::size_t tickets = awq_col_tiles(max_out);
  QFORGE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&partials_), floats * sizeof(float)));
  if (const cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&tickets_), tickets * sizeof(unsigned));
      e != cudaSuccess) {
    cudaFree(partials_);
    qforge::detail::throw_cuda_error(e, "cudaMalloc(tickets)", __FILE__, __LINE__);
  }
  if (const cudaError_t e = cudaMemset(tickets_, 0, tickets * sizeof(unsigned)); e != cudaSuccess) {
    cudaFree(partials_);
    cudaFree(tickets_);
    qforge::detail::throw_cuda_error(e, "cudaMemset(tickets)", __FILE__, __LINE__);
  }
}

awq_workspace::~awq_workspace() {
  cudaFree(partials_);
  cudaFree(tickets_);
}

awq_workspace::awq_workspace(awq_workspace&& o) noexcept
    : max_in_(std::exchange(o.max_in_, 0)), max_out_(std::exchange(o.max_out_, 0)),
      partials_(std::exchange(o.partials_, nullptr)), tickets_(std::exchange(o.tickets_, nullptr)) {}

awq_workspace& awq_workspace::operator=(awq_workspace&& o) noexcept {
  if (this != &o) {
    cudaFree(partials_);
    cudaFree(tickets_);
    max_in_ = std::exchange(o.max_in_, 0);
    max_out_ = std::exchange(o.max_out_, 0);
    partials_ = std::exchange(o.partials_, nullptr);
    tickets_ = std::exchange(o.tickets_, nullptr);
  }
  return *this;
}

void awq_matvec(const awq_matrix& w, const float* x, std::size_t ldx, std::size_t tokens, float* y,
                std::size_t ldy, bool accumulate, awq_workspace& ws, const launch_opts& opts,
                const x_prologue& pre) {
  if (tokens == 0) return;
  if (w.out == 0 || w.out % 8 != 0 || w.in == 0 || w.in % awq_k_slice != 0 || w.group == 0 ||
      w.group % awq_k_slice != 0 || w.in % w.group != 0)
    throw error(error::kind::argument,
                cat("cuda awq matvec: in ", w.in, ", out ", w.out, ", group ", w.group,
                    " (need out % 8 == 0, in % 32 == 0, group % 32 == 0 dividing in)"));
  if (w.qweight == nullptr || w.qzeros == nullptr || w.scales == nullptr || !aligned(w.scales, 16) ||
      !aligned(w.qweight, 4) || !aligned(w.qzeros, 4))
    throw error(error::kind::argument, "cuda awq matvec: null or misaligned tensors (scales need 16 bytes)");
  if (w.in > ws.max_in() || w.out > ws.max_out())
    throw error(error::kind::argument, cat("cuda awq matvec: workspace for ", ws.max_in(), " x ",
                                           ws.max_out(), " is too small for ", w.in, " x ", w.out));
  check_x("cuda awq matvec", x, ldx, w.in, y, ldy, w.out);
  const pro_args p = check_prologue("cuda awq matvec", pre, w.in, ldx);
  // Under PDL the AWQ kernel lets its successor in only once its main loop is done, whatever
  // opts.early_trigger says: scheduled at entry, the successor's CTAs (often the next AWQ matvec's
  // 256 or more) take SM slots and DRAM while this grid still streams its weights; on the H100 an
  // early trigger made back-to-back 4096 x 4096 launches 37 % slower than no PDL at all (11.8 us
  // against 8.6 us), the late one 5 % faster (8.2 us), and the two tie on the larger shapes
  // (bench/RESULTS.md, CUDA engine kernels).
  const bool early = false;
  for (std::size_t t0 = 0; t0 < tokens; t0 += max_batch) {
    const std::size_t nt = std::min<std::size_t>(max_batch, tokens - t0);
    const float* xt = x + t0 * ldx;
    float* yt = y + t0 * ldy;
    const auto go = [&](auto n) {
      launch_awq<decltype(n)::value>(w.qweight, w.qzeros, w.scales, w.in, w.out, w.group, xt, ldx,
                                     yt, ldy, accumulate, ws.partials(), ws.tickets(), opts.stream,
                                     opts.pdl, early, p.op, p.w, p.eps, opts.awq_k_per_warp);
    };
    switch (nt) {
      case 1: go(std::integral_constant<int, 1>{}); break;
      case 2: go(std::integral_constant<int, 2>{}); break;
      case 3: go(std::integral_constant<int, 3>{}); break;
      case 4: go(std::integral_constant<int, 4>{}); break;
      case 5: go(std::integral_constant<int, 5>{}); break;
      case 6: go(std::integral_constant<int, 6>{}); break;
      case 7: go(std::integral_constant<int, 7>{}); break;
      default: go(std::integral_constant<int, 8>{}); break;
    }
  }
}

}  // namespace qforge::engine::cuda
