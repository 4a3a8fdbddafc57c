// Model hyper-parameters read from the GGUF keys "<arch>.*".
#pragma once

#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "gguf/gguf.h"

namespace rf::model {

struct HParams {
  std::string arch;          // general.architecture
  int n_layer = 0;           // <arch>.block_count
  int n_embd = 0;            // <arch>.embedding_length
  int n_ff = 0;              // <arch>.feed_forward_length (per expert for MoE)
  int n_head = 0;            // <arch>.attention.head_count
  int n_head_kv = 0;         // <arch>.attention.head_count_kv (default n_head)
  int head_dim_k = 0;        // <arch>.attention.key_length (default n_embd / n_head)
  int head_dim_v = 0;        // <arch>.attention.value_length (default head_dim_k)
  int n_rot = 0;             // <arch>.rope.dimension_count (default head_dim_k)
  int n_ctx_train = 0;       // <arch>.context_length
  int n_vocab = 0;           // rows of token_embd
  int n_expert = 0;          // <arch>.expert_count (0 = dense FFN)
  int n_expert_used = 0;     // <arch>.expert_used_count
  int n_ff_exp = 0;          // one routed expert's FFN width (n_ff unless the architecture says otherwise)
  int n_ff_shexp = 0;        // the shared expert's FFN width (0: no shared expert; set by the architecture)
  bool expert_weights_norm = true;  // routed top-k probabilities renormalised to sum 1 (set by the architecture)
  float rms_eps = 1e-5f;     // <arch>.attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;  // <arch>.rope.freq_base
  float rope_freq_scale = 1.0f;     // 1 / <arch>.rope.scaling.factor for linear and yarn scaling
  // Magnitude of rope's cos/sin: <arch>.rope.scaling.attn_factor (default 1), times YaRN's correction
  // g(factor, 1) (divided by g(factor, .rope.scaling.yarn_log_multiplier) when that is set), g(s, k) = 1 + 0.1 k ln s
  // for s > 1, else 1.
  float rope_attn_factor = 1.0f;
  // YaRN ramp weight: 1 for <arch>.rope.scaling.type yarn (or its .rope.scaling.yarn_ext_factor), else 0.
  float rope_ext_factor = 0.0f;
  float rope_yarn_beta_fast = 32.0f;  // <arch>.rope.scaling.yarn_beta_fast (yarn only)
  float rope_yarn_beta_slow = 1.0f;   // <arch>.rope.scaling.yarn_beta_slow (yarn only)
  int rope_n_ctx_orig = 0;            // <arch>.rope.scaling.original_context_length (default context_length)
  backend::RopeMode rope_mode = backend::RopeMode::kNormal;  // set by the architecture
};

// Reads the hyper-parameters (not n_vocab or rope_mode, which the loader fills). Errors name the key.
Expected<HParams> read_hparams(const gguf::File& file, const std::string& arch);

}  // namespace rf::model
