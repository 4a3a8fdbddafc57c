// Device decoders of the codebook ("IQ"), ternary and MXFP4 weight formats (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
// IQ3_S, IQ1_S, IQ1_M, TQ1_0, TQ2_0, MXFP4), 8 elements at a time, in the shape of blocks.cuh (included from there).
// Element values follow the CPU reference (src/quant/iq_codebook.cpp, ternary.cpp, mxfp4.cpp) operation for
// operation, so a decoded element is bit-identical to quant::dequantize's.
//
// Codebooks: the numbers come from quant/iq_grid_values.inc, the one copy the CPU reference expands too. Each
// translation unit that includes this gets its own initialized copy of the compact 16-bit grid codes (no -rdc in
// this build; 9 KiB in all), in global memory rather than __constant__ because the lanes of a warp index them
// divergently. A code's level indices pick the element bytes out of the level list, packed into one integer
// constant (a register shift, no table).
//
// These formats are rare in practice: they opt out of some kernel instantiations (kRareFormat, see matmul.cu and
// matmul_mma.cu) to keep the GPU tree's compile time down.
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "quant/iq_grid_values.inc"
#include "quant/iq_grids.h"
#include "quant/types.h"

namespace rf::gpu {

static __device__ const uint16_t kIq2xxsCodes[256] = {RF_IQ2XXS_CODES};
static __device__ const uint16_t kIq2xsCodes[512] = {RF_IQ2XS_CODES};
static __device__ const uint16_t kIq2sCodes[1024] = {RF_IQ2S_CODES};
static __device__ const uint16_t kIq3xxsCodes[256] = {RF_IQ3XXS_CODES};
static __device__ const uint16_t kIq3sCodes[512] = {RF_IQ3S_CODES};
static __device__ const uint16_t kIq1sCodes[2048] = {RF_IQ1S_CODES};
static __device__ const int8_t kMxfp4Values[16] = {RF_MXFP4_VALUES};

// Level bytes packed into one integer, level i in bits 8i..8i+7.
template <typename... L>
constexpr uint64_t pack_levels(L... levels) {
  uint64_t packed = 0;
  int i = 0;
  ((packed |= static_cast<uint64_t>(static_cast<uint8_t>(levels)) << (8 * i++)), ...);
  return packed;
}
inline constexpr uint64_t kIq2Levels = pack_levels(RF_IQ2_LEVELS);
inline constexpr uint64_t kIq3xxsLevels = pack_levels(RF_IQ3XXS_LEVELS);
inline constexpr uint64_t kIq3sLevels = pack_levels(RF_IQ3S_LEVELS);
inline constexpr uint64_t kIq1Levels = pack_levels(RF_IQ1_LEVELS);

// Level byte of element j of a code with `bits` bits per element.
template <int kBits>
RF_DEVICE uint32_t grid_level(uint32_t code, int j, uint64_t levels) {
  const uint32_t index = (code >> (kBits * j)) & (kBits == 2 ? 3u : 7u);
  return static_cast<uint32_t>(levels >> (8 * index)) & 0xffu;
}

// Sign byte of a 7-bit sign index: the 8th bit restores even parity (quant::iq::sign_byte).
RF_DEVICE uint32_t iq_sign_byte(uint32_t index7) {
  const uint32_t s = index7 & 0x7fu;
  return s | ((static_cast<uint32_t>(__popc(s)) & 1u) << 7);
}

// The CPU's emit8: v[j] = scale * magnitude j, negated where sign bit j is set. `code` holds 8 level indices of
// kBits bits (two 4-element IQ3 codes side by side).
template <int kBits>
RF_DEVICE void emit_signed(float scale, uint32_t code, uint64_t levels, uint32_t signs, float (&v)[8]) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float m = scale * static_cast<float>(grid_level<kBits>(code, j, levels));
    v[j] = (signs >> j) & 1u ? -m : m;
  }
}

// The CPU's emit_iq1: v[j] = scale * (grid value j + delta), grid values int8 -1, 0, +1.
RF_DEVICE void emit_iq1(float scale, uint32_t code, float delta, float (&v)[8]) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const auto g = static_cast<int8_t>(grid_level<2>(code, j, kIq1Levels));
    v[j] = scale * (static_cast<float>(g) + delta);
  }
}

RF_DEVICE uint32_t load_u16(const uint8_t* p) { return *reinterpret_cast<const uint16_t*>(p); }

// All ten use 256-element super-blocks (MXFP4: 32-element blocks); in the 256 ones chunk c is element run
// 8 * (c % 4) .. of 32-element sub-block ib = c / 4, the unit the CPU code emits at once.

