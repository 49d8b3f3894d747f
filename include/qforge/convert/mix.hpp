// SPDX-License-Identifier: MIT
// llama-quantize's file types ("mixes": Q4_K_M, Q5_K_S, Q3_K_L, ...) as a pure function from a
// tensor to the ggml type it gets, so that qforge and llama-quantize write the same file. Facts
// come from llama.cpp's src/llama-quant.cpp (llama_tensor_get_type_impl, tensor_type_fallback,
// tensor_allows_quantization, llama_ftype_get_default_type) as shipped in llama-cpp-python 0.3.36.
// Some choices depend on a tensor's place in the model, not only on its name: attn_v tensors are
// numbered in the order llama.cpp visits them (the "use more bits" layers of Q4_K_M count attn_v
// tensors, not layers), and llama.cpp visits tensors sorted by block number, then by name, which is
// also the order it writes them in. plan_mix() does that numbering; mix_tensor_type() is the rule
// for one tensor once its place is known.
#pragma once
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "qforge/core/error.hpp"
#include "qforge/format/gguf/keys.hpp"
#include "qforge/format/gguf/value.hpp"
#include "qforge/quant/types.hpp"

namespace qforge::convert {

// One llama-quantize file type: its CLI name, `general.file_type` value and default tensor type.
struct mix_info {
  std::string_view name;
  quant::file_type ftype;
  quant::qtype base;
};

inline constexpr mix_info mixes[] = {
    {"Q4_0", quant::file_type::mostly_q4_0, quant::qtype::q4_0},
    {"Q4_1", quant::file_type::mostly_q4_1, quant::qtype::q4_1},
    {"Q5_0", quant::file_type::mostly_q5_0, quant::qtype::q5_0},
    {"Q5_1", quant::file_type::mostly_q5_1, quant::qtype::q5_1},
    {"IQ4_NL", quant::file_type::mostly_iq4_nl, quant::qtype::iq4_nl},
    {"Q8_0", quant::file_type::mostly_q8_0, quant::qtype::q8_0},
    {"Q2_K", quant::file_type::mostly_q2_k, quant::qtype::q2_k},
    {"Q3_K_S", quant::file_type::mostly_q3_k_s, quant::qtype::q3_k},
    {"Q3_K_M", quant::file_type::mostly_q3_k_m, quant::qtype::q3_k},
    {"Q3_K_L", quant::file_type::mostly_q3_k_l, quant::qtype::q3_k},
    {"Q4_K_S", quant::file_type::mostly_q4_k_s, quant::qtype::q4_k},
    {"Q4_K_M", quant::file_type::mostly_q4_k_m, quant::qtype::q4_k},
    {"Q5_K_S", quant::file_type::mostly_q5_k_s, quant::qtype::q5_k},
    {"Q5_K_M", quant::file_type::mostly_q5_k_m, quant::qtype::q5_k},
    {"Q6_K", quant::file_type::mostly_q6_k, quant::qtype::q6_k},
};

// Case-insensitive: "q4_k_m" and "Q4_K_M" both name Q4_K_M.
inline std::optional<mix_info> find_mix(std::string_view name) noexcept {
  for (const auto& m : mixes) {
    if (m.name.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i)
      same = std::toupper(static_cast<unsigned char>(name[i])) == m.name[i];
    if (same) return m;
  }
  return std::nullopt;
}
inline std::optional<mix_info> find_mix(quant::file_type f) noexcept {
  for (const auto& m : mixes)
    if (m.ftype == f) return m;
  return std::nullopt;
}
inline std::string mix_names() {
  std::string s;
  for (const auto& m : mixes) s += cat(s.empty() ? "" : ", ", m.name);
  return s;
}
// Throws error(argument) listing the known names.
inline mix_info require_mix(std::string_view name) {
  if (auto m = find_mix(name)) return *m;
  throw error(error::kind::argument,
              cat("unknown quantization type '", name, "' (known: ", mix_names(), ")"));
}

// The hyper-parameters the rules look at, as llama.cpp's loader reads them from the GGUF header.
struct model_facts {
  std::string arch;  // general.architecture
  std::uint32_t n_layer = 0;
  std::uint32_t n_head = 0;
  std::uint32_t n_head_kv = 0;
  std::uint32_t n_expert = 0;

