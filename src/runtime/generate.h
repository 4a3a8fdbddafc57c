// Text generation as a library call: load a model, prefill the prompt in one batch, then sample token by token
// through the paged KV cache, streaming text through a callback.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "sampling/sampler.h"

namespace rf::runtime {

struct GenerateOptions {
  std::string model_path;
  std::string prompt;                 // used when prompt_tokens is empty
  std::vector<int32_t> prompt_tokens;  // --tokens
  int n_predict = 128;
  int ctx_size = 0;  // 0: the model's context_length
  int threads = 0;   // 0: physical cores
  backend::DeviceKind device = backend::DeviceKind::kAuto;
  int n_gpu_layers = -1;  // layers on the GPU (the rest on the CPU); -1: as many as fit
  bool ignore_eos = false;
  std::string dump_logits_path;  // writes {"tokens": [...], "logits": [[...] per prompt position]}
  sampling::SamplerParams sampling;
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> tokens;  // generated
  std::string text;             // generated text
  double load_seconds = 0.0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  std::string backend_name;
};

Expected<GenerateResult> generate(const GenerateOptions& options,
                                  const std::function<void(std::string_view)>& on_text = nullptr);

}  // namespace rf::runtime
