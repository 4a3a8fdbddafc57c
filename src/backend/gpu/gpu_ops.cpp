// GpuBackend's ops: each Backend op checks its shapes and launches its kernel (matmul.h, elementwise.h, attention.h),
// or defers it so that the next op can fuse with it (decode matvec groups, norm / SiLU + quantize, add + norm,
// rope + KV store; see gpu_backend.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "backend/gpu/attention.h"
#include "backend/gpu/blas.h"
#include "backend/gpu/elementwise.h"
#include "backend/gpu/gpu_backend.h"
#include "backend/gpu/gpu_batch.h"
#include "backend/gpu/matmul.h"
#include "core/check.h"

namespace rf::gpu {

using backend::Tensor;
using quant::Type;

// Whether the float spans [p, p + n) and [q, q + m) share memory.
static bool spans_overlap(const void* p, int64_t n, const void* q, int64_t m) {
  const auto* a = static_cast<const float*>(p);
  const auto* b = static_cast<const float*>(q);
  return a != nullptr && b != nullptr && a < b + m && b < a + n;
}

void GpuBackend::flush_matvec_group() {
  PendingMatvec& g = pending_mv_;
  if (g.count == 0) return;
  const int count = g.count;
  g.count = 0;
  g.closed = false;
  // g.act and g.add_out / add_other stay as they are until the next group opens (matmul).
  const PendingAct& act = g.act;
  if (failed()) return;
  if (g.float_rows) {
    check(matvec_float_multi(g.w, g.out, count, g.x, info_.warp_size, stream_));
    return;
  }
  void* scratch = act_scratch((int8_matvec_scratch_bytes(g.n_in, g.n_tok) + sizeof(float) - 1) / sizeof(float));
  if (scratch == nullptr) return;  // act_scratch could not grow: the error is recorded, nothing is launched
  const int kind = int8_matvec_act_kind(g.type);
  const Int8Rows rows = int8_rows_layout(scratch, g.n_in, g.n_tok);
  bool quantize = g.quantize;
  if (act.op != ActOp::kNone) {
    FusedOp op;
    op.rows = rows;
    op.eps = act.eps;
    op.prologue = fused_prologue_of(act.op);
    op.norm_warps = norm_row_warps(g.n_in, info_.warp_size);
    op.x = rows_of(act.op == ActOp::kNorm ? act.x : act.a).data;
    op.y = act.op == ActOp::kNorm ? act.weight : rows_of(act.b).data;
    op.out = rows_of(act.out).data;
    for (int i = 0; i < count; ++i) {
      const bool add = g.add_out[i].data != nullptr;  // an add joined (add_joins_matvec)
      op.res[i] = add ? rows_of(g.add_other[i]).data : nullptr;
      op.sum[i] = add ? rows_of(g.add_out[i]).data : nullptr;
    }
    // Some blocks write the op's output while others still read its inputs: they must not share memory.
    const int64_t n = g.n_in;
    const bool disjoint = !spans_overlap(op.out, n, op.x, n) && !spans_overlap(op.out, n, op.y, n);
    const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    const bool vec = op.prologue != FusedPrologue::kSilu || (aligned(op.x) && aligned(op.y) && aligned(op.out));
    if (disjoint && vec && can_fuse_matvec(g.w, count, op.prologue, op.norm_warps, info_.warp_size)) {
      check(matvec_int8_fused(g.w, g.out, count, op, info_.multiprocessor_count, info_.warp_size, stream_));
      return;
    }
    launch_act_quant(act, kind, rows);  // the op alone, quantizing for the product
    quantize = false;
  }
  // A joined add of a one-weight launch (add_joins_matvec) is the launch's epilogue.
  ResidualAdd add;
  if (count == 1 && g.add_out[0].data != nullptr && matmul_policy().residual_add)
    add = {rows_of(g.add_other[0]).data, rows_of(g.add_out[0]).data};
  check(matvec_int8_multi(g.w, g.out, g.out_stride, count, g.x, g.x_stride, g.n_tok, scratch, info_.warp_size, stream_,
                          quantize, add.sum != nullptr ? &add : nullptr));
  for (int i = 0; i < count && !failed(); ++i) {
    if (g.add_out[i].data != nullptr && add.sum == nullptr) {
      check(gpu::add(rows_of(g.add_out[i]), rows_of(g.add_other[i]), RowsF32{g.out[i], g.w[i].n_out, 1, g.w[i].n_out},
                     stream_));
    }
  }
}

bool GpuBackend::add_joins_matvec(const Tensor& out, const Tensor& a, const Tensor& b) {
  PendingMatvec& g = pending_mv_;
  if (!fuse_ || g.count == 0 || g.float_rows || g.n_tok != 1 || failed()) return false;
  // A launch with its op fused (matvec_int8_fused) takes the add; so does a one-weight launch without one
  // (matvec_int8_rows' ResidualAdd: the output and down products). The fused kernel without an op (the output
  // product after attention) measured slower than the product plus the add + norm kernel on the H100 (7B Q4_K_M
  // tg128 394 -> 331-352 t/s).
  const MatmulPolicy& policy = matmul_policy();
  const bool fused = g.act.op != ActOp::kNone;  // attached only where MatmulPolicy::fused_matvec asks for it
  const bool residual = policy.residual_add && g.count == 1;  // taken by the product where the fused kernel is not
  if (!fused && !residual) return false;
  if (out.ne1 != 1 || a.ne1 != 1 || b.ne1 != 1 || a.ne0 != out.ne0 || b.ne0 != out.ne0 || out.type != Type::F32 ||
      a.type != Type::F32 || b.type != Type::F32) {
    return false;
  }
  for (int i = 0; i < g.count; ++i) {
    const bool is_b = b.data == g.out[i], is_a = a.data == g.out[i];
    if ((!is_a && !is_b) || g.w[i].n_out != out.ne0 || g.add_out[i].data != nullptr) continue;
    const Tensor& other = is_b ? a : b;
    // The sum may overwrite `other` (each element is read and written by one lane) but not the product's input or
    // another member's output.
    bool clash =
        spans_overlap(out.data, out.ne0, g.x, g.n_in) || spans_overlap(other.data, other.ne0, g.out[i], out.ne0);
    for (int j = 0; j < g.count; ++j) clash = clash || spans_overlap(out.data, out.ne0, g.out[j], g.w[j].n_out);
    if (clash || (fused && !residual &&
                  !can_fuse_matvec(g.w, g.count, fused_prologue_of(g.act.op), norm_row_warps(g.n_in, info_.warp_size),
                                   info_.warp_size))) {
      return false;
    }
    g.add_out[i] = out;
    g.add_other[i] = other;
    g.closed = true;           // a later product of the same rows would run before the add
    quantized_.src = nullptr;  // out changes
    return true;
  }
  return false;
}

void GpuBackend::flush_pending_add() {
  flush_attention(false);
  flush_matvec_group();
  flush_act_only();
  flush_ropes();
  flush_store();
  flush_add_only();
}

void GpuBackend::flush_store() {
  if (!pending_store_.active) return;
  pending_store_.active = false;
  if (!failed()) launch_rope_kv_store(pending_store_);
}

void GpuBackend::launch_rope_kv_store(const PendingStore& p) {
  const bool kf = p.k_cache.type == Type::F16, vf = p.v_cache.type == Type::F16;
  check(rope_kv_store(p.q, p.aq, p.k, p.ak, p.v, p.positions, p.slots, p.k_cache.data, kf,
                      static_cast<int64_t>(p.k_cache.nb1 / (kf ? 2 : 4)), p.v_cache.data, vf,
                      static_cast<int64_t>(p.v_cache.nb1 / (vf ? 2 : 4)), stream_));
}

void GpuBackend::flush_ropes() {
  const int n = pending_ropes_;
  pending_ropes_ = 0;
  for (int i = 0; i < n && !failed(); ++i) {
    check(gpu::rope(pending_rope_[i].x, pending_rope_[i].positions, pending_rope_[i].args, stream_));
  }
}

void GpuBackend::flush_act_only() {
  if (pending_act_.op == ActOp::kNone) return;
  const PendingAct p = pending_act_;
  pending_act_.op = ActOp::kNone;
  if (failed()) return;
  switch (p.op) {
    case ActOp::kNorm:
      check(gpu::rms_norm(rows_of(p.out), rows_of(p.x), p.weight, p.eps, info_.warp_size, stream_));
      break;
    case ActOp::kAddNorm:
      check(gpu::add_rms_norm(rows_of(p.x), rows_of(p.a), rows_of(p.b), rows_of(p.out), p.weight, p.eps,
                              info_.warp_size, stream_));
      break;
    case ActOp::kSiluMul: check(gpu::silu_mul(rows_of(p.out), rows_of(p.a), rows_of(p.b), stream_)); break;
    case ActOp::kNone: break;
  }
}

void GpuBackend::launch_act_quant(const PendingAct& p, int kind, const Int8Rows& rows) {
  const RowsF32 a = rows_of(p.a), b = rows_of(p.b);
  if (p.op == ActOp::kSiluMul) {
    check(silu_mul_quant(rows_of(p.out), a, b, kind, rows, stream_));
  } else {
    const bool add = p.op == ActOp::kAddNorm;
    check(rms_norm_quant(rows_of(p.out), rows_of(p.x), add ? &a : nullptr, add ? &b : nullptr, p.weight, p.eps, kind,
                         rows, info_.warp_size, stream_));
  }
}

GpuBackend::PendingAct GpuBackend::fuse_or_flush_act(const Tensor& x, int kind, bool attach) {
  const PendingAct p = pending_act_;
  if (p.op == ActOp::kNone) return {};
  const bool produced_x = p.out.data == x.data && p.out.ne0 == x.ne0 && p.out.ne1 == x.ne1 && p.out.nb1 == x.nb1;
  const RowsF32 a = rows_of(p.a), b = rows_of(p.b);
  const bool fits = p.op == ActOp::kSiluMul
                        ? x.ne0 % kind == 0 && x.ne1 <= 65535
                        : can_rms_norm_quant(rows_of(p.out), rows_of(p.x), p.op == ActOp::kAddNorm ? &a : nullptr,
                                             p.op == ActOp::kAddNorm ? &b : nullptr, p.weight, kind);
  if (!produced_x || !fits || failed()) {
    flush_act_only();
    return {};
  }
  pending_act_.op = ActOp::kNone;  // before act_scratch, which may flush pending work when it grows
  if (attach && p.op != ActOp::kAddNorm) return p;  // launched with the product
  void* scratch = act_scratch((int8_matvec_scratch_bytes(x.ne0, x.ne1) + sizeof(float) - 1) / sizeof(float));
  if (scratch == nullptr) return {};  // the failed allocation is recorded; later ops are skipped
  launch_act_quant(p, kind, int8_rows_layout(scratch, x.ne0, x.ne1));
  quantized_ = QuantizedRows{x.data, x.ne0, x.ne1, rows_of(x).stride, kind};
  return {};
}

void GpuBackend::flush_add_only() {
  if (!pending_add_.active) return;
  pending_add_.active = false;
  if (failed()) return;
  check(gpu::add(rows_of(pending_add_.out), rows_of(pending_add_.a), rows_of(pending_add_.b), stream_));
}

void GpuBackend::embed(Tensor out, Tensor table, const backend::DeviceBatch& batch) {
  if (!before_op()) return;
  const GpuDeviceBatch& b = gpu_batch(batch);
  const RowsF32 o = rows_of(out);
  RF_CHECK(out.ne0 == table.ne0 && out.ne1 == b.n_tokens());
  check(embed_rows(view_of(table), b.tokens(), b.n_tokens(), o.data, o.stride, stream_));
}

void GpuBackend::get_rows(Tensor out, Tensor x, const backend::DeviceBatch& batch) {
  if (!before_op()) return;
  const GpuDeviceBatch& b = gpu_batch(batch);
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == b.n_outputs());
  check(gather_rows(rows_of(out), rows_of(x), b.outputs(), stream_));
}

