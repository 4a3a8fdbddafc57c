// Attention over the paged KV cache with an online softmax: attention() picks the kernel. Decode takes
// attention_decode.cu's kernel; prefill the query-tile kernels (flash attention on tensor cores with CUDA). The
// general kernel (heads over 256 dimensions): one block per (query head, token); the context is walked in tiles of
// kTile positions (one per thread: its score), each tile rescales the running sum and the running output (each
// thread owns head_dim_v / kTile output dimensions). Scores live in shared memory only.
#include <cstdlib>
#include <string>

#include "backend/gpu/attention.h"
#include "backend/gpu/attention_internal.cuh"

namespace rf::gpu {
namespace {

constexpr int kTile = 128;  // threads per block = context positions per tile (a multiple of both warp sizes)

template <int kVPer>
__global__ void __launch_bounds__(kTile) attention_kernel(AttentionArgs a) {
  pdl_prologue();
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

// The rows of a prefill query tile (N consecutive batch tokens, which may belong to several sequences), in shared
// memory, and the sequence pass being worked: one pass per sequence, each over the keys its rows need.
template <int N>
struct TileRows {
  int32_t seq[N], pos[N];  // -1 for rows past the batch
  int done[N];
  int pass_seq, pass_keys, pass_left;

  RF_DEVICE void load(const AttentionArgs& a, int64_t t0, int tid) {
    if (tid >= N) return;
    const bool v = t0 + tid < a.n_tokens;
    seq[tid] = v ? a.seq[t0 + tid] : -1;
    pos[tid] = v ? a.positions[t0 + tid] : -1;
    done[tid] = v ? 0 : 1;
  }
  // Thread 0: the sequence of the first row not done (-1: none left), the keys its rows need (largest position +
  // 1) and how many rows of other sequences remain.
  RF_DEVICE void choose_pass() {
    int s = -1, k = 0, l = 0;
    for (int r = 0; r < N; ++r) {
      if (done[r]) continue;
      if (s < 0) s = seq[r];
      if (seq[r] == s) k = max(k, pos[r] + 1);
      else ++l;
    }
    pass_seq = s;
    pass_keys = k;
    pass_left = l;
  }
  RF_DEVICE bool in_pass(int r) const { return !done[r] && seq[r] == pass_seq; }
  // After the pass's outputs are written (and a barrier): its rows are done.
  RF_DEVICE void finish_pass(int tid) {
    if (tid < N && seq[tid] == pass_seq) done[tid] = 1;  // rows past the batch have seq -1
  }
};

// Prefill: one block per (query head, tile of QT consecutive batch tokens). K/V tiles of kKeyTile positions are
// staged in shared memory (F16) and serve every query of the tile; each query row has kTpr threads that share its
// scores (kKeyTile / kTpr each) and its output dimensions (head_dim / kTpr each), with an online softmax per row.
// Rows of different sequences in one tile are handled in passes, one sequence per pass. Needs F16 K/V and
// head_dim_k == head_dim_v, a multiple of 8, at most kMaxTileDim.
constexpr int kTileThreads = 128;
constexpr int kKeyTile = 32;
constexpr int kMaxTileDim = 256;

template <int QT>
__global__ void __launch_bounds__(kTileThreads) attention_tile_kernel(AttentionArgs a) {
  pdl_prologue();
  constexpr int kTpr = kTileThreads / QT;        // threads per query row
  constexpr int kScores = kKeyTile / kTpr;       // scores per thread per key tile
  constexpr int kMaxDims = kMaxTileDim / kTpr;   // output dims per thread, upper bound
  extern __shared__ float4 smem_raw[];  // float4: 16-byte alignment
  const int D = a.head_dim_k;
  const int ld = D + 2;  // half row stride of the K tile (odd word count: spreads banks)
  __half* qs = reinterpret_cast<__half*>(smem_raw);             // [QT][D]
  __half* ks = qs + QT * D;                                      // [kKeyTile][ld]
  __half* vs = ks + kKeyTile * ld;                               // [kKeyTile][D]
  float* ps = reinterpret_cast<float*>(vs + kKeyTile * D);       // [QT][kKeyTile + 1]
  __shared__ TileRows<QT> rows;

  const int h = static_cast<int>(blockIdx.x);
  const int hk = h / (a.n_head / a.n_head_kv);
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * QT;
  const int tid = static_cast<int>(threadIdx.x);
  const int qi = tid / kTpr, sub = tid % kTpr;
  const int64_t t = t0 + qi;
  const bool row_valid = t < a.n_tokens;

  for (int i = tid; i < QT * D; i += kTileThreads) {
    const int64_t tt = t0 + i / D;
    qs[i] = __float2half_rn(tt < a.n_tokens ? a.q[tt * a.q_stride + static_cast<int64_t>(h) * D + i % D] : 0.0f);
  }
  rows.load(a, t0, tid);
  const int n_dims = (D + kTpr - 1) / kTpr;  // dims sub, sub + kTpr, ...
  float acc[kMaxDims];
#pragma unroll
  for (int j = 0; j < kMaxDims; ++j) acc[j] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  const int64_t k_off = static_cast<int64_t>(hk) * D;

  for (;;) {
    __syncthreads();
    if (tid == 0) rows.choose_pass();
    __syncthreads();
    const int s = rows.pass_seq;
    if (s < 0) break;
    const int pass_keys = rows.pass_keys;
    const bool active = row_valid && rows.in_pass(qi);
    const int pos = rows.pos[qi];
    const int32_t* table = a.block_tables + static_cast<int64_t>(s) * a.table_stride;
    for (int j0 = 0; j0 < pass_keys; j0 += kKeyTile) {
      const int chunks = D / 8;
      for (int i = tid; i < kKeyTile * chunks; i += kTileThreads) {
        const int kj = i / chunks, c = i % chunks;
        const int j = j0 + kj;
        uint4 kv = make_uint4(0, 0, 0, 0), vv = kv;
        if (j < pass_keys) {
          const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
          kv = *reinterpret_cast<const uint4*>(static_cast<const __half*>(a.k_cache) + slot * a.k_stride + k_off + 8 * c);
          vv = *reinterpret_cast<const uint4*>(static_cast<const __half*>(a.v_cache) + slot * a.v_stride + k_off + 8 * c);
        }
        const uint32_t* kw = &kv.x;
#pragma unroll
        for (int w = 0; w < 4; ++w) *reinterpret_cast<uint32_t*>(ks + kj * ld + 8 * c + 2 * w) = kw[w];
        *reinterpret_cast<uint4*>(vs + kj * D + 8 * c) = vv;
      }
      __syncthreads();
      // Every thread takes part (the row shuffles need whole warps); rows outside this pass see only masked keys,
      // which leaves their running max, sum and output unchanged (corr 1, p 0).
      {
        float sc[kScores];
        float tile_max = -INFINITY;
#pragma unroll
        for (int u = 0; u < kScores; ++u) {
          const int kj = sub + kTpr * u;
          const int j = j0 + kj;
          float dot = 0.0f;
          const __half* qrow = qs + qi * D;
          const __half* krow = ks + kj * ld;
          for (int d = 0; d < D; d += 2) {
            const float2 qf = __half22float2(*reinterpret_cast<const __half2*>(qrow + d));
            const float2 kf = __half22float2(*reinterpret_cast<const __half2*>(krow + d));
            dot += qf.x * kf.x + qf.y * kf.y;
          }
          sc[u] = (active && j < pass_keys && j <= pos) ? dot * a.scale : -INFINITY;
          tile_max = fmaxf(tile_max, sc[u]);
        }
#pragma unroll
        for (int off = 1; off < kTpr; off <<= 1) tile_max = fmaxf(tile_max, shfl_xor(tile_max, off, kTpr));
        const float m_new = fmaxf(m, tile_max);
        const float corr = m_new == -INFINITY ? 1.0f : expf(m - m_new);
        float psum = 0.0f;
#pragma unroll
        for (int u = 0; u < kScores; ++u) {
          const float p = sc[u] == -INFINITY ? 0.0f : expf(sc[u] - m_new);
          ps[qi * (kKeyTile + 1) + sub + kTpr * u] = p;
          psum += p;
        }
#pragma unroll
        for (int off = 1; off < kTpr; off <<= 1) psum += shfl_xor(psum, off, kTpr);
        l = l * corr + psum;
        m = m_new;
#pragma unroll
        for (int j = 0; j < kMaxDims; ++j) acc[j] *= corr;
      }
      __syncthreads();  // ps complete
      if (active) {
        const int n_keys = min(kKeyTile, pass_keys - j0);
        for (int kj = 0; kj < n_keys; ++kj) {
          const float p = ps[qi * (kKeyTile + 1) + kj];
          const __half* vrow = vs + kj * D;
#pragma unroll
          for (int j = 0; j < kMaxDims; ++j) {
            if (j < n_dims) acc[j] += p * __half2float(vrow[sub + kTpr * j]);
          }
        }
      }
      __syncthreads();  // K/V tiles are rewritten next
    }
    if (active) {
      float* o = a.out + t * a.out_stride + static_cast<int64_t>(h) * D;
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
      for (int j = 0; j < kMaxDims; ++j) {
        if (j < n_dims) o[sub + kTpr * j] = acc[j] * inv;
      }
    }
    __syncthreads();
    rows.finish_pass(tid);
    if (rows.pass_left == 0) break;
  }
}


#if defined(RF_GPU_CUDA)
// Prefill on tensor cores (CUDA sm_80+; HIP builds use attention_tile_kernel): one block per (query head, tile of
// kFaRows consecutive batch tokens), 4 warps of 16 query rows each. Keys come in tiles of kFaKeys positions, K and V
// staged in shared memory (F16, double-buffered with cp.async, the next tile loading while this one multiplies).
// Per tile a warp computes its 16 x kFaKeys scores with m16n8k16 F16 MMAs (F32 sums; the query rounded to F16, as
// the CPU reference rounds it for an F16 cache), masks and scales them, updates its rows' online softmax, and adds
// P V with the probabilities rounded to F16 (the CPU reference rounds them to F16 too) through MMAs whose V operand
// is read with ldmatrix.trans. Rows of several sequences in one tile are handled in passes, one sequence per pass,
// as in attention_tile_kernel. Needs F16 K/V and head_dim_k == head_dim_v == D (64 or 128).
constexpr int kFaRows = 64;
constexpr int kFaKeys = 64;
constexpr int kFaThreads = 128;  // 4 warps of NVIDIA's 32 lanes: this kernel exists only in CUDA builds

template <int D>
struct FaShared {
  __half k[2][kFaKeys][D + 8];  // +8 halves per row: fragment loads and ldmatrix rows hit distinct banks
  __half v[2][kFaKeys][D + 8];
};

RF_DEVICE void mma_f16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

RF_DEVICE uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

template <int D>
__global__ void __launch_bounds__(kFaThreads) attention_flash_kernel(AttentionArgs a) {
  constexpr int KC = D / 16;  // 16-dimension steps of q . k
  constexpr int NF = kFaKeys / 8;  // 8-key fragments of a score tile
  constexpr int DF = D / 8;  // 8-dimension fragments of the output
  constexpr int kChunks = D / 8;  // 16-byte chunks per K / V row
  extern __shared__ uint4 smem_fa[];
  auto& sh = *reinterpret_cast<FaShared<D>*>(smem_fa);
  __shared__ TileRows<kFaRows> rows;

  const int h = static_cast<int>(blockIdx.x);
  const int hk = h / (a.n_head / a.n_head_kv);
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kFaRows;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / kWarpSize, lane = tid % kWarpSize;
  const int g = lane / 4, tq = lane % 4;
  const int r0 = 16 * warp + g, r1 = r0 + 8;  // this thread's two rows of the tile
  const int64_t k_off = static_cast<int64_t>(hk) * D;
  grid_dependency_wait();

  // The query rows as A fragments, rounded to F16.
  uint32_t qa[KC][4];
#pragma unroll
  for (int kc = 0; kc < KC; ++kc) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t tok = t0 + ((e & 1) ? r1 : r0);
      const int d = 16 * kc + 2 * tq + ((e & 2) ? 8 : 0);
      float2 v = make_float2(0.0f, 0.0f);
      if (tok < a.n_tokens) v = *reinterpret_cast<const float2*>(a.q + tok * a.q_stride + static_cast<int64_t>(h) * D + d);
      qa[kc][e] = pack_half2(v.x, v.y);
    }
  }
  rows.load(a, t0, tid);
  float o[DF][4];
#pragma unroll
  for (int f = 0; f < DF; ++f) o[f][0] = o[f][1] = o[f][2] = o[f][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this thread's part of the row sums

  for (;;) {
    __syncthreads();
    if (tid == 0) rows.choose_pass();
    __syncthreads();
    const int s = rows.pass_seq;
    if (s < 0) break;
    const int n_keys = rows.pass_keys;
    const bool act0 = rows.in_pass(r0), act1 = rows.in_pass(r1);
    const int pos0 = act0 ? rows.pos[r0] : -1, pos1 = act1 ? rows.pos[r1] : -1;  // -1: every key masked
    const int32_t* table = a.block_tables + static_cast<int64_t>(s) * a.table_stride;
    const auto load_tile = [&](int tile, int buf) {
      for (int i = tid; i < kFaKeys * kChunks; i += kFaThreads) {
        const int kj = i / kChunks, c = i % kChunks;
        const int j = tile * kFaKeys + kj;
        __half* kd = &sh.k[buf][kj][8 * c];
        __half* vd = &sh.v[buf][kj][8 * c];
        if (j < n_keys) {
          const int64_t slot = static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
          async_copy16(kd, static_cast<const __half*>(a.k_cache) + slot * a.k_stride + k_off + 8 * c);
          async_copy16(vd, static_cast<const __half*>(a.v_cache) + slot * a.v_stride + k_off + 8 * c);
        } else {  // zeros: a masked key's probability is 0, and 0 * V must not be NaN
          *reinterpret_cast<uint4*>(kd) = make_uint4(0, 0, 0, 0);
          *reinterpret_cast<uint4*>(vd) = make_uint4(0, 0, 0, 0);
        }
      }
      async_copy_commit();
    };
    const int n_tiles = (n_keys + kFaKeys - 1) / kFaKeys;
    load_tile(0, 0);
    for (int tile = 0; tile < n_tiles; ++tile) {
      const int buf = tile & 1;
      if (tile + 1 < n_tiles) {
        load_tile(tile + 1, buf ^ 1);
        async_copy_wait<1>();
      } else {
        async_copy_wait<0>();
      }
      __syncthreads();
      float sc[NF][4];
#pragma unroll
      for (int f = 0; f < NF; ++f) sc[f][0] = sc[f][1] = sc[f][2] = sc[f][3] = 0.0f;
#pragma unroll
      for (int kc = 0; kc < KC; ++kc) {
#pragma unroll
        for (int f = 0; f < NF; ++f) {
          const __half* krow = &sh.k[buf][8 * f + g][16 * kc + 2 * tq];
          mma_f16_16816(sc[f], qa[kc], *reinterpret_cast<const uint32_t*>(krow),
                        *reinterpret_cast<const uint32_t*>(krow + 8));
        }
      }
      // Scale, mask (causal, this pass's sequence), and the rows' new maxima (a row lives in 4 lanes).
      const int j0 = tile * kFaKeys;
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int f = 0; f < NF; ++f) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = j0 + 8 * f + 2 * tq + (e & 1);
          const int pos = e < 2 ? pos0 : pos1;
          sc[f][e] = j <= pos ? sc[f][e] * a.scale : -INFINITY;
          mx[e >> 1] = fmaxf(mx[e >> 1], sc[f][e]);
        }
      }
      float corr[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], shfl_xor(mx[r], 1));
        mx[r] = fmaxf(mx[r], shfl_xor(mx[r], 2));
        const float m_new = fmaxf(m[r], mx[r]);
        corr[r] = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
        m[r] = m_new;
        l[r] *= corr[r];
      }
