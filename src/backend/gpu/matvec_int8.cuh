// matvec_int8's device side, shared by matvec_int8.cu (the launches by batch) and matvec_fused.cu (single-token
// products fused with the op that makes their activations): launch geometry, the activation spans and their
// staging, and the per-block / per-row sums of every int8 weight format. See matvec_int8.cu for the design.
// Included by .cu files only (everything is in an unnamed namespace: each includer gets its own copy).
#pragma once

#include <cstdint>
#include <type_traits>

#include "backend/gpu/act_quant.cuh"
#include "backend/gpu/blocks.cuh"
#include "backend/gpu/matmul.h"

namespace rf::gpu {
namespace {


constexpr int kThreads = 256;
constexpr int kLanesPerKBlock = 8;  // lanes sharing one 256-element K-quant block
constexpr int kSplitRowsPerWarp = 2;  // Q4_0 / Q8_0 rows per warp of batches (single tokens: 1, for more warps)
constexpr int kKRowsPerWarp = 1;    // K-quant rows per warp

// Up to kMaxMats weights of one type and row length that multiply the same activation rows in ONE launch (q / k / v,
// gate / up): each launch block belongs to one matrix, from first_block[m] on.
constexpr int kMaxMats = 3;
struct MatSet {
  const uint8_t* w[kMaxMats];
  size_t nb1[kMaxMats];
  int64_t n_out[kMaxMats];
  float* out[kMaxMats];
  int64_t out_stride[kMaxMats];
  unsigned first_block[kMaxMats];
  int count;
  unsigned second_from;  // mixed launches (matvec_kquant_kernel's T2): the blocks from here on hold T2 weights
};

// The quantized activation rows of a launch: token t's codes at q + t * q_stride, its block scales at
// d + t * d_stride. Launch blocks take tokens in groups of NT, the group index varying fastest (blockIdx.x %
// n_groups), so that the groups reading the same weight rows run together and share them through L2.
struct ActRows {
  const int8_t* q;
  const float* d;
  const int32_t* s;  // the sums of every 32 codes
  int64_t q_stride;
  int64_t d_stride;
  int64_t s_stride;
  int64_t n_tok;
  unsigned n_groups;
  unsigned unused;  // no padding bytes (decode graphs compare launch arguments byte for byte)
};

// The rows and tokens this warp computes: kR rows of its block's matrix from row0 (n_rows of them; <= 0 past the
// end, the same for every lane) and the tokens [tok0, tok0 + n_tok) of its group. Selects with constant indices:
// indexing the kernel parameter with a run-time index would copy it to local memory (7-13 % slower decode on the
// H100).
struct WarpRows {
  const uint8_t* w;
  size_t nb1;
  float* out;
  int64_t out_stride;
  int64_t row0;
  int64_t n_rows;
  int64_t tok0;
  int n_tok;
};

// kSplit warps share each row group (matvec_split_kernel); the others take one each.
template <int kR, int NT, int kSplit = 1>
RF_DEVICE WarpRows warp_rows(const MatSet& set, const ActRows& act) {
  static_assert(kMaxMats == 3, "the selects below name each matrix");
  const unsigned b = blockIdx.x / act.n_groups, g = blockIdx.x % act.n_groups;
  const int m = (set.count > 2 && b >= set.first_block[2]) ? 2 : (set.count > 1 && b >= set.first_block[1]) ? 1 : 0;
  const unsigned first = m == 0 ? set.first_block[0] : m == 1 ? set.first_block[1] : set.first_block[2];
  const int64_t n_out = m == 0 ? set.n_out[0] : m == 1 ? set.n_out[1] : set.n_out[2];
  const int64_t row0 = (static_cast<int64_t>(b - first) * (blockDim.x / kWarpSize / kSplit) + warp_id() / kSplit) * kR;
  const int64_t n_rows = min(static_cast<int64_t>(kR), n_out - row0);
  const int64_t tok0 = static_cast<int64_t>(g) * NT;
  // Single-token launches have one group per token, so every warp has its token: a constant lets the compiler drop
  // the per-token branches, and the weight loads of an unrolled block loop issue together.
  const int nt = NT == 1 ? 1 : static_cast<int>(min(static_cast<int64_t>(NT), act.n_tok - tok0));
  if (m == 0) return {set.w[0], set.nb1[0], set.out[0], set.out_stride[0], row0, n_rows, tok0, nt};
  if (m == 1) return {set.w[1], set.nb1[1], set.out[1], set.out_stride[1], row0, n_rows, tok0, nt};
  return {set.w[2], set.nb1[2], set.out[2], set.out_stride[2], row0, n_rows, tok0, nt};
}

// The activation rows a warp's sums read, for its tokens t < NT: token t's codes of block jb (QK elements) at
// q + t * q_stride + jb * QK, its block scale at d[t * d_stride + jb] and its sums of 32 codes from
// s[t * s_stride + jb * QK / 32]. Either the quantized rows in global memory (jb: the weight block) or a tile of
// them staged in shared memory (jb: the block within the tile).
struct ActSpan {
  const int8_t* q;
  const float* d;
  const int32_t* s;
  int64_t q_stride;
  int64_t d_stride;
  int64_t s_stride;
};

RF_DEVICE ActSpan global_span(const ActRows& act, int64_t tok0) {
  return {act.q + tok0 * act.q_stride, act.d + tok0 * act.d_stride, act.s + tok0 * act.s_stride,
          act.q_stride,                act.d_stride,                act.s_stride};
}

// Staged launches: the block loads its token group's activations, kStageElems elements at a time, into shared memory
// once, and its warps read them from there. Unstaged, every warp reads every token's activation row from L2 for
// each of its rows: with 8 tokens those reads are 8 times the weight bytes (Q4_0 / Q4_K) and L2 bandwidth, not
// DRAM, bounds the product. The sums take the same steps either way (same bits).
constexpr int kStageElems = 4096;
template <int NT, int QK>
struct StageTile {
  alignas(16) int8_t q[NT][kStageElems];
  float d[NT][kStageElems / QK];
  int32_t s[NT][kStageElems / 32];
};

template <int NT, int QK>
RF_DEVICE ActSpan stage_span(const StageTile<NT, QK>& tile) {
  return {&tile.q[0][0], &tile.d[0][0], &tile.s[0][0], kStageElems, kStageElems / QK, kStageElems / 32};
}

// Loads elements [e0, e0 + n) (n a multiple of QK, at most kStageElems) of the group's n_tok tokens into the tile,
// then waits for the whole block. Every thread of the block must call it.
template <int NT, int QK>
RF_DEVICE void stage_act(StageTile<NT, QK>& tile, const ActRows& act, int64_t tok0, int n_tok, int64_t e0, int n) {
  const int vecs = n / 16, nd = n / QK, ns = n / 32;
  for (int i = static_cast<int>(threadIdx.x); i < n_tok * vecs; i += static_cast<int>(blockDim.x)) {
    const int t = i / vecs, v = i % vecs;
    reinterpret_cast<int4*>(tile.q[t])[v] = reinterpret_cast<const int4*>(act.q + (tok0 + t) * act.q_stride + e0)[v];
  }
  for (int i = static_cast<int>(threadIdx.x); i < n_tok * nd; i += static_cast<int>(blockDim.x)) {
    tile.d[i / nd][i % nd] = act.d[(tok0 + i / nd) * act.d_stride + e0 / QK + i % nd];
  }
  for (int i = static_cast<int>(threadIdx.x); i < n_tok * ns; i += static_cast<int>(blockDim.x)) {
    tile.s[i / ns][i % ns] = act.s[(tok0 + i / ns) * act.s_stride + e0 / 32 + i % ns];
  }
  __syncthreads();
}

// Programmatic launch (see compat.h): lets the next kernel launch, asks L2 for this warp's weight rows (no kernel
// writes them) while the previous kernel may still run, then waits for it. Rows of up to kPrefetchRowBytes only: on
// the H100 it took 5-15 % off 2.3 KB rows and added 10-30 % to rows of 4.3 KB and more.
constexpr size_t kPrefetchRowBytes = 3072;
RF_DEVICE void weights_then_wait(const WarpRows& wr) {
  grid_dependents_launch();
  const uint8_t* p = wr.w + wr.row0 * wr.nb1;
  const int64_t bytes = wr.nb1 <= kPrefetchRowBytes ? wr.n_rows * static_cast<int64_t>(wr.nb1) : 0;
  for (int64_t off = static_cast<int64_t>(lane_id()) * 128; off < bytes; off += kWarpSize * 128) prefetch_l2(p + off);
  grid_dependency_wait();
}

// The staged launches' loop, called by every thread of the block (the staging has block-wide barriers): asks for
// the warp's weights and waits for the previous kernel (weights_then_wait), then for each tile of kStageElems
// activations loads the group's tile and calls body(ib, jb, span) for the warp's weight blocks ib = first,
// first + kStep, ... in the tile (jb: the block within the tile, span: the staged tile) when the warp has rows, and
// waits for the block before the tile is loaded again.
template <int NT, int QK, int64_t kStep, typename Body>
RF_DEVICE void for_staged_blocks(const ActRows& act, const WarpRows& wr, int64_t n_blocks, int64_t first,
                                 Body&& body) {
  static_assert(kStageElems / QK % kStep == 0, "a tile holds whole steps of every part");
  constexpr int64_t kTile = kStageElems / QK;
  __shared__ StageTile<NT, QK> tile;
  weights_then_wait(wr);
  const ActSpan span = stage_span(tile);
  for (int64_t ib0 = 0; ib0 < n_blocks; ib0 += kTile) {
    const int64_t end = min(n_blocks, ib0 + kTile);
    stage_act(tile, act, wr.tok0, wr.n_tok, ib0 * QK, static_cast<int>(end - ib0) * QK);
    if (wr.n_rows > 0) {
      for (int64_t ib = ib0 + first; ib < end; ib += kStep) body(ib, ib - ib0, span);
    }
    __syncthreads();  // the tile is read before it is loaded again
  }
}

// for_staged_blocks with the weight loads of each block issued one block ahead: fetch(ib, raw) loads block ib's
// bytes into registers, sum(raw, jb, span) adds them up, and block ib + kStep's loads are in flight while block ib
// is summed (the first block's before the wait for the previous kernel, a tile's first block's while its tile is
// staged). The sums are body's, in the same order.
template <int NT, int QK, int64_t kStep, typename Raw, typename Fetch, typename Sum>
RF_DEVICE void for_staged_blocks_ahead(const ActRows& act, const WarpRows& wr, int64_t n_blocks, int64_t first,
                                       Fetch&& fetch, Sum&& sum) {
  static_assert(kStageElems / QK % kStep == 0, "a tile holds whole steps of every part");
  constexpr int64_t kTile = kStageElems / QK;
  __shared__ StageTile<NT, QK> tile;
  const bool has_rows = wr.n_rows > 0;  // uniform across the warp
  Raw cur;
  if (has_rows && first < n_blocks) fetch(first, cur);  // weights only: no kernel writes them
  weights_then_wait(wr);
  const ActSpan span = stage_span(tile);
  int64_t ib = first;
  for (int64_t ib0 = 0; ib0 < n_blocks; ib0 += kTile) {
    const int64_t end = min(n_blocks, ib0 + kTile);
    stage_act(tile, act, wr.tok0, wr.n_tok, ib0 * QK, static_cast<int>(end - ib0) * QK);
    if (has_rows) {
      for (; ib < end; ib += kStep) {
        Raw next;
        if (ib + kStep < n_blocks) fetch(ib + kStep, next);
        sum(cur, ib - ib0, span);
        cur = next;
      }
    }
    __syncthreads();  // the tile is read before it is loaded again
  }
}

template <int kR, int NT>
RF_DEVICE void zero_sums(float (&acc)[kR][NT]) {
#pragma unroll
  for (int r = 0; r < kR; ++r) {
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  }
}

// The residual rows of a single-token launch with a ResidualAdd (add.sum set; NT 1), read by lane 0 of the warp
// right after its dependency wait, so that the read is in flight with the first weight loads: read after the sums,
// it is one more dependent round trip at the end of every row, which in the output and down products is the end of
// the launch. Zeros elsewhere; only lane 0 uses them. The split-row kernels read early (7B tg128 on the H100: Q8_0
// +1.2 %, Q4_0 within the spread); matvec_kquant_kernel reads after its sums (early, 7B Q4_K_M lost 5.5 %).
template <int kR>
struct RowResidual {
  float v[kR];
};

template <int kR, int NT>
RF_DEVICE RowResidual<kR> early_residual(const WarpRows& wr, const ResidualAdd& add) {
  RowResidual<kR> res{};
  if constexpr (NT == 1) {
    if (add.sum != nullptr && lane_id() == 0) {
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        if (r < wr.n_rows) res.v[r] = add.res[wr.row0 + r];
      }
    }
  }
  return res;
}

// Stores v, the warp's row r of its token t, and for single tokens with a residual add (add.sum set: one weight per
// launch) its sum with the row's residual: *res (early_residual), or read now when res is null. The add kernel computes
// a + b for add(out, a, b) either way round: float addition commutes, the same bits.
template <int NT>
RF_DEVICE void store_row(const WarpRows& wr, int r, int t, float v, const ResidualAdd& add, const float* res) {
  const int64_t row = wr.row0 + r;
  wr.out[(wr.tok0 + t) * wr.out_stride + row] = v;
  if constexpr (NT == 1) {
    if (add.sum != nullptr) add.sum[row] = (res != nullptr ? *res : add.res[row]) + v;
  }
}

// Reduces each lane's partial sums over the warp and stores row row0 + r of token tok0 + t (store_row). Every token's
// sums take the same steps whatever NT is, so a token's result does not depend on the batch around it.
template <int kR, int NT>
RF_DEVICE void store_sums(const WarpRows& wr, float (&acc)[kR][NT], const ResidualAdd& add,
                          const RowResidual<kR>* res) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      const float s = warp_reduce_sum(acc[r][t]);
      if (lane_id() == 0 && r < wr.n_rows && t < wr.n_tok) {
        store_row<NT>(wr, r, t, s, add, res != nullptr ? &res->v[r] : nullptr);
      }
    }
  }
}

