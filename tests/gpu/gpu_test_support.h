// Helpers shared by the GPU tests: skip cleanly without a usable GPU, device buffers that free themselves.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/gpu/compat.h"
#include "backend/gpu/device_info.h"

// Skips the current test (with the runtime's reason) when no GPU is usable, or fails it when the environment
// sets ROCMFORGE_REQUIRE_GPU=1 (scripts/gpu-test.sh does, on the GPU machine); otherwise defines `var` as the
// DeviceInfo of device 0, made current.
#define RF_REQUIRE_GPU(var)                                                                         \
  auto var##_probe = ::rf::gpu::device_info(0);                                                     \
  if (!var##_probe.ok()) {                                                                          \
    if (::rf::gpu::test::gpu_required()) GTEST_FAIL() << "no GPU: " << var##_probe.error_message(); \
    GTEST_SKIP() << "no GPU: " << var##_probe.error_message();                                      \
  }                                                                                                 \
  const ::rf::gpu::DeviceInfo var = *var##_probe

namespace rf::gpu::test {

// True when ROCMFORGE_REQUIRE_GPU=1: a GPU test without a GPU is then a failure, not a skip.
inline bool gpu_required() {
  const char* v = std::getenv("ROCMFORGE_REQUIRE_GPU");
  return v != nullptr && std::string(v) == "1";
}

// Device allocation of `count` elements of T, freed on scope exit.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    GPU_CHECK(gpuMalloc(reinterpret_cast<void**>(&ptr_), (count == 0 ? 1 : count) * sizeof(T)));
  }
  ~DeviceBuffer() { (void)gpuFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  size_t count() const { return count_; }

  void upload(const std::vector<T>& host) {
    GPU_CHECK(gpuMemcpy(ptr_, host.data(), host.size() * sizeof(T), gpuMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    GPU_CHECK(gpuMemcpy(host.data(), ptr_, count_ * sizeof(T), gpuMemcpyDeviceToHost));
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace rf::gpu::test