#pragma unroll
      for (int f = 0; f < DF; ++f) {
        o[f][0] *= corr[0];
        o[f][1] *= corr[0];
        o[f][2] *= corr[1];
        o[f][3] *= corr[1];
      }
      // Probabilities, as the A fragments of P V (the score fragments of keys 16kk..16kk+15 are that layout).
      uint32_t pa[kFaKeys / 16][4];
#pragma unroll
      for (int f = 0; f < NF; ++f) {
        float p[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          p[e] = sc[f][e] == -INFINITY ? 0.0f : expf(sc[f][e] - m[e >> 1]);
          l[e >> 1] += p[e];
        }
        pa[f / 2][(f & 1) * 2] = pack_half2(p[0], p[1]);
        pa[f / 2][(f & 1) * 2 + 1] = pack_half2(p[2], p[3]);
      }
#pragma unroll
      for (int kk = 0; kk < kFaKeys / 16; ++kk) {
#pragma unroll
        for (int dn = 0; dn < D / 16; ++dn) {
          // ldmatrix.x4.trans: matrices (keys +0..7 | +8..15) x (dims +0..7 | +8..15) of this 16 x 16 V block.
          const int mi = lane / 8, rr = lane % 8;
          const __half* src = &sh.v[buf][16 * kk + 8 * (mi & 1) + rr][16 * dn + 8 * (mi >> 1)];
          const auto addr = static_cast<unsigned>(__cvta_generic_to_shared(src));
          uint32_t b0, b1, b2, b3;
          asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                       : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3)
                       : "r"(addr));
          mma_f16_16816(o[2 * dn], pa[kk], b0, b1);
          mma_f16_16816(o[2 * dn + 1], pa[kk], b2, b3);
        }
      }
      __syncthreads();  // this buffer is reloaded two tiles on
    }
    // Rows of this pass are complete: normalize and store.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const bool act = r == 0 ? act0 : act1;
      float sum = l[r];
      sum += shfl_xor(sum, 1);
      sum += shfl_xor(sum, 2);
      if (!act) continue;
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      float* out = a.out + (t0 + (r == 0 ? r0 : r1)) * a.out_stride + static_cast<int64_t>(h) * D;
#pragma unroll
      for (int f = 0; f < DF; ++f) {
        *reinterpret_cast<float2*>(out + 8 * f + 2 * tq) = make_float2(o[f][2 * r] * inv, o[f][2 * r + 1] * inv);
      }
    }
    __syncthreads();
    rows.finish_pass(tid);
    if (rows.pass_left == 0) break;
  }
}
#endif