// One warp per 256 activations (see quantize_warp_values). n must be a multiple of kBlock; lanes past n compute
// zeros and store nothing. Row blockIdx.y of x, q and d.
template <int kBlock>
__global__ void __launch_bounds__(kThreads)
    quantize_act_kernel(const float* __restrict__ x, int64_t x_stride, int64_t n, const Int8Rows rows) {
  pdl_prologue();
  x += blockIdx.y * x_stride;  // one activation row per blockIdx.y
  constexpr int kPer = kQuantPerLane;
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id()) * 256;
  if (base >= n) return;  // uniform across the warp
  const int64_t e0 = base + static_cast<int64_t>(lane_id()) * kPer;
  const bool live = e0 < n;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; j += 4) {
    const float4 f = live ? *reinterpret_cast<const float4*>(x + e0 + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    v[j] = f.x;
    v[j + 1] = f.y;
    v[j + 2] = f.z;
    v[j + 3] = f.w;
  }
  quantize_warp_values<kBlock>(v, live, e0, rows.q + blockIdx.y * rows.q_stride, rows.d + blockIdx.y * rows.d_stride,
                               rows.s + blockIdx.y * rows.s_stride);
}

RF_DEVICE int dot16(const uint32_t (&v)[4], const int4 a) {
  int s = dot4_i8(static_cast<int>(v[0]), a.x, 0);
  s = dot4_i8(static_cast<int>(v[1]), a.y, s);
  s = dot4_i8(static_cast<int>(v[2]), a.z, s);
  return dot4_i8(static_cast<int>(v[3]), a.w, s);
}

