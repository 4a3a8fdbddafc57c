// Integer tensor-core product for batches (matmul.h: matmul_mmq): out[token][row] = weight row . activation row
// for Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights and activations quantized to Q8_0 / Q8_K codes (quantize_int8_rows).
//
// A block computes MT = 64 weight rows x NT tokens (8, 16, 32: 4 warps; 64: 8 warps; 128: 16 warps). Each warp
// takes 16 rows x up to 32 tokens. The K steps of 256 elements go through a ring of three stages in shared memory:
//   1. cp.async copies a step's bytes into its stage two steps ahead: the 64 rows' span of split rows (matmul.h
//      SplitLayout: the span's code bodies, its head, its scale chunk) as stored, and the tokens' codes and scales.
//      A thread's copy sources are computed once per block (Copies); the weights of the first two steps are asked
//      for before the kernel waits for the one that wrote the tokens.
//   2. One barrier per step. Each warp builds its mma.sync A fragments straight from the span words (Q4_0: two
//      nibbles of a byte are elements i and i + 16 of a block, so one word gives two fragment registers).
//   3. It multiplies them with the tokens' codes through mma.sync m16n8k32 (m16n8k16 for Q6_K's 16-element
//      sub-blocks): exact int32 sums per group, then the scales in float, as the CPU reference applies them
//      (Q4_K/Q5_K/Q6_K: integer sums over the super block first, then d and dmin; the minimums' sums come from a
//      second MMA whose A fragment holds each group's minimum).
// The old design (decode into an int8 tile first, three barriers per step, one step of loads held in registers)
// ran one 8-warp block per SM at 255 registers; H100, 4096 x 11008, 512 tokens: Q4_0 422 -> 314 us, Q4_K 542 ->
// 296, Q6_K 606 -> 305, Q8_0 431 -> 302 (tests/gpu/PERF_NOTES.md, session 17).
// Splits over K depend only on the weight's shape and are summed in split order, so a token's result is the same
// bitwise whatever the rest of the batch (the token tile NT only changes which fragment holds it).
//
// Portability: mma.sync is NVIDIA-only (sm_80+). HIP builds have no such kernel (has_mmq_matmul is false there) and
// use matvec_int8 / matmul_mma instead.
// (Block layouts: ggml format facts, see blocks.cuh and src/quant/kquant_layout.h.)
#include <algorithm>
#include <string>
#include <type_traits>

#include "backend/gpu/blocks.cuh"
#include "backend/gpu/matmul.h"
#include "backend/gpu/mma_ring.cuh"

