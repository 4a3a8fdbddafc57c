// Dequantization of the codebook ("importance") formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M.
// All use 256-element super-blocks split into 8 sub-blocks of 32; each sub-block is a run of grid entries (8 or 4
// magnitudes each, see iq_grids.h) with per-entry signs and a sub-block scale. The float operations follow the
// ggml reference order so that results are bit-identical to it.
#include <cstring>

#include "quant/block_bytes.h"
#include "quant/iq_grids.h"
#include "quant/iq_internal.h"

namespace rf::quant::iq {
namespace {

constexpr int kSuper = 256;

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// out[j] = scale * magnitude_j, negated where sign bit j is set (8 elements of a 64-bit grid entry).
void emit8(float scale, uint64_t entry, uint8_t signs, float* out) {
  for (int j = 0; j < 8; ++j) {
    const float v = scale * static_cast<float>(grid_byte(entry, j));
    out[j] = (signs >> j) & 1u ? -v : v;
  }
}

// Same for two 4-element grid entries sharing one sign byte (bits 0..3 for lo, 4..7 for hi).
void emit4x2(float scale, uint32_t lo, uint32_t hi, uint8_t signs, float* out) {
  emit8(scale, static_cast<uint64_t>(lo) | (static_cast<uint64_t>(hi) << 32), signs, out);
}

}  // namespace

// IQ2_XXS, 66 bytes: f16 d | 8 x { 4 grid indices (u8), u32: four 7-bit sign indices (bits 0..27), scale (28..31) }.
void dequantize_iq2_xxs(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 66, dst += kSuper) {
    const float d = load_f16(src);
    for (int ib = 0; ib < 8; ++ib) {
      const uint8_t* sub = src + 2 + 8 * ib;
      const uint32_t aux = load_u32(sub + 4);
      const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.25f;
      for (int l = 0; l < 4; ++l) {
        emit8(db, kIq2xxsGrid[sub[l]], sign_byte(aux >> (7 * l)), dst + 32 * ib + 8 * l);
      }
    }
  }
}

// IQ2_XS, 74 bytes: f16 d | 32 x u16 { grid index (bits 0..8), sign index (9..15) } | 8 x u8 two 4-bit scales.
void dequantize_iq2_xs(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 74, dst += kSuper) {
    const float d = load_f16(src);
    const uint8_t* scales = src + 66;
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(scales[ib] & 0xf)) * 0.25f,
                           d * (0.5f + static_cast<float>(scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint16_t q = load_u16(src + 2 + 2 * (4 * ib + l));
        emit8(db[l / 2], kIq2xsGrid[q & 511u], sign_byte(q >> 9), dst + 32 * ib + 8 * l);
      }
    }
  }
}

// IQ2_S, 82 bytes: f16 d | 32 x u8 grid index low bits | 32 x u8 sign bytes | 8 x u8 grid index high bits
// (2 per entry) | 8 x u8 two 4-bit scales.
void dequantize_iq2_s(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 82, dst += kSuper) {
    const float d = load_f16(src);
    const uint8_t* qs = src + 2;
    const uint8_t* signs = src + 34;
    const uint8_t* qh = src + 66;
    const uint8_t* scales = src + 74;
    for (int ib = 0; ib < 8; ++ib) {
      const float db[2] = {d * (0.5f + static_cast<float>(scales[ib] & 0xf)) * 0.25f,
                           d * (0.5f + static_cast<float>(scales[ib] >> 4)) * 0.25f};
      for (int l = 0; l < 4; ++l) {
        const uint32_t index = qs[4 * ib + l] | (((qh[ib] >> (2 * l)) & 3u) << 8);
        emit8(db[l / 2], kIq2sGrid[index], signs[4 * ib + l], dst + 32 * ib + 8 * l);
      }
    }
  }
}

// IQ3_XXS, 98 bytes: f16 d | 64 x u8 grid index (8 per sub-block) | 8 x u32 { four 7-bit sign indices, scale }.
void dequantize_iq3_xxs(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 98, dst += kSuper) {
    const float d = load_f16(src);
    const uint8_t* qs = src + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t aux = load_u32(src + 66 + 4 * ib);
      const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
      for (int l = 0; l < 4; ++l) {
        const uint8_t* q = qs + 8 * ib + 2 * l;
        emit4x2(db, kIq3xxsGrid[q[0]], kIq3xxsGrid[q[1]], sign_byte(aux >> (7 * l)), dst + 32 * ib + 8 * l);
      }
    }
  }
}