// This lane's Q4_K / Q5_K codes of sub-blocks 2c (lo) and 2c + 1 (hi) as words of 4 bytes, from 16 bytes of 4-bit
// codes q and (Q5_K) the 16 bytes qh of fifth bits.
template <bool kFive>
RF_DEVICE void q45k_codes(const uint32_t (&q)[4], const uint32_t (&qh)[4], int c, uint32_t (&lo)[4],
                          uint32_t (&hi)[4]) {
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    lo[k] = q[k] & 0x0F0F0F0Fu;
    hi[k] = (q[k] >> 4) & 0x0F0F0F0Fu;
    if (kFive) {
      lo[k] |= ((qh[k] >> (2 * c)) & 0x01010101u) << 4;
      hi[k] |= ((qh[k] >> (2 * c + 1)) & 0x01010101u) << 4;
    }
  }
}

// Byte k (0..3, any run-time value) of w.
RF_DEVICE int byte_of(uint32_t w, int k) { return static_cast<int>((w >> (8 * k)) & 0xFFu); }

// Q4_K / Q5_K scale and min of sub-block j (0..7) from a split head's scale words y, z, w (its bytes 4-15): as
// scale_min_k4 (blocks.cuh), from registers.
// Both cases are computed and selected: a branch here would keep an unrolled block loop from issuing the next
// block's loads early.
RF_DEVICE void scale_min_words(uint32_t y, uint32_t z, uint32_t w, int j, int* scale, int* min) {
  const int k = j & 3, by = byte_of(y, k), bz = byte_of(z, k), bw = byte_of(w, k);
  *scale = j < 4 ? by & 63 : (bw & 0x0F) | ((by >> 6) << 4);
  *min = j < 4 ? bz & 63 : (bw >> 4) | ((bz >> 6) << 4);
}

