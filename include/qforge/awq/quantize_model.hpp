// SPDX-License-Identifier: MIT
// AWQ of a Hugging Face Llama-family checkpoint (llama, mistral, qwen2, qwen3), block by block from
// the memory-mapped source: one decoder block's weights are expanded to float at a time, plus the
// calibration activations. Per block: (1) one float32 forward pass captures the inputs of each
// group of linears sharing an input (q/k/v after the attention norm, o, gate/up after the MLP norm,
// down); (2) for each group a per-input-channel scale s is searched over AutoAWQ's grid of ratios
// (quant/awq/search.hpp, awq/group_search.hpp), each candidate judged with only that group
// quantized as Q(W * s) / s by the mean squared error of the output it affects: the
// self-attention output for q/k/v, the MLP output for gate/up, the linear's own output for o and
// down (exactly, from the input covariance); (3) s is folded into the previous RMSNorm weight
// (q/k/v, gate/up) or the previous linear's rows (v for o when the shapes match, up for down);
// (4) per-group clipping for every linear but q and k; (5) the fp16 weights are quantized and
// packed (quant/awq/ref.hpp, pack.hpp); the unquantized block output feeds the next block. That is
// AutoAWQ's algorithm, the default. With awq_options::gptq, step (5) keeps each group's scale and
// zero but chooses the codes by error-compensated rounding against the linear's full input
// covariance (quant/awq/gptq.hpp), in the background with the folding. awq_options switches on the variants we measured (quantized
// output propagated, the q/k/v loss on the whole block output, candidates judged with their
// clipping, s = 1 among the candidates, o scaled under GQA): each helped on some fixture and hurt
// on another, see tests/awq/README.md. Two by-products: the fp16 guard (a scale candidate whose
// folding or scaled activations would leave fp16 is skipped, with a warning in awq_result; a model
// that no scaling keeps in fp16 is an error, never an inf in the output), and, with
// awq_options::imatrix_out, llama.cpp's importance matrix of the same pass (awq/imatrix.hpp).
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <type_traits>
#include <span>
#include <string>
#include <vector>

#include "qforge/awq/block.hpp"
#include "qforge/awq/cpu_backend.hpp"
#include "qforge/awq/cuda/backend.hpp"
#include "qforge/awq/group_search.hpp"
#include "qforge/awq/imatrix.hpp"
#include "qforge/awq/calibration.hpp"
#include "qforge/awq/output.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/engine/config.hpp"
#include "qforge/engine/cuda/session.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/awq/gptq.hpp"
#include "qforge/quant/awq/pack.hpp"
#include "qforge/quant/awq/search.hpp"

