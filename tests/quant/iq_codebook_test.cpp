// Hand-assembled blocks of the codebook formats: the test draws the fields (scales, grid indices, signs), packs
// them into bytes following the layout, and compares quant::dequantize with the values written out from the
// fields by the formula of each format.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "quant/iq_grids.h"
#include "quant/quant.h"

namespace rf::quant {
namespace {

using iq::grid_byte;

struct Rng {
  std::mt19937 gen{12345};
  uint32_t below(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(gen); }
  // A random positive scale that is exact in f16.
  float f16_scale() { return fp16_to_fp32(fp32_to_fp16(std::uniform_real_distribution<float>(0.001f, 2.0f)(gen))); }
};

void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) { std::memcpy(b.data() + at, &v, 2); }
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void put_f16(std::vector<uint8_t>& b, size_t at, float v) { put16(b, at, fp32_to_fp16(v)); }

// Sign of element j of an 8-element group from a 7-bit sign index: bits 0..6 given, bit 7 makes the parity even.
bool iq2_negative(uint32_t sign_index, int j) {
  if (j < 7) return (sign_index >> j) & 1u;
  return std::popcount(sign_index & 0x7fu) % 2 == 1;
}

float signed_value(float magnitude_times_scale, bool negative) {
  return negative ? -magnitude_times_scale : magnitude_times_scale;
}

std::vector<float> decode(Type t, const std::vector<uint8_t>& bytes) {
  const int64_t n = static_cast<int64_t>(bytes.size() / traits(t).block_bytes) * traits(t).block_size;
  std::vector<float> out(static_cast<size_t>(n), NAN);
  const Status s = dequantize(t, bytes.data(), out.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "element " << i;
}

constexpr int kBlocks = 3;

TEST(IqCodebook, Iq2XxsKnownBlock) {
  // d = 1, every sub-block scale 15 -> 1 * 15.5 * 0.25 = 3.875; grid entry 0 is all 0x08 = 8 -> 31.
  std::vector<uint8_t> b(66, 0);
  put_f16(b, 0, 1.0f);
  for (int ib = 0; ib < 8; ++ib) put32(b, 2 + 8 * ib + 4, 15u << 28 | (1u << 7));  // group 1: sign index 1
  const std::vector<float> y = decode(Type::IQ2_XXS, b);
  EXPECT_EQ(y[0], 31.0f);
  EXPECT_EQ(y[8], -31.0f);   // group 1, element 0: sign bit 0 set
  EXPECT_EQ(y[15], -31.0f);  // ... and element 7 by parity (one bit set)
  EXPECT_EQ(y[9], 31.0f);
}

TEST(IqCodebook, Iq2XxsRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(66 * kBlocks);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 66 * blk;
    const float d = rng.f16_scale();
    put_f16(b, o, d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t scale = rng.below(16);
      uint32_t aux = scale << 28;
      for (int l = 0; l < 4; ++l) {
        const uint32_t g = rng.below(256);
        const uint32_t s = rng.below(128);
        b[o + 2 + 8 * ib + l] = static_cast<uint8_t>(g);
        aux |= s << (7 * l);
        const float db = d * (0.5f + static_cast<float>(scale)) * 0.25f;
        for (int j = 0; j < 8; ++j) {
          want[256 * blk + 32 * ib + 8 * l + j] =
              signed_value(db * grid_byte(iq::kIq2xxsGrid[g], j), iq2_negative(s, j));
        }
      }
      put32(b, o + 2 + 8 * ib + 4, aux);
    }
  }
  expect_same(decode(Type::IQ2_XXS, b), want);
}

TEST(IqCodebook, Iq2XsRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(74 * kBlocks);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 74 * blk;
    const float d = rng.f16_scale();
    put_f16(b, o, d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t s_lo = rng.below(16);
      const uint32_t s_hi = rng.below(16);
      b[o + 66 + ib] = static_cast<uint8_t>(s_lo | s_hi << 4);
      for (int l = 0; l < 4; ++l) {
        const uint32_t g = rng.below(512);
        const uint32_t s = rng.below(128);
        put16(b, o + 2 + 2 * (4 * ib + l), static_cast<uint16_t>(g | s << 9));
        const float db = d * (0.5f + static_cast<float>(l < 2 ? s_lo : s_hi)) * 0.25f;
        for (int j = 0; j < 8; ++j) {
          want[256 * blk + 32 * ib + 8 * l + j] =
              signed_value(db * grid_byte(iq::kIq2xsGrid[g], j), iq2_negative(s, j));
        }
      }
    }
  }
  expect_same(decode(Type::IQ2_XS, b), want);
}