// Q3_K scale of 16-element group g (0..15) from the split head's words w0, w1, w2 (bytes 0-11): as q3k_scale
// (blocks.cuh), from registers.
RF_DEVICE int q3k_scale_words(uint32_t w0, uint32_t w1, uint32_t w2, int g) {
  const int low = (byte_of((g & 7) < 4 ? w0 : w1, g & 3) >> (4 * (g >> 3))) & 0x0F;
  const int high = (byte_of(w2, g & 3) >> (2 * (g >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

// Adds da * d * (sc1 * v1 . a1 + sc2 * v2 . a2) for each of the n_tok tokens: v1 / v2 the signed codes of the 16
// elements from e1 / e2 of Q8_K block jb of act (a1 / a2), sc1 / sc2 their group scales, d the block's (Q3_K, Q6_K).
template <int NT>
RF_DEVICE void scaled_runs_q8k(const uint32_t (&v1)[4], const uint32_t (&v2)[4], int e1, int e2, int sc1, int sc2,
                               float d, int n_tok, const ActSpan& act, int64_t jb, float (&acc)[1][NT]) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t < n_tok) {
      const int8_t* ab = act.q + t * act.q_stride + jb * 256;
      const int4 a1 = *reinterpret_cast<const int4*>(ab + e1);
      const int4 a2 = *reinterpret_cast<const int4*>(ab + e2);
      const float da = act.d[t * act.d_stride + jb];
      const int dot = sc1 * dot16(v1, a1) + sc2 * dot16(v2, a2);
      acc[0][t] += da * d * static_cast<float>(dot);
    }
  }
}

// One K-quant block ib of a row in split rows (matmul.h SplitLayout; nb blocks per row) times the n_tok tokens' Q8_K
// block jb of span, for lane `sub` (0..kLanesPerKBlock - 1) of the block's lanes.
//   Q4_K / Q5_K: chunk c = sub / 2 of 64 elements, half = sub % 2: 16 bytes of 4-bit codes holding 16 elements of
//   sub-block 2c (low nibbles) and 16 of 2c + 1 (high); the minimums use the quantizer's 32-code sums, added by the
//   half-0 lane for the whole sub-block.
//   Q2_K: as Q3_K without the hmask (qs bytes [32h + l0, +16)); scales and minimums per 16 elements.
//   Q3_K: h = sub / 4, j = sub % 4 reads qs bytes [32 + 32h + l0, +16) and hmask bytes [l0, +16) (l0 = 16 (j & 1)):
//   elements e1 = 128h + 32s + l0 + i with low bits 2s of qs and hmask bit 4h + s (s = 2 (j / 2)), and e2 = e1 + 32
//   (s + 1), i < 16.
//   IQ4_XS: sub-block sub, 16 bytes of level indices (elements 32 sub + i low nibbles, + 16 high), levels through
//   iq4_levels4.
//   Q6_K: h = sub / 4, j = sub % 4 reads ql bytes [64h + 16j, +16) and qh bytes [128 + 32h + l0, +16) (l0 =
//   16 (j & 1)): elements e1 = 128h + 32k0 + l0 + i (low nibbles, qh bits 2k0) and e2 = e1 + 64 (high nibbles, qh
//   bits 2k0 + 4), k0 = j / 2, i < 16; the codes' offset of 32 is taken off each byte.
template <quant::Type T, int NT>
RF_DEVICE void kquant_block(const uint8_t* row, int64_t nb, int64_t ib, int sub, int n_tok, const ActSpan& act,
                            int64_t jb, float (&acc)[1][NT]) {
  using F = SplitFormat<T>;
  const uint8_t* body = F::codes(row, ib);
  const uint8_t* head = F::head(row, nb, ib);
  if constexpr (T == quant::Type::Q4_K || T == quant::Type::Q5_K) {
    constexpr bool kFive = T == quant::Type::Q5_K;
    const int c = sub / 2, half = sub % 2;
    const uint4 qs = *reinterpret_cast<const uint4*>(body + (kFive ? 32 : 0) + 32 * c + 16 * half);
    const uint32_t q[4] = {qs.x, qs.y, qs.z, qs.w};
    uint32_t qh[4] = {0, 0, 0, 0};
    if (kFive) {
      const uint4 h4 = *reinterpret_cast<const uint4*>(body + 16 * half);
      qh[0] = h4.x, qh[1] = h4.y, qh[2] = h4.z, qh[3] = h4.w;
    }
    uint32_t lo[4], hi[4];
    q45k_codes<kFive>(q, qh, c, lo, hi);
    const uint4 hd = *reinterpret_cast<const uint4*>(head);
    const float d = half_bits_to_float(static_cast<uint16_t>(hd.x & 0xFFFFu));
    const float dmin = half_bits_to_float(static_cast<uint16_t>(hd.x >> 16));
    int sc_lo = 0, m_lo = 0, sc_hi = 0, m_hi = 0;
    scale_min_words(hd.y, hd.z, hd.w, 2 * c, &sc_lo, &m_lo);
    scale_min_words(hd.y, hd.z, hd.w, 2 * c + 1, &sc_hi, &m_hi);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < n_tok) {
        const int8_t* ab = act.q + t * act.q_stride + jb * 256 + 64 * c + 16 * half;
        const int4 a_lo = *reinterpret_cast<const int4*>(ab);
        const int4 a_hi = *reinterpret_cast<const int4*>(ab + 32);
        const float da = act.d[t * act.d_stride + jb];
        const int dot = sc_lo * dot16(lo, a_lo) + sc_hi * dot16(hi, a_hi);
        const int32_t* s = act.s + t * act.s_stride + jb * 8 + 2 * c;
        const int s0 = s[0], s1 = s[1];  // loaded by both halves: no branch around the loads
        const int mins = (m_lo * s0 + m_hi * s1) * (half == 0 ? 1 : 0);
        acc[0][t] += da * (d * static_cast<float>(dot) - dmin * static_cast<float>(mins));
      }
    }
  } else if constexpr (T == quant::Type::Q2_K) {
    const int h = sub / 4, j = sub % 4, s1 = 2 * (j / 2), l0 = 16 * (j & 1);
    const int e1 = 128 * h + 32 * s1 + l0, e2 = e1 + 32;
    const uint4 q4 = *reinterpret_cast<const uint4*>(body + 32 * h + l0);
    const uint32_t q[4] = {q4.x, q4.y, q4.z, q4.w};
    uint32_t v1[4], v2[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v1[k] = (q[k] >> (2 * s1)) & 0x03030303u;
      v2[k] = (q[k] >> (2 * s1 + 2)) & 0x03030303u;
    }
    const uint4 hd = *reinterpret_cast<const uint4*>(head);
    // Scale byte g (low nibble scale, high nibble min), picked by selects (a run-time index would use local memory).
    const auto scale_byte = [&hd](int g) {
      const int w = g / 4;
      return byte_of(w == 0 ? hd.x : w == 1 ? hd.y : w == 2 ? hd.z : hd.w, g % 4);
    };
    const int b1 = scale_byte(e1 / 16), b2 = scale_byte(e2 / 16);
    const uint32_t dm = *reinterpret_cast<const uint32_t*>(F::scale_at(row, nb, ib));
    const float d = half_bits_to_float(static_cast<uint16_t>(dm & 0xFFFFu));
    const float dmin = half_bits_to_float(static_cast<uint16_t>(dm >> 16));
    constexpr uint32_t kOnes[4] = {0x01010101u, 0x01010101u, 0x01010101u, 0x01010101u};
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < n_tok) {
        const int8_t* ab = act.q + t * act.q_stride + jb * 256;
        const int4 a1 = *reinterpret_cast<const int4*>(ab + e1);
        const int4 a2 = *reinterpret_cast<const int4*>(ab + e2);
        const float da = act.d[t * act.d_stride + jb];
        const int dot = (b1 & 0x0F) * dot16(v1, a1) + (b2 & 0x0F) * dot16(v2, a2);
        // the minimums need sums of 16 codes; the quantizer keeps sums of 32
        const int mins = (b1 >> 4) * dot16(kOnes, a1) + (b2 >> 4) * dot16(kOnes, a2);
        acc[0][t] += da * (d * static_cast<float>(dot) - dmin * static_cast<float>(mins));
      }
    }
  } else if constexpr (T == quant::Type::Q3_K) {
    const int h = sub / 4, j = sub % 4, s1 = 2 * (j / 2), l0 = 16 * (j & 1);
    const int e1 = 128 * h + 32 * s1 + l0, e2 = e1 + 32;
    const uint4 q4 = *reinterpret_cast<const uint4*>(body + 32 + 32 * h + l0);
    const uint4 m4 = *reinterpret_cast<const uint4*>(body + l0);
    const uint32_t q[4] = {q4.x, q4.y, q4.z, q4.w}, hm[4] = {m4.x, m4.y, m4.z, m4.w};
    uint32_t v1[4], v2[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {  // low bits 2 s, then 4 if the hmask bit 4 h + s is set, minus 4
      v1[k] = sub_bytes(((q[k] >> (2 * s1)) & 0x03030303u) | (((hm[k] >> (4 * h + s1)) & 0x01010101u) << 2),
                        0x04040404u);
      v2[k] = sub_bytes(((q[k] >> (2 * s1 + 2)) & 0x03030303u) | (((hm[k] >> (4 * h + s1 + 1)) & 0x01010101u) << 2),
                        0x04040404u);
    }
    const auto* hw = reinterpret_cast<const uint32_t*>(head);
    const uint32_t w0 = hw[0], w1 = hw[1], w2 = hw[2];
    const int sc1 = q3k_scale_words(w0, w1, w2, e1 / 16), sc2 = q3k_scale_words(w0, w1, w2, e2 / 16);
    const float d = F::scale(row, nb, ib);
    scaled_runs_q8k(v1, v2, e1, e2, sc1, sc2, d, n_tok, act, jb, acc);
  } else if constexpr (T == quant::Type::IQ4_XS) {
    const uint4 qs = *reinterpret_cast<const uint4*>(body + 16 * sub);
    const uint32_t q[4] = {qs.x, qs.y, qs.z, qs.w};
    uint32_t lo[4], hi[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      lo[k] = iq4_levels4(q[k] & 0x0F0F0F0Fu);
      hi[k] = iq4_levels4((q[k] >> 4) & 0x0F0F0F0Fu);
    }
    const uint2 hd = *reinterpret_cast<const uint2*>(head);
    const float d = half_bits_to_float(static_cast<uint16_t>(hd.x & 0xFFFFu));
    const int ls = BlockIq4Xs::sub_scale(hd.x >> 16, hd.y, sub);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < n_tok) {
        const int8_t* ab = act.q + t * act.q_stride + jb * 256 + 32 * sub;
        const int4 a_lo = *reinterpret_cast<const int4*>(ab);
        const int4 a_hi = *reinterpret_cast<const int4*>(ab + 16);
        const float da = act.d[t * act.d_stride + jb];
        const int dot = ls * (dot16(lo, a_lo) + dot16(hi, a_hi));
        acc[0][t] += da * d * static_cast<float>(dot);
      }
    }
  } else {
    static_assert(T == quant::Type::Q6_K, "K-quant products: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS");
    const int h = sub / 4, j = sub % 4, k0 = j / 2, l0 = 16 * (j & 1);
    const int e1 = 128 * h + 32 * k0 + l0, e2 = e1 + 64;
    const uint4 l4 = *reinterpret_cast<const uint4*>(body + 64 * h + 16 * j);
    const uint4 h4 = *reinterpret_cast<const uint4*>(body + 128 + 32 * h + l0);
    const uint32_t ql[4] = {l4.x, l4.y, l4.z, l4.w}, qh[4] = {h4.x, h4.y, h4.z, h4.w};
    uint32_t v1[4], v2[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v1[k] = sub_bytes((ql[k] & 0x0F0F0F0Fu) | (((qh[k] >> (2 * k0)) & 0x03030303u) << 4), 0x20202020u);
      v2[k] = sub_bytes(((ql[k] >> 4) & 0x0F0F0F0Fu) | (((qh[k] >> (2 * k0 + 4)) & 0x03030303u) << 4), 0x20202020u);
    }
    const auto* scales = reinterpret_cast<const int8_t*>(head);
    const int sc1 = scales[e1 / 16], sc2 = scales[e2 / 16];
    const float d = F::scale(row, nb, ib);
    scaled_runs_q8k(v1, v2, e1, e2, sc1, sc2, d, n_tok, act, jb, acc);
  }
}