namespace qforge::awq {


namespace detail {

// Throws naming the row when a weight of l is not finite (the quantizer would write a NaN scale).
inline void check_finite(const linear_f32& l, const std::string& what, engine::thread_pool& pool) {
  std::atomic<std::size_t> bad{l.out};
  pool.parallel_for(l.out, 16, [&](std::size_t b, std::size_t e) {
    for (std::size_t r = b; r < e; ++r)
      if (!std::all_of(l.w.begin() + r * l.in, l.w.begin() + (r + 1) * l.in,
                       [](float v) { return std::isfinite(v); })) {
        for (auto cur = bad.load(); r < cur && !bad.compare_exchange_weak(cur, r);) {
        }
        return;
      }
  });
  if (bad.load() < l.out)
    throw error(error::kind::argument, cat(what, ": row ", bad.load(), " holds a non-finite weight"));
}

// quant::awq::quantize of a linear, its rows spread over the pool.
inline quant::awq::quantized_matrix quantize_linear(const linear_f32& l, std::size_t group,
                                                    const std::string& what,
                                                    engine::thread_pool& pool) {
  quant::awq::check_shape(l.out, l.in, group, what);
  check_finite(l, what, pool);
  auto m = quant::awq::make_quantized(l.out, l.in, group);
  pool.parallel_for(l.out, 16, [&](std::size_t b, std::size_t e) {
    quant::awq::quantize_rows(l.w.data(), m, b, e);
  });
  return m;
}

// Error-compensated rounding (quant/awq/gptq.hpp) of `target` (the folded, unclipped weights)
// with the group parameters the plain quantizer gives `range` (the same weights clipped).
inline quant::awq::quantized_matrix quantize_linear_gptq(const linear_f32& target,
                                                         const linear_f32& range,
                                                         const quant::awq::gptq_factor& f,
                                                         std::size_t group, const std::string& what,
                                                         engine::thread_pool& pool) {
  auto m = quantize_linear(range, group, what, pool);
  check_finite(target, what, pool);
  pool.parallel_for(target.out, 8, [&](std::size_t b, std::size_t e) {
    quant::awq::gptq_rows(target.w.data(), f, m, b, e);
  });
  return m;
}

// The whole algorithm over one backend (cpu_backend or cuda_backend): make_backend(cfg, seq_len,
// rows, pool) builds one once the calibration layout is known (two are made: the search's, on
// `pool`, and the one that finishes blocks in the background).
template <class MakeBackend>
awq_result quantize_with(const std::string& model_dir, const calibration_set& calib,
                         const std::string& out_dir, const awq_options& o,
                         engine::thread_pool& pool, MakeBackend&& make_backend) {
  using format::safetensors::dtype;
  const auto t0 = std::chrono::steady_clock::now();
  const format::safetensors::checkpoint ckpt(model_dir);
  const auto hcfg = format::hf::read_config(model_dir);
  const engine::model_config cfg = engine::from_hf(hcfg);
  const std::size_t H = cfg.hidden, F = cfg.ffn, G = o.group;
  const std::size_t QD = std::size_t{cfg.n_heads} * cfg.head_dim;
  const std::size_t KVD = std::size_t{cfg.n_kv_heads} * cfg.head_dim;
  for (const auto& [out, in, what] : {std::tuple{QD, H, "q_proj"}, {KVD, H, "k_proj / v_proj"},
                                      {H, QD, "o_proj"}, {F, H, "gate_proj / up_proj"},
                                      {H, F, "down_proj"}}) {
    try {
      quant::awq::check_shape(out, in, G, what);
    } catch (const error& e) {
      throw error(error::kind::unsupported, model_dir, e.message());
    }
  }
  if (calib.sequences.empty()) throw error(error::kind::argument, "AWQ: no calibration sequence");

  // Embeddings of the calibration tokens.
  std::vector<std::size_t> lens;
  for (const auto& s : calib.sequences) lens.push_back(s.size());
  std::size_t N = 0;
  for (auto l : lens) N += l;
  std::vector<float> x_host(N * H);
  {
    const auto ev = ckpt.view("model.embed_tokens.weight");
    const auto qt = ev.type() == dtype::f32 ? quant::qtype::f32
                    : ev.type() == dtype::bf16 ? quant::qtype::bf16 : quant::qtype::f16;
    const auto m = engine::make_matrix(qt, cfg.vocab, H, ev.bytes(), ckpt.path(), ev.name());
    std::size_t t = 0;
    for (const auto& s : calib.sequences)
      for (auto id : s) {
        if (id < 0 || static_cast<std::uint32_t>(id) >= cfg.vocab)
          throw error(error::kind::argument, cat("calibration token id ", id, " outside the vocabulary"));
        engine::lookup_row(m, static_cast<std::size_t>(id), {x_host.data() + t++ * H, H});
      }
  }

  // Tokens the statistics and losses count: all, or all but each sequence's first (with BOS, an
  // attention sink whose activations are the same in every sequence and far larger than the rest).
  std::vector<std::size_t> rows;
  {
    std::size_t t = 0;
    for (const auto& sq : calib.sequences)
      for (std::size_t i = 0; i < sq.size(); ++i, ++t)
        if (i > 0 || !o.skip_first_token) rows.push_back(t);
  }
  // The threads of `pool` mostly wait on the backend during a search, so the pool finishing blocks
  // in the background is as wide; loading is lighter.
  engine::thread_pool load_pool(std::max(1, static_cast<int>(pool.size()) / 4)),
      emit_pool(static_cast<int>(pool.size()));
  auto backend = make_backend(cfg, lens, rows, pool);
  // A second backend finishes blocks (fold, clip) in the background, on its own stream / pool.
  auto side_backend = make_backend(cfg, std::move(lens), std::move(rows), emit_pool);
  auto& be = *backend;
  using backend_t = std::remove_cvref_t<decltype(be)>;
  using act_t = typename backend_t::act;
  act_t x = be.make_act(H), y = be.make_act(H);
  be.upload(x, x_host);
  x_host = {};

  std::deque<output_tensor> outs;
  const auto emit_f16 = [&](const std::string& name, std::span<const float> v,
                            std::vector<std::uint64_t> shape) {
    outs.push_back({name, dtype::f16, std::move(shape), f16_bytes(v, name)});
  };
  const auto copy_f16 = [&](const std::string& name) {
    const auto v = ckpt.view(name);
    const auto f = v.to_f32();
    emit_f16(name, f, std::vector<std::uint64_t>(v.shape().begin(), v.shape().end()));
  };
  const auto emit_linear = [&](const std::string& base, const linear_f32& l,
                               quant::awq::quantized_matrix& qm, engine::thread_pool& tp,
                               quant::awq::quantized_matrix* rounded) {
    qm = rounded != nullptr ? std::move(*rounded) : quantize_linear(l, G, base, tp);
    // Last line of the fp16 guard (the scale search keeps ranges in fp16): never write an inf.
    for (std::size_t i = 0; i < qm.scales.size(); ++i)
      if (!std::isfinite(fp16_to_fp32(qm.scales[i])))
        throw error(error::kind::unsupported, model_dir,
                    cat("tensor '", base, ".scales': row ", i / (l.in / G), " group ",
                        i % (l.in / G), ": the weight range overflows an fp16 scale"));
    auto p = quant::awq::pack_gemm(qm, [&](std::size_t n, auto&& fn) { tp.parallel_for(n, 64, fn); });
    outs.push_back({base + ".qweight", dtype::i32, {l.in, l.out / 8}, as_bytes_vec(p.qweight)});
    outs.push_back({base + ".qzeros", dtype::i32, {l.in / G, l.out / 8}, as_bytes_vec(p.qzeros)});
    outs.push_back({base + ".scales", dtype::f16, {l.in / G, l.out}, as_bytes_vec(p.scales)});
    if (!l.bias.empty()) emit_f16(base + ".bias", l.bias, {l.out});
  };

  copy_f16("model.embed_tokens.weight");
  awq_result res;
  imatrix_accumulator imat;
  // fp16 guard of one scale group after its search: when every candidate was skipped, s = 1 must
  // keep the checkpoint itself in fp16 (else no AWQ checkpoint of this model exists in fp16);
  // activations that overflow even unscaled are the model's, worth a warning only.
  const auto settle = [&](std::size_t li, const char* label, const group_report& g,
                          const auto& weights_at, const std::vector<float>& act_max) {
    if (g.rejected == 0) return;
    const std::vector<float> ones(act_max.size(), 1.0f);
    if (g.fp16_fallback) {
      if (const auto w = weights_at(ones); !w.empty())
        throw error(error::kind::unsupported, model_dir,
                    cat("block ", li, " ", label, ": ", w,
                        ": outside fp16 even unscaled, no fp16 AWQ checkpoint holds it"));
    }
    res.warnings.push_back(cat("block ", li, " ", label, ": ", g.rejected,
                               " scale candidate(s) skipped, they would overflow fp16 (first: ",
                               g.first_rejection, ")",
                               g.fp16_fallback ? "; none left: s = 1 (round-to-nearest) here"
                                               : ""));
    if (g.fp16_fallback)
      if (const auto a = activation_overflow(act_max, ones, label); !a.empty())
        res.warnings.push_back(cat("block ", li, " ", label, ": ", a,
                                   ": beyond fp16 unscaled, fp16 serving overflows here anyway"));
  };
  res.tokens = N;
  act_t xn1 = be.make_act(H), xn2 = be.make_act(H), att = be.make_act(QD), o_out = be.make_act(H),
        hmid = be.make_act(H), act = be.make_act(F), d_out = be.make_act(H), tmp = be.make_act(H),
        tmp2 = be.make_act(o.block_loss ? H : 0), tmp3 = be.make_act(o.block_loss ? H : 0);
  // Host work overlaps the backend's: the next block's weights load while this block is searched,
  // and a finished block is quantized and packed while the next one is (each on its own pool: a
  // pool serves one caller at a time). The futures are declared after everything their tasks
  // touch, so an exception unwinding this function waits for them first.
  const auto load_block = [&](std::size_t li) {
    const std::string p = cat("model.layers.", li, ".");
    block_weights b;
    b.q = load_linear(ckpt, p + "self_attn.q_proj", QD, H, load_pool);
    b.k = load_linear(ckpt, p + "self_attn.k_proj", KVD, H, load_pool);
    b.v = load_linear(ckpt, p + "self_attn.v_proj", KVD, H, load_pool);
    b.o = load_linear(ckpt, p + "self_attn.o_proj", H, QD, load_pool);
    b.gate = load_linear(ckpt, p + "mlp.gate_proj", F, H, load_pool);
    b.up = load_linear(ckpt, p + "mlp.up_proj", F, H, load_pool);
    b.down = load_linear(ckpt, p + "mlp.down_proj", H, F, load_pool);
    b.attn_norm = ckpt.view(p + "input_layernorm.weight").to_f32();
    b.ffn_norm = ckpt.view(p + "post_attention_layernorm.weight").to_f32();
    if (cfg.qk_norm) {
      b.q_norm = ckpt.view(p + "self_attn.q_norm.weight").to_f32();
      b.k_norm = ckpt.view(p + "self_attn.k_norm.weight").to_f32();
    }
    for (auto* v : {&b.attn_norm, &b.ffn_norm})
      for (auto& w : *v) w = quant::awq::half(w);
    return b;
  };
  const std::pair<linear_f32 block_weights::*, const char*> linears[] = {
      {&block_weights::q, "self_attn.q_proj"}, {&block_weights::k, "self_attn.k_proj"},
      {&block_weights::v, "self_attn.v_proj"}, {&block_weights::o, "self_attn.o_proj"},
      {&block_weights::gate, "mlp.gate_proj"}, {&block_weights::up, "mlp.up_proj"},
      {&block_weights::down, "mlp.down_proj"}};
  // Appends block li's tensors to outs; bq, when given, receives the block as quantized. `rounded`
  // holds the linears' codes already chosen (error-compensated rounding, in `linears` order), or
  // is empty: round to nearest.
  const auto emit_block = [&](std::size_t li, const block_weights& b, block_weights* bq,
                              std::vector<quant::awq::quantized_matrix>& rounded,
                              engine::thread_pool& tp) {
    const std::string p = cat("model.layers.", li, ".");
    quant::awq::quantized_matrix qm;
    emit_f16(p + "input_layernorm.weight", b.attn_norm, {H});
    std::size_t i = 0;
    for (const auto& [member, name] : linears) {
      emit_linear(p + name, b.*member, qm, tp, rounded.empty() ? nullptr : &rounded[i++]);
      if (bq != nullptr) {
        bq->*member = b.*member;
        (bq->*member).w = quant::awq::dequantize(qm);
      }
    }
    emit_f16(p + "post_attention_layernorm.weight", b.ffn_norm, {H});
    if (cfg.qk_norm) {
      emit_f16(p + "self_attn.q_norm.weight", b.q_norm, {cfg.head_dim});
      emit_f16(p + "self_attn.k_norm.weight", b.k_norm, {cfg.head_dim});
    }
  };
  // What finishing a block needs from its search: the chosen scales (and o's as v's rows), the
  // input covariance blocks the clipping weighs errors with and, for error-compensated rounding,
  // the full input covariances (q/k/v, o, gate/up, down; unscaled basis).
  struct folding {
    std::vector<float> s_qkv, s_v_rows, s_o, s_gu, s_d;
    bool scale_o;
    std::vector<float> cov1, cov2, cov_ob, cov_db;
    std::vector<float> full1, full_o, full2, full_d;
  };
  // Folds the scales into b and clips it; with o.gptq, also chooses every linear's codes by
  // error-compensated rounding of the folded weights, within the clipped ranges (returned in
  // `linears` order; empty otherwise).
  const auto fold_and_clip = [&](block_weights& b, const folding& f, auto& on,
                                 engine::thread_pool& tp) {
    divide_vec(b.attn_norm, f.s_qkv);
    scale_cols(b.q, f.s_qkv, tp), scale_cols(b.k, f.s_qkv, tp), scale_cols(b.v, f.s_qkv, tp);
    if (f.scale_o) divide_rows(b.v, f.s_v_rows, tp), scale_cols(b.o, f.s_o, tp);
    divide_vec(b.ffn_norm, f.s_gu);
    scale_cols(b.gate, f.s_gu, tp), scale_cols(b.up, f.s_gu, tp);
    divide_rows(b.up, f.s_d, tp), scale_cols(b.down, f.s_d, tp);
    std::vector<quant::awq::quantized_matrix> rounded;
    const block_weights folded = o.gptq ? b : block_weights{};
    // Clipping (not q / k: their error passes through the softmax, as AutoAWQ notes).
    if (o.clip) {
      on.clip_linear(b.v, rescale_blocks(f.cov1, H, G, f.s_qkv), G);
      const auto cov_gu = rescale_blocks(f.cov2, H, G, f.s_gu);
      on.clip_linear(b.gate, cov_gu, G);
      on.clip_linear(b.up, cov_gu, G);
      on.clip_linear(b.o, rescale_blocks(f.cov_ob, QD, G, f.s_o), G);
      on.clip_linear(b.down, rescale_blocks(f.cov_db, F, G, f.s_d), G);
    }
    if (!o.gptq) return rounded;
    const auto factor = [&](const std::vector<float>& c, const std::vector<float>& s,
                            const std::string& what) {
      const std::size_t n = s.size();
      std::vector<float> cs(n * n);  // the covariance of the scaled input x / s
      for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) cs[i * n + j] = c[i * n + j] / (s[i] * s[j]);
      return quant::awq::factor_inverse_covariance(
          cs, n, o.gptq_damp, o.gptq_act_order, what,
          [&](std::size_t count, auto&& fn) { tp.parallel_for(count, 16, fn); });
    };
    const auto f1 = factor(f.full1, f.s_qkv, b.q.name + " input"),
               fo = factor(f.full_o, f.s_o, b.o.name + " input"),
               f2 = factor(f.full2, f.s_gu, b.gate.name + " input"),
               fd = factor(f.full_d, f.s_d, b.down.name + " input");
    const quant::awq::gptq_factor* factors[] = {&f1, &f1, &f1, &fo, &f2, &f2, &fd};
    std::size_t i = 0;
    for (const auto& [member, name] : linears)
      rounded.push_back(quantize_linear_gptq(folded.*member, b.*member, *factors[i++], G,
                                             (b.*member).name, tp));
    return rounded;
  };
  std::future<block_weights> loading = std::async(std::launch::async, load_block, 0);
  std::future<void> emitting;
  for (std::size_t li = 0; li < cfg.n_layers; ++li) {
    const auto tb = std::chrono::steady_clock::now();
    auto tp = tb;
    block_report rep;
    const auto lap = [&](double& phase) {
      const auto now = std::chrono::steady_clock::now();
      phase = std::chrono::duration<double>(now - tp).count();
      tp = now;
    };
    if (o.progress) o.progress(li, cfg.n_layers, false);
    const std::string p = cat("model.layers.", li, ".");
    block_weights b = loading.get();
    if (li + 1 < cfg.n_layers) loading = std::async(std::launch::async, load_block, li + 1);
    be.set_qk_norms(b.q_norm, b.k_norm);
    // The unscaled linears as the backend's products take them.
    const auto dq = be.upload(b.q), dk = be.upload(b.k), dv = be.upload(b.v), dO = be.upload(b.o),
               dg = be.upload(b.gate), du = be.upload(b.up), dd = be.upload(b.down);
    lap(rep.phases.load);

    // (1) Unquantized forward, capturing every group's input and inspected output.
    be.norm(x, b.attn_norm, xn1);
    be.self_attn(dq, dk, dv, dO, xn1, o_out, &att);
    be.add(x, o_out, hmid);
    be.norm(hmid, b.ffn_norm, xn2);
    be.mlp(dg, du, dd, xn2, d_out, &act);
    if (!o.imatrix_out.empty()) {
      imat.add_sums({p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"},
                    be.channel_sq_sum(xn1), N);
      imat.add_sums({p + "self_attn.o_proj"}, be.channel_sq_sum(att), N);
      imat.add_sums({p + "mlp.gate_proj", p + "mlp.up_proj"}, be.channel_sq_sum(xn2), N);
      imat.add_sums({p + "mlp.down_proj"}, be.channel_sq_sum(act), N);
    }

    if (o.block_loss) be.add(hmid, d_out, y);
    // (2) Scale searches, all on the unmodified block (as AutoAWQ). Input covariances (diagonal
    // group blocks; full for o and down, whose loss they give exactly) serve the clip search, and
    // with clip_in_search every candidate is judged as it would be quantized: scaled, clipped.
    const bool cis = o.clip && o.clip_in_search;
    // AutoAWQ scales o through v only when their shapes match (no GQA). With GQA, o's input
    // channel (head h, dim d) comes from v's row (h / heads_per_kv, d), so one scale per v row,
    // shared by the query heads of its group, still folds exactly (gqa_o_scaling).
    const std::size_t per_kv = cfg.n_heads / cfg.n_kv_heads, D = cfg.head_dim;
    const bool scale_o = b.v.out == b.o.in || (o.gqa_o_scaling && b.v.out * per_kv == b.o.in);
    const auto v_rows_of = [&](const std::vector<float>& so) {  // o's scales -> v's rows
      std::vector<float> sv(KVD);
      for (std::size_t r = 0; r < KVD; ++r) sv[r] = so[(r / D) * per_kv * D + r % D];
      return sv;
    };
    const auto tie = [&](std::vector<float> so) {  // geometric mean over the heads of a group
      if (b.v.out == b.o.in) return so;
      for (std::size_t r = 0; r < KVD; ++r) {
        double l = 0;
        for (std::size_t h = 0; h < per_kv; ++h) l += std::log(so[((r / D) * per_kv + h) * D + r % D]);
        const auto v = static_cast<float>(std::exp(l / static_cast<double>(per_kv)));
        for (std::size_t h = 0; h < per_kv; ++h) so[((r / D) * per_kv + h) * D + r % D] = v;
      }
      return so;
    };
    const auto cov1 = be.group_covariance(xn1, G);
    const auto cov2 = be.group_covariance(xn2, G);
    typename backend_t::cov cov_o;
    if (scale_o) cov_o = be.covariance(att);
    const auto cov_d = be.covariance(act);
    const auto cov_ob = scale_o ? be.cov_blocks(cov_o, G) : be.group_covariance(att, G);
    const auto cov_db = be.cov_blocks(cov_d, G);
    const auto am1 = be.channel_abs_max(xn1), am2 = be.channel_abs_max(xn2),
               amo = be.channel_abs_max(att), amd = be.channel_abs_max(act);
    lap(rep.phases.capture);
    const auto for_groups = [&](std::size_t n, auto&& fn) { pool.parallel_for(n, 1, fn); };
    // A candidate is searched only when its folding stays in fp16 and so do the calibration
    // activations the scaled linears then see.
    const auto guarded = [](const auto& weights_at, const std::vector<float>& act_max,
                            std::string what) {
      return [&weights_at, &act_max, what = std::move(what)](const std::vector<float>& s) {
        auto w = weights_at(s);
        return w.empty() ? activation_overflow(act_max, s, what) : w;
      };
    };
    std::vector<float> s_qkv;
    {
      const std::span<const float> ws[] = {b.q.w, b.k.w, b.v.w};
      const linear_f32* ls[] = {&b.q, &b.k, &b.v};
      const weight_guard guard(ls, G, b.attn_norm, 0, p + "input_layernorm.weight", pool);
      const auto qkv_w = [&](const std::vector<float>& s) { return guard(s); };
      s_qkv = pick(
          candidates(be.channel_abs_mean(xn1), quant::awq::weight_abs_mean(ws, H, G, for_groups), o),
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov1, H, G, s) : std::vector<float>{};
            const auto q = be.fake_quant(dq, s, G), k = be.fake_quant(dk, s, G),
                       v = be.fake_quant(dv, s, G, cis ? &cv : nullptr);
            be.self_attn(q, k, v, dO, xn1, tmp);
            if (!o.block_loss) return be.mse_rows(tmp, o_out);
            // The whole block's output: the MLP's response to the attention error counts too.
            be.add(tmp, x, tmp);
            be.norm(tmp, b.ffn_norm, tmp2);
            be.mlp(dg, du, dd, tmp2, tmp3);
            be.add(tmp, tmp3, tmp);
            return be.mse_rows(tmp, y);
          },
          guarded(qkv_w, am1, p + "self_attn.q/k/v_proj input"), rep.qkv);
      settle(li, "q/k/v", rep.qkv, qkv_w, am1);
      lap(rep.phases.qkv);
    }
    std::vector<float> s_o(QD, 1.0f);
    if (scale_o) {
      const std::span<const float> ws[] = {b.o.w};
      const linear_f32* ls[] = {&b.o};
      const weight_guard guard(ls, G, b.v.w, b.v.out, p + "self_attn.v_proj.weight", pool);
      const auto o_w = [&](const std::vector<float>& s) { return guard(s, v_rows_of(s)); };
      auto cands = candidates(be.channel_abs_mean(att), quant::awq::weight_abs_mean(ws, QD, G, for_groups), o);
      for (auto& c : cands) c.s = tie(std::move(c.s));
      s_o = pick(
          cands,
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov_ob, QD, G, s) : std::vector<float>{};
            return be.linear_loss(dO, be.fake_quant(dO, s, G, cis ? &cv : nullptr), cov_o);
          },
          guarded(o_w, amo, p + "self_attn.o_proj input"), rep.o);
      settle(li, "o", rep.o, o_w, amo);
      lap(rep.phases.o);
    }
    std::vector<float> s_gu;
    {
      const std::span<const float> ws[] = {b.gate.w, b.up.w};
      const linear_f32* ls[] = {&b.gate, &b.up};
      const weight_guard guard(ls, G, b.ffn_norm, 0, p + "post_attention_layernorm.weight",
                               pool);
      const auto gu_w = [&](const std::vector<float>& s) { return guard(s); };
      s_gu = pick(
          candidates(be.channel_abs_mean(xn2), quant::awq::weight_abs_mean(ws, H, G, for_groups), o),
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov2, H, G, s) : std::vector<float>{};
            const auto g = be.fake_quant(dg, s, G, cis ? &cv : nullptr),
                       u = be.fake_quant(du, s, G, cis ? &cv : nullptr);
            be.mlp(g, u, dd, xn2, tmp);
            return be.mse_rows(tmp, d_out);
          },
          guarded(gu_w, am2, p + "mlp.gate/up_proj input"), rep.gate_up);
      settle(li, "gate/up", rep.gate_up, gu_w, am2);
      lap(rep.phases.gate_up);
    }
    std::vector<float> s_d;
    {
      const std::span<const float> ws[] = {b.down.w};
      const linear_f32* ls[] = {&b.down};
      const weight_guard guard(ls, G, b.up.w, b.up.out, p + "mlp.up_proj.weight", pool);
      const auto d_w = [&](const std::vector<float>& s) { return guard(s); };
      s_d = pick(
          candidates(be.channel_abs_mean(act), quant::awq::weight_abs_mean(ws, F, G, for_groups), o),
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov_db, F, G, s) : std::vector<float>{};
            return be.linear_loss(dd, be.fake_quant(dd, s, G, cis ? &cv : nullptr), cov_d);
          },
          guarded(d_w, amd, p + "mlp.down_proj input"), rep.down);
      settle(li, "down", rep.down, d_w, amd);
      lap(rep.phases.down);
    }

    // (3) - (5): fold the scales, clip, quantize and pack. In the background (the side backend),
    // unless the next block's input is this block as quantized. Blocks finish in order (one in
    // flight), so outs keeps the tensor order.
    folding f{std::move(s_qkv), v_rows_of(s_o), std::move(s_o), std::move(s_gu), std::move(s_d),
              scale_o, cov1, cov2, cov_ob, cov_db, {}, {}, {}, {}};
    if (o.gptq) {
      f.full1 = be.download(be.covariance(xn1));
      f.full_o = scale_o ? be.download(cov_o) : be.download(be.covariance(att));
      f.full2 = be.download(be.covariance(xn2));
      f.full_d = be.download(cov_d);
    }
    lap(rep.phases.fold_clip);
    if (emitting.valid()) emitting.get();
    if (o.propagate_quantized) {  // y = h + mlp(norm(h)), h = x + attn(norm(x)), as quantized
      block_weights bq;
      auto rounded = fold_and_clip(b, f, be, pool);
      emit_block(li, b, &bq, rounded, pool);
      be.norm(x, b.attn_norm, xn1);
      be.self_attn(be.upload(bq.q), be.upload(bq.k), be.upload(bq.v), be.upload(bq.o), xn1, o_out);
      be.add(x, o_out, y);
      be.norm(y, b.ffn_norm, xn2);
      be.mlp(be.upload(bq.gate), be.upload(bq.up), be.upload(bq.down), xn2, d_out);
      be.add(y, d_out, y);
    } else {
      be.add(hmid, d_out, y);
      emitting = std::async(std::launch::async, [&, li, blk = std::move(b), f = std::move(f)]() mutable {
        auto rounded = fold_and_clip(blk, f, *side_backend, emit_pool);
        emit_block(li, blk, nullptr, rounded, emit_pool);
      });
    }
    std::swap(x, y);
    lap(rep.phases.emit);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
    res.blocks.push_back(rep);
    if (o.progress) o.progress(li, cfg.n_layers, true);
  }
  if (emitting.valid()) emitting.get();
  copy_f16("model.norm.weight");
  if (ckpt.contains("lm_head.weight")) copy_f16("lm_head.weight");
  write_awq_folder(model_dir, out_dir, outs, G, o.max_shard_bytes, o.overwrite);
  if (!o.imatrix_out.empty()) {
    const auto n_seq = calib.sequences.size();
    imat.write(o.imatrix_out, hcfg,
               o.imatrix_dataset.empty() ? std::vector<std::string>{}
                                         : std::vector<std::string>{o.imatrix_dataset},
               static_cast<std::uint32_t>(n_seq),
               static_cast<std::uint32_t>((N + n_seq / 2) / n_seq));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.device_peak_bytes = be.peak_bytes();
  return res;
}

}  // namespace detail