  [[nodiscard]] std::uint32_t n_gqa() const noexcept {
    return n_head_kv == 0 ? 0 : n_head / n_head_kv;
  }
  // llama.cpp's LLM_TYPE_70B, which gets extra bits on attn_v: the 80-block models of these
  // architectures (a LLaMA with as many kv heads as heads is the 65B instead).
  [[nodiscard]] bool is_70b() const noexcept {
    if (n_layer != 80) return false;
    if (arch == "llama") return n_expert != 8 && n_head != n_head_kv;
    return arch == "qwen2" || arch == "olmo" || arch == "deci";
  }
};

// Reads model_facts from GGUF metadata (a gguf::reader or gguf::writer: anything with find(key)).
// Throws error(format) naming `path` when block_count or head_count is missing or not an integer.
template <class Metadata>
model_facts model_facts_from(const Metadata& md, const std::string& path) {
  using format::gguf::value;
  using format::gguf::value_type;
  const auto get = [&](std::string_view key, bool required) -> std::optional<std::uint64_t> {
    const value* v = md.find(key);
    if (v == nullptr) {
      if (required) throw error(error::kind::format, path, cat("missing metadata key '", key, "'"));
      return std::nullopt;
    }
    // Per-layer arrays (llama.cpp's get_key_or_arr): the rules look at layer 0.
    if (v->is_array() && v->array_size() > 0 && is_integer(v->array_type()))
      if (auto u = v->element(0).as_uint()) return *u;
    if (auto u = v->as_uint(); u && *u <= UINT32_MAX) return *u;
    throw error(error::kind::format, path,
                cat("key '", key, "': expected a u32 or an array of integers"));
  };
  model_facts f;
  const value* a = md.find(format::gguf::keys::general_architecture);
  if (a == nullptr || a->type() != value_type::string)
    throw error(error::kind::format, path, "missing string key 'general.architecture'");
  f.arch = a->as_string();
  const auto k = [&](std::string_view suffix) { return format::gguf::arch_key(f.arch, suffix); };
  f.n_layer = static_cast<std::uint32_t>(*get(k(format::gguf::keys::block_count), true));
  f.n_head = static_cast<std::uint32_t>(*get(k(format::gguf::keys::attention_head_count), true));
  f.n_head_kv = static_cast<std::uint32_t>(
      get(k(format::gguf::keys::attention_head_count_kv), false).value_or(f.n_head));
  f.n_expert = static_cast<std::uint32_t>(get(k("expert_count"), false).value_or(0));
  return f;
}

// llama.cpp's tensor categories: broad roles found by name, whatever the architecture.
enum class tensor_role {
  token_embd,
  attn_q,
  attn_v,
  attn_k,
  attn_qkv,
  attn_kv_b,
  attn_output,
  ffn_up,
  ffn_gate,
  ffn_down,
  output,
  other
};

inline tensor_role role_of(std::string_view name) noexcept {
  const auto has = [&](std::string_view s) { return name.find(s) != std::string_view::npos; };
  if (name == "output.weight") return tensor_role::output;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight")
    return tensor_role::token_embd;
  if (has("attn_qkv.weight")) return tensor_role::attn_qkv;
  if (has("attn_kv_b.weight")) return tensor_role::attn_kv_b;
  if (has("attn_v.weight")) return tensor_role::attn_v;
  if (has("attn_k.weight")) return tensor_role::attn_k;
  if (has("attn_q.weight")) return tensor_role::attn_q;
  if (has("attn_output.weight")) return tensor_role::attn_output;
  if (has("ffn_up")) return tensor_role::ffn_up;
  if (has("ffn_gate")) return tensor_role::ffn_gate;
  if (has("ffn_down")) return tensor_role::ffn_down;
  return tensor_role::other;
}

// attn_v-like tensors share one counter and one rule (the fused qkv and MLA kv_b included).
constexpr bool is_attn_v_like(tensor_role r) noexcept {
  return r == tensor_role::attn_v || r == tensor_role::attn_qkv || r == tensor_role::attn_kv_b;
}

// ggml_n_dims: trailing dimensions of 1 do not count; at least 1.
inline std::size_t effective_dims(std::span<const std::uint64_t> dims) noexcept {
  std::size_t n = dims.size();
  while (n > 1 && dims[n - 1] == 1) --n;
  return std::max<std::size_t>(n, 1);
}

// Whether llama-quantize may change this tensor's type at all: 2-D and 3-D weights, except norms,
// router / position / conv / RWKV-mix / multimodal tensors it keeps as they are.
inline bool allows_quantization(std::string_view name, std::span<const std::uint64_t> dims) {
  if (effective_dims(dims) < 2) return false;
  if (!name.ends_with("weight")) return false;
  // clang-format off
  static constexpr std::string_view never[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
      "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
      "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
      "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
      "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
      "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
      "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
      "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
      "mm.a.code_embd"};
  // clang-format on
  for (auto s : never)
    if (name.find(s) != std::string_view::npos) return false;
  return name != "position_embd.weight" && name != "token_types.weight";
}

// The block number llama.cpp reads with sscanf("blk.%d."): -1 when the name has none.
inline int block_of(std::string_view name) noexcept {
  if (!name.starts_with("blk.")) return -1;
  std::size_t i = 4;
  while (i < name.size() && std::isspace(static_cast<unsigned char>(name[i]))) ++i;
  bool neg = false;
  if (i < name.size() && (name[i] == '-' || name[i] == '+')) neg = name[i++] == '-';
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  long long v = 0;
  for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i)
    v = std::min<long long>(v * 10 + (name[i] - '0'), INT32_MAX);
  return static_cast<int>(neg ? -v : v);
}