void GpuBackend::matmul(Tensor out, Tensor x, Tensor w) {
  if (pending_attn_.active) {  // its output quantized for this product when that is what the product reads
    const bool int8 = has_int8_matvec(w.type, x.ne1) || has_mmq_matmul(w.type);
    flush_attention(x.data == pending_attn_.out.data && x.ne0 == pending_attn_.out.ne0 &&
                    x.ne1 == pending_attn_.out.ne1 && x.nb1 == pending_attn_.out.nb1 && int8 &&
                    int8_matvec_act_kind(w.type) == 32);
  }
  flush_add_only();
  RF_CHECK_MSG(x.ne0 == w.ne0 && out.ne0 == w.ne1 && out.ne1 == x.ne1 && out.type == Type::F32,
               "gpu matmul: shapes x [" + std::to_string(x.ne0) + ", " + std::to_string(x.ne1) + "] w [" +
                   std::to_string(w.ne0) + ", " + std::to_string(w.ne1) + "] out [" + std::to_string(out.ne0) + ", " +
                   std::to_string(out.ne1) + "]");
  const RowsF32 xr = rows_of(x);
  const RowsF32 o = rows_of(out);
  // Whether out overlaps x (first row start to last row end): then x changes, and its quantized rows with it.
  const auto* ob = static_cast<const uint8_t*>(out.data);
  const auto* xb = static_cast<const uint8_t*>(x.data);
  const size_t x_span = static_cast<size_t>((x.ne1 - 1) * xr.stride + x.ne0) * sizeof(float);
  const size_t o_span = static_cast<size_t>((out.ne1 - 1) * o.stride + out.ne0) * sizeof(float);
  const bool overlap = x.ne1 > 0 && ob < xb + x_span && xb < ob + o_span;
  // The rows this product quantizes (for `kind` weights), reusable by the next product of the same rows unless
  // out overwrites them.
  const auto rows_for = [&](int kind) { return QuantizedRows{x.data, x.ne0, x.ne1, xr.stride, kind}; };
  const auto remember_quantized = [&](int kind) {
    quantized_ = rows_for(kind);
    if (overlap) quantized_.src = nullptr;
  };
  const auto holds_quantized = [&](int kind) { return quantized_ == rows_for(kind); };
  const MatmulPolicy& policy = matmul_policy();
  if (!batch_invariant_ && !capturing_ && policy.blas_min_tokens > 0 && x.ne1 >= policy.blas_min_tokens &&
      BlasContext::supports(w.type, w.ne0) && blas() != nullptr) {
    // Long batches: one vendor GEMM. Rows already converted for the previous product (q / k / v, gate / up) are
    // not converted again; without scratch memory the kernels below take over.
    flush_act_only();
    flush_pending_add();
    if (failed()) return;
    const int kind = kBlasRowsKind + static_cast<int>(activation_type(w.type));
    const Expected<bool> done = blas_->matmul(view_of(w), xr.data, xr.stride, x.ne1, o.data, o.stride,
                                              holds_quantized(kind));
    if (!done.ok()) {
      check(done.status());
      return;
    }
    if (*done) {
      remember_quantized(kind);
      return;
    }
  }
  // Batch-invariant mode: each token's product takes one kernel whatever its batch, by the token's kind
  // (Batch::generated): the int8 matrix-vector product for generated tokens, matmul_mmq for prompt tokens (both
  // bitwise the same per token in any batch); the matrix-vector product for all where mmq cannot take the weight
  // (HIP builds, rows not whole 256-element spans) or policy.invariant_matvec asks for it. A batch of both kinds
  // runs each run of rows of one kind through its kernel. With generated_by_matvec_ false, mmq takes both kinds.
  const std::vector<KindRun>* runs = products_by_kind() ? kind_runs(x.ne1) : nullptr;
  const bool all_generated = runs != nullptr && runs->size() == 1 && runs->front().generated;
  const bool int8_any = batch_invariant_ && has_int8_matvec(w.type, 1) && x.ne1 <= 65535 &&
                        (policy.invariant_matvec || all_generated || !has_mmq_matmul(w.type) || x.ne0 % 256 != 0);
  const bool int8 = int8_any || has_int8_matvec(w.type, x.ne1);
  const int64_t mmq_min = batch_invariant_ ? 1 : policy.mmq_min_tokens;
  const bool use_mmq = !int8_any && x.ne1 >= mmq_min && x.ne1 <= policy.mmq_max_tokens && has_mmq_matmul(w.type) &&
                       x.ne0 % 256 == 0;
  PendingAct attached;  // a norm or SiLU gate the single-token product's launch computes (matvec_int8_fused)
  if (fuse_ && (use_mmq || int8)) {
    attached =
        fuse_or_flush_act(x, int8_matvec_act_kind(w.type), int8 && !use_mmq && x.ne1 == 1 && fused_matvec_for(w.type));
  } else {
    flush_act_only();
  }
  if (use_mmq) {
    // Batches: integer tensor-core product. Rows already quantized for the previous product (q / k / v, gate / up)
    // are not quantized again.
    flush_pending_add();
    if (failed()) return;
    const int kind = int8_matvec_act_kind(w.type);
    void* scratch = act_scratch((int8_matvec_scratch_bytes(x.ne0, x.ne1) + sizeof(float) - 1) / sizeof(float));
    if (scratch == nullptr) return;  // the failed allocation is recorded
    const Int8Rows rows = int8_rows_layout(scratch, x.ne0, x.ne1);
    if (!holds_quantized(kind)) {
      check(quantize_int8_rows(kind, xr.data, xr.stride, x.ne0, x.ne1, rows, info_.warp_size, stream_));
    }
    if (runs != nullptr && runs->size() > 1 && x.ne1 <= 65535) {  // both kinds (int8_any is false: all int8 types)
      const WeightView wv = view_of(w);
      for (const KindRun& r : *runs) {
        float* dst = o.data + r.begin * o.stride;
        const Int8Rows from = rows_from(rows, r.begin);
        check(r.generated ? matvec_int8_rows(&wv, &dst, &o.stride, 1, from, r.end - r.begin, info_.warp_size, stream_)
                          : matmul_mmq(wv, from, r.end - r.begin, dst, o.stride, stream_));
      }
    } else {
      check(matmul_mmq(view_of(w), rows, x.ne1, o.data, o.stride, stream_));
    }
    remember_quantized(kind);
    return;
  }
  // Single-token products of one input wait for the next op, so that those of the same rows (q / k / v, gate / up)
  // run as one launch: int8 weights (the rows quantized once), and F16 / BF16 ones, which read the rows as floats
  // and round them in the kernel (no rounding launch).
  // Batch-invariant backends route F16 / BF16 tokens by kind as the int8 ones: prompt tokens take matmul_mmf,
  // generated tokens the float matrix-vector kernels (a token's sums are the same steps in the 1-, 2-, 4-, 8-token
  // and staged kernels); every token takes matmul_mmf without kind routing, the matrix-vector kernels with
  // policy.invariant_matvec. The single-token decode is then the grouped kernel that rounds in its prologue.
  const bool mmf_weight = batch_invariant_ && mmf_fits(view_of(w));
  const bool float_by_matvec = mmf_weight && (policy.invariant_matvec || all_generated);
  const bool mmf = batch_invariant_ ? mmf_weight && !float_by_matvec : has_mmf_matmul(view_of(w), x.ne1);
  const bool float_rows =
      !int8 && !mmf && !overlap && has_float_matvec_multi(view_of(w), xr.data, x.ne1);  // reads x as is
  if (int8 || float_rows) {
    PendingMatvec& g = pending_mv_;
    // ROCMFORGE_GPU_GROUP_MATVEC=0 launches each one alone (for measurements).
    static const bool grouping = [] {
      const char* v = std::getenv("ROCMFORGE_GPU_GROUP_MATVEC");
      return v == nullptr || v[0] != '0';
    }();
    const bool same_kind = float_rows ? g.float_rows && g.type == w.type
                                      : !g.float_rows && int8_matvec_act_kind(g.type) == int8_matvec_act_kind(w.type);
    const bool joins = grouping && g.count > 0 && !g.closed && g.count < 3 && g.x == xr.data && g.n_in == x.ne0 &&
                       g.n_tok == x.ne1 && g.x_stride == xr.stride && same_kind;
    if (!joins || attached.op != ActOp::kNone) flush_matvec_group();  // an attached act starts its own group
    const int kind = float_rows ? 0 : int8_matvec_act_kind(w.type);
    if (g.count == 0) {
      g.act = attached;
      for (int i = 0; i < 3; ++i) g.add_out[i] = g.add_other[i] = {};
      // q/k/v and gate/up read the same row: quantize it once while nothing has written it since.
      g.quantize = !float_rows && !holds_quantized(kind) && g.act.op == ActOp::kNone;
      g.float_rows = float_rows;
      g.x = xr.data;
      g.x_stride = xr.stride;
      g.n_in = x.ne0;
      g.n_tok = x.ne1;
      g.type = w.type;
    }
    g.w[g.count] = view_of(w);
    g.out[g.count] = o.data;
    g.out_stride[g.count] = o.stride;
    ++g.count;
    g.closed = g.closed || overlap;
    if (float_rows) {
      quantized_.src = nullptr;  // out may hold rows quantized before (as every other op, before_op)
    } else {
      remember_quantized(kind);
    }
    return;
  }
  if (mmf) {
    // F16 / BF16: the rows rounded to the weights' 16-bit format (once for products of the same rows: q / k / v,
    // gate / up), then the tensor-core streaming product. A batch of both kinds also rounds its generated runs'
    // rows as floats after them, for their matrix-vector kernels.
    const bool mixed = runs != nullptr && runs->size() > 1;
    const int kind = kMmfRowsKind + static_cast<int>(activation_type(w.type));
    const bool held = holds_quantized(kind);
    before_op();
    const int64_t stride = (x.ne0 + 7) / 8 * 8;
    const size_t floats16 = static_cast<size_t>((stride * x.ne1 + 7) / 8 * 4);  // 16-byte multiple
    const size_t floats32 = mixed ? static_cast<size_t>(act_row_stride(x.ne0) * x.ne1) : 0;
    const size_t floats_before = act_floats_;
    float* const scratch = act_scratch(floats16 + floats32);
    if (scratch == nullptr) return;  // the failed allocation is recorded
    auto* act16 = reinterpret_cast<uint16_t*>(scratch);
    if (!held || act_floats_ != floats_before) {  // a grown scratch lost the rows it held
      check(round_activations_16bit(activation_type(w.type), xr.data, xr.stride, x.ne0, x.ne1, act16, stride,
                                    stream_));
    }
    if (!mixed) {
      check(matmul_mmf(view_of(w), act16, stride, x.ne1, o.data, o.stride, stream_));
    } else {
      const WeightView wv = view_of(w);
      const int64_t as = act_row_stride(x.ne0);
      for (const KindRun& r : *runs) {
        float* dst = o.data + r.begin * o.stride;
        const int64_t n = r.end - r.begin;
        if (!r.generated) {
          check(matmul_mmf(wv, act16 + r.begin * stride, stride, n, dst, o.stride, stream_));
          continue;
        }
        float* const act32 = scratch + floats16 + r.begin * as;
        check(round_activations(activation_type(w.type), xr.data + r.begin * xr.stride, xr.stride, x.ne0, n, act32,
                                stream_));
        check(gpu::matmul(wv, act32, n, dst, o.stride, info_.warp_size, stream_, true));
      }
    }
    remember_quantized(kind);
    return;
  }
  before_op();
  float* act = act_scratch(static_cast<size_t>(act_row_stride(x.ne0) * std::max<int64_t>(x.ne1, 1)));
  if (act == nullptr) return;  // the failed allocation is recorded
  check(round_activations(activation_type(w.type), xr.data, xr.stride, x.ne0, x.ne1, act, stream_));
  // Batch-invariant: the matrix-vector kernels for every batch size (F32 weights, and F16 / BF16 where matmul_mmf
  // cannot take them: HIP builds), whose sums for a token are the single-token kernels' steps.
  check(gpu::matmul(view_of(w), act, x.ne1, o.data, o.stride, info_.warp_size, stream_, batch_invariant_));
}

