// TEST HOOK ONLY (see fault_inject.h): a kernel that faults.
#include "backend/gpu/fault_inject.h"

#include <cstdint>

namespace rf::gpu {
namespace {

// The address arrives as an argument, so the compiler cannot see a null store and replace it with a trap.
__global__ void fault_kernel(int* target) {
  grid_dependency_wait();  // after the work queued before it, as every kernel of launch_kernel()
  *reinterpret_cast<volatile int*>(target) = 1;
}

}  // namespace

Status launch_fault_kernel(gpuStream_t stream) {
  // An address in the first page: never a device allocation, so the store faults (illegal address).
  auto* target = reinterpret_cast<int*>(uintptr_t{0x100});
  launch_kernel(fault_kernel, 1, 1, 0, stream, target);
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "fault injection launch");
}

}  // namespace rf::gpu
