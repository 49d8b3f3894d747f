// SPDX-License-Identifier: MIT
// Public entry points for turning float rows into GGUF blocks and back: validate at the boundary
// (kernels never throw), split rows across threads, run the backend chosen by backend/dispatch.hpp.
// Each row is encoded on its own and every backend writes the reference bytes, so the output never
// depends on the thread count or the backend. A new type is one entry in quant/families.hpp.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "qforge/backend/dispatch.hpp"
#include "qforge/core/error.hpp"
#include "qforge/quant/blocks.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::quant {

namespace detail {

// One quant type as the entry points need it: block geometry plus its slot in the kernel tables.
struct codec_info {
  std::size_t block_elems;
  std::size_t block_bytes;
  std::size_t block_align;
  qtype type;
};

// The types qforge encodes (those quant/families.hpp lists); nullopt for the rest.
inline std::optional<codec_info> codec(qtype t) noexcept {
  static constexpr backend::kernel_table scalar_table = backend::make_table<backend::scalar>();
  const auto tr = traits(t);
  if (!tr || static_cast<std::size_t>(t) >= backend::max_qtype_id || scalar_table[t].encode == nullptr)
    return std::nullopt;
  return codec_info{tr->block_elems, tr->block_bytes, scalar_table[t].block_align, t};
}

inline codec_info require_codec(qtype t, const char* who) {
  if (auto c = codec(t)) return *c;
  throw error(error::kind::unsupported, cat(who, ": cannot encode type ", name(t), " (id ",
                                            static_cast<std::uint32_t>(t), ")"));
}

inline std::size_t mul_or_throw(std::size_t a, std::size_t b, const char* who) {
  std::size_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw error(error::kind::argument, cat(who, ": size overflows (", a, " x ", b, ")"));
  return r;
}

struct shape {
  std::size_t rows, cols, row_bytes;
};

// Shared checks of encode_rows / decode_rows: non-negative shape, whole blocks per row, buffer
// sizes equal to the shape, block-aligned packed buffer.
inline shape check_shape(const codec_info& c, qtype t, std::int64_t rows, std::int64_t cols,
                         std::size_t floats, std::size_t bytes, const void* packed,
                         const char* who) {
  if (rows < 0 || cols < 0)
    throw error(error::kind::argument, cat(who, ": negative shape [", rows, ", ", cols, "]"));
  const auto r = static_cast<std::size_t>(rows), n = static_cast<std::size_t>(cols);
  if (n % c.block_elems != 0)
    throw error(error::kind::argument, cat(who, ": ", name(t), " rows of ", cols,
                                           " values: not a multiple of the ", c.block_elems,
                                           "-value block"));
  const std::size_t rb = n / c.block_elems * c.block_bytes;
  if (floats != mul_or_throw(r, n, who))
    throw error(error::kind::argument,
                cat(who, ": ", floats, " floats for shape [", rows, ", ", cols, "]"));
  if (bytes != mul_or_throw(r, rb, who))
    throw error(error::kind::argument, cat(who, ": ", bytes, " bytes of ", name(t), ", shape [",
                                           rows, ", ", cols, "] needs ", r * rb));
  if (reinterpret_cast<std::uintptr_t>(packed) % c.block_align != 0)
    throw error(error::kind::argument,
                cat(who, ": ", name(t), " buffer not aligned to ", c.block_align, " bytes"));
  return {r, n, rb};
}

// Runs body(first_row, end_row) over [0, rows) on up to `threads` threads (0 = hardware, then
// capped so each thread has at least ~64 Ki values). Rows are independent, so the split only
// affects speed.
template <class Body>
void parallel_rows(std::size_t rows, std::size_t cols, int threads, Body body) {
  std::size_t n = 0;
  if (threads > 0) {
    n = static_cast<std::size_t>(threads);
  } else {
    n = std::max(1u, std::thread::hardware_concurrency());
    const std::size_t min_values = std::size_t{1} << 16;
    n = std::min(n, std::max<std::size_t>(1, rows * cols / min_values));
  }
  n = std::min(n, std::max<std::size_t>(rows, 1));
  if (n <= 1) {
    body(std::size_t{0}, rows);
    return;
  }
  std::vector<std::jthread> pool;  // joins on every exit, a failed thread start included
  pool.reserve(n - 1);
  const std::size_t per = rows / n, extra = rows % n;
  std::size_t first = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t end = first + per + (i < extra ? 1 : 0);
    if (i + 1 == n) body(first, end);  // the calling thread takes the last share
    else pool.emplace_back([=] { body(first, end); });
    first = end;
  }
}

}  // namespace detail

// Whether encode_rows accepts `t`.
inline bool can_encode(qtype t) noexcept { return detail::codec(t).has_value(); }

