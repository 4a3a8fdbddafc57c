// Tensor list and per-tensor types of a synthetic model (the `rocmforge synth` plan).
#include <algorithm>
#include <cctype>
#include <optional>
#include <string_view>

#include "cli/synth.h"

namespace rf::cli {
namespace {

using quant::Type;

// Presets name a mix of types the way llama.cpp's quantizer presets do: a base type for most matrices, more bits
// for the output matrix and for a share of the attn_v / ffn_down matrices.
struct Preset {
  std::string_view name;
  Type base;
  Type output;      // output.weight
  Type more_bits;   // attn_v / ffn_down in the layers chosen by use_more_bits(), or base
  bool mix_layers;  // apply more_bits to a subset of layers
};

constexpr Preset kPresets[] = {
    {"Q2_K", Type::Q2_K, Type::Q6_K, Type::Q4_K, true},    {"Q3_K_S", Type::Q3_K, Type::Q6_K, Type::Q3_K, false},
    {"Q3_K_M", Type::Q3_K, Type::Q6_K, Type::Q5_K, true},  {"Q3_K_L", Type::Q3_K, Type::Q6_K, Type::Q5_K, false},
    {"Q4_K_S", Type::Q4_K, Type::Q6_K, Type::Q5_K, true},  {"Q4_K_M", Type::Q4_K, Type::Q6_K, Type::Q6_K, true},
    {"Q5_K_S", Type::Q5_K, Type::Q6_K, Type::Q5_K, false}, {"Q5_K_M", Type::Q5_K, Type::Q6_K, Type::Q6_K, true},
};

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The layers that get more bits: the first and last eighth and every third one between.
bool use_more_bits(int64_t layer, int64_t n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// A type whose block size does not divide the row falls back to one that does (as llama.cpp's quantizer does).
Type fit_row(Type t, int64_t row) {
  if (row % quant::traits(t).block_size == 0) return t;
  for (Type f : {Type::Q8_0, Type::F16}) {
    if (row % quant::traits(f).block_size == 0) return f;
  }
  return Type::F32;
}

}  // namespace

Expected<std::vector<SynthTensor>> plan_synth_tensors(const SynthOptions& o) {
  const std::string preset_name = upper(o.type);
  std::optional<Preset> preset;
  for (const auto& p : kPresets) {
    if (p.name == preset_name) preset = p;
  }
  if (!preset) {
    auto t = quant::type_from_name(preset_name);
    if (!t) return Status::error("synth: unknown type or preset '" + o.type + "'");
    // A plain quantized type keeps its type everywhere except output.weight, which gets Q6_K as in llama.cpp.
    const bool low_bit = quant::traits(*t).block_size > 1 && *t != Type::Q8_0;
    preset = Preset{"", *t, low_bit ? Type::Q6_K : *t, *t, false};
  }
  if (o.arch != "llama" && o.arch != "qwen2" && o.arch != "qwen3" && o.arch != "qwen2moe") {
    return Status::error("synth: unknown architecture '" + o.arch + "' (expected llama, qwen2, qwen3 or qwen2moe)");
  }
  const bool qwen2moe = o.arch == "qwen2moe";
  if (qwen2moe && o.n_expert == 0) return Status::error("synth: qwen2moe needs --n-expert and --n-expert-used");
  const int64_t n_ff_shexp = o.n_ff_shexp > 0 ? o.n_ff_shexp : o.n_ff;
  if (o.n_ff_shexp < 0 || n_ff_shexp > (int64_t{1} << 24)) {
    return Status::error("synth: --n-ff-shexp must be in 1..16777216 (or 0: --n-ff)");
  }
  for (auto [name, v] : {std::pair{"--n-embd", o.n_embd}, {"--n-ff", o.n_ff}, {"--n-layer", o.n_layer},
                         {"--n-head", o.n_head}, {"--n-vocab", o.n_vocab}}) {
    if (v <= 0 || v > (int64_t{1} << 24)) return Status::error(std::string("synth: ") + name + " must be in 1..16777216");
  }
  const int64_t n_head_kv = o.n_head_kv > 0 ? o.n_head_kv : o.n_head;
  if (o.n_head % n_head_kv != 0) return Status::error("synth: --n-head must be a multiple of --n-head-kv");
  const int64_t head_dim = o.head_dim > 0 ? o.head_dim : o.n_embd / o.n_head;
  if (head_dim <= 0 || head_dim % 2 != 0) return Status::error("synth: head_dim must be even and positive");
  if (o.n_expert < 0 || o.n_expert_used < 0 || o.n_expert_used > o.n_expert || (o.n_expert > 0 && o.n_expert_used == 0)) {
    return Status::error("synth: need 0 < --n-expert-used <= --n-expert for a MoE model");
  }
  if (o.n_vocab < 259) return Status::error("synth: --n-vocab must be at least 259 (3 specials + 256 byte tokens)");

  std::vector<SynthTensor> out;
  auto matrix = [&](std::string name, std::vector<int64_t> shape, Type t) {
    const int64_t fan_in = shape[0];
    out.push_back({std::move(name), std::move(shape), fit_row(t, fan_in), SynthTensor::Init::kWeight, fan_in});
  };
  auto vec = [&](std::string name, int64_t n, SynthTensor::Init init) {
    out.push_back({std::move(name), {n}, Type::F32, init, n});
  };
  const Preset& p = *preset;
  const int64_t q_dim = o.n_head * head_dim, kv_dim = n_head_kv * head_dim;
  matrix("token_embd.weight", {o.n_embd, o.n_vocab}, p.base);
  for (int64_t i = 0; i < o.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    const Type more = (!p.mix_layers || use_more_bits(i, o.n_layer)) ? p.more_bits : p.base;
    vec(b + "attn_norm.weight", o.n_embd, SynthTensor::Init::kNorm);
    matrix(b + "attn_q.weight", {o.n_embd, q_dim}, p.base);
    matrix(b + "attn_k.weight", {o.n_embd, kv_dim}, p.base);
    matrix(b + "attn_v.weight", {o.n_embd, kv_dim}, more);
    if (o.arch == "qwen2" || qwen2moe) {
      vec(b + "attn_q.bias", q_dim, SynthTensor::Init::kBias);
      vec(b + "attn_k.bias", kv_dim, SynthTensor::Init::kBias);
      vec(b + "attn_v.bias", kv_dim, SynthTensor::Init::kBias);
    }
    if (o.arch == "qwen3") {
      vec(b + "attn_q_norm.weight", head_dim, SynthTensor::Init::kNorm);
      vec(b + "attn_k_norm.weight", head_dim, SynthTensor::Init::kNorm);
    }
    matrix(b + "attn_output.weight", {q_dim, o.n_embd}, p.base);
    vec(b + "ffn_norm.weight", o.n_embd, SynthTensor::Init::kNorm);
    if (o.n_expert > 0) {
      out.push_back({b + "ffn_gate_inp.weight", {o.n_embd, o.n_expert}, Type::F32, SynthTensor::Init::kWeight, o.n_embd});
      matrix(b + "ffn_gate_exps.weight", {o.n_embd, o.n_ff, o.n_expert}, p.base);
      matrix(b + "ffn_up_exps.weight", {o.n_embd, o.n_ff, o.n_expert}, p.base);
      matrix(b + "ffn_down_exps.weight", {o.n_ff, o.n_embd, o.n_expert}, more);
      if (qwen2moe) {  // the shared expert and its gate (one F32 row, as 1-D tensors stay F32 in llama.cpp)
        out.push_back({b + "ffn_gate_inp_shexp.weight", {o.n_embd}, Type::F32, SynthTensor::Init::kWeight, o.n_embd});
        matrix(b + "ffn_gate_shexp.weight", {o.n_embd, n_ff_shexp}, p.base);
        matrix(b + "ffn_up_shexp.weight", {o.n_embd, n_ff_shexp}, p.base);
        matrix(b + "ffn_down_shexp.weight", {n_ff_shexp, o.n_embd}, more);
      }
    } else {
      matrix(b + "ffn_gate.weight", {o.n_embd, o.n_ff}, p.base);
      matrix(b + "ffn_up.weight", {o.n_embd, o.n_ff}, p.base);
      matrix(b + "ffn_down.weight", {o.n_ff, o.n_embd}, more);
    }
  }
  vec("output_norm.weight", o.n_embd, SynthTensor::Init::kNorm);
  if (!o.tied_embeddings) matrix("output.weight", {o.n_embd, o.n_vocab}, p.output);
  return out;
}

}  // namespace rf::cli
