// llama family: LLaMA 1/2/3, Mistral, Yi and Mixtral (MoE when <arch>.expert_count > 0). Normal (pairwise) rope;
// q/k/v biases are optional.
#include "model/arch.h"

namespace rf::model {

Status load_layer_llama(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw) {
  RF_RETURN_IF_ERROR(load_attention(l, hp, il, lw, /*bias_required=*/false));
  return load_ffn(l, hp, il, lw);
}

}  // namespace rf::model
