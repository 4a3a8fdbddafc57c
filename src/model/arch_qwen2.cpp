// qwen2 family: llama layout with required q/k/v biases and NEOX (half-split) rope.
#include "model/arch.h"

namespace rf::model {

Status load_layer_qwen2(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw) {
  RF_RETURN_IF_ERROR(load_attention(l, hp, il, lw, /*bias_required=*/true));
  return load_ffn(l, hp, il, lw);
}

}  // namespace rf::model