BlasContext* GpuBackend::blas() {
  if (!blas_tried_) {
    blas_tried_ = true;
    auto b = BlasContext::create(stream_);
    if (b.ok()) {
      blas_ = std::move(*b);
    } else {
#if defined(RF_GPU_CUDA)  // HIP builds have no BLAS by design: nothing to report
      std::fprintf(stderr, "rocmforge: %s: long batches use the built-in kernels\n", b.error_message().c_str());
#endif
    }
  }
  return blas_.get();
}

void GpuBackend::moe_matmul(Tensor out, Tensor x, Tensor w, Tensor ids) {
  if (!before_op()) return;
  const int64_t n_used = ids.ne0;
  const int64_t n = ids.ne1;
  RF_CHECK(ids.type == Type::I32 && out.ne1 == n_used * n && out.ne0 == w.ne1 && x.ne0 == w.ne0);
  RF_CHECK(x.ne1 == n || x.ne1 == n_used * n);
  const RowsF32 xr = rows_of(x);
  const RowsF32 o = rows_of(out);
  float* act = act_scratch(static_cast<size_t>(act_row_stride(x.ne0) * std::max<int64_t>(x.ne1, 1)));
  check(round_activations(activation_type(w.type), xr.data, xr.stride, x.ne0, x.ne1, act, stream_));
  check(gpu::moe_matmul(view_of(w), act, x.ne1 == n, static_cast<const int32_t*>(ids.data),
                        static_cast<int64_t>(ids.nb1 / sizeof(int32_t)), static_cast<int>(n_used), n, o.data, o.stride,
                        info_.warp_size, stream_));
}

