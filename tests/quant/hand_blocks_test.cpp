// Dequantization of blocks assembled by hand in the test, byte by byte from the published block layouts
// (not through our quantizer), checked against a direct formula per element. Scales are powers of two so the
// expected products are exact and the comparison can be bit-exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quant/quant.h"
#include "quant/quant_test_util.h"

namespace rf::quant {
namespace {

using test::put_f16;

struct Case {
  std::vector<uint8_t> bytes;
  std::vector<float> expected;
};

void check_case(Type t, const Case& c) {
  const int64_t n = static_cast<int64_t>(c.expected.size());
  ASSERT_EQ(row_bytes(t, n), c.bytes.size()) << type_name(t);
  std::vector<float> y(c.expected.size(), NAN);
  ASSERT_TRUE(dequantize(t, c.bytes.data(), y.data(), n).ok());
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_EQ(y[i], c.expected[i]) << type_name(t) << " element " << i;
  }
}

// Per-block scale that differs between blocks so a wrong block stride shows.
float block_scale(int b) { return std::ldexp(1.0f, -2 - b); }

// ---- legacy: code of element j in block b, nibbles packed as "byte j = element j | element j+16 << 4".
Case legacy_case(Type t, int blocks) {
  const bool five = t == Type::Q5_0 || t == Type::Q5_1;
  const bool has_min = t == Type::Q4_1 || t == Type::Q5_1;
  Case c;
  for (int b = 0; b < blocks; ++b) {
    const float d = block_scale(b);
    const float m = has_min ? -1.5f - static_cast<float>(b) : 0.0f;
    int q[32];
    for (int j = 0; j < 32; ++j) q[j] = (j * (five ? 7 : 5) + 3 + b) % (five ? 32 : 16);
    std::vector<uint8_t> blk(2);
    put_f16(blk.data(), d);
    if (has_min) {
      blk.resize(4);
      put_f16(blk.data() + 2, m);
    }
    if (five) {
      uint8_t qh[4] = {0, 0, 0, 0};
      for (int j = 0; j < 32; ++j) {
        if (q[j] & 16) qh[j / 8] = static_cast<uint8_t>(qh[j / 8] | (1 << (j % 8)));
      }
      blk.insert(blk.end(), qh, qh + 4);
    }
    for (int j = 0; j < 16; ++j) blk.push_back(static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4)));
    c.bytes.insert(c.bytes.end(), blk.begin(), blk.end());
    for (int j = 0; j < 32; ++j) {
      const double v = has_min ? q[j] * static_cast<double>(d) + m : (q[j] - (five ? 16 : 8)) * static_cast<double>(d);
      c.expected.push_back(static_cast<float>(v));
    }
  }
  return c;
}

Case q8_case(bool with_sum, int blocks) {
  Case c;
  for (int b = 0; b < blocks; ++b) {
    const float d = block_scale(b);
    uint8_t hdr[4];
    put_f16(hdr, d);
    int sum = 0;
    std::vector<int8_t> q(32);
    for (int j = 0; j < 32; ++j) {
      q[j] = static_cast<int8_t>(j * 8 - 128 + b);
      sum += q[j];
    }
    put_f16(hdr + 2, static_cast<float>(sum) * d);
    c.bytes.insert(c.bytes.end(), hdr, hdr + (with_sum ? 4 : 2));
    for (int j = 0; j < 32; ++j) {
      c.bytes.push_back(static_cast<uint8_t>(q[j]));
      c.expected.push_back(static_cast<float>(q[j] * static_cast<double>(d)));
    }
  }
  return c;
}

// ---- K-quants. 2-bit planes (Q2_K, Q3_K): within each 128-element half, byte l holds elements l, l+32, l+64,
// l+96 in bit pairs 0-1, 2-3, 4-5, 6-7.
void put_two_bit_planes(const std::vector<int>& codes, uint8_t* qs) {
  for (int half = 0; half < 2; ++half) {
    for (int shift = 0; shift < 4; ++shift) {
      for (int l = 0; l < 32; ++l)
        qs[32 * half + l] |= static_cast<uint8_t>(codes[128 * half + 32 * shift + l] << (2 * shift));
    }
  }
}

Case q2_k_case(int blocks) {
  Case c;
  for (int b = 0; b < blocks; ++b) {
    std::vector<uint8_t> blk(84, 0);
    const float d = block_scale(b), dmin = block_scale(b + 1);
    std::vector<int> q(256);
    for (int e = 0; e < 256; ++e) q[e] = (e * 5 + e / 16 + b) % 4;
    for (int s = 0; s < 16; ++s) blk[s] = static_cast<uint8_t>(((s * 3 + 1) % 16) | (((15 - s) % 16) << 4));
    put_two_bit_planes(q, blk.data() + 16);
    put_f16(blk.data() + 80, d);
    put_f16(blk.data() + 82, dmin);
    for (int e = 0; e < 256; ++e) {
      const int s = e / 16;
      c.expected.push_back(static_cast<float>(static_cast<double>(d) * ((s * 3 + 1) % 16) * q[e] -
                                              static_cast<double>(dmin) * (15 - s)));
    }
    c.bytes.insert(c.bytes.end(), blk.begin(), blk.end());
  }
  return c;
}

