// Test kernels for the portability header's device primitives (warp size, shuffles, reductions) and launchers
// callable from host-only test code. Every launcher enqueues on `stream` and reports launch errors.
#pragma once

#include "backend/gpu/compat.h"
#include "core/status.h"

namespace rf::gpu::test {

// Writes the device code's kWarpSize to *out.
Status launch_warp_size_probe(int* out, gpuStream_t stream);

// n_blocks blocks of block_size threads (a multiple of 64); thread i holds in_int[i] and in_float[i]. For each
// warp w: sums[w] = warp_reduce_sum of its ints, maxes[w] = warp_reduce_max of its floats. *disagreements counts
// lanes whose result differs from lane 0's (the butterfly must leave the result in every lane).
Status launch_warp_reduce(const int* in_int, const float* in_float, int n_blocks, int block_size, int* sums,
                          float* maxes, int* disagreements, gpuStream_t stream);

// One block of block_size threads (a multiple of 64, at most 1024) per row of block_size ints: sums[row] =
// block_reduce_sum of the row. Threads whose result differs from thread 0's are counted in *disagreements.
Status launch_block_reduce(const int* in, int n_rows, int block_size, int* sums, int* disagreements,
                           gpuStream_t stream);

}  // namespace rf::gpu::test
