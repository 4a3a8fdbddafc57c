// Model loading: architecture lookup, hyper-parameters, placement of the layers on backends, weights table (tied
// embeddings, rope frequency factors).
#include "model/model.h"

#include "gguf/gguf.h"

namespace rf::model {

Expected<std::unique_ptr<Model>> Model::load(const std::string& path, backend::Backend& be) {
  auto file = gguf::File::open(path);
  if (!file) return file.status();
  return load(*file, be);
}

Expected<std::unique_ptr<Model>> Model::load(std::shared_ptr<gguf::File> file, backend::Backend& be) {
  Placement p;
  p.first = &be;
  return load(std::move(file), std::move(p));
}

Expected<std::unique_ptr<Model>> Model::load(std::shared_ptr<gguf::File> file, Placement placement) {
  auto arch_name = file->get<std::string>("general.architecture");
  if (!arch_name) return Status::error("model: " + file->name() + ": " + arch_name.error_message());
  const ArchFamily* family = find_arch(*arch_name);
  if (family == nullptr) {
    std::string known;
    for (const auto& f : arch_families()) known += (known.empty() ? "" : ", ") + std::string(f.name);
    return Status::error("model: " + file->name() + ": architecture '" + *arch_name +
                         "' is not supported (known: " + known + ")");
  }
  auto hp = read_hparams(*file, *arch_name);
  if (!hp) return Status::error(hp.error_message() + " in " + file->name());

  std::unique_ptr<Model> m(new Model(file));
  m->hp_ = *hp;
  m->hp_.rope_mode = family->rope_mode;
  m->hp_.expert_weights_norm = family->expert_weights_norm;
  if (family->read_hparams != nullptr) {
    if (Status st = family->read_hparams(*file, m->hp_); !st.ok()) {
      return Status::error(st.message() + " in " + file->name());
    }
  }
  const gguf::TensorInfo* embd = file->find_tensor("token_embd.weight");
  if (embd == nullptr) return Status::error("model: tensor 'token_embd.weight' is missing from " + file->name());
  m->hp_.n_vocab = static_cast<int>(embd->ne[1]);
  const HParams& h = m->hp_;
  if (h.n_expert == 0 && h.n_ff <= 0) {
    return Status::error("model: " + h.arch + ".feed_forward_length is missing or zero in " + file->name());
  }
  RF_RETURN_IF_ERROR(m->place(placement));
  m->family_ = family;
  RF_RETURN_IF_ERROR(m->load_weights());
  return m;
}

Status Model::load_weights() {
  const HParams& h = hp_;
  // One loader per backend: each tensor is loaded where the op that reads it runs.
  std::vector<TensorLoader> loaders;
  for (const Site& s : sites_) loaders.emplace_back(*file_, *s.be);
  Weights w;
  TensorLoader& in = loaders[static_cast<size_t>(in_site_)];
  TensorLoader& out = loaders[static_cast<size_t>(out_site_)];
  RF_RETURN_IF_ERROR(in.require("token_embd.weight", {h.n_embd, h.n_vocab}, &w.token_embd));
  RF_RETURN_IF_ERROR(out.require("output_norm.weight", {h.n_embd}, &w.output_norm));
  RF_RETURN_IF_ERROR(out.optional("output.weight", {h.n_embd, h.n_vocab}, &w.output));
  if (w.output.empty()) {  // tied embeddings
    if (out_site_ == in_site_) {
      w.output = w.token_embd;
    } else {
      RF_RETURN_IF_ERROR(out.require("token_embd.weight", {h.n_embd, h.n_vocab}, &w.output));
    }
  }
  std::vector<Tensor> rope_freqs(sites_.size());
  for (size_t s = 0; s < sites_.size(); ++s) {
    if (sites_[s].runs_layers) {
      RF_RETURN_IF_ERROR(loaders[s].optional("rope_freqs.weight", {h.n_rot / 2}, &rope_freqs[s]));
    }
  }
  w.layers.resize(static_cast<size_t>(h.n_layer));
  for (int il = 0; il < h.n_layer; ++il) {
    const auto s = static_cast<size_t>(layer_site_[static_cast<size_t>(il)]);
    LayerWeights& lw = w.layers[static_cast<size_t>(il)];
    RF_RETURN_IF_ERROR(family_->load_layer(loaders[s], h, il, lw));
    lw.rope_freqs = rope_freqs[s];
  }
  w_ = std::move(w);
  return ok_status();
}

bool Model::device_lost() const {
  for (const Site& s : sites_) {
    if (s.be->device_lost()) return true;
  }
  return false;
}

Status Model::recover() {
  if (!unusable_.ok()) return unusable_;
  if (!device_lost()) return ok_status();
  // The workspaces of every site go (those on a lost device point into freed memory; the others are simply made
  // again by the next pass), then each lost device is reset, then all weights load again: a split model's tensors
  // on a CPU backend are views of the mapped file, so reloading them costs nothing.
  for (Site& s : sites_) s.ws = Buffers{};
  n_out_on_device_ = 0;
  w_ = Weights{};
  Status not_reset;
  for (Site& s : sites_) {
    if (!s.be->device_lost()) continue;
    if (Status st = s.be->reset_device(); !st.ok()) {
      not_reset = Status::error("model: " + s.be->name() + " lost its device and could not be reset: " + st.message());
      break;
    }
  }
  if (!not_reset.ok()) {
    // The device is gone for good: the whole model moves to the fallback backend (the CPU) when there is one. The
    // old sites are forgotten, not destroyed: a lost device's backend belongs to the caller, and the CPU half of a
    // split (owned_backend_) simply idles.
    std::unique_ptr<backend::Backend> fb = make_fallback_ ? make_fallback_() : nullptr;
    if (fb == nullptr) {
      unusable_ = not_reset;
      return unusable_;
    }
    sites_.clear();
    Placement whole;
    whole.first = fb.get();
    fallback_backend_ = std::move(fb);
    if (Status st = place(whole); !st.ok()) {
      unusable_ = Status::error(not_reset.message() + "; moving to " + fallback_backend_->name() + ": " + st.message());
      return unusable_;
    }
    fallback_reason_ = not_reset.message();
  }
  if (Status st = load_weights(); !st.ok()) {
    unusable_ = Status::error("model: reloading the weights after a device reset failed: " + st.message());
    return unusable_;
  }
  return ok_status();
}

Status Model::place(Placement& p) {
  if (p.first == nullptr) return Status::error("model: placement without a backend");
  const int n_layer = hp_.n_layer;
  n_first_ = p.n_first < 0 || p.n_first >= n_layer ? n_layer : p.n_first;
  if (n_first_ < n_layer && p.rest == nullptr) {
    return Status::error("model: placement puts " + std::to_string(n_first_) + " of " + std::to_string(n_layer) +
                         " layers on '" + p.first->name() + "' but names no backend for the rest");
  }
  if (p.owned != nullptr) owned_backend_ = std::move(p.owned);
  if (p.fallback) make_fallback_ = std::move(p.fallback);
  auto site_of = [&](backend::Backend* be) {
    for (size_t i = 0; i < sites_.size(); ++i) {
      if (sites_[i].be == be) return static_cast<int>(i);
    }
    sites_.push_back(Site{be, false, false, {}});
    return static_cast<int>(sites_.size() - 1);
  };
  backend::Backend* in_be = n_first_ > 0 || n_layer == 0 ? p.first : p.rest;
  in_site_ = site_of(in_be);
  layer_site_.resize(static_cast<size_t>(n_layer));
  for (int il = 0; il < n_layer; ++il) {
    const int s = site_of(il < n_first_ ? p.first : p.rest);
    layer_site_[static_cast<size_t>(il)] = s;
    sites_[static_cast<size_t>(s)].runs_layers = true;
  }
  out_site_ = site_of(n_first_ == n_layer ? p.first : p.rest);
  sites_[static_cast<size_t>(out_site_)].runs_output = true;
  return ok_status();
}

std::string Model::placement_summary() const {
  std::string s;
  for (size_t i = 0; i < sites_.size(); ++i) {
    std::vector<std::string> parts;
    int lo = -1, hi = -1;
    for (int il = 0; il < hp_.n_layer; ++il) {
      if (layer_site_[static_cast<size_t>(il)] != static_cast<int>(i)) continue;
      if (lo < 0) lo = il;
      hi = il;
    }
    if (lo >= 0)
      parts.push_back(lo == hi ? "layer " + std::to_string(lo)
                               : "layers " + std::to_string(lo) + "-" + std::to_string(hi));
    if (out_site_ == static_cast<int>(i)) parts.push_back("the output");
    std::string what;
    for (size_t k = 0; k < parts.size(); ++k) what += (k == 0 ? "" : " and ") + parts[k];
    s += (i == 0 ? "" : ", ") + what + " on " + sites_[i].be->name();
  }
  return s;
}

kv::KvShape Model::kv_shape() const {
  kv::KvShape shape{hp_.n_layer, int64_t{hp_.n_head_kv} * hp_.head_dim_k, int64_t{hp_.n_head_kv} * hp_.head_dim_v, {}};
  for (int il = 0; il < hp_.n_layer; ++il) shape.layer_backends.push_back(&layer_backend(il));
  return shape;
}

size_t Model::weight_bytes_per_token() const {
  auto bytes = [](const backend::Tensor& t) { return t.empty() ? size_t{0} : t.nb1 * static_cast<size_t>(t.ne1); };
  size_t total = bytes(w_.output_norm) + bytes(w_.output) + w_.token_embd.nb1;  // one embedding row
  for (const auto& l : w_.layers) {
    for (const auto* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.q_norm, &l.k_norm,
                          &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_gate_inp, &l.ffn_gate_inp_shexp,
                          &l.ffn_gate_shexp, &l.ffn_up_shexp, &l.ffn_down_shexp}) {
      total += bytes(*t);
    }
    for (const auto* t : {&l.ffn_gate_exps, &l.ffn_up_exps, &l.ffn_down_exps}) {
      total += bytes(*t) * static_cast<size_t>(hp_.n_expert_used);  // bytes() is one expert's matrix
    }
  }
  return total;
}

}  // namespace rf::model
