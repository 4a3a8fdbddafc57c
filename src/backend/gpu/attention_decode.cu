// Decode attention (attention.h; attention() picks it for one query per sequence): each token's query against
// its own context in the paged KV cache, in chunks of kAttentionChunk positions merged in chunk order, the query
// heads of one KV head sharing its K / V reads, with rope + KV store and the output's int8 quantization fused.
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "backend/gpu/act_quant.cuh"
#include "backend/gpu/attention_internal.cuh"
#include "backend/gpu/rope.cuh"

namespace rf::gpu {
namespace {

// Decode: one block of kDecThreads threads per (KV head, slice of up to kGroup of its query heads, token, chunk of
// kAttentionChunk context positions). A decode step runs one such kernel per layer on a handful of blocks, so what
// counts is the length of each thread's chain of dependent steps, not the arithmetic:
//  1. kPosThreads threads per position of the chunk: each takes every kPosThreads-th 8-dimension run of the K row
//     (16-byte loads, all in flight together) against the block's query heads (shared memory), in four partial
//     sums; the threads of a position then add their sums: one score per head;
//  2. the chunk's maximum per head, and each position's weight exp(score - max), block-wide;
//  3. the threads split into groups of head_dim_v / 8: a thread sums weight x V over 8 dimensions of every
//     groups-th position, in position order; the groups are then added in group order.
// A token whose context spans several chunks leaves one (max, sum, unnormalized output) per chunk in `partial`,
// merged in chunk order by attention_merge_kernel. What a block and a thread take depends on the token's own
// context only, so a token's output does not depend on the rest of the batch. That block-wide kernel
// (attention_decode_kernel) takes F32 caches and odd head sizes; F16 caches with heads of 64, 128 or 256 take
// attention_lean_kernel (same blocks, a warp per position subset, one barrier), which is faster.
constexpr int kDecThreads = 256;
constexpr int kPosThreads = kDecThreads / kAttentionChunk;  // threads per position in step 1
constexpr int kGroup = 4;                                   // query heads of one KV head per block, at most
constexpr int64_t kDecSmallGrid = 128;                      // fewer (KV head, chunk, token) blocks: one head each
constexpr int kMaxDecodeDim = 256;                          // larger heads take attention_kernel
constexpr int kDecUnroll = 8;                               // loads issued before the first is used
static_assert(kPosThreads == 2, "step 1 pairs the threads of a position with one shuffle");

// 8 elements of a K / V cache row from element i as floats; n (<= 8) of them valid, the rest 0 (n 0: nothing is
// read). kVec: i is a multiple of 8 (F16) / 4 (F32) elements of a 16-byte aligned cache and n is 0 or 8 (heads of
// whole 8-dimension runs): 16-byte loads, and no element-wise path in the code (this kernel runs once per layer on
// a few SMs, from a cold instruction cache: its code size is time).
template <bool kVec>
RF_DEVICE void load8(const void* cache, bool f16, int64_t i, int n, float (&v)[kDecVec]) {
  if (kVec && n != kDecVec) {
#pragma unroll
    for (int j = 0; j < kDecVec; ++j) v[j] = 0.0f;
  } else if (kVec) {
    if (f16) {
      const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const __half*>(cache) + i);
      const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        v[2 * j] = half_bits_to_float(static_cast<uint16_t>(w[j] & 0xFFFFu));
        v[2 * j + 1] = half_bits_to_float(static_cast<uint16_t>(w[j] >> 16));
      }
    } else {
      const auto* p = reinterpret_cast<const float4*>(static_cast<const float*>(cache) + i);
      const float4 x = p[0], y = p[1];
      v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w, v[4] = y.x, v[5] = y.y, v[6] = y.z, v[7] = y.w;
    }
  } else {
#pragma unroll
    for (int j = 0; j < kDecVec; ++j) v[j] = j < n ? load_kv(cache, f16, i + j) : 0.0f;
  }
}

// Output values vals[0, count) of token t's row, from element e_begin on (both multiples of 32), quantized into qr
// as quantize_int8_rows does (kind 32: the same warp helper, so the same codes and scales). Block-uniform call.
RF_DEVICE void quantize_out(const float* vals, int64_t e_begin, int count, const Int8Rows& qr, int64_t t) {
  constexpr int kPer = kQuantPerLane;
  const int n_warps = static_cast<int>(blockDim.x) / kWarpSize;
  for (int c = warp_id(); c * 256 < count; c += n_warps) {  // uniform across the warp
    const int i0 = c * 256 + lane_id() * kPer;
    float v[kPer];
#pragma unroll
    for (int j = 0; j < kPer; ++j) v[j] = i0 + j < count ? vals[i0 + j] : 0.0f;
    quantize_warp_values<32>(v, i0 < count, e_begin + i0, qr.q + t * qr.q_stride, qr.d + t * qr.d_stride,
                             qr.s + t * qr.s_stride);
  }
}