// Reduces each lane's partial sums over the warp and stores them; with kSplit warps per row group (part: this
// warp's index among them), the parts' sums meet in shared memory and are added in part order. Every warp of the
// block must call it (kSplit > 1 has a block-wide barrier).
template <int kR, int NT, int kSplit>
RF_DEVICE void finish_sums(const WarpRows& wr, float (&acc)[kR][NT], int part, const ResidualAdd& add,
                           const RowResidual<kR>* res) {
  if constexpr (kSplit == 1) {
    if (wr.n_rows > 0) store_sums(wr, acc, add, res);
  } else {
    __shared__ float s_part[kThreads / kWarpSize][kR][NT];  // [warp][row][token], from lane 0 of each warp
#pragma unroll
    for (int t = 0; t < NT; ++t) {
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        const float v = warp_reduce_sum(acc[r][t]);
        if (lane_id() == 0) s_part[warp_id()][r][t] = v;
      }
    }
    __syncthreads();
    if (part == 0 && lane_id() == 0 && wr.n_rows > 0) {
#pragma unroll
      for (int t = 0; t < NT; ++t) {
#pragma unroll
        for (int r = 0; r < kR; ++r) {
          float v = s_part[warp_id()][r][t];
#pragma unroll
          for (int p = 1; p < kSplit; ++p) v += s_part[warp_id() + p][r][t];
          if (r < wr.n_rows && t < wr.n_tok) store_row<NT>(wr, r, t, v, add, res != nullptr ? &res->v[r] : nullptr);
        }
      }
    }
  }
}

