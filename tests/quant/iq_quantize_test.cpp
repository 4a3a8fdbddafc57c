// IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4: hand-assembled blocks, quantize -> dequantize error bounds, exact round
// trips of values on the grid, zero blocks and non-finite-free output. Also the family's dispatch contract.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "quant/iq_internal.h"
#include "quant/quant.h"

namespace rf::quant {
namespace {

constexpr int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr float kE2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};

void put_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

std::vector<float> decode(Type t, const std::vector<uint8_t>& bytes) {
  const int64_t n = static_cast<int64_t>(bytes.size() / traits(t).block_bytes) * traits(t).block_size;
  std::vector<float> out(static_cast<size_t>(n), NAN);
  const Status s = dequantize(t, bytes.data(), out.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

std::vector<uint8_t> encode(Type t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*row_bytes(t, static_cast<int64_t>(x.size())));
  const Status s = quantize(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  EXPECT_TRUE(s.ok()) << s.message();
  return q;
}

std::vector<float> round_trip(Type t, const std::vector<float>& x) { return decode(t, encode(t, x)); }

std::vector<float> normal(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

double nrmse(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0.0;
  double den = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

const Type kQuantizable[] = {Type::IQ4_NL, Type::IQ4_XS, Type::TQ1_0, Type::TQ2_0, Type::MXFP4};

// ---- hand-assembled blocks ----

TEST(IqQuantize, Iq4NlHandBlock) {
  std::vector<uint8_t> b(18);
  put_f16(b.data(), 0.5f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  const std::vector<float> y = decode(Type::IQ4_NL, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * kLevels[j]);
    EXPECT_EQ(y[j + 16], 0.5f * kLevels[15 - j]);
  }
}

TEST(IqQuantize, Iq4XsHandBlock) {
  std::vector<uint8_t> b(136, 0);
  put_f16(b.data(), 0.25f);
  int ls[8];
  uint16_t scales_h = 0;
  for (int ib = 0; ib < 8; ++ib) {
    ls[ib] = (ib * 9 + 3) % 64;  // 6-bit stored scales: 3, 12, 21, ..., spanning both high-bit halves
    b[4 + ib / 2] = static_cast<uint8_t>(b[4 + ib / 2] | (ls[ib] & 0xf) << (4 * (ib % 2)));
    scales_h = static_cast<uint16_t>(scales_h | (ls[ib] >> 4) << (2 * ib));
    for (int j = 0; j < 16; ++j) b[8 + 16 * ib + j] = static_cast<uint8_t>(((j + ib) % 16) | (j << 4));
  }
  std::memcpy(b.data() + 2, &scales_h, 2);
  const std::vector<float> y = decode(Type::IQ4_XS, b);
  for (int ib = 0; ib < 8; ++ib) {
    const float dl = 0.25f * static_cast<float>(ls[ib] - 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[32 * ib + j], dl * kLevels[(j + ib) % 16]) << ib << " " << j;
      EXPECT_EQ(y[32 * ib + 16 + j], dl * kLevels[j]) << ib << " " << j;
    }
  }
}

TEST(IqQuantize, Tq2HandBlock) {
  std::vector<uint8_t> b(66);
  put_f16(b.data() + 64, 1.5f);
  for (int m = 0; m < 64; ++m) b[m] = static_cast<uint8_t>(m * 37 + 11);
  const std::vector<float> y = decode(Type::TQ2_0, b);
  for (int m = 0; m < 64; ++m) {
    for (int k = 0; k < 4; ++k) {
      const int code = (b[m] >> (2 * k)) & 3;
      const int element = 128 * (m / 32) + 32 * k + m % 32;
      EXPECT_EQ(y[element], 1.5f * static_cast<float>(code - 1)) << element;
    }
  }
}

// Every base-3 number v of 5 trits, stored as ceil(v * 256 / 243), decodes to its digits (most significant first).
TEST(IqQuantize, Tq1EveryPackedByteDecodesToItsTrits) {
  for (int v = 0; v < 243; ++v) {
    std::vector<uint8_t> b(54, 0);
    b[0] = static_cast<uint8_t>((v * 256 + 242) / 243);
    b[32] = b[0];
    put_f16(b.data() + 52, 1.0f);
    const std::vector<float> y = decode(Type::TQ1_0, b);
    int digits[5];
    for (int k = 4, r = v; k >= 0; --k, r /= 3) digits[k] = r % 3;
    for (int k = 0; k < 5; ++k) {
      ASSERT_EQ(y[32 * k], static_cast<float>(digits[k] - 1)) << "v=" << v << " trit " << k;
      ASSERT_EQ(y[160 + 16 * k], static_cast<float>(digits[k] - 1)) << "v=" << v << " trit " << k;
    }
  }
}

TEST(IqQuantize, Tq1HandBlockTailBytesHoldFourTrits) {
  std::vector<uint8_t> b(54, 0);
  put_f16(b.data() + 52, 2.0f);
  // Tail byte 2 holds elements 242, 246, 250, 254 as trits 2, 0, 1, 2 (and a 5th, zero trit).
  const int v = ((2 * 3 + 0) * 3 + 1) * 3 + 2;
  b[48 + 2] = static_cast<uint8_t>((v * 3 * 256 + 242) / 243);
  for (int m = 0; m < 48; ++m) b[m] = static_cast<uint8_t>((121 * 256 + 242) / 243);  // 11111 in base 3: zeros
  const std::vector<float> y = decode(Type::TQ1_0, b);
  EXPECT_EQ(y[242], 2.0f);
  EXPECT_EQ(y[246], -2.0f);
  EXPECT_EQ(y[250], 0.0f);
  EXPECT_EQ(y[254], 2.0f);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[241], -2.0f);  // tail byte 1 is zero: all its trits are 0 -> -1
}

TEST(IqQuantize, MxFp4HandBlock) {
  std::vector<uint8_t> b(17);
  b[0] = 127 + 3;  // scale 2^3 for the true E2M1 values
  for (int j = 0; j < 16; ++j) b[1 + j] = static_cast<uint8_t>(j | (15 - j) << 4);
  const std::vector<float> y = decode(Type::MXFP4, b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 8.0f * kE2m1[j]);
    EXPECT_EQ(y[16 + j], 8.0f * kE2m1[15 - j]);
  }
}

TEST(IqQuantize, E8m0HalfScaleIsTwoToTheEMinus128) {
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(iq::e8m0_half_to_float(static_cast<uint8_t>(e)), std::ldexp(1.0f, e - 128)) << e;
  }
}

// ---- quantize -> dequantize ----

// Relative RMS error on N(0, 1) data; bounds leave ~20% headroom over the values measured when written.
TEST(IqQuantize, RoundTripErrorBoundsOnGaussianData) {
  const std::vector<float> x = normal(256 * 64, 7);
  const struct {
    Type t;
    double bound;
  } cases[] = {
      {Type::IQ4_NL, 0.090},  // measured 0.0750
      {Type::IQ4_XS, 0.090},  // measured 0.0756
      {Type::MXFP4, 0.140},   // measured 0.1140
      {Type::TQ1_0, 0.85},    // measured 0.804: a ternary code with the block max as scale zeroes |x| < max / 2
      {Type::TQ2_0, 0.85},    // measured 0.804 (same codes as TQ1_0)
  };
  for (const auto& c : cases) {
    const double e = nrmse(round_trip(c.t, x), x);
    EXPECT_LT(e, c.bound) << type_name(c.t);
    std::printf("%-7s nrmse %.4f\n", std::string(type_name(c.t)).c_str(), e);
  }
}

// Ternary formats are meant for weights that are already ternary up to noise: there the error is small.
TEST(IqQuantize, TernaryErrorIsSmallOnNearTernaryData) {
  std::mt19937 rng(21);
  std::normal_distribution<float> noise(0.0f, 0.03f);
  std::vector<float> x(256 * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(rng() % 3) - 1) + noise(rng);
  for (Type t : {Type::TQ1_0, Type::TQ2_0}) {
    const double e = nrmse(round_trip(t, x), x);
    EXPECT_LT(e, 0.12) << type_name(t);
    std::printf("%-7s nrmse %.4f on near-ternary data\n", std::string(type_name(t)).c_str(), e);
  }
}

TEST(IqQuantize, Iq4NlTracksTheBlockScale) {
  // Scaling the input by a power of two scales the output exactly (the scale search is scale-invariant).
  const std::vector<float> x = normal(32 * 16, 11);
  std::vector<float> x4(x.size());
  for (size_t i = 0; i < x.size(); ++i) x4[i] = 4.0f * x[i];
  const std::vector<float> y = round_trip(Type::IQ4_NL, x);
  const std::vector<float> y4 = round_trip(Type::IQ4_NL, x4);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y4[i], 4.0f * y[i]) << i;
}