void GpuBackend::rms_norm(Tensor out, Tensor x, Tensor weight, float eps) {
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == x.ne1 && (weight.empty() || weight.ne0 == x.ne0));
  RF_CHECK(weight.empty() || weight.type == Type::F32);
  if (failed()) {
    before_op();
    return;
  }
  const auto* w = static_cast<const float*>(weight.data);
  const PendingAdd& p = pending_add_;
  if (p.active && p.out.data == x.data && p.out.ne0 == x.ne0 && p.out.ne1 == x.ne1 && p.out.nb1 == x.nb1 &&
      can_add_rms_norm(rows_of(x), rows_of(p.a), rows_of(p.b), rows_of(out), w)) {
    pending_add_.active = false;  // x = a + b and out = norm(x) in one kernel, launched by the next op
    quantized_.src = nullptr;
    pending_act_ = PendingAct{ActOp::kAddNorm, out, x, p.a, p.b, w, eps};
    return;
  }
  if (!before_op()) return;
  pending_act_ = PendingAct{ActOp::kNorm, out, x, {}, {}, w, eps};
}

void GpuBackend::add(Tensor out, Tensor a, Tensor b) {
  if (add_joins_matvec(out, a, b)) return;  // the product's epilogue adds
  if (!before_op()) return;
  RF_CHECK(a.ne0 == b.ne0 && out.ne0 == a.ne0 && out.ne1 == a.ne1 && (b.ne1 == a.ne1 || b.ne1 == 1));
  if (b.ne1 == a.ne1) {  // deferred: the next op decides whether it fuses (see rms_norm)
    pending_add_ = PendingAdd{true, out, a, b};
    return;
  }
  check(gpu::add(rows_of(out), rows_of(a), rows_of(b), stream_));
}