// The unstaged loop of matvec_kquant_kernel over a warp's blocks first, first + kStep, ... of type T, kU blocks'
// loads issued together (kKquantUnroll). The sums keep their order whatever kU (the same bits).
template <quant::Type T, int NT, int64_t kStep, int kU>
RF_DEVICE void kquant_row(const uint8_t* row, int64_t n_blocks, int64_t first, int sub, int n_tok,
                          const ActSpan& span, float (&acc)[1][NT]) {
#pragma unroll kU
  for (int64_t ib = first; ib < n_blocks; ib += kStep) kquant_block<T>(row, n_blocks, ib, sub, n_tok, span, ib, acc);
}

// Blocks per unrolled step of kquant_row, as measured on the H100 (PERF_NOTES, session 19: 2 against 4 everywhere,
// 7B Q4_K_M tg128 381 -> 395-399 t/s; 4096 x 11008 per type, one / two warps per row).
template <quant::Type T, int kSplit>
constexpr int kKquantUnroll =
    kSplit > 1 || T == quant::Type::Q2_K || T == quant::Type::Q4_K || T == quant::Type::Q6_K ? 2 : 4;

// Q2_K / Q3_K / Q4_K / Q5_K / Q6_K / IQ4_XS weights in split rows times Q8_K activations, one row per warp group of
// kSplit warps, NT tokens: kLanesPerKBlock lanes share a block (kquant_block), so a warp covers kWarpSize /
// kLanesPerKBlock blocks per pass; part p of the group takes passes p, p + kSplit, ... kStage: the activations come
// through shared memory (stage_act); each lane takes the same blocks in the same order.
// T2 != T (single tokens, unstaged): a mixed launch whose blocks from set.second_from on hold T2 weights (the q / k
// / v of Q4_K_M and Q5_K_M models, whose v is Q6_K); each row's sums take the steps of its type's own launch.
template <quant::Type T, int NT, int kSplit, bool kStage, quant::Type T2 = T>
__global__ void __launch_bounds__(kThreads)
    matvec_kquant_kernel(const MatSet set, int64_t n_blocks, const ActRows act, const ResidualAdd add) {
  static_assert(T2 == T || (NT == 1 && !kStage), "mixed launches: single tokens, unstaged");
  constexpr int kPass = kWarpSize / kLanesPerKBlock;  // blocks per warp pass
  constexpr int64_t kStep = kSplit * kPass;
  const WarpRows wr = warp_rows<1, NT, kSplit>(set, act);
  const int part = warp_id() % kSplit;
  const uint8_t* row = wr.w + wr.row0 * wr.nb1;
  const int sub = lane_id() % kLanesPerKBlock;
  const int64_t first = part * kPass + lane_id() / kLanesPerKBlock;
  float acc[1][NT];
  zero_sums(acc);
  if constexpr (kStage) {
    for_staged_blocks<NT, 256, kStep>(act, wr, n_blocks, first, [&](int64_t ib, int64_t jb, const ActSpan& span) {
      kquant_block<T>(row, n_blocks, ib, sub, wr.n_tok, span, jb, acc);
    });
  } else if (wr.n_rows > 0) {  // uniform across the warp (and its row group); no return before finish_sums' barrier
    weights_then_wait(wr);
    const ActSpan span = global_span(act, wr.tok0);
    if constexpr (T2 != T) {
      if (blockIdx.x / act.n_groups >= set.second_from) {  // uniform across the block
        kquant_row<T2, NT, kStep, kKquantUnroll<T2, kSplit>>(row, n_blocks, first, sub, wr.n_tok, span, acc);
      } else {
        kquant_row<T, NT, kStep, kKquantUnroll<T, kSplit>>(row, n_blocks, first, sub, wr.n_tok, span, acc);
      }
    } else {
      kquant_row<T, NT, kStep, kKquantUnroll<T, kSplit>>(row, n_blocks, first, sub, wr.n_tok, span, acc);
    }
  }
  finish_sums<1, NT, kSplit>(wr, acc, part, add, nullptr);
  trace_last_warp(5);
}

// A block of the warp's n_rows rows (weight codes wq as 8 words of bytes in activation order: signed (kSigned), or
// unsigned with an offset kOffset taken off here; scales dw, and with kMin the minimums mw) times the n_tok tokens'
// Q8_0 activation block jb of act. The offset and the minimum use the block's code sum, written by the quantizer.
template <bool kSigned, int kOffset, bool kMin, int kR, int NT>
RF_DEVICE void accumulate_q8_0(const uint32_t (&wq)[kR][8], const float (&dw)[kR], const float (&mw)[kR],
                               int64_t n_rows, int n_tok, const ActSpan& act, int64_t jb, float (&acc)[kR][NT]) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t < n_tok) {
      const int8_t* ab = act.q + t * act.q_stride + jb * 32;
      const int4 a0 = reinterpret_cast<const int4*>(ab)[0];
      const int4 a1 = reinterpret_cast<const int4*>(ab)[1];
      const int a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float da = act.d[t * act.d_stride + jb];
      const int asum = kOffset != 0 || kMin ? act.s[t * act.s_stride + jb] : 0;
#pragma unroll
      for (int r = 0; r < kR; ++r) {
        if (kR == 1 || r < n_rows) {  // a warp with rows has its first
          int sumi = 0;
          if (kSigned) {
#pragma unroll
            for (int k = 0; k < 8; ++k) sumi = dot4_i8(static_cast<int>(wq[r][k]), a[k], sumi);
          } else {
#pragma unroll
            for (int k = 0; k < 4; ++k) {
              sumi = dot4_i8(static_cast<int>(wq[r][k]), a[k], sumi);
              sumi = dot4_i8(static_cast<int>(wq[r][k + 4]), a[k + 4], sumi);
            }
            if (kOffset != 0) sumi -= kOffset * asum;
          }
          if constexpr (kMin) {
            // Rounded steps: left to the compiler, the two products and two sums contract into multiply-adds
            // differently per instantiation, and a token's bits would depend on its batch (seen on the H100).
            const float block = __fadd_rn(__fmul_rn(static_cast<float>(sumi), __fmul_rn(dw[r], da)),
                                          __fmul_rn(mw[r], __fmul_rn(da, static_cast<float>(asum))));
            acc[r][t] = __fadd_rn(acc[r][t], block);
          } else {
            acc[r][t] += static_cast<float>(sumi) * (dw[r] * da);
          }
        }
      }
    }
  }
}