// attention_decode_kernel's fused rope + KV store (kRope). Before the dependency wait (they depend on the position
// only), the cosines and sines of q's pairs (s_cs[0], s_cs[1]) and k's (s_cs[2], s_cs[3]), as rope_kv_store's.
static_assert(kDecThreads / 2 >= kMaxDecodeDim / 2, "one thread per q pair and per k pair");
RF_DEVICE void rope_angles(const AttentionRope& r, int32_t pos, float (*s_cs)[kMaxDecodeDim / 2]) {
  const int tid = static_cast<int>(threadIdx.x);
  const bool is_k = tid >= kDecThreads / 2;
  const int i = tid % (kDecThreads / 2);
  const RopeArgs& ra = is_k ? r.k_rope : r.q_rope;
  if (i < ra.n_rot / 2) rope_angle(i, pos, ra, r.yarn, &s_cs[is_k ? 2 : 0][i], &s_cs[is_k ? 3 : 1][i]);
}

// After q (unrotated, ng heads) is in s_q and, when this chunk holds the token's own position (inew >= 0), the
// token's K and V rows of KV head hk are in s_new: rotates q's pairs and rounds q to F16 for an F16 K cache; rotates
// k's pairs and rounds the new K / V rows to what their caches hold, which the first block of the KV head (g0 0)
// stores at the token's slot. The same operations as rope_store_kernel and the cache round trip: the same bits.
template <int kG, int kQ>
RF_DEVICE void rope_round_store(const AttentionArgs& a, const AttentionRope& r, int64_t t, int hk, int g0, int ng,
                                int inew, float (&s_q)[kG][kQ], float* s_new,
                                const float (*s_cs)[kMaxDecodeDim / 2]) {
  const int qhalf = r.q_rope.n_rot / 2, khalf = r.k_rope.n_rot / 2;
  const int qitems = qhalf + (a.head_dim_k - r.q_rope.n_rot);  // per head: the pairs, then the unrotated dimensions
  const int kitems = inew >= 0 ? khalf + (a.head_dim_k - r.k_rope.n_rot) : 0;
  const int vitems = inew >= 0 ? a.head_dim_v : 0;
  const int64_t slot = inew >= 0 ? r.slots[t] : 0;
  const auto put = [&](bool is_k, int d) {  // the new row's dimension d: rounded as its cache holds it, stored
    float& x = is_k ? s_new[d] : s_new[kMaxDecodeDim + d];
    const int64_t at = is_k ? slot * a.k_stride + static_cast<int64_t>(hk) * a.head_dim_k + d
                            : slot * a.v_stride + static_cast<int64_t>(hk) * a.head_dim_v + d;
    void* cache = const_cast<void*>(is_k ? a.k_cache : a.v_cache);
    if (is_k ? a.k_f16 : a.v_f16) {
      const __half h = __float2half_rn(x);
      if (g0 == 0) static_cast<__half*>(cache)[at] = h;
      x = __half2float(h);
    } else if (g0 == 0) {
      static_cast<float*>(cache)[at] = x;
    }
  };
  for (int e = static_cast<int>(threadIdx.x); e < ng * qitems + kitems + vitems; e += kDecThreads) {
    int i0 = 0, i1 = 0;
    if (e < ng * qitems) {
      float* h = s_q[e / qitems];
      const int j = e % qitems;
      if (j < qhalf) {
        rope_rotate(h, j, s_cs[0][j], s_cs[1][j], r.q_rope, &i0, &i1);
      } else {
        i0 = i1 = r.q_rope.n_rot + j - qhalf;
      }
      if (a.k_f16) {
        h[i0] = round_half_f(h[i0]);
        if (i1 != i0) h[i1] = round_half_f(h[i1]);
      }
    } else if (e < ng * qitems + kitems) {
      const int j = e - ng * qitems;
      if (j < khalf) {
        rope_rotate(s_new, j, s_cs[2][j], s_cs[3][j], r.k_rope, &i0, &i1);
        put(true, i0);
        put(true, i1);
      } else {
        put(true, r.k_rope.n_rot + j - khalf);
      }
    } else {
      put(false, e - ng * qitems - kitems);
    }
  }
}

