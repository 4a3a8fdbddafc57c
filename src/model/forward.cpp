// The transformer forward pass, written once against the Backend interface:
//   x = embed(tokens)
//   per layer: x += wo * attention(rope(wq * norm(x) [+ bq]), rope(wk * ...), wv * ...)   (paged KV, causal, GQA)
//              x += ffn(norm(x))            dense SwiGLU, or top-k routed SwiGLU experts (MoE), plus a
//                                           sigmoid-gated shared SwiGLU expert when the model has one (qwen2moe)
//   logits = output * norm(x)   for the batch's output rows only
// A split model (Placement) runs each layer on its own backend: x crosses to the next backend at each boundary.
#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "model/model.h"

namespace rf::model {
namespace {

using backend::Tensor;
using quant::Type;

}  // namespace

Status Model::ensure_workspace(Site& site, int64_t n, int64_t n_out) {
  Buffers& cur = site.ws;
  if (n <= cur.n_tokens && n_out <= cur.n_outputs) return ok_status();
  n = std::max(n, cur.n_tokens);
  n_out = std::max(n_out, cur.n_outputs);
  cur = Buffers{};  // frees the old buffers before the larger ones are allocated
  Buffers b;
  Status failed;
  auto make = [&](Type type, int64_t ne0, int64_t ne1) {
    const size_t bytes = static_cast<size_t>(ne0 * ne1) * 4;  // F32 and I32 only
    auto buf = failed.ok() ? site.be->alloc(bytes) : nullptr;
    if (buf == nullptr) {
      if (failed.ok()) {
        failed =
            Status::error("model: cannot allocate " + std::to_string(bytes) + " bytes of workspace for a batch of " +
                          std::to_string(n) + " tokens on " + site.be->name() + ": " + site.be->take_error().message());
      }
      return Tensor{};
    }
    b.owned.push_back(std::move(buf));
    return backend::make_tensor(b.owned.back()->data(), type, ne0, ne1);
  };
  const HParams& h = hp_;
  const int64_t q_row = int64_t{h.n_head} * h.head_dim_k, k_row = int64_t{h.n_head_kv} * h.head_dim_k,
                v_row = int64_t{h.n_head_kv} * h.head_dim_v, att_row = int64_t{h.n_head} * h.head_dim_v;
  b.x = make(Type::F32, h.n_embd, n);
  if (site.runs_layers) {
    b.xb = make(Type::F32, h.n_embd, n);
    b.q = make(Type::F32, q_row, n);
    b.k = make(Type::F32, k_row, n);
    b.v = make(Type::F32, v_row, n);
    b.att = make(Type::F32, att_row, n);
    if (h.n_expert == 0) {
      b.hb = make(Type::F32, h.n_ff, n);
      b.hb2 = make(Type::F32, h.n_ff, n);
      b.hb3 = make(Type::F32, h.n_ff, n);
    } else {
      const int64_t used = h.n_expert_used;
      b.router = make(Type::F32, h.n_expert, n);
      b.expert_ids = make(Type::I32, used, n);
      b.expert_w = make(Type::F32, used, n);
      b.eg = make(Type::F32, h.n_ff_exp, used * n);
      b.eu = make(Type::F32, h.n_ff_exp, used * n);
      b.ed = make(Type::F32, h.n_embd, used * n);
      if (h.n_ff_shexp > 0) {
        b.sg = make(Type::F32, h.n_ff_shexp, n);
        b.su = make(Type::F32, h.n_ff_shexp, n);
        b.sgate = make(Type::F32, 1, n);
      }
    }
  }
  if (site.runs_output) {
    b.xo = make(Type::F32, h.n_embd, n_out);
    b.logits = make(Type::F32, h.n_vocab, n_out);
  }
  if (!failed.ok()) return failed;  // cur stays empty: the next pass tries again
  b.n_tokens = n;
  b.n_outputs = n_out;
  cur = std::move(b);
  return ok_status();
}

void Model::attention_block(int il, const backend::DeviceBatch& db, kv::KvCache& cache, int64_t n) {
  const HParams& h = hp_;
  const LayerWeights& lw = w_.layers[static_cast<size_t>(il)];
  Site& site = sites_[static_cast<size_t>(layer_site_[static_cast<size_t>(il)])];
  backend::Backend& be = *site.be;
  const Buffers& ws = site.ws;
  Tensor x = ws.x.rows(0, n), xb = ws.xb.rows(0, n);
  Tensor q = ws.q.rows(0, n), k = ws.k.rows(0, n), v = ws.v.rows(0, n), att = ws.att.rows(0, n);

  be.rms_norm(xb, x, lw.attn_norm, h.rms_eps);
  be.matmul(q, xb, lw.wq);
  be.matmul(k, xb, lw.wk);
  be.matmul(v, xb, lw.wv);
  if (!lw.bq.empty()) be.add(q, q, lw.bq);
  if (!lw.bk.empty()) be.add(k, k, lw.bk);
  if (!lw.bv.empty()) be.add(v, v, lw.bv);
  if (!lw.q_norm.empty()) be.rms_norm(q.reshape_rows(h.head_dim_k), q.reshape_rows(h.head_dim_k), lw.q_norm, h.rms_eps);
  if (!lw.k_norm.empty()) be.rms_norm(k.reshape_rows(h.head_dim_k), k.reshape_rows(h.head_dim_k), lw.k_norm, h.rms_eps);

  backend::RopeParams rp;
  rp.mode = h.rope_mode;
  rp.head_dim = h.head_dim_k;
  rp.n_rot = h.n_rot;
  rp.freq_base = h.rope_freq_base;
  rp.freq_scale = h.rope_freq_scale;
  rp.freq_factors = lw.rope_freqs;
  rp.ext_factor = h.rope_ext_factor;
  rp.attn_factor = h.rope_attn_factor;
  rp.beta_fast = h.rope_yarn_beta_fast;
  rp.beta_slow = h.rope_yarn_beta_slow;
  rp.n_ctx_orig = h.rope_n_ctx_orig;
  rp.n_head = h.n_head;
  be.rope(q, db, rp);
  rp.n_head = h.n_head_kv;
  be.rope(k, db, rp);

  be.kv_store(cache.k(il), cache.v(il), k, v, db);
  backend::AttentionParams ap;
  ap.n_head = h.n_head;
  ap.n_head_kv = h.n_head_kv;
  ap.head_dim_k = h.head_dim_k;
  ap.head_dim_v = h.head_dim_v;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim_k));
  be.attention(att, q, cache.k(il), cache.v(il), db, ap);

  be.matmul(xb, att, lw.wo);
  be.add(x, x, xb);
}

