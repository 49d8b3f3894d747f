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
// AutoAWQ's algorithm, the default. awq_options switches on the variants we measured (quantized
// output propagated, the q/k/v loss on the whole block output, candidates judged with their
// clipping, s = 1 among the candidates, o scaled under GQA): each helped on some fixture and hurt
// on another, see tests/awq/README.md. Two by-products: the fp16 guard (a scale candidate whose
// folding or scaled activations would leave fp16 is skipped, with a warning in awq_result; a model
// that no scaling keeps in fp16 is an error, never an inf in the output), and, with
// awq_options::imatrix_out, llama.cpp's importance matrix of the same pass (awq/imatrix.hpp).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "qforge/awq/block.hpp"
#include "qforge/awq/group_search.hpp"
#include "qforge/awq/imatrix.hpp"
#include "qforge/awq/calibration.hpp"
#include "qforge/awq/output.hpp"
#include "qforge/core/fp16.hpp"
#include "qforge/engine/config.hpp"
#include "qforge/engine/matmul.hpp"
#include "qforge/format/hf/config.hpp"
#include "qforge/format/safetensors/reader.hpp"
#include "qforge/quant/awq/pack.hpp"
#include "qforge/quant/awq/search.hpp"

namespace qforge::awq {


// Quantizes model_dir with the calibration sequences and writes the AWQ folder out_dir. Throws
// qforge::error: unsupported (architecture, a linear whose shape the group size does not divide,
// fp16 overflow), format / io (reading the source, writing the output).
inline awq_result quantize_model(const std::string& model_dir, const calibration_set& calib,
                                 const std::string& out_dir, const awq_options& o,
                                 engine::thread_pool& pool) {
  using namespace detail;
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
  block_runner run(cfg, lens, pool);
  const std::size_t N = run.tokens();
  std::vector<float> x(N * H), y(N * H);
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
        engine::lookup_row(m, static_cast<std::size_t>(id), {x.data() + t++ * H, H});
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
  const std::size_t NS = rows.size();
  const auto gather = [&](const std::vector<float>& v, std::size_t n) {
    std::vector<float> g(NS * n);
    for (std::size_t i = 0; i < NS; ++i) std::copy_n(v.data() + rows[i] * n, n, g.data() + i * n);
    return g;
  };
  const auto mse_rows = [&](const float* a, const float* b, std::size_t n) {
    double acc = 0;
    for (auto r : rows) acc += mse(a + r * n, b + r * n, n);
    return acc / static_cast<double>(NS);
  };

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
                               quant::awq::quantized_matrix& qm) {
    qm = quant::awq::quantize(l.w, l.out, l.in, G, base);
    // Last line of the fp16 guard (the scale search keeps ranges in fp16): never write an inf.
    for (std::size_t i = 0; i < qm.scales.size(); ++i)
      if (!std::isfinite(fp16_to_fp32(qm.scales[i])))
        throw error(error::kind::unsupported, model_dir,
                    cat("tensor '", base, ".scales': row ", i / (l.in / G), " group ",
                        i % (l.in / G), ": the weight range overflows an fp16 scale"));
    auto p = quant::awq::pack_gemm(qm);
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
  std::vector<float> xn1(N * H), xn2(N * H), att(N * QD), o_out(N * H), hmid(N * H), act(N * F),
      d_out(N * H), tmp(N * std::max(H, F)), tmp2(o.block_loss ? N * H : 0),
      tmp3(o.block_loss ? N * H : 0);
  for (std::size_t li = 0; li < cfg.n_layers; ++li) {
    const auto tb = std::chrono::steady_clock::now();
    if (o.progress) o.progress(li, cfg.n_layers, false);
    const std::string p = cat("model.layers.", li, ".");
    block_weights b;
    b.q = load_linear(ckpt, p + "self_attn.q_proj", QD, H);
    b.k = load_linear(ckpt, p + "self_attn.k_proj", KVD, H);
    b.v = load_linear(ckpt, p + "self_attn.v_proj", KVD, H);
    b.o = load_linear(ckpt, p + "self_attn.o_proj", H, QD);
    b.gate = load_linear(ckpt, p + "mlp.gate_proj", F, H);
    b.up = load_linear(ckpt, p + "mlp.up_proj", F, H);
    b.down = load_linear(ckpt, p + "mlp.down_proj", H, F);
    b.attn_norm = ckpt.view(p + "input_layernorm.weight").to_f32();
    b.ffn_norm = ckpt.view(p + "post_attention_layernorm.weight").to_f32();
    if (cfg.qk_norm) {
      b.q_norm = ckpt.view(p + "self_attn.q_norm.weight").to_f32();
      b.k_norm = ckpt.view(p + "self_attn.k_norm.weight").to_f32();
    }
    for (auto* v : {&b.attn_norm, &b.ffn_norm})
      for (auto& w : *v) w = quant::awq::half(w);

    // (1) Unquantized forward, capturing every group's input and inspected output.
    run.norm(x.data(), b.attn_norm, xn1.data());
    run.self_attn(b.q, b.k, b.v, b.o, b, xn1.data(), o_out.data(), att.data());
    for (std::size_t i = 0; i < N * H; ++i) hmid[i] = x[i] + o_out[i];
    run.norm(hmid.data(), b.ffn_norm, xn2.data());
    run.mlp(b.gate, b.up, b.down, xn2.data(), d_out.data(), act.data());
    if (!o.imatrix_out.empty()) {
      imat.add({p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj"},
               xn1.data(), N, H, pool);
      imat.add({p + "self_attn.o_proj"}, att.data(), N, QD, pool);
      imat.add({p + "mlp.gate_proj", p + "mlp.up_proj"}, xn2.data(), N, H, pool);
      imat.add({p + "mlp.down_proj"}, act.data(), N, F, pool);
    }

    if (o.block_loss)
      for (std::size_t i = 0; i < N * H; ++i) y[i] = hmid[i] + d_out[i];
    // (2) Scale searches, all on the unmodified block (as AutoAWQ). Input covariances (diagonal
    // group blocks; full for o and down, whose loss they give exactly) serve the clip search, and
    // with clip_in_search every candidate is judged as it would be quantized: scaled, clipped.
    block_report rep;
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
    const std::vector<float> ones_h(H, 1.0f), ones_qd(QD, 1.0f), ones_f(F, 1.0f);
    const auto g1 = gather(xn1, H), g2 = gather(xn2, H), ga = gather(att, QD), gd = gather(act, F);
    const auto cov1 = group_covariance(g1.data(), NS, H, G, ones_h, pool);
    const auto cov2 = group_covariance(g2.data(), NS, H, G, ones_h, pool);
    const auto cov_o = scale_o ? covariance(ga.data(), NS, QD, pool) : std::vector<float>{};
    const auto cov_d = covariance(gd.data(), NS, F, pool);
    const auto cov_ob = scale_o ? blocks_of(cov_o, QD, G, ones_qd)
                                : group_covariance(ga.data(), NS, QD, G, ones_qd, pool);
    const auto cov_db = blocks_of(cov_d, F, G, ones_f);
    const auto am1 = channel_abs_max(g1.data(), NS, H), am2 = channel_abs_max(g2.data(), NS, H),
               amo = channel_abs_max(ga.data(), NS, QD), amd = channel_abs_max(gd.data(), NS, F);
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
      const auto qkv_w = [&](const std::vector<float>& s) {
        return weight_overflow(ls, s, G, b.attn_norm, true, p + "input_layernorm.weight");
      };
      s_qkv = pick(
          candidates(quant::awq::channel_abs_mean(g1.data(), NS, H),
                     quant::awq::weight_abs_mean(ws, H, G), o),
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov1, H, G, s) : std::vector<float>{};
            const auto q = fake_quant(b.q, s, G, pool), k = fake_quant(b.k, s, G, pool),
                       v = fake_quant(b.v, s, G, pool, cis ? &cv : nullptr);
            run.self_attn(q, k, v, b.o, b, xn1.data(), tmp.data());
            if (!o.block_loss) return mse_rows(tmp.data(), o_out.data(), H);
            // The whole block's output: the MLP's response to the attention error counts too.
            for (std::size_t i = 0; i < N * H; ++i) tmp[i] += x[i];
            run.norm(tmp.data(), b.ffn_norm, tmp2.data());
            run.mlp(b.gate, b.up, b.down, tmp2.data(), tmp3.data());
            for (std::size_t i = 0; i < N * H; ++i) tmp[i] += tmp3[i];
            return mse_rows(tmp.data(), y.data(), H);
          },
          guarded(qkv_w, am1, p + "self_attn.q/k/v_proj input"), rep.qkv);
      settle(li, "q/k/v", rep.qkv, qkv_w, am1);
    }
    std::vector<float> s_o(QD, 1.0f);
    if (scale_o) {
      const std::span<const float> ws[] = {b.o.w};
      const linear_f32* ls[] = {&b.o};
      const auto o_w = [&](const std::vector<float>& s) {
        return weight_overflow(ls, s, G, b.v.w, false, p + "self_attn.v_proj.weight", v_rows_of(s));
      };
      auto cands = candidates(quant::awq::channel_abs_mean(ga.data(), NS, QD),
                              quant::awq::weight_abs_mean(ws, QD, G), o);
      for (auto& c : cands) c.s = tie(std::move(c.s));
      s_o = pick(
          cands,
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov_ob, QD, G, s) : std::vector<float>{};
            return linear_loss(b.o, fake_quant(b.o, s, G, pool, cis ? &cv : nullptr), cov_o, pool);
          },
          guarded(o_w, amo, p + "self_attn.o_proj input"), rep.o);
      settle(li, "o", rep.o, o_w, amo);
    }
    std::vector<float> s_gu;
    {
      const std::span<const float> ws[] = {b.gate.w, b.up.w};
      const linear_f32* ls[] = {&b.gate, &b.up};
      const auto gu_w = [&](const std::vector<float>& s) {
        return weight_overflow(ls, s, G, b.ffn_norm, true, p + "post_attention_layernorm.weight");
      };
      s_gu = pick(
          candidates(quant::awq::channel_abs_mean(g2.data(), NS, H),
                     quant::awq::weight_abs_mean(ws, H, G), o),
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov2, H, G, s) : std::vector<float>{};
            const auto g = fake_quant(b.gate, s, G, pool, cis ? &cv : nullptr),
                       u = fake_quant(b.up, s, G, pool, cis ? &cv : nullptr);
            run.mlp(g, u, b.down, xn2.data(), tmp.data());
            return mse_rows(tmp.data(), d_out.data(), H);
          },
          guarded(gu_w, am2, p + "mlp.gate/up_proj input"), rep.gate_up);
      settle(li, "gate/up", rep.gate_up, gu_w, am2);
    }
    std::vector<float> s_d;
    {
      const std::span<const float> ws[] = {b.down.w};
      const linear_f32* ls[] = {&b.down};
      const auto d_w = [&](const std::vector<float>& s) {
        return weight_overflow(ls, s, G, b.up.w, false, p + "mlp.up_proj.weight");
      };
      s_d = pick(
          candidates(quant::awq::channel_abs_mean(gd.data(), NS, F),
                     quant::awq::weight_abs_mean(ws, F, G), o),
          [&](const std::vector<float>& s) {
            const auto cv = cis ? rescale_blocks(cov_db, F, G, s) : std::vector<float>{};
            return linear_loss(b.down, fake_quant(b.down, s, G, pool, cis ? &cv : nullptr), cov_d,
                               pool);
          },
          guarded(d_w, amd, p + "mlp.down_proj input"), rep.down);
      settle(li, "down", rep.down, d_w, amd);
    }

    // (3) Fold the scales.
    divide_vec(b.attn_norm, s_qkv);
    scale_cols(b.q, s_qkv), scale_cols(b.k, s_qkv), scale_cols(b.v, s_qkv);
    if (scale_o) divide_rows(b.v, v_rows_of(s_o)), scale_cols(b.o, s_o);
    divide_vec(b.ffn_norm, s_gu);
    scale_cols(b.gate, s_gu), scale_cols(b.up, s_gu);
    divide_rows(b.up, s_d), scale_cols(b.down, s_d);

    // (4) Clipping (not q / k: their error passes through the softmax, as AutoAWQ notes).
    if (o.clip) {
      clip_linear(b.v, rescale_blocks(cov1, H, G, s_qkv), G, pool);
      const auto cov_gu = rescale_blocks(cov2, H, G, s_gu);
      clip_linear(b.gate, cov_gu, G, pool);
      clip_linear(b.up, cov_gu, G, pool);
      clip_linear(b.o, rescale_blocks(cov_ob, QD, G, s_o), G, pool);
      clip_linear(b.down, rescale_blocks(cov_db, F, G, s_d), G, pool);
    }

    // (5) Quantize and pack; the block as quantized for the next block's input.
    quant::awq::quantized_matrix qm;
    block_weights bq = b;
    const std::pair<linear_f32 block_weights::*, const char*> lin[] = {
        {&block_weights::q, "self_attn.q_proj"}, {&block_weights::k, "self_attn.k_proj"},
        {&block_weights::v, "self_attn.v_proj"}, {&block_weights::o, "self_attn.o_proj"},
        {&block_weights::gate, "mlp.gate_proj"}, {&block_weights::up, "mlp.up_proj"},
        {&block_weights::down, "mlp.down_proj"}};
    emit_f16(p + "input_layernorm.weight", b.attn_norm, {H});
    for (const auto& [member, name] : lin) {
      emit_linear(p + name, b.*member, qm);
      (bq.*member).w = quant::awq::dequantize(qm);
    }
    emit_f16(p + "post_attention_layernorm.weight", b.ffn_norm, {H});
    if (cfg.qk_norm) {
      emit_f16(p + "self_attn.q_norm.weight", b.q_norm, {cfg.head_dim});
      emit_f16(p + "self_attn.k_norm.weight", b.k_norm, {cfg.head_dim});
    }
    if (o.propagate_quantized) {
      run.forward(bq, x.data(), y.data());
    } else {
      for (std::size_t i = 0; i < N * H; ++i) y[i] = hmid[i] + d_out[i];
    }
    std::swap(x, y);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
    res.blocks.push_back(rep);
    if (o.progress) o.progress(li, cfg.n_layers, true);
  }
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
  return res;
}

}  // namespace qforge::awq
