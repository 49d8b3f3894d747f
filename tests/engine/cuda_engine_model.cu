// SPDX-License-Identifier: MIT
// The CUDA engine harness's model part: a Llama-shaped model in every weight format, decoded step by
// step through captured CUDA graphs and checked against a CPU forward pass on the same weights, and
// the decode tok/s of 7B-shaped models with random weights.
#include "engine/cuda_harness.cuh"

namespace cuda_harness {

// --- a Llama-shaped model on the GPU -------------------------------------------------------------

enum class wkind { gguf, awq, dense };

struct linear {
  wkind kind = wkind::gguf;
  qtype type = qtype::f16;
  std::size_t rows = 0, cols = 0;
  dev<std::uint8_t> data;  // GGUF blocks or F16 rows
  awq_dev awq;
  [[nodiscard]] double bytes() const {
    return kind == wkind::awq ? awq.bytes() : static_cast<double>(rows * row_bytes(type, cols));
  }
};

struct model_shape {
  std::size_t layers, hidden, heads, kv_heads, ffn, vocab;
  [[nodiscard]] std::size_t head_dim() const { return hidden / heads; }
};

// mix: "f16" (cuBLAS), "f16-own" (F16 through our matvec), "awq" (AWQ g128, F16 head),
// "q4_k_m" (llama.cpp's Q4_K_M types), "q8_0".
struct gpu_model {
  model_shape s;
  std::string mix;
  float eps = 1e-5f;
  struct layer {
    std::vector<linear> qkv;  // one fused [q | k | v] linear, or [q | k] and [v]
    linear o, gate_up, down;
    dev<float> attn_norm, ffn_norm;
  };
  std::vector<layer> layers;
  linear head;
  dev<std::uint16_t> embd;
  dev<float> out_norm;

  static bool more_bits(std::size_t i, std::size_t n) {  // llama.cpp's use_more_bits
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  }

  linear make(qtype t, std::size_t rows, std::size_t cols, std::uint64_t seed) const {
    linear l;
    l.rows = rows, l.cols = cols, l.type = t;
    if (mix == "awq" && t == qtype::q4_0) {  // q4_0 marks "the AWQ format" here
      l.kind = wkind::awq;
      l.awq = awq_dev(cols, rows, 128, seed);
      return l;
    }
    l.kind = t == qtype::f16 && mix == "f16" ? wkind::dense : wkind::gguf;
    l.data = dev<std::uint8_t>((rows * row_bytes(t, cols) + 3) / 4 * 4);
    make_gguf(t, l.data.p, rows, cols, seed);
    return l;
  }

  gpu_model(model_shape shape, std::string m, std::uint64_t seed) : s(shape), mix(std::move(m)) {
    const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D;
    const bool awq = mix == "awq", q4km = mix == "q4_k_m";
    const qtype base = mix == "q8_0" ? qtype::q8_0 : q4km ? qtype::q4_k : awq ? qtype::q4_0 : qtype::f16;
    for (std::size_t i = 0; i < s.layers; ++i) {
      layer L;
      const std::uint64_t ls = seed + 100 * (i + 1);
      const bool more = q4km && more_bits(i, s.layers);
      if (more) {
        L.qkv.push_back(make(base, qd + kvd, H, ls));
        L.qkv.push_back(make(qtype::q6_k, kvd, H, ls + 1));
      } else {
        L.qkv.push_back(make(base, qd + 2 * kvd, H, ls));
      }
      L.o = make(base, H, qd, ls + 2);
      L.gate_up = make(base, 2 * s.ffn, H, ls + 3);
      L.down = make(more ? qtype::q6_k : base, H, s.ffn, ls + 4);
      L.attn_norm = dev<float>(H);
      L.ffn_norm = dev<float>(H);
      fill_f32(L.attn_norm.p, H, ls + 5, 0.1f, 1.0f);
      fill_f32(L.ffn_norm.p, H, ls + 6, 0.1f, 1.0f);
      layers.push_back(std::move(L));
    }
    const qtype head_t = q4km ? qtype::q6_k : mix == "q8_0" ? qtype::q8_0 : qtype::f16;
    head = make(head_t, s.vocab, H, seed + 1);
    if (awq) head.kind = wkind::dense;  // AutoAWQ leaves lm_head in FP16
    embd = dev<std::uint16_t>(s.vocab * H);
    fill_f16(embd.p, s.vocab * H, seed + 2, 1.0f);
    out_norm = dev<float>(H);
    fill_f32(out_norm.p, H, seed + 3, 0.1f, 1.0f);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  }

