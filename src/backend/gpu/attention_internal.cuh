// Internal to the attention kernels (attention.cu: the dispatch, prefill and the general kernel;
// attention_decode.cu: decode).
#pragma once

#include "backend/gpu/attention.h"
#include "backend/gpu/compat.h"
#include "backend/gpu/matmul.h"

namespace rf::gpu {

inline constexpr int kDecVec = 8;  // the decode kernel's dimensions per load (its query runs: decode_kc of them)

RF_DEVICE float load_kv(const void* cache, bool f16, int64_t i) {
  return f16 ? __half2float(static_cast<const __half*>(cache)[i]) : static_cast<const float*>(cache)[i];
}

// The decode kernel takes these heads (head_dim_k and head_dim_v up to 256, a context).
bool use_decode_kernel(const AttentionArgs& a);
// Its KC for these heads: head_dim_k rounded up to 64, 128 or 256 dimensions, in runs of kDecVec.
int decode_kc(const AttentionArgs& a);
// Decode: one query per token over its own context (attention() with use_decode_kernel).
Status launch_decode(const AttentionArgs& a, const AttentionRope* rope, const Int8Rows* quant, gpuStream_t stream);

}  // namespace rf::gpu