// The fifth bits of Q5_0 / Q5_1 codes 4k..4k + 3 (bits [4k, 4k + 4) of qh, k = 0..7) as bit 4 of four bytes: the
// multiply puts bit i at bit 8i (its shifted copies land on distinct bits, so nothing carries).
RF_DEVICE uint32_t fifth_bits4(uint32_t qh, int k) {
  return ((((qh >> (4 * k)) & 0x0Fu) * 0x00204081u) & 0x01010101u) << 4;
}

// Block ib of the warp's rows row[r] (r < n_rows) of type kW (Q4_0, Q8_0, IQ4_NL, Q4_1, Q5_0, Q5_1) times the n_tok
// tokens' activation block jb of act (split_block), in two steps so that a loop can load a block while it sums the
// one before: fetch_split loads the block's bytes (SplitRaw: codes, c1 Q8_0's second 16, Q5_0 / Q5_1 fifth bits,
// scale bits, Q4_1 / Q5_1 d and m), sum_split makes the weight codes 8 words of 4 bytes in activation order (Q8_0:
// signed codes; IQ4_NL: each nibble's level, iq4_levels4; Q4_0 / Q4_1: unsigned nibbles; Q5_0 / Q5_1: nibbles with
// the fifth bit; Q4_0's offset of 8 and Q5_0's 16 come off later, Q4_1 / Q5_1 add their minimum m) and adds up.
template <int kR>
struct SplitRaw { uint4 c0[kR], c1[kR]; uint32_t qh[kR], sc[kR]; };

template <quant::Type kW, int kR>
RF_DEVICE void fetch_split(const uint8_t* const (&row)[kR], int64_t n_blocks, int64_t ib, int64_t n_rows,
                           SplitRaw<kR>& raw) {
  using quant::Type;
  using F = SplitFormat<kW>;
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    if (kR == 1 || r < n_rows) {  // a warp with rows has its first
      const auto* c = reinterpret_cast<const uint4*>(F::codes(row[r], ib));
      raw.c0[r] = c[0];
      if constexpr (kW == Type::Q8_0) raw.c1[r] = c[1];
      if constexpr (kW == Type::Q5_0 || kW == Type::Q5_1) {
        raw.qh[r] = *reinterpret_cast<const uint32_t*>(F::head(row[r], n_blocks, ib));
      }
      if constexpr (kW == Type::Q4_1 || kW == Type::Q5_1) {  // d and m, one 4-byte scale
        raw.sc[r] = *reinterpret_cast<const uint32_t*>(F::scale_at(row[r], n_blocks, ib));
      } else {
        raw.sc[r] = *reinterpret_cast<const uint16_t*>(F::scale_at(row[r], n_blocks, ib));
      }
    }
  }
}

template <quant::Type kW, int kR, int NT>
RF_DEVICE void sum_split(const SplitRaw<kR>& raw, int64_t n_rows, int n_tok, const ActSpan& act, int64_t jb,
                         float (&acc)[kR][NT]) {
  using quant::Type;
  constexpr bool kFive = kW == Type::Q5_0 || kW == Type::Q5_1;
  constexpr bool kMin = kW == Type::Q4_1 || kW == Type::Q5_1;
  uint32_t wq[kR][8];
  float dw[kR], mw[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    if (kR == 1 || r < n_rows) {  // a warp with rows has its first
      const uint4 x = raw.c0[r];
      const uint32_t w[4] = {x.x, x.y, x.z, x.w};
      if constexpr (kW == Type::Q8_0) {
        const uint4 y = raw.c1[r];
        wq[r][0] = x.x, wq[r][1] = x.y, wq[r][2] = x.z, wq[r][3] = x.w;
        wq[r][4] = y.x, wq[r][5] = y.y, wq[r][6] = y.z, wq[r][7] = y.w;
      } else if constexpr (kW == Type::IQ4_NL) {
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          wq[r][k] = iq4_levels4(w[k] & 0x0F0F0F0Fu);
          wq[r][k + 4] = iq4_levels4((w[k] >> 4) & 0x0F0F0F0Fu);
        }
      } else {
        static_assert(kW == Type::Q4_0 || kW == Type::Q4_1 || kFive,
                      "split-row products of 32-element blocks: Q4_0, Q8_0, IQ4_NL, Q4_1, Q5_0, Q5_1");
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          wq[r][k] = w[k] & 0x0F0F0F0Fu;
          wq[r][k + 4] = (w[k] >> 4) & 0x0F0F0F0Fu;
        }
        if constexpr (kFive) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            wq[r][k] |= fifth_bits4(raw.qh[r], k);
            wq[r][k + 4] |= fifth_bits4(raw.qh[r], k + 4);
          }
        }
      }
      if constexpr (kMin) {
        dw[r] = half_bits_to_float(static_cast<uint16_t>(raw.sc[r] & 0xFFFFu));
        mw[r] = half_bits_to_float(static_cast<uint16_t>(raw.sc[r] >> 16));
      } else {
        dw[r] = half_bits_to_float(static_cast<uint16_t>(raw.sc[r]));
        mw[r] = 0.0f;
      }
    }
  }
  constexpr bool kSigned = kW == Type::Q8_0 || kW == Type::IQ4_NL;
  constexpr int kOffset = kW == Type::Q4_0 ? 8 : kW == Type::Q5_0 ? 16 : 0;
  accumulate_q8_0<kSigned, kOffset, kMin>(wq, dw, mw, n_rows, n_tok, act, jb, acc);
}

