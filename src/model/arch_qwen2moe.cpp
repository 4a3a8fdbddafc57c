// qwen2moe family (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): qwen2 attention (required q/k/v biases, NEOX rope) and an
// FFN of two parts added together:
//   routed: softmax over the router logits, the top expert_used_count experts' SwiGLU outputs weighted by their
//           probabilities as they are (not renormalised to sum 1);
//   shared: one SwiGLU FFN every token runs (ffn_{gate,up,down}_shexp), scaled per token by
//           sigmoid(ffn_gate_inp_shexp . x), x the normed FFN input.
#include <cstdint>

#include "model/arch.h"

namespace rf::model {
namespace {

// An optional positive width key; 0 when absent.
Status read_width(const gguf::File& f, const std::string& key, int* out) {
  auto v = f.get_or<uint32_t>(key, 0);
  if (!v) return Status::error("model: " + v.error_message());
  if (*v > static_cast<uint32_t>(INT32_MAX)) {
    return Status::error("model: key '" + key + "' is too large: " + std::to_string(*v));
  }
  *out = static_cast<int>(*v);
  return ok_status();
}

}  // namespace

Status read_hparams_qwen2moe(const gguf::File& f, HParams& hp) {
  const std::string p = hp.arch + ".";
  if (hp.n_expert == 0) {
    return Status::error("model: " + p + "expert_count must be positive for a qwen2moe model, got 0");
  }
  // Routed expert width: <arch>.expert_feed_forward_length, else feed_forward_length / expert_used_count.
  int exp = 0;
  RF_RETURN_IF_ERROR(read_width(f, p + "expert_feed_forward_length", &exp));
  hp.n_ff_exp = exp > 0 ? exp : hp.n_ff / hp.n_expert_used;
  if (hp.n_ff_exp <= 0) {
    return Status::error("model: " + p + "expert_feed_forward_length is missing and " + p + "feed_forward_length (" +
                         std::to_string(hp.n_ff) + ") gives no expert width");
  }
  // Shared expert width: <arch>.expert_shared_feed_forward_length, else feed_forward_length.
  int shexp = 0;
  RF_RETURN_IF_ERROR(read_width(f, p + "expert_shared_feed_forward_length", &shexp));
  hp.n_ff_shexp = shexp > 0 ? shexp : hp.n_ff;
  if (hp.n_ff_shexp <= 0) {
    return Status::error("model: " + p + "expert_shared_feed_forward_length and " + p +
                         "feed_forward_length are both missing or zero (the shared expert needs a width)");
  }
  return ok_status();
}

Status load_layer_qwen2moe(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw) {
  RF_RETURN_IF_ERROR(load_attention(l, hp, il, lw, /*bias_required=*/true));
  RF_RETURN_IF_ERROR(load_ffn(l, hp, il, lw));  // norm, router and routed experts (hp.n_expert > 0)
  const int64_t e = hp.n_embd, fs = hp.n_ff_shexp;
  auto n = [&](std::string_view s) { return TensorLoader::layer_name(il, s); };
  RF_RETURN_IF_ERROR(l.require(n("ffn_gate_inp_shexp.weight"), {e}, &lw.ffn_gate_inp_shexp));
  RF_RETURN_IF_ERROR(l.require(n("ffn_gate_shexp.weight"), {e, fs}, &lw.ffn_gate_shexp));
  RF_RETURN_IF_ERROR(l.require(n("ffn_up_shexp.weight"), {e, fs}, &lw.ffn_up_shexp));
  RF_RETURN_IF_ERROR(l.require(n("ffn_down_shexp.weight"), {fs, e}, &lw.ffn_down_shexp));
  return ok_status();
}

}  // namespace rf::model
