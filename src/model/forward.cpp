// The transformer forward pass, written once against the Backend interface:
//   x = embed(tokens)
//   per layer: x += wo * attention(rope(wq * norm(x) [+ bq]), rope(wk * ...), wv * ...)   (paged KV, causal, GQA)
//              x += ffn(norm(x))            dense SwiGLU, or top-k routed SwiGLU experts (MoE)
//   logits = output * norm(x)   for the batch's output rows only
#include <cmath>

#include "core/check.h"
#include "model/model.h"

namespace rf::model {
namespace {

using backend::Tensor;
using quant::Type;

}  // namespace

void Model::ensure_workspace(int64_t n, int64_t n_out) {
  if (n <= ws_.n_tokens && n_out <= ws_.n_outputs) return;
  n = std::max(n, ws_.n_tokens);
  n_out = std::max(n_out, ws_.n_outputs);
  Buffers b;
  b.n_tokens = n;
  b.n_outputs = n_out;
  auto make = [&](Type type, int64_t ne0, int64_t ne1) {
    const size_t bytes = static_cast<size_t>(ne0 * ne1) * 4;  // F32 and I32 only
    b.owned.push_back(be_.alloc(bytes));
    return backend::make_tensor(b.owned.back()->data(), type, ne0, ne1);
  };
  const HParams& h = hp_;
  const int64_t q_row = int64_t{h.n_head} * h.head_dim_k, k_row = int64_t{h.n_head_kv} * h.head_dim_k,
                v_row = int64_t{h.n_head_kv} * h.head_dim_v, att_row = int64_t{h.n_head} * h.head_dim_v;
  b.x = make(Type::F32, h.n_embd, n);
  b.xb = make(Type::F32, h.n_embd, n);
  b.q = make(Type::F32, q_row, n);
  b.k = make(Type::F32, k_row, n);
  b.v = make(Type::F32, v_row, n);
  b.att = make(Type::F32, att_row, n);
  if (h.n_expert == 0) {
    b.hb = make(Type::F32, h.n_ff, n);
    b.hb2 = make(Type::F32, h.n_ff, n);
  } else {
    const int64_t used = h.n_expert_used;
    b.router = make(Type::F32, h.n_expert, n);
    b.expert_ids = make(Type::I32, used, n);
    b.expert_w = make(Type::F32, used, n);
    b.eg = make(Type::F32, h.n_ff, used * n);
    b.eu = make(Type::F32, h.n_ff, used * n);
    b.ed = make(Type::F32, h.n_embd, used * n);
  }
  b.xo = make(Type::F32, h.n_embd, n_out);
  b.logits = make(Type::F32, h.n_vocab, n_out);
  ws_ = std::move(b);
}

void Model::attention_block(int il, const backend::DeviceBatch& db, kv::KvCache& cache, int64_t n) {
  const HParams& h = hp_;
  const LayerWeights& lw = w_.layers[static_cast<size_t>(il)];
  Tensor x = ws_.x.rows(0, n), xb = ws_.xb.rows(0, n);
  Tensor q = ws_.q.rows(0, n), k = ws_.k.rows(0, n), v = ws_.v.rows(0, n), att = ws_.att.rows(0, n);

  be_.rms_norm(xb, x, lw.attn_norm, h.rms_eps);
  be_.matmul(q, xb, lw.wq);
  be_.matmul(k, xb, lw.wk);
  be_.matmul(v, xb, lw.wv);
  if (!lw.bq.empty()) be_.add(q, q, lw.bq);
  if (!lw.bk.empty()) be_.add(k, k, lw.bk);
  if (!lw.bv.empty()) be_.add(v, v, lw.bv);
  if (!lw.q_norm.empty()) be_.rms_norm(q.reshape_rows(h.head_dim_k), q.reshape_rows(h.head_dim_k), lw.q_norm, h.rms_eps);
  if (!lw.k_norm.empty()) be_.rms_norm(k.reshape_rows(h.head_dim_k), k.reshape_rows(h.head_dim_k), lw.k_norm, h.rms_eps);

  backend::RopeParams rp;
  rp.mode = h.rope_mode;
  rp.head_dim = h.head_dim_k;
  rp.n_rot = h.n_rot;
  rp.freq_base = h.rope_freq_base;
  rp.freq_scale = h.rope_freq_scale;
  rp.freq_factors = w_.rope_freqs;
  rp.n_head = h.n_head;
  be_.rope(q, db, rp);
  rp.n_head = h.n_head_kv;
  be_.rope(k, db, rp);

  be_.kv_store(cache.k(il), cache.v(il), k, v, db);
  backend::AttentionParams ap;
  ap.n_head = h.n_head;
  ap.n_head_kv = h.n_head_kv;
  ap.head_dim_k = h.head_dim_k;
  ap.head_dim_v = h.head_dim_v;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim_k));
  be_.attention(att, q, cache.k(il), cache.v(il), db, ap);

  be_.matmul(xb, att, lw.wo);
  be_.add(x, x, xb);
}