// Quantizes model_dir with the calibration sequences and writes the AWQ folder out_dir, on the
// CPU (pool) or on a CUDA device (o.device; needs qforge::kernels built with CUDA). Throws
// qforge::error: unsupported (architecture, a linear whose shape the group size does not divide,
// fp16 overflow, CUDA requested but not built), format / io (reading the source, writing the
// output), cuda (device errors).
inline awq_result quantize_model(const std::string& model_dir, const calibration_set& calib,
                                 const std::string& out_dir, const awq_options& o,
                                 engine::thread_pool& pool) {
  if (o.device == awq_options::backend::cuda) {
#if defined(QFORGE_HAVE_CUDA_KERNELS)
    if (!engine::cuda_device_available())
      throw error(error::kind::cuda, "AWQ on CUDA: no CUDA device is available (or its driver is "
                                     "older than this build's CUDA runtime); --device cpu runs it "
                                     "on the CPU");
    return detail::quantize_with(model_dir, calib, out_dir, o, pool,
                                 [&](const engine::model_config& c, std::vector<std::size_t> lens,
                                     std::vector<std::size_t> rows, engine::thread_pool&) {
                                   return std::make_unique<cuda_backend>(
                                       c, std::move(lens), std::move(rows), o.cuda);
                                 });
#else
    throw error(error::kind::unsupported,
                "AWQ on CUDA: this build of qforge has no CUDA kernels (configure with QFORGE_CUDA=ON)");
#endif
  }
  return detail::quantize_with(model_dir, calib, out_dir, o, pool,
                               [](const engine::model_config& c, std::vector<std::size_t> lens,
                                  std::vector<std::size_t> rows, engine::thread_pool& tp) {
                                 return std::make_unique<cpu_backend>(c, std::move(lens),
                                                                      std::move(rows), tp);
                               });
}

}  // namespace qforge::awq