#if defined(RF_GPU_CUDA)
// ROCMFORGE_GPU_FLASH=0 keeps prefill on attention_tile_kernel (measurements).
bool flash_prefill_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("ROCMFORGE_GPU_FLASH");
    return v == nullptr || v[0] != '0';
  }();
  return on;
}
#endif

#if defined(RF_GPU_CUDA)
template <int D>
void launch_flash(const AttentionArgs& a, gpuStream_t stream) {
  constexpr size_t kShared = sizeof(FaShared<D>);
  static OncePerContext opt_in;  // above 48 KB needs the opt-in, once per kernel and context
  const bool opted_in = opt_in([&] {
    return gpuFuncSetAttribute(reinterpret_cast<const void*>(&attention_flash_kernel<D>),
                               gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kShared)) == gpuSuccess;
  });
  (void)opted_in;  // a refused opt-in shows as the launch error
  const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>((a.n_tokens + kFaRows - 1) / kFaRows));
  launch_kernel(attention_flash_kernel<D>, grid, kFaThreads, kShared, stream, a);
}
#endif

// Prefill batches (several tokens per sequence) with F16 caches take the query-tile kernels; args.prefill asks for
// them whatever the batch (prefill_invariant).
bool use_tile_kernel(const AttentionArgs& a) {
  if (a.prefill != 0 && prefill_invariant(a)) return true;
  return !a.per_token && a.n_seqs > 0 && a.n_tokens >= 4 * a.n_seqs && a.k_f16 && a.v_f16 &&
         a.head_dim_k == a.head_dim_v && a.head_dim_k % 8 == 0 && a.head_dim_k <= kMaxTileDim;
}
}  // namespace

