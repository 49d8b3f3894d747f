// SPDX-License-Identifier: MIT
// The CUDA engine harness's kernel checks: every matvec kind (Q4_K, Q6_K, Q8_0, F16 blocks; AWQ GEMM
// layout) against its CPU reference for odd shapes, 1..11 tokens, every rows-per-warp variant,
// accumulate and PDL on and off, outputs poisoned first; the fused prologues; a PDL chain; the small
// ops against plain loops; split-KV attention against the one-CTA kernel and a double reference.
#include "engine/cuda_harness.cuh"

namespace cuda_harness {

// --- matvec checks -------------------------------------------------------------------------------

void check_gguf(qtype t, std::size_t rows, std::size_t cols, std::uint64_t seed, bool quick) {
  const std::size_t rb = row_bytes(t, cols);
  dev<std::uint8_t> wd((rows * rb + 3) / 4 * 4);
  make_gguf(t, wd.p, rows, cols, seed);
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  auto bytes = wd.down();
  bytes.resize(rows * rb);
  const auto w = decode_host(t, bytes, rows, cols);
  const std::vector<std::size_t> token_counts = quick ? std::vector<std::size_t>{1, 3} : std::vector<std::size_t>{1, 2, 3, 5, 8, 11};
  for (std::size_t tokens : token_counts) {
    const std::size_t ldx = cols + 4, ldy = rows + 3;
    const auto x = host_random(tokens * ldx, seed + 10 * tokens);
    dev<float> xd(x.size()), yd(tokens * ldy);
    xd.up(x);
    auto xq = x;  // the 8-bit path's view of token 0
    if (int8_path(t, tokens)) {
      const auto r = q8_round_trip(x.data(), cols);
      std::copy(r.begin(), r.end(), xq.begin());
    }
    for (int int8 = 0; int8 < 2; ++int8)
    for (int rpw : {1, 2, 4}) {
      if (tokens > 2 && rpw != 1) continue;
      if (int8 == 0 && !int8_path(t, tokens)) continue;  // the float path of a q8 case only
      for (int acc = 0; acc < 2; ++acc)
        for (int pdl = 0; pdl < 2; ++pdl) {
          std::vector<float> y0 = acc ? host_random(tokens * ldy, seed + 99) : std::vector<float>(tokens * ldy, NAN);
          yd.up(y0);
          ec::launch_opts o;
          o.stream = g_stream;
          o.pdl = pdl != 0;
          o.rows_per_warp = rpw;
          o.int8_activations = int8 != 0;
          ec::matvec(t, wd.p, rows, cols, xd.p, ldx, tokens, yd.p, ldy, acc != 0, o);
          QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
          const auto got = yd.down();
          const bool q8 = int8_path(t, tokens, int8 != 0);
          const verdict v = compare(w, rows, cols, q8 ? xq : x, ldx, tokens, got, acc ? &y0 : nullptr, ldy);
          char what[200];
          std::snprintf(what, sizeof what, "%s %zux%zu tokens %zu rpw %d acc %d pdl %d%s: worst %.3g rel_l2 %.3g",
                        std::string(quant::name(t)).c_str(), rows, cols, tokens, rpw, acc, pdl,
                        q8 ? " int8 x" : "", v.worst, v.rel_l2);
          expect(v.ok, what);
          if (acc == 0 && pdl == 0 && rpw == 1 && tokens == 1)
            std::printf("  check %s\n", what);
        }
    }
  }
}

void check_awq(std::size_t out, std::size_t in, std::size_t group, std::uint64_t seed, bool quick,
               ec::awq_workspace& ws) {
  const awq_dev a(in, out, group, seed);
  QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
  const auto w = awq_host(a);
  const std::vector<std::size_t> token_counts = quick ? std::vector<std::size_t>{1, 3} : std::vector<std::size_t>{1, 2, 3, 8, 9};
  for (std::size_t tokens : token_counts) {
    const std::size_t ldx = in + 4, ldy = out + 1;
    const auto x = host_random(tokens * ldx, seed + 10 * tokens);
    dev<float> xd(x.size()), yd(tokens * ldy);
    xd.up(x);
    for (int kpw : {0, 32})  // the default (64 k per warp where the group allows) and 32
    for (int acc = 0; acc < 2; ++acc)
      for (int pdl = 0; pdl < 2; ++pdl) {
        std::vector<float> y0 = acc ? host_random(tokens * ldy, seed + 99) : std::vector<float>(tokens * ldy, NAN);
        yd.up(y0);
        ec::launch_opts o;
        o.stream = g_stream;
        o.pdl = pdl != 0;
        o.awq_k_per_warp = kpw;
        // Twice in a row: the second launch relies on the first leaving its tickets at zero.
        for (int rep = 0; rep < 2; ++rep) {
          if (rep == 1) {
            QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));  // the upload is not stream-ordered
            yd.up(y0);
          }
          ec::awq_matvec(a.view(), xd.p, ldx, tokens, yd.p, ldy, acc != 0, ws, o);
        }
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        const auto got = yd.down();
        const verdict v = compare(w, out, in, x, ldx, tokens, got, acc ? &y0 : nullptr, ldy);
        char what[200];
        std::snprintf(what, sizeof what, "awq out %zu in %zu g%zu tokens %zu acc %d pdl %d k/warp %d: worst %.3g rel_l2 %.3g",
                      out, in, group, tokens, acc, pdl, kpw, v.worst, v.rel_l2);
        expect(v.ok, what);
        if (acc == 0 && pdl == 0 && tokens == 1) std::printf("  check %s\n", what);
      }
  }
}

