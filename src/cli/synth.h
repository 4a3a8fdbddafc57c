// `rocmforge synth`: random-weight GGUF models of any llama-family shape, in any quantizable type. They are the
// input of every speed benchmark. Written tensor by tensor, in chunks of rows, on all cores, so a file larger than
// RAM can be produced.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "quant/types.h"

namespace rf::cli {

struct SynthOptions {
  // llama | qwen2 | qwen3 (llama with n_expert > 0 is Mixtral-style MoE) | qwen2moe (n_expert > 0 routed experts
  // n_ff wide, plus a sigmoid-gated shared expert n_ff_shexp wide)
  std::string arch = "llama";
  int64_t n_embd = 256;
  int64_t n_ff = 512;
  int64_t n_layer = 2;
  int64_t n_head = 8;
  int64_t n_head_kv = 0;  // 0: same as n_head
  int64_t head_dim = 0;   // 0: n_embd / n_head
  int64_t n_vocab = 512;
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_shexp = 0;  // qwen2moe: the shared expert's FFN width (0: n_ff)
  int64_t n_ctx = 4096;
  float rope_base = 10000.0f;
  bool tied_embeddings = false;  // no output.weight
  std::string type = "Q4_K_M";   // a preset (Q4_K_M, Q5_K_S, ...) or any quantizable tensor type name
  uint64_t seed = 42;
  int threads = 0;  // 0: all cores
  std::string output;
};

struct SynthTensor {
  std::string name;
  std::vector<int64_t> shape;  // ne order: shape[0] is the row length
  quant::Type type;
  enum class Init { kWeight, kNorm, kBias } init;
  int64_t fan_in;
};

// The tensors the model will hold, with the type each one gets under the preset. Error for a bad shape/preset.
Expected<std::vector<SynthTensor>> plan_synth_tensors(const SynthOptions& opts);

// Writes the model to opts.output.
Status write_synth_model(const SynthOptions& opts);

}  // namespace rf::cli
