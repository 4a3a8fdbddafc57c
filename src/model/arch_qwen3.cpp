// qwen3 family: no q/k/v biases, an RMS norm over each head of q and k before rope, NEOX rope.
#include "model/arch.h"

namespace rf::model {

Status load_layer_qwen3(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw) {
  RF_RETURN_IF_ERROR(load_attention(l, hp, il, lw, /*bias_required=*/false));
  RF_RETURN_IF_ERROR(l.require(TensorLoader::layer_name(il, "attn_q_norm.weight"), {hp.head_dim_k}, &lw.q_norm));
  RF_RETURN_IF_ERROR(l.require(TensorLoader::layer_name(il, "attn_k_norm.weight"), {hp.head_dim_k}, &lw.k_norm));
  return load_ffn(l, hp, il, lw);
}

}  // namespace rf::model
