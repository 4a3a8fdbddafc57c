// Byte offsets inside the K-quant super-blocks (256 elements each), and the 6-bit scale packing they share.
//   Q2_K (84 B):  scales[16] (low nibble: scale, high nibble: min), qs[64] (2-bit), f16 d, f16 dmin
//   Q3_K (110 B): hmask[32] (3rd bit), qs[64] (low 2 bits), scales[12] (16 x 6-bit, biased by 32), f16 d
//   Q4_K (144 B): f16 d, f16 dmin, scales[12] (8 scales + 8 mins, 6 bits each), qs[128] (nibbles)
//   Q5_K (176 B): f16 d, f16 dmin, scales[12], qh[32] (5th bit), qs[128] (low nibbles)
//   Q6_K (210 B): ql[128] (low nibbles), qh[64] (high 2 bits), int8 scales[16], f16 d
//   Q8_K (292 B): f32 d, int8 qs[256], int16 bsums[16] (sum of each 16 quants)
#pragma once

#include <cstdint>

namespace rf::quant::kq {

constexpr int kQk = 256;

constexpr int kQ2Scales = 0, kQ2Qs = 16, kQ2D = 80, kQ2Dmin = 82;
constexpr int kQ3Hmask = 0, kQ3Qs = 32, kQ3Scales = 96, kQ3D = 108;
constexpr int kQ4D = 0, kQ4Dmin = 2, kQ4Scales = 4, kQ4Qs = 16;
constexpr int kQ5D = 0, kQ5Dmin = 2, kQ5Scales = 4, kQ5Qh = 16, kQ5Qs = 48;
constexpr int kQ6Ql = 0, kQ6Qh = 128, kQ6Scales = 192, kQ6D = 208;
constexpr int kQ8D = 0, kQ8Qs = 4, kQ8Bsums = 260;

// Q4_K / Q5_K: scale and min of sub-block j (0..7) from the 12 packed bytes. Sub-blocks 0-3 keep their 6 bits
// in bytes j (scale) and j+4 (min); sub-blocks 4-7 keep their low 4 bits in byte j+4 (scale low, min high
// nibble) and their top 2 bits in the top 2 bits of bytes j-4 (scale) and j (min).
inline void unpack_scale_min(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

inline void pack_scale_min(uint8_t* s, int j, int scale, int min) {
  if (j < 4) {
    s[j] = static_cast<uint8_t>(scale);
    s[j + 4] = static_cast<uint8_t>(min);
  } else {
    s[j + 4] = static_cast<uint8_t>((scale & 0x0F) | ((min & 0x0F) << 4));
    s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((scale >> 4) << 6));
    s[j] = static_cast<uint8_t>(s[j] | ((min >> 4) << 6));
  }
}

// Q3_K: the biased 6-bit scale of sub-block j (0..15). Low 4 bits: byte j (j < 8) low nibble or byte j-8 high
// nibble; top 2 bits: bits 2*(j/4).. of byte 8 + j%4.
inline int unpack_q3_scale(const uint8_t* s, int j) {
  const int low = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | (high << 4);
}

inline void pack_q3_scale(uint8_t* s, int j, int biased) {
  if (j < 8) {
    s[j] = static_cast<uint8_t>(s[j] | (biased & 0x0F));
  } else {
    s[j - 8] = static_cast<uint8_t>(s[j - 8] | ((biased & 0x0F) << 4));
  }
  s[8 + j % 4] = static_cast<uint8_t>(s[8 + j % 4] | (((biased >> 4) & 3) << (2 * (j / 4))));
}

// Q2_K / Q3_K: the 2-bit field of element e (0..255). Each 128-element half uses 32 bytes; element
// 32*k + l of the half sits in bits 2k..2k+1 of byte l.
inline int two_bits(const uint8_t* qs, int e) {
  const int half = e / 128, r = e % 128;
  return (qs[32 * half + r % 32] >> (2 * (r / 32))) & 3;
}

// Q4_K / Q5_K: the low nibble of element e. Each 64-element chunk uses 32 bytes: elements 0-31 of the
// chunk in the low nibbles, 32-63 in the high nibbles.
inline int chunk_nibble(const uint8_t* qs, int e) {
  const int chunk = e / 64, r = e % 64;
  const uint8_t byte = qs[32 * chunk + r % 32];
  return r < 32 ? (byte & 0x0F) : (byte >> 4);
}

}  // namespace rf::quant::kq
