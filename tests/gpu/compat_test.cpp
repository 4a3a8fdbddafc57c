// The portability header's device primitives on the real device: the compiled warp size matches the device's,
// warp and block reductions give exact results in every lane, and a captured graph replays with fresh inputs.
// The probe test runs everywhere: without a GPU or driver it must return an error, never crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/device_info.h"
#include "compat_kernels.h"
#include "gpu_test_support.h"

namespace rf::gpu {
namespace {

TEST(GpuProbe, ReportsDevicesOrAClearErrorWithoutCrashing) {
  const Expected<std::vector<DeviceInfo>> devices = probe_devices();
  if (!devices.ok()) {
    EXPECT_NE(devices.error_message().find(backend_name()), std::string::npos) << devices.error_message();
    EXPECT_FALSE(device_count().ok());
    return;
  }
  ASSERT_FALSE(devices->empty());
  for (const DeviceInfo& d : *devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_TRUE(d.warp_size == 32 || d.warp_size == 64) << d.warp_size;
    EXPECT_GT(d.total_memory, size_t{0});
    EXPECT_LE(d.free_memory, d.total_memory);
    EXPECT_GT(d.multiprocessor_count, 0);
    std::printf("%s | %s\n", describe(d).c_str(), runtime_versions().c_str());
  }
}

TEST(GpuProbe, RejectsOutOfRangeDeviceIndex) {
  const Expected<DeviceInfo> info = device_info(1 << 20);
  ASSERT_FALSE(info.ok());
  EXPECT_FALSE(info.error_message().empty());
}

TEST(GpuCompat, CompiledWarpSizeMatchesTheDevice) {
  RF_REQUIRE_GPU(info);
  test::DeviceBuffer<int> out(1);
  ASSERT_TRUE(test::launch_warp_size_probe(out.get(), nullptr).ok());
  GPU_CHECK(gpuDeviceSynchronize());
  EXPECT_EQ(out.download()[0], info.warp_size);
}

TEST(GpuCompat, WarpReductionsAreExactInEveryLane) {
  RF_REQUIRE_GPU(info);
  const int warp = info.warp_size;
  std::mt19937 rng(7);
  for (const int block_size : {64, 256, 1024}) {
    const int n_blocks = 5;
    const int n = n_blocks * block_size;
    std::vector<int> ints(n);
    std::vector<float> floats(n);
    std::uniform_int_distribution<int> int_dist(-100000, 100000);
    std::uniform_real_distribution<float> float_dist(-1e6f, 1e6f);
    for (int i = 0; i < n; ++i) {
      ints[i] = int_dist(rng);
      floats[i] = float_dist(rng);
    }
    test::DeviceBuffer<int> d_ints(n), d_sums(n / warp), d_bad(1);
    test::DeviceBuffer<float> d_floats(n), d_maxes(n / warp);
    d_ints.upload(ints);
    d_floats.upload(floats);
    GPU_CHECK(gpuMemset(d_bad.get(), 0, sizeof(int)));
    ASSERT_TRUE(test::launch_warp_reduce(d_ints.get(), d_floats.get(), n_blocks, block_size, d_sums.get(),
                                         d_maxes.get(), d_bad.get(), nullptr)
                    .ok());
    GPU_CHECK(gpuDeviceSynchronize());
    const std::vector<int> sums = d_sums.download();
    const std::vector<float> maxes = d_maxes.download();
    for (int w = 0; w < n / warp; ++w) {
      const auto begin = ints.begin() + w * warp;
      EXPECT_EQ(sums[w], std::accumulate(begin, begin + warp, 0)) << "warp " << w;
      const auto fbegin = floats.begin() + w * warp;
      EXPECT_EQ(maxes[w], *std::max_element(fbegin, fbegin + warp)) << "warp " << w;
    }
    EXPECT_EQ(d_bad.download()[0], 0) << "lanes disagreeing with lane 0, block size " << block_size;
  }
}

// Block sums on a captured graph: the graph is replayed after the input changes and must see the new input.
TEST(GpuCompat, BlockReduceExactAndReplaysFromAGraph) {
  RF_REQUIRE_GPU(info);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> dist(-1000000, 1000000);
  for (const int block_size : {64, 192, 1024}) {
    const int n_rows = 9;
    const int n = n_rows * block_size;
    test::DeviceBuffer<int> d_in(n), d_sums(n_rows), d_bad(1);
    gpuStream_t stream = nullptr;
    GPU_CHECK(gpuStreamCreateWithFlags(&stream, gpuStreamNonBlocking));
    gpuGraph_t graph = nullptr;
    gpuGraphExec_t exec = nullptr;
    GPU_CHECK(gpuStreamBeginCapture(stream, gpuStreamCaptureModeThreadLocal));
    GPU_CHECK(gpuMemsetAsync(d_bad.get(), 0, sizeof(int), stream));
    const Status launched =
        test::launch_block_reduce(d_in.get(), n_rows, block_size, d_sums.get(), d_bad.get(), stream);
    GPU_CHECK(gpuStreamEndCapture(stream, &graph));
    ASSERT_TRUE(launched.ok()) << launched.message();
    GPU_CHECK(gpuGraphInstantiate(&exec, graph));
    for (int replay = 0; replay < 2; ++replay) {
      std::vector<int> in(n);
      for (int& v : in) v = dist(rng);
      d_in.upload(in);
      GPU_CHECK(gpuGraphLaunch(exec, stream));
      GPU_CHECK(gpuStreamSynchronize(stream));
      const std::vector<int> sums = d_sums.download();
      for (int r = 0; r < n_rows; ++r) {
        const auto begin = in.begin() + r * block_size;
        EXPECT_EQ(sums[r], std::accumulate(begin, begin + block_size, 0))
            << "row " << r << " block " << block_size << " replay " << replay;
      }
      EXPECT_EQ(d_bad.download()[0], 0) << "block size " << block_size;
    }
    GPU_CHECK(gpuGraphExecDestroy(exec));
    GPU_CHECK(gpuGraphDestroy(graph));
    GPU_CHECK(gpuStreamDestroy(stream));
  }
}

}  // namespace
}  // namespace rf::gpu