namespace rf::gpu {

#if defined(RF_GPU_CUDA)
namespace {

constexpr int kStep = 256;                  // weight elements per row per K step
constexpr int kMT = 64;                     // rows per block
constexpr int kWarpsM = 4;                  // warps along rows, 16 rows each
constexpr int kXLd = kStep + 16;            // bytes per token row of codes (spreads the fragment loads over all banks)
constexpr int kStages = 3;                  // K steps in shared memory: one computed, two on their way

// One step's bytes of a split row (matmul.h SplitLayout), as 16-byte chunks: the bodies of its blocks (kBlocks
// of them: 8 of Q4_0 / Q8_0, one K-quant block), then the block's head (K-quants), then the 16-byte aligned chunk
// of f16 scales that holds the step's (Q4_0 / Q8_0: exactly the step's 8; Q6_K: 8 blocks' d, this one at byte
// 2 (step % 8)).
template <quant::Type K>
struct Span {
  static constexpr bool kSuper = split_layout(K).qk == 256;  // K-quants: d (and dmin) per 256-element block
  static constexpr bool kMins = K == quant::Type::Q4_K || K == quant::Type::Q5_K;
  static constexpr int kBlocks = kStep / split_layout(K).qk;
  static constexpr int kCodes = kBlocks * split_code_bytes(K);  // body bytes per step
  static constexpr int kHead = split_head_bytes(K);              // 16 or 0 (K-quants: one block per step)
  static constexpr bool kScales = split_scale_bytes(K) > 0;
  static constexpr int kChunks = kCodes / 16 + (kHead > 0 ? 1 : 0) + (kScales ? 1 : 0);
  static RF_HOST_DEVICE constexpr int head_word() { return kCodes / 4; }             // the head's first 32-bit word
  static RF_HOST_DEVICE constexpr int scale_half() { return (kCodes + kHead) / 2; }  // the scale chunk's first f16
  // 16-byte chunks per row in shared memory: odd, so that the 8 rows of a fragment read 8 different bank groups.
  static constexpr int kLd = kChunks | 1;
  // The step's f16 scale index in its scale chunk (Q6_K: one per step; Q4_0 / Q8_0 start at 0).
  static RF_DEVICE int scale_offset(int64_t step) { return static_cast<int>((step * kBlocks) & 7); }
};

// One K step of a block of NT tokens in shared memory: the 64 rows' span bytes as stored, the tokens' codes and
// their scales (Q8_0: one per 32-element group, [group][token]; Q8_K: one per step).
template <quant::Type K, int NT>
struct alignas(16) Stage {
  uint4 w[kMT][Span<K>::kLd];
  int8_t x[NT][kXLd];
  float xd[Span<K>::kSuper ? 1 : 8][NT];
};

// Signed codes from four Q4_0 nibbles in bytes (q - 8, as int8).
RF_DEVICE uint32_t q4_signed(uint32_t nibbles) { return sub_bytes(nibbles, 0x08080808u); }

// Q6_K codes (6 bits, less 32) of word k (elements 4k..4k+3) of 32-element group j from a row's span words.
RF_DEVICE uint32_t q6_word(const uint32_t* w, int j, int k) {
  const int h = j / 4, q = j % 4;
  const uint32_t lo = (w[(64 * h + 32 * (q & 1)) / 4 + k] >> (4 * (q >> 1))) & 0x0F0F0F0Fu;
  const uint32_t hi = (w[(128 + 32 * h) / 4 + k] >> (2 * q)) & 0x03030303u;
  return sub_bytes(lo | (hi << 4), 0x20202020u);
}

// The A fragment of mma m16n8k32 (m16n8k16 twice for Q6_K: a[0..1] elements 0-15, a[2..3] 16-31) for 32-element
// group j, straight from the span words of the thread's two rows (wl: row g, wh: row g + 8): a[0] / a[1] hold
// elements 4t..4t+3 of the rows, a[2] / a[3] elements 16+4t..16+4t+3.
template <quant::Type K>
RF_DEVICE void a_fragment(const uint32_t* wl, const uint32_t* wh, int j, int t, uint32_t (&a)[4]) {
  if constexpr (K == quant::Type::Q4_0) {  // block j's 16 bytes: byte i holds elements i (low) and i + 16 (high)
    const uint32_t l = wl[4 * j + t], h = wh[4 * j + t];
    a[0] = q4_signed(l & 0x0F0F0F0Fu);
    a[1] = q4_signed(h & 0x0F0F0F0Fu);
    a[2] = q4_signed((l >> 4) & 0x0F0F0F0Fu);
    a[3] = q4_signed((h >> 4) & 0x0F0F0F0Fu);
  } else if constexpr (K == quant::Type::Q8_0) {
    a[0] = wl[8 * j + t], a[1] = wh[8 * j + t], a[2] = wl[8 * j + 4 + t], a[3] = wh[8 * j + 4 + t];
  } else if constexpr (K == quant::Type::Q4_K || K == quant::Type::Q5_K) {  // body (Q5_K: qh[32]) qs[128]
    constexpr int kQs = K == quant::Type::Q5_K ? 8 : 0;  // words
    const int ch = j / 2, shift = 4 * (j & 1);
    const int k0 = kQs + 8 * ch + t, k1 = k0 + 4;
    a[0] = (wl[k0] >> shift) & 0x0F0F0F0Fu;
    a[1] = (wh[k0] >> shift) & 0x0F0F0F0Fu;
    a[2] = (wl[k1] >> shift) & 0x0F0F0F0Fu;
    a[3] = (wh[k1] >> shift) & 0x0F0F0F0Fu;
    if constexpr (K == quant::Type::Q5_K) {  // fifth bits: qh word k, bit j of each byte
      a[0] |= ((wl[t] >> j) & 0x01010101u) << 4;
      a[1] |= ((wh[t] >> j) & 0x01010101u) << 4;
      a[2] |= ((wl[4 + t] >> j) & 0x01010101u) << 4;
      a[3] |= ((wh[4 + t] >> j) & 0x01010101u) << 4;
    }
  } else {  // Q6_K
    a[0] = q6_word(wl, j, t), a[1] = q6_word(wh, j, t), a[2] = q6_word(wl, j, 4 + t), a[3] = q6_word(wh, j, 4 + t);
  }
}

RF_DEVICE void mma_k32(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
RF_DEVICE void mma_k16(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(a0), "r"(a1), "r"(b0));
}

// A thread's share of the copies of every K step into a stage, fixed for the block's steps: the source of each of
// its copies at step 0 (weights: rows past the matrix repeat its last row, whose sums are not stored; tokens past
// the batch repeat its last). Slot l of a kind is element tid + l * kThreads of that kind's list.
template <quant::Type K, int NT, int kThreads>
struct Copies {
  using T = Span<K>;
  static constexpr int kScales = T::kSuper ? 1 : 8;                   // activation scales per token and step
  static constexpr int kWAll = kMT * T::kChunks, kXAll = NT * 16, kDAll = NT * kScales;
  static constexpr int kW = (kWAll + kThreads - 1) / kThreads;
  static constexpr int kX = (kXAll + kThreads - 1) / kThreads;
  static constexpr int kD = (kDAll + kThreads - 1) / kThreads;
  const uint8_t* w[kW];
  const int8_t* x[kX];
  const float* d[kD];