TEST(IqQuantize, Iq4NlValuesOnTheGridRoundTripExactly) {
  std::mt19937 rng(3);
  std::vector<float> x(32 * 8);
  for (int blk = 0; blk < 8; ++blk) {
    const float s = std::ldexp(1.0f, blk - 6) * 1.25f;  // exact in f16
    for (int j = 0; j < 32; ++j) x[32 * blk + j] = s * static_cast<float>(kLevels[1 + rng() % 15]);
    x[32 * blk + 5] = s * -127.0f;  // the largest magnitude sits on the outer level
  }
  const std::vector<float> y = round_trip(Type::IQ4_NL, x);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]) << i;
}

TEST(IqQuantize, Iq4XsValuesOnTheGridRoundTripExactly) {
  std::mt19937 rng(5);
  const float d = 1.0f / 64.0f;
  std::vector<float> x(256 * 2);
  for (int blk = 0; blk < 2; ++blk) {
    for (int ib = 0; ib < 8; ++ib) {
      const int l = ib == 0 ? -32 : static_cast<int>(rng() % 63) - 31;  // sub-block scales d * l
      const float dl = d * static_cast<float>(l == 0 ? 1 : l);
      float* sub = x.data() + 256 * blk + 32 * ib;
      for (int j = 0; j < 32; ++j) sub[j] = dl * static_cast<float>(kLevels[1 + rng() % 15]);
      sub[7] = dl * -127.0f;
    }
  }
  const std::vector<float> y = round_trip(Type::IQ4_XS, x);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]) << i;
}