  [[nodiscard]] double weight_bytes() const {
    double b = head.bytes();
    for (const auto& L : layers) {
      for (const auto& l : L.qkv) b += l.bytes();
      b += L.o.bytes() + L.gate_up.bytes() + L.down.bytes();
    }
    return b;
  }
};

// Activations, caches and the position counter of one sequence.
struct gpu_state {
  std::size_t cap;
  dev<float> x, xn, qkv, att, gu, act, logits, table;
  dev<std::uint16_t> xnh, atth, acth;
  std::vector<dev<float>> kc, vc;
  dev<int> pos, token;
  ec::awq_workspace ws;
  gpu_state(const gpu_model& m, std::size_t capacity) : cap(capacity) {
    const auto& s = m.s;
    const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D;
    x = dev<float>(H), xn = dev<float>(H), qkv = dev<float>(qd + 2 * kvd), att = dev<float>(qd);
    gu = dev<float>(2 * s.ffn), act = dev<float>(s.ffn), logits = dev<float>(s.vocab);
    xnh = dev<std::uint16_t>(H), atth = dev<std::uint16_t>(qd), acth = dev<std::uint16_t>(s.ffn);
    for (std::size_t i = 0; i < s.layers; ++i) {
      kc.emplace_back(cap * kvd);
      vc.emplace_back(cap * kvd);
    }
    pos = dev<int>(1), token = dev<int>(1);
    std::vector<double> inv_freq(D / 2);
    for (std::size_t i = 0; i < D / 2; ++i) inv_freq[i] = std::pow(10000.0, -2.0 * i / D);
    const auto t = ec::rope_table(inv_freq, cap);
    table = dev<float>(t.size());
    table.up(t);
    ws = ec::awq_workspace(std::max(H, s.ffn), std::max({2 * s.ffn, qd + 2 * kvd, H}));
  }
};

// ldx: floats between tokens of x (2 * cols for a SwiGLU prologue's [gate | up] rows).
void run_linear(const linear& l, const float* x, std::size_t ldx, const std::uint16_t* xh,
                float* y, bool acc, gpu_state& st, ec::blas& blas, const ec::launch_opts& o,
                const ec::x_prologue& pre = {}) {
  switch (l.kind) {
    case wkind::gguf: ec::matvec(l.type, l.data.p, l.rows, l.cols, x, ldx, 1, y, l.rows, acc, o, pre); break;
    case wkind::awq: ec::awq_matvec(l.awq.view(), x, ldx, 1, y, l.rows, acc, st.ws, o, pre); break;
    case wkind::dense:
      ec::dense_f16(blas, reinterpret_cast<const std::uint16_t*>(l.data.p), l.rows, l.cols, xh,
                    l.cols, 1, y, l.rows, acc, o.stream);
      break;
  }
}

// One decode step: the token at *st.token, position *st.pos; logits into st.logits; then *pos += 1,
// wrapping to `first` at `limit`. fuse: RMSNorm and SwiGLU run inside the following matvec
// (x_prologue) wherever that matvec is ours (cuBLAS needs the fp16 copy a separate kernel writes).
void enqueue_step(const gpu_model& m, gpu_state& st, ec::blas& blas, const ec::launch_opts& o,
                  int first, int limit, bool fuse) {
  const auto& s = m.s;
  const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D;
  const auto fused = [&](const linear& l) { return fuse && l.kind != wkind::dense; };
  const auto norm = [&](const dev<float>& w) {
    ec::x_prologue p;
    p.kind = ec::x_prologue::op::rms_norm;
    p.norm_weight = w.p;
    p.eps = m.eps;
    return p;
  };
  ec::x_prologue swi;
  swi.kind = ec::x_prologue::op::swiglu;
  ec::embed_f16(m.embd.p, H, st.token.p, st.x.p, nullptr, o);
  for (std::size_t i = 0; i < s.layers; ++i) {
    const auto& L = m.layers[i];
    if (!fused(L.qkv[0])) ec::rms_norm(st.x.p, L.attn_norm.p, H, 1, m.eps, st.xn.p, st.xnh.p, o);
    float* out = st.qkv.p;
    for (const auto& l : L.qkv) {
      if (fused(l)) run_linear(l, st.x.p, H, nullptr, out, false, st, blas, o, norm(L.attn_norm));
      else run_linear(l, st.xn.p, H, st.xnh.p, out, false, st, blas, o);
      out += l.rows;
    }
    ec::rope_store(st.qkv.p, qd, st.qkv.p + qd, kvd, st.qkv.p + qd + kvd, kvd, 1, s.heads,
                   s.kv_heads, D, true, st.table.p, st.pos.p, st.kc[i].p, st.vc[i].p, o);
    ec::attention(st.qkv.p, qd, 1, st.kc[i].p, st.vc[i].p, s.heads, s.kv_heads, D, st.cap,
                  st.pos.p, st.att.p, qd, st.atth.p, o);
    run_linear(L.o, st.att.p, qd, st.atth.p, st.x.p, true, st, blas, o);
    if (fused(L.gate_up)) {
      run_linear(L.gate_up, st.x.p, H, nullptr, st.gu.p, false, st, blas, o, norm(L.ffn_norm));
    } else {
      ec::rms_norm(st.x.p, L.ffn_norm.p, H, 1, m.eps, st.xn.p, st.xnh.p, o);
      run_linear(L.gate_up, st.xn.p, H, st.xnh.p, st.gu.p, false, st, blas, o);
    }
    if (fused(L.down)) {
      run_linear(L.down, st.gu.p, 2 * s.ffn, nullptr, st.x.p, true, st, blas, o, swi);
    } else {
      ec::swiglu(st.gu.p, s.ffn, 1, st.act.p, st.acth.p, o);
      run_linear(L.down, st.act.p, s.ffn, st.acth.p, st.x.p, true, st, blas, o);
    }
  }
  if (fused(m.head)) {
    run_linear(m.head, st.x.p, H, nullptr, st.logits.p, false, st, blas, o, norm(m.out_norm));
  } else {
    ec::rms_norm(st.x.p, m.out_norm.p, H, 1, m.eps, st.xn.p, st.xnh.p, o);
    run_linear(m.head, st.xn.p, H, st.xnh.p, st.logits.p, false, st, blas, o);
  }
  ec::advance_position(st.pos.p, first, limit, o);
}

// mode: 0 plain launches, unfused; 1 PDL with early trigger, fused; 2 PDL with late trigger,
// fused; 3 plain launches, fused.
cudaGraphExec_t capture_step(const gpu_model& m, gpu_state& st, ec::blas& blas, int mode, int first,
                             int limit) {
  ec::launch_opts o;
  o.stream = g_stream;
  o.pdl = mode == 1 || mode == 2;
  o.early_trigger = mode == 1;
  o.attention_splits = g_attention_splits;
  return capture_graph([&] { enqueue_step(m, st, blas, o, first, limit, mode != 0); });
}

// The same step on the CPU, from the device weights downloaded and decoded to float.
struct cpu_model {
  model_shape s;
  float eps;
  struct layer {
    std::vector<float> wqkv, wo, wgu, wdown, attn_norm, ffn_norm;
    std::vector<std::pair<std::size_t, bool>> qkv_parts;  // rows, int8 activations
    bool q8_o = false, q8_gu = false, q8_down = false;
  };
  std::vector<layer> layers;
  std::vector<float> head, embd, out_norm;
  bool f16_acts = false;  // cuBLAS linears read fp16 activations
  bool f16_head = false;
  bool q8_head = false;