// Dimension d of head h's output for token t from its chunk's unnormalized sum o, maximum m and weight sum:
// o / sum into out (and into qbuf[e] for the quantizer when it is not null) when the token's context is one chunk,
// else the chunk's partial result (o, and with d 0 m and sum) for attention_merge_kernel.
RF_DEVICE void put_output(const AttentionArgs& a, int64_t t, int h, int n_chunks, int d, float o, float m, float sum,
                          float* qbuf, int e) {
  if (n_chunks == 1) {
    a.out[t * a.out_stride + static_cast<int64_t>(h) * a.head_dim_v + d] = o / sum;
    if (qbuf != nullptr) qbuf[e] = o / sum;
  } else {
    const int64_t chunks = (a.max_ctx + kAttentionChunk - 1) / kAttentionChunk;
    const int64_t base = (t * a.n_head + h) * chunks + blockIdx.z;
    a.partial[base * (a.head_dim_v + 2) + d] = o;
    if (d == 0) {
      a.partial[base * (a.head_dim_v + 2) + a.head_dim_v] = m;
      a.partial[base * (a.head_dim_v + 2) + a.head_dim_v + 1] = sum;
    }
  }
}

// Where a decode block stands (decode_prologue): token t, KV head hk, its query heads g0 .. g0 + ng - 1 of the
// gsize sharing hk, the chunk's n positions from `start` (n_chunks chunks in the token's context), and (kRope) inew:
// the chunk index of the token's own position, -1 when another chunk holds it. live false: the chunk starts past
// the token's context (uniform over the block).
struct DecodeBlock {
  int64_t t;
  int hk, g0, ng, gsize, start, n, n_chunks, inew;
  bool live;
};

// The start of both decode kernels, called by every thread of the block: lets the next kernel launch; before the
// wait for the previous kernel (the batch's positions, sequences and block tables were uploaded before the step's
// first kernel, and no kernel writes them) the chunk's cache slots into s_slot, (kRope) the rope angles, and the
// chunk's K / V rows asked into L2; after it the query heads into s_q (zero padded to kQ, rounded to F16 for an F16
// K cache) and, kRope, rope + KV store of the token's new rows (rope_round_store, s_new). Ends with a barrier.
template <int kG, int kQ, bool kRope>
RF_DEVICE DecodeBlock decode_prologue(const AttentionArgs& a, const AttentionRope& r, int slices, int group,
                                      float (&s_q)[kG][kQ], int64_t* s_slot, float* s_new,
                                      float (*s_cs)[kMaxDecodeDim / 2]) {
  grid_dependents_launch();
  DecodeBlock b{};
  b.gsize = a.n_head / a.n_head_kv;
  b.hk = static_cast<int>(blockIdx.x) / slices;
  b.g0 = (static_cast<int>(blockIdx.x) % slices) * group;
  b.ng = min(group, b.gsize - b.g0);
  b.t = blockIdx.y;
  const int32_t n_ctx = a.positions[b.t] + 1;
  b.start = static_cast<int>(blockIdx.z) * kAttentionChunk;
  b.live = b.start < n_ctx;
  if (!b.live) return b;
  b.n = min(n_ctx - b.start, kAttentionChunk);
  b.n_chunks = (n_ctx + kAttentionChunk - 1) / kAttentionChunk;
  const int tid = static_cast<int>(threadIdx.x);
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.seq[b.t]) * a.table_stride;
  int64_t my_slot = 0;  // position start + tid's
  if (tid < b.n) {
    const int32_t p = b.start + tid;
    my_slot = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
    s_slot[tid] = my_slot;
  }
  // K / V rows are read after the wait only. Reading the rows of earlier positions before it (in a decode batch
  // only each token's own row is new) held them in registers across the wait: about 180 instead of 120, one block
  // per SM, and 7B Q4_0 decode of 32 sequences fell from 3390 to 2846 t/s for 0.3 us per layer at one.
  if constexpr (kRope) rope_angles(r, n_ctx - 1, s_cs);
  // The chunk's K / V rows asked into L2 while the previous kernel runs (no registers held across the wait, unlike
  // 5c314be's loads): 7B Q4_0 tg128 400.6 -> 404.6 t/s, tg512 386.6 -> 395.6 on the H100 (three A/B pairs each).
  // The token's own row is written after the wait, by this kernel: L2 is coherent, so asking for it early is harmless.
  if (tid < b.n) {
    const int kb = a.k_f16 ? 2 : 4, vb = a.v_f16 ? 2 : 4;
    const auto* kp = static_cast<const uint8_t*>(a.k_cache);
    const auto* vp = static_cast<const uint8_t*>(a.v_cache);
    prefetch_span_l2(kp + (my_slot * a.k_stride + int64_t{b.hk} * a.head_dim_k) * kb, int64_t{a.head_dim_k} * kb);
    prefetch_span_l2(vp + (my_slot * a.v_stride + int64_t{b.hk} * a.head_dim_v) * vb, int64_t{a.head_dim_v} * vb);
  }
  grid_dependency_wait();
  b.inew = kRope && n_ctx - 1 - b.start < b.n ? n_ctx - 1 - b.start : -1;
  if (kRope && b.inew >= 0) {  // the new rows, before rope, loaded with q
    for (int d = tid; d < a.head_dim_k + a.head_dim_v; d += kDecThreads) {
      s_new[d < a.head_dim_k ? d : kMaxDecodeDim + d - a.head_dim_k] =
          d < a.head_dim_k ? r.k[b.t * r.k_stride + static_cast<int64_t>(b.hk) * a.head_dim_k + d]
                           : r.v[b.t * r.v_stride + static_cast<int64_t>(b.hk) * a.head_dim_v + d - a.head_dim_k];
    }
  }
  for (int e = tid; e < kG * kQ; e += kDecThreads) {
    const int g = e / kQ, d = e % kQ;
    float v = 0.0f;
    if (g < b.ng && d < a.head_dim_k) {
      v = a.q[b.t * a.q_stride + static_cast<int64_t>(b.hk * b.gsize + b.g0 + g) * a.head_dim_k + d];
      if (!kRope && a.k_f16) v = __half2float(__float2half_rn(v));
    }
    s_q[g][d] = v;
  }
  if constexpr (kRope) {
    __syncthreads();
    rope_round_store(a, r, b.t, b.hk, b.g0, b.ng, b.inew, s_q, s_new, s_cs);
  }
  __syncthreads();
  return b;
}

