#include "model/tiny_qwen2moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <span>

#include "gguf/writer.h"

namespace rf::test {
namespace {

using Vec = std::vector<double>;

std::string blk(int il, const std::string& suffix) { return "blk." + std::to_string(il) + "." + suffix; }

int64_t count(const std::vector<int64_t>& ne) {
  return std::accumulate(ne.begin(), ne.end(), int64_t{1}, std::multiplies<>());
}

// The tensors of the model in file order: name, dims and the scale of their uniform random values (a norm weight
// is 1 + noise).
struct Decl {
  std::string name;
  std::vector<int64_t> ne;
  double scale;
  bool around_one;
};

std::vector<Decl> declarations(const TinyQwen2MoeSpec& s) {
  const int64_t e = s.n_embd, hd = s.n_embd / s.n_head, q = s.n_head * hd, kv = s.n_head_kv * hd;
  const int64_t x = s.n_expert, fx = s.n_ff_exp, fs = s.n_ff_shexp, v = s.n_vocab;
  const double in_e = 1.0 / std::sqrt(static_cast<double>(e));
  std::vector<Decl> d = {{"token_embd.weight", {e, v}, 1.0, false},
                         {"output_norm.weight", {e}, 0.2, true},
                         {"output.weight", {e, v}, in_e, false}};
  for (int il = 0; il < s.n_layer; ++il) {
    auto add = [&](const std::string& n, std::vector<int64_t> ne, double scale, bool one = false) {
      d.push_back({blk(il, n), std::move(ne), scale, one});
    };
    add("attn_norm.weight", {e}, 0.2, true);
    add("attn_q.weight", {e, q}, in_e);
    add("attn_q.bias", {q}, 0.3);
    add("attn_k.weight", {e, kv}, in_e);
    add("attn_k.bias", {kv}, 0.3);
    add("attn_v.weight", {e, kv}, in_e);
    add("attn_v.bias", {kv}, 0.3);
    add("attn_output.weight", {q, e}, 1.0 / std::sqrt(static_cast<double>(q)));
    add("ffn_norm.weight", {e}, 0.2, true);
    add("ffn_gate_inp.weight", {e, x}, 3.0 * in_e);  // spread router logits: clear top-k choices
    add("ffn_gate_exps.weight", {e, fx, x}, 2.0 * in_e);
    add("ffn_up_exps.weight", {e, fx, x}, 2.0 * in_e);
    add("ffn_down_exps.weight", {fx, e, x}, 2.0 / std::sqrt(static_cast<double>(fx)));
    add("ffn_gate_inp_shexp.weight", {e}, 2.0 * in_e);  // gate logits of order 1: sigmoid well away from 1/2
    add("ffn_gate_shexp.weight", {e, fs}, 2.0 * in_e);
    add("ffn_up_shexp.weight", {e, fs}, 2.0 * in_e);
    add("ffn_down_shexp.weight", {fs, e}, 2.0 / std::sqrt(static_cast<double>(fs)));
  }
  return d;
}

// ---- the float64 reference ---------------------------------------------------------------------------------------

const TinyTensor& get(const TinyWeights& w, const std::string& name) { return w.at(name); }

// y = W x for W [n_in, n_out] (n_out rows of n_in), starting at matrix `m` of a stacked tensor.
Vec matvec(const TinyTensor& w, const Vec& x, int64_t m = 0) {
  const int64_t n_in = w.ne[0], n_out = w.ne[1];
  Vec y(static_cast<size_t>(n_out), 0.0);
  const float* base = w.data.data() + m * n_in * n_out;
  for (int64_t o = 0; o < n_out; ++o) {
    double acc = 0.0;
    for (int64_t i = 0; i < n_in; ++i) acc += static_cast<double>(base[o * n_in + i]) * x[static_cast<size_t>(i)];
    y[static_cast<size_t>(o)] = acc;
  }
  return y;
}

Vec rms_norm(const Vec& x, const TinyTensor& w, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w.data[i];
  return y;
}

void add_to(Vec& a, const Vec& b, double scale = 1.0) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += scale * b[i];
}

// NEOX rope over whole heads: element i pairs with i + hd/2, angle pos * base^(-2i/hd).
void rope_neox(Vec& x, int n_heads, int hd, int pos, double base) {
  const int half = hd / 2;
  for (int h = 0; h < n_heads; ++h) {
    double* v = x.data() + static_cast<size_t>(h) * static_cast<size_t>(hd);
    for (int i = 0; i < half; ++i) {
      const double theta = pos * std::pow(base, -2.0 * i / hd);
      const double c = std::cos(theta), s = std::sin(theta), a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = a * s + b * c;
    }
  }
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// down(silu(gate x) * up x), for matrix m of stacked tensors.
Vec swiglu(const TinyTensor& gate, const TinyTensor& up, const TinyTensor& down, const Vec& x, int64_t m = 0) {
  Vec g = matvec(gate, x, m);
  const Vec u = matvec(up, x, m);
  for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
  return matvec(down, g, m);
}

Vec moe_ffn(const TinyQwen2MoeSpec& s, const TinyWeights& w, int il, const Vec& h, const ReferenceVariant& v) {
  const Vec logits = matvec(get(w, blk(il, "ffn_gate_inp.weight")), h);
  const double mx = *std::max_element(logits.begin(), logits.end());
  Vec p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) sum += (p[i] = std::exp(logits[i] - mx));
  for (double& pi : p) pi /= sum;
  std::vector<int> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
  double used_sum = 0.0;
  for (int j = 0; j < s.n_expert_used; ++j) used_sum += p[static_cast<size_t>(order[static_cast<size_t>(j)])];

  Vec out(h.size(), 0.0);
  for (int j = 0; j < s.n_expert_used; ++j) {
    const int ex = order[static_cast<size_t>(j)];
    double weight = p[static_cast<size_t>(ex)];
    if (v.renormalize_experts) weight /= used_sum;
    add_to(out,
           swiglu(get(w, blk(il, "ffn_gate_exps.weight")), get(w, blk(il, "ffn_up_exps.weight")),
                  get(w, blk(il, "ffn_down_exps.weight")), h, ex),
           weight);
  }
  if (v.shared_expert) {
    const TinyTensor& gi = get(w, blk(il, "ffn_gate_inp_shexp.weight"));
    double g = 0.0;
    for (size_t i = 0; i < h.size(); ++i) g += static_cast<double>(gi.data[i]) * h[i];
    add_to(out,
           swiglu(get(w, blk(il, "ffn_gate_shexp.weight")), get(w, blk(il, "ffn_up_shexp.weight")),
                  get(w, blk(il, "ffn_down_shexp.weight")), h),
           v.shared_gate ? sigmoid(g) : 1.0);
  }
  return out;
}

}  // namespace