void GpuBackend::silu_mul(Tensor out, Tensor gate, Tensor up) {
  if (!before_op()) return;
  RF_CHECK(gate.ne0 == up.ne0 && gate.ne1 == up.ne1 && out.ne0 == gate.ne0 && out.ne1 == gate.ne1);
  pending_act_ = PendingAct{ActOp::kSiluMul, out, {}, gate, up, nullptr, 0.0f};  // launched by the next op
}

void GpuBackend::sigmoid_scale(Tensor out, Tensor x, Tensor gate) {
  if (!before_op()) return;
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == x.ne1 && gate.ne0 == 1 && gate.ne1 == x.ne1 && gate.type == Type::F32);
  check(gpu::sigmoid_scale(rows_of(out), rows_of(x), rows_of(gate), stream_));
}

void GpuBackend::rope(Tensor x, const backend::DeviceBatch& batch, const backend::RopeParams& p) {
  const GpuDeviceBatch& b = gpu_batch(batch);
  // A second rope (k after q) of the same batch joins the first one; anything else first runs what is pending.
  const bool joins = fuse_ && pending_ropes_ == 1 && pending_rope_[0].positions == b.positions();
  if (!joins && !before_op()) return;
  if (joins) quantized_.src = nullptr;  // x changes
  RF_CHECK(x.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim && x.ne1 == b.n_tokens());
  RF_CHECK(p.n_rot > 0 && p.n_rot <= p.head_dim && p.n_rot % 2 == 0);
  RF_CHECK(p.freq_factors.empty() || (p.freq_factors.ne0 >= p.n_rot / 2 && p.freq_factors.type == Type::F32));
  RopeArgs a;
  a.neox = p.mode == backend::RopeMode::kNeox;
  a.n_head = p.n_head;
  a.head_dim = p.head_dim;
  a.n_rot = p.n_rot;
  a.theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  a.freq_scale = p.freq_scale;
  a.freq_factors = static_cast<const float*>(p.freq_factors.data);
  RF_CHECK(p.ext_factor == 0.0f || p.n_ctx_orig > 0);
  a.attn_factor = p.attn_factor;
  a.ext_factor = p.ext_factor;
  a.freq_base = p.freq_base;
  a.beta_fast = p.beta_fast;
  a.beta_slow = p.beta_slow;
  a.n_ctx_orig = p.n_ctx_orig;
  pending_rope_[pending_ropes_++] = PendingRope{rows_of(x), a, b.positions()};  // launched by the next op
}

void GpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, const backend::DeviceBatch& batch) {
  const GpuDeviceBatch& b = gpu_batch(batch);
  RF_CHECK(k.ne0 == k_cache.ne0 && v.ne0 == v_cache.ne0 && k.ne1 == b.n_tokens() && v.ne1 == b.n_tokens());
  const auto cache_ok = [](const Tensor& c) { return c.type == Type::F16 || c.type == Type::F32; };
  const RowsF32 kr = rows_of(k);
  if (pending_ropes_ == 2 && pending_rope_[1].x.data == kr.data && pending_rope_[1].x.rows == kr.rows &&
      pending_rope_[1].positions == b.positions() && cache_ok(k_cache) && cache_ok(v_cache) && !failed() &&
      can_rope_kv_store(pending_rope_[0].x, pending_rope_[0].args, kr, pending_rope_[1].args, rows_of(v))) {
    pending_ropes_ = 0;  // rope q, rope k and this store in one launch (or in decode attention's, below)
    const PendingStore p{true,          pending_rope_[0].x, kr,      rows_of(v), pending_rope_[0].args,
                         pending_rope_[1].args, b.positions(), b.slots(), k_cache, v_cache};
    if (b.one_token_per_seq()) {
      pending_store_ = p;  // attention() takes it, or the next other op launches it
    } else {
      launch_rope_kv_store(p);
    }
    return;
  }
  if (!before_op()) return;
  for (auto [cache, src] : {std::pair{k_cache, k}, std::pair{v_cache, v}}) {
    RF_CHECK(cache.type == Type::F16 || cache.type == Type::F32);
    const bool f16 = cache.type == Type::F16;
    const size_t elem = f16 ? 2 : 4;
    check(gpu::kv_store(cache.data, f16, static_cast<int64_t>(cache.nb1 / elem), rows_of(src), b.slots(), stream_));
  }
}