// IQ3_S, 110 bytes: f16 d | 64 x u8 grid index low bits | 8 x u8 grid index bit 8 (one per entry)
// | 32 x u8 sign bytes | 4 x u8 two 4-bit scales (odd multipliers 1 + 2s).
void dequantize_iq3_s(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 110, dst += kSuper) {
    const float d = load_f16(src);
    const uint8_t* qs = src + 2;
    const uint8_t* qh = src + 66;
    const uint8_t* signs = src + 74;
    const uint8_t* scales = src + 106;
    for (int ib = 0; ib < 8; ++ib) {
      const uint32_t s = (scales[ib / 2] >> (4 * (ib % 2))) & 0xfu;
      const float db = d * static_cast<float>(1 + 2 * static_cast<int>(s));
      for (int l = 0; l < 4; ++l) {
        const uint8_t* q = qs + 8 * ib + 2 * l;
        const uint32_t i0 = q[0] | (((qh[ib] >> (2 * l)) & 1u) << 8);
        const uint32_t i1 = q[1] | (((qh[ib] >> (2 * l + 1)) & 1u) << 8);
        emit4x2(db, kIq3sGrid[i0], kIq3sGrid[i1], signs[4 * ib + l], dst + 32 * ib + 8 * l);
      }
    }
  }
}

namespace {

// out[j] = scale * (grid value j + delta) for an IQ1 grid entry (int8 values -1, 0, +1).
void emit_iq1(float scale, uint64_t entry, float delta, float* out) {
  for (int j = 0; j < 8; ++j) {
    const auto v = static_cast<int8_t>(grid_byte(entry, j));
    out[j] = scale * (static_cast<float>(v) + delta);
  }
}

}  // namespace

// IQ1_S, 50 bytes: f16 d | 32 x u8 grid index low bits | 8 x u16 { 4 x 3-bit grid index high bits (bits 0..11),
// 3-bit scale (12..14), delta sign (15) }.
void dequantize_iq1_s(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 50, dst += kSuper) {
    const float d = load_f16(src);
    const uint8_t* qs = src + 2;
    for (int ib = 0; ib < 8; ++ib) {
      const uint16_t qh = load_u16(src + 34 + 2 * ib);
      const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7) + 1);
      const float delta = (qh & 0x8000u) != 0 ? -kIq1Delta : kIq1Delta;
      for (int l = 0; l < 4; ++l) {
        const uint32_t index = qs[4 * ib + l] | (((qh >> (3 * l)) & 7u) << 8);
        emit_iq1(dl, kIq1sGrid[index], delta, dst + 32 * ib + 8 * l);
      }
    }
  }
}

// IQ1_M, 56 bytes: 32 x u8 grid index low bits | 16 x u8 { two (3-bit index high bits, delta sign bit) nibbles }
// | 4 x u16 { four 3-bit group scales (bits 0..11), one nibble of the f16 super-block scale (12..15) }.
// The f16 scale's nibbles are stored lowest first in the four u16 words.
void dequantize_iq1_m(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 56, dst += kSuper) {
    const uint8_t* qs = src;
    const uint8_t* qh = src + 32;
    uint16_t sc[4];
    for (int k = 0; k < 4; ++k) sc[k] = load_u16(src + 48 + 2 * k);
    const auto d_bits =
        static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0u) | ((sc[2] >> 4) & 0x0f00u) | (sc[3] & 0xf000u));
    const float d = fp16_to_fp32(d_bits);
    for (int ib = 0; ib < 8; ++ib) {
      const int shift = 6 * (ib % 2);
      const float dl[2] = {d * static_cast<float>(2 * ((sc[ib / 2] >> shift) & 7) + 1),
                           d * static_cast<float>(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1)};
      for (int l = 0; l < 4; ++l) {
        const uint32_t nibble = (qh[2 * ib + l / 2] >> (4 * (l % 2))) & 0xfu;
        const uint32_t index = qs[4 * ib + l] | ((nibble & 7u) << 8);
        const float delta = (nibble & 8u) != 0 ? -kIq1Delta : kIq1Delta;
        emit_iq1(dl[l / 2], kIq1sGrid[index], delta, dst + 32 * ib + 8 * l);
      }
    }
  }
}

}  // namespace rf::quant::iq