bool prefill_invariant_available() {
#if defined(RF_GPU_CUDA)
  return flash_prefill_enabled();
#else
  return false;
#endif
}

bool prefill_invariant(const AttentionArgs& a) {
  return prefill_invariant_available() && a.k_f16 && a.v_f16 && a.head_dim_k == a.head_dim_v &&
         (a.head_dim_k == 64 || a.head_dim_k == 128);
}

bool attention_fuses_rope(const AttentionArgs& a) {
  return a.n_tokens > 0 && a.n_head > 0 && a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && !use_tile_kernel(a) &&
         use_decode_kernel(a);
}

// The decode kernel's q buffer holds the block's output heads for the quantization: head_dim_v within the rounded
// head_dim_k it is sized for (decode_kc).
bool attention_fuses_quant(const AttentionArgs& a) {
  return attention_fuses_rope(a) && a.head_dim_v % 32 == 0 && a.head_dim_v <= decode_kc(a) * kDecVec;
}

Status attention(const AttentionArgs& a, gpuStream_t stream, const AttentionRope* rope, const Int8Rows* quant) {
  if (rope != nullptr && !attention_fuses_rope(a)) return Status::error("gpu attention: rope fusion does not apply");
  if (quant != nullptr && !attention_fuses_quant(a)) {
    return Status::error("gpu attention: output quantization does not apply");
  }
  if (a.n_tokens == 0 || a.n_head == 0) return ok_status();
  if (a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0) {
    return Status::error("gpu attention: n_head " + std::to_string(a.n_head) + " is not a multiple of n_head_kv " +
                         std::to_string(a.n_head_kv));
  }
  if (a.head_dim_v > kMaxAttentionHeadDim || a.head_dim_v <= 0 || a.head_dim_k <= 0) {
    return Status::error("gpu attention: head sizes k " + std::to_string(a.head_dim_k) + " / v " +
                         std::to_string(a.head_dim_v) + " outside 1.." + std::to_string(kMaxAttentionHeadDim));
  }
  const bool tile_kernel = use_tile_kernel(a);
#if defined(RF_GPU_CUDA)
  if (tile_kernel && (a.head_dim_k == 64 || a.head_dim_k == 128) && flash_prefill_enabled()) {
    if (a.head_dim_k == 64) {
      launch_flash<64>(a, stream);
    } else {
      launch_flash<128>(a, stream);
    }
    const gpuError_t err = gpuGetLastError();
    return err == gpuSuccess ? ok_status() : error_status(err, "attention (flash prefill) launch");
  }
#endif
  if (tile_kernel) {
    const int d = a.head_dim_k;
    const int qt = d <= 128 ? 32 : 16;
    const size_t shared = static_cast<size_t>(qt * d + kKeyTile * (d + 2) + kKeyTile * d) * sizeof(__half) +
                          static_cast<size_t>(qt * (kKeyTile + 1)) * sizeof(float);
    const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>((a.n_tokens + qt - 1) / qt));
    if (qt == 32) {
      launch_kernel(attention_tile_kernel<32>, grid, kTileThreads, shared, stream, a);
    } else {
      launch_kernel(attention_tile_kernel<16>, grid, kTileThreads, shared, stream, a);
    }
    const gpuError_t err = gpuGetLastError();
    return err == gpuSuccess ? ok_status() : error_status(err, "attention (query tiles) launch");
  }
  if (use_decode_kernel(a)) return launch_decode(a, rope, quant, stream);
  const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.n_tokens));
  const size_t shared = static_cast<size_t>(a.head_dim_k) * sizeof(float);
  const int per = (a.head_dim_v + kTile - 1) / kTile;
  if (per == 1) {
    launch_kernel(attention_kernel<1>, grid, kTile, shared, stream, a);
  } else if (per == 2) {
    launch_kernel(attention_kernel<2>, grid, kTile, shared, stream, a);
  } else {
    launch_kernel(attention_kernel<4>, grid, kTile, shared, stream, a);
  }
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "attention launch");
}

}  // namespace rf::gpu