Case q3_k_case(int blocks) {
  Case c;
  for (int b = 0; b < blocks; ++b) {
    std::vector<uint8_t> blk(110, 0);
    const float d = block_scale(b);
    std::vector<int> q(256), low(256);
    for (int e = 0; e < 256; ++e) {
      q[e] = (e * 3 + 1 + b) % 8 - 4;  // [-4, 3]; stored as q + 4: bit 2 in hmask, bits 0-1 in qs
      low[e] = (q[e] + 4) & 3;
      if (q[e] + 4 >= 4) blk[e % 32] = static_cast<uint8_t>(blk[e % 32] | (1 << (e / 32)));
    }
    put_two_bit_planes(low, blk.data() + 32);
    int sc[16];
    uint8_t* s = blk.data() + 96;
    for (int j = 0; j < 16; ++j) {
      sc[j] = (j * 13 + 5 + b) % 64;  // biased by 32
      if (j < 8)
        s[j] = static_cast<uint8_t>(s[j] | (sc[j] & 15));
      else
        s[j - 8] = static_cast<uint8_t>(s[j - 8] | ((sc[j] & 15) << 4));
      s[8 + j % 4] = static_cast<uint8_t>(s[8 + j % 4] | ((sc[j] >> 4) << (2 * (j / 4))));
    }
    put_f16(blk.data() + 108, d);
    for (int e = 0; e < 256; ++e)
      c.expected.push_back(static_cast<float>(static_cast<double>(d) * (sc[e / 16] - 32) * q[e]));
    c.bytes.insert(c.bytes.end(), blk.begin(), blk.end());
  }
  return c;
}

// Q4_K/Q5_K 12-byte scale area: sub-blocks 0-3 in bytes 0-3 (scale) and 4-7 (min), sub-blocks 4-7 split into
// low nibbles in bytes 8-11 and top two bits in bits 6-7 of bytes 0-7.
void put_scales_mins(const int* sc, const int* mn, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
  }
}

Case q45_k_case(bool five, int blocks) {
  Case c;
  for (int b = 0; b < blocks; ++b) {
    std::vector<uint8_t> blk(five ? 176 : 144, 0);
    const float d = block_scale(b), dmin = block_scale(b + 2);
    put_f16(blk.data(), d);
    put_f16(blk.data() + 2, dmin);
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = (j * 9 + 20 + b) % 64;
      mn[j] = (j * 17 + 33 + b) % 64;
    }
    put_scales_mins(sc, mn, blk.data() + 4);
    std::vector<int> q(256);
    for (int e = 0; e < 256; ++e) q[e] = (e * (five ? 13 : 7) + 3 + b) % (five ? 32 : 16);
    uint8_t* qs = blk.data() + (five ? 48 : 16);
    for (int chunk = 0; chunk < 4; ++chunk) {
      for (int l = 0; l < 32; ++l) {
        qs[32 * chunk + l] = static_cast<uint8_t>((q[64 * chunk + l] & 15) | ((q[64 * chunk + 32 + l] & 15) << 4));
        if (five) {
          uint8_t& qh = blk[16 + l];
          qh = static_cast<uint8_t>(qh | ((q[64 * chunk + l] >> 4) << (2 * chunk)) |
                                    ((q[64 * chunk + 32 + l] >> 4) << (2 * chunk + 1)));
        }
      }
    }
    for (int e = 0; e < 256; ++e) {
      const int j = e / 32;
      c.expected.push_back(
          static_cast<float>(static_cast<double>(d) * sc[j] * q[e] - static_cast<double>(dmin) * mn[j]));
    }
    c.bytes.insert(c.bytes.end(), blk.begin(), blk.end());
  }
  return c;
}