void Model::ffn_block(int il, int64_t n) {
  const HParams& h = hp_;
  const LayerWeights& lw = w_.layers[static_cast<size_t>(il)];
  Tensor x = ws_.x.rows(0, n), xb = ws_.xb.rows(0, n);
  be_.rms_norm(xb, x, lw.ffn_norm, h.rms_eps);
  if (h.n_expert == 0) {
    Tensor g = ws_.hb.rows(0, n), u = ws_.hb2.rows(0, n);
    be_.matmul(g, xb, lw.ffn_gate);
    be_.matmul(u, xb, lw.ffn_up);
    be_.silu_mul(g, g, u);
    be_.matmul(xb, g, lw.ffn_down);
  } else {
    const int64_t used = h.n_expert_used;
    Tensor router = ws_.router.rows(0, n), ids = ws_.expert_ids.rows(0, n), ew = ws_.expert_w.rows(0, n);
    Tensor g = ws_.eg.rows(0, used * n), u = ws_.eu.rows(0, used * n), d = ws_.ed.rows(0, used * n);
    be_.matmul(router, xb, lw.ffn_gate_inp);
    be_.moe_route(ids, ew, router, /*normalize=*/true);
    be_.moe_matmul(g, xb, lw.ffn_gate_exps, ids);
    be_.moe_matmul(u, xb, lw.ffn_up_exps, ids);
    be_.silu_mul(g, g, u);
    be_.moe_matmul(d, g, lw.ffn_down_exps, ids);
    be_.moe_combine(xb, d, ew);
  }
  be_.add(x, x, xb);
}

Status Model::forward(backend::Batch batch, kv::KvCache& cache, std::vector<float>* logits) {
  batch.kv_block_size = cache.block_size();
  RF_RETURN_IF_ERROR(batch.validate(hp_.n_vocab, cache.n_blocks()));
  const int64_t n = batch.n_tokens();
  const int64_t n_out = batch.n_outputs();
  if (n == 0) return Status::error("model: empty batch");
  ensure_workspace(n, n_out);
  const auto db = be_.prepare_batch(std::move(batch));

  be_.embed(ws_.x.rows(0, n), w_.token_embd, *db);
  for (int il = 0; il < hp_.n_layer; ++il) {
    attention_block(il, *db, cache, n);
    ffn_block(il, n);
  }
  if (n_out > 0) {
    Tensor xo = ws_.xo.rows(0, n_out), lg = ws_.logits.rows(0, n_out);
    be_.get_rows(xo, ws_.x.rows(0, n), *db);
    be_.rms_norm(xo, xo, w_.output_norm, hp_.rms_eps);
    be_.matmul(lg, xo, w_.output);
    logits->resize(static_cast<size_t>(n_out * hp_.n_vocab));
    be_.to_host(logits->data(), lg, logits->size() * sizeof(float));
  } else {
    logits->clear();
  }
  be_.sync();
  return ok_status();
}

}  // namespace rf::model