// KC: 8-dimension runs of the query / key heads, head_dim_k rounded up to 64, 128 or 256 dimensions. kRope: the
// kernel also does rope + KV store (attention.h AttentionRope; r is unused otherwise).
template <int KC, bool kVec, bool kRope>
__global__ void __launch_bounds__(kDecThreads)
    attention_decode_kernel(AttentionArgs a, int slices, int group, AttentionRope r, Int8Rows qr) {
  constexpr int kWarps = kDecThreads / kWarpSize;
  constexpr int kRuns = KC / kPosThreads;  // K runs per thread in step 1
  __shared__ float s_q[kGroup][KC * kDecVec];  // query heads (F16-rounded for an F16 K cache), zero padded
  __shared__ float s_w[kGroup][kAttentionChunk];  // each position's weight
  __shared__ int64_t s_slot[kAttentionChunk];     // each position's cache slot
  __shared__ float s_max[kGroup][kWarps], s_sum[kGroup][kWarps];
  __shared__ float s_out[kGroup][kDecThreads * kDecVec];  // [group][dimension] partial outputs of step 3
  __shared__ float s_new[kRope ? 2 * kMaxDecodeDim : 1];  // kRope: the token's own K row, then its V row
  __shared__ float s_cs[kRope ? 4 : 1][kMaxDecodeDim / 2];  // kRope: q's cosines and sines, then k's
  const DecodeBlock blk = decode_prologue<kGroup, KC * kDecVec, kRope>(a, r, slices, group, s_q, s_slot, s_new, s_cs);
  if (!blk.live) return;  // uniform over the block: the merge reads only this token's chunks
  const int64_t t = blk.t;
  const int hk = blk.hk, g0 = blk.g0, ng = blk.ng, gsize = blk.gsize, n = blk.n, n_chunks = blk.n_chunks;
  [[maybe_unused]] const int inew = blk.inew;
  const int tid = static_cast<int>(threadIdx.x);
  const int pos = tid / kPosThreads, part = tid % kPosThreads;  // step 1: position, and which K runs
  const int tpr = (a.head_dim_v + kDecVec - 1) / kDecVec;  // step 3: threads per V row
  const int groups = kDecThreads / tpr;
  const int grp = tid / tpr, c = tid % tpr;
  const int64_t voff = static_cast<int64_t>(hk) * a.head_dim_v + c * kDecVec;
  const int nv = min(kDecVec, a.head_dim_v - c * kDecVec);

  // 1. Scores: position pos, K runs part, part + kPosThreads, ...
  float score[kGroup];
  {
    float dot[kGroup][4] = {};
    if (pos < n) {
      const int64_t kb = s_slot[pos] * a.k_stride + static_cast<int64_t>(hk) * a.head_dim_k;
#pragma unroll
      for (int rb = 0; rb < kRuns; rb += kDecUnroll) {
        float kr[kDecUnroll][kDecVec];
#pragma unroll
        for (int u = 0; u < kDecUnroll; ++u) {
          const int d0 = ((rb + u) * kPosThreads + part) * kDecVec;
          const int nk = rb + u < kRuns && d0 < a.head_dim_k ? min(kDecVec, a.head_dim_k - d0) : 0;
          if (kRope && pos == inew) {  // the new row, from the block (as the cache holds it)
#pragma unroll
            for (int j = 0; j < kDecVec; ++j) kr[u][j] = j < nk ? s_new[d0 + j] : 0.0f;
          } else {
            load8<kVec>(a.k_cache, a.k_f16, kb + d0, nk, kr[u]);
          }
        }
#pragma unroll
        for (int u = 0; u < kDecUnroll; ++u) {
          if (rb + u < kRuns) {
            const int d0 = ((rb + u) * kPosThreads + part) * kDecVec;
#pragma unroll
            for (int g = 0; g < kGroup; ++g) {
              if (g < ng) {
#pragma unroll
                for (int j = 0; j < kDecVec; ++j) dot[g][j % 4] += s_q[g][d0 + j] * kr[u][j];
              }
            }
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      score[g] = -INFINITY;
      if (g < ng) {
        float d = (dot[g][0] + dot[g][1]) + (dot[g][2] + dot[g][3]);
        d += shfl_xor(d, 1);  // the other thread of the position (kPosThreads == 2)
        if (pos < n) score[g] = d * a.scale;
      }
    }
  }

  // 2. Maximum and weights (the first thread of each position holds its weight).
  const int lane = lane_id(), warp = warp_id();
  // Heads past ng (uniform over the block) are skipped: a GQA slice may hold fewer than kGroup, MHA holds one.
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < ng) {
      const float m = warp_reduce_max(score[g]);
      if (lane == 0) s_max[g][warp] = m;
    }
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    if (g < ng) {
      float mx = s_max[g][0];
#pragma unroll
      for (int w = 1; w < kWarps; ++w) mx = fmaxf(mx, s_max[g][w]);
      const float wgt = pos < n && part == 0 ? expf(score[g] - mx) : 0.0f;
      if (part == 0) s_w[g][pos] = wgt;
      const float sum = warp_reduce_sum(wgt);
      if (lane == 0) s_sum[g][warp] = sum;
    }
  }
  __syncthreads();

  // 3. Weighted V rows.
  if (grp < groups) {
    float acc[kGroup][kDecVec] = {};
    for (int i0 = grp; i0 < n; i0 += kDecUnroll * groups) {
      float vr[kDecUnroll][kDecVec];
#pragma unroll
      for (int u = 0; u < kDecUnroll; ++u) {
        const int i = i0 + u * groups;
        if (kRope && i == inew) {
#pragma unroll
          for (int j = 0; j < kDecVec; ++j) vr[u][j] = j < nv ? s_new[kMaxDecodeDim + c * kDecVec + j] : 0.0f;
        } else {
          load8<kVec>(a.v_cache, a.v_f16, (i < n ? s_slot[i] : 0) * a.v_stride + voff, i < n ? nv : 0, vr[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < kDecUnroll; ++u) {
        const int i = i0 + u * groups;
        if (i < n) {
#pragma unroll
          for (int g = 0; g < kGroup; ++g) {
            if (g < ng) {
              const float w = s_w[g][i];
#pragma unroll
              for (int j = 0; j < kDecVec; ++j) acc[g][j] += w * vr[u][j];
            }
          }
        }
      }
    }
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      if (g < ng) {
#pragma unroll
        for (int j = 0; j < kDecVec; ++j) s_out[g][grp * tpr * kDecVec + c * kDecVec + j] = acc[g][j];
      }
    }
  }
  __syncthreads();
  for (int e = tid; e < ng * a.head_dim_v; e += kDecThreads) {
    const int g = e / a.head_dim_v, d = e % a.head_dim_v;
    float o = 0.0f;
    for (int gr = 0; gr < groups; ++gr) o += s_out[g][gr * tpr * kDecVec + d];
    float m = s_max[g][0], sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      m = fmaxf(m, s_max[g][w]);
      sum += s_sum[g][w];
    }
    // s_q is free after step 1 and holds ng heads of head_dim_v for the quantizer.
    put_output(a, t, hk * gsize + g0 + g, n_chunks, d, o, m, sum, qr.q != nullptr ? &s_q[0][0] : nullptr, e);
  }
  if (qr.q != nullptr && n_chunks == 1) {  // uniform over the block
    __syncthreads();
    quantize_out(&s_q[0][0], static_cast<int64_t>(hk * gsize + g0) * a.head_dim_v, ng * a.head_dim_v, qr, t);
  }
}

// F16 K / V rows of head_dim_k = head_dim_v = KD elements: kDpl = KD / kWarpSize consecutive halves per lane.
template <int kN>
RF_DEVICE void load_halves(const __half* p, float (&v)[kN]) {
  static_assert(kN == 1 || kN == 2 || kN == 4 || kN == 8, "1 to 8 halves per lane");
  if constexpr (kN == 1) {
    v[0] = half_bits_to_float(*reinterpret_cast<const uint16_t*>(p));
  } else {
    uint32_t w[kN / 2];
    if constexpr (kN == 2) {
      w[0] = *reinterpret_cast<const uint32_t*>(p);
    } else if constexpr (kN == 4) {
      const uint2 u = *reinterpret_cast<const uint2*>(p);
      w[0] = u.x, w[1] = u.y;
    } else {
      const uint4 u = *reinterpret_cast<const uint4*>(p);
      w[0] = u.x, w[1] = u.y, w[2] = u.z, w[3] = u.w;
    }
#pragma unroll
    for (int j = 0; j < kN / 2; ++j) {
      v[2 * j] = half_bits_to_float(static_cast<uint16_t>(w[j] & 0xFFFFu));
      v[2 * j + 1] = half_bits_to_float(static_cast<uint16_t>(w[j] >> 16));
    }
  }
}

// The decode kernel for F16 caches and heads of KD = 64, 128 or 256 dimensions (K and V alike), the common case.
// Same blocks, prologue and results as attention_decode_kernel, but no block-wide steps between the loads and the
// merge: warp w takes the chunk's positions w, w + kWarps, ..., kBatch of them per pass with all their K / V loads
// in flight together; each lane holds kDpl dimensions of q, K, V and the output, a score is a warp sum (every lane
// gets the same bits), and the warp keeps a running maximum, weight sum and weighted V sum (online softmax; the
// multiply-adds are written as such, so every instantiation rounds them alike: kG 1 and 4 give a head the same
// bits). One barrier, then the warps' results merge in warp order. Its chain of dependent steps is a third of the
// block-wide kernel's (the kernel runs once per layer on a few SMs, from a cold instruction cache).
template <int KD, bool kRope, int kG>
__global__ void __launch_bounds__(kDecThreads)
    attention_lean_kernel(AttentionArgs a, int slices, int group, AttentionRope r, Int8Rows qr) {
  constexpr int kWarps = kDecThreads / kWarpSize;
  constexpr int kDpl = KD / kWarpSize;
  // Positions per warp and pass: 8, or 4 where a position's registers are more (KD 256, or four heads): at most
  // 128 registers a thread, two blocks an SM for batched decode's many blocks.
  constexpr int kBatch = kDpl >= 8 || kG > 1 ? 4 : 8;
  __shared__ float s_q[kG][KD];
  __shared__ int64_t s_slot[kAttentionChunk];
  __shared__ float s_new[kRope ? 2 * kMaxDecodeDim : 1];
  __shared__ float s_cs[kRope ? 4 : 1][kMaxDecodeDim / 2];
  __shared__ float s_m[kWarps][kG], s_l[kWarps][kG];
  __shared__ float s_acc[kWarps][kG][KD];
  const DecodeBlock blk = decode_prologue<kG, KD, kRope>(a, r, slices, group, s_q, s_slot, s_new, s_cs);
  if (!blk.live) {  // uniform over the block
    trace_last_warp(4);
    return;
  }
  const int lane = lane_id(), warp = warp_id(), d0 = lane * kDpl;
  float q[kG][kDpl], acc[kG][kDpl], m[kG], l[kG];
#pragma unroll
  for (int g = 0; g < kG; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int j = 0; j < kDpl; ++j) {
      q[g][j] = s_q[g][d0 + j];
      acc[g][j] = 0.0f;
    }
  }
  const __half* kc = static_cast<const __half*>(a.k_cache) + static_cast<int64_t>(blk.hk) * KD + d0;
  const __half* vc = static_cast<const __half*>(a.v_cache) + static_cast<int64_t>(blk.hk) * KD + d0;
#pragma unroll 1
  for (int i0 = warp; i0 < blk.n; i0 += kBatch * kWarps) {  // uniform across the warp
    float kr[kBatch][kDpl], vr[kBatch][kDpl];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = i0 + u * kWarps;
      if (kRope && i == blk.inew) {  // the token's own rows, from the block (as the caches hold them)
#pragma unroll
        for (int j = 0; j < kDpl; ++j) {
          kr[u][j] = s_new[d0 + j];
          vr[u][j] = s_new[kMaxDecodeDim + d0 + j];
        }
      } else if (i < blk.n) {
        load_halves(kc + s_slot[i] * a.k_stride, kr[u]);
        load_halves(vc + s_slot[i] * a.v_stride, vr[u]);
      } else {
#pragma unroll
        for (int j = 0; j < kDpl; ++j) kr[u][j] = vr[u][j] = 0.0f;
      }
    }
#pragma unroll
    for (int g = 0; g < kG; ++g) {
      if (g < blk.ng) {  // uniform over the block
        float sc[kBatch];
        float bm = -INFINITY;
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
          float d = 0.0f;
#pragma unroll
          for (int j = 0; j < kDpl; ++j) d = __fmaf_rn(q[g][j], kr[u][j], d);
          d = warp_reduce_sum(d);
          sc[u] = i0 + u * kWarps < blk.n ? d * a.scale : -INFINITY;
          bm = fmaxf(bm, sc[u]);
        }
        const float mn = fmaxf(m[g], bm);  // finite: the pass holds position i0
        const float f = expf(m[g] - mn);   // 0 on the first pass
        l[g] *= f;
#pragma unroll
        for (int j = 0; j < kDpl; ++j) acc[g][j] *= f;
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
          const float p = expf(sc[u] - mn);  // 0 past the chunk
          l[g] += p;
#pragma unroll
          for (int j = 0; j < kDpl; ++j) acc[g][j] = __fmaf_rn(p, vr[u][j], acc[g][j]);
        }
        m[g] = mn;
      }
    }
  }
