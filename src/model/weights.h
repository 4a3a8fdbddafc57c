// The weights table: every tensor the forward pass uses, as backend tensors, with shapes in GGUF order
// [ne0 (row length), ne1 (rows), ne2]. Optional tensors are empty().
#pragma once

#include <vector>

#include "backend/backend.h"

namespace rf::model {

using backend::Tensor;

struct LayerWeights {
  Tensor attn_norm;  // [n_embd]
  Tensor wq;         // [n_embd, n_head * head_dim_k]
  Tensor wk;         // [n_embd, n_head_kv * head_dim_k]
  Tensor wv;         // [n_embd, n_head_kv * head_dim_v]
  Tensor wo;         // [n_head * head_dim_v, n_embd]
  Tensor bq;         // optional [n_head * head_dim_k]
  Tensor bk;         // optional [n_head_kv * head_dim_k]
  Tensor bv;         // optional [n_head_kv * head_dim_v]
  Tensor q_norm;     // optional [head_dim_k] (qwen3)
  Tensor k_norm;     // optional [head_dim_k] (qwen3)
  Tensor ffn_norm;   // [n_embd]
  // Dense FFN (n_expert == 0)
  Tensor ffn_gate;  // [n_embd, n_ff]
  Tensor ffn_up;    // [n_embd, n_ff]
  Tensor ffn_down;  // [n_ff, n_embd]
  // Mixture of experts (n_expert > 0)
  Tensor ffn_gate_inp;   // [n_embd, n_expert] router
  Tensor ffn_gate_exps;  // [n_embd, n_ff_exp, n_expert]
  Tensor ffn_up_exps;    // [n_embd, n_ff_exp, n_expert]
  Tensor ffn_down_exps;  // [n_ff_exp, n_embd, n_expert]
  // Shared expert (n_ff_shexp > 0): a SwiGLU FFN every token runs, its output scaled by sigmoid(gate_inp_shexp . x)
  Tensor ffn_gate_inp_shexp;  // [n_embd] (one output row)
  Tensor ffn_gate_shexp;      // [n_embd, n_ff_shexp]
  Tensor ffn_up_shexp;        // [n_embd, n_ff_shexp]
  Tensor ffn_down_shexp;      // [n_ff_shexp, n_embd]
  Tensor rope_freqs;     // optional [n_rot / 2]: the model's rope_freqs.weight on this layer's backend
};

// A split model (Placement) holds each tensor on the backend that uses it: token_embd on layer 0's, output_norm
// and output on the output's (a tied output is token_embd loaded there too), rope_freqs once per backend.
struct Weights {
  Tensor token_embd;   // [n_embd, n_vocab]
  Tensor output_norm;  // [n_embd]
  Tensor output;       // [n_embd, n_vocab] (token_embd when the model ties embeddings)
  std::vector<LayerWeights> layers;
};

}  // namespace rf::model
