// The architecture registry and the layer pieces the families share.
#include <array>

#include "model/arch.h"

namespace rf::model {
namespace {

// general.architecture -> family. Add a family by writing arch_<name>.cpp and one line here.
const std::array<ArchFamily, 5> kFamilies = {{
    {"llama", backend::RopeMode::kNormal, true, nullptr, load_layer_llama},  // LLaMA 1/2/3, Mistral, Yi, Mixtral
    {"mistral", backend::RopeMode::kNormal, true, nullptr, load_layer_llama},
    {"qwen2", backend::RopeMode::kNeox, true, nullptr, load_layer_qwen2},  // q/k/v bias
    {"qwen3", backend::RopeMode::kNeox, true, nullptr, load_layer_qwen3},  // q/k RMS norm
    // qwen2 attention, routed experts (weights not renormalised) plus a sigmoid-gated shared expert
    {"qwen2moe", backend::RopeMode::kNeox, false, read_hparams_qwen2moe, load_layer_qwen2moe},
}};

std::string dims_str(std::span<const int64_t> d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

}  // namespace

std::span<const ArchFamily> arch_families() { return kFamilies; }

const ArchFamily* find_arch(std::string_view name) {
  for (const auto& f : kFamilies) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string TensorLoader::layer_name(int layer, std::string_view suffix) {
  return "blk." + std::to_string(layer) + "." + std::string(suffix);
}

Status TensorLoader::optional(const std::string& name, std::initializer_list<int64_t> dims, Tensor* out) {
  const gguf::TensorInfo* info = file_.find_tensor(name);
  if (info == nullptr) return ok_status();
  std::array<int64_t, gguf::kMaxDims> want = {1, 1, 1, 1};
  size_t i = 0;
  for (int64_t d : dims) want[i++] = d;
  if (info->ne != want) {
    return Status::error("model: tensor '" + name + "' has shape " + dims_str(info->ne) + ", expected " +
                         dims_str(want));
  }
  auto t = be_.load_weight(*info);
  if (!t) return t.status();
  *out = *t;
  return ok_status();
}

Status TensorLoader::require(const std::string& name, std::initializer_list<int64_t> dims, Tensor* out) {
  if (file_.find_tensor(name) == nullptr) {
    return Status::error("model: tensor '" + name + "' is missing from " + file_.name());
  }
  return optional(name, dims, out);
}

Status load_attention(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw, bool bias_required) {
  const int64_t e = hp.n_embd, q = int64_t{hp.n_head} * hp.head_dim_k, k = int64_t{hp.n_head_kv} * hp.head_dim_k,
                v = int64_t{hp.n_head_kv} * hp.head_dim_v, o = int64_t{hp.n_head} * hp.head_dim_v;
  auto n = [&](std::string_view s) { return TensorLoader::layer_name(il, s); };
  RF_RETURN_IF_ERROR(l.require(n("attn_norm.weight"), {e}, &lw.attn_norm));
  RF_RETURN_IF_ERROR(l.require(n("attn_q.weight"), {e, q}, &lw.wq));
  RF_RETURN_IF_ERROR(l.require(n("attn_k.weight"), {e, k}, &lw.wk));
  RF_RETURN_IF_ERROR(l.require(n("attn_v.weight"), {e, v}, &lw.wv));
  RF_RETURN_IF_ERROR(l.require(n("attn_output.weight"), {o, e}, &lw.wo));
  auto bias = bias_required ? &TensorLoader::require : &TensorLoader::optional;
  RF_RETURN_IF_ERROR((l.*bias)(n("attn_q.bias"), {q}, &lw.bq));
  RF_RETURN_IF_ERROR((l.*bias)(n("attn_k.bias"), {k}, &lw.bk));
  RF_RETURN_IF_ERROR((l.*bias)(n("attn_v.bias"), {v}, &lw.bv));
  return ok_status();
}

Status load_ffn(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw) {
  const int64_t e = hp.n_embd, f = hp.n_ff;
  auto n = [&](std::string_view s) { return TensorLoader::layer_name(il, s); };
  RF_RETURN_IF_ERROR(l.require(n("ffn_norm.weight"), {e}, &lw.ffn_norm));
  if (hp.n_expert == 0) {
    RF_RETURN_IF_ERROR(l.require(n("ffn_gate.weight"), {e, f}, &lw.ffn_gate));
    RF_RETURN_IF_ERROR(l.require(n("ffn_up.weight"), {e, f}, &lw.ffn_up));
    RF_RETURN_IF_ERROR(l.require(n("ffn_down.weight"), {f, e}, &lw.ffn_down));
    return ok_status();
  }
  const int64_t x = hp.n_expert, fx = hp.n_ff_exp;
  RF_RETURN_IF_ERROR(l.require(n("ffn_gate_inp.weight"), {e, x}, &lw.ffn_gate_inp));
  RF_RETURN_IF_ERROR(l.require(n("ffn_gate_exps.weight"), {e, fx, x}, &lw.ffn_gate_exps));
  RF_RETURN_IF_ERROR(l.require(n("ffn_up_exps.weight"), {e, fx, x}, &lw.ffn_up_exps));
  RF_RETURN_IF_ERROR(l.require(n("ffn_down_exps.weight"), {fx, e, x}, &lw.ffn_down_exps));
  return ok_status();
}

}  // namespace rf::model
