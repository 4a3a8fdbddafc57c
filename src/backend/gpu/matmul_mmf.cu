// Tensor-core product of F16 / BF16 weights (matmul.h: matmul_mmf): out[token][row] = weight row . activation row,
// for the batched decode of float models (2 to 32 tokens) and, in batch-invariant backends, every F16 / BF16 product
// (one token to whole prompts: a token's bits must not depend on its batch). matmul_mma's tiles decode every format to
// F16 in shared memory with a barrier between loads and products, and streamed F16 weights at ~29 % of the copy
// bandwidth at 8-32 tokens; here the weights are already MMA operands, so they go from global to shared memory as
// stored and from there to mma.sync through ldmatrix, as matmul_mmq does for the integer formats:
//   - a block computes 64 rows x NT tokens (8, 16, 32), four warps of 16 rows, each warp all NT tokens;
//   - K steps of 128 elements go through a ring of three stages: cp.async copies step s + 2 (the 64 rows' 256
//     bytes each and the tokens' rows, rounded to the weights' format beforehand by round_activations_16bit) while
//     the warps multiply step s (one barrier per step); the weights of the first two steps are asked for before
//     the kernel waits for the one that wrote the tokens;
//   - mma.sync m16n8k16 with F32 accumulators. The activations arrive rounded to the weights' 16-bit format as the
//     CPU rounds them, so every product is exact in F32; only the summation order differs from the CPU's.
// Splits over K depend only on the weight's shape and are summed in split order (reduce_splits, or in the block when
// the unsplit grid fills the GPU: the same additions), so a token's result is the same bits whatever the rest of its
// batch. Token tiles vary fastest in the grid, so that the tiles of a long batch share each row tile through L2.
// Portability: mma.sync / ldmatrix / cp.async are NVIDIA sm_80+. HIP builds have no such kernel (has_mmf_matmul is
// false there) and keep matmul_mma / the float kernels.
#include <algorithm>
#include <string>

#include "backend/gpu/matmul.h"
#include "backend/gpu/mma_ring.cuh"

namespace rf::gpu {

#if defined(RF_GPU_CUDA)
namespace {

constexpr int kStep = 128;                  // weight elements per row per K step (256 bytes)
constexpr int kChunks = kStep * 2 / 16;     // 16-byte chunks per row and step
constexpr int kLd = kChunks + 1;            // chunks per row in shared memory: odd, so ldmatrix rows hit all banks
constexpr int kMT = 64;                     // rows per block
constexpr int kWarps = 4;                   // 16 rows each
constexpr int kThreads = 32 * kWarps;
constexpr int kStages = 3;

template <int NT>
struct alignas(16) Stage {
  uint4 w[kMT][kLd];
  uint4 x[NT][kLd];
};

template <bool kBf16>
RF_DEVICE void mma_k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// A thread's copies of every K step, fixed for the block: weight chunk slots (rows past the matrix repeat its last
// row, whose sums are not stored) and token chunk slots (tokens past the batch repeat its last).
template <int NT>
struct Copies {
  static constexpr int kWAll = kMT * kChunks, kXAll = NT * kChunks;
  static constexpr int kW = kWAll / kThreads;
  static constexpr int kX = (kXAll + kThreads - 1) / kThreads;
  static_assert(kWAll % kThreads == 0, "weight copies split evenly");
  const uint8_t* w[kW];
  const uint8_t* x[kX];