  static std::vector<float> weights(const linear& l) {
    if (l.kind == wkind::awq) return awq_host(l.awq);
    auto b = l.data.down();
    b.resize(l.rows * row_bytes(l.type, l.cols));
    return decode_host(l.type, b, l.rows, l.cols);
  }
  explicit cpu_model(const gpu_model& m)
      : s(m.s), eps(m.eps), f16_acts(m.mix == "f16"), f16_head(m.head.kind == wkind::dense) {
    for (const auto& L : m.layers) {
      layer c;
      for (const auto& l : L.qkv) {
        const auto w = weights(l);
        c.wqkv.insert(c.wqkv.end(), w.begin(), w.end());
        c.qkv_parts.emplace_back(l.rows, q8(l));
      }
      c.wo = weights(L.o), c.wgu = weights(L.gate_up), c.wdown = weights(L.down);
      c.q8_o = q8(L.o), c.q8_gu = q8(L.gate_up), c.q8_down = q8(L.down);
      c.attn_norm = L.attn_norm.down(), c.ffn_norm = L.ffn_norm.down();
      layers.push_back(std::move(c));
    }
    head = weights(m.head);
    q8_head = q8(m.head);
    const auto e = m.embd.down();
    embd.resize(e.size());
    for (std::size_t i = 0; i < e.size(); ++i) embd[i] = fp16_to_fp32(e[i]);
    out_norm = m.out_norm.down();
  }
  static bool q8(const linear& l) { return l.kind == wkind::gguf && int8_path(l.type, 1); }
  static float round16(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }
  // in8: the linear's kernel reads x as 8-bit codes (decode steps are single tokens).
  void mv(const float* w, std::size_t rows, std::size_t cols, const float* x, float* y,
          bool acc, bool f16_in, bool in8 = false) const {
    const auto xq = in8 ? q8_round_trip(x, cols) : std::vector<float>{};
    if (in8) x = xq.data();
    for (std::size_t r = 0; r < rows; ++r) {
      double a = 0;
      for (std::size_t k = 0; k < cols; ++k) a += double{w[r * cols + k]} * (f16_in ? round16(x[k]) : x[k]);
      y[r] = static_cast<float>(acc ? y[r] + a : a);
    }
  }
  void norm(const float* x, const std::vector<float>& w, float* y) const {
    double ss = 0;
    for (std::size_t i = 0; i < s.hidden; ++i) ss += double{x[i]} * x[i];
    const auto inv = static_cast<float>(1.0 / std::sqrt(ss / s.hidden + eps));
    for (std::size_t i = 0; i < s.hidden; ++i) y[i] = w[i] * (x[i] * inv);
  }
  // Caches [layer][pos][kvd]; returns the logits of token at pos.
  std::vector<float> step(int token, std::size_t pos, const std::vector<float>& table,
                          std::vector<std::vector<float>>& kc, std::vector<std::vector<float>>& vc) const {
    const std::size_t H = s.hidden, D = s.head_dim(), qd = s.heads * D, kvd = s.kv_heads * D, F = s.ffn;
    std::vector<float> x(embd.begin() + token * H, embd.begin() + (token + 1) * H), xn(H),
        qkv(qd + 2 * kvd), att(qd), gu(2 * F), a(F), logits(s.vocab);
    for (std::size_t li = 0; li < s.layers; ++li) {
      const auto& L = layers[li];
      norm(x.data(), L.attn_norm, xn.data());
      for (std::size_t r0 = 0; const auto& [rows, in8] : L.qkv_parts) {
        mv(L.wqkv.data() + r0 * H, rows, H, xn.data(), qkv.data() + r0, false, f16_acts, in8);
        r0 += rows;
      }
      for (std::size_t h = 0; h < s.heads + s.kv_heads; ++h) {
        float* hd = qkv.data() + h * D;  // q heads, then k heads
        for (std::size_t i = 0; i < D / 2; ++i) {
          const float c = table[2 * (pos * D / 2 + i)], sn = table[2 * (pos * D / 2 + i) + 1];
          const float a0 = hd[i], a1 = hd[i + D / 2];
          hd[i] = a0 * c - a1 * sn;
          hd[i + D / 2] = a1 * c + a0 * sn;
        }
      }
      std::copy_n(qkv.data() + qd, kvd, kc[li].data() + pos * kvd);
      std::copy_n(qkv.data() + qd + kvd, kvd, vc[li].data() + pos * kvd);
      for (std::size_t h = 0; h < s.heads; ++h) {
        const std::size_t kvh = h / (s.heads / s.kv_heads);
        std::vector<double> sc(pos + 1);
        double mx = -INFINITY, sum = 0;
        for (std::size_t j = 0; j <= pos; ++j) {
          double d = 0;
          for (std::size_t e = 0; e < D; ++e) d += double{qkv[h * D + e]} * kc[li][j * kvd + kvh * D + e];
          sc[j] = d / std::sqrt(double(D));
          mx = std::max(mx, sc[j]);
        }
        for (auto& v : sc) sum += (v = std::exp(v - mx));
        for (std::size_t e = 0; e < D; ++e) {
          double o = 0;
          for (std::size_t j = 0; j <= pos; ++j) o += sc[j] / sum * vc[li][j * kvd + kvh * D + e];
          att[h * D + e] = static_cast<float>(o);
        }
      }
      mv(L.wo.data(), H, qd, att.data(), x.data(), true, f16_acts, L.q8_o);
      norm(x.data(), L.ffn_norm, xn.data());
      mv(L.wgu.data(), 2 * F, H, xn.data(), gu.data(), false, f16_acts, L.q8_gu);
      for (std::size_t f = 0; f < F; ++f) a[f] = gu[f] / (1.0f + std::exp(-gu[f])) * gu[F + f];
      mv(L.wdown.data(), H, F, a.data(), x.data(), true, f16_acts, L.q8_down);
    }
    norm(x.data(), out_norm, xn.data());
    mv(head.data(), s.vocab, H, xn.data(), logits.data(), false, f16_head, q8_head);
    return logits;
  }
};

void check_model(const std::string& mix, std::uint64_t seed, ec::blas& blas) {
  const model_shape shape{2, 256, 4, 2, 512, 300};
  const gpu_model m(shape, mix, seed);
  const cpu_model c(m);
  const std::size_t cap = 16, kvd = shape.kv_heads * shape.head_dim();
  std::vector<float> logits[3][5];
  for (int pdl = 0; pdl < 3; ++pdl) {
    try {
      gpu_state st(m, cap);
      st.pos.up({0});
      const cudaGraphExec_t g = capture_step(m, st, blas, pdl, 0, static_cast<int>(cap));
      for (int t = 0; t < 5; ++t) {
        st.token.up({static_cast<int>((37 * t + 11) % shape.vocab)});
        QFORGE_CUDA_CHECK(cudaGraphLaunch(g, g_stream));
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        logits[pdl][t] = st.logits.down();
      }
      cudaGraphExecDestroy(g);
    } catch (const std::exception& e) {
      expect(false, cat("model ", mix, " pdl ", pdl, ": ", e.what()));
      cudaGetLastError();
      for (auto& l : logits[pdl]) l.assign(shape.vocab, NAN);
    }
  }
  std::vector<std::vector<float>> kc(shape.layers, std::vector<float>(cap * kvd)),
      vc(shape.layers, std::vector<float>(cap * kvd));
  std::vector<double> inv_freq(shape.head_dim() / 2);
  for (std::size_t i = 0; i < inv_freq.size(); ++i)
    inv_freq[i] = std::pow(10000.0, -2.0 * i / shape.head_dim());
  const auto table = ec::rope_table(inv_freq, cap);
  double worst = 0;
  bool same = true;
  for (int t = 0; t < 5; ++t) {
    const auto want = c.step(static_cast<int>((37 * t + 11) % shape.vocab), t, table, kc, vc);
    float mx = 0;
    for (float v : want) mx = std::max(mx, std::fabs(v));
    for (int mode = 0; mode < 3; ++mode) {
      float d = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        const float e = std::fabs(logits[mode][t][i] - want[i]);
        d = std::isfinite(logits[mode][t][i]) ? std::max(d, e) : INFINITY;
      }
      worst = std::max(worst, double{d} / mx);
    }
    same = same && std::memcmp(logits[1][t].data(), logits[2][t].data(), want.size() * 4) == 0;
  }
  const double tol = mix == "f16" || mix == "awq" ? 1e-2 : 1e-3;
  expect(worst <= tol, cat("model ", mix, ": max |d logit| / max |logit| = ", worst));
  expect(same, cat("model ", mix, ": PDL early / late trigger give the same logits"));
  std::printf("  check 2-layer model %-7s 5 decode steps vs CPU (plain, fused+PDL early, fused+PDL late): max|dlogit|/max|logit| %.3g (tol %.0e), PDL modes bit-identical %s\n",
              mix.c_str(), worst, tol, same ? "yes" : "NO");
}

