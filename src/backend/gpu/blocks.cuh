// Device-side decoding of the ggml weight formats, 8 elements at a time, in registers. Every matmul, embedding
// and moe kernel reads weights through these: no F32 copy of a weight ever exists in GPU memory.
//
// A "chunk" is 8 consecutive elements of a row. For block formats chunk `idx` of a row lies in block idx / kChunks
// (kChunks = block size / 8), so a row of n elements has n / 8 chunks; for the float formats (block size 1) the
// last chunk may be partial and its missing elements read as 0. Element values follow the CPU reference
// dequantizer (src/quant) operation for operation: the sub-block scale is formed in float first, then multiplied
// by the integer code. (Block layouts: ggml format facts, see src/quant/kquant_layout.h and src/quant/legacy.cpp.)
// The codebook, ternary and MXFP4 formats are in blocks_iq.cuh.
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "backend/gpu/matmul.h"
#include "quant/iq_grid_values.inc"
#include "quant/types.h"

namespace rf::gpu {

// IQ4_NL / IQ4_XS level table (format constant of the GGUF IQ4 types), packed four levels per word (byte k of word
// i: level 4 i + k) and looked up in registers: the lanes of a warp index it divergently, which a __constant__ table
// serves one address at a time. With one, IQ4_NL / IQ4_XS products ran at ~5 % of the H100's copy bandwidth where
// Q4_1, with the same float decode, ran at 23 %; with the register lookup IQ4_XS's float decode ran at 17 %.
inline constexpr int8_t kIq4LevelList[16] = {RF_IQ4NL_VALUES};
constexpr uint32_t iq4_word(int i) {
  return static_cast<uint32_t>(static_cast<uint8_t>(kIq4LevelList[4 * i])) |
         static_cast<uint32_t>(static_cast<uint8_t>(kIq4LevelList[4 * i + 1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(kIq4LevelList[4 * i + 2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(kIq4LevelList[4 * i + 3])) << 24;
}
inline constexpr uint32_t kIq4W0 = iq4_word(0), kIq4W1 = iq4_word(1), kIq4W2 = iq4_word(2), kIq4W3 = iq4_word(3);
// Level of 4-bit code n (0..15): byte n & 7 of the low or the high half of the table.
RF_DEVICE int iq4_level(int n) {
  const auto sel = static_cast<unsigned>(n & 7);
  const uint32_t lo = __byte_perm(kIq4W0, kIq4W1, sel);
  const uint32_t hi = __byte_perm(kIq4W2, kIq4W3, sel);
  return static_cast<int8_t>(static_cast<uint8_t>(((n & 8) != 0 ? hi : lo) & 0xFFu));
}

// Levels of the four codes in the low nibbles of q's bytes (byte k: code k, 0..15) as four signed bytes: two byte
// permutes pick each byte from the low and the high half of the table, a third picks the half by the code's bit 3.
RF_DEVICE uint32_t iq4_levels4(uint32_t q) {
  const uint32_t t = q | (q >> 4);
  const uint32_t sel = (t & 0xFFu) | ((t >> 8) & 0xFF00u);  // code k at bits [4k, 4k + 4)
  const uint32_t lo = __byte_perm(kIq4W0, kIq4W1, sel & 0x7777u);
  const uint32_t hi = __byte_perm(kIq4W2, kIq4W3, sel & 0x7777u);
  return __byte_perm(lo, hi, 0x3210u | ((sel >> 1) & 0x4444u));
}

RF_DEVICE float load_f16(const uint8_t* p) {
  return half_bits_to_float(*reinterpret_cast<const uint16_t*>(p));  // block fields are 2-byte aligned
}

// Per-byte (b - k) for bytes b >= 0 and b - k >= -128, as signed bytes (codes with an offset made signed).
RF_DEVICE uint32_t sub_bytes(uint32_t b, uint32_t k4) { return ((b | 0x80808080u) - k4) ^ 0x80808080u; }

// Nibble of element j (0..31) of a 32-element run stored as Q4_0 does: low nibbles for 0-15, high for 16-31.
RF_DEVICE int run_nibble(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4); }

struct BlockF32 {
  static constexpr quant::Type kType = quant::Type::F32;
  static constexpr int kQk = 1;
  static constexpr int kBytes = 4;
  // Elements [8 idx, 8 idx + 8) of a row of n; those past n read as 0.
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const auto* r = reinterpret_cast<const float*>(row);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = idx * 8 + j < n ? r[idx * 8 + j] : 0.0f;
  }
};

// Eight F16 (kBf16: BF16) values packed in 16 bytes, in order, as floats (exact conversions).
template <bool kBf16>
RF_DEVICE void unpack16x8(const uint4 q, float (&v)[8]) {
  const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const auto lo = static_cast<uint16_t>(words[j] & 0xFFFFu), hi = static_cast<uint16_t>(words[j] >> 16);
    v[2 * j] = kBf16 ? bf16_bits_to_float(lo) : half_bits_to_float(lo);
    v[2 * j + 1] = kBf16 ? bf16_bits_to_float(hi) : half_bits_to_float(hi);
  }
}

struct BlockF16 {
  static constexpr quant::Type kType = quant::Type::F16;
  static constexpr int kQk = 1;
  static constexpr int kBytes = 2;
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const auto* r = reinterpret_cast<const uint16_t*>(row);
    if (idx * 8 + 8 <= n && (reinterpret_cast<uintptr_t>(r + idx * 8) & 15) == 0) {  // one 16-byte load
      unpack16x8<false>(*reinterpret_cast<const uint4*>(r + idx * 8), v);
      return;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = idx * 8 + j < n ? half_bits_to_float(r[idx * 8 + j]) : 0.0f;
  }
};

struct BlockBF16 {
  static constexpr quant::Type kType = quant::Type::BF16;
  static constexpr int kQk = 1;
  static constexpr int kBytes = 2;
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const auto* r = reinterpret_cast<const uint16_t*>(row);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = idx * 8 + j < n ? bf16_bits_to_float(r[idx * 8 + j]) : 0.0f;
  }
};

// Base for block formats: finds the block and the chunk inside it, then calls Derived::decode(block, c, v).
template <typename Derived, quant::Type T, int Qk, int Bytes>
struct BlockFormat {
  static constexpr quant::Type kType = T;
  static constexpr int kQk = Qk;
  static constexpr int kBytes = Bytes;
  static constexpr int kChunks = Qk / 8;
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t /*n*/, float (&v)[8]) {
    Derived::decode(row + (idx / kChunks) * Bytes, static_cast<int>(idx % kChunks), v);
  }
};

