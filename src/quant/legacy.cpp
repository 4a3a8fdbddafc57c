// Legacy 32-element block formats (ggml's first generation):
//   Q4_0: f16 d, 16 bytes of nibbles              x = d * (q - 8)          q in [0, 15]
//   Q4_1: f16 d, f16 m, 16 bytes of nibbles       x = d * q + m            q in [0, 15]
//   Q5_0: f16 d, u32 high bits, 16 bytes nibbles  x = d * (q - 16)         q in [0, 31]
//   Q5_1: f16 d, f16 m, u32 high bits, nibbles    x = d * q + m            q in [0, 31]
//   Q8_0: f16 d, 32 x int8                        x = d * q
//   Q8_1: f16 d, f16 s (= d * sum q), 32 x int8   x = d * q
// Nibble layout: byte j holds element j (low nibble) and element j + 16 (high nibble); in Q5_* bit j of the
// 32-bit high-bit word is the 5th bit of element j.
// The quantizers reproduce ggml's reference rounding (scale from the extreme value, truncating casts), so
// their output matches llama.cpp's files byte for byte.
#include <cfloat>
#include <string>

#include "quant/block_bytes.h"
#include "quant/formats.h"

namespace rf::quant {
namespace {

constexpr int kQk = 32;

// Element j's 4-bit code from the nibble bytes.
inline int nibble(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4); }

// Element j's 5th bit from the high-bit word, as 0 or 16.
inline int high_bit(uint32_t qh, int j) { return static_cast<int>((qh >> j) & 1u) << 4; }

void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>(nibble(b + 2, j) - 8) * d;
}

void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>(nibble(b + 4, j)) * d + m;
}

void dequant_q5_0(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const uint32_t qh = load_u32(b + 2);
  for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>((nibble(b + 6, j) | high_bit(qh, j)) - 16) * d;
}

void dequant_q5_1(const uint8_t* b, float* y) {
  const float d = load_f16(b);
  const float m = load_f16(b + 2);
  const uint32_t qh = load_u32(b + 4);
  for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>(nibble(b + 8, j) | high_bit(qh, j)) * d + m;
}

// Q8_0 (quants at offset 2) and Q8_1 (quants at offset 4).
void dequant_q8(const uint8_t* b, int qs_offset, float* y) {
  const float d = load_f16(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + qs_offset);
  for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// The element of largest magnitude, keeping its sign (the first one on ties).
float signed_absmax(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQk; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float* mn, float* mx) {
  *mn = FLT_MAX;
  *mx = -FLT_MAX;
  for (int j = 0; j < kQk; ++j) {
    if (x[j] < *mn) *mn = x[j];
    if (x[j] > *mx) *mx = x[j];
  }
}

void pack_nibbles(const int* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
}

uint32_t pack_high_bits(const int* q) {
  uint32_t qh = 0;
  for (int j = 0; j < kQk; ++j) qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  return qh;
}

// Symmetric 4/5-bit: the extreme value maps to code 0 (-2^(bits-1) * d), zero to the middle code.
void quant_symmetric(const float* x, int bits, uint8_t* b) {
  const int half = 1 << (bits - 1);
  const int top = (1 << bits) - 1;
  const float d = signed_absmax(x) / static_cast<float>(-half);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(b, d);
  int q[kQk];
  for (int j = 0; j < kQk; ++j) q[j] = trunc_clamp(x[j] * id + (static_cast<float>(half) + 0.5f), 0, top);
  if (bits == 4) {
    pack_nibbles(q, b + 2);
  } else {
    store_u32(b + 2, pack_high_bits(q));
    pack_nibbles(q, b + 6);
  }
}

// Affine 4/5-bit: min maps to code 0, max to the top code.
void quant_affine(const float* x, int bits, uint8_t* b) {
  const int top = (1 << bits) - 1;
  float mn = 0.0f;
  float mx = 0.0f;
  min_max(x, &mn, &mx);
  const float d = (mx - mn) / static_cast<float>(top);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(b, d);
  store_f16(b + 2, mn);
  int q[kQk];
  for (int j = 0; j < kQk; ++j) q[j] = trunc_clamp((x[j] - mn) * id + 0.5f, 0, top);
  if (bits == 4) {
    pack_nibbles(q, b + 4);
  } else {
    store_u32(b + 4, pack_high_bits(q));
    pack_nibbles(q, b + 8);
  }
}

// 8-bit symmetric: d = absmax / 127, codes rounded half away from zero. Q8_1 also stores s = d * sum(q).
void quant_q8(const float* x, bool with_sum, uint8_t* b) {
  float amax = 0.0f;
  for (int j = 0; j < kQk; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_f16(b, d);
  auto* qs = reinterpret_cast<int8_t*>(b + (with_sum ? 4 : 2));
  int sum = 0;
  for (int j = 0; j < kQk; ++j) {
    qs[j] = static_cast<int8_t>(round_away_clamp(x[j] * id, -128, 127));
    sum += qs[j];
  }
  if (with_sum) store_f16(b + 2, static_cast<float>(sum) * d);
}

}  // namespace

Status dequantize_legacy(Type t, const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  const size_t bytes = traits(t).block_bytes;
  const int64_t nb = n / kQk;
  for (int64_t i = 0; i < nb; ++i, b += bytes, dst += kQk) {
    switch (t) {
      case Type::Q4_0:
        dequant_q4_0(b, dst);
        break;
      case Type::Q4_1:
        dequant_q4_1(b, dst);
        break;
      case Type::Q5_0:
        dequant_q5_0(b, dst);
        break;
      case Type::Q5_1:
        dequant_q5_1(b, dst);
        break;
      case Type::Q8_0:
        dequant_q8(b, 2, dst);
        break;
      case Type::Q8_1:
        dequant_q8(b, 4, dst);
        break;
      default:
        return Status::error("quant: dequantize: " + std::string(type_name(t)) + " is not a legacy block type");
    }
  }
  return ok_status();
}

bool can_quantize_legacy(Type t) {
  switch (t) {
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0:
    case Type::Q5_1:
    case Type::Q8_0:
    case Type::Q8_1:
      return true;
    default:
      return false;
  }
}

Status quantize_legacy(Type t, const float* src, void* dst, int64_t n) {
  if (!can_quantize_legacy(t)) {
    return Status::error("quant: quantize: " + std::string(type_name(t)) + " is not a legacy block type");
  }
  auto* b = static_cast<uint8_t*>(dst);
  const size_t bytes = traits(t).block_bytes;
  const int64_t nb = n / kQk;
  for (int64_t i = 0; i < nb; ++i, b += bytes, src += kQk) {
    switch (t) {
      case Type::Q4_0:
        quant_symmetric(src, 4, b);
        break;
      case Type::Q5_0:
        quant_symmetric(src, 5, b);
        break;
      case Type::Q4_1:
        quant_affine(src, 4, b);
        break;
      case Type::Q5_1:
        quant_affine(src, 5, b);
        break;
      case Type::Q8_0:
        quant_q8(src, false, b);
        break;
      default:
        quant_q8(src, true, b);
        break;  // Q8_1
    }
  }
  return ok_status();
}

}  // namespace rf::quant