void bench_decode(const bandwidth& bw, ec::blas& blas) {
  std::printf("decode, 7B shape (32 layers, hidden 4096, 32 heads, ffn 11008, vocab 32000), random weights, one CUDA graph per step, KV cache positions 64..127 and 512..639 (cyclically); fused = RMSNorm and SwiGLU inside the matvecs (not before cuBLAS); pdl = programmatic dependent launch; 1cta = attention with one CTA per head (split-KV off):\n");
  for (const int first : {64, 512})
  for (std::size_t kv : {std::size_t{32}, std::size_t{8}})
    for (const char* mix : {"f16", "awq", "q4_k_m", "q8_0", "f16-own"}) {
      if (kv == 8 && std::string(mix) != "q4_k_m" && std::string(mix) != "awq") continue;
      if (first != 64 && std::string(mix) == "f16-own") continue;
      const model_shape shape{32, 4096, 32, kv, 11008, 32000};
      const gpu_model m(shape, mix, 77);
      const int limit = first + 64 * (first == 64 ? 1 : 2);  // 64..127 or 512..639
      gpu_state st(m, static_cast<std::size_t>(limit));
      for (auto& c : st.kc) fill_f32(c.p, c.n, 3, 1.0f);
      for (auto& c : st.vc) fill_f32(c.p, c.n, 4, 1.0f);
      st.token.up({1234});
      const double wb = m.weight_bytes();
      for (int pdl : {0, 3, 1, 4}) try {
        if (first != 64 && (pdl == 0 || pdl == 3)) continue;
        g_attention_splits = pdl == 4 ? 1 : 0;
        const int cmode = pdl == 4 ? 1 : pdl;
        st.pos.up({first});
        const cudaGraphExec_t g = capture_step(m, st, blas, cmode, first, limit);
        g_attention_splits = 0;
        const int steps = 64;
        const double t = time_it([&] {
          for (int i = 0; i < steps; ++i) QFORGE_CUDA_CHECK(cudaGraphLaunch(g, g_stream));
        }, 5) / steps;
        cudaGraphExecDestroy(g);
        const auto logits = st.logits.down();
        bool finite = true;
        for (float v : logits) finite = finite && std::isfinite(v);
        const char* mode = pdl == 0 ? "plain" : pdl == 1 ? "fused+pdl" : pdl == 2 ? "fused+pdl-late"
                         : pdl == 4 ? "fused+pdl+1cta" : "fused";
        std::printf("  %-7s kv %2zu pos %3d-%3d %-15s %8.2f tok/s  %7.3f ms/token  weights %6.2f GB -> %5.0f GB/s (%4.1f%% of copy)%s\n",
                    mix, kv, first, limit - 1, mode, 1.0 / t, t * 1e3, wb * 1e-9, wb / t * 1e-9,
                    100 * wb / t / bw.copy, finite ? "" : "  NON-FINITE LOGITS");
        if (csv)
          std::fprintf(csv, "decode,%s,kv%zu,pos%d,%s,%.3f,%.4f,%.0f,%.1f\n", mix, kv, first, mode,
                       1.0 / t, t * 1e3, wb, wb / t * 1e-9);
      } catch (const std::exception& e) {
        std::printf("  %-7s kv %2zu mode %d: FAILED %s\n", mix, kv, pdl, e.what());
        cudaGetLastError();
        g_attention_splits = 0;
      }
    }
}

}  // namespace cuda_harness
