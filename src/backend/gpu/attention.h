// Host launcher of the attention kernel (attention.cu): causal softmax(q k^T * scale) v over the paged KV cache,
// grouped-query heads, one pass with an online softmax (flash-attention style: scores never reach GPU memory).
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "backend/gpu/elementwise.h"
#include "backend/gpu/matmul.h"
#include "backend/rope_yarn.h"
#include "core/status.h"

namespace rf::gpu {

// Fields ordered 8-byte, then 4-byte, with no padding bytes: decode graphs compare launch arguments byte for byte
// (compat.h LaunchRecorder), and padding would hold whatever the stack held.
struct AttentionArgs {
  const float* q = nullptr;  // [n_head * head_dim_k] per token, q_stride floats apart
  int64_t q_stride = 0;
  const void* k_cache = nullptr;  // rows (slots) of n_head_kv * head_dim_k, F32 or F16 (k_f16)
  int64_t k_stride = 0;           // elements between slots
  const void* v_cache = nullptr;
  int64_t v_stride = 0;
  float* out = nullptr;  // [n_head * head_dim_v] per token
  int64_t out_stride = 0;
  const int32_t* positions = nullptr;     // [n_tokens]: token t attends to positions 0..positions[t]
  const int32_t* seq = nullptr;           // [n_tokens]: its sequence
  const int32_t* block_tables = nullptr;  // [n_seq][table_stride] physical KV block ids
  int64_t table_stride = 0;
  int64_t n_tokens = 0;
  // Sequences in the batch (0: unknown). Batches with several tokens per sequence (prefill) take the query-tile
  // kernel, which reads each K/V tile once for up to 32 queries instead of once per query.
  int64_t n_seqs = 0;
  // Decode (one query per sequence) splits each token's context into chunks of kAttentionChunk positions, each a
  // block of its own, merged afterwards; max_ctx (the longest context of the batch, positions[t] + 1) sizes the
  // grid, and `partial` (attention_partial_floats(args) floats, nullptr when that is 0) holds the chunks' results.
  float* partial = nullptr;
  int32_t max_ctx = 0;
  int block_size = 16;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim_k = 0;
  int head_dim_v = 0;
  float scale = 1.0f;
  int warp_size = 32;     // the device's (DeviceInfo::warp_size)
  int32_t k_f16 = 0;      // bool: the K cache is F16 (else F32)
  int32_t v_f16 = 0;      // bool
  int32_t per_token = 0;  // bool: never the query-tile kernel: every token's output independent of the batch
  // bool: the query-tile kernel whatever the batch's shape, where it takes the heads (prefill_invariant); it too
  // gives every token the same bits in any batch (batch-invariant mode's prompt tokens).
  int32_t prefill = 0;
};
static_assert(sizeof(AttentionArgs) == 15 * 8 + 12 * 4, "AttentionArgs has padding bytes");

inline constexpr int kAttentionChunk = 128;

// Floats of `partial` the decode kernel needs for these arguments (0: every context fits one chunk).
size_t attention_partial_floats(const AttentionArgs& args);

// Largest head_dim_v the kernel supports.
inline constexpr int kMaxAttentionHeadDim = 512;

// rope + KV store done by decode attention itself (every sequence has one token in the batch, so no token reads
// another token's new K / V row): q and the token's k are rotated as rope_kv_store rotates them (rope.cuh), k and v
// go into the caches at the token's slot, and the scores and weighted sum take the new row from the block
// instead of the cache. args.q then holds q before rope; q and k in memory are left unrotated.
struct AttentionRope {
  const float* k = nullptr;  // [n_head_kv * head_dim_k] per token (before rope), k_stride floats apart
  int64_t k_stride = 0;
  const float* v = nullptr;  // [n_head_kv * head_dim_v] per token
  int64_t v_stride = 0;
  const int32_t* slots = nullptr;  // [n_tokens]: each token's cache slot
  RopeArgs q_rope, k_rope;
  backend::YarnRange yarn;  // of both (can_rope_kv_store: one YaRN range)
};
static_assert(sizeof(AttentionRope) == 5 * 8 + 2 * sizeof(RopeArgs) + 8, "AttentionRope has padding bytes");

// Whether args.prefill gets the query-tile kernel for these heads and caches: flash attention (CUDA: F16 caches,
// heads of 64 or 128), whose rows were checked to take the same bits in any batch (ops_parity_test).
bool prefill_invariant(const AttentionArgs& args);
// Whether this build has that kernel at all (CUDA, ROCMFORGE_GPU_FLASH not 0).
bool prefill_invariant_available();
// Whether attention(args, stream, rope) can fuse the rope + KV store: the decode kernel takes the batch.
bool attention_fuses_rope(const AttentionArgs& args);
// Whether attention(..., quant) can also quantize its output rows for the Q8_0-activation int8 products (kind 32,
// matmul.h): the decode kernel takes the batch and heads are whole 32-element blocks.
bool attention_fuses_quant(const AttentionArgs& args);

// F16 keys take a query rounded to F16 (as the CPU reference does). quant: the output rows also go to these int8
// rows (n_head * head_dim_v codes per token), with quantize_int8_rows' (kind 32) codes. Errors for unsupported
// head sizes, and for a rope or quant that attention_fuses_rope / attention_fuses_quant refuses.
Status attention(const AttentionArgs& args, gpuStream_t stream, const AttentionRope* rope = nullptr,
                 const Int8Rows* quant = nullptr);

}  // namespace rf::gpu