void GpuBackend::attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const backend::DeviceBatch& batch,
                           const backend::AttentionParams& p) {
  const GpuDeviceBatch& b = gpu_batch(batch);
  // The pending rope + KV store of this q and these caches (kv_store): taken over by the decode kernel below.
  const PendingStore store = pending_store_;
  const bool own_store = store.active && store.q.data == static_cast<const float*>(q.data) &&
                         store.k_cache.data == k_cache.data &&
                         store.v_cache.data == v_cache.data && store.positions == b.positions();
  if (own_store) pending_store_.active = false;
  if (!before_op()) return;
  RF_CHECK(p.n_head > 0 && p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0);
  RF_CHECK(q.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim_k && q.ne1 == b.n_tokens());
  RF_CHECK(out.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim_v && out.ne1 == b.n_tokens());
  RF_CHECK(k_cache.ne0 == static_cast<int64_t>(p.n_head_kv) * p.head_dim_k);
  RF_CHECK(v_cache.ne0 == static_cast<int64_t>(p.n_head_kv) * p.head_dim_v);
  const RowsF32 qr = rows_of(q);
  const RowsF32 o = rows_of(out);
  AttentionArgs a;
  a.q = qr.data;
  a.q_stride = qr.stride;
  a.k_cache = k_cache.data;
  a.k_f16 = k_cache.type == Type::F16;
  a.k_stride = static_cast<int64_t>(k_cache.nb1 / (a.k_f16 ? 2 : 4));
  a.v_cache = v_cache.data;
  a.v_f16 = v_cache.type == Type::F16;
  a.v_stride = static_cast<int64_t>(v_cache.nb1 / (a.v_f16 ? 2 : 4));
  a.out = o.data;
  a.out_stride = o.stride;
  a.positions = b.positions();
  a.seq = b.seq();
  a.block_tables = b.tables();
  a.table_stride = b.table_stride();
  a.block_size = b.host().kv_block_size;
  a.n_tokens = b.n_tokens();
  a.n_head = p.n_head;
  a.n_head_kv = p.n_head_kv;
  a.head_dim_k = p.head_dim_k;
  a.head_dim_v = p.head_dim_v;
  a.scale = p.scale;
  a.n_seqs = static_cast<int64_t>(b.host().block_tables.size());
  a.warp_size = info_.warp_size;
  a.per_token = batch_invariant_;
  // Rounded up to whole chunks (what the kernels use it for), so that decode steps repeat their launches byte for
  // byte for 128 steps and replay their graph.
  a.max_ctx = (b.max_ctx() + kAttentionChunk - 1) / kAttentionChunk * kAttentionChunk;
  // Batch-invariant mode with tokens routed by kind (as the products are): prompt tokens take the prefill kernel
  // where it gives every token the same bits in any batch (prefill_invariant), generated tokens the decode kernel.
  const std::vector<KindRun>* runs = attention_by_kind() && prefill_invariant(a) ? kind_runs(b.n_tokens()) : nullptr;
  if (runs != nullptr && !(runs->size() == 1 && runs->front().generated)) {
    if (own_store) launch_rope_kv_store(store);  // every token's K / V row is in the cache before any reads it
    attention_runs(a, *runs);
    return;
  }
  PendingAttention pa{true, a, false, AttentionRope{}, out};
  if (own_store && attention_fuses_rope(a)) {
    pa.rope = true;
    pa.r.k = store.k.data;
    pa.r.k_stride = store.k.stride;
    pa.r.v = store.v.data;
    pa.r.v_stride = store.v.stride;
    pa.r.slots = store.slots;
    pa.r.q_rope = store.aq;
    pa.r.k_rope = store.ak;
    pa.r.yarn = rope_yarn_range(store.aq);
  } else if (own_store) {
    launch_rope_kv_store(store);  // another kernel takes this batch: rope + store first
  }
  pending_attn_ = pa;
  if (!fuse_ || !attention_fuses_quant(a)) flush_attention(false);  // else the next op decides
}

