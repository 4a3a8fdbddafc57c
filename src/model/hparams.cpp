#include "model/hparams.h"

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace rf::model {
namespace {

Status positive(const std::string& key, int64_t v) {
  if (v <= 0) return Status::error("model: key '" + key + "' must be positive, got " + std::to_string(v));
  return ok_status();
}

std::string num(float v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(v));
  return buf;
}

Status positive_finite(const std::string& key, float v) {
  if (!(v > 0.0f) || !std::isfinite(v)) {
    return Status::error("model: key '" + key + "' must be a positive finite number, got " + num(v));
  }
  return ok_status();
}

Status read_float(const gguf::File& f, const std::string& key, float fallback, float* out) {
  auto v = f.get_or<float>(key, fallback);
  if (!v) return Status::error("model: " + v.error_message());
  *out = *v;
  return ok_status();
}

// YaRN's magnitude correction for a context extended `scale` times: 1 + 0.1 k ln(scale), 1 when not extended.
float yarn_mscale(float scale, float k) { return scale <= 1.0f ? 1.0f : 1.0f + 0.1f * k * std::log(scale); }

// <arch>.rope.scaling.*: the type (none, linear or yarn; absent means linear, which is no scaling without a factor)
// and its factor (or the older <arch>.rope.scale_linear), the cos/sin magnitude .attn_factor, and for yarn the
// original context and the optional .yarn_* overrides. llama3-style per-frequency factors are not a type here: they
// come as the rope_freqs.weight tensor (loaded with the weights). Other types are refused rather than run wrongly.
Status read_rope_scaling(const gguf::File& f, const std::string& p, HParams* hp) {
  auto type = f.get_or<std::string>(p + "rope.scaling.type", "");
  if (!type) return Status::error("model: " + type.error_message());
  float factor = 0.0f;
  RF_RETURN_IF_ERROR(read_float(f, p + "rope.scaling.factor", 0.0f, &factor));
  std::string factor_key = p + "rope.scaling.factor";
  if (!f.has(factor_key) && f.has(p + "rope.scale_linear")) {
    factor_key = p + "rope.scale_linear";
    RF_RETURN_IF_ERROR(read_float(f, factor_key, 0.0f, &factor));
  }
  RF_RETURN_IF_ERROR(read_float(f, p + "rope.scaling.attn_factor", 1.0f, &hp->rope_attn_factor));
  RF_RETURN_IF_ERROR(positive_finite(p + "rope.scaling.attn_factor", hp->rope_attn_factor));
  hp->rope_n_ctx_orig = hp->n_ctx_train;

  if (*type == "none") return ok_status();  // unscaled, whatever factor is given
  if (type->empty() || *type == "linear") {
    if (type->empty() && factor == 0.0f) return ok_status();  // no type and no factor: unscaled
    RF_RETURN_IF_ERROR(positive_finite(factor_key, factor));
    hp->rope_freq_scale = 1.0f / factor;
    return ok_status();
  }
  if (*type != "yarn") {
    return Status::error("model: " + p + "rope.scaling.type '" + *type +
                         "' is not supported (supported: none, linear, yarn; llama3 comes as rope_freqs.weight)");
  }

  // YaRN. Angles of the slow frequencies are interpolated by 1 / factor, the fast ones kept, a ramp in between
  // (ext_factor weights the kept side); cos/sin get the magnitude correction.
  if (!f.has(factor_key)) return Status::error("model: yarn rope scaling needs the key '" + factor_key + "'");
  RF_RETURN_IF_ERROR(positive_finite(factor_key, factor));
  hp->rope_freq_scale = 1.0f / factor;
  if (!(hp->rope_freq_base > 1.0f) || !std::isfinite(hp->rope_freq_base)) {
    return Status::error("model: yarn rope scaling needs '" + p + "rope.freq_base' > 1, got " +
                         num(hp->rope_freq_base));
  }
  const std::string orig_key = p + "rope.scaling.original_context_length";
  auto orig = f.get_or<uint32_t>(orig_key, static_cast<uint32_t>(hp->n_ctx_train));
  if (!orig) return Status::error("model: " + orig.error_message());
  RF_RETURN_IF_ERROR(positive(orig_key, *orig));
  if (*orig > static_cast<uint32_t>(INT32_MAX)) {
    return Status::error("model: key '" + orig_key + "' is too large: " + std::to_string(*orig));
  }
  hp->rope_n_ctx_orig = static_cast<int>(*orig);

  float ext = -1.0f;  // negative: not set, as llama.cpp reads it
  RF_RETURN_IF_ERROR(read_float(f, p + "rope.scaling.yarn_ext_factor", -1.0f, &ext));
  if (!std::isfinite(ext)) {
    return Status::error("model: key '" + p + "rope.scaling.yarn_ext_factor' must be finite, got " + num(ext));
  }
  hp->rope_ext_factor = ext < 0.0f ? 1.0f : ext;
  RF_RETURN_IF_ERROR(read_float(f, p + "rope.scaling.yarn_beta_fast", 32.0f, &hp->rope_yarn_beta_fast));
  RF_RETURN_IF_ERROR(positive_finite(p + "rope.scaling.yarn_beta_fast", hp->rope_yarn_beta_fast));
  RF_RETURN_IF_ERROR(read_float(f, p + "rope.scaling.yarn_beta_slow", 1.0f, &hp->rope_yarn_beta_slow));
  RF_RETURN_IF_ERROR(positive_finite(p + "rope.scaling.yarn_beta_slow", hp->rope_yarn_beta_slow));
  float log_mul = 0.0f;
  const std::string log_mul_key = p + "rope.scaling.yarn_log_multiplier";
  RF_RETURN_IF_ERROR(read_float(f, log_mul_key, 0.0f, &log_mul));
  if (!(log_mul >= 0.0f) || !std::isfinite(log_mul)) {
    return Status::error("model: key '" + log_mul_key + "' must be a finite number >= 0, got " + num(log_mul));
  }
  if (hp->rope_ext_factor != 0.0f) {
    float mscale = yarn_mscale(factor, 1.0f);
    if (log_mul != 0.0f) mscale /= yarn_mscale(factor, log_mul);
    hp->rope_attn_factor *= mscale;
  }
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
  hp.n_ff_exp = hp.n_ff;
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

  RF_RETURN_IF_ERROR(read_rope_scaling(f, p, &hp));
  return hp;
}

}  // namespace rf::model