Case q6_k_case(int blocks) {
  Case c;
  for (int b = 0; b < blocks; ++b) {
    std::vector<uint8_t> blk(210, 0);
    const float d = std::ldexp(1.0f, -7 - b);
    std::vector<int> q(256);
    for (int e = 0; e < 256; ++e) q[e] = (e * 29 + 11 + b) % 64;
    for (int h = 0; h < 2; ++h) {
      const int* g = q.data() + 128 * h;
      for (int l = 0; l < 32; ++l) {
        blk[64 * h + l] = static_cast<uint8_t>((g[l] & 15) | ((g[l + 64] & 15) << 4));
        blk[64 * h + l + 32] = static_cast<uint8_t>((g[l + 32] & 15) | ((g[l + 96] & 15) << 4));
        blk[128 + 32 * h + l] = static_cast<uint8_t>((g[l] >> 4) | ((g[l + 32] >> 4) << 2) | ((g[l + 64] >> 4) << 4) |
                                                     ((g[l + 96] >> 4) << 6));
      }
    }
    int sc[16];
    for (int j = 0; j < 16; ++j) {
      sc[j] = j * 15 - 100 + b;
      blk[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(sc[j]));
    }
    put_f16(blk.data() + 208, d);
    for (int e = 0; e < 256; ++e)
      c.expected.push_back(static_cast<float>(static_cast<double>(d) * sc[e / 16] * (q[e] - 32)));
    c.bytes.insert(c.bytes.end(), blk.begin(), blk.end());
  }
  return c;
}

Case q8_k_case(int blocks) {
  Case c;
  for (int b = 0; b < blocks; ++b) {
    std::vector<uint8_t> blk(292, 0);
    const float d = 0.01f * static_cast<float>(b + 1);  // any float: one multiply, correctly rounded
    std::memcpy(blk.data(), &d, 4);
    for (int e = 0; e < 256; ++e) {
      const auto q = static_cast<int8_t>((e * 37 + b) % 256 - 128);
      blk[4 + e] = static_cast<uint8_t>(q);
      c.expected.push_back(static_cast<float>(static_cast<double>(d) * q));
    }
    c.bytes.insert(c.bytes.end(), blk.begin(), blk.end());
  }
  return c;
}

TEST(HandBlocks, LegacyTypesDecodeEveryElementOfEveryBlock) {
  for (Type t : {Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1}) check_case(t, legacy_case(t, 3));
  check_case(Type::Q8_0, q8_case(false, 3));
  check_case(Type::Q8_1, q8_case(true, 3));
}

TEST(HandBlocks, KQuantTypesDecodeEveryElementOfEveryBlock) {
  check_case(Type::Q2_K, q2_k_case(2));
  check_case(Type::Q3_K, q3_k_case(2));
  check_case(Type::Q4_K, q45_k_case(false, 2));
  check_case(Type::Q5_K, q45_k_case(true, 2));
  check_case(Type::Q6_K, q6_k_case(2));
  check_case(Type::Q8_K, q8_k_case(2));
}

TEST(HandBlocks, HalfPrecisionBitPatternsDecodeToIeeeValues) {
  // F16: (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
  const uint16_t f16[] = {0x3C00, 0xC000, 0x0001, 0x03FF, 0x7BFF, 0x7C00, 0x8000, 0x3555};
  const float want16[] = {1.0f,
                          -2.0f,
                          std::ldexp(1.0f, -24),
                          std::ldexp(1023.0f, -24),
                          65504.0f,
                          INFINITY,
                          -0.0f,
                          std::ldexp(1.0f + 341.0f / 1024.0f, -2)};
  std::vector<float> y(8);
  ASSERT_TRUE(dequantize(Type::F16, f16, y.data(), 8).ok());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(y[i], want16[i]) << i;
  EXPECT_TRUE(std::signbit(y[6]));
  // BF16: the top 16 bits of an F32.
  const uint16_t bf16[] = {0x3F80, 0xC0A0, 0x0001, 0x7F7F};
  const float want_bf[] = {1.0f, -5.0f, std::ldexp(1.0f, -133), std::ldexp(255.0f, 127 - 7)};
  ASSERT_TRUE(dequantize(Type::BF16, bf16, y.data(), 4).ok());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], want_bf[i]) << i;
}

TEST(HandBlocks, IntegerAndWideFloatTypesConvert) {
  const int8_t i8[] = {-128, 0, 127};
  const int16_t i16[] = {-32768, 5, 32767};
  const int32_t i32[] = {-7, 1 << 24, 3};
  const double f64[] = {0.5, -1e10, 3.25};
  std::vector<float> y(3);
  ASSERT_TRUE(dequantize(Type::I8, i8, y.data(), 3).ok());
  EXPECT_EQ(y, (std::vector<float>{-128.0f, 0.0f, 127.0f}));
  ASSERT_TRUE(dequantize(Type::I16, i16, y.data(), 3).ok());
  EXPECT_EQ(y, (std::vector<float>{-32768.0f, 5.0f, 32767.0f}));
  ASSERT_TRUE(dequantize(Type::I32, i32, y.data(), 3).ok());
  EXPECT_EQ(y, (std::vector<float>{-7.0f, 16777216.0f, 3.0f}));
  ASSERT_TRUE(dequantize(Type::F64, f64, y.data(), 3).ok());
  EXPECT_EQ(y, (std::vector<float>{0.5f, -1e10f, 3.25f}));
}

