// Architecture families. Each family (arch_<name>.cpp) says how its layer tensors are named and shaped and how it
// ropes; the registry maps general.architecture to the family. The forward pass itself is shared (forward.cpp).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "core/status.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace rf::model {

// Loads named tensors from the file through the backend, checking shapes. Errors name the tensor.
class TensorLoader {
 public:
  TensorLoader(const gguf::File& file, backend::Backend& be) : file_(file), be_(be) {}
  // "blk.<layer>.<suffix>"
  static std::string layer_name(int layer, std::string_view suffix);
  // A tensor that must exist with exactly these dims (trailing 1s may be omitted).
  Status require(const std::string& name, std::initializer_list<int64_t> dims, Tensor* out);
  // A tensor that may be absent (out stays empty); if present it must have these dims.
  Status optional(const std::string& name, std::initializer_list<int64_t> dims, Tensor* out);
  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

 private:
  const gguf::File& file_;
  backend::Backend& be_;
};

struct ArchFamily {
  std::string_view name;  // general.architecture value
  backend::RopeMode rope_mode;
  bool expert_weights_norm;  // MoE: the routed experts' top-k probabilities renormalised to sum 1
  // Reads the family's own keys into hp after the shared ones (nullptr: none). Errors name the key.
  Status (*read_hparams)(const gguf::File& file, HParams& hp);
  // Loads layer `il` of the family into `lw` (hp is complete, including n_vocab).
  Status (*load_layer)(TensorLoader& loader, const HParams& hp, int il, LayerWeights& lw);
};

// Known families, and lookup by general.architecture (nullptr when unknown).
std::span<const ArchFamily> arch_families();
const ArchFamily* find_arch(std::string_view name);

// Shared pieces the families compose.
Status load_attention(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw, bool bias_required);
Status load_ffn(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw);  // dense or MoE by n_expert

// Family entry points (one file each).
Status load_layer_llama(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw);
Status load_layer_qwen2(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw);
Status load_layer_qwen3(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw);
Status read_hparams_qwen2moe(const gguf::File& file, HParams& hp);
Status load_layer_qwen2moe(TensorLoader& l, const HParams& hp, int il, LayerWeights& lw);

}  // namespace rf::model