#pragma unroll
  for (int g = 0; g < kG; ++g) {
    if (lane == 0) {
      s_m[warp][g] = m[g];  // -inf with l 0 for a warp without positions
      s_l[warp][g] = l[g];
    }
#pragma unroll
    for (int j = 0; j < kDpl; ++j) s_acc[warp][g][d0 + j] = acc[g][j];
  }
  __syncthreads();
  for (int e = static_cast<int>(threadIdx.x); e < blk.ng * KD; e += kDecThreads) {
    const int g = e / KD, d = e % KD;
    float mx = s_m[0][g];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) mx = fmaxf(mx, s_m[w][g]);
    float o = 0.0f, sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = expf(s_m[w][g] - mx);
      o = __fmaf_rn(s_acc[w][g][d], f, o);
      sum = __fmaf_rn(s_l[w][g], f, sum);
    }
    put_output(a, blk.t, blk.hk * blk.gsize + blk.g0 + g, blk.n_chunks, d, o, mx, sum,
               qr.q != nullptr ? &s_q[0][0] : nullptr, e);  // s_q: read into registers before the barrier
  }
  if (qr.q != nullptr && blk.n_chunks == 1) {  // uniform over the block
    __syncthreads();
    quantize_out(&s_q[0][0], static_cast<int64_t>(blk.hk * blk.gsize + blk.g0) * KD, blk.ng * KD, qr, blk.t);
  }
  trace_last_warp(4);
}