// A split-row format (matmul.h SplitLayout): where block ib's body (codes), 16-byte head and f16 scale lie in a
// row of nb blocks. Every reader of split rows finds them through these.
template <quant::Type T>
struct SplitFormat {
  static constexpr quant::Type kType = T;
  static constexpr int kQk = split_layout(T).qk;
  static constexpr int kBytes = split_layout(T).block_bytes;
  static constexpr int kCodeBytes = split_code_bytes(T);
  static constexpr int kHeadBytes = split_head_bytes(T);
  static constexpr int kScaleBytes = split_scale_bytes(T);
  static RF_DEVICE const uint8_t* codes(const uint8_t* row, int64_t ib) { return row + ib * kCodeBytes; }
  static RF_DEVICE const uint8_t* head(const uint8_t* row, int64_t nb, int64_t ib) {
    return row + nb * kCodeBytes + ib * kHeadBytes;
  }
  static RF_DEVICE const uint8_t* scale_at(const uint8_t* row, int64_t nb, int64_t ib) {
    return row + nb * (kCodeBytes + kHeadBytes) + kScaleBytes * ib;
  }
  static RF_DEVICE float scale(const uint8_t* row, int64_t nb, int64_t ib) { return load_f16(scale_at(row, nb, ib)); }
};

struct BlockQ4_0 : SplitFormat<quant::Type::Q4_0> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 4;
    const int c = static_cast<int>(idx % 4);
    const float d = scale(row, n / kQk, ib);
    const uint8_t* q = codes(row, ib);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = static_cast<float>(run_nibble(q, 8 * c + j) - 8) * d;
  }
};

