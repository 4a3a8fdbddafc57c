// MXFP4 (OCP microscaling FP4): 32 E2M1 values sharing one E8M0 power-of-two scale.
// ggml stores the E2M1 values doubled (kMxfp4Values are integers) and halves the scale to compensate.
#include <bit>
#include <cmath>

#include "quant/iq_grids.h"
#include "quant/iq_internal.h"

namespace rf::quant::iq {
namespace {

constexpr int kBlock = 32;

// Index of the value nearest to x for scale d (first one on ties); NaN picks index 0 (zero).
int nearest_fp4(float x, float d) {
  int best = 0;
  float best_err = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(static_cast<float>(kMxfp4Values[i]) * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

// Shared exponent: the largest magnitude lands in [4, 8) times the (full) scale 2^(e-127), i.e. near the top of
// E2M1's range (max 6); magnitudes in (6, 8) times the scale saturate to 6.
uint8_t shared_exponent(const float* x) {
  float amax = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax && std::isfinite(a)) amax = a;
  }
  if (!(amax > 0.0f)) return 0;
  const float e = std::floor(std::log2(amax)) - 2.0f + 127.0f;
  if (e < 0.0f) return 0;
  if (e > 254.0f) return 254;
  return static_cast<uint8_t>(e);
}

}  // namespace

float e8m0_half_to_float(uint8_t e) {
  // 2^(e-128): a normal float with biased exponent e - 1 for e >= 2, else one of the two largest subnormals.
  const uint32_t bits = e >= 2 ? static_cast<uint32_t>(e - 1) << 23 : 0x00200000u << e;
  return std::bit_cast<float>(bits);
}

// MXFP4, 17 bytes: u8 E8M0 exponent | 16 x u8 index pairs (element j low nibble, element j + 16 high nibble).
void dequantize_mxfp4(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 17, dst += kBlock) {
    const float d = e8m0_half_to_float(src[0]);
    const uint8_t* qs = src + 1;
    for (int j = 0; j < 16; ++j) {
      dst[j] = static_cast<float>(kMxfp4Values[qs[j] & 0xf]) * d;
      dst[j + 16] = static_cast<float>(kMxfp4Values[qs[j] >> 4]) * d;
    }
  }
}

void quantize_mxfp4(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kBlock, dst += 17) {
    const uint8_t e = shared_exponent(src);
    const float d = e8m0_half_to_float(e);
    dst[0] = e;
    for (int j = 0; j < 16; ++j) {
      dst[1 + j] = static_cast<uint8_t>(nearest_fp4(src[j], d) | (nearest_fp4(src[j + 16], d) << 4));
    }
  }
}

}  // namespace rf::quant::iq