  RF_DEVICE Copies(const uint8_t* wt, size_t nb1, int64_t n_out, int64_t row0, const uint8_t* act, int64_t act_stride,
                   int64_t n_tok, int64_t tok0, int tid) {
#pragma unroll
    for (int l = 0; l < kW; ++l) {
      const int i = tid + l * kThreads;
      w[l] = wt + min(row0 + i / kChunks, n_out - 1) * nb1 + 16 * (i % kChunks);
    }
#pragma unroll
    for (int l = 0; l < kX; ++l) {
      const int i = min(tid + l * kThreads, kXAll - 1);
      x[l] = act + min(tok0 + i / kChunks, n_tok - 1) * act_stride + 16 * (i % kChunks);
    }
  }
  template <bool kWeights, bool kTokens>
  RF_DEVICE void start(Stage<NT>& st, int64_t step, int tid) const {
    const int64_t off = step * kStep * 2;
    if constexpr (kWeights) {
#pragma unroll
      for (int l = 0; l < kW; ++l) {
        const int i = tid + l * kThreads;
        async_copy16(&st.w[i / kChunks][i % kChunks], w[l] + off);
      }
    }
    if constexpr (kTokens) {
#pragma unroll
      for (int l = 0; l < kX; ++l) {
        const int i = tid + l * kThreads;
        if (kXAll % kThreads == 0 || i < kXAll) async_copy16(&st.x[i / kChunks][i % kChunks], x[l] + off);
      }
    }
  }
};

// FN fragments of 8 tokens (NT = 8 FN): each warp takes 16 rows and all NT tokens of the block.
template <bool kBf16, int FN>
__global__ void __launch_bounds__(kThreads)
    mmf_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_out, int64_t n_steps, const uint8_t* act,
               int64_t act_stride, int64_t n_tok, float* __restrict__ out, int64_t out_stride,
               int64_t steps_per_split, int64_t split_len) {
  constexpr int kNT = 8 * FN;
  extern __shared__ uint4 smem[];
  auto* stages = reinterpret_cast<Stage<kNT>*>(smem);
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  // Token tiles vary fastest: the tiles of a long batch that read the same rows run together and share them in L2.
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kMT;
  const int64_t tok0 = static_cast<int64_t>(blockIdx.x) * kNT;
  const int64_t first = static_cast<int64_t>(blockIdx.z) * steps_per_split;
  const int64_t n_my = min(steps_per_split, n_steps - first);
  if (gridDim.z > 1) out += static_cast<int64_t>(blockIdx.z) * n_tok * out_stride;

  const Copies<kNT> copies(w, nb1, n_out, row0, act, act_stride, n_tok, tok0, tid);
  mma_ring::ring_start<kStages>(copies, stages, first, n_my, tid);
  float acc[FN][4];
  // A block whose steps span several of the weight's K splits (split_len steps each) sums each split from zero and
  // adds the finished ones into total in split order: reduce_splits' arithmetic, the same bits as split blocks.
  float total[FN][4];
#pragma unroll
  for (int n = 0; n < FN; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = total[n][e] = 0.0f;
  }
  bool crossed = false;
  // ldmatrix rows: A, lane l addresses row 16 warp + l % 16 at element 8 (l / 16); B, token 8 (l / 16) + l % 8 at
  // element 8 ((l / 8) % 2) (x2 uses lanes 0-15 only).
  const int a_row = 16 * warp + lane % 16, a_col = lane / 16;
  const int b_tok = 8 * (lane / 16) + lane % 8, b_col = (lane / 8) % 2;
  int cur = 0;
  for (int64_t s = 0; s < n_my; ++s) {
    if (s > 0 && (first + s) % split_len == 0) {  // uniform across the block
      mma_ring::fold_split(acc, total);
      crossed = true;
    }
    async_copy_wait<kStages - 2>();
    __syncthreads();
    if (s + kStages - 1 < n_my) {
      copies.template start<true, true>(stages[cur == 0 ? kStages - 1 : cur - 1], first + s + kStages - 1, tid);
    }
    async_copy_commit();
    const Stage<kNT>& st = stages[cur];
    cur = cur + 1 == kStages ? 0 : cur + 1;
#pragma unroll
    for (int j = 0; j < kStep / 16; ++j) {  // 16-element groups: two chunks of each row
      uint32_t a[4];
      mma_ring::ldsm_x4(a, &st.w[a_row][2 * j + a_col]);
      uint32_t bf[FN][2];
      if constexpr (FN == 1) {
        mma_ring::ldsm_x2(bf[0], &st.x[b_tok][2 * j + b_col]);
      } else {
#pragma unroll
        for (int n = 0; n < FN; n += 2) {
          uint32_t r[4];
          mma_ring::ldsm_x4(r, &st.x[8 * n + b_tok][2 * j + b_col]);
          bf[n][0] = r[0], bf[n][1] = r[1], bf[n + 1][0] = r[2], bf[n + 1][1] = r[3];
        }
      }
#pragma unroll
      for (int n = 0; n < FN; ++n) mma_k16<kBf16>(acc[n], a, bf[n][0], bf[n][1]);
    }
  }
#pragma unroll
  for (int n = 0; n < FN; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = row0 + 16 * warp + g + (e < 2 ? 0 : 8);
      const int64_t tok = tok0 + 8 * n + 2 * t + (e & 1);
      if (row < n_out && tok < n_tok) out[tok * out_stride + row] = crossed ? total[n][e] + acc[n][e] : acc[n][e];
    }
  }
}

