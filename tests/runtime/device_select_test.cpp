// --device selection in every build (with or without a GPU backend, with or without a GPU): cpu is the CPU, gpu is
// the GPU or an error that says why, auto never fails and notes why it fell back to the CPU.
#include <gtest/gtest.h>

#include "runtime/device_select.h"

namespace rf::runtime {
namespace {

backend::BackendOptions with(backend::DeviceKind k) {
  backend::BackendOptions o;
  o.device = k;
  o.n_threads = 1;
  return o;
}

TEST(DeviceSelectAnyBuild, RejectsUnknownDeviceNames) {
  EXPECT_FALSE(parse_device_kind("").ok());
  EXPECT_FALSE(parse_device_kind("GPU").ok());
  EXPECT_EQ(parse_device_kind("cpu").value(), backend::DeviceKind::kCpu);
}

TEST(DeviceSelectAnyBuild, GpuIsAGpuOrAnErrorAndAutoNeverFails) {
  auto g = select_backend(with(backend::DeviceKind::kGpu));
  auto a = select_backend(with(backend::DeviceKind::kAuto));
  ASSERT_TRUE(a.ok()) << a.error_message();
  if (!gpu_backend_compiled()) {
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.error_message().find("no GPU backend"), std::string::npos) << g.error_message();
  }
  if (g.ok()) {
    EXPECT_TRUE(g->is_gpu);
    EXPECT_TRUE(a->is_gpu);
    EXPECT_TRUE(a->note.empty());
  } else {
    EXPECT_NE(g.error_message().find("--device gpu: no usable GPU"), std::string::npos) << g.error_message();
    EXPECT_FALSE(a->is_gpu);
    EXPECT_NE(a->note.find("using the CPU"), std::string::npos) << a->note;
    EXPECT_FALSE(measure_gpu_copy_bandwidth(*a->backend).ok());
  }
  auto c = select_backend(with(backend::DeviceKind::kCpu));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->is_gpu);
  EXPECT_TRUE(c->note.empty());
  EXPECT_FALSE(c->device_name.empty());
}

}  // namespace
}  // namespace rf::runtime
