#include "backend/gpu/device_info.h"

#include <cstdio>
#include <cstdlib>

#include "backend/gpu/compat.h"

namespace rf::gpu {

[[noreturn]] void fatal_gpu_error(const char* file, int line, const char* expr, gpuError_t err) {
  std::fprintf(stderr, "rocmforge: GPU error at %s:%d: %s returned %s\n", file, line, expr, error_text(err).c_str());
  std::fflush(stderr);
  std::abort();
}

const char* backend_name() { return kBackendName; }

Expected<int> device_count() {
  int count = 0;
  const gpuError_t err = gpuGetDeviceCount(&count);
  if (err != gpuSuccess) {
    // Clear the sticky last error so later probes start clean.
    (void)gpuGetLastError();
    return Status::error(std::string("gpu: no usable ") + kBackendName + " device: " + error_text(err));
  }
  if (count <= 0) return Status::error(std::string("gpu: the ") + kBackendName + " runtime reports no device");
  return count;
}

Expected<DeviceInfo> device_info(int index) {
  Expected<int> count = device_count();
  if (!count.ok()) return count.status();
  if (index < 0 || index >= *count) {
    return Status::error("gpu: device index " + std::to_string(index) + " out of range (found " +
                         std::to_string(*count) + " devices)");
  }
  gpuDeviceProp_t prop{};
  GPU_RETURN_IF_ERROR(gpuGetDeviceProperties(&prop, index));
  GPU_RETURN_IF_ERROR(gpuSetDevice(index));
  DeviceInfo info;
  info.index = index;
  info.name = prop.name;
#if defined(RF_GPU_HIP)
  info.arch = prop.gcnArchName;
#else
  info.arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
#endif
  info.warp_size = prop.warpSize;
  info.multiprocessor_count = prop.multiProcessorCount;
  info.total_memory = prop.totalGlobalMem;
  info.l2_cache_bytes = static_cast<size_t>(prop.l2CacheSize);
#if defined(RF_GPU_HIP)
  info.shared_memory_per_block_optin = prop.sharedMemPerBlock;  // AMD has no opt-in above the per-block limit
#else
  info.shared_memory_per_block_optin = prop.sharedMemPerBlockOptin;
#endif
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  GPU_RETURN_IF_ERROR(gpuMemGetInfo(&free_bytes, &total_bytes));
  info.free_memory = free_bytes;
  return info;
}

Expected<std::vector<DeviceInfo>> probe_devices() {
  Expected<int> count = device_count();
  if (!count.ok()) return count.status();
  std::vector<DeviceInfo> devices;
  for (int i = 0; i < *count; ++i) {
    Expected<DeviceInfo> info = device_info(i);
    if (!info.ok()) return info.status();
    devices.push_back(std::move(*info));
  }
  return devices;
}

std::string describe(const DeviceInfo& info) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  char buf[512];
  std::snprintf(buf, sizeof(buf), "GPU %d: %s (%s, %d %s, warp %d, %.1f GiB, %.1f GiB free)", info.index,
                info.name.c_str(), info.arch.c_str(), info.multiprocessor_count,
#if defined(RF_GPU_HIP)
                "CUs",
#else
                "SMs",
#endif
                info.warp_size, static_cast<double>(info.total_memory) / kGiB,
                static_cast<double>(info.free_memory) / kGiB);
  return buf;
}

std::string runtime_versions() {
  int runtime = 0;
  int driver = 0;
  if (gpuRuntimeGetVersion(&runtime) != gpuSuccess) runtime = 0;
  if (gpuDriverGetVersion(&driver) != gpuSuccess) driver = 0;
  (void)gpuGetLastError();
  return std::string(kBackendName) + " runtime " + std::to_string(runtime) + ", driver " + std::to_string(driver);
}

}  // namespace rf::gpu