// Q4_1 in split rows: body 16 nibble bytes; scale d, then m.
struct BlockQ4_1 : SplitFormat<quant::Type::Q4_1> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 4;
    const int c = static_cast<int>(idx % 4);
    const uint8_t* dm = scale_at(row, n / kQk, ib);
    const float d = load_f16(dm), m = load_f16(dm + 2);
    const uint8_t* q = codes(row, ib);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = static_cast<float>(run_nibble(q, 8 * c + j)) * d + m;
  }
};

RF_DEVICE uint32_t load_u32_2aligned(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
}

// Q5_0 / Q5_1 in split rows: body 16 nibble bytes; head qh (bit e: element e's fifth bit); scale d (Q5_1: then m).
template <quant::Type T>
struct BlockQ5 : SplitFormat<T> {
  using F = SplitFormat<T>;
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 4, nb = n / F::kQk;
    const int c = static_cast<int>(idx % 4);
    const uint8_t* dm = F::scale_at(row, nb, ib);
    const float d = load_f16(dm);
    const uint32_t qh = load_u32_2aligned(F::head(row, nb, ib));
    const uint8_t* q = F::codes(row, ib);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int e = 8 * c + j;
      const int code = run_nibble(q, e) | static_cast<int>(((qh >> e) & 1u) << 4);
      if constexpr (T == quant::Type::Q5_0) {
        v[j] = static_cast<float>(code - 16) * d;
      } else {
        v[j] = static_cast<float>(code) * d + load_f16(dm + 2);
      }
    }
  }
};
using BlockQ5_0 = BlockQ5<quant::Type::Q5_0>;
using BlockQ5_1 = BlockQ5<quant::Type::Q5_1>;

struct BlockQ8_0 : SplitFormat<quant::Type::Q8_0> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 4;
    const int c = static_cast<int>(idx % 4);
    const float d = scale(row, n / kQk, ib);
    const auto* qs = reinterpret_cast<const int8_t*>(codes(row, ib) + 8 * c);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = static_cast<float>(qs[j]) * d;
  }
};

struct BlockIq4Nl : SplitFormat<quant::Type::IQ4_NL> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 4;
    const int c = static_cast<int>(idx % 4);
    const float d = scale(row, n / kQk, ib);
    const uint8_t* q = codes(row, ib);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = d * static_cast<float>(iq4_level(run_nibble(q, 8 * c + j)));
  }
};

// Q2_K / Q3_K: the 2-bit field of element e (0..255): byte 32 * (e / 128) + e % 32, bits 2 * ((e % 128) / 32).
RF_DEVICE int two_bits(const uint8_t* qs, int e) {
  const int r = e % 128;
  return (qs[32 * (e / 128) + r % 32] >> (2 * (r / 32))) & 3;
}

// Q2_K in split rows: body qs[64]; head the 16 scale / min bytes (scale in the low nibble); scale d, then dmin.
struct BlockQ2K : SplitFormat<quant::Type::Q2_K> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 32;
    const int c = static_cast<int>(idx % 32);
    const uint8_t* dm = scale_at(row, n / kQk, ib);
    const float d = load_f16(dm), dmin = load_f16(dm + 2);
    const uint8_t sc = head(row, n / kQk, ib)[c / 2];  // 16-element sub-block of this chunk
    const float dl = d * static_cast<float>(sc & 0x0F);
    const float ml = dmin * static_cast<float>(sc >> 4);
    const uint8_t* qs = codes(row, ib);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = dl * static_cast<float>(two_bits(qs, 8 * c + j)) - ml;
  }
};