template <bool kBf16, int FN>
void launch(const WeightView& w, const uint16_t* act, int64_t act_stride, int64_t n_tok, const mma_ring::SplitPlan& p,
            int64_t n_steps, gpuStream_t stream) {
  constexpr int kNT = 8 * FN;
  const dim3 grid(static_cast<unsigned>((n_tok + kNT - 1) / kNT), static_cast<unsigned>((w.n_out + kMT - 1) / kMT),
                  static_cast<unsigned>(p.splits));
  constexpr size_t kShared = kStages * sizeof(Stage<kNT>);
  static OncePerContext opt_in;  // above 48 KB needs the opt-in, once per kernel and context
  const bool opted_in = opt_in([&] {
    return gpuFuncSetAttribute(reinterpret_cast<const void*>(&mmf_kernel<kBf16, FN>),
                               gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kShared)) == gpuSuccess;
  });
  (void)opted_in;  // a refused opt-in shows as the launch error
  launch_kernel(mmf_kernel<kBf16, FN>, grid, kThreads, kShared, stream, static_cast<const uint8_t*>(w.data), w.nb1,
                w.n_out, n_steps, reinterpret_cast<const uint8_t*>(act), act_stride * 2, n_tok, p.dst, p.dst_stride,
                p.steps_per_split, p.split_len);
}

template <bool kBf16>
void launch_fn(int fn, const WeightView& w, const uint16_t* act, int64_t act_stride, int64_t n_tok,
               const mma_ring::SplitPlan& p, int64_t n_steps, gpuStream_t stream) {
  switch (fn) {  // tokens per block: 8, 16, 32
    case 1: launch<kBf16, 1>(w, act, act_stride, n_tok, p, n_steps, stream); break;
    case 2: launch<kBf16, 2>(w, act, act_stride, n_tok, p, n_steps, stream); break;
    default: launch<kBf16, 4>(w, act, act_stride, n_tok, p, n_steps, stream); break;
  }
}

}  // namespace

bool mmf_fits(const WeightView& w) {
  using quant::Type;
  return (w.type == Type::F16 || w.type == Type::BF16) && matmul_policy().mmf_max_tokens > 0 && w.n_in % kStep == 0 &&
         w.n_out <= int64_t{65535} * kMT && w.nb1 % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
}

bool has_mmf_matmul(const WeightView& w, int64_t n_tok) {
  return mmf_fits(w) && n_tok >= 2 && n_tok <= matmul_policy().mmf_max_tokens;
}

Status matmul_mmf(const WeightView& w, const uint16_t* act, int64_t act_stride, int64_t n_tok, float* out,
                  int64_t out_stride, gpuStream_t stream) {
  if (n_tok == 0 || w.n_out == 0) return ok_status();
  if (!mmf_fits(w) || n_tok > int64_t{1} << 30 || act_stride % 8 != 0 || reinterpret_cast<uintptr_t>(act) % 16 != 0) {
    return Status::error("gpu matmul_mmf: needs F16 / BF16 weights in 16-byte aligned rows of 128-element multiples "
                         "and 16-byte aligned activation rows, got " + std::string(quant::type_name(w.type)) + " x " +
                         std::to_string(w.n_in) + ", " + std::to_string(n_tok) + " tokens");
  }
  const int64_t n_steps = w.n_in / kStep;
  const int64_t row_tiles = (w.n_out + kMT - 1) / kMT;
  const int fn = n_tok <= 8 ? 1 : n_tok <= 16 ? 2 : 4;
  const int64_t tok_tiles = (n_tok + 8 * fn - 1) / (8 * fn);
  const auto plan = mma_ring::plan_splits("gpu matmul_mmf", n_steps, row_tiles, 4, tok_tiles,
                                          mma_ring::kTargetBlocks / 2, n_tok, w.n_out, out, out_stride, stream);
  if (!plan) return plan.status();
  if (w.type == quant::Type::BF16) {
    launch_fn<true>(fn, w, act, act_stride, n_tok, *plan, n_steps, stream);
  } else {
    launch_fn<false>(fn, w, act, act_stride, n_tok, *plan, n_steps, stream);
  }
  return mma_ring::finish_splits(*plan, "matmul_mmf launch", n_tok, w.n_out, out, out_stride, stream);
}

#else  // HIP: no F16 tensor-core streaming kernel (see the top of this file)

bool mmf_fits(const WeightView&) { return false; }
bool has_mmf_matmul(const WeightView&, int64_t) { return false; }

Status matmul_mmf(const WeightView&, const uint16_t*, int64_t, int64_t, float*, int64_t, gpuStream_t) {
  return Status::error("gpu matmul_mmf: not available in HIP builds");
}

#endif

}  // namespace rf::gpu