void Model::ffn_block(int il, int64_t n) {
  const HParams& h = hp_;
  const LayerWeights& lw = w_.layers[static_cast<size_t>(il)];
  Site& site = sites_[static_cast<size_t>(layer_site_[static_cast<size_t>(il)])];
  backend::Backend& be = *site.be;
  const Buffers& ws = site.ws;
  Tensor x = ws.x.rows(0, n), xb = ws.xb.rows(0, n);
  be.rms_norm(xb, x, lw.ffn_norm, h.rms_eps);
  if (h.n_expert == 0) {
    Tensor g = ws.hb.rows(0, n), u = ws.hb2.rows(0, n), act = ws.hb3.rows(0, n);
    be.matmul(g, xb, lw.ffn_gate);
    be.matmul(u, xb, lw.ffn_up);
    be.silu_mul(act, g, u);  // not in place: the GPU computes it inside the down product's launch, from g and u
    be.matmul(xb, act, lw.ffn_down);
  } else {
    const int64_t used = h.n_expert_used;
    Tensor router = ws.router.rows(0, n), ids = ws.expert_ids.rows(0, n), ew = ws.expert_w.rows(0, n);
    Tensor g = ws.eg.rows(0, used * n), u = ws.eu.rows(0, used * n), d = ws.ed.rows(0, used * n);
    Tensor sg, su, sgate;
    if (h.n_ff_shexp > 0) {  // the shared expert's products of the normed input, before xb is overwritten
      sg = ws.sg.rows(0, n), su = ws.su.rows(0, n), sgate = ws.sgate.rows(0, n);
      be.matmul(sg, xb, lw.ffn_gate_shexp);
      be.matmul(su, xb, lw.ffn_up_shexp);
      be.matmul(sgate, xb, lw.ffn_gate_inp_shexp);
      be.silu_mul(sg, sg, su);
    }
    be.matmul(router, xb, lw.ffn_gate_inp);
    be.moe_route(ids, ew, router, h.expert_weights_norm);
    be.moe_matmul(g, xb, lw.ffn_gate_exps, ids);
    be.moe_matmul(u, xb, lw.ffn_up_exps, ids);
    be.silu_mul(g, g, u);
    be.moe_matmul(d, g, lw.ffn_down_exps, ids);
    be.moe_combine(xb, d, ew);
    if (h.n_ff_shexp > 0) {  // xb += sigmoid(gate) * down(silu(gate) * up), in the first n rows of d (now free)
      Tensor shared = ws.ed.rows(0, n);
      be.matmul(shared, sg, lw.ffn_down_shexp);
      be.sigmoid_scale(shared, shared, sgate);
      be.add(xb, xb, shared);
    }
  }
  be.add(x, x, xb);
}

Status Model::move_hidden(Site& from, Site& to, int64_t n) {
  const size_t count = static_cast<size_t>(n) * static_cast<size_t>(hp_.n_embd);
  host_x_.resize(count);
  from.be->to_host(host_x_.data(), from.ws.x.rows(0, n), count * sizeof(float));
  // to_host waited for the source's queued work: a failure there shows now, before the next backend starts.
  RF_RETURN_IF_ERROR(from.be->take_error());
  to.be->to_device(to.ws.x.rows(0, n), host_x_.data(), count * sizeof(float));
  return ok_status();
}

