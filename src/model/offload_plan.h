// How many layers of a model go on the GPU (--n-gpu-layers, hybrid execution). The first N layers run on the GPU
// and the rest on the CPU; the token embeddings go where layer 0 runs, the output layer goes on the GPU only when
// every layer does. plan_offload() is pure arithmetic over byte counts, so it is tested with made-up figures;
// offload_budget() measures the counts of a GGUF file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "quant/types.h"

namespace rf::model {

// Bytes on the GPU for each part of the model (weights rounded as the GPU arena stores them).
struct OffloadBudget {
  size_t free_bytes = 0;                   // GPU memory free before loading
  size_t reserve_bytes = 0;                // kept free: runtime, decode graphs, arena slack
  std::vector<size_t> layer_weight_bytes;  // [n_layer]
  size_t input_bytes = 0;                  // token embeddings and rope factors: on the GPU with any layer
  size_t output_bytes = 0;                 // output norm and matrix: on the GPU only with all layers
  size_t kv_bytes_per_layer = 0;           // K + V of one layer over the whole cache
  size_t layer_workspace_bytes = 0;        // activations of one batch: on the GPU with any layer
  size_t output_workspace_bytes = 0;       // output rows and logits of one batch: with the output layer
};

struct OffloadPlan {
  int n_gpu_layers = 0;
  size_t gpu_bytes = 0;  // what the plan puts on the GPU
  std::string reason;    // one line for the log, e.g. "20 of 32 layers fit in 10.1 GiB free (...)"
};

// GPU bytes of the first n layers (0 <= n <= n_layer) with what comes with them.
size_t offload_bytes(const OffloadBudget& b, int n);

// The most layers whose offload_bytes fit in free_bytes - reserve_bytes (all of them, output included, when
// that fits; none when not even one layer does).
OffloadPlan plan_offload(const OffloadBudget& b);

struct OffloadRequest {
  int64_t kv_tokens = 0;                   // token slots of the caller's KV cache (0: the model's context length)
  quant::Type kv_type = quant::Type::F16;  // its element type
  int64_t batch_tokens = 512;              // largest batch of one forward pass
  int64_t output_rows = 512;               // largest number of logits rows of one pass
};

// The weight, KV and workspace byte counts of a model file (free_bytes and reserve_bytes left 0). Tensors named
// blk.<i>.* count for layer i.
Expected<OffloadBudget> offload_budget(const gguf::File& file, const OffloadRequest& request);

// "1.5 GiB" / "340.0 MiB"
std::string format_bytes(size_t bytes);

}  // namespace rf::model