Expected<TinyModel> make_tiny_qwen2moe(const TinyQwen2MoeSpec& spec) {
  TinyModel m;
  std::mt19937 rng(spec.seed);
  std::uniform_real_distribution<double> uni(-1.0, 1.0);
  gguf::Writer wr;
  const std::string p = "qwen2moe.";
  std::map<std::string, uint32_t> keys = {
      {p + "block_count", static_cast<uint32_t>(spec.n_layer)},
      {p + "context_length", 256},
      {p + "embedding_length", static_cast<uint32_t>(spec.n_embd)},
      {p + "feed_forward_length", static_cast<uint32_t>(spec.n_ff)},
      {p + "attention.head_count", static_cast<uint32_t>(spec.n_head)},
      {p + "attention.head_count_kv", static_cast<uint32_t>(spec.n_head_kv)},
      {p + "expert_count", static_cast<uint32_t>(spec.n_expert)},
      {p + "expert_used_count", static_cast<uint32_t>(spec.n_expert_used)},
  };
  if (spec.write_exp_key) keys[p + "expert_feed_forward_length"] = static_cast<uint32_t>(spec.n_ff_exp);
  if (spec.write_shexp_key) keys[p + "expert_shared_feed_forward_length"] = static_cast<uint32_t>(spec.n_ff_shexp);
  for (const auto& [k, v] : spec.override_keys) keys[p + k] = v;
  RF_RETURN_IF_ERROR(wr.add("general.architecture", std::string("qwen2moe")));
  for (const auto& [k, v] : keys) RF_RETURN_IF_ERROR(wr.add(k, v));
  RF_RETURN_IF_ERROR(wr.add(p + "attention.layer_norm_rms_epsilon", spec.rms_eps));
  RF_RETURN_IF_ERROR(wr.add(p + "rope.freq_base", spec.rope_base));

  std::vector<std::string> order;
  for (Decl& d : declarations(spec)) {
    if (spec.omit.count(d.name) != 0) continue;
    if (auto it = spec.reshape.find(d.name); it != spec.reshape.end()) d.ne = it->second;
    TinyTensor t;
    t.ne = d.ne;
    t.data.resize(static_cast<size_t>(count(d.ne)));
    for (float& f : t.data) f = static_cast<float>((d.around_one ? 1.0 : 0.0) + d.scale * uni(rng));
    RF_RETURN_IF_ERROR(wr.add_tensor(d.name, quant::Type::F32, std::span<const int64_t>(t.ne)));
    order.push_back(d.name);
    m.weights.emplace(d.name, std::move(t));
  }
  RF_RETURN_IF_ERROR(wr.begin_memory());
  for (const std::string& n : order) {
    const std::vector<float>& data = m.weights.at(n).data;
    RF_RETURN_IF_ERROR(
        wr.write_tensor(n, {reinterpret_cast<const uint8_t*>(data.data()), data.size() * sizeof(float)}));
  }
  RF_RETURN_IF_ERROR(wr.finish());
  m.bytes = wr.take_memory();
  auto f = gguf::File::parse(m.bytes, "tiny-qwen2moe");
  if (!f) return f.status();
  m.file = *f;
  return m;
}

