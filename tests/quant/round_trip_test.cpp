// Quantize -> dequantize properties of our reference quantizers on synthetic data: error bounds per type on
// N(0, 1) data, error ordering by bit width, exact round trips of values already on a format's grid, zero and
// constant blocks, extreme magnitudes and outliers.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/half.h"
#include "quant/quant.h"
#include "quant/quant_test_util.h"

namespace rf::quant {
namespace {

using test::normal_data;
using test::nrmse;
using test::round_trip;

constexpr int64_t kN = 256 * 64;  // 64 super-blocks

struct Bound {
  Type type;
  double max_nrmse;  // on N(0, 1) data; measured values are printed by the first test
};

// Bounds sit ~15-25% above the measured error of our quantizers (which equals llama.cpp's, see
// quant_models_test), so a regression in the scale search fails here.
constexpr Bound kBounds[] = {
    {Type::F16, 4e-4},   {Type::BF16, 3e-3},  {Type::Q8_0, 0.0065}, {Type::Q8_1, 0.0065}, {Type::Q8_K, 0.0085},
    {Type::Q6_K, 0.021}, {Type::Q5_0, 0.050}, {Type::Q5_1, 0.045},  {Type::Q5_K, 0.042},  {Type::Q4_0, 0.10},
    {Type::Q4_1, 0.092}, {Type::Q4_K, 0.083}, {Type::Q3_K, 0.18},   {Type::Q2_K, 0.34},
};

TEST(RoundTrip, GaussianErrorIsWithinPerTypeBound) {
  const std::vector<float> x = normal_data(kN, 1234);
  std::printf("type    nRMSE on N(0,1)\n");
  for (const Bound& b : kBounds) {
    ASSERT_TRUE(can_quantize(b.type)) << type_name(b.type);
    const double err = nrmse(round_trip(b.type, x), x);
    std::printf("%-7s %.6f\n", std::string(type_name(b.type)).c_str(), err);
    EXPECT_LE(err, b.max_nrmse) << type_name(b.type);
    EXPECT_GT(err, 0.0) << type_name(b.type) << ": lossy formats cannot be exact on random data";
  }
}

TEST(RoundTrip, ErrorShrinksAsBitsGrow) {
  const std::vector<float> x = normal_data(kN, 99);
  auto err = [&](Type t) { return nrmse(round_trip(t, x), x); };
  const Type k_ladder[] = {Type::F16,  Type::BF16, Type::Q8_0, Type::Q8_K, Type::Q6_K,
                           Type::Q5_K, Type::Q4_K, Type::Q3_K, Type::Q2_K};
  for (size_t i = 0; i + 1 < std::size(k_ladder); ++i) {
    EXPECT_LT(err(k_ladder[i]), err(k_ladder[i + 1])) << type_name(k_ladder[i]) << " vs " << type_name(k_ladder[i + 1]);
  }
  EXPECT_LT(err(Type::Q5_0), err(Type::Q4_0));
  EXPECT_LT(err(Type::Q5_1), err(Type::Q4_1));
  EXPECT_LT(err(Type::Q8_0), err(Type::Q5_0));
  // An affine (min + scale) block beats a symmetric one of the same width on data with an offset.
  std::vector<float> shifted = x;
  for (float& v : shifted) v += 1.5f;
  EXPECT_LT(nrmse(round_trip(Type::Q4_1, shifted), shifted), nrmse(round_trip(Type::Q4_0, shifted), shifted));
}

// Values offset + d * q for integer codes q, each block holding the codes the quantizer maps its extremes to, with
// d a power of two so every intermediate is exact: such data must come back bit for bit.
std::vector<float> grid_data(int block, int lo, int hi, int extreme, float offset, int n_blocks) {
  const float d = 1.0f / 32.0f;
  std::vector<float> v;
  for (int b = 0; b < n_blocks; ++b) {
    for (int i = 0; i < block; ++i) {
      int q = lo + (i * 7 + 3 + b) % (hi - lo + 1);
      if (i == 5) q = extreme;
      if (offset != 0.0f && i == 6) q = 0;   // affine blocks: the minimum sits on code 0 ...
      if (offset != 0.0f && i == 7) q = hi;  // ... and the maximum on the top code
      v.push_back(offset + d * static_cast<float>(q));
    }
  }
  return v;
}

TEST(RoundTrip, ValuesOnTheGridRoundTripExactly) {
  struct GridCase {
    Type type;
    std::vector<float> x;
  };
  const GridCase cases[] = {
      {Type::Q4_0, grid_data(32, -7, 7, -8, 0.0f, 3)},        {Type::Q5_0, grid_data(32, -15, 15, -16, 0.0f, 3)},
      {Type::Q8_0, grid_data(32, -126, 126, -127, 0.0f, 3)},  {Type::Q8_1, grid_data(32, -126, 126, 127, 0.0f, 3)},
      {Type::Q8_K, grid_data(256, -126, 126, -127, 0.0f, 2)}, {Type::Q4_1, grid_data(32, 0, 15, 15, -1.0f, 3)},
      {Type::Q5_1, grid_data(32, 0, 31, 31, -1.0f, 3)},
  };
  for (const GridCase& c : cases) EXPECT_EQ(round_trip(c.type, c.x), c.x) << type_name(c.type);
  // Plain types: every finite F16 / BF16 value.
  std::vector<float> halfs;
  std::vector<float> bfs;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    if ((bits & 0x7C00u) != 0x7C00u) halfs.push_back(fp16_to_fp32(bits));
    if ((bits & 0x7F80u) != 0x7F80u) bfs.push_back(bf16_to_fp32(bits));
  }
  const std::vector<float> h2 = round_trip(Type::F16, halfs);
  const std::vector<float> b2 = round_trip(Type::BF16, bfs);
  for (size_t i = 0; i < halfs.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(h2[i]), std::bit_cast<uint32_t>(halfs[i]));
  for (size_t i = 0; i < bfs.size(); ++i) ASSERT_EQ(std::bit_cast<uint32_t>(b2[i]), std::bit_cast<uint32_t>(bfs[i]));
}

TEST(RoundTrip, KQuantOutputIsAFixedPointAfterOneRequantization) {
  // Dequantized output lies on the format's grid; quantizing it again must not lose more than rounding noise.
  const std::vector<float> x = normal_data(256 * 16, 7);
  for (Type t : {Type::Q2_K, Type::Q3_K, Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
    const std::vector<float> once = round_trip(t, x);
    const std::vector<float> twice = round_trip(t, once);
    const double e1 = nrmse(once, x);
    const double e2 = nrmse(twice, once);
    std::printf("%-5s first %.5f second %.5f\n", std::string(type_name(t)).c_str(), e1, e2);
    EXPECT_LT(e2, 0.5 * e1) << type_name(t);
  }
}

TEST(RoundTrip, ZeroBlocksDecodeToZeroWithoutNaN) {
  std::vector<float> x(512, 0.0f);
  // One non-zero super-block next to an all-zero one: a zero block must not borrow anything from its neighbour.
  std::vector<float> mixed = normal_data(512, 5);
  for (int i = 0; i < 256; ++i) mixed[i] = 0.0f;
  for (const Bound& b : kBounds) {
    for (float v : round_trip(b.type, x)) ASSERT_EQ(v, 0.0f) << type_name(b.type);
    const std::vector<float> y = round_trip(b.type, mixed);
    for (int i = 0; i < 256; ++i) ASSERT_EQ(y[i], 0.0f) << type_name(b.type) << " element " << i;
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << type_name(b.type);
  }
}

TEST(RoundTrip, ConstantBlocksStayCloseAndFinite) {
  for (float c : {0.7f, -2.5f}) {
    const std::vector<float> x(512, c);
    for (const Bound& b : kBounds) {
      const std::vector<float> y = round_trip(b.type, x);
      for (float v : y) {
        ASSERT_TRUE(std::isfinite(v)) << type_name(b.type);
        ASSERT_NEAR(v, c, 0.01 * std::fabs(c)) << type_name(b.type) << " constant " << c;
      }
    }
  }
}

TEST(RoundTrip, ErrorIsScaleInvariantOverWideMagnitudes) {
  const std::vector<float> base = normal_data(256 * 8, 42);
  for (float scale : {1e-2f, 1e3f}) {
    std::vector<float> x = base;
    for (float& v : x) v *= scale;
    for (const Bound& b : kBounds) {
      EXPECT_LE(nrmse(round_trip(b.type, x), x), 1.1 * b.max_nrmse) << type_name(b.type) << " at scale " << scale;
    }
  }
  // Magnitudes below the F16 scale range flush towards zero: finite output, never larger than the input.
  std::vector<float> tiny = base;
  for (float& v : tiny) v *= 1e-9f;
  for (const Bound& b : kBounds) {
    for (float v : round_trip(b.type, tiny)) {
      ASSERT_TRUE(std::isfinite(v)) << type_name(b.type);
      ASSERT_LE(std::fabs(v), 1e-8f) << type_name(b.type);
    }
  }
}

TEST(RoundTrip, OutlierKeepsItsValue) {
  std::vector<float> x = normal_data(512, 3);
  x[300] = 100.0f;
  for (const Bound& b : kBounds) {
    const std::vector<float> y = round_trip(b.type, x);
    EXPECT_NEAR(y[300], 100.0f, 2.0f) << type_name(b.type);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << type_name(b.type);
  }
}

}  // namespace
}  // namespace rf::quant