// Merges the chunks of every (token, head) whose context spans more than one, in chunk order (qr: and quantizes
// the head's output, as the decode kernel does for a context of one chunk).
__global__ void attention_merge_kernel(AttentionArgs a, Int8Rows qr) {
  pdl_prologue();
  __shared__ float s_o[kMaxDecodeDim];
  const int h = static_cast<int>(blockIdx.x);
  const int64_t t = blockIdx.y;
  const int32_t n_ctx = a.positions[t] + 1;
  const int n_chunks = (n_ctx + kAttentionChunk - 1) / kAttentionChunk;
  if (n_chunks == 1) return;
  const int max_chunks = (a.max_ctx + kAttentionChunk - 1) / kAttentionChunk;
  const float* part = a.partial + (t * a.n_head + h) * max_chunks * (a.head_dim_v + 2);
  const int stride = a.head_dim_v + 2;
  float mx = -INFINITY;
  for (int c = 0; c < n_chunks; ++c) mx = fmaxf(mx, part[c * stride + a.head_dim_v]);
  for (int d = static_cast<int>(threadIdx.x); d < a.head_dim_v; d += static_cast<int>(blockDim.x)) {
    float sum = 0.0f, o = 0.0f;
    for (int c = 0; c < n_chunks; ++c) {
      const float f = expf(part[c * stride + a.head_dim_v] - mx);
      sum += part[c * stride + a.head_dim_v + 1] * f;
      o += part[c * stride + d] * f;
    }
    a.out[t * a.out_stride + static_cast<int64_t>(h) * a.head_dim_v + d] = o / sum;
    if (qr.q != nullptr) s_o[d] = o / sum;
  }
  if (qr.q != nullptr) {
    __syncthreads();
    quantize_out(s_o, static_cast<int64_t>(h) * a.head_dim_v, a.head_dim_v, qr, t);
  }
}

