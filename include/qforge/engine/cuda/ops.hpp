// SPDX-License-Identifier: MIT
// Host entry points of the decode step's small CUDA kernels (engine/cuda/ops.cuh, compiled in
// kernels/cuda/engine_ops.cu): RMSNorm, RoPE with the K/V cache store, causal grouped-query
// attention over a float32 cache, SwiGLU, F16 embedding look-up, and the position counter that
// lets one captured CUDA graph run every decode step. Device pointers, asynchronous on
// opts.stream; fp16 outputs are uint16_t bit patterns and optional (nullptr: not written). `pos`
// points to the device int holding the position of the first of `tokens` new tokens; caches are
// [position][n_kv * head_dim] floats. Throws qforge::error (argument, cuda).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qforge/engine/cuda/matvec.hpp"

namespace qforge::engine::cuda {

// y = x / sqrt(mean(x^2) + eps) * w per token (rows of n floats).
void rms_norm(const float* x, const float* w, std::size_t n, std::size_t tokens, float eps, float* y,
              std::uint16_t* y_f16, const launch_opts& opts = {});

// The (cos, sin) table rope_store reads: [positions][head_dim / 2] pairs, computed as the CPU
// session computes them (angle in double, then rounded to float).
std::vector<float> rope_table(const std::vector<double>& inv_freq, std::size_t positions,
                              double linear_factor = 1.0);

// Rotates q (n_heads heads) and k (n_kv heads) in place, NEOX halves or interleaved pairs, and
// stores k and v at positions *pos + t of the caches. cos_sin: device copy of rope_table().
void rope_store(float* q, std::size_t ldq, float* k, std::size_t ldk, const float* v,
                std::size_t ldv, std::size_t tokens, std::size_t n_heads, std::size_t n_kv,
                std::size_t head_dim, bool neox, const float* cos_sin, const int* pos,
                float* k_cache, float* v_cache, const launch_opts& opts = {});

// out[t, h] = softmax(q[t, h] . K[0 .. *pos + t] / sqrt(D)) V for every query head h, reading
// key/value head h / (n_heads / n_kv). max_positions bounds *pos + tokens (shared memory size).
// On sm_90, caches of more than 64 positions run split-KV when tokens x heads leave SMs idle
// (decode; several CTAs per head, merged by log-sum-exp; engine/cuda/attention_split.cuh): same
// results up to float rounding.
void attention(const float* q, std::size_t ldq, std::size_t tokens, const float* k_cache,
               const float* v_cache, std::size_t n_heads, std::size_t n_kv, std::size_t head_dim,
               std::size_t max_positions, const int* pos, float* out, std::size_t ldo,
               std::uint16_t* out_f16, const launch_opts& opts = {});

// out[t, f] = silu(gate_up[t, f]) * gate_up[t, ffn + f] (rows of 2 * ffn floats in, ffn out).
void swiglu(const float* gate_up, std::size_t ffn, std::size_t tokens, float* out,
            std::uint16_t* out_f16, const launch_opts& opts = {});

// x = table[*token] (an F16 [rows, cols] embedding) as float (and fp16).
void embed_f16(const std::uint16_t* table, std::size_t cols, const int* token, float* x,
               std::uint16_t* x_f16, const launch_opts& opts = {});

// *pos = *pos + 1 < limit ? *pos + 1 : first.
void advance_position(int* pos, int first, int limit, const launch_opts& opts = {});

// y = fp16(x), n floats.
void to_f16(const float* x, std::size_t n, std::uint16_t* y, const launch_opts& opts = {});

}  // namespace qforge::engine::cuda
