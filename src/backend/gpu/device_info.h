// Run-time probe of the GPUs this build's runtime (CUDA or HIP) can use. Safe on machines without a GPU or
// without a driver: the probe then returns an error saying so, it never aborts.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/status.h"

namespace rf::gpu {

struct DeviceInfo {
  int index = 0;
  std::string name;              // e.g. "NVIDIA H100 80GB HBM3"
  std::string arch;              // "sm_90" on NVIDIA, the gfx name (e.g. "gfx90a:sramecc+:xnack-") on AMD
  int warp_size = 0;             // 32 or 64: the size host code must use for launches that depend on it
  int multiprocessor_count = 0;  // SMs / CUs
  size_t total_memory = 0;       // bytes
  size_t free_memory = 0;        // bytes free when probed
  size_t l2_cache_bytes = 0;
  size_t shared_memory_per_block_optin = 0;  // the most a block may get after opting in
};

// "CUDA" or "HIP": the runtime this build links.
const char* backend_name();

// Number of usable devices, or an error (no driver, driver too old, no device) naming the runtime's reason.
Expected<int> device_count();

// Properties and memory of one device (makes it current on the calling thread).
Expected<DeviceInfo> device_info(int index);

// Every usable device; an error when there is none.
Expected<std::vector<DeviceInfo>> probe_devices();

// One log line, e.g. "GPU 0: NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, warp 32, 79.1 GiB, 78.6 GiB free)".
std::string describe(const DeviceInfo& info);

// "CUDA runtime 13000, driver 13000" (0 for a part that is unavailable).
std::string runtime_versions();

}  // namespace rf::gpu
