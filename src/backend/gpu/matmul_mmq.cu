// Integer tensor-core product for batches (matmul.h: matmul_mmq): out[token][row] = weight row . activation row
// for Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights and activations quantized to Q8_0 / Q8_K codes (quantize_int8_rows).
//
// A block computes MT = 64 weight rows x NT tokens (8, 16, 32: 4 warps of 16 rows x NT; 64, 128: 8 warps, each 16
// rows x NT / 2). Per K step of 256 elements:
//   1. the weight bytes of the step (64 rows x one 256-element span of split rows, matmul.h SplitLayout: the
//      span's code bodies, its head, its scale chunk) arrive with 16-byte loads (issued one step ahead, held in
//      registers) and are stored as they are in shared memory;
//   2. each thread decodes 32-element groups of them into int8 codes in shared memory (Q4_0 and Q6_K codes carry
//      their offset already: code - 8, code - 32) plus the group's scales;
//   3. each warp multiplies its 16 rows with the tokens' codes (staged in shared memory with the weights, one step
//      ahead, with their scales and code sums) through mma.sync m16n8k32 (m16n8k16 for Q6_K's 16-element
//      sub-blocks): exact int32 sums per group, then the scales in float, as the CPU reference applies them
//      (Q4_K/Q5_K/Q6_K: integer sums over the super block first, then d and dmin).
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