// Q3_K 6-bit scale of 16-element group g (0..15) from the 12 packed scale bytes (offset 32 removed): low 4 bits in
// nibble g / 8 of byte g % 8, high 2 bits at bits 2 (g / 4) of byte 8 + g % 4.
RF_DEVICE int q3k_scale(const uint8_t* sc, int g) {
  const int low = g < 8 ? (sc[g] & 0x0F) : (sc[g - 8] >> 4);
  const int high = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Q3_K in split rows: body hmask[32], qs[64]; head the 12 scale bytes; scale d.
struct BlockQ3K : SplitFormat<quant::Type::Q3_K> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 32;
    const int c = static_cast<int>(idx % 32);
    const uint8_t* b = codes(row, ib);
    const float dl = scale(row, n / kQk, ib) * static_cast<float>(q3k_scale(head(row, n / kQk, ib), c / 2));
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int e = 8 * c + j;
      const int q = two_bits(b + 32, e) - (((b[e % 32] >> (e / 32)) & 1) ? 0 : 4);
      v[j] = dl * static_cast<float>(q);
    }
  }
};

// Q4_K / Q5_K scale and min of 32-element sub-block s (0..7) from the 12 packed bytes.
RF_DEVICE void scale_min_k4(const uint8_t* s, int j, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Chunk c (0..31) of a Q4_K / Q5_K block from its split head (d, dmin, 12 scale bytes) and body (Q5_K: qh[32]
// first, then qs[128]).
template <bool kFiveBit>
RF_DEVICE void decode_q45_k(const uint8_t* head, const uint8_t* body, int c, float (&v)[8]) {
  const float d = load_f16(head), dmin = load_f16(head + 2);
  int sc = 0, m = 0;
  scale_min_k4(head + 4, c / 4, &sc, &m);
  const float dl = d * static_cast<float>(sc);
  const float ml = dmin * static_cast<float>(m);
  const uint8_t* qs = body + (kFiveBit ? 32 : 0);
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int e = 8 * c + j;
    const int r = e % 64;
    const uint8_t byte = qs[32 * (e / 64) + r % 32];
    int q = r < 32 ? (byte & 0x0F) : (byte >> 4);
    if (kFiveBit) q += 16 * ((body[e % 32] >> (e / 32)) & 1);
    v[j] = dl * static_cast<float>(q) - ml;
  }
}

template <quant::Type T>
struct BlockQ45K : SplitFormat<T> {
  using F = SplitFormat<T>;
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 32;
    decode_q45_k<T == quant::Type::Q5_K>(F::head(row, n / F::kQk, ib), F::codes(row, ib), static_cast<int>(idx % 32),
                                         v);
  }
};
using BlockQ4K = BlockQ45K<quant::Type::Q4_K>;
using BlockQ5K = BlockQ45K<quant::Type::Q5_K>;

// Q6_K in split rows: body ql[128], qh[64]; head the 16 sub-block scales; scale d.
struct BlockQ6K : SplitFormat<quant::Type::Q6_K> {
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 32;
    const int c = static_cast<int>(idx % 32);
    const uint8_t* b = codes(row, ib);
    const float d = scale(row, n / kQk, ib);
    const float ds = d * static_cast<float>(reinterpret_cast<const int8_t*>(head(row, n / kQk, ib))[c / 2]);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int e = 8 * c + j;
      const int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
      const uint8_t lo_byte = b[64 * h + l + 32 * (k & 1)];
      const int lo = k < 2 ? (lo_byte & 0x0F) : (lo_byte >> 4);
      const int hi = (b[128 + 32 * h + l] >> (2 * k)) & 3;
      v[j] = ds * static_cast<float>((lo | (hi << 4)) - 32);
    }
  }
};

