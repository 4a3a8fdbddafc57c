#include "model/hparams.h"

#include <cstdint>

namespace rf::model {
namespace {

Status positive(const std::string& key, int64_t v) {
  if (v <= 0) return Status::error("model: key '" + key + "' must be positive, got " + std::to_string(v));
  return ok_status();
}

}  // namespace

Expected<HParams> read_hparams(const gguf::File& f, const std::string& arch) {
  HParams hp;
  hp.arch = arch;
  const std::string p = arch + ".";
  auto req_int = [&](const std::string& key, int* out) -> Status {
    auto v = f.get<uint32_t>(p + key);
    if (!v) return Status::error("model: " + v.error_message());
    RF_RETURN_IF_ERROR(positive(p + key, *v));
    *out = static_cast<int>(*v);
    return ok_status();
  };
  auto opt_int = [&](const std::string& key, int fallback, int* out) -> Status {
    auto v = f.get_or<uint32_t>(p + key, static_cast<uint32_t>(fallback));
    if (!v) return Status::error("model: " + v.error_message());
    *out = static_cast<int>(*v);
    return ok_status();
  };
  auto opt_float = [&](const std::string& key, float fallback, float* out) -> Status {
    auto v = f.get_or<float>(p + key, fallback);
    if (!v) return Status::error("model: " + v.error_message());
    *out = *v;
    return ok_status();
  };
  RF_RETURN_IF_ERROR(req_int("block_count", &hp.n_layer));
  RF_RETURN_IF_ERROR(req_int("embedding_length", &hp.n_embd));
  RF_RETURN_IF_ERROR(req_int("attention.head_count", &hp.n_head));
  RF_RETURN_IF_ERROR(opt_int("feed_forward_length", 0, &hp.n_ff));
  RF_RETURN_IF_ERROR(opt_int("attention.head_count_kv", hp.n_head, &hp.n_head_kv));
  RF_RETURN_IF_ERROR(opt_int("attention.key_length", hp.n_embd / hp.n_head, &hp.head_dim_k));
  RF_RETURN_IF_ERROR(opt_int("attention.value_length", hp.head_dim_k, &hp.head_dim_v));
  RF_RETURN_IF_ERROR(opt_int("rope.dimension_count", hp.head_dim_k, &hp.n_rot));
  RF_RETURN_IF_ERROR(opt_int("context_length", 2048, &hp.n_ctx_train));
  RF_RETURN_IF_ERROR(opt_int("expert_count", 0, &hp.n_expert));
  RF_RETURN_IF_ERROR(opt_int("expert_used_count", 0, &hp.n_expert_used));
  RF_RETURN_IF_ERROR(opt_float("attention.layer_norm_rms_epsilon", 1e-5f, &hp.rms_eps));
  RF_RETURN_IF_ERROR(opt_float("rope.freq_base", 10000.0f, &hp.rope_freq_base));

  if (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0) {
    return Status::error("model: " + p + "attention.head_count " + std::to_string(hp.n_head) +
                         " is not a multiple of head_count_kv " + std::to_string(hp.n_head_kv));
  }
  if (hp.head_dim_k <= 0 || hp.head_dim_v <= 0 || hp.n_rot <= 0 || hp.n_rot > hp.head_dim_k || hp.n_rot % 2 != 0) {
    return Status::error("model: bad head sizes: key_length " + std::to_string(hp.head_dim_k) + ", value_length " +
                         std::to_string(hp.head_dim_v) + ", rope.dimension_count " + std::to_string(hp.n_rot));
  }
  if (hp.n_expert > 0 && (hp.n_expert_used <= 0 || hp.n_expert_used > hp.n_expert)) {
    return Status::error("model: " + p + "expert_used_count " + std::to_string(hp.n_expert_used) +
                         " must be in [1, expert_count " + std::to_string(hp.n_expert) + "]");
  }

  // Rope scaling: linear (freq_scale = 1 / factor); llama3-style per-frequency factors come as the
  // rope_freqs.weight tensor (loaded with the weights). Other schemes are refused rather than run wrongly.
  auto type = f.get_or<std::string>(p + "rope.scaling.type", "none");
  if (!type) return Status::error("model: " + type.error_message());
  float factor = 0.0f;
  RF_RETURN_IF_ERROR(opt_float("rope.scaling.factor", 0.0f, &factor));
  if (factor == 0.0f) RF_RETURN_IF_ERROR(opt_float("rope.scale_linear", 0.0f, &factor));
  if (*type == "linear" || (*type == "none" && factor > 0.0f && f.has(p + "rope.scale_linear"))) {
    if (factor <= 0.0f) return Status::error("model: linear rope scaling needs a positive " + p + "rope.scaling.factor");
    hp.rope_freq_scale = 1.0f / factor;
  } else if (*type != "none" && *type != "") {
    return Status::error("model: " + p + "rope.scaling.type '" + *type +
                         "' is not supported (supported: none, linear, llama3 rope_freqs)");
  }
  return hp;
}

}  // namespace rf::model
