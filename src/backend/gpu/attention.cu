// Attention over the paged KV cache with an online softmax: one block per (query head, token); the context is
// walked in tiles of kTile positions (one per thread: its score), each tile rescales the running sum and the
// running output (each thread owns head_dim_v / kTile output dimensions). Scores live in shared memory only.
#include <string>

#include "backend/gpu/attention.h"

namespace rf::gpu {
namespace {

constexpr int kTile = 128;  // threads per block = context positions per tile (a multiple of both warp sizes)

template <typename T>
RF_DEVICE T block_reduce_max(T v, T* scratch) {
  v = warp_reduce_max(v);
  const int n_warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (lane_id() == 0) scratch[warp_id()] = v;
  __syncthreads();
  T total = scratch[0];
  for (int w = 1; w < n_warps; ++w) total = scratch[w] > total ? scratch[w] : total;
  __syncthreads();
  return total;
}

RF_DEVICE float load_kv(const void* cache, bool f16, int64_t i) {
  return f16 ? __half2float(static_cast<const __half*>(cache)[i]) : static_cast<const float*>(cache)[i];
}

template <int kVPer>
__global__ void __launch_bounds__(kTile) attention_kernel(AttentionArgs a) {
  extern __shared__ float q_s[];  // head_dim_k
  __shared__ float p_s[kTile];
  __shared__ int64_t slot_s[kTile];
  __shared__ float red[kMaxWarpsPerBlock];
  const int h = static_cast<int>(blockIdx.x);
  const int64_t t = blockIdx.y;
  const int tid = static_cast<int>(threadIdx.x);
  const int hk = h / (a.n_head / a.n_head_kv);
  const int32_t n_ctx = a.positions[t] + 1;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq[t]) * a.table_stride;

  const float* q = a.q + t * a.q_stride + static_cast<int64_t>(h) * a.head_dim_k;
  for (int i = tid; i < a.head_dim_k; i += kTile) q_s[i] = a.k_f16 ? __half2float(__float2half_rn(q[i])) : q[i];
  __syncthreads();

  float acc[kVPer];
#pragma unroll
  for (int i = 0; i < kVPer; ++i) acc[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  const int64_t k_off = static_cast<int64_t>(hk) * a.head_dim_k;
  const int64_t v_off = static_cast<int64_t>(hk) * a.head_dim_v;

  for (int32_t j0 = 0; j0 < n_ctx; j0 += kTile) {
    const int32_t j = j0 + tid;
    float s = -INFINITY;
    if (j < n_ctx) {
      const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
      slot_s[tid] = slot;
      const int64_t base = slot * a.k_stride + k_off;
      float dot = 0.0f;
      for (int i = 0; i < a.head_dim_k; ++i) dot += q_s[i] * load_kv(a.k_cache, a.k_f16, base + i);
      s = dot * a.scale;
    }
    const float m_new = fmaxf(m, block_reduce_max(s, red));
    const float corr = expf(m - m_new);  // 0 on the first tile (m = -inf)
    const float p = j < n_ctx ? expf(s - m_new) : 0.0f;
    p_s[tid] = p;
    l = l * corr + block_reduce_sum(p, red);  // its barriers also publish p_s and slot_s
    m = m_new;
    const int n_in_tile = min(kTile, n_ctx - j0);
#pragma unroll
    for (int i = 0; i < kVPer; ++i) acc[i] *= corr;
    for (int jj = 0; jj < n_in_tile; ++jj) {
      const float pj = p_s[jj];
      const int64_t base = slot_s[jj] * a.v_stride + v_off;
#pragma unroll
      for (int i = 0; i < kVPer; ++i) {
        const int d = tid + i * kTile;
        if (d < a.head_dim_v) acc[i] += pj * load_kv(a.v_cache, a.v_f16, base + d);
      }
    }
    __syncthreads();  // p_s / slot_s are rewritten by the next tile
  }
  float* o = a.out + t * a.out_stride + static_cast<int64_t>(h) * a.head_dim_v;
  const float inv = 1.0f / l;
#pragma unroll
  for (int i = 0; i < kVPer; ++i) {
    const int d = tid + i * kTile;
    if (d < a.head_dim_v) o[d] = acc[i] * inv;
  }
}

}  // namespace

Status attention(const AttentionArgs& a, gpuStream_t stream) {
  if (a.n_tokens == 0 || a.n_head == 0) return ok_status();
  if (a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0) {
    return Status::error("gpu attention: n_head " + std::to_string(a.n_head) + " is not a multiple of n_head_kv " +
                         std::to_string(a.n_head_kv));
  }
  if (a.head_dim_v > kMaxAttentionHeadDim || a.head_dim_v <= 0 || a.head_dim_k <= 0) {
    return Status::error("gpu attention: head sizes k " + std::to_string(a.head_dim_k) + " / v " +
                         std::to_string(a.head_dim_v) + " outside 1.." + std::to_string(kMaxAttentionHeadDim));
  }
  const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.n_tokens));
  const size_t shared = static_cast<size_t>(a.head_dim_k) * sizeof(float);
  const int per = (a.head_dim_v + kTile - 1) / kTile;
  if (per == 1) {
    attention_kernel<1><<<grid, kTile, shared, stream>>>(a);
  } else if (per == 2) {
    attention_kernel<2><<<grid, kTile, shared, stream>>>(a);
  } else {
    attention_kernel<4><<<grid, kTile, shared, stream>>>(a);
  }
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "attention launch");
}

}  // namespace rf::gpu