// 16-byte loads of whole 8-dimension chunks: every head starts on a 16-byte boundary of an aligned cache.
bool decode_vectorized(const AttentionArgs& a) {
  const auto aligned = [](const void* p, int64_t stride, int head_dim, bool f16) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && head_dim % kDecVec == 0 && stride % (f16 ? 8 : 4) == 0;
  };
  return aligned(a.k_cache, a.k_stride, a.head_dim_k, a.k_f16) && aligned(a.v_cache, a.v_stride, a.head_dim_v, a.v_f16);
}

// attention_lean_kernel's cases: F16 caches, K and V heads of 64, 128 or 256 dimensions, 16-byte aligned rows (and at
// least one dimension per lane). ROCMFORGE_GPU_ATTN_LEAN=0 takes attention_decode_kernel for all (measurements).
bool lean_decode(const AttentionArgs& a) {
  static const bool on = [] {
    const char* v = std::getenv("ROCMFORGE_GPU_ATTN_LEAN");
    return v == nullptr || v[0] != '0';
  }();
  const int d = a.head_dim_k;
  return on && a.k_f16 && a.v_f16 && d == a.head_dim_v && (d == 64 || d == 128 || d == 256) && d >= a.warp_size &&
         decode_vectorized(a);
}

}  // namespace