void GpuBackend::attention_runs(const AttentionArgs& a, const std::vector<KindRun>& runs) {
  for (const KindRun& r : runs) {
    AttentionArgs s = a;
    s.q += r.begin * a.q_stride;
    s.out += r.begin * a.out_stride;
    s.positions += r.begin;
    s.seq += r.begin;
    s.n_tokens = r.end - r.begin;
    s.per_token = r.generated ? 1 : 0;
    s.prefill = r.generated ? 0 : 1;
    const size_t partial = attention_partial_floats(s);
    s.partial = partial > 0 ? act_scratch(partial) : nullptr;
    if (partial > 0 && s.partial == nullptr) return;  // the failed allocation is recorded
    check(gpu::attention(s, stream_));
  }
}

void GpuBackend::flush_attention(bool quantize) {
  if (!pending_attn_.active) return;
  pending_attn_.active = false;
  if (failed()) return;
  AttentionArgs a = pending_attn_.args;
  const int64_t n_in = pending_attn_.out.ne0, n_tok = pending_attn_.out.ne1;
  // The scratch holds the quantized rows first (where the product looks for them), then the chunks' partials.
  const size_t quant_floats =
      quantize ? (int8_matvec_scratch_bytes(n_in, n_tok) + 4 * sizeof(float) - 1) / (4 * sizeof(float)) * 4 : 0;
  const size_t partial_floats = attention_partial_floats(a);
  float* scratch = nullptr;
  if (quant_floats + partial_floats > 0) {
    scratch = act_scratch(quant_floats + partial_floats);
    if (scratch == nullptr) return;  // the failed allocation is recorded
  }
  a.partial = partial_floats > 0 ? scratch + quant_floats : nullptr;
  const Int8Rows rows = quantize ? int8_rows_layout(scratch, n_in, n_tok) : Int8Rows{};
  check(gpu::attention(a, stream_, pending_attn_.rope ? &pending_attn_.r : nullptr, quantize ? &rows : nullptr));
  if (quantize) quantized_ = QuantizedRows{a.out, n_in, n_tok, a.out_stride, 32};
}

void GpuBackend::moe_route(Tensor ids, Tensor weights, Tensor logits, bool normalize) {
  if (!before_op()) return;
  const int64_t n_used = ids.ne0;
  RF_CHECK(ids.type == Type::I32 && weights.ne0 == n_used && ids.ne1 == logits.ne1 && weights.ne1 == logits.ne1 &&
           n_used <= logits.ne0);
  check(gpu::moe_route(static_cast<int32_t*>(ids.data), static_cast<int64_t>(ids.nb1 / sizeof(int32_t)),
                       rows_of(weights), rows_of(logits), static_cast<int>(n_used), normalize, stream_));
}

void GpuBackend::moe_combine(Tensor out, Tensor expert_out, Tensor weights) {
  if (!before_op()) return;
  RF_CHECK(expert_out.ne1 == weights.ne0 * out.ne1 && expert_out.ne0 == out.ne0 && weights.ne1 == out.ne1);
  check(gpu::moe_combine(rows_of(out), rows_of(expert_out), rows_of(weights), stream_));
}

Expected<std::unique_ptr<backend::Backend>> create_gpu_backend(const backend::BackendOptions& /*options*/) {
  Expected<std::unique_ptr<GpuBackend>> be = GpuBackend::create(0);
  if (!be.ok()) return be.status();
  return std::unique_ptr<backend::Backend>(std::move(*be));
}

}  // namespace rf::gpu
