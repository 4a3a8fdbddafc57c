// Pieces shared by the streaming tensor-core products (matmul_mmq.cu: integer formats, matmul_mmf.cu: F16 / BF16):
// ldmatrix loads, the start of a cp.async ring of K steps, and the in-block sums of K splits. NVIDIA sm_80+ only
// (empty elsewhere).
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"

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

}  // namespace rf::gpu::mma_ring
#endif