TEST(IqCodebook, Iq2SRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(82 * kBlocks, 0);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 82 * blk;
    const float d = rng.f16_scale();
    put_f16(b, o, d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t s_lo = rng.below(16);
      const uint32_t s_hi = rng.below(16);
      b[o + 74 + ib] = static_cast<uint8_t>(s_lo | s_hi << 4);
      for (int l = 0; l < 4; ++l) {
        const uint32_t g = rng.below(1024);
        const uint32_t signs = rng.below(256);  // all 8 signs stored
        b[o + 2 + 4 * ib + l] = static_cast<uint8_t>(g & 0xff);
        b[o + 34 + 4 * ib + l] = static_cast<uint8_t>(signs);
        b[o + 66 + ib] = static_cast<uint8_t>(b[o + 66 + ib] | (g >> 8) << (2 * l));
        const float db = d * (0.5f + static_cast<float>(l < 2 ? s_lo : s_hi)) * 0.25f;
        for (int j = 0; j < 8; ++j) {
          want[256 * blk + 32 * ib + 8 * l + j] = signed_value(db * grid_byte(iq::kIq2sGrid[g], j), (signs >> j) & 1u);
        }
      }
    }
  }
  expect_same(decode(Type::IQ2_S, b), want);
}

TEST(IqCodebook, Iq3XxsKnownBlock) {
  // d = 2, scale 3 -> 2 * 3.5 * 0.5 = 3.5; grid entry 1 = bytes {0x14, 4, 4, 4} -> 70, 14, 14, 14.
  std::vector<uint8_t> b(98, 0);
  put_f16(b, 0, 2.0f);
  b[2] = 1;
  for (int ib = 0; ib < 8; ++ib) put32(b, 66 + 4 * ib, 3u << 28);
  const std::vector<float> y = decode(Type::IQ3_XXS, b);
  EXPECT_EQ(y[0], 70.0f);
  EXPECT_EQ(y[1], 14.0f);
  EXPECT_EQ(y[4], 14.0f);  // second entry of the group: index 0 -> all 4
}

TEST(IqCodebook, Iq3XxsRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(98 * kBlocks);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 98 * blk;
    const float d = rng.f16_scale();
    put_f16(b, o, d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t scale = rng.below(16);
      uint32_t aux = scale << 28;
      const float db = d * (0.5f + static_cast<float>(scale)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        const uint32_t s = rng.below(128);
        aux |= s << (7 * l);
        const uint32_t g0 = rng.below(256);
        const uint32_t g1 = rng.below(256);
        b[o + 2 + 8 * ib + 2 * l] = static_cast<uint8_t>(g0);
        b[o + 2 + 8 * ib + 2 * l + 1] = static_cast<uint8_t>(g1);
        for (int j = 0; j < 8; ++j) {
          const uint32_t entry = j < 4 ? iq::kIq3xxsGrid[g0] : iq::kIq3xxsGrid[g1];
          want[256 * blk + 32 * ib + 8 * l + j] = signed_value(db * grid_byte(entry, j % 4), iq2_negative(s, j));
        }
      }
      put32(b, o + 66 + 4 * ib, aux);
    }
  }
  expect_same(decode(Type::IQ3_XXS, b), want);
}

TEST(IqCodebook, Iq3SRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(110 * kBlocks, 0);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 110 * blk;
    const float d = rng.f16_scale();
    put_f16(b, o, d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t scale = rng.below(16);
      b[o + 106 + ib / 2] = static_cast<uint8_t>(b[o + 106 + ib / 2] | scale << (4 * (ib % 2)));
      const float db = d * static_cast<float>(1 + 2 * scale);
      for (int k = 0; k < 8; ++k) {  // 8 grid entries of 4 values
        const uint32_t g = rng.below(512);
        b[o + 2 + 8 * ib + k] = static_cast<uint8_t>(g & 0xff);
        b[o + 66 + ib] = static_cast<uint8_t>(b[o + 66 + ib] | (g >> 8) << k);
        for (int j = 0; j < 4; ++j) want[256 * blk + 32 * ib + 4 * k + j] = db * grid_byte(iq::kIq3sGrid[g], j);
      }
      for (int l = 0; l < 4; ++l) {
        const uint32_t signs = rng.below(256);
        b[o + 74 + 4 * ib + l] = static_cast<uint8_t>(signs);
        for (int j = 0; j < 8; ++j) {
          float& w = want[256 * blk + 32 * ib + 8 * l + j];
          w = signed_value(w, (signs >> j) & 1u);
        }
      }
    }
  }
  expect_same(decode(Type::IQ3_S, b), want);
}

float iq1_value(uint64_t entry, int j) { return static_cast<float>(static_cast<int8_t>(grid_byte(entry, j))); }