namespace rf::gpu {

#if defined(RF_GPU_CUDA)
namespace {

constexpr int kStep = 256;                  // weight elements per row per K step
constexpr int kMT = 64;                     // rows per block
constexpr int kWarpsM = 4;                  // warps along rows, 16 rows each
constexpr int kCleanLd = kStep + 16;        // bytes per decoded row (spreads the fragment loads over all banks)
constexpr int kMaxSplits = 16;
constexpr int64_t kTargetBlocks = 4 * 132;  // ~4 resident blocks per SM of an H100-class part

// One step's bytes of a split row (matmul.h SplitLayout), as 16-byte chunks: the bodies of its blocks (kBlocks
// of them: 8 of Q4_0 / Q8_0, one K-quant block), then the block's head (K-quants), then the 16-byte aligned chunk
// of f16 scales that holds the step's (Q4_0 / Q8_0: exactly the step's 8; Q6_K: 8 blocks' d, this one at byte
// 2 (step % 8)).
template <quant::Type K>
struct Span {
  static constexpr bool kSuper = split_layout(K).qk == 256;  // K-quants: d (and dmin) per 256-element block
  static constexpr bool kSub16 = K == quant::Type::Q6_K;      // 16-element sub-blocks, each with its scale
  static constexpr int kBlocks = kStep / split_layout(K).qk;
  static constexpr int kBody = split_code_bytes(K);
  static constexpr int kCodes = kBlocks * kBody;            // body bytes per step
  static constexpr int kHead = split_head_bytes(K);     // 16 or 0 (K-quants: one block per step)
  static constexpr bool kScales = split_scale_bytes(K) > 0;
  static constexpr int kChunks = kCodes / 16 + (kHead > 0 ? 1 : 0) + (kScales ? 1 : 0);
  // Byte offset of the step's first f16 scale in its scale chunk.
  static RF_DEVICE int scale_offset(int64_t step) { return static_cast<int>((step * kBlocks * 2) & 15); }
};

// Shared memory of a block of NT tokens (dynamic: up to ~86 KB).
template <quant::Type K, int NT>
struct alignas(16) Shared {
  uint4 raw[kMT][Span<K>::kChunks];
  int8_t codes[kMT][kCleanLd];
  float f[kMT][8];   // Q4_0 / Q8_0: the scale of each block; K-quants: f[0] = d, f[1] = dmin
  int sc[kMT][16];   // Q4_K / Q5_K: scales [0, 8) and minimums [8, 16); Q6_K: the 16 sub-block scales
  int8_t xq[NT][kCleanLd];  // the tokens' activation codes of the step (zeros past the batch)
  float xd[NT][8];          // their scales (Q8_0: one per 32-element block; Q8_K: [0] for the step)
  int xs[NT][8];            // their sums of 32 codes (Q4_K / Q5_K minimums)
};

RF_DEVICE uint32_t ld_u16(const uint8_t* base, int off) {
  return static_cast<uint32_t>(base[off]) | (static_cast<uint32_t>(base[off + 1]) << 8);
}

// Decodes 32-element group j (0..7) of row r's step span into codes[r][32 j, +32) and scales; the span's chunks
// in raw[r] (Span), its first f16 scale at byte `off` of the scale chunk.
template <quant::Type K, typename Sh>
RF_DEVICE void decode_group(Sh& sh, int r, int j, int off) {
  using S = Span<K>;
  const auto* raw = reinterpret_cast<const uint8_t*>(sh.raw[r]);
  const auto* words = reinterpret_cast<const uint32_t*>(sh.raw[r]);
  constexpr int kScaleAt = S::kCodes + S::kHead;  // the scale chunk
  uint32_t c[8];
  if constexpr (K == quant::Type::Q4_0) {
    const uint4 q4 = sh.raw[r][j];
    const uint32_t q[4] = {q4.x, q4.y, q4.z, q4.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      c[k] = sub_bytes(q[k] & 0x0F0F0F0Fu, 0x08080808u);
      c[k + 4] = sub_bytes((q[k] >> 4) & 0x0F0F0F0Fu, 0x08080808u);
    }
    sh.f[r][j] = half_bits_to_float(static_cast<uint16_t>(ld_u16(raw, kScaleAt + off + 2 * j)));
  } else if constexpr (K == quant::Type::Q8_0) {
    const uint4 lo = sh.raw[r][2 * j], hi = sh.raw[r][2 * j + 1];
    c[0] = lo.x, c[1] = lo.y, c[2] = lo.z, c[3] = lo.w, c[4] = hi.x, c[5] = hi.y, c[6] = hi.z, c[7] = hi.w;
    sh.f[r][j] = half_bits_to_float(static_cast<uint16_t>(ld_u16(raw, kScaleAt + off + 2 * j)));
  } else if constexpr (K == quant::Type::Q4_K || K == quant::Type::Q5_K) {  // body: (Q5_K: qh[32]) qs[128]; head at kCodes
    constexpr int kQs = K == quant::Type::Q5_K ? 32 : 0;
    const int ch = j / 2, shift = 4 * (j & 1);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      c[k] = (words[(kQs + 32 * ch) / 4 + k] >> shift) & 0x0F0F0F0Fu;
      if constexpr (K == quant::Type::Q5_K) c[k] |= ((words[k] >> j) & 0x01010101u) << 4;
    }
    scale_min_k4(raw + S::kCodes + 4, j, &sh.sc[r][j], &sh.sc[r][8 + j]);
    if (j == 0) {
      sh.f[r][0] = half_bits_to_float(static_cast<uint16_t>(ld_u16(raw, S::kCodes)));
      sh.f[r][1] = half_bits_to_float(static_cast<uint16_t>(ld_u16(raw, S::kCodes + 2)));
    }
  } else {  // Q6_K: group j = quarter q of half h; 4-bit low parts in ql, 2-bit high parts in qh; head: scales
    const int h = j / 4, q = j % 4;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const uint32_t lo = (words[(64 * h + 32 * (q & 1)) / 4 + k] >> (4 * (q >> 1))) & 0x0F0F0F0Fu;
      const uint32_t hi = (words[(128 + 32 * h) / 4 + k] >> (2 * q)) & 0x03030303u;
      c[k] = sub_bytes(lo | (hi << 4), 0x20202020u);
    }
    sh.sc[r][2 * j] = static_cast<int8_t>(raw[S::kCodes + 2 * j]);
    sh.sc[r][2 * j + 1] = static_cast<int8_t>(raw[S::kCodes + 2 * j + 1]);
    if (j == 0) sh.f[r][0] = half_bits_to_float(static_cast<uint16_t>(ld_u16(raw, kScaleAt + off)));
  }
  auto* dst = reinterpret_cast<uint4*>(&sh.codes[r][32 * j]);
  dst[0] = make_uint4(c[0], c[1], c[2], c[3]);
  dst[1] = make_uint4(c[4], c[5], c[6], c[7]);
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

// FN fragments of 8 tokens per warp, WN warps along tokens (NT = 8 FN WN tokens per block).
template <quant::Type K, int FN, int WN>
__global__ void __launch_bounds__(32 * kWarpsM * WN)
    mmq_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_out, int64_t n_steps, const Int8Rows act,
               int64_t n_tok, float* __restrict__ out, int64_t out_stride, int64_t steps_per_split,
               int64_t split_len) {
  pdl_prologue();
  using T = Span<K>;
  constexpr int kThreads = 32 * kWarpsM * WN;
  constexpr int kNT = 8 * FN * WN;
  constexpr int kChunks = Span<K>::kChunks;
  constexpr int kLoads = (kMT * kChunks + kThreads - 1) / kThreads;
  constexpr int kXLoads = (kNT * 16 + kThreads - 1) / kThreads;  // 16-byte chunks of the tokens' codes
  constexpr int kXScalars = (kNT * 8 + kThreads - 1) / kThreads;
  extern __shared__ uint4 smem[];
  auto& sh = *reinterpret_cast<Shared<K, kNT>*>(smem);
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;  // fragment group and thread in group
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kMT;
  const int64_t btok0 = static_cast<int64_t>(blockIdx.y) * kNT;  // the block's first token
  const int tl0 = 8 * FN * wn;                                   // this warp's first token in the block
  const int64_t tok0 = btok0 + tl0;
  const int64_t first = static_cast<int64_t>(blockIdx.z) * steps_per_split;
  const int64_t n_my = min(steps_per_split, n_steps - first);
  if (gridDim.z > 1) out += static_cast<int64_t>(blockIdx.z) * n_tok * out_stride;

  const int64_t n_blocks = n_steps * T::kBlocks;
  uint4 regs[kLoads];
  const auto load = [&](int64_t step) {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int i = tid + l * kThreads, r = i / kChunks, c = i % kChunks;
      regs[l] = make_uint4(0, 0, 0, 0);
      if (i < kMT * kChunks && row0 + r < n_out) {
        const uint8_t* row = w + (row0 + r) * nb1;
        using F = SplitFormat<K>;
        const uint8_t* src = c < T::kCodes / 16 ? F::codes(row, step * T::kBlocks) + 16 * c
                             : T::kHead > 0 && c == T::kCodes / 16
                                 ? F::head(row, n_blocks, step * T::kBlocks)
                                 : F::scale_at(row, n_blocks, 0) + ((step * T::kBlocks * 2) & ~int64_t{15});
        regs[l] = *reinterpret_cast<const uint4*>(src);
      }
    }
  };
  // The tokens' codes, scales and sums of a step, loaded with the weights (one step ahead).
  uint4 xregs[kXLoads];
  float xdr[kXScalars];
  int xsr[kXScalars];
  constexpr int kScalesPerStep = T::kSuper ? 1 : 8;
  const auto load_x = [&](int64_t step) {
#pragma unroll
    for (int l = 0; l < kXLoads; ++l) {
      const int i = tid + l * kThreads, tk = i / 16, c = i % 16;
      xregs[l] = make_uint4(0, 0, 0, 0);
      if (i < kNT * 16 && btok0 + tk < n_tok) {
        xregs[l] = reinterpret_cast<const uint4*>(act.q + (btok0 + tk) * act.q_stride + step * kStep)[c];
      }
    }
#pragma unroll
    for (int l = 0; l < kXScalars; ++l) {
      const int i = tid + l * kThreads, tk = i / 8, j = i % 8;
      const bool live = i < kNT * 8 && btok0 + tk < n_tok;
      xdr[l] = live && j < kScalesPerStep ? act.d[(btok0 + tk) * act.d_stride + step * kScalesPerStep + j] : 0.0f;
      xsr[l] = live && T::kSuper ? act.s[(btok0 + tk) * act.s_stride + step * 8 + j] : 0;
    }
  };
  const auto store = [&]() {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const int i = tid + l * kThreads;
      if (i < kMT * kChunks) sh.raw[i / kChunks][i % kChunks] = regs[l];
    }