// llama.cpp's tensor order (its weights_map): by block number (none first), then by name.
inline bool llama_order_less(std::string_view a, std::string_view b) noexcept {
  const int la = block_of(a), lb = block_of(b);
  return la != lb ? la < lb : a < b;
}

// Where a tensor sits in the model, as far as the rules care. Indexes count tensors of the same
// role in llama order among those whose type the mix decides (allows_quantization).
struct mix_position {
  bool tied_embeddings = true;  // no output.weight: token_embd doubles as the output matrix
  bool has_imatrix = false;
  int attn_v_index = 0;  // among attn_v-like tensors
  int attn_v_count = 0;  // attn_v-like tensors in the model (every one, by name)
  int ffn_index = 0;     // among tensors of this tensor's ffn role (down, gate or up)
};

namespace detail {

constexpr bool use_more_bits(int i, int n) noexcept {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

inline std::uint64_t block_elems(quant::qtype t) {
  const auto tr = quant::traits(t);
  QFORGE_ASSERT(tr.has_value());
  return tr->block_elems;
}

// (layer, layer count) for the ffn rules: the running index for dense models; for MoE models the
// block number in the name, because llama.cpp's experts are not stored layer by layer.
inline std::pair<int, int> ffn_layer(const model_facts& f, std::string_view name, int index) {
  const int n = static_cast<int>(f.n_layer);
  if (std::max<std::uint32_t>(1, f.n_expert) <= 1) return {index, n};
  const int layer = block_of(name);
  if (layer < 0 || layer >= n)
    throw error(error::kind::format,
                cat("tensor '", name, "': no block number in [0, ", n, ") in its name"));
  return {layer, n};
}

// llama_tensor_get_type_impl for the mixes qforge knows (the IQ1/IQ2/IQ3 branches are left out).
inline quant::qtype rule(const mix_info& m, const model_facts& f, std::string_view name,
                         std::uint64_t row, tensor_role role, const mix_position& p) {
  using quant::qtype;
  using ft = quant::file_type;
  const ft t = m.ftype;
  const bool falcon = f.arch == "falcon";
  qtype q = m.base;
  if (role == tensor_role::output || (p.tied_embeddings && role == tensor_role::token_embd)) {
    if (falcon || row % block_elems(q) != 0)
      q = qtype::q8_0;
    else if (q != qtype::q8_0)
      q = qtype::q6_k;
  } else if (role == tensor_role::token_embd) {
    // no rule for these mixes
  } else if (is_attn_v_like(role)) {
    const int i = p.attn_v_index;
    if (t == ft::mostly_q2_k)
      q = f.n_gqa() >= 4 ? qtype::q4_k : qtype::q3_k;
    else if (t == ft::mostly_q3_k_m)
      q = i < 2 ? qtype::q5_k : qtype::q4_k;
    else if (t == ft::mostly_q3_k_l)
      q = qtype::q5_k;
    else if (t == ft::mostly_iq4_nl && f.n_gqa() >= 4)
      q = qtype::q5_k;
    else if ((t == ft::mostly_q4_k_m || t == ft::mostly_q5_k_m) && use_more_bits(i, p.attn_v_count))
      q = qtype::q6_k;
    else if (t == ft::mostly_q4_k_s && i < 4)
      q = qtype::q5_k;
    // attn_v is 8x smaller than attn_q under 8-way GQA: more bits cost almost nothing
    if (f.is_70b() && (q == qtype::q3_k || q == qtype::q4_k)) q = qtype::q5_k;
    if (f.n_expert == 8) q = qtype::q8_0;
  } else if (role == tensor_role::attn_k) {
    if (f.n_expert == 8) q = qtype::q8_0;
  } else if (role == tensor_role::ffn_down) {
    const auto [i, n] = ffn_layer(f, name, p.ffn_index);
    const bool more = use_more_bits(i, n);
    if (t == ft::mostly_q2_k)
      q = qtype::q3_k;
    else if (t == ft::mostly_q3_k_m)
      q = i < n / 16 ? qtype::q5_k : (!falcon || more) ? qtype::q4_k : qtype::q3_k;
    else if (t == ft::mostly_q3_k_l)
      q = falcon ? qtype::q4_k : qtype::q5_k;
    else if (t == ft::mostly_q4_k_m) {
      if (falcon)
        q = i < n / 16 ? qtype::q6_k : more ? qtype::q5_k : qtype::q4_k;
      else if (more)
        q = qtype::q6_k;
    } else if (i < n / 8 && t == ft::mostly_iq4_nl && !p.has_imatrix)
      q = qtype::q5_k;
    else if (t == ft::mostly_q5_k_m && more)
      q = qtype::q6_k;
    else if (t == ft::mostly_q4_k_s && !falcon && i < n / 8)
      q = qtype::q5_k;
    else if ((t == ft::mostly_q4_0 || t == ft::mostly_q5_0) && p.has_imatrix && i < n / 8)
      q = t == ft::mostly_q4_0 ? qtype::q4_1 : qtype::q5_1;  // first ffn_down layers go astray
  } else if (role == tensor_role::attn_output) {
    if (!falcon) {
      if (f.n_expert == 8) {
        if (t == ft::mostly_q2_k || t == ft::mostly_q3_k_s || t == ft::mostly_q3_k_m ||
            t == ft::mostly_iq4_nl || t == ft::mostly_q4_k_s || t == ft::mostly_q4_k_m)
          q = qtype::q5_k;
      } else if (t == ft::mostly_q2_k)
        q = qtype::q3_k;
      else if (t == ft::mostly_q3_k_m)
        q = qtype::q4_k;
      else if (t == ft::mostly_q3_k_l)
        q = qtype::q5_k;
    } else if (t == ft::mostly_q3_k_l) {
      q = qtype::q4_k;
    }
  } else if (role == tensor_role::ffn_gate || role == tensor_role::ffn_up) {
    // llama.cpp rejects MoE names without a block number here too
    (void)ffn_layer(f, name, p.ffn_index);
  }
  return q;
}

}  // namespace detail

// tensor_type_fallback: a type whose block does not divide the row length is replaced by a 32-value
// type of about as many bits, and by F16 when even 32 does not divide it. Throws error(unsupported)
// for a 256-value type with no fallback.
inline quant::qtype fallback_type(quant::qtype t, std::uint64_t row) {
  using quant::qtype;
  if (row % detail::block_elems(t) == 0) return t;
  qtype r = t;
  switch (t) {
    case qtype::iq1_s:
    case qtype::iq1_m:
    case qtype::iq2_xxs:
    case qtype::iq2_xs:
    case qtype::iq2_s:
    case qtype::iq3_xxs:
    case qtype::iq3_s:
    case qtype::iq4_xs:
      r = qtype::iq4_nl;
      break;
    case qtype::q2_k:
    case qtype::q3_k:
    case qtype::tq1_0:
    case qtype::tq2_0:
      r = qtype::q4_0;
      break;
    case qtype::q4_k:
      r = qtype::q5_0;
      break;
    case qtype::q5_k:
      r = qtype::q5_1;
      break;
    case qtype::q6_k:
      r = qtype::q8_0;
      break;
    default:
      if (detail::block_elems(t) > 32)
        throw error(error::kind::unsupported,
                    cat("no fallback type for ", quant::name(t), " on rows of ", row, " values"));
  }
  return row % detail::block_elems(r) == 0 ? r : qtype::f16;
}

// The type llama-quantize gives one tensor: `current` when the mix leaves it alone (1-D, norms,
// ...), else the mix's rule followed by the row-length fallback. dims[0] is the row length.
inline quant::qtype mix_tensor_type(const mix_info& m, const model_facts& f, std::string_view name,
                                    std::span<const std::uint64_t> dims, quant::qtype current,
                                    const mix_position& p) {
  if (dims.empty() || !allows_quantization(name, dims)) return current;
  return fallback_type(detail::rule(m, f, name, dims[0], role_of(name), p), dims[0]);
}

// A tensor as the planner sees it.
struct mix_tensor {
  std::string name;
  std::vector<std::uint64_t> dims;
  quant::qtype type = quant::qtype::f32;
};

struct mix_plan {
  std::vector<std::size_t> order;     // indexes into the input, in llama.cpp's (= output) order
  std::vector<quant::qtype> types;    // per input tensor
  std::vector<std::string> warnings;  // row-length fallbacks
};

// Types of a whole model, tensors in any order. `has_imatrix` changes a few rules (Q4_0/Q5_0/IQ4_NL
// ffn_down), as in llama.cpp where it means "importance data were given at all".
inline mix_plan plan_mix(const mix_info& m, const model_facts& f,
                         std::span<const mix_tensor> tensors, bool has_imatrix = false) {
  mix_plan plan;
  plan.order.resize(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) plan.order[i] = i;
  std::stable_sort(plan.order.begin(), plan.order.end(), [&](std::size_t a, std::size_t b) {
    return llama_order_less(tensors[a].name, tensors[b].name);
  });
  mix_position p;
  p.has_imatrix = has_imatrix;
  for (const auto& t : tensors) {
    const auto r = role_of(t.name);
    if (is_attn_v_like(r)) ++p.attn_v_count;
    if (r == tensor_role::output) p.tied_embeddings = false;
  }
  int ffn_seen[3] = {0, 0, 0};  // down, gate, up
  plan.types.resize(tensors.size());
  for (std::size_t i : plan.order) {
    const auto& t = tensors[i];
    const auto r = role_of(t.name);
    const bool decided = !t.dims.empty() && allows_quantization(t.name, t.dims);
    const int slot = r == tensor_role::ffn_down   ? 0
                     : r == tensor_role::ffn_gate ? 1
                     : r == tensor_role::ffn_up   ? 2
                                                  : -1;
    p.ffn_index = slot >= 0 ? ffn_seen[slot] : 0;
    if (!decided) {
      plan.types[i] = t.type;
      continue;
    }
    const auto wanted = detail::rule(m, f, t.name, t.dims[0], r, p);
    const auto q = fallback_type(wanted, t.dims[0]);
    plan.types[i] = q;
    if (q != wanted)
      plan.warnings.push_back(cat(t.name, ": rows of ", t.dims[0], " values do not fit ",
                                  quant::name(wanted), ", using ", quant::name(q)));
    // Only tensors whose type the mix decides advance the counters, as in llama.cpp.
    if (is_attn_v_like(r)) ++p.attn_v_index;
    if (slot >= 0) ++ffn_seen[slot];
  }
  return plan;
}

}  // namespace qforge::convert