// Bytes of one row of `cols` values of type `t` (any type types.hpp knows, encodable or not).
// Throws kind::argument when cols is negative or not a multiple of the block, kind::unsupported for
// an id with no traits.
inline std::size_t row_bytes(qtype t, std::int64_t cols) {
  const auto tr = traits(t);
  if (!tr)
    throw error(error::kind::unsupported,
                cat("row_bytes: unknown type id ", static_cast<std::uint32_t>(t)));
  if (cols < 0 || static_cast<std::uint64_t>(cols) % tr->block_elems != 0)
    throw error(error::kind::argument, cat("row_bytes: ", tr->name, " rows of ", cols,
                                           " values: not a multiple of the ", tr->block_elems,
                                           "-value block"));
  return detail::mul_or_throw(static_cast<std::size_t>(cols) / tr->block_elems, tr->block_bytes,
                              "row_bytes");
}

// Encodes `rows` x `cols` row-major floats into rows * row_bytes(type, cols) bytes on backend `b`
// (an entry of backend::compiled()). dst must be aligned to the block's alignment (2 for q8_0).
// `imatrix` is empty or holds one importance weight per column (llama.cpp's --imatrix): the types
// with an importance-weighted search use it, the others ignore it, as ggml does.
// Throws kind::argument (shape, sizes, alignment), kind::unsupported (type, unavailable backend),
// kind::cuda (cuda backend failures).
inline void encode_rows(const backend::entry& b, qtype type, std::span<const float> src,
                        std::int64_t rows, std::int64_t cols, std::span<std::byte> dst,
                        int threads = 0, std::span<const float> imatrix = {}) {
  constexpr const char* who = "encode_rows";
  const detail::codec_info c = detail::require_codec(type, who);
  const detail::shape s =
      detail::check_shape(c, type, rows, cols, src.size(), dst.size(), dst.data(), who);
  if (!imatrix.empty() && imatrix.size() != s.cols)
    throw error(error::kind::argument, cat(who, ": importance matrix has ", imatrix.size(),
                                           " weights for rows of ", cols, " values"));
  if (!b.available())
    throw error(error::kind::unsupported, cat(who, ": backend ", b.name(), " not usable here"));
  if (b.kernels() == nullptr) {
#if defined(QFORGE_HAVE_CUDA_KERNELS)
    if (!imatrix.empty())
      throw error(error::kind::unsupported, cat(who, ": the cuda encoders take no importance matrix"));
    if (!backend::detail::cuda_can_encode(type))
      throw error(error::kind::unsupported, cat(who, ": no cuda encoder for ", name(type)));
    backend::detail::cuda_encode_rows(type, src, dst);
    return;
#else
    throw error(error::kind::unsupported, cat(who, ": backend ", b.name(), " has no kernels"));
#endif
  }
  const backend::encode_kernel encode = (*b.kernels())[type].encode;
  detail::parallel_rows(s.rows, s.cols, threads, [&](std::size_t first, std::size_t end) {
    if (imatrix.empty()) {
      encode(src.data() + first * s.cols, (end - first) * s.cols, dst.data() + first * s.row_bytes,
             nullptr);
      return;
    }
    for (std::size_t r = first; r < end; ++r)  // the kernels take weights one row at a time
      encode(src.data() + r * s.cols, s.cols, dst.data() + r * s.row_bytes, imatrix.data());
  });
}

// The same on the selected backend (QFORGE_BACKEND, else the fastest this CPU runs).
inline void encode_rows(qtype type, std::span<const float> src, std::int64_t rows,
                        std::int64_t cols, std::span<std::byte> dst, int threads = 0,
                        std::span<const float> imatrix = {}) {
  encode_rows(backend::selected(), type, src, rows, cols, dst, threads, imatrix);
}

// Inverse of encode_rows on the CPU kernels (cuda has no decoder path here): rows * row_bytes bytes
// in, rows x cols floats out. Throws like encode_rows.
inline void decode_rows(qtype type, std::span<const std::byte> src, std::int64_t rows,
                        std::int64_t cols, std::span<float> dst, int threads = 0) {
  constexpr const char* who = "decode_rows";
  const detail::codec_info c = detail::require_codec(type, who);
  const detail::shape s =
      detail::check_shape(c, type, rows, cols, dst.size(), src.size(), src.data(), who);
  const backend::decode_kernel decode = backend::cpu_kernels()[type].decode;
  detail::parallel_rows(s.rows, s.cols, threads, [&](std::size_t first, std::size_t end) {
    decode(src.data() + first * s.row_bytes, (end - first) * s.cols, dst.data() + first * s.cols);
  });
}

}  // namespace qforge::quant
