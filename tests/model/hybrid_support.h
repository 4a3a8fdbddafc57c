// Helpers for the hybrid-execution and forward-error tests: a fixed token script run through a model on a fresh
// cache, and a shared model rewritten with tied embeddings and rope frequency factors (tensors no shared model has).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace rf::test {

// One forward pass of the script: the tokens of each sequence (positions continue where it stopped).
struct ScriptStep {
  std::vector<std::vector<int32_t>> seq_tokens;  // [sequence][token]; an empty list skips that sequence
  bool all_outputs = false;                      // logits of every token, else of each sequence's last token
};

// A prompt prefill of sequence 0 (every row's logits), decode steps of sequence 0, then one mixed batch: a decode
// step of sequence 0 with the prefill of sequence 1.
std::vector<ScriptStep> default_script(int32_t n_vocab);

// A 128-slot cache in blocks of 16 for the model (KvCache::create with its kv_shape: each layer on its backend).
std::unique_ptr<kv::KvCache> make_cache(model::Model& m);

// Runs the script with new sequences of `cache` and returns the logits of each step; stops at the first failed
// forward and returns its error (the script's sequences are released either way).
Expected<std::vector<std::vector<float>>> run_script(model::Model& m, kv::KvCache& cache,
                                                     const std::vector<ScriptStep>& script);

// The model at `path` without output.weight (tied to token_embd) and with a rope_freqs.weight of n_rot / 2
// divisors in [1, 4], in memory (`bytes` keeps the data alive).
Expected<std::shared_ptr<gguf::File>> tied_with_rope_freqs(const std::string& path, std::vector<uint8_t>* bytes);

}  // namespace rf::test