  RF_DEVICE Copies(const uint8_t* wt, size_t nb1, int64_t n_out, int64_t row0, int64_t n_blocks, const Int8Rows& act,
                   int64_t n_tok, int64_t tok0, int tid) {
    using F = SplitFormat<K>;
#pragma unroll
    for (int l = 0; l < kW; ++l) {
      const int i = min(tid + l * kThreads, kWAll - 1), r = i / T::kChunks, c = i % T::kChunks;
      const uint8_t* row = wt + min(row0 + r, n_out - 1) * nb1;
      w[l] = c < T::kCodes / 16 ? F::codes(row, 0) + 16 * c
             : T::kHead > 0 && c == T::kCodes / 16 ? F::head(row, n_blocks, 0)
                                                   : F::scale_at(row, n_blocks, 0);
    }
#pragma unroll
    for (int l = 0; l < kX; ++l) {
      const int i = min(tid + l * kThreads, kXAll - 1);
      x[l] = act.q + min(tok0 + i / 16, n_tok - 1) * act.q_stride + 16 * (i % 16);
    }
#pragma unroll
    for (int l = 0; l < kD; ++l) {
      const int i = min(tid + l * kThreads, kDAll - 1);
      d[l] = act.d + min(tok0 + i / kScales, n_tok - 1) * act.d_stride + i % kScales;
    }
  }
  template <bool kWeights, bool kTokens>
  RF_DEVICE void start(Stage<K, NT>& st, int64_t step, int tid) const {
    if constexpr (kWeights) {
      // Byte offsets of the step in the bodies, the heads (one block per step) and the scale chunks.
      const int64_t codes = step * T::kCodes, head = step * 16, scale = (step * T::kBlocks * 2) & ~int64_t{15};
#pragma unroll
      for (int l = 0; l < kW; ++l) {
        const int i = tid + l * kThreads, c = i % T::kChunks;
        if (kWAll % kThreads == 0 || i < kWAll) {
          const int64_t off = c < T::kCodes / 16 ? codes : T::kHead > 0 && c == T::kCodes / 16 ? head : scale;
          async_copy16(&st.w[i / T::kChunks][c], w[l] + off);
        }
      }
    }
    if constexpr (kTokens) {
#pragma unroll
      for (int l = 0; l < kX; ++l) {
        const int i = tid + l * kThreads;
        if (kXAll % kThreads == 0 || i < kXAll) async_copy16(&st.x[i / 16][16 * (i % 16)], x[l] + step * kStep);
      }
#pragma unroll
      for (int l = 0; l < kD; ++l) {
        const int i = tid + l * kThreads;
        if (kDAll % kThreads == 0 || i < kDAll) async_copy4(&st.xd[i % kScales][i / kScales], d[l] + step * kScales);
      }
    }
  }
};

// An int32 below 2^22 in magnitude as a float, exactly (what a conversion instruction gives), with an integer add
// and a float subtract.
RF_DEVICE float small_int_to_float(int v) { return __int_as_float(v + 0x4B400000) - 12582912.0f; }

// FN fragments of 8 tokens per warp, WN warps along tokens (NT = 8 FN WN tokens per block); each warp takes 16
// rows. Per K step a warp builds its A fragments from the span bytes in shared memory, multiplies them with its
// tokens' codes and applies the scales in float, while the copies of the next two steps run.
template <quant::Type K, int FN, int WN>
__global__ void __launch_bounds__(32 * kWarpsM * WN)
    mmq_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_out, int64_t n_steps, const Int8Rows act,
               int64_t n_tok, float* __restrict__ out, int64_t out_stride, int64_t steps_per_split,
               int64_t split_len) {
  using T = Span<K>;
  constexpr int kThreads = 32 * kWarpsM * WN;
  constexpr int kNT = 8 * FN * WN;
  extern __shared__ uint4 smem[];
  auto* stages = reinterpret_cast<Stage<K, kNT>*>(smem);
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;  // fragment group and thread in group
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kMT;
  const int64_t btok0 = static_cast<int64_t>(blockIdx.y) * kNT;  // the block's first token
  const int tl0 = 8 * FN * wn;                                   // this warp's first token in the block
  const int64_t tok0 = btok0 + tl0;
  const int64_t first = static_cast<int64_t>(blockIdx.z) * steps_per_split;
  const int64_t n_my = min(steps_per_split, n_steps - first);
  const int64_t n_blocks = n_steps * T::kBlocks;
  if (gridDim.z > 1) out += static_cast<int64_t>(blockIdx.z) * n_tok * out_stride;

  const Copies<K, kNT, kThreads> copies(w, nb1, n_out, row0, n_blocks, act, n_tok, btok0, tid);
  // The weights of the first steps are asked for before the previous kernel (which wrote the tokens) ends.
  mma_ring::ring_start<kStages>(copies, stages, first, n_my, tid);

  float acc[FN][4];
#pragma unroll
  for (int n = 0; n < FN; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.0f;
  }
  // A block whose steps span several of the weight's K splits (split_len steps each) sums each split's steps in
  // acc from zero and adds the finished splits into total in split order: reduce_splits' arithmetic, so the
  // result is the same bits as a launch of one split per block plus reduce_splits.
  float total[FN][4];
#pragma unroll
  for (int n = 0; n < FN; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) total[n][e] = 0.0f;  // reduce_splits starts from 0.0f too
  }
  bool crossed = false;
  const int r_lo = 16 * wm + g, r_hi = r_lo + 8;  // this thread's rows of the warp's fragment

