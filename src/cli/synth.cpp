// Writes a synthetic model: metadata (hyper-parameters + a byte-fallback SentencePiece-style vocabulary), then each
// tensor in chunks of rows generated and quantized on all cores.
#include "cli/synth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "cli/synth_fill.h"
#include "core/parallel.h"
#include "gguf/writer.h"
#include "quant/quant.h"

namespace rf::cli {
namespace {

constexpr int32_t kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeByte = 6;

// <unk>, <s>, </s>, the 256 byte tokens, then distinct letter pieces ("▁e", "t", "▁ta", ...) to fill the vocabulary.
Status add_vocab(gguf::Writer& w, int64_t n_vocab) {
  gguf::Array tokens{gguf::ValueType::STRING, {}}, scores{gguf::ValueType::FLOAT32, {}},
      types{gguf::ValueType::INT32, {}};
  auto add = [&](std::string piece, float score, int32_t type) {
    tokens.items.emplace_back(std::move(piece));
    scores.items.emplace_back(score);
    types.items.emplace_back(type);
  };
  add("<unk>", 0.0f, kTypeUnknown);
  add("<s>", 0.0f, kTypeControl);
  add("</s>", 0.0f, kTypeControl);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0.0f, kTypeByte);
  }
  static constexpr std::string_view kLetters = "etaoinshrdlucmfwypvbgkjqxz";
  for (int64_t k = 0; static_cast<int64_t>(tokens.items.size()) < n_vocab; ++k) {
    std::string piece = (k % 2 == 0) ? "\xE2\x96\x81" : "";  // U+2581, SentencePiece's word-start marker
    for (int64_t v = k / 2 + 1; v > 0; v = (v - 1) / 26) piece += kLetters[static_cast<size_t>((v - 1) % 26)];
    add(std::move(piece), -static_cast<float>(k), kTypeNormal);
  }
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.model", std::string("llama")));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.tokens", std::move(tokens)));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.scores", std::move(scores)));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.token_type", std::move(types)));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.unknown_token_id", uint32_t{0}));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.bos_token_id", uint32_t{1}));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.eos_token_id", uint32_t{2}));
  RF_RETURN_IF_ERROR(w.add("tokenizer.ggml.add_bos_token", true));
  return w.add("tokenizer.ggml.add_eos_token", false);
}

Status add_hparams(gguf::Writer& w, const SynthOptions& o) {
  const std::string a = o.arch;
  const int64_t n_head_kv = o.n_head_kv > 0 ? o.n_head_kv : o.n_head;
  const int64_t head_dim = o.head_dim > 0 ? o.head_dim : o.n_embd / o.n_head;
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  RF_RETURN_IF_ERROR(w.add("general.architecture", a));
  RF_RETURN_IF_ERROR(w.add("general.name", "rocmforge-synth-" + a));
  RF_RETURN_IF_ERROR(w.add("general.alignment", uint32_t{32}));
  RF_RETURN_IF_ERROR(w.add(a + ".context_length", u32(o.n_ctx)));
  RF_RETURN_IF_ERROR(w.add(a + ".embedding_length", u32(o.n_embd)));
  RF_RETURN_IF_ERROR(w.add(a + ".block_count", u32(o.n_layer)));
  RF_RETURN_IF_ERROR(w.add(a + ".feed_forward_length", u32(o.n_ff)));
  RF_RETURN_IF_ERROR(w.add(a + ".attention.head_count", u32(o.n_head)));
  RF_RETURN_IF_ERROR(w.add(a + ".attention.head_count_kv", u32(n_head_kv)));
  if (head_dim * o.n_head != o.n_embd) {
    RF_RETURN_IF_ERROR(w.add(a + ".attention.key_length", u32(head_dim)));
    RF_RETURN_IF_ERROR(w.add(a + ".attention.value_length", u32(head_dim)));
  }
  RF_RETURN_IF_ERROR(w.add(a + ".attention.layer_norm_rms_epsilon", 1e-5f));
  RF_RETURN_IF_ERROR(w.add(a + ".rope.freq_base", o.rope_base));
  if (o.n_expert > 0) {
    RF_RETURN_IF_ERROR(w.add(a + ".expert_count", u32(o.n_expert)));
    RF_RETURN_IF_ERROR(w.add(a + ".expert_used_count", u32(o.n_expert_used)));
  }
  if (a == "qwen2moe") {
    RF_RETURN_IF_ERROR(w.add(a + ".expert_feed_forward_length", u32(o.n_ff)));
    RF_RETURN_IF_ERROR(w.add(a + ".expert_shared_feed_forward_length", u32(o.n_ff_shexp > 0 ? o.n_ff_shexp : o.n_ff)));
  }
  return add_vocab(w, o.n_vocab);
}