bool use_decode_kernel(const AttentionArgs& a) {
  return a.head_dim_k <= kMaxDecodeDim && a.head_dim_v <= kMaxDecodeDim && a.max_ctx > 0;
}

int decode_kc(const AttentionArgs& a) { return a.head_dim_k <= 64 ? 8 : a.head_dim_k <= 128 ? 16 : 32; }

size_t attention_partial_floats(const AttentionArgs& a) {
  if (!use_decode_kernel(a) || a.max_ctx <= kAttentionChunk) return 0;
  const int64_t chunks = (a.max_ctx + kAttentionChunk - 1) / kAttentionChunk;
  return static_cast<size_t>(a.n_tokens * a.n_head * chunks * (a.head_dim_v + 2));
}

Status launch_decode(const AttentionArgs& a, const AttentionRope* rope, const Int8Rows* quant, gpuStream_t stream) {
  const int gsize = a.n_head / a.n_head_kv;
  // Query heads per block: up to kGroup share each K / V row read; a small grid takes one each instead, so that the
  // work spreads over more SMs (each head's arithmetic is the same either way: the same bits).
  const int chunks = (a.max_ctx + kAttentionChunk - 1) / kAttentionChunk;
  const int group =
      gsize == 1 || static_cast<int64_t>(a.n_head_kv) * chunks * a.n_tokens < kDecSmallGrid ? 1 : kGroup;
  const int slices = (gsize + group - 1) / group;
  if (chunks > 1 && a.partial == nullptr) return Status::error("gpu attention: no partial-result buffer");
  const dim3 grid(static_cast<unsigned>(a.n_head_kv * slices), static_cast<unsigned>(a.n_tokens),
                  static_cast<unsigned>(chunks));
  const bool vec = decode_vectorized(a);
  const int kc = decode_kc(a);
  const AttentionRope r = rope != nullptr ? *rope : AttentionRope{};
  const Int8Rows qr = quant != nullptr ? *quant : Int8Rows{};
  if (lean_decode(a)) {
    // One query head per block (small grids) has its own kernel: the code for kGroup heads, skipped per head at
    // run time, made it half again as long, and it runs from a cold instruction cache.
    const auto run = [&](auto kd_const, auto kg_const) {
      constexpr int KD = decltype(kd_const)::value, KG = decltype(kg_const)::value;
      rope != nullptr
          ? launch_kernel(attention_lean_kernel<KD, true, KG>, grid, kDecThreads, 0, stream, a, slices, group, r, qr)
          : launch_kernel(attention_lean_kernel<KD, false, KG>, grid, kDecThreads, 0, stream, a, slices, group, r, qr);
    };
    const auto by_group = [&](auto kd_const) {
      group == 1 ? run(kd_const, std::integral_constant<int, 1>{})
                 : run(kd_const, std::integral_constant<int, kGroup>{});
    };
    if (a.head_dim_k == 64) {
      by_group(std::integral_constant<int, 64>{});
    } else if (a.head_dim_k == 128) {
      by_group(std::integral_constant<int, 128>{});
    } else {
      by_group(std::integral_constant<int, 256>{});
    }
  } else {
    const auto run = [&](auto kc_const) {
      constexpr int KC = decltype(kc_const)::value;
      if (rope != nullptr) {
        vec ? launch_kernel(attention_decode_kernel<KC, true, true>, grid, kDecThreads, 0, stream, a, slices,
                            group, r, qr)
            : launch_kernel(attention_decode_kernel<KC, false, true>, grid, kDecThreads, 0, stream, a, slices,
                            group, r, qr);
      } else if (vec) {
        launch_kernel(attention_decode_kernel<KC, true, false>, grid, kDecThreads, 0, stream, a, slices, group,
                      r, qr);
      } else {
        launch_kernel(attention_decode_kernel<KC, false, false>, grid, kDecThreads, 0, stream, a, slices,
                      group, r, qr);
      }
    };
    if (kc == 8) {
      run(std::integral_constant<int, 8>{});
    } else if (kc == 16) {
      run(std::integral_constant<int, 16>{});
    } else {
      run(std::integral_constant<int, 32>{});
    }
  }
  if (chunks > 1) {
    launch_kernel(attention_merge_kernel, dim3(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.n_tokens)), 128, 0,
                  stream, a, qr);
  }
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "attention (decode) launch");
}

}  // namespace rf::gpu