// IQ2_XXS, 66 bytes: f16 d | 8 x { 4 grid indices (u8), u32: four 7-bit sign indices, scale (bits 28..31) }.
struct BlockIq2Xxs : BlockFormat<BlockIq2Xxs, quant::Type::IQ2_XXS, 256, 66> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b);
    const uint8_t* sub = b + 2 + 8 * (c / 4);
    const int l = c % 4;
    const uint32_t aux = load_u32_2aligned(sub + 4);
    const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.25f;
    emit_signed<2>(db, kIq2xxsCodes[sub[l]], kIq2Levels, iq_sign_byte(aux >> (7 * l)), v);
  }
};

// IQ2_XS, 74 bytes: f16 d | 32 x u16 { grid index (bits 0..8), sign index (9..15) } | 8 x u8 two 4-bit scales.
struct BlockIq2Xs : BlockFormat<BlockIq2Xs, quant::Type::IQ2_XS, 256, 74> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b);
    const uint32_t q = load_u16(b + 2 + 2 * c);
    const uint32_t s = (b[66 + c / 4] >> (4 * ((c % 4) / 2))) & 0xfu;
    const float db = d * (0.5f + static_cast<float>(s)) * 0.25f;
    emit_signed<2>(db, kIq2xsCodes[q & 511u], kIq2Levels, iq_sign_byte(q >> 9), v);
  }
};

// IQ2_S, 82 bytes: f16 d | 32 x u8 grid index low bits | 32 x u8 sign bytes | 8 x u8 grid index high bits
// (2 per entry) | 8 x u8 two 4-bit scales.
struct BlockIq2S : BlockFormat<BlockIq2S, quant::Type::IQ2_S, 256, 82> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b);
    const int ib = c / 4, l = c % 4;
    const uint32_t index = b[2 + c] | (((b[66 + ib] >> (2 * l)) & 3u) << 8);
    const uint32_t s = (b[74 + ib] >> (4 * (l / 2))) & 0xfu;
    const float db = d * (0.5f + static_cast<float>(s)) * 0.25f;
    emit_signed<2>(db, kIq2sCodes[index], kIq2Levels, b[34 + c], v);
  }
};

// IQ3_XXS, 98 bytes: f16 d | 64 x u8 grid index (8 per sub-block) | 8 x u32 { four 7-bit sign indices, scale }.
struct BlockIq3Xxs : BlockFormat<BlockIq3Xxs, quant::Type::IQ3_XXS, 256, 98> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b);
    const uint32_t aux = load_u32_2aligned(b + 66 + 4 * (c / 4));
    const float db = d * (0.5f + static_cast<float>(aux >> 28)) * 0.5f;
    const uint8_t* q = b + 2 + 2 * c;
    const uint32_t code = kIq3xxsCodes[q[0]] | (static_cast<uint32_t>(kIq3xxsCodes[q[1]]) << 16);
    emit_signed<4>(db, code, kIq3xxsLevels, iq_sign_byte(aux >> (7 * (c % 4))), v);
  }
};

// IQ3_S, 110 bytes: f16 d | 64 x u8 grid index low bits | 8 x u8 grid index bit 8 (one per entry)
// | 32 x u8 sign bytes | 4 x u8 two 4-bit scales (odd multipliers 1 + 2s).
struct BlockIq3S : BlockFormat<BlockIq3S, quant::Type::IQ3_S, 256, 110> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b);
    const int ib = c / 4, l = c % 4;
    const uint32_t s = (b[106 + ib / 2] >> (4 * (ib % 2))) & 0xfu;
    const float db = d * static_cast<float>(1 + 2 * static_cast<int>(s));
    const uint8_t* q = b + 2 + 2 * c;
    const uint32_t qh = b[66 + ib];
    const uint32_t i0 = q[0] | (((qh >> (2 * l)) & 1u) << 8);
    const uint32_t i1 = q[1] | (((qh >> (2 * l + 1)) & 1u) << 8);
    const uint32_t code = kIq3sCodes[i0] | (static_cast<uint32_t>(kIq3sCodes[i1]) << 16);
    emit_signed<4>(db, code, kIq3sLevels, b[74 + c], v);
  }
};

// IQ1_S, 50 bytes: f16 d | 32 x u8 grid index low bits | 8 x u16 { 4 x 3-bit grid index high bits (bits 0..11),
// 3-bit scale (12..14), delta sign (15) }.
struct BlockIq1S : BlockFormat<BlockIq1S, quant::Type::IQ1_S, 256, 50> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b);
    const uint32_t qh = load_u16(b + 34 + 2 * (c / 4));
    const float dl = d * static_cast<float>(2 * ((qh >> 12) & 7u) + 1);
    const float delta = (qh & 0x8000u) != 0 ? -quant::iq::kIq1Delta : quant::iq::kIq1Delta;
    const uint32_t index = b[2 + c] | (((qh >> (3 * (c % 4))) & 7u) << 8);
    emit_iq1(dl, kIq1sCodes[index], delta, v);
  }
};

