#include "runtime/generate.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/device_select.h"
#include "runtime/sample_row.h"
#include "tokenizer/tokenizer.h"

namespace rf::runtime {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Status write_logits(const std::string& path, const std::vector<int32_t>& tokens, const std::vector<float>& logits,
                    int n_vocab) {
  nlohmann::json j;
  j["tokens"] = tokens;
  auto& rows = j["logits"] = nlohmann::json::array();
  for (size_t p = 0; p < tokens.size(); ++p) {
    rows.push_back(std::vector<float>(logits.begin() + static_cast<std::ptrdiff_t>(p * n_vocab),
                                      logits.begin() + static_cast<std::ptrdiff_t>((p + 1) * n_vocab)));
  }
  std::ofstream out(path);
  if (!out) return Status::error("generate: cannot write --dump-logits file '" + path + "'");
  out << j.dump() << "\n";
  return out ? ok_status() : Status::error("generate: write to '" + path + "' failed");
}

}  // namespace

Expected<GenerateResult> generate(const GenerateOptions& o, const std::function<void(std::string_view)>& on_text) {
  GenerateResult r;
  const auto t_load = std::chrono::steady_clock::now();
  backend::BackendOptions bo;
  bo.device = o.device;
  bo.n_threads = o.threads;
  bo.n_gpu_layers = o.n_gpu_layers;
  auto choice = select_backend(bo);
  if (!choice) return Status::error("generate: " + choice.error_message());
  if (!choice->note.empty()) std::fprintf(stderr, "rocmforge: %s\n", choice->note.c_str());
  std::unique_ptr<backend::Backend> be = std::move(choice->backend);
  r.backend_name = be->name();
  auto file = gguf::File::open(o.model_path);
  if (!file) return file.status();
  model::OffloadRequest sizes;  // the KV cache and the batches below
  sizes.kv_tokens = o.ctx_size;
  sizes.output_rows = o.dump_logits_path.empty() ? 1 : sizes.batch_tokens;
  auto model = load_model(*file, *be, bo, sizes);
  if (!model && choice->is_gpu && o.device == backend::DeviceKind::kAuto) {
    // auto: a model the GPU cannot hold (memory, a type without a GPU kernel) runs on the CPU instead.
    std::fprintf(stderr, "rocmforge: device auto: using the CPU, the model does not load on the GPU: %s\n",
                 model.error_message().c_str());
    be.reset();  // frees what the failed load put on the GPU
    bo.device = backend::DeviceKind::kCpu;
    auto cpu = select_backend(bo);
    if (!cpu) return Status::error("generate: " + cpu.error_message());
    be = std::move(cpu->backend);
    r.backend_name = be->name();
    model = model::Model::load(*file, *be);
  }
  if (!model) return model.status();
  model::Model& m = **model;
  if (m.n_first_layers() < m.hparams().n_layer) r.backend_name = m.placement_summary();  // split over two backends
  const int n_vocab = m.hparams().n_vocab;

  std::shared_ptr<const tokenizer::Tokenizer> tok;
  if (auto t = tokenizer::Tokenizer::from_gguf(**file); t.ok()) tok = *t;
  if (o.prompt_tokens.empty()) {
    if (!tok) return Status::error("generate: the model has no usable tokenizer; pass --tokens instead of -p");
    r.prompt_tokens = tok->tokenize(o.prompt, /*add_special=*/true, /*parse_special=*/false);
  } else {
    r.prompt_tokens = o.prompt_tokens;
  }
  if (r.prompt_tokens.empty()) return Status::error("generate: the prompt is empty");
  for (int32_t t : r.prompt_tokens) {
    if (t < 0 || t >= n_vocab) {
      return Status::error("generate: prompt token " + std::to_string(t) + " is outside the vocabulary [0, " +
                           std::to_string(n_vocab) + ")");
    }
  }
  const int ctx = o.ctx_size > 0 ? o.ctx_size : m.hparams().n_ctx_train;
  if (static_cast<int>(r.prompt_tokens.size()) > ctx) {
    return Status::error("generate: the prompt has " + std::to_string(r.prompt_tokens.size()) +
                         " tokens but the context holds " + std::to_string(ctx) + " (raise --ctx-size)");
  }
  kv::KvOptions kvo;
  kvo.n_slots = ctx;
  auto cache = kv::KvCache::create(*be, m.kv_shape(), kvo);
  if (!cache) return cache.status();
  const int32_t seq = (*cache)->add_sequence();
  r.load_seconds = seconds_since(t_load);

  // Prefill: the whole prompt in one batch (all rows' logits only when dumping them).
  const bool dump = !o.dump_logits_path.empty();
  const auto n_prompt = static_cast<int32_t>(r.prompt_tokens.size());
  RF_RETURN_IF_ERROR((*cache)->reserve(seq, n_prompt));
  backend::Batch b;
  for (int32_t i = 0; i < n_prompt; ++i) {
    b.tokens.push_back(r.prompt_tokens[static_cast<size_t>(i)]);
    b.positions.push_back(i);
    b.seq.push_back(0);
    if (dump || i == n_prompt - 1) b.output_rows.push_back(i);
  }
  b.block_tables.push_back((*cache)->block_table(seq));
  // The logits come to the host only to be dumped; otherwise the backend samples them (only the token id crosses).
  std::vector<float> logits;
  bool logits_on_host = dump;
  const auto t_prefill = std::chrono::steady_clock::now();
  RF_RETURN_IF_ERROR(m.forward(std::move(b), **cache, dump ? &logits : nullptr));
  (*cache)->advance(seq, n_prompt);
  r.prefill_seconds = seconds_since(t_prefill);
  if (dump) {
    RF_RETURN_IF_ERROR(write_logits(o.dump_logits_path, r.prompt_tokens, logits, n_vocab));
    logits.erase(logits.begin(), logits.end() - n_vocab);
  }

  sampling::Sampler sampler(o.sampling);
  std::vector<int32_t> history = r.prompt_tokens;
  std::unique_ptr<tokenizer::StreamDecoder> decoder;
  if (tok) decoder = std::make_unique<tokenizer::StreamDecoder>(tok);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    if (on_text) on_text(s);
  };
  const auto t_decode = std::chrono::steady_clock::now();
  auto sample_next = [&]() -> Expected<int32_t> {
    if (logits_on_host) {
      logits_on_host = false;
      return sampler.sample(logits, history);
    }
    const backend::SampleRow row = sample_row(sampler, history, 0);
    const auto host = [&](std::span<const size_t>, const float* lg, int32_t* ids) {
      ids[0] = sampler.sample_drawn(std::span<const float>(lg, static_cast<size_t>(n_vocab)), history, row.u);
    };
    int32_t id = 0;
    RF_RETURN_IF_ERROR(m.sample(std::span<const backend::SampleRow>(&row, 1), host, &id));
    return id;
  };
  for (int i = 0; i < o.n_predict; ++i) {
    auto sampled = sample_next();
    if (!sampled) return sampled.status();
    const int32_t next = *sampled;
    if (!o.ignore_eos && tok && (tok->is_eog(next) || next == tok->eos())) break;
    r.tokens.push_back(next);
    history.push_back(next);
    if (decoder) emit(decoder->push(next));
    if (i + 1 == o.n_predict) break;
    if ((*cache)->length(seq) + 1 > ctx) break;  // context full
    RF_RETURN_IF_ERROR((*cache)->reserve(seq, 1));
    backend::Batch step;
    step.tokens = {next};
    step.positions = {(*cache)->length(seq)};
    step.seq = {0};
    step.output_rows = {0};
    step.generated = {1};
    step.block_tables.push_back((*cache)->block_table(seq));
    RF_RETURN_IF_ERROR(m.forward(std::move(step), **cache, nullptr));
    (*cache)->advance(seq, 1);
  }
  if (decoder) emit(decoder->flush());
  r.decode_seconds = seconds_since(t_decode);
  return r;
}

}  // namespace rf::runtime