TEST(IqQuantize, MxFp4ValuesOnTheGridRoundTripExactly) {
  std::mt19937 rng(9);
  std::vector<float> x(32 * 12);
  for (int blk = 0; blk < 12; ++blk) {
    const float scale = std::ldexp(1.0f, 3 * blk - 20);
    for (int j = 0; j < 32; ++j) x[32 * blk + j] = scale * kE2m1[rng() % 16];
    x[32 * blk + 9] = scale * -6.0f;
  }
  const std::vector<float> y = round_trip(Type::MXFP4, x);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]) << i;
}

TEST(IqQuantize, TernaryValuesRoundTripExactly) {
  std::mt19937 rng(13);
  std::vector<float> x(256 * 3);
  for (int blk = 0; blk < 3; ++blk) {
    const float a = 0.75f * static_cast<float>(blk + 1);
    for (int j = 0; j < 256; ++j) x[256 * blk + j] = a * static_cast<float>(static_cast<int>(rng() % 3) - 1);
    x[256 * blk] = a;
  }
  for (Type t : {Type::TQ1_0, Type::TQ2_0}) {
    const std::vector<float> y = round_trip(t, x);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], x[i]) << type_name(t) << " " << i;
  }
}

TEST(IqQuantize, TernaryRoundsToNearestWithTheMaxAsScale) {
  std::vector<float> x(256, 0.0f);
  x[0] = 4.0f;   // scale
  x[1] = 2.1f;   // > half: +1
  x[2] = 1.9f;   // < half: 0
  x[3] = -2.5f;  // -1
  x[255] = -4.0f;
  for (Type t : {Type::TQ1_0, Type::TQ2_0}) {
    const std::vector<float> y = round_trip(t, x);
    EXPECT_EQ(y[1], 4.0f) << type_name(t);
    EXPECT_EQ(y[2], 0.0f) << type_name(t);
    EXPECT_EQ(y[3], -4.0f) << type_name(t);
    EXPECT_EQ(y[255], -4.0f) << type_name(t);
  }
}

TEST(IqQuantize, ZeroBlocksStayZero) {
  for (Type t : kQuantizable) {
    const std::vector<float> x(256, 0.0f);
    const std::vector<float> y = round_trip(t, x);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
  }
}

TEST(IqQuantize, OutputIsFiniteOverAWideDynamicRange) {
  std::mt19937 rng(17);
  std::vector<float> x(256 * 16);
  for (size_t i = 0; i < x.size(); ++i) {
    const int blk = static_cast<int>(i / 256);
    x[i] = std::ldexp(std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng), 2 * blk - 20);  // 2^-20 .. 2^10
  }
  x[300] = 0.0f;
  x[301] = 1e-30f;  // tiny value next to large ones
  for (Type t : kQuantizable) {
    const std::vector<float> y = round_trip(t, x);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_TRUE(std::isfinite(y[i])) << type_name(t) << " " << i;
  }
}

// ---- dispatch ----

TEST(IqQuantize, FamilyReportsWhatItCanQuantize) {
  for (Type t : kQuantizable) EXPECT_TRUE(can_quantize(t)) << type_name(t);
  for (Type t : {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S, Type::IQ1_S, Type::IQ1_M}) {
    EXPECT_FALSE(can_quantize(t)) << type_name(t);
    std::vector<float> x(256, 1.0f);
    std::vector<uint8_t> q(*row_bytes(t, 256));
    const Status s = quantize(t, x.data(), q.data(), 256);
    EXPECT_FALSE(s.ok()) << type_name(t);
  }
}

TEST(IqQuantize, BadLengthIsAnError) {
  std::vector<float> x(300, 0.0f);
  std::vector<uint8_t> q(1024);
  EXPECT_FALSE(quantize(Type::IQ4_XS, x.data(), q.data(), 300).ok());
  EXPECT_FALSE(dequantize(Type::MXFP4, q.data(), x.data(), 33).ok());
}

}  // namespace
}  // namespace rf::quant
