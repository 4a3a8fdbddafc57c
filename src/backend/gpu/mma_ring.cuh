// Pieces shared by the streaming tensor-core products (matmul_mmq.cu: integer formats, matmul_mmf.cu: F16 / BF16):
// ldmatrix loads, the start of a cp.async ring of K steps, the in-block sums of K splits, and the host's plan of
// those splits. NVIDIA sm_80+ only (empty elsewhere).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "backend/gpu/compat.h"
#include "backend/gpu/matmul.h"

#if defined(RF_GPU_CUDA)
namespace rf::gpu::mma_ring {

// ldmatrix of four / two 8 x 16-byte matrices from shared memory; lane l addresses row l % 8 of matrix l / 8.
RF_DEVICE void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
RF_DEVICE void ldsm_x2(uint32_t (&r)[2], const void* p) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}

// The first kStages - 1 steps of a block's ring (steps first, first + 1, ... of its n_my): their weights are asked
// for before the previous kernel (which wrote the tokens) ends, the tokens after it, one commit group per step.
// copies.start<kWeights, kTokens>(stage, step, tid) issues a thread's copies of one step.
template <int kStages, typename Copies, typename Stage>
RF_DEVICE void ring_start(const Copies& copies, Stage* stages, int64_t first, int64_t n_my, int tid) {
  grid_dependents_launch();
#pragma unroll
  for (int p = 0; p < kStages - 1; ++p) {
    if (p < n_my) copies.template start<true, false>(stages[p], first + p, tid);
  }
  grid_dependency_wait();
#pragma unroll
  for (int p = 0; p < kStages - 1; ++p) {
    if (p < n_my) copies.template start<false, true>(stages[p], first + p, tid);
    async_copy_commit();
  }
}

// A block whose steps span several of the weight's K splits sums each split's steps in acc from zero and, at each
// split boundary, adds acc into total (which starts at 0.0f) in split order: reduce_splits' arithmetic, so the
// result (total + acc at the end, once crossed) is the same bits as a launch of one split per block.
template <int FN>
RF_DEVICE void fold_split(float (&acc)[FN][4], float (&total)[FN][4]) {
#pragma unroll
  for (int n = 0; n < FN; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      total[n][e] += acc[n][e];
      acc[n][e] = 0.0f;
    }
  }
}

constexpr int kMaxSplits = 16;
constexpr int64_t kTargetBlocks = 4 * 132;  // ~4 resident blocks per SM of an H100-class part

// How a launch splits K (n_steps steps over row_tiles tiles of rows): into splits of split_len steps, chosen from the
// weight's shape alone (never from the batch: a token's sums must not depend on it), at least min_steps steps each.
// A launch whose unsplit grid (row_tiles x tok_tiles blocks) reaches fuse_blocks (> 0) runs unsplit, each block
// summing the splits apart (fold_split: the same bits) over steps_per_split = all steps; a split launch writes its
// partial sums to the split-K scratch (dst, dst_stride) for finish_splits.
struct SplitPlan {
  int splits = 1;
  int64_t split_len = 0, steps_per_split = 0;
  float* dst = nullptr;
  int64_t dst_stride = 0;
};

inline Expected<SplitPlan> plan_splits(const char* who, int64_t n_steps, int64_t row_tiles, int64_t min_steps,
                                       int64_t tok_tiles, int64_t fuse_blocks, int64_t n_tok, int64_t n_out,
                                       float* out, int64_t out_stride, gpuStream_t stream) {
  SplitPlan p;
  const int64_t most = std::min<int64_t>(kMaxSplits, std::max<int64_t>(n_steps / min_steps, 1));
  p.splits = static_cast<int>(std::clamp<int64_t>((kTargetBlocks + row_tiles - 1) / row_tiles, 1, most));
  p.split_len = (n_steps + p.splits - 1) / p.splits;
  p.splits = static_cast<int>((n_steps + p.split_len - 1) / p.split_len);
  if (p.splits > 1 && fuse_blocks > 0 && row_tiles * tok_tiles >= fuse_blocks) p.splits = 1;
  p.steps_per_split = p.splits == 1 ? n_steps : p.split_len;
  p.dst = out;
  p.dst_stride = out_stride;
  if (p.splits > 1) {
    p.dst = split_scratch(stream, static_cast<size_t>(p.splits) * static_cast<size_t>(n_tok * n_out));
    if (p.dst == nullptr) return Status::error(std::string(who) + ": out of GPU memory for split-K partial sums");
    p.dst_stride = n_out;
  }
  return p;
}

// After the launch: its error, else the split launch's partial sums added in split order into out.
inline Status finish_splits(const SplitPlan& p, const char* launch_what, int64_t n_tok, int64_t n_out, float* out,
                            int64_t out_stride, gpuStream_t stream) {
  const gpuError_t err = gpuGetLastError();
  if (err != gpuSuccess) return error_status(err, launch_what);
  if (p.splits > 1) return reduce_splits(p.dst, p.splits, n_tok, n_out, out, out_stride, stream);
  return ok_status();
}

}  // namespace rf::gpu::mma_ring
#endif
