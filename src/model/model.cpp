// Model loading: architecture lookup, hyper-parameters, weights table (tied embeddings, rope frequency factors).
#include "model/model.h"

#include "gguf/gguf.h"

namespace rf::model {

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, backend::Backend& be) {
  auto file = gguf::File::open(path);
  if (!file) return file.status();
  return load(*file, be);
}

Expected<std::unique_ptr<Model>> Model::load(std::shared_ptr<gguf::File> file, backend::Backend& be) {
  auto arch_name = file->get<std::string>("general.architecture");
  if (!arch_name) return Status::error("model: " + file->name() + ": " + arch_name.error_message());
  const ArchFamily* family = find_arch(*arch_name);
  if (family == nullptr) {
    std::string known;
    for (const auto& f : arch_families()) known += (known.empty() ? "" : ", ") + std::string(f.name);
    return Status::error("model: " + file->name() + ": architecture '" + *arch_name + "' is not supported (known: " +
                         known + ")");
  }
  auto hp = read_hparams(*file, *arch_name);
  if (!hp) return Status::error(hp.error_message() + " in " + file->name());

  std::unique_ptr<Model> m(new Model(file, be));
  m->hp_ = *hp;
  m->hp_.rope_mode = family->rope_mode;
  const gguf::TensorInfo* embd = file->find_tensor("token_embd.weight");
  if (embd == nullptr) return Status::error("model: tensor 'token_embd.weight' is missing from " + file->name());
  m->hp_.n_vocab = static_cast<int>(embd->ne[1]);
  const HParams& h = m->hp_;
  if (h.n_expert == 0 && h.n_ff <= 0) {
    return Status::error("model: " + h.arch + ".feed_forward_length is missing or zero in " + file->name());
  }

  TensorLoader l(*file, be);
  Weights& w = m->w_;
  RF_RETURN_IF_ERROR(l.require("token_embd.weight", {h.n_embd, h.n_vocab}, &w.token_embd));
  RF_RETURN_IF_ERROR(l.require("output_norm.weight", {h.n_embd}, &w.output_norm));
  RF_RETURN_IF_ERROR(l.optional("output.weight", {h.n_embd, h.n_vocab}, &w.output));
  if (w.output.empty()) w.output = w.token_embd;  // tied embeddings
  RF_RETURN_IF_ERROR(l.optional("rope_freqs.weight", {h.n_rot / 2}, &w.rope_freqs));
  w.layers.resize(static_cast<size_t>(h.n_layer));
  for (int il = 0; il < h.n_layer; ++il) {
    RF_RETURN_IF_ERROR(family->load_layer(l, h, il, w.layers[static_cast<size_t>(il)]));
  }
  return m;
}

kv::KvShape Model::kv_shape() const {
  return {hp_.n_layer, int64_t{hp_.n_head_kv} * hp_.head_dim_k, int64_t{hp_.n_head_kv} * hp_.head_dim_v};
}

size_t Model::weight_bytes_per_token() const {
  auto bytes = [](const backend::Tensor& t) { return t.empty() ? size_t{0} : t.nb1 * static_cast<size_t>(t.ne1); };
  size_t total = bytes(w_.output_norm) + bytes(w_.output) + w_.token_embd.nb1;  // one embedding row
  for (const auto& l : w_.layers) {
    for (const auto* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm,
                          &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_gate_inp}) {
      total += bytes(*t);
    }
    for (const auto* t : {&l.ffn_gate_exps, &l.ffn_up_exps, &l.ffn_down_exps}) {
      total += bytes(*t) * static_cast<size_t>(hp_.n_expert_used);  // bytes() is one expert's matrix
    }
  }
  return total;
}

}  // namespace rf::model