  int cur = 0;  // the stage of step s; step s + kStages - 1 goes into the one step s - 1 used
  for (int64_t s = 0; s < n_my; ++s) {
    const int64_t step = first + s;
    if (s > 0 && step % split_len == 0) {  // uniform across the block
      mma_ring::fold_split(acc, total);
      crossed = true;
    }
    async_copy_wait<kStages - 2>();  // this thread's copies of step s have landed
    __syncthreads();                 // everyone's have, and every warp is done with the stage refilled next
    if (s + kStages - 1 < n_my) {
      copies.template start<true, true>(stages[cur == 0 ? kStages - 1 : cur - 1], step + kStages - 1, tid);
    }
    async_copy_commit();
    const Stage<K, kNT>& st = stages[cur];
    cur = cur + 1 == kStages ? 0 : cur + 1;
    const auto* wl = reinterpret_cast<const uint32_t*>(st.w[r_lo]);
    const auto* wh = reinterpret_cast<const uint32_t*>(st.w[r_hi]);

    int isum[T::kSuper ? FN : 1][4], msum[T::kMins ? FN : 1][4];
    if constexpr (T::kSuper) {
#pragma unroll
      for (int n = 0; n < FN; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          isum[n][e] = 0;
          if constexpr (T::kMins) msum[n][e] = 0;  // Q6_K has no minimums (msum is one fragment there)
        }
      }
    }
    // Lane l's row for the B fragments: token 8 (l / 16) + l % 8 of the warp's, bytes 16 ((l / 8) % 2) on.
    const int8_t* xrow = &st.x[tl0 + 8 * (lane / 16) + lane % 8][16 * ((lane / 8) % 2)];
#pragma unroll
    for (int j = 0; j < 8; ++j) {  // 32-element groups
      uint32_t a[4];
      a_fragment<K>(wl, wh, j, t, a);
      uint32_t bf[FN][2];
      if constexpr (FN == 1) {
        mma_ring::ldsm_x2(bf[0], xrow + 32 * j);
      } else {
#pragma unroll
        for (int n = 0; n < FN; n += 2) {
          uint32_t r[4];
          mma_ring::ldsm_x4(r, xrow + 8 * n * kXLd + 32 * j);
          bf[n][0] = r[0], bf[n][1] = r[1], bf[n + 1][0] = r[2], bf[n + 1][1] = r[3];
        }
      }
      if constexpr (!T::kSuper) {  // Q4_0 / Q8_0: one scale per 32-element block on each side
        const float w_lo = half_bits_to_float(reinterpret_cast<const uint16_t*>(wl)[T::scale_half() + j]);
        const float w_hi = half_bits_to_float(reinterpret_cast<const uint16_t*>(wh)[T::scale_half() + j]);
#pragma unroll
        for (int n = 0; n < FN; ++n) {
          int c[4] = {0, 0, 0, 0};
          mma_k32(c, a, bf[n][0], bf[n][1]);
          const float2 da = *reinterpret_cast<const float2*>(&st.xd[j][tl0 + 8 * n + 2 * t]);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            // |c| <= 32 * 128 * 127 < 2^22. Half the sums convert through the (quarter-rate) conversion
            // instruction, half through an integer add and a float subtract: the same values, the pipes balanced.
            const float cf = (e & 2) ? static_cast<float>(c[e]) : small_int_to_float(c[e]);
            acc[n][e] += cf * ((e < 2 ? w_lo : w_hi) * ((e & 1) ? da.y : da.x));
          }
        }
      } else if constexpr (T::kMins) {  // Q4_K / Q5_K: integer sums over the super block
        int sc_lo, sc_hi, m_lo, m_hi;
        scale_min_k4(reinterpret_cast<const uint8_t*>(wl + T::head_word()) + 4, j, &sc_lo, &m_lo);
        scale_min_k4(reinterpret_cast<const uint8_t*>(wh + T::head_word()) + 4, j, &sc_hi, &m_hi);
        // The minimums' sums m_j * (sum of the group's codes) come from an MMA too: A holds m_j in all 32 columns.
        const uint32_t ml = static_cast<uint32_t>(m_lo) * 0x01010101u, mh = static_cast<uint32_t>(m_hi) * 0x01010101u;
        const uint32_t am[4] = {ml, mh, ml, mh};
#pragma unroll
        for (int n = 0; n < FN; ++n) {
          int c[4] = {0, 0, 0, 0};
          mma_k32(c, a, bf[n][0], bf[n][1]);
          mma_k32(msum[n], am, bf[n][0], bf[n][1]);
#pragma unroll
          for (int e = 0; e < 4; ++e) isum[n][e] += (e < 2 ? sc_lo : sc_hi) * c[e];
        }
      } else {  // Q6_K: two 16-element sub-blocks per group, each with its own scale
        const auto* hl = reinterpret_cast<const int8_t*>(wl + T::head_word());
        const auto* hh = reinterpret_cast<const int8_t*>(wh + T::head_word());
#pragma unroll
        for (int hsub = 0; hsub < 2; ++hsub) {
          const int sc_lo = hl[2 * j + hsub], sc_hi = hh[2 * j + hsub];
#pragma unroll
          for (int n = 0; n < FN; ++n) {
            int c[4] = {0, 0, 0, 0};
            mma_k16(c, a[2 * hsub], a[2 * hsub + 1], bf[n][hsub]);
#pragma unroll
            for (int e = 0; e < 4; ++e) isum[n][e] += (e < 2 ? sc_lo : sc_hi) * c[e];
          }
        }
      }
    }
    if constexpr (T::kSuper) {  // d (and dmin) per super block, Q8_K's scale per 256 activations
      const auto* hl = reinterpret_cast<const uint16_t*>(wl);
      const auto* hh = reinterpret_cast<const uint16_t*>(wh);
      float d_lo, d_hi, m_lo = 0.0f, m_hi = 0.0f;
      if constexpr (T::kMins) {
        d_lo = half_bits_to_float(hl[2 * T::head_word()]), d_hi = half_bits_to_float(hh[2 * T::head_word()]);
        m_lo = half_bits_to_float(hl[2 * T::head_word() + 1]), m_hi = half_bits_to_float(hh[2 * T::head_word() + 1]);
      } else {
        const int off = T::scale_half() + T::scale_offset(step);
        d_lo = half_bits_to_float(hl[off]), d_hi = half_bits_to_float(hh[off]);
      }
#pragma unroll
      for (int n = 0; n < FN; ++n) {
        const float2 da2 = *reinterpret_cast<const float2*>(&st.xd[0][tl0 + 8 * n + 2 * t]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float da = (e & 1) ? da2.y : da2.x;
          const float dw = e < 2 ? d_lo : d_hi;
          if constexpr (K == quant::Type::Q6_K) {
            acc[n][e] += da * dw * static_cast<float>(isum[n][e]);
          } else {
            acc[n][e] += da * (dw * static_cast<float>(isum[n][e]) - (e < 2 ? m_lo : m_hi) * static_cast<float>(msum[n][e]));
          }
        }
      }
    }
  }