// The fused input prologues (RMSNorm, SwiGLU) on GGUF and AWQ matvecs, against x' formed on the
// host in float (as the CPU session forms it) and then the same dot-product comparison.
void check_prologues(std::uint64_t seed, ec::awq_workspace& ws) {
  const std::size_t rows = 264, cols = 2304;
  for (int kind = 1; kind <= 2; ++kind)
    for (std::size_t tokens : {std::size_t{1}, std::size_t{3}, std::size_t{9}}) {
      const std::size_t ldx = 2 * cols + 4, ldy = rows;
      const auto x = host_random(tokens * ldx, seed + tokens + 7 * kind, 2.0f);
      const auto nw = host_random(cols, seed + 3, 0.5f);
      std::vector<float> xp(tokens * cols);
      for (std::size_t t = 0; t < tokens; ++t) {
        const float* xt = x.data() + t * ldx;
        double ss = 0;
        for (std::size_t k = 0; k < cols; ++k) ss += double{xt[k]} * xt[k];
        const auto inv = static_cast<float>(1.0 / std::sqrt(ss / cols + 1e-5));
        for (std::size_t k = 0; k < cols; ++k)
          xp[t * cols + k] = kind == 1 ? nw[k] * (xt[k] * inv)
                                       : xt[k] / (1.0f + std::exp(-xt[k])) * xt[cols + k];
      }
      dev<float> xd(x.size()), nwd(cols), yd(tokens * ldy);
      xd.up(x), nwd.up(nw);
      ec::x_prologue pre;
      pre.kind = kind == 1 ? ec::x_prologue::op::rms_norm : ec::x_prologue::op::swiglu;
      pre.norm_weight = nwd.p;
      pre.eps = 1e-5f;
      ec::launch_opts o;
      o.stream = g_stream;
      const char* pname = kind == 1 ? "rms_norm" : "swiglu";
      for (qtype t : {qtype::q4_k, qtype::q6_k, qtype::q8_0, qtype::f16}) {
        dev<std::uint8_t> wd((rows * row_bytes(t, cols) + 3) / 4 * 4);
        make_gguf(t, wd.p, rows, cols, seed + 11);
        QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
        auto bytes = wd.down();
        bytes.resize(rows * row_bytes(t, cols));
        const auto w = decode_host(t, bytes, rows, cols);
        yd.up(std::vector<float>(tokens * ldy, NAN));
        ec::matvec(t, wd.p, rows, cols, xd.p, ldx, tokens, yd.p, ldy, false, o, pre);
        QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
        const auto xr = int8_path(t, tokens) ? q8_round_trip(xp.data(), cols) : xp;
        const verdict v = compare(w, rows, cols, xr, cols, tokens, yd.down(), nullptr, ldy);
        expect(v.ok, cat(quant::name(t), " ", pname, " prologue, tokens ", tokens, ": worst ", v.worst));
        if (int8_path(t, tokens))
          std::printf("  check %s + %s prologue, 1 token, int8 x: worst %.3g rel_l2 %.3g\n",
                      std::string(quant::name(t)).c_str(), pname, v.worst, v.rel_l2);
        if (tokens == 3) std::printf("  check %s + %s prologue, 3 tokens: worst %.3g rel_l2 %.3g\n",
                                     std::string(quant::name(t)).c_str(), pname, v.worst, v.rel_l2);
      }
      const awq_dev a(cols, rows, 128, seed + 12);
      QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
      const auto w = awq_host(a);
      yd.up(std::vector<float>(tokens * ldy, NAN));
      ec::awq_matvec(a.view(), xd.p, ldx, tokens, yd.p, ldy, false, ws, o, pre);
      QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
      const verdict v = compare(w, rows, cols, xp, cols, tokens, yd.down(), nullptr, ldy);
      expect(v.ok, cat("awq ", pname, " prologue, tokens ", tokens, ": worst ", v.worst));
      if (tokens == 3) std::printf("  check awq + %s prologue, 3 tokens: worst %.3g rel_l2 %.3g\n", pname, v.worst, v.rel_l2);
    }
}

