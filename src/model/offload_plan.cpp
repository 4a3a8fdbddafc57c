#include "model/offload_plan.h"

#include <algorithm>
#include <cstdio>

#include "model/arch.h"
#include "model/hparams.h"

namespace rf::model {
namespace {

constexpr size_t kArenaAlign = 256;  // the GPU backend's weight arena aligns every tensor to this

size_t tensor_bytes(const gguf::TensorInfo& t) { return (t.n_bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign; }

// Layer index of "blk.<i>.<suffix>", or -1.
int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  size_t i = 4;
  int v = 0;
  bool digits = false;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    v = v * 10 + (name[i] - '0');
    ++i;
    digits = true;
  }
  return digits && i < name.size() && name[i] == '.' ? v : -1;
}

}  // namespace

std::string format_bytes(size_t bytes) {
  char buf[64];
  const double b = static_cast<double>(bytes);
  if (bytes >= (size_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", b / (1024.0 * 1024.0 * 1024.0));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", b / (1024.0 * 1024.0));
  }
  return buf;
}

size_t offload_bytes(const OffloadBudget& b, int n) {
  const int n_layer = static_cast<int>(b.layer_weight_bytes.size());
  n = std::clamp(n, 0, n_layer);
  if (n == 0) return 0;
  size_t total = b.input_bytes + b.layer_workspace_bytes;
  for (int il = 0; il < n; ++il) total += b.layer_weight_bytes[static_cast<size_t>(il)] + b.kv_bytes_per_layer;
  if (n == n_layer) total += b.output_bytes + b.output_workspace_bytes;
  return total;
}

OffloadPlan plan_offload(const OffloadBudget& b) {
  const int n_layer = static_cast<int>(b.layer_weight_bytes.size());
  const size_t budget = b.free_bytes > b.reserve_bytes ? b.free_bytes - b.reserve_bytes : 0;
  OffloadPlan p;
  // offload_bytes grows with n, so the answer is the last n that fits.
  while (p.n_gpu_layers < n_layer && offload_bytes(b, p.n_gpu_layers + 1) <= budget) ++p.n_gpu_layers;
  p.gpu_bytes = offload_bytes(b, p.n_gpu_layers);
  const std::string avail = format_bytes(b.free_bytes) + " free, " + format_bytes(b.reserve_bytes) + " kept in reserve";
  const std::string all = format_bytes(offload_bytes(b, n_layer));
  if (p.n_gpu_layers == n_layer) {
    p.reason = "all " + std::to_string(n_layer) + " layers and the output fit (" + all + " of " + avail + ")";
  } else if (p.n_gpu_layers == 0) {
    p.reason = "not one layer fits (the first needs " + format_bytes(offload_bytes(b, std::min(1, n_layer))) +
               " with embeddings, KV cache and workspace; " + avail + "; the whole model needs " + all + ")";
  } else {
    p.reason = std::to_string(p.n_gpu_layers) + " of " + std::to_string(n_layer) + " layers fit (" +
               format_bytes(p.gpu_bytes) + " of " + avail + "; all layers and the output need " + all + ")";
  }
  return p;
}

Expected<OffloadBudget> offload_budget(const gguf::File& file, const OffloadRequest& r) {
  auto arch = file.get<std::string>("general.architecture");
  if (!arch) return Status::error("offload: " + file.name() + ": " + arch.error_message());
  auto hp = read_hparams(file, *arch);
  if (!hp) return Status::error("offload: " + hp.error_message() + " in " + file.name());
  if (const ArchFamily* family = find_arch(*arch); family != nullptr && family->read_hparams != nullptr) {
    if (Status st = family->read_hparams(file, *hp); !st.ok()) {
      return Status::error("offload: " + st.message() + " in " + file.name());
    }
  }
  const gguf::TensorInfo* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr) return Status::error("offload: tensor 'token_embd.weight' is missing from " + file.name());
  const HParams& h = *hp;
  const auto n_vocab = static_cast<size_t>(embd->ne[1]);

  OffloadBudget b;
  b.layer_weight_bytes.assign(static_cast<size_t>(h.n_layer), 0);
  for (const gguf::TensorInfo& t : file.tensors()) {
    const int il = layer_of(t.name);
    const size_t bytes = tensor_bytes(t);
    if (il >= 0 && il < h.n_layer) {
      b.layer_weight_bytes[static_cast<size_t>(il)] += bytes;
    } else if (t.name == "token_embd.weight" || t.name == "rope_freqs.weight") {
      b.input_bytes += bytes;
    } else if (t.name == "output_norm.weight" || t.name == "output.weight") {
      b.output_bytes += bytes;  // a tied output reads token_embd, already on the GPU when the output is
    }
  }

  const size_t elem = r.kv_type == quant::Type::F32 ? 4 : 2;
  const auto k_row = static_cast<size_t>(h.n_head_kv) * static_cast<size_t>(h.head_dim_k);
  const auto v_row = static_cast<size_t>(h.n_head_kv) * static_cast<size_t>(h.head_dim_v);
  const int64_t kv_tokens = r.kv_tokens > 0 ? r.kv_tokens : std::max(h.n_ctx_train, 1);
  b.kv_bytes_per_layer = (k_row + v_row) * elem * static_cast<size_t>(kv_tokens);

  const auto n_embd = static_cast<size_t>(h.n_embd);
  const auto n_ff = static_cast<size_t>(h.n_expert == 0 ? h.n_ff : h.n_ff_exp);
  const auto n_ff_shexp = static_cast<size_t>(h.n_ff_shexp);
  const auto q_row = static_cast<size_t>(h.n_head) * static_cast<size_t>(h.head_dim_k);
  const auto att_row = static_cast<size_t>(h.n_head) * static_cast<size_t>(h.head_dim_v);
  size_t per_token = 2 * n_embd + q_row + k_row + v_row + att_row;  // x, xb, q, k, v, att
  size_t widest_input = std::max({n_embd, att_row, n_ff});          // the GPU's rounded-activation scratch
  if (h.n_expert == 0) {
    per_token += 2 * n_ff;
  } else {
    const auto used = static_cast<size_t>(h.n_expert_used);
    per_token += static_cast<size_t>(h.n_expert) + 2 * used + (2 * n_ff + n_embd) * used;
    per_token += n_ff_shexp > 0 ? 2 * n_ff_shexp + 1 : 0;  // shared expert gate, up and sigmoid gate
    widest_input = std::max(widest_input * used, n_ff_shexp);
  }
  per_token += widest_input;
  const auto batch = static_cast<size_t>(std::max<int64_t>(r.batch_tokens, 1));
  b.layer_workspace_bytes = per_token * sizeof(float) * batch;
  b.output_workspace_bytes =
      (n_embd + n_vocab) * sizeof(float) * static_cast<size_t>(std::max<int64_t>(r.output_rows, 1));
  return b;
}

}  // namespace rf::model
