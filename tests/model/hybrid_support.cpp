#include "model/hybrid_support.h"

#include <algorithm>
#include <span>

#include "gguf/writer.h"
#include "model/hparams.h"

namespace rf::test {

std::vector<ScriptStep> default_script(int32_t n_vocab) {
  auto tok = [&](int32_t i) { return (i * 37 + 11) % n_vocab; };
  std::vector<ScriptStep> s;
  ScriptStep prefill;
  prefill.seq_tokens = {{tok(0), tok(1), tok(2), tok(3), tok(4), tok(5), tok(6)}};
  prefill.all_outputs = true;
  s.push_back(prefill);
  for (int32_t i = 0; i < 3; ++i) s.push_back(ScriptStep{{{tok(7 + i)}}, false});
  s.push_back(ScriptStep{{{tok(10)}, {tok(11), tok(12), tok(13)}}, true});
  return s;
}

std::unique_ptr<kv::KvCache> make_cache(model::Model& m) {
  kv::KvOptions o;
  o.n_slots = 128;
  o.block_size = 16;
  auto c = kv::KvCache::create(m.backend(), m.kv_shape(), o);
  return c.ok() ? std::move(*c) : nullptr;
}

Expected<std::vector<std::vector<float>>> run_script(model::Model& m, kv::KvCache& cache,
                                                     const std::vector<ScriptStep>& script) {
  size_t n_seq = 0;
  for (const auto& step : script) n_seq = std::max(n_seq, step.seq_tokens.size());
  std::vector<int32_t> seqs;
  for (size_t i = 0; i < n_seq; ++i) seqs.push_back(cache.add_sequence());
  auto release = [&] {
    for (int32_t s : seqs) cache.release_sequence(s);
  };
  std::vector<std::vector<float>> out;
  for (const auto& step : script) {
    backend::Batch b;
    for (size_t s = 0; s < step.seq_tokens.size(); ++s) {
      const auto& toks = step.seq_tokens[s];
      if (Status st = cache.reserve(seqs[s], static_cast<int32_t>(toks.size())); !st.ok()) {
        release();
        return st;
      }
      const int32_t start = cache.length(seqs[s]);
      b.block_tables.push_back(cache.block_table(seqs[s]));
      for (size_t i = 0; i < toks.size(); ++i) {
        if (step.all_outputs || i + 1 == toks.size()) b.output_rows.push_back(static_cast<int32_t>(b.tokens.size()));
        b.tokens.push_back(toks[i]);
        b.positions.push_back(start + static_cast<int32_t>(i));
        b.seq.push_back(static_cast<int32_t>(s));
      }
    }
    std::vector<float> logits;
    if (Status st = m.forward(std::move(b), cache, &logits); !st.ok()) {
      release();
      return st;
    }
    for (size_t s = 0; s < step.seq_tokens.size(); ++s) {
      cache.advance(seqs[s], static_cast<int32_t>(step.seq_tokens[s].size()));
    }
    out.push_back(std::move(logits));
  }
  release();
  return out;
}

Expected<std::shared_ptr<gguf::File>> tied_with_rope_freqs(const std::string& path, std::vector<uint8_t>* bytes) {
  auto src = gguf::File::open(path);
  if (!src) return src.status();
  const gguf::File& f = **src;
  auto arch = f.get<std::string>("general.architecture");
  if (!arch) return arch.status();
  auto hp = model::read_hparams(f, *arch);
  if (!hp) return hp.status();
  gguf::Writer w;
  for (const auto& kv : f.metadata()) {
    if (kv.key == "general.alignment") continue;
    RF_RETURN_IF_ERROR(w.add(kv.key, kv.value));
  }
  std::vector<const gguf::TensorInfo*> kept;
  for (const auto& t : f.tensors()) {
    if (t.name == "output.weight") continue;
    RF_RETURN_IF_ERROR(w.add_tensor(t.name, t.type,
                                    std::span<const int64_t>(t.ne.data(), static_cast<size_t>(std::max(t.n_dims, 1)))));
    kept.push_back(&t);
  }
  const int64_t n_freq = hp->n_rot / 2;
  RF_RETURN_IF_ERROR(w.add_tensor("rope_freqs.weight", quant::Type::F32, {n_freq}));
  RF_RETURN_IF_ERROR(w.begin_memory());
  for (const auto* t : kept) RF_RETURN_IF_ERROR(w.write_tensor(t->name, {t->data, t->n_bytes}));
  std::vector<float> freqs;
  for (int64_t i = 0; i < n_freq; ++i)
    freqs.push_back(1.0f + 3.0f * static_cast<float>(i) / static_cast<float>(n_freq));
  RF_RETURN_IF_ERROR(w.write_tensor("rope_freqs.weight",
                                    {reinterpret_cast<const uint8_t*>(freqs.data()), freqs.size() * sizeof(float)}));
  RF_RETURN_IF_ERROR(w.finish());
  *bytes = w.take_memory();
  return gguf::File::parse(*bytes, "tied-rope-freqs(" + path + ")");
}

}  // namespace rf::test