#pragma unroll
  for (int n = 0; n < FN; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = row0 + (e < 2 ? r_lo : r_hi);
      const int64_t tok = tok0 + 8 * n + 2 * t + (e & 1);
      if (row < n_out && tok < n_tok) out[tok * out_stride + row] = crossed ? total[n][e] + acc[n][e] : acc[n][e];
    }
  }
}


template <quant::Type K, int FN, int WN>
void launch(const WeightView& w, const Int8Rows& act, int64_t n_tok, const mma_ring::SplitPlan& p, int64_t n_steps,
            gpuStream_t stream) {
  constexpr int kNT = 8 * FN * WN;
  const dim3 grid(static_cast<unsigned>((w.n_out + kMT - 1) / kMT), static_cast<unsigned>((n_tok + kNT - 1) / kNT),
                  static_cast<unsigned>(p.splits));
  constexpr size_t kShared = kStages * sizeof(Stage<K, kNT>);
  static OncePerContext opt_in;  // above 48 KB needs the opt-in, once per kernel and context
  const bool opted_in = opt_in([&] {
    return gpuFuncSetAttribute(reinterpret_cast<const void*>(&mmq_kernel<K, FN, WN>),
                               gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kShared)) == gpuSuccess;
  });
  (void)opted_in;  // a refused opt-in shows as the launch error
  launch_kernel(mmq_kernel<K, FN, WN>, grid, 32 * kWarpsM * WN, kShared, stream, static_cast<const uint8_t*>(w.data),
                w.nb1, w.n_out, n_steps, act, n_tok, p.dst, p.dst_stride, p.steps_per_split, p.split_len);
}

