// TQ1_0 and TQ2_0: ternary weights {-1, 0, +1} times one f16 scale per 256-element block (BitNet-style models).
// TQ2_0 stores each trit in 2 bits; TQ1_0 packs 5 trits per byte in base 3, scaled to a byte so that the k-th
// trit can be extracted by a multiply and a shift: byte = ceil(v * 256 / 243) for the base-3 number v.
#include <cmath>

#include "quant/block_bytes.h"
#include "quant/iq_internal.h"

namespace rf::quant::iq {
namespace {

constexpr int kSuper = 256;
constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};

// The trit (0, 1, 2) in position k (0 = most significant) of a TQ1_0 byte.
int trit_at(uint8_t byte, int k) {
  const auto shifted = static_cast<uint8_t>(byte * kPow3[k]);  // modulo 256 drops the higher trits
  return (static_cast<uint16_t>(shifted) * 3) >> 8;
}

// Block scale (max |x|) and its inverse; non-finite input contributes nothing.
float block_amax(const float* x) {
  float amax = 0.0f;
  for (int j = 0; j < kSuper; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax && std::isfinite(a)) amax = a;
  }
  return amax;
}

// x / d rounded half away from zero to {-1, 0, 1}, returned as 0, 1, 2.
int ternary_code(float x, float inv_d) {
  const float v = x * inv_d;
  if (!(v == v)) return 1;
  const long r = std::lround(v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v));
  return static_cast<int>(r) + 1;
}

uint8_t pack_base3(const int* codes, int count) {
  int v = 0;
  for (int k = 0; k < count; ++k) v = v * 3 + codes[k];
  for (int k = count; k < 5; ++k) v *= 3;  // fewer than 5 trits: the first stays most significant
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}

}  // namespace

// TQ1_0, 54 bytes: 48 x u8 (5 trits each) | 4 x u8 (4 trits each) | f16 d.
// Element order: bytes 0..31 give elements 32 * k + m (k = trit position, m = byte); bytes 32..47 give
// 160 + 16 * k + (m - 32); the 4 trailing bytes give 240 + 4 * k + m.
void dequantize_tq1_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 54, dst += kSuper) {
    const float d = load_f16(src + 52);
    float* y = dst;
    for (int k = 0; k < 5; ++k) {
      for (int m = 0; m < 32; ++m) *y++ = static_cast<float>(trit_at(src[m], k) - 1) * d;
    }
    for (int k = 0; k < 5; ++k) {
      for (int m = 0; m < 16; ++m) *y++ = static_cast<float>(trit_at(src[32 + m], k) - 1) * d;
    }
    for (int k = 0; k < 4; ++k) {
      for (int m = 0; m < 4; ++m) *y++ = static_cast<float>(trit_at(src[48 + m], k) - 1) * d;
    }
  }
}

// TQ2_0, 66 bytes: 64 x u8 (4 x 2-bit codes; code - 1 is the trit) | f16 d.
// Byte 32 * h + m holds elements 128 * h + 32 * k + m in bits 2k, 2k + 1.
void dequantize_tq2_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 66, dst += kSuper) {
    const float d = load_f16(src + 64);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int m = 0; m < 32; ++m) {
          const int q = (src[32 * h + m] >> (2 * k)) & 3;
          dst[128 * h + 32 * k + m] = static_cast<float>(q - 1) * d;
        }
      }
    }
  }
}

void quantize_tq1_0(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kSuper, dst += 54) {
    const float amax = block_amax(src);
    const float inv = amax > 0.0f ? 1.0f / amax : 0.0f;
    int codes[5];
    for (int m = 0; m < 32; ++m) {
      for (int k = 0; k < 5; ++k) codes[k] = ternary_code(src[32 * k + m], inv);
      dst[m] = pack_base3(codes, 5);
    }
    for (int m = 0; m < 16; ++m) {
      for (int k = 0; k < 5; ++k) codes[k] = ternary_code(src[160 + 16 * k + m], inv);
      dst[32 + m] = pack_base3(codes, 5);
    }
    for (int m = 0; m < 4; ++m) {
      for (int k = 0; k < 4; ++k) codes[k] = ternary_code(src[240 + 4 * k + m], inv);
      dst[48 + m] = pack_base3(codes, 4);
    }
    store_f16(dst + 52, amax);
  }
}

void quantize_tq2_0(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kSuper, dst += 66) {
    const float amax = block_amax(src);
    const float inv = amax > 0.0f ? 1.0f / amax : 0.0f;
    for (int h = 0; h < 2; ++h) {
      for (int m = 0; m < 32; ++m) {
        int byte = 0;
        for (int k = 0; k < 4; ++k) byte |= ternary_code(src[128 * h + 32 * k + m], inv) << (2 * k);
        dst[32 * h + m] = static_cast<uint8_t>(byte);
      }
    }
    store_f16(dst + 64, amax);
  }
}

}  // namespace rf::quant::iq