#pragma unroll
    for (int l = 0; l < kXLoads; ++l) {
      const int i = tid + l * kThreads;
      if (i < kNT * 16) *reinterpret_cast<uint4*>(&sh.xq[i / 16][16 * (i % 16)]) = xregs[l];
    }
#pragma unroll
    for (int l = 0; l < kXScalars; ++l) {
      const int i = tid + l * kThreads;
      if (i < kNT * 8) {
        sh.xd[i / 8][i % 8] = xdr[l];
        sh.xs[i / 8][i % 8] = xsr[l];
      }
    }
  };

  float acc[FN][4];
  int isum[T::kSuper ? FN : 1][4], msum[T::kSuper ? FN : 1][4];
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

  if (n_my > 0) {
    load(first);
    load_x(first);
  }
  for (int64_t s = 0; s < n_my; ++s) {
    const int64_t step = first + s;
    if (s > 0 && step % split_len == 0) {  // uniform across the block
#pragma unroll
      for (int n = 0; n < FN; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          total[n][e] += acc[n][e];
          acc[n][e] = 0.0f;
        }
      }
      crossed = true;
    }
    store();
    __syncthreads();
    for (int task = tid; task < kMT * 8; task += kThreads) {
      const int r = task / 8, j = task % 8;
      decode_group<K>(sh, r, j, T::scale_offset(step));
    }
    if (s + 1 < n_my) {
      load(step + 1);
      load_x(step + 1);
    }
    __syncthreads();

    if constexpr (T::kSuper) {
#pragma unroll
      for (int n = 0; n < FN; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) isum[n][e] = msum[n][e] = 0;
      }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {  // 32-element groups
      if constexpr (!T::kSub16) {
        uint32_t a[4];
        a[0] = *reinterpret_cast<const uint32_t*>(&sh.codes[r_lo][32 * j + 4 * t]);
        a[1] = *reinterpret_cast<const uint32_t*>(&sh.codes[r_hi][32 * j + 4 * t]);
        a[2] = *reinterpret_cast<const uint32_t*>(&sh.codes[r_lo][32 * j + 16 + 4 * t]);
        a[3] = *reinterpret_cast<const uint32_t*>(&sh.codes[r_hi][32 * j + 16 + 4 * t]);
#pragma unroll
        for (int n = 0; n < FN; ++n) {
          int c[4] = {0, 0, 0, 0};
          const int8_t* b = &sh.xq[tl0 + 8 * n + g][32 * j + 4 * t];
          mma_k32(c, a, *reinterpret_cast<const uint32_t*>(b), *reinterpret_cast<const uint32_t*>(b + 16));
          if constexpr (T::kSuper) {  // Q4_K / Q5_K: integer sums over the super block
            const int sc_lo = sh.sc[r_lo][j], sc_hi = sh.sc[r_hi][j];
            const int m_lo = sh.sc[r_lo][8 + j], m_hi = sh.sc[r_hi][8 + j];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int as = sh.xs[tl0 + 8 * n + 2 * t + (e & 1)][j];
              isum[n][e] += (e < 2 ? sc_lo : sc_hi) * c[e];
              msum[n][e] += (e < 2 ? m_lo : m_hi) * as;
            }
          } else {  // Q4_0 / Q8_0: one scale per 32-element block on each side
            const float w_lo = sh.f[r_lo][j], w_hi = sh.f[r_hi][j];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const float da = sh.xd[tl0 + 8 * n + 2 * t + (e & 1)][j];
              acc[n][e] += static_cast<float>(c[e]) * ((e < 2 ? w_lo : w_hi) * da);
            }
          }
        }
      } else {  // Q6_K: two 16-element sub-blocks per group, each with its own scale
#pragma unroll
        for (int hsub = 0; hsub < 2; ++hsub) {
          const int k0 = 32 * j + 16 * hsub;
          const uint32_t a0 = *reinterpret_cast<const uint32_t*>(&sh.codes[r_lo][k0 + 4 * t]);
          const uint32_t a1 = *reinterpret_cast<const uint32_t*>(&sh.codes[r_hi][k0 + 4 * t]);
          const int sc_lo = sh.sc[r_lo][2 * j + hsub], sc_hi = sh.sc[r_hi][2 * j + hsub];
#pragma unroll
          for (int n = 0; n < FN; ++n) {
            int c[4] = {0, 0, 0, 0};
            mma_k16(c, a0, a1, *reinterpret_cast<const uint32_t*>(&sh.xq[tl0 + 8 * n + g][k0 + 4 * t]));
#pragma unroll
            for (int e = 0; e < 4; ++e) isum[n][e] += (e < 2 ? sc_lo : sc_hi) * c[e];
          }
        }
      }
    }
    if constexpr (T::kSuper) {  // d (and dmin) per super block, Q8_K's scale per 256 activations
      const float d_lo = sh.f[r_lo][0], d_hi = sh.f[r_hi][0];
      const float m_lo = sh.f[r_lo][1], m_hi = sh.f[r_hi][1];
#pragma unroll
      for (int n = 0; n < FN; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float da = sh.xd[tl0 + 8 * n + 2 * t + (e & 1)][0];
          const float dw = e < 2 ? d_lo : d_hi;
          if constexpr (K == quant::Type::Q6_K) {
            acc[n][e] += da * dw * static_cast<float>(isum[n][e]);
          } else {
            acc[n][e] += da * (dw * static_cast<float>(isum[n][e]) - (e < 2 ? m_lo : m_hi) * static_cast<float>(msum[n][e]));
          }
        }
      }
    }
    __syncthreads();  // the raw and decoded tiles are rewritten next step
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
void launch(const WeightView& w, const Int8Rows& act, int64_t n_tok, float* dst, int64_t dst_stride, int64_t n_steps,
            int splits, int64_t steps_per_split, int64_t split_len, gpuStream_t stream) {
  constexpr int kNT = 8 * FN * WN;
  const dim3 grid(static_cast<unsigned>((w.n_out + kMT - 1) / kMT), static_cast<unsigned>((n_tok + kNT - 1) / kNT),
                  static_cast<unsigned>(splits));
  constexpr size_t kShared = sizeof(Shared<K, kNT>);
  static OncePerContext opt_in;  // above 48 KB needs the opt-in, once per kernel and context
  const bool opted_in = opt_in([&] {
    return gpuFuncSetAttribute(reinterpret_cast<const void*>(&mmq_kernel<K, FN, WN>),
                               gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kShared)) == gpuSuccess;
  });
  (void)opted_in;  // a refused opt-in shows as the launch error
  launch_kernel(mmq_kernel<K, FN, WN>, grid, 32 * kWarpsM * WN, kShared, stream, static_cast<const uint8_t*>(w.data), w.nb1, w.n_out, n_steps, act,
                                                   n_tok, dst, dst_stride, steps_per_split, split_len);
}

