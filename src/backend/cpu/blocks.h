// Byte layouts of the ggml block formats as the CPU dot-product kernels read them (format facts; the reference
// conversions live in src/quant). Weight blocks first, then the activation blocks Q8_0 / Q8_1 / Q8_K.
#pragma once

#include <cstdint>

namespace rf::backend::cpu {

inline constexpr int kQk = 32;    // elements per legacy block
inline constexpr int kQkK = 256;  // elements per K-quant super-block

struct BlockQ4_0 {
  uint16_t d;           // fp16 scale
  uint8_t qs[kQk / 2];  // element j in low nibble of qs[j], element j + 16 in the high nibble; value (q - 8) * d
};
struct BlockQ4_1 {
  uint16_t d, m;        // fp16 scale and min; value q * d + m
  uint8_t qs[kQk / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];        // bit j = fifth bit of element j
  uint8_t qs[kQk / 2];  // value (q - 16) * d
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQk / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQk];
};
struct BlockQ8_1 {
  uint16_t d;  // fp16 scale
  uint16_t s;  // fp16 of d * sum(qs)
  int8_t qs[kQk];
};
struct BlockIq4Nl {
  uint16_t d;
  uint8_t qs[kQk / 2];  // 4-bit indices into kIq4NlValues, nibble order as Q4_0
};
struct BlockQ2K {
  uint8_t scales[kQkK / 16];  // low nibble scale, high nibble min, per 16 elements
  uint8_t qs[kQkK / 4];       // 2-bit quants
  uint16_t d, dmin;
};
struct BlockQ3K {
  uint8_t hmask[kQkK / 8];  // high bit (set = no offset)
  uint8_t qs[kQkK / 4];     // low 2 bits
  uint8_t scales[12];       // 16 six-bit scales, offset 32
  uint16_t d;
};
struct BlockQ4K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 six-bit scales and 8 six-bit mins
  uint8_t qs[kQkK / 2];
};
struct BlockQ5K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQkK / 8];
  uint8_t qs[kQkK / 2];
};
struct BlockQ6K {
  uint8_t ql[kQkK / 2];  // low 4 bits
  uint8_t qh[kQkK / 4];  // high 2 bits
  int8_t scales[kQkK / 16];
  uint16_t d;
};
struct BlockIq4Xs {
  uint16_t d;
  uint16_t scales_h;         // high 2 bits of the 8 sub-block scales
  uint8_t scales_l[kQkK / 64];  // low 4 bits, two per byte
  uint8_t qs[kQkK / 2];
};
struct BlockQ8K {
  float d;
  int8_t qs[kQkK];
  int16_t bsums[kQkK / 16];  // sums of qs in groups of 16
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockIq4Nl) == 18 && sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110);
static_assert(sizeof(BlockQ4K) == 144 && sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210);
static_assert(sizeof(BlockIq4Xs) == 136 && sizeof(BlockQ8K) == 292);

// IQ4_NL / IQ4_XS non-linear 4-bit grid (format constant of the GGUF IQ4 types).
inline constexpr int8_t kIq4NlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                             1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace rf::backend::cpu