std::vector<std::vector<double>> reference_logits(const TinyQwen2MoeSpec& s, const TinyWeights& w,
                                                  const std::vector<int32_t>& tokens, ReferenceVariant v) {
  const int hd = s.n_embd / s.n_head, group = s.n_head / s.n_head_kv;
  const auto e = static_cast<size_t>(s.n_embd);
  // Per layer, the rotated keys and the values of every position so far.
  std::vector<std::vector<Vec>> keys(static_cast<size_t>(s.n_layer)), values(static_cast<size_t>(s.n_layer));
  std::vector<std::vector<double>> out;
  const TinyTensor& embd = get(w, "token_embd.weight");
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    Vec x(embd.data.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(tokens[pos]) * e),
          embd.data.begin() + static_cast<std::ptrdiff_t>((static_cast<size_t>(tokens[pos]) + 1) * e));
    for (int il = 0; il < s.n_layer; ++il) {
      const auto l = static_cast<size_t>(il);
      const Vec h = rms_norm(x, get(w, blk(il, "attn_norm.weight")), s.rms_eps);
      Vec q = matvec(get(w, blk(il, "attn_q.weight")), h), k = matvec(get(w, blk(il, "attn_k.weight")), h),
          val = matvec(get(w, blk(il, "attn_v.weight")), h);
      add_to(q, Vec(get(w, blk(il, "attn_q.bias")).data.begin(), get(w, blk(il, "attn_q.bias")).data.end()));
      add_to(k, Vec(get(w, blk(il, "attn_k.bias")).data.begin(), get(w, blk(il, "attn_k.bias")).data.end()));
      add_to(val, Vec(get(w, blk(il, "attn_v.bias")).data.begin(), get(w, blk(il, "attn_v.bias")).data.end()));
      rope_neox(q, s.n_head, hd, static_cast<int>(pos), s.rope_base);
      rope_neox(k, s.n_head_kv, hd, static_cast<int>(pos), s.rope_base);
      keys[l].push_back(k);
      values[l].push_back(val);

      Vec att(static_cast<size_t>(s.n_head * hd), 0.0);
      for (int hh = 0; hh < s.n_head; ++hh) {
        const size_t qo = static_cast<size_t>(hh * hd), ko = static_cast<size_t>((hh / group) * hd);
        Vec score(pos + 1);
        for (size_t j = 0; j <= pos; ++j) {
          double dot = 0.0;
          for (int i = 0; i < hd; ++i) dot += q[qo + static_cast<size_t>(i)] * keys[l][j][ko + static_cast<size_t>(i)];
          score[j] = dot / std::sqrt(static_cast<double>(hd));
        }
        const double mx = *std::max_element(score.begin(), score.end());
        double sum = 0.0;
        for (double& sc : score) sum += (sc = std::exp(sc - mx));
        for (size_t j = 0; j <= pos; ++j) {
          for (int i = 0; i < hd; ++i) {
            att[qo + static_cast<size_t>(i)] += score[j] / sum * values[l][j][ko + static_cast<size_t>(i)];
          }
        }
      }
      add_to(x, matvec(get(w, blk(il, "attn_output.weight")), att));
      const Vec hf = rms_norm(x, get(w, blk(il, "ffn_norm.weight")), s.rms_eps);
      add_to(x, moe_ffn(s, w, il, hf, v));
    }
    out.push_back(matvec(get(w, "output.weight"), rms_norm(x, get(w, "output_norm.weight"), s.rms_eps)));
  }
  return out;
}

}  // namespace rf::test
