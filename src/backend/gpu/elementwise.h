// Host launchers of the row-wise kernels (elementwise.cu): RMS norm, add, SiLU gate, rope, paged KV store, row
// gather and the MoE routing / combining. Strides are in elements of the tensor's type; all work is enqueued on
// `stream` and returns the launch status.
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "backend/gpu/matmul.h"
#include "backend/rope_yarn.h"
#include "core/status.h"

namespace rf::gpu {

// A 2-D F32 view: rows of ne0 floats, `stride` floats apart.
struct RowsF32 {
  float* data = nullptr;
  int64_t ne0 = 0;
  int64_t rows = 0;
  int64_t stride = 0;
};

// out = x / sqrt(mean(x^2) + eps) * weight (weight may be null). out may alias x. The norms' weight is a model
// weight, which no kernel writes: the kernels may read it before they wait for the kernel before them (compat.h).
// warp_size: the device's (DeviceInfo::warp_size), which picks the kernel's instantiation.
Status rms_norm(RowsF32 out, RowsF32 x, const float* weight, float eps, int warp_size, gpuStream_t stream);

// Fused residual add + RMS norm: sum = a + b (same shapes), then out = sum / rms(sum) * weight. sum may alias a,
// out may alias a or b. can_add_rms_norm(): whether the layout fits the fused kernel (16-byte aligned float4 rows).
bool can_add_rms_norm(RowsF32 sum, RowsF32 a, RowsF32 b, RowsF32 out, const float* weight);
Status add_rms_norm(RowsF32 sum, RowsF32 a, RowsF32 b, RowsF32 out, const float* weight, float eps, int warp_size,
                    gpuStream_t stream);

// out = a + b, b one row broadcast when b.rows == 1. out may alias a.
Status add(RowsF32 out, RowsF32 a, RowsF32 b, gpuStream_t stream);

// Norm / SiLU-gate kernels that also quantize their output for the int8 products that read it next (kind 32: Q8_0,
// 256: Q8_K, as quantize_int8_rows, bitwise the same codes): one launch instead of two. rms_norm_quant with add_a /
// add_b set is add_rms_norm's residual add (x = a + b) first; without, the plain rms_norm.
bool can_rms_norm_quant(RowsF32 out, RowsF32 x, const RowsF32* add_a, const RowsF32* add_b, const float* weight,
                        int kind);
Status rms_norm_quant(RowsF32 out, RowsF32 x, const RowsF32* add_a, const RowsF32* add_b, const float* weight,
                      float eps, int kind, const Int8Rows& rows, int warp_size, gpuStream_t stream);
Status silu_mul_quant(RowsF32 out, RowsF32 gate, RowsF32 up, int kind, const Int8Rows& rows, gpuStream_t stream);
// The warps rms_norm_quant gives one row of n_in when each holds one 256-element chunk (what matvec_int8_fused's
// norm reproduces), else 0.
int norm_row_warps(int64_t n_in, int warp_size);

// out = silu(gate) * up. out may alias gate.
Status silu_mul(RowsF32 out, RowsF32 gate, RowsF32 up, gpuStream_t stream);

// out row r = x row r * sigmoid(gate.data[r * gate.stride]) (gate: one value per row). out may alias x.
Status sigmoid_scale(RowsF32 out, RowsF32 x, RowsF32 gate, gpuStream_t stream);

// No padding bytes (decode graphs compare launch arguments byte for byte, see compat.h LaunchRecorder).
struct RopeArgs {
  int32_t neox = 0;  // bool: NEOX pairs (i, i + n_rot / 2), else adjacent pairs
  int n_head = 0;
  int head_dim = 0;
  int n_rot = 0;
  float theta_scale = 1.0f;  // freq_base^(-2 / n_rot), computed on the host as the CPU reference does
  float freq_scale = 1.0f;
  const float* freq_factors = nullptr;  // optional [n_rot / 2]
  float attn_factor = 1.0f;             // multiplies cos and sin
  // YaRN (backend/rope_yarn.h); ext_factor 0 turns it off. The launcher derives the correction range.
  float ext_factor = 0.0f;
  float freq_base = 10000.0f;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;
};
static_assert(sizeof(RopeArgs) == 8 + 12 * 4, "RopeArgs has padding bytes");

// The YaRN correction range of these arguments (zeros when ext_factor is 0).
backend::YarnRange rope_yarn_range(const RopeArgs& args);

// In place on x (one row of n_head * head_dim per token) at positions[t].
Status rope(RowsF32 x, const int32_t* positions, const RopeArgs& args, gpuStream_t stream);

// rope(q, aq) and rope(k, ak) (the same positions and YaRN range), then kv_store of k and v into their caches
// (rows of slots, k_stride / v_stride elements apart), in one launch; the same values as the three calls.
// can_rope_kv_store: whether the shapes fit (k rows of whole heads, one YaRN range).
bool can_rope_kv_store(RowsF32 q, const RopeArgs& aq, RowsF32 k, const RopeArgs& ak, RowsF32 v);
Status rope_kv_store(RowsF32 q, const RopeArgs& aq, RowsF32 k, const RopeArgs& ak, RowsF32 v, const int32_t* positions,
                     const int32_t* slots, void* k_cache, bool k_f16, int64_t k_stride, void* v_cache, bool v_f16,
                     int64_t v_stride, gpuStream_t stream);

// Writes row t of src into row slots[t] of cache (F32, or F16 when f16), for every token t < src.rows.
Status kv_store(void* cache, bool f16, int64_t cache_stride, RowsF32 src, const int32_t* slots, gpuStream_t stream);

// out row i = x row rows[i], i < out.rows.
Status gather_rows(RowsF32 out, RowsF32 x, const int32_t* rows, gpuStream_t stream);

// Per token (row of logits): softmax over the experts, the n_used best (ties: lower id first) with their
// probabilities, renormalised to sum 1 when normalize. ids / weights rows are ids_stride / w_stride apart.
Status moe_route(int32_t* ids, int64_t ids_stride, RowsF32 weights, RowsF32 logits, int n_used, bool normalize,
                 gpuStream_t stream);

// out row t = sum_j weights(j, t) * expert_out row (t * n_used + j).
Status moe_combine(RowsF32 out, RowsF32 expert_out, RowsF32 weights, gpuStream_t stream);

}  // namespace rf::gpu