// IQ4_XS in split rows: body qs[128] (sub-block s: 16 bytes from 16 s, run_nibble order); head d, scales_h,
// scales_l[4] (6-bit sub-block scales, offset 32).
struct BlockIq4Xs : SplitFormat<quant::Type::IQ4_XS> {
  // Scale of sub-block s (0..7) from the head's scales_h (bits 2s, 2s + 1) and scales_l (nibble s), offset removed.
  static RF_DEVICE int sub_scale(uint32_t scales_h, uint32_t scales_l, int s) {
    return static_cast<int>(((scales_l >> (4 * s)) & 0x0Fu) | (((scales_h >> (2 * s)) & 3u) << 4)) - 32;
  }
  static RF_DEVICE void chunk(const uint8_t* row, int64_t idx, int64_t n, float (&v)[8]) {
    const int64_t ib = idx / 32;
    const int c = static_cast<int>(idx % 32), s = c / 4;
    const uint8_t* h = head(row, n / kQk, ib);
    const uint32_t scales_h = *reinterpret_cast<const uint16_t*>(h + 2), scales_l = load_u32_2aligned(h + 4);
    const float scale = load_f16(h) * static_cast<float>(sub_scale(scales_h, scales_l, s));
    const uint8_t* q = codes(row, ib) + 16 * s;
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = scale * static_cast<float>(iq4_level(run_nibble(q, 8 * (c % 4) + j)));
  }
};

}  // namespace rf::gpu

#include "backend/gpu/blocks_iq.cuh"  // IQ2_*, IQ3_*, IQ1_*, TQ1_0, TQ2_0, MXFP4

namespace rf::gpu {

// Calls f(BlockX{}) for the format struct of weight type t; returns false for types without a GPU decoder.
template <typename F>
bool dispatch_block_type(quant::Type t, F&& f) {
  switch (t) {
    case quant::Type::F32: f(BlockF32{}); return true;
    case quant::Type::F16: f(BlockF16{}); return true;
    case quant::Type::BF16: f(BlockBF16{}); return true;
    case quant::Type::Q4_0: f(BlockQ4_0{}); return true;
    case quant::Type::Q4_1: f(BlockQ4_1{}); return true;
    case quant::Type::Q5_0: f(BlockQ5_0{}); return true;
    case quant::Type::Q5_1: f(BlockQ5_1{}); return true;
    case quant::Type::Q8_0: f(BlockQ8_0{}); return true;
    case quant::Type::IQ4_NL: f(BlockIq4Nl{}); return true;
    case quant::Type::Q2_K: f(BlockQ2K{}); return true;
    case quant::Type::Q3_K: f(BlockQ3K{}); return true;
    case quant::Type::Q4_K: f(BlockQ4K{}); return true;
    case quant::Type::Q5_K: f(BlockQ5K{}); return true;
    case quant::Type::Q6_K: f(BlockQ6K{}); return true;
    case quant::Type::IQ4_XS: f(BlockIq4Xs{}); return true;
    case quant::Type::IQ2_XXS: f(BlockIq2Xxs{}); return true;
    case quant::Type::IQ2_XS: f(BlockIq2Xs{}); return true;
    case quant::Type::IQ2_S: f(BlockIq2S{}); return true;
    case quant::Type::IQ3_XXS: f(BlockIq3Xxs{}); return true;
    case quant::Type::IQ3_S: f(BlockIq3S{}); return true;
    case quant::Type::IQ1_S: f(BlockIq1S{}); return true;
    case quant::Type::IQ1_M: f(BlockIq1M{}); return true;
    case quant::Type::TQ1_0: f(BlockTq1_0{}); return true;
    case quant::Type::TQ2_0: f(BlockTq2_0{}); return true;
    case quant::Type::MXFP4: f(BlockMxfp4{}); return true;
    default: return false;
  }
}

}  // namespace rf::gpu