Status Model::finish(Status first) {
  for (Site& s : sites_) {
    s.be->sync();
    Status e = s.be->take_error();
    if (first.ok() && !e.ok()) first = Status::error("model: forward pass on " + s.be->name() + ": " + e.message());
  }
  return first;
}

Status Model::forward(backend::Batch batch, kv::KvCache& cache, std::vector<float>* logits) {
  n_out_on_device_ = 0;
  if (!unusable_.ok()) {
    if (logits != nullptr) logits->clear();
    return unusable_;
  }
  batch.kv_block_size = cache.block_size();
  RF_RETURN_IF_ERROR(batch.validate(hp_.n_vocab, cache.n_blocks()));
  const int64_t n = batch.n_tokens();
  const int64_t n_out = batch.n_outputs();
  if (n == 0) return Status::error("model: empty batch");
  for (Site& s : sites_) {
    if (Status st = ensure_workspace(s, n, n_out); !st.ok()) {
      if (logits != nullptr) logits->clear();
      return finish(st);
    }
  }
  Status failed;
  {
    // One prepared batch per backend (each uploads its own index arrays).
    std::vector<std::unique_ptr<backend::DeviceBatch>> dbs(sites_.size());
    for (size_t i = 0; i + 1 < sites_.size(); ++i) dbs[i] = sites_[i].be->prepare_batch(batch);
    dbs.back() = sites_.back().be->prepare_batch(std::move(batch));

    int cur = in_site_;
    sites_[static_cast<size_t>(cur)].be->embed(sites_[static_cast<size_t>(cur)].ws.x.rows(0, n), w_.token_embd,
                                               *dbs[static_cast<size_t>(cur)]);
    for (int il = 0; il < hp_.n_layer && failed.ok(); ++il) {
      const int s = layer_site_[static_cast<size_t>(il)];
      if (s != cur) {
        failed = move_hidden(sites_[static_cast<size_t>(cur)], sites_[static_cast<size_t>(s)], n);
        if (!failed.ok()) {
          failed = Status::error("model: forward pass on " + sites_[static_cast<size_t>(cur)].be->name() +
                                 " (layers before " + std::to_string(il) + "): " + failed.message());
          break;
        }
        cur = s;
      }
      attention_block(il, *dbs[static_cast<size_t>(s)], cache, n);
      ffn_block(il, n);
    }
    if (failed.ok() && n_out > 0) {
      if (out_site_ != cur) {
        failed = move_hidden(sites_[static_cast<size_t>(cur)], sites_[static_cast<size_t>(out_site_)], n);
        if (!failed.ok()) {
          failed = Status::error("model: forward pass on " + sites_[static_cast<size_t>(cur)].be->name() + ": " +
                                 failed.message());
        }
      }
      if (failed.ok()) {
        Site& o = sites_[static_cast<size_t>(out_site_)];
        Tensor xo = o.ws.xo.rows(0, n_out), lg = o.ws.logits.rows(0, n_out);
        o.be->get_rows(xo, o.ws.x.rows(0, n), *dbs[static_cast<size_t>(out_site_)]);
        o.be->rms_norm(xo, xo, w_.output_norm, hp_.rms_eps);
        o.be->matmul(lg, xo, w_.output);
        if (logits != nullptr) {
          // A caller's buffer of the same size is reused as is: no zero fill of n_out x n_vocab floats per step.
          logits->resize(static_cast<size_t>(n_out * hp_.n_vocab));
          o.be->to_host(logits->data(), lg, logits->size() * sizeof(float));
        }
      }
    }
  }  // the prepared batches are released here, before the errors are taken
  failed = finish(std::move(failed));
  n_out_on_device_ = failed.ok() && logits == nullptr ? n_out : 0;
  if (logits != nullptr && (!failed.ok() || n_out == 0)) logits->clear();
  return failed;
}

Status Model::sample(std::span<const backend::SampleRow> rows, const backend::HostSampleFn& host, int32_t* ids) {
  for (const auto& r : rows) RF_CHECK(r.row >= 0 && r.row < n_out_on_device_);
  Site& o = sites_[static_cast<size_t>(out_site_)];
  return o.be->sample(o.ws.logits.rows(0, n_out_on_device_), rows, host, ids);
}

Status Model::logits_row(int64_t row, float* dst) {
  RF_CHECK(row >= 0 && row < n_out_on_device_);
  Site& o = sites_[static_cast<size_t>(out_site_)];
  o.be->to_host(dst, o.ws.logits.rows(row, 1), static_cast<size_t>(hp_.n_vocab) * sizeof(float));
  return o.be->take_error();
}

}  // namespace rf::model