template <quant::Type K>
void launch_fn(int fn, const WeightView& w, const Int8Rows& act, int64_t n_tok, const mma_ring::SplitPlan& p,
               int64_t n_steps, gpuStream_t stream) {
  switch (fn) {  // tokens per block: 8, 16, 32, 64, 128
    case 1: launch<K, 1, 1>(w, act, n_tok, p, n_steps, stream); break;
    case 2: launch<K, 2, 1>(w, act, n_tok, p, n_steps, stream); break;
    case 4: launch<K, 4, 1>(w, act, n_tok, p, n_steps, stream); break;
    case 8: launch<K, 4, 2>(w, act, n_tok, p, n_steps, stream); break;
    default: launch<K, 4, 4>(w, act, n_tok, p, n_steps, stream); break;
  }
}

}  // namespace

bool has_mmq_matmul(quant::Type weight) {
  using quant::Type;
  return weight == Type::Q4_0 || weight == Type::Q8_0 || weight == Type::Q4_K || weight == Type::Q5_K ||
         weight == Type::Q6_K;
}

Status matmul_mmq(const WeightView& w, const Int8Rows& act, int64_t n_tok, float* out, int64_t out_stride,
                  gpuStream_t stream) {
  if (n_tok == 0 || w.n_out == 0) return ok_status();
  if (!has_mmq_matmul(w.type) || w.n_in % kStep != 0) {
    return Status::error("gpu matmul_mmq: needs Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K rows of whole 256-element spans, got " +
                         std::string(quant::type_name(w.type)) + " x " + std::to_string(w.n_in));
  }
  if (n_tok > 65535 * 32) return Status::error("gpu matmul_mmq: too many tokens for one launch");
  if (!split_rows_aligned(w)) {
    return Status::error("gpu matmul_mmq: " + std::string(quant::type_name(w.type)) +
                         " weight rows are not 16-byte aligned split rows");
  }
  const int64_t n_steps = w.n_in / kStep;
  const int64_t row_tiles = (w.n_out + kMT - 1) / kMT;
  const int fn = n_tok <= 8 ? 1 : n_tok <= 16 ? 2 : n_tok <= 32 ? 4 : n_tok <= 64 ? 8 : 16;
  const int64_t tok_tiles = (n_tok + 8 * fn - 1) / (8 * fn);
  const auto plan = mma_ring::plan_splits("gpu matmul_mmq", n_steps, row_tiles, 2, tok_tiles,
                                          matmul_policy().mmq_fuse_split_blocks, n_tok, w.n_out, out, out_stride,
                                          stream);
  if (!plan) return plan.status();
  const mma_ring::SplitPlan& p = *plan;
  switch (w.type) {
    case quant::Type::Q4_0: launch_fn<quant::Type::Q4_0>(fn, w, act, n_tok, p, n_steps, stream); break;
    case quant::Type::Q8_0: launch_fn<quant::Type::Q8_0>(fn, w, act, n_tok, p, n_steps, stream); break;
    case quant::Type::Q4_K: launch_fn<quant::Type::Q4_K>(fn, w, act, n_tok, p, n_steps, stream); break;
    case quant::Type::Q5_K: launch_fn<quant::Type::Q5_K>(fn, w, act, n_tok, p, n_steps, stream); break;
    default: launch_fn<quant::Type::Q6_K>(fn, w, act, n_tok, p, n_steps, stream); break;
  }
  return mma_ring::finish_splits(p, "matmul_mmq launch", n_tok, w.n_out, out, out_stride, stream);
}

#else  // HIP: no integer tensor-core kernel (see the top of this file)

bool has_mmq_matmul(quant::Type) { return false; }

Status matmul_mmq(const WeightView&, const Int8Rows&, int64_t, float*, int64_t, gpuStream_t) {
  return Status::error("gpu matmul_mmq: not available in HIP builds");
}

#endif

}  // namespace rf::gpu
