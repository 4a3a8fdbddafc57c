#include "compat_kernels.h"

namespace rf::gpu::test {
namespace {

__global__ void warp_size_probe_kernel(int* out) { *out = kWarpSize; }

__global__ void warp_reduce_kernel(const int* in_int, const float* in_float, int* sums, float* maxes,
                                   int* disagreements) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int sum = warp_reduce_sum(in_int[i]);
  const float max = warp_reduce_max(in_float[i]);
  const int lane0_sum = shfl(sum, 0);
  const float lane0_max = shfl(max, 0);
  if (sum != lane0_sum || max != lane0_max) atomicAdd(disagreements, 1);
  if (lane_id() == 0) {
    const int warp = i / kWarpSize;
    sums[warp] = sum;
    maxes[warp] = max;
  }
}

__global__ void block_reduce_kernel(const int* in, int* sums, int* disagreements) {
  __shared__ int scratch[kMaxWarpsPerBlock];
  __shared__ int first;
  const int total = block_reduce_sum(in[blockIdx.x * blockDim.x + threadIdx.x], scratch);
  if (threadIdx.x == 0) {
    first = total;
    sums[blockIdx.x] = total;
  }
  __syncthreads();
  if (total != first) atomicAdd(disagreements, 1);
}

Status launch_status() {
  GPU_RETURN_IF_ERROR(gpuGetLastError());
  return ok_status();
}

}  // namespace

Status launch_warp_size_probe(int* out, gpuStream_t stream) {
  warp_size_probe_kernel<<<1, 1, 0, stream>>>(out);
  return launch_status();
}

Status launch_warp_reduce(const int* in_int, const float* in_float, int n_blocks, int block_size, int* sums,
                          float* maxes, int* disagreements, gpuStream_t stream) {
  warp_reduce_kernel<<<n_blocks, block_size, 0, stream>>>(in_int, in_float, sums, maxes, disagreements);
  return launch_status();
}

Status launch_block_reduce(const int* in, int n_rows, int block_size, int* sums, int* disagreements,
                           gpuStream_t stream) {
  block_reduce_kernel<<<n_rows, block_size, 0, stream>>>(in, sums, disagreements);
  return launch_status();
}

}  // namespace rf::gpu::test
