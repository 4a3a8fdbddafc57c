// GPU dequantization against the CPU reference (rf::quant::dequantize): bit-exact for every element, on random
// block bytes (scales of every bit pattern: subnormal, infinite and NaN included), odd block counts and unaligned
// block data; every output element written and nothing past the end.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/dequant.h"
#include "gpu_test_support.h"
#include "quant/quant.h"
#include "quant/types.h"

namespace rf::gpu {
namespace {

using quant::Type;

constexpr size_t kGuardFloats = 64;
constexpr uint8_t kPoisonByte = 0x7F;  // float 0x7F7F7F7F ~ 3.4e38: no tested format produces it from its bytes

bool same_value(float got, float want) {
  if (std::isnan(got) && std::isnan(want)) return true;  // the hardware may canonicalize NaN payloads
  return std::bit_cast<uint32_t>(got) == std::bit_cast<uint32_t>(want);
}

// Dequantizes `bytes` (n elements of t) on the GPU, starting `offset` bytes into the device allocation.
std::vector<float> gpu_dequantize(Type t, const std::vector<uint8_t>& bytes, int64_t n, size_t offset) {
  test::DeviceBuffer<uint8_t> src(bytes.size() + offset);
  GPU_CHECK(gpuMemcpy(src.get() + offset, bytes.data(), bytes.size(), gpuMemcpyHostToDevice));
  test::DeviceBuffer<float> dst(static_cast<size_t>(n) + kGuardFloats);
  GPU_CHECK(gpuMemset(dst.get(), kPoisonByte, dst.count() * sizeof(float)));
  gpuStream_t stream = nullptr;
  GPU_CHECK(gpuStreamCreateWithFlags(&stream, gpuStreamNonBlocking));
  const Status st = dequantize(t, src.get() + offset, dst.get(), n, stream);
  EXPECT_TRUE(st.ok()) << st.message();
  GPU_CHECK(gpuStreamSynchronize(stream));
  GPU_CHECK(gpuStreamDestroy(stream));
  return dst.download();
}

struct Case {
  Type type;
  size_t offset;  // byte offset of the source inside its allocation
};

class GpuDequantParity : public ::testing::TestWithParam<Case> {};

TEST_P(GpuDequantParity, MatchesCpuReferenceBitForBitOnRandomBlocks) {
  RF_REQUIRE_GPU(info);
  const Case c = GetParam();
  const int64_t block_size = quant::traits(c.type).block_size;
  std::mt19937_64 rng(0x5eed + static_cast<uint64_t>(c.type) * 131 + c.offset);
  for (const int64_t n_blocks : {int64_t{1}, int64_t{3}, int64_t{7}, int64_t{257}, int64_t{4099}, int64_t{65537}}) {
    const int64_t n = n_blocks * block_size;
    const size_t n_bytes = *quant::row_bytes(c.type, n);
    std::vector<uint8_t> bytes(n_bytes);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());

    std::vector<float> want(static_cast<size_t>(n));
    const Status ref = quant::dequantize(c.type, bytes.data(), want.data(), n);
    ASSERT_TRUE(ref.ok()) << ref.message();

    const std::vector<float> got = gpu_dequantize(c.type, bytes, n, c.offset);
    int64_t mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!same_value(got[i], want[i]) && ++mismatches <= 5) {
        ADD_FAILURE() << quant::type_name(c.type) << " n=" << n << " element " << i << ": gpu " << got[i] << " (0x"
                      << std::hex << std::bit_cast<uint32_t>(got[i]) << ") cpu " << want[i] << " (0x"
                      << std::bit_cast<uint32_t>(want[i]) << std::dec << ")";
      }
    }
    EXPECT_EQ(mismatches, 0) << quant::type_name(c.type) << " n=" << n;
    uint32_t poison = 0;
    std::memset(&poison, kPoisonByte, sizeof(poison));
    for (size_t i = static_cast<size_t>(n); i < got.size(); ++i) {
      ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), poison) << "wrote past the end at " << i << ", n=" << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuDequantParity,
                         ::testing::Values(Case{Type::Q4_0, 0}, Case{Type::Q4_0, 1}, Case{Type::Q8_0, 0},
                                           Case{Type::Q8_0, 3}, Case{Type::F16, 0}, Case{Type::F16, 2},
                                           Case{Type::BF16, 0}, Case{Type::F32, 0}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(quant::type_name(p.param.type)) + "_offset" +
                                  std::to_string(p.param.offset);
                         });

TEST(GpuDequant, ZeroElementsIsANoOp) {
  RF_REQUIRE_GPU(info);
  EXPECT_TRUE(dequantize(Type::Q4_0, nullptr, nullptr, 0, nullptr).ok());
}

// The argument checks run before any GPU call, so these need no GPU.
TEST(GpuDequant, RejectsUnsupportedTypeWithItsName) {
  const Status st = dequantize(Type::Q4_K, nullptr, nullptr, 256, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("Q4_K"), std::string::npos) << st.message();
  EXPECT_FALSE(can_dequantize(Type::Q4_K));
  EXPECT_TRUE(can_dequantize(Type::Q8_0));
}

TEST(GpuDequant, RejectsCountsThatAreNotWholeBlocks) {
  const Status st = dequantize(Type::Q8_0, nullptr, nullptr, 33, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("33"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("32"), std::string::npos) << st.message();
  EXPECT_FALSE(dequantize(Type::Q4_0, nullptr, nullptr, -32, nullptr).ok());
}

TEST(GpuDequant, RejectsMisalignedHalfSources) {
  alignas(4) static const uint8_t kBytes[8] = {};
  const Status st = dequantize(Type::F16, kBytes + 1, nullptr, 2, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("aligned"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace rf::gpu