TEST(IqCodebook, Iq1SKnownBlock) {
  // d = 0.5, scale 2 -> 0.5 * 5 = 2.5; grid entry 0 is all -1; delta +0.125 -> 2.5 * -0.875 = -2.1875.
  std::vector<uint8_t> b(50, 0);
  put_f16(b, 0, 0.5f);
  for (int ib = 0; ib < 8; ++ib) put16(b, 34 + 2 * ib, static_cast<uint16_t>(2u << 12 | (ib == 1 ? 0x8000u : 0u)));
  const std::vector<float> y = decode(Type::IQ1_S, b);
  EXPECT_EQ(y[0], -2.1875f);
  EXPECT_EQ(y[32], 2.5f * (-1.0f - 0.125f));  // sub-block 1: negative delta
}

TEST(IqCodebook, Iq1SRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(50 * kBlocks);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 50 * blk;
    const float d = rng.f16_scale();
    put_f16(b, o, d);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t scale = rng.below(8);
      const bool neg_delta = rng.below(2) == 1;
      uint32_t qh = scale << 12 | (neg_delta ? 0x8000u : 0u);
      const float dl = d * static_cast<float>(2 * scale + 1);
      const float delta = neg_delta ? -0.125f : 0.125f;
      for (int l = 0; l < 4; ++l) {
        const uint32_t g = rng.below(2048);
        b[o + 2 + 4 * ib + l] = static_cast<uint8_t>(g & 0xff);
        qh |= (g >> 8) << (3 * l);
        for (int j = 0; j < 8; ++j) {
          want[256 * blk + 32 * ib + 8 * l + j] = dl * (iq1_value(iq::kIq1sGrid[g], j) + delta);
        }
      }
      put16(b, o + 34 + 2 * ib, static_cast<uint16_t>(qh));
    }
  }
  expect_same(decode(Type::IQ1_S, b), want);
}

TEST(IqCodebook, Iq1MRandomFields) {
  Rng rng;
  std::vector<uint8_t> b(56 * kBlocks, 0);
  std::vector<float> want(256 * kBlocks);
  for (int blk = 0; blk < kBlocks; ++blk) {
    const size_t o = 56 * blk;
    const float d = rng.f16_scale();
    const uint16_t d_bits = fp32_to_fp16(d);
    uint16_t sc[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; ++k) sc[k] = static_cast<uint16_t>(((d_bits >> (4 * k)) & 0xfu) << 12);
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t s1 = rng.below(8);
      const uint32_t s2 = rng.below(8);
      sc[ib / 2] = static_cast<uint16_t>(sc[ib / 2] | (s1 | s2 << 3) << (6 * (ib % 2)));
      for (int l = 0; l < 4; ++l) {
        const uint32_t g = rng.below(2048);
        const bool neg_delta = rng.below(2) == 1;
        b[o + 4 * ib + l] = static_cast<uint8_t>(g & 0xff);
        const uint32_t nibble = (g >> 8) | (neg_delta ? 8u : 0u);
        b[o + 32 + 2 * ib + l / 2] = static_cast<uint8_t>(b[o + 32 + 2 * ib + l / 2] | nibble << (4 * (l % 2)));
        const float dl = d * static_cast<float>(2 * (l < 2 ? s1 : s2) + 1);
        const float delta = neg_delta ? -0.125f : 0.125f;
        for (int j = 0; j < 8; ++j) {
          want[256 * blk + 32 * ib + 8 * l + j] = dl * (iq1_value(iq::kIq1sGrid[g], j) + delta);
        }
      }
    }
    for (int k = 0; k < 4; ++k) put16(b, o + 48 + 2 * k, sc[k]);
  }
  expect_same(decode(Type::IQ1_M, b), want);
}

// Arbitrary bytes (any index, any scale bits) decode without reading past the row (checked by ASan in CI).
TEST(IqCodebook, ArbitraryBytesDecodeWithinTheRow) {
  Rng rng;
  for (Type t : {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S, Type::IQ1_S, Type::IQ1_M,
                 Type::IQ4_NL, Type::IQ4_XS, Type::TQ1_0, Type::TQ2_0, Type::MXFP4}) {
    const int64_t n = 2 * traits(t).block_size;
    std::vector<uint8_t> bytes(*row_bytes(t, n));
    for (auto& x : bytes) x = static_cast<uint8_t>(rng.below(256));
    std::vector<float> out(static_cast<size_t>(n));
    EXPECT_TRUE(dequantize(t, bytes.data(), out.data(), n).ok()) << type_name(t);
  }
}

}  // namespace
}  // namespace rf::quant