// A dependent chain (each launch reads the previous one's output) with and without PDL: the same
// bits, since every kernel sums in a fixed order; a read of a not-yet-written input would differ.
void check_pdl_chain(std::uint64_t seed, ec::awq_workspace& ws) {
  const std::size_t H = 512, F = 1024;
  dev<std::uint8_t> w1(F * row_bytes(qtype::q4_k, H)), w2(H * row_bytes(qtype::q6_k, F));
  make_gguf(qtype::q4_k, w1.p, F, H, seed);
  make_gguf(qtype::q6_k, w2.p, H, F, seed + 1);
  const awq_dev a(H, H, 128, seed + 2);
  dev<float> x(H), y1(F), y2(H), y3(H), ones(H);
  fill_f32(ones.p, H, seed + 4, 0.0f, 1.0f);
  std::vector<float> res[3];
  for (int pdl = 0; pdl < 3; ++pdl) {  // off, early trigger, late trigger
    fill_f32(x.p, H, seed + 3, 1.0f);
    QFORGE_CUDA_CHECK(cudaDeviceSynchronize());
    ec::launch_opts o;
    o.stream = g_stream;
    o.pdl = pdl != 0;
    o.early_trigger = pdl == 1;
    for (int rep = 0; rep < 20; ++rep) {
      ec::matvec(qtype::q4_k, w1.p, F, H, x.p, H, 1, y1.p, F, false, o);
      ec::matvec(qtype::q6_k, w2.p, H, F, y1.p, F, 1, y2.p, H, false, o);
      ec::rms_norm(y2.p, ones.p, H, 1, 1e-5f, x.p, nullptr, o);
      ec::awq_matvec(a.view(), x.p, H, 1, y3.p, H, false, ws, o);
      ec::awq_matvec(a.view(), x.p, H, 1, y3.p, H, true, ws, o);
      ec::matvec(qtype::q4_k, w1.p, F, H, y3.p, H, 1, y1.p, F, false, o);
      ec::matvec(qtype::q6_k, w2.p, H, F, y1.p, F, 1, y3.p, H, true, o);
      ec::rms_norm(y3.p, ones.p, H, 1, 1e-5f, x.p, nullptr, o);
    }
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    res[pdl] = x.down();
  }
  bool same = std::memcmp(res[0].data(), res[1].data(), H * 4) == 0 &&
              std::memcmp(res[0].data(), res[2].data(), H * 4) == 0,
       live = true;
  for (float v : res[0]) live = live && std::isfinite(v);
  live = live && std::fabs(res[0][0]) + std::fabs(res[0][1]) > 0;
  expect(same && live, "dependent chain: PDL on and off give the same finite bits");
  std::printf("  check dependent chain of 160 launches, PDL (early / late trigger) vs plain: %s\n",
              same && live ? "identical" : "DIFFERENT or degenerate");
}

// --- small ops -----------------------------------------------------------------------------------

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

