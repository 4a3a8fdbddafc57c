// Byte-level helpers shared by the block formats: little-endian fields read and written with memcpy
// (block data inside a file carries no alignment guarantee), and the rounding rules the formats are defined with.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/half.h"

namespace rf::quant {

inline float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

inline void store_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// The value a float becomes after a round trip through F16 (scales are stored as F16 and re-read).
inline float round_to_f16(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

inline float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void store_f32(uint8_t* p, float v) { std::memcpy(p, &v, 4); }

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Round half to even, saturated to +-(2^22 - 1) so that out-of-range input (inf, NaN -> 0) stays defined.
// Adding 1.5 * 2^23 makes the float's ulp exactly 1, so the addition itself rounds (to nearest even, the default
// mode) and the integer sits in the low mantissa bits. Much faster than std::nearbyint, which on baseline x86-64
// is a library call guarding the floating-point environment.
inline int round_even(float v) {
  constexpr float kLimit = 4194303.0f;
  if (!(v == v)) return 0;
  if (v > kLimit) v = kLimit;
  if (v < -kLimit) v = -kLimit;
  const float biased = v + 12582912.0f;
  return static_cast<int>(std::bit_cast<uint32_t>(biased) & 0x007fffffu) - 0x00400000;
}

// Truncation toward zero of v (the C cast the legacy formats are defined with), clamped to [lo, hi];
// NaN gives lo.
inline int trunc_clamp(float v, int lo, int hi) {
  if (!(v > static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// Round half away from zero (C roundf), clamped to [lo, hi]; NaN gives 0.
inline int round_away_clamp(float v, int lo, int hi) {
  if (!(v == v)) return 0;
  if (v <= static_cast<float>(lo)) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::round(v));
}

}  // namespace rf::quant