template <quant::Type K>
void launch_fn(int fn, const WeightView& w, const Int8Rows& act, int64_t n_tok, float* dst, int64_t dst_stride,
               int64_t n_steps, int splits, int64_t steps_per_split, int64_t split_len, gpuStream_t stream) {
  switch (fn) {  // tokens per block: 8, 16, 32, 64, 128
    case 1: launch<K, 1, 1>(w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    case 2: launch<K, 2, 1>(w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    case 4: launch<K, 4, 1>(w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    case 8: launch<K, 4, 2>(w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    default: launch<K, 8, 2>(w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
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
  // Splits over K from the weight's shape only (never from n_tok: a token's sums must not depend on its batch).
  const int64_t n_steps = w.n_in / kStep;
  const int64_t row_tiles = (w.n_out + kMT - 1) / kMT;
  int splits = static_cast<int>(std::clamp<int64_t>((kTargetBlocks + row_tiles - 1) / row_tiles, 1,
                                                    std::min<int64_t>(kMaxSplits, std::max<int64_t>(n_steps / 2, 1))));
  const int64_t split_len = (n_steps + splits - 1) / splits;
  splits = static_cast<int>((n_steps + split_len - 1) / split_len);
  const int fn = n_tok <= 8 ? 1 : n_tok <= 16 ? 2 : n_tok <= 32 ? 4 : n_tok <= 64 ? 8 : 16;
  // Batches that fill the GPU without splitting run each block over all of K, with the splits' sums kept apart and
  // added in order in the block (the same bits): no partial sums in memory, no reduce_splits launch.
  const int64_t tok_tiles = (n_tok + 8 * fn - 1) / (8 * fn);
  const int64_t fuse_blocks = matmul_policy().mmq_fuse_split_blocks;
  if (splits > 1 && fuse_blocks > 0 && row_tiles * tok_tiles >= fuse_blocks) splits = 1;
  const int64_t steps_per_split = splits == 1 ? n_steps : split_len;
  float* dst = out;
  int64_t dst_stride = out_stride;
  if (splits > 1) {
    dst = split_scratch(stream, static_cast<size_t>(splits) * static_cast<size_t>(n_tok * w.n_out));
    if (dst == nullptr) return Status::error("gpu matmul_mmq: out of GPU memory for split-K partial sums");
    dst_stride = w.n_out;
  }
  switch (w.type) {
    case quant::Type::Q4_0: launch_fn<quant::Type::Q4_0>(fn, w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    case quant::Type::Q8_0: launch_fn<quant::Type::Q8_0>(fn, w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    case quant::Type::Q4_K: launch_fn<quant::Type::Q4_K>(fn, w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    case quant::Type::Q5_K: launch_fn<quant::Type::Q5_K>(fn, w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
    default: launch_fn<quant::Type::Q6_K>(fn, w, act, n_tok, dst, dst_stride, n_steps, splits, steps_per_split, split_len, stream); break;
  }
  const gpuError_t err = gpuGetLastError();
  if (err != gpuSuccess) return error_status(err, "matmul_mmq launch");
  if (splits > 1) return reduce_splits(dst, splits, n_tok, w.n_out, out, out_stride, stream);
  return ok_status();
}

#else  // HIP: no integer tensor-core kernel (see the top of this file)

bool has_mmq_matmul(quant::Type) { return false; }

Status matmul_mmq(const WeightView&, const Int8Rows&, int64_t, float*, int64_t, gpuStream_t) {
  return Status::error("gpu matmul_mmq: not available in HIP builds");
}

#endif

}  // namespace rf::gpu
