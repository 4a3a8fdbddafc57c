// A tiny random qwen2moe model written as an in-memory GGUF with F32 weights, and an independent float64 forward
// pass over the same weights (written straight from the architecture's definition, sharing no code with
// src/model or src/backend), for the qwen2moe tests.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"

namespace rf::test {

struct TinyQwen2MoeSpec {
  int n_layer = 2;
  int n_embd = 64;
  int n_head = 4;
  int n_head_kv = 2;
  int n_vocab = 48;
  int n_expert = 6;
  int n_expert_used = 2;
  int n_ff = 96;        // <arch>.feed_forward_length
  int n_ff_exp = 32;    // written as expert_feed_forward_length unless write_exp_key is false
  int n_ff_shexp = 64;  // written as expert_shared_feed_forward_length unless write_shexp_key is false
  bool write_exp_key = true;
  bool write_shexp_key = true;
  float rms_eps = 1e-6f;
  float rope_base = 10000.0f;
  uint32_t seed = 7;
  std::set<std::string> omit;                           // tensors left out of the file
  std::map<std::string, std::vector<int64_t>> reshape;  // tensors written with other dims (random data)
  std::map<std::string, uint32_t> override_keys;        // "qwen2moe.<key>" -> value (replaces or adds)
};

// The weights by tensor name: dims in GGUF order (ne0 first) and row-major F32 data.
struct TinyTensor {
  std::vector<int64_t> ne;
  std::vector<float> data;
};
using TinyWeights = std::map<std::string, TinyTensor>;

struct TinyModel {
  TinyWeights weights;
  std::vector<uint8_t> bytes;  // the GGUF file (keeps `file`'s tensor data alive)
  std::shared_ptr<gguf::File> file;
};

Expected<TinyModel> make_tiny_qwen2moe(const TinyQwen2MoeSpec& spec);

// The reference forward: logits [n_tokens][n_vocab] of every token of `tokens` (positions 0..n-1, one sequence,
// causal). The variant flags exist to show the test tells the real graph from plausible wrong ones.
struct ReferenceVariant {
  bool renormalize_experts = false;  // qwen2moe does not renormalise the top-k probabilities
  bool shared_expert = true;
  bool shared_gate = true;  // false: the shared expert's output unscaled
};
std::vector<std::vector<double>> reference_logits(const TinyQwen2MoeSpec& spec, const TinyWeights& w,
                                                  const std::vector<int32_t>& tokens, ReferenceVariant v = {});

}  // namespace rf::test