TEST(HandBlocks, UnalignedSourceDecodesLikeAligned) {
  const Case c = q45_k_case(true, 2);
  std::vector<uint8_t> shifted(c.bytes.size() + 1);
  std::memcpy(shifted.data() + 1, c.bytes.data(), c.bytes.size());
  std::vector<float> y(c.expected.size());
  ASSERT_TRUE(dequantize(Type::Q5_K, shifted.data() + 1, y.data(), static_cast<int64_t>(y.size())).ok());
  EXPECT_EQ(y, c.expected);
}

TEST(HandBlocks, BadElementCountsAndUnknownTypesAreErrors) {
  std::vector<uint8_t> buf(1024);
  std::vector<float> y(512);
  const Status s = dequantize(Type::Q4_K, buf.data(), y.data(), 100);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Q4_K"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("256"), std::string::npos) << s.message();
  EXPECT_FALSE(dequantize(Type::Q8_0, buf.data(), y.data(), -32).ok());
  EXPECT_FALSE(dequantize(static_cast<Type>(77), buf.data(), y.data(), 32).ok());
  EXPECT_FALSE(quantize(Type::Q4_0, y.data(), buf.data(), 31).ok());
  EXPECT_FALSE(quantize(Type::I32, y.data(), buf.data(), 4).ok());
  EXPECT_FALSE(can_quantize(Type::I8));
  EXPECT_FALSE(can_quantize(static_cast<Type>(77)));
  EXPECT_TRUE(dequantize(Type::Q6_K, nullptr, nullptr, 0).ok());
}

}  // namespace
}  // namespace rf::quant

namespace rf::quant {
namespace {

// Block sizes and bytes derived field by field from ggml's block structs (QK_K = 256), against the type table.
TEST(TypeTable, BlockSizesAndBytesMatchTheBlockLayouts) {
  constexpr int kK = 256;
  constexpr int kHalf = 2;
  struct Row {
    Type type;
    int64_t block;
    size_t bytes;
  };
  const Row rows[] = {
      {Type::F32, 1, 4},
      {Type::F16, 1, 2},
      {Type::BF16, 1, 2},
      {Type::F64, 1, 8},
      {Type::I8, 1, 1},
      {Type::I16, 1, 2},
      {Type::I32, 1, 4},
      {Type::I64, 1, 8},
      {Type::Q4_0, 32, kHalf + 32 / 2},
      {Type::Q4_1, 32, 2 * kHalf + 32 / 2},
      {Type::Q5_0, 32, kHalf + 4 + 32 / 2},
      {Type::Q5_1, 32, 2 * kHalf + 4 + 32 / 2},
      {Type::Q8_0, 32, kHalf + 32},
      {Type::Q8_1, 32, 2 * kHalf + 32},
      {Type::Q2_K, kK, kK / 16 + kK / 4 + 2 * kHalf},
      {Type::Q3_K, kK, kK / 8 + kK / 4 + 12 + kHalf},
      {Type::Q4_K, kK, 2 * kHalf + 12 + kK / 2},
      {Type::Q5_K, kK, 2 * kHalf + 12 + kK / 8 + kK / 2},
      {Type::Q6_K, kK, kK / 2 + kK / 4 + kK / 16 + kHalf},
      {Type::Q8_K, kK, 4 + kK + 2 * (kK / 16)},
      {Type::IQ2_XXS, kK, kHalf + 2 * (kK / 8)},
      {Type::IQ2_XS, kK, kHalf + 2 * (kK / 8) + kK / 32},
      {Type::IQ2_S, kK, kHalf + kK / 4 + kK / 32 + kK / 32},
      {Type::IQ3_XXS, kK, kHalf + 3 * kK / 8},
      {Type::IQ3_S, kK, kHalf + kK / 4 + kK / 32 + kK / 8 + kK / 64},
      {Type::IQ1_S, kK, kHalf + kK / 8 + 2 * (kK / 32)},
      {Type::IQ1_M, kK, kK / 8 + kK / 16 + kK / 32},
      {Type::IQ4_NL, 32, kHalf + 32 / 2},
      {Type::IQ4_XS, kK, kHalf + 2 + kK / 64 + kK / 2},
      {Type::TQ1_0, kK, (kK - 4 * kK / 64) / 5 + kK / 64 + kHalf},
      {Type::TQ2_0, kK, kK / 4 + kHalf},
      {Type::MXFP4, 32, 1 + 32 / 2},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(traits(r.type).block_size, r.block) << type_name(r.type);
    EXPECT_EQ(traits(r.type).block_bytes, r.bytes) << type_name(r.type);
    EXPECT_EQ(type_from_name(type_name(r.type)), r.type) << type_name(r.type);
  }
}

}  // namespace
}  // namespace rf::quant