// Generates and quantizes rows [row0, row0 + n_rows) of tensor t into out.
Status make_rows(const SynthTensor& t, uint64_t key, int64_t row0, int64_t n_rows, std::vector<float>& scratch,
                 uint8_t* out) {
  const int64_t row = t.shape[0];
  scratch.resize(static_cast<size_t>(row));
  const size_t row_bytes = *quant::row_bytes(t.type, row);
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t first = (row0 + r) * row;
    switch (t.init) {
      case SynthTensor::Init::kWeight:
        fill_normal(key, first, row, 0.0f, 1.0f / std::sqrt(static_cast<float>(t.fan_in)), scratch.data());
        break;
      case SynthTensor::Init::kNorm:
        fill_normal(key, first, row, 1.0f, 0.1f, scratch.data());
        break;
      case SynthTensor::Init::kBias:
        fill_normal(key, first, row, 0.0f, 0.1f, scratch.data());
        break;
    }
    RF_RETURN_IF_ERROR(quant::quantize(t.type, scratch.data(), out + static_cast<size_t>(r) * row_bytes, row));
  }
  return ok_status();
}

}  // namespace

Status write_synth_model(const SynthOptions& opts) {
  auto plan = plan_synth_tensors(opts);
  if (!plan.ok()) return plan.status();
  for (const auto& t : *plan) {
    if (!quant::can_quantize(t.type)) {
      return Status::error("synth: tensor type " + std::string(quant::type_name(t.type)) + " (for '" + t.name +
                           "') has no quantizer");
    }
  }
  gguf::Writer w;
  RF_RETURN_IF_ERROR(add_hparams(w, opts));
  RF_RETURN_IF_ERROR(w.add("general.file_type_name", opts.type));
  for (const auto& t : *plan) RF_RETURN_IF_ERROR(w.add_tensor(t.name, t.type, t.shape));
  RF_RETURN_IF_ERROR(w.begin_file(opts.output));

  const int threads = opts.threads > 0 ? opts.threads : hardware_threads();
  constexpr size_t kChunkBytes = size_t{64} << 20;  // bound on memory per chunk, whatever the tensor size
  std::vector<uint8_t> buf;
  for (size_t ti = 0; ti < plan->size(); ++ti) {
    const SynthTensor& t = (*plan)[ti];
    const int64_t row = t.shape[0];
    int64_t n_rows = 1;
    for (size_t d = 1; d < t.shape.size(); ++d) n_rows *= t.shape[d];
    const size_t row_bytes = *quant::row_bytes(t.type, row);
    const int64_t rows_per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / row_bytes));
    const uint64_t key = splitmix64(opts.seed ^ hash_name(t.name));
    for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per_chunk) {
      const int64_t nr = std::min(rows_per_chunk, n_rows - r0);
      buf.resize(static_cast<size_t>(nr) * row_bytes);
      std::mutex err_mu;
      Status err;
      parallel_for(nr, threads, [&](int64_t b, int64_t e) {
        std::vector<float> scratch;
        Status s = make_rows(t, key, r0 + b, e - b, scratch, buf.data() + static_cast<size_t>(b) * row_bytes);
        if (!s.ok()) {
          std::lock_guard lock(err_mu);
          err = s;
        }
      });
      RF_RETURN_IF_ERROR(err);
      RF_RETURN_IF_ERROR(w.write_tensor_data(buf));
    }
  }
  return w.finish();
}

}  // namespace rf::cli