// IQ1_M, 56 bytes: 32 x u8 grid index low bits | 16 x u8 { two (3-bit index high bits, delta sign bit) nibbles }
// | 4 x u16 { four 3-bit group scales (bits 0..11), one nibble of the f16 super-block scale (12..15) }.
struct BlockIq1M : BlockFormat<BlockIq1M, quant::Type::IQ1_M, 256, 56> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const auto* sc = reinterpret_cast<const uint16_t*>(b + 48);
    const auto d_bits = static_cast<uint16_t>((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0u) | ((sc[2] >> 4) & 0x0f00u) |
                                              (sc[3] & 0xf000u));
    const float d = half_bits_to_float(d_bits);
    const int ib = c / 4, l = c % 4;
    const int shift = 6 * (ib % 2) + 3 * (l / 2);
    const float dl = d * static_cast<float>(2 * ((sc[ib / 2] >> shift) & 7) + 1);
    const uint32_t nibble = (b[32 + 2 * ib + l / 2] >> (4 * (l % 2))) & 0xfu;
    const uint32_t index = b[c] | ((nibble & 7u) << 8);
    const float delta = (nibble & 8u) != 0 ? -quant::iq::kIq1Delta : quant::iq::kIq1Delta;
    emit_iq1(dl, kIq1sCodes[index], delta, v);
  }
};

// The trit (0, 1, 2) in position k (0 = most significant) of a TQ1_0 byte: scaled by 3^k modulo 256, the top trit.
inline constexpr uint64_t kTq1Pow3 = pack_levels(1, 3, 9, 27, 81);
RF_DEVICE int tq1_trit(uint32_t byte, int k) {
  const uint32_t shifted = (byte * static_cast<uint32_t>((kTq1Pow3 >> (8 * k)) & 0xffu)) & 0xffu;
  return static_cast<int>((shifted * 3) >> 8);
}

// TQ1_0, 54 bytes: 48 x u8 (5 trits each) | 4 x u8 (4 trits each) | f16 d. Bytes 0..31 give elements 32 k + m
// (k = trit position, m = byte), bytes 32..47 give 160 + 16 k + (m - 32), the last 4 give 240 + 4 k + (m - 48).
struct BlockTq1_0 : BlockFormat<BlockTq1_0, quant::Type::TQ1_0, 256, 54> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b + 52);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      int byte = 0, k = 0;
      if (c < 20) {
        k = c / 4;
        byte = 8 * (c % 4) + j;
      } else if (c < 30) {
        k = (c - 20) / 2;
        byte = 32 + 8 * ((c - 20) % 2) + j;
      } else {
        const int e = 8 * (c - 30) + j;
        k = e / 4;
        byte = 48 + e % 4;
      }
      v[j] = static_cast<float>(tq1_trit(b[byte], k) - 1) * d;
    }
  }
};

// TQ2_0, 66 bytes: 64 x u8 (4 x 2-bit codes; code - 1 is the trit) | f16 d. Byte 32 h + m holds elements
// 128 h + 32 k + m in bits 2k, 2k + 1.
struct BlockTq2_0 : BlockFormat<BlockTq2_0, quant::Type::TQ2_0, 256, 66> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = load_f16(b + 64);
    const uint8_t* qs = b + 32 * (c / 16) + 8 * (c % 4);
    const int k = (c % 16) / 4;
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = static_cast<float>(((qs[j] >> (2 * k)) & 3) - 1) * d;
  }
};

// The E8M0 block scale halved, 2^(e-128) (quant::iq::e8m0_half_to_float): a normal float for e >= 2, else one of
// the two largest subnormals.
RF_DEVICE float e8m0_half(uint32_t e) { return __uint_as_float(e >= 2 ? (e - 1) << 23 : 0x00200000u << e); }

// MXFP4, 17 bytes: u8 E8M0 exponent | 16 x u8 index pairs (element j low nibble, element j + 16 high nibble).
// Byte loads only: 17-byte blocks have no alignment.
struct BlockMxfp4 : BlockFormat<BlockMxfp4, quant::Type::MXFP4, 32, 17> {
  static constexpr bool kRareFormat = true;
  static RF_DEVICE void decode(const uint8_t* b, int c, float (&v)[8]) {
    const float d = e8m0_half(b[0]);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = static_cast<float>(kMxfp4Values[run_nibble(b + 1, 8 * c + j)]) * d;
  }
};

// True for the formats above: fewer kernel instantiations (compile time), see kRareFormat's users.
template <typename BT>
constexpr bool is_rare_format() {
  if constexpr (requires { BT::kRareFormat; }) {
    return BT::kRareFormat;
  } else {
    return false;
  }
}

}  // namespace rf::gpu