void check_ops(std::uint64_t seed) {
  const ec::launch_opts o{g_stream, true, 0};
  // RMSNorm, 3 tokens.
  {
    const std::size_t n = 4096, T = 3;
    const auto x = host_random(n * T, seed, 3.0f), w = host_random(n, seed + 1);
    dev<float> xd(n * T), wd(n), yd(n * T);
    dev<std::uint16_t> yh(n * T);
    xd.up(x), wd.up(w);
    ec::rms_norm(xd.p, wd.p, n, T, 1e-5f, yd.p, yh.p, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    std::vector<double> want(n * T);
    for (std::size_t t = 0; t < T; ++t) {
      double ss = 0;
      for (std::size_t i = 0; i < n; ++i) ss += double{x[t * n + i]} * x[t * n + i];
      const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
      for (std::size_t i = 0; i < n; ++i) want[t * n + i] = w[i] * (x[t * n + i] * inv);
    }
    const double e = rel_err(yd.down(), want);
    const auto hv = yh.down();
    std::vector<float> hf(hv.size());
    for (std::size_t i = 0; i < hv.size(); ++i) hf[i] = fp16_to_fp32(hv[i]);
    const double eh = rel_err(hf, want);
    expect(e < 1e-6 && eh < 1e-3, "rms_norm");
    std::printf("  check rms_norm: rel_l2 %.3g (fp16 copy %.3g)\n", e, eh);
  }
  // RoPE + cache store + attention, both pairings, 3 new tokens after 37 cached ones.
  for (int neox = 0; neox < 2; ++neox) {
    const std::size_t NH = 4, NKV = 2, D = 64, T = 3, cap = 64, pos0 = 37;
    const std::size_t qd = NH * D, kvd = NKV * D, ld = qd + 2 * kvd;
    std::vector<double> inv_freq(D / 2);
    for (std::size_t i = 0; i < D / 2; ++i) inv_freq[i] = std::pow(10000.0, -2.0 * i / D);
    const auto table = ec::rope_table(inv_freq, cap);
    auto qkv = host_random(T * ld, seed + 5 + neox);
    auto kc = host_random(cap * kvd, seed + 7), vc = host_random(cap * kvd, seed + 8);
    dev<float> qkvd(qkv.size()), kcd(kc.size()), vcd(vc.size()), td(table.size()), out(T * qd);
    dev<int> posd(1);
    qkvd.up(qkv), kcd.up(kc), vcd.up(vc), td.up(table);
    posd.up({static_cast<int>(pos0)});
    ec::rope_store(qkvd.p, ld, qkvd.p + qd, ld, qkvd.p + qd + kvd, ld, T, NH, NKV, D, neox != 0,
                   td.p, posd.p, kcd.p, vcd.p, o);
    ec::attention(qkvd.p, ld, T, kcd.p, vcd.p, NH, NKV, D, cap, posd.p, out.p, qd, nullptr, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    // Host: same rotation, then attention in double.
    for (std::size_t t = 0; t < T; ++t) {
      const std::size_t p = pos0 + t;
      for (std::size_t h = 0; h < NH + NKV; ++h) {
        float* hd = h < NH ? qkv.data() + t * ld + h * D : qkv.data() + t * ld + qd + (h - NH) * D;
        for (std::size_t i = 0; i < D / 2; ++i) {
          const float c = table[2 * (p * D / 2 + i)], s = table[2 * (p * D / 2 + i) + 1];
          float* x0 = neox ? hd + i : hd + 2 * i;
          float* x1 = neox ? hd + i + D / 2 : hd + 2 * i + 1;
          const float a0 = *x0, a1 = *x1;
          *x0 = a0 * c - a1 * s;
          *x1 = a1 * c + a0 * s;
        }
      }
      std::copy_n(qkv.data() + t * ld + qd, kvd, kc.data() + p * kvd);
      std::copy_n(qkv.data() + t * ld + qd + kvd, kvd, vc.data() + p * kvd);
    }
    const auto kg = kcd.down(), vg = vcd.down();
    const bool caches = std::memcmp(kg.data(), kc.data(), kc.size() * 4) == 0 &&
                        std::memcmp(vg.data(), vc.data(), vc.size() * 4) == 0;
    std::vector<double> want(T * qd);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t h = 0; h < NH; ++h) {
        const std::size_t kvh = h / (NH / NKV), n = pos0 + t + 1;
        std::vector<double> s(n);
        double mx = -INFINITY;
        for (std::size_t j = 0; j < n; ++j) {
          double a = 0;
          for (std::size_t d = 0; d < D; ++d) a += double{qkv[t * ld + h * D + d]} * kc[j * kvd + kvh * D + d];
          s[j] = a / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& v : s) sum += (v = std::exp(v - mx));
        for (std::size_t d = 0; d < D; ++d) {
          double acc = 0;
          for (std::size_t j = 0; j < n; ++j) acc += s[j] / sum * vc[j * kvd + kvh * D + d];
          want[t * qd + h * D + d] = acc;
        }
      }
    const double e = rel_err(out.down(), want);
    const auto qg = qkvd.down();
    bool qsame = true;
    for (std::size_t t = 0; t < T; ++t)
      qsame = qsame && std::memcmp(qg.data() + t * ld, qkv.data() + t * ld, qd * 4) == 0;
    expect(caches && qsame && e < 1e-5, cat("rope_store + attention, neox ", neox));
    std::printf("  check rope (%s) q/k/v cache bit-exact %s, attention rel_l2 %.3g\n",
                neox ? "neox" : "interleaved", caches && qsame ? "yes" : "NO", e);
  }
  // SwiGLU.
  {
    const std::size_t F = 1000, T = 2;
    const auto gu = host_random(2 * F * T, seed + 11, 4.0f);
    dev<float> gd(gu.size()), od(F * T);
    gd.up(gu);
    ec::swiglu(gd.p, F, T, od.p, nullptr, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    std::vector<double> want(F * T);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t f = 0; f < F; ++f) {
        const double g = gu[t * 2 * F + f];
        want[t * F + f] = g / (1 + std::exp(-g)) * gu[t * 2 * F + F + f];
      }
    const double e = rel_err(od.down(), want);
    expect(e < 1e-6, "swiglu");
    std::printf("  check swiglu: rel_l2 %.3g\n", e);
  }
}

// Split-KV attention (engine/cuda/attention_split.cuh) against the one-CTA kernel and a double
// reference: long caches (several CTAs per head, ragged last slices), grouped heads, head_dim 64
// and 128, and a short context in a long cache (one active slice: the one-CTA kernel's bits).
// Tolerance: relative L2 error <= 1e-5 against double for both kernels and between them.
void check_attention_split(std::uint64_t seed) {
  struct cfg {
    std::size_t NH, NKV, D, T, cap, pos0;
  };
  for (const cfg c : {cfg{8, 2, 128, 2, 700, 601}, cfg{4, 4, 64, 3, 4096, 3000},
                      cfg{6, 3, 128, 1, 1000, 130}, cfg{4, 2, 64, 1, 1000, 20}}) {
    const std::size_t qd = c.NH * c.D, kvd = c.NKV * c.D;
    const auto q = host_random(c.T * qd, seed + c.cap, 2.0f);
    const auto kc = host_random(c.cap * kvd, seed + 1), vc = host_random(c.cap * kvd, seed + 2);
    dev<float> qd_(q.size()), kcd(kc.size()), vcd(vc.size()), o1(c.T * qd), o2(c.T * qd);
    dev<int> posd(1);
    qd_.up(q), kcd.up(kc), vcd.up(vc);
    posd.up({static_cast<int>(c.pos0)});
    o1.up(std::vector<float>(c.T * qd, NAN));
    o2.up(std::vector<float>(c.T * qd, NAN));
    ec::launch_opts o{g_stream, true, 0};
    ec::attention(qd_.p, qd, c.T, kcd.p, vcd.p, c.NH, c.NKV, c.D, c.cap, posd.p, o1.p, qd, nullptr, o);
    o.attention_splits = 1;
    ec::attention(qd_.p, qd, c.T, kcd.p, vcd.p, c.NH, c.NKV, c.D, c.cap, posd.p, o2.p, qd, nullptr, o);
    QFORGE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
    std::vector<double> want(c.T * qd);
    for (std::size_t t = 0; t < c.T; ++t)
      for (std::size_t h = 0; h < c.NH; ++h) {
        const std::size_t kvh = h / (c.NH / c.NKV), n = c.pos0 + t + 1;
        std::vector<double> sc(n);
        double mx = -INFINITY, sum = 0;
        for (std::size_t j = 0; j < n; ++j) {
          double a = 0;
          for (std::size_t d = 0; d < c.D; ++d) a += double{q[t * qd + h * c.D + d]} * kc[j * kvd + kvh * c.D + d];
          sc[j] = a / std::sqrt(double(c.D));
          mx = std::max(mx, sc[j]);
        }
        for (auto& v : sc) sum += (v = std::exp(v - mx));
        for (std::size_t d = 0; d < c.D; ++d) {
          double acc = 0;
          for (std::size_t j = 0; j < n; ++j) acc += sc[j] * vc[j * kvd + kvh * c.D + d];
          want[t * qd + h * c.D + d] = acc / sum;
        }
      }
    const auto g1 = o1.down(), g2 = o2.down();
    const double e1 = rel_err(g1, want), e2 = rel_err(g2, want);
    std::vector<double> w2(g2.begin(), g2.end());
    const double e12 = rel_err(g1, w2);
    const bool short_ctx = c.pos0 + c.T <= 64;
    const bool same = std::memcmp(g1.data(), g2.data(), g1.size() * 4) == 0;
    expect(e1 < 1e-5 && e2 < 1e-5 && e12 < 1e-5 && (!short_ctx || same),
           cat("split-KV attention heads ", c.NH, "/", c.NKV, " D ", c.D, " positions ", c.pos0, "+", c.T,
               ": rel_l2 split ", e1, " one-CTA ", e2, " between ", e12));
    std::printf("  check split-KV attention %zu/%zu heads, D %zu, %zu+%zu positions of %zu: rel_l2 split %.3g, one CTA %.3g, split vs one CTA %.3g%s\n",
                c.NH, c.NKV, c.D, c.pos0, c.T, c.cap, e1, e2, e12, same ? " (bit-identical)" : "");
  }
}

}  // namespace cuda_harness
