// TEST HOOK ONLY: a real device fault on demand, so that recovery from a lost GPU context (GpuBackend::reset_device,
// model::Model::recover, the engine) can be tested on a real GPU. Nothing calls it unless a test asks for it through
// GpuBackend::inject_fault_in() or the environment variable ROCMFORGE_GPU_INJECT_FAULT=N (read once, when the
// backend is created: its N-th forward pass faults).
#pragma once

#include "backend/gpu/compat.h"
#include "core/status.h"

namespace rf::gpu {

// Launches a one-thread kernel that stores through an address no allocation has (the first page). The launch
// itself succeeds; the kernel raises an illegal-address fault, a sticky error that every later runtime call of the
// process returns until the device is reset. An error only when the launch fails.
Status launch_fault_kernel(gpuStream_t stream);

}  // namespace rf::gpu
