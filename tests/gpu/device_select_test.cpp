// Device selection (src/runtime/device_select): --device gpu gives the GPU backend or an error that says why,
// auto falls back to the CPU with a note exactly when no GPU is usable, cpu never touches the GPU. Runs in every
// GPU build: without a GPU or a driver (CI) the fallback branches are the ones checked.
#include "runtime/device_select.h"

#include <gtest/gtest.h>

#include <vector>

#include "backend/gpu/device_info.h"
#include "backend/gpu/gpu_backend.h"
#include "gpu_test_support.h"

namespace rf::runtime {
namespace {

backend::BackendOptions with(backend::DeviceKind k) {
  backend::BackendOptions o;
  o.device = k;
  o.n_threads = 1;
  return o;
}

TEST(DeviceSelect, ParsesTheThreeDeviceNamesAndRejectsOthers) {
  EXPECT_EQ(parse_device_kind("auto").value(), backend::DeviceKind::kAuto);
  EXPECT_EQ(parse_device_kind("cpu").value(), backend::DeviceKind::kCpu);
  EXPECT_EQ(parse_device_kind("gpu").value(), backend::DeviceKind::kGpu);
  const auto bad = parse_device_kind("cuda");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error_message().find("'cuda'"), std::string::npos);
}

TEST(DeviceSelect, CpuIsTheCpuBackendWithoutANote) {
  auto c = select_backend(with(backend::DeviceKind::kCpu));
  ASSERT_TRUE(c.ok()) << c.error_message();
  EXPECT_FALSE(c->is_gpu);
  EXPECT_TRUE(c->note.empty());
  EXPECT_EQ(c->backend->name().rfind("cpu", 0), 0u) << c->backend->name();
  EXPECT_FALSE(measure_gpu_copy_bandwidth(*c->backend).ok());
}

TEST(DeviceSelect, GpuAndAutoFollowWhetherAGpuIsUsable) {
  EXPECT_TRUE(gpu_backend_compiled());
  const auto probe = gpu::device_info(0);
  auto g = select_backend(with(backend::DeviceKind::kGpu));
  auto a = select_backend(with(backend::DeviceKind::kAuto));
  ASSERT_TRUE(a.ok()) << a.error_message();  // auto never fails
  if (!probe.ok()) {
    if (gpu::test::gpu_required()) GTEST_FAIL() << "no GPU: " << probe.error_message();
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.error_message().find("no usable GPU"), std::string::npos) << g.error_message();
    EXPECT_FALSE(a->is_gpu);
    EXPECT_NE(a->note.find("using the CPU"), std::string::npos) << a->note;
    return;
  }
  ASSERT_TRUE(g.ok()) << g.error_message();
  EXPECT_TRUE(g->is_gpu);
  EXPECT_EQ(g->device_name, probe->name);
  EXPECT_TRUE(a->is_gpu);
  EXPECT_TRUE(a->note.empty());
  // A 64 MiB copy is enough to see a bandwidth in a plausible range for any GPU (> 10 GB/s).
  auto* gb = dynamic_cast<gpu::GpuBackend*>(g->backend.get());
  ASSERT_NE(gb, nullptr);
  const auto bw = gb->measure_copy_bandwidth(size_t{64} << 20);
  ASSERT_TRUE(bw.ok()) << bw.error_message();
  EXPECT_GT(*bw, 1e10);
}

}  // namespace
}  // namespace rf::runtime