template <quant::Type kW, int kR, int NT>
RF_DEVICE void split_block(const uint8_t* const (&row)[kR], int64_t n_blocks, int64_t ib, int64_t n_rows, int n_tok,
                           const ActSpan& act, int64_t jb, float (&acc)[kR][NT]) {
  SplitRaw<kR> raw;
  fetch_split<kW, kR>(row, n_blocks, ib, n_rows, raw);
  sum_split<kW, kR, NT>(raw, n_rows, n_tok, act, jb, acc);
}

// Q4_0 / Q8_0 / IQ4_NL / Q4_1 / Q5_0 / Q5_1 weights in split rows (blocks.cuh) times Q8_0 activations, kR rows per
// warp group, NT tokens. Each row group is shared by kSplit warps; lane l of part p takes blocks p W + l, p W + l +
// kSplit W, ... (W = kWarpSize) of each row, so per row and step the group reads kSplit W consecutive 16-byte (Q8_0:
// 32-byte) code runs and as many consecutive scales straight from global memory, each lane one whole block. The
// parts' sums meet in shared memory and are added in part order. kStage: the activations come through shared memory
// (stage_act); each lane takes the same blocks in the same order.
template <quant::Type kW, int kR, int NT, int kSplit, bool kStage>
__global__ void __launch_bounds__(kThreads)
    matvec_split_kernel(const MatSet set, int64_t n_blocks, const ActRows act, const ResidualAdd add) {
  constexpr int64_t kStep = kSplit * kWarpSize;
  const WarpRows wr = warp_rows<kR, NT, kSplit>(set, act);
  const int part = warp_id() % kSplit;
  const uint8_t* row[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) row[r] = wr.w + (wr.row0 + (r < wr.n_rows ? r : 0)) * wr.nb1;
  const int64_t first = part * kWarpSize + lane_id();
  float acc[kR][NT];
  zero_sums(acc);
  RowResidual<kR> res{};
  if constexpr (kStage) {
    for_staged_blocks_ahead<NT, 32, kStep, SplitRaw<kR>>(
        act, wr, n_blocks, first,
        [&](int64_t ib, SplitRaw<kR>& raw) { fetch_split<kW, kR>(row, n_blocks, ib, wr.n_rows, raw); },
        [&](const SplitRaw<kR>& raw, int64_t jb, const ActSpan& span) {
          sum_split<kW, kR, NT>(raw, wr.n_rows, wr.n_tok, span, jb, acc);
        });
  } else if (wr.n_rows > 0) {  // uniform across the warp (and its row group); no return before the barrier below
    weights_then_wait(wr);
    if (part == 0) res = early_residual<kR, NT>(wr, add);
    const ActSpan span = global_span(act, wr.tok0);
    const int nb = static_cast<int>(n_blocks);
#pragma unroll 4
    for (int ib = static_cast<int>(first); ib < nb; ib += static_cast<int>(kStep)) {
      split_block<kW>(row, n_blocks, ib, wr.n_rows, wr.n_tok, span, ib, acc);
    }
  }
  finish_sums<kR, NT, kSplit>(wr, acc, part, add, &res);
  trace_last_warp(2);
}

// Host side: launch geometry both launch paths choose alike.
unsigned blocks_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned>((items + per_block - 1) / per_block);
}

int64_t total_rows(const WeightView* ws, int count) {
  int64_t n = 0;
  for (int i = 0; i < count; ++i) n += ws[i].n_out;
  return n;
}

// Products of up to kSplitKMaxRows rows (all matrices of a launch) with long enough rows give each row group two
// warps. On the H100, back-to-back: Q8_0 from 128 blocks (11008 x 4096 21.8 -> 19.4 us), Q4_K from 48, Q5_K / Q6_K /
// IQ4_XS from 40 gain 2-17 %; Q4_0 (12.0 -> 14.5) and Q3_K (13.5 -> 19.1) lose, and rows of 16 blocks (4096) lose
// for every K-quant.
// policy: MatmulPolicy::split_k.
constexpr int64_t kSplitKMaxRows = 8192;
int64_t split_k_min_blocks(quant::Type t) {
  using quant::Type;
  return t == Type::Q8_0                                             ? 128
         : t == Type::Q4_K                                           ? 48
         : t == Type::Q5_K || t == Type::Q6_K || t == Type::IQ4_XS ? 40
                                                                     : INT64_MAX;
}
int split_k_for(quant::Type t, int64_t rows, int64_t n_blocks, int policy) {
  if (policy > 0) return policy >= 2 ? 2 : 1;
  return rows <= kSplitKMaxRows && n_blocks >= split_k_min_blocks(t) ? 2 : 1;
}

// Whether count weights (ws[0, n_first) of one type, ws[n_first, count) of another) fit one mixed launch: a single
// token, the pairs the kernel has (Q4_K or Q5_K, then Q6_K: q / k then v of Q4_K_M / Q5_K_M), and one warp per row
// for both types whatever the rows (so that each row's sums are those of its own type's launch).
bool mixed_launch_fits(const WeightView* ws, int count, int n_first, int64_t n_tok) {
  using quant::Type;
  const MatmulPolicy& policy = matmul_policy();
  if (!policy.mixed_launches || n_tok != 1) return false;
  for (int i = n_first + 1; i < count; ++i) {
    if (ws[i].type != ws[n_first].type) return false;
  }
  const Type a = ws[0].type, b = ws[n_first].type;
  if ((a != Type::Q4_K && a != Type::Q5_K) || b != Type::Q6_K) return false;
  const int64_t n_blocks = ws[0].n_in / 256;
  return split_k_for(a, 0, n_blocks, policy.split_k) == 1 && split_k_for(b, 0, n_blocks, policy.split_k) == 1;
}

}  // namespace
}  // namespace rf::gpu
