// K-quant dequantization (layouts in kquant_layout.h). The arithmetic follows the format definition exactly:
// the sub-block scale (and min) is formed in float first, then multiplied by the integer code, so results are
// bit-identical to ggml's reference dequantizer.
#include <string>

#include "quant/block_bytes.h"
#include "quant/formats.h"
#include "quant/kquant_layout.h"

namespace rf::quant {
namespace {

using namespace kq;  // NOLINT(google-build-using-namespace): layout constants only

// Bit e/32 of byte e%32: the extra high bit of element e in Q3_K (hmask) and Q5_K (qh).
inline int high_bit(const uint8_t* bits, int e) { return (bits[e % 32] >> (e / 32)) & 1; }

void dequant_q2_k(const uint8_t* b, float* y) {
  const float d = load_f16(b + kQ2D);
  const float dmin = load_f16(b + kQ2Dmin);
  for (int s = 0; s < 16; ++s) {
    const uint8_t sc = b[kQ2Scales + s];
    const float dl = d * static_cast<float>(sc & 0x0F);
    const float ml = dmin * static_cast<float>(sc >> 4);
    for (int e = 16 * s; e < 16 * s + 16; ++e) y[e] = dl * static_cast<float>(two_bits(b + kQ2Qs, e)) - ml;
  }
}

void dequant_q3_k(const uint8_t* b, float* y) {
  const float d = load_f16(b + kQ3D);
  for (int s = 0; s < 16; ++s) {
    const float dl = d * static_cast<float>(unpack_q3_scale(b + kQ3Scales, s) - 32);
    for (int e = 16 * s; e < 16 * s + 16; ++e) {
      const int q = two_bits(b + kQ3Qs, e) - (high_bit(b + kQ3Hmask, e) ? 0 : 4);
      y[e] = dl * static_cast<float>(q);
    }
  }
}

// Q4_K and Q5_K share everything but the 5th bit.
void dequant_q45_k(const uint8_t* b, bool five_bit, float* y) {
  const float d = load_f16(b + kQ4D);
  const float dmin = load_f16(b + kQ4Dmin);
  const uint8_t* qs = b + (five_bit ? kQ5Qs : kQ4Qs);
  for (int s = 0; s < 8; ++s) {
    int sc = 0;
    int m = 0;
    unpack_scale_min(b + kQ4Scales, s, &sc, &m);
    const float dl = d * static_cast<float>(sc);
    const float ml = dmin * static_cast<float>(m);
    for (int e = 32 * s; e < 32 * s + 32; ++e) {
      const int q = chunk_nibble(qs, e) + (five_bit ? 16 * high_bit(b + kQ5Qh, e) : 0);
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Q6_K: element e of half h = e/128 (r = e%128, quarter k = r/32, l = r%32) has its low nibble in
// ql[64h + l + 32*(k&1)] (low nibble for k < 2, high nibble otherwise) and its top 2 bits in bits 2k of qh[32h + l].
void dequant_q6_k(const uint8_t* b, float* y) {
  const float d = load_f16(b + kQ6D);
  const auto* scales = reinterpret_cast<const int8_t*>(b + kQ6Scales);
  for (int e = 0; e < kQk; ++e) {
    const int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const uint8_t lo_byte = b[kQ6Ql + 64 * h + l + 32 * (k & 1)];
    const int lo = k < 2 ? (lo_byte & 0x0F) : (lo_byte >> 4);
    const int hi = (b[kQ6Qh + 32 * h + l] >> (2 * k)) & 3;
    const float ds = d * static_cast<float>(scales[e / 16]);
    y[e] = ds * static_cast<float>((lo | (hi << 4)) - 32);
  }
}

void dequant_q8_k(const uint8_t* b, float* y) {
  const float d = load_f32(b + kQ8D);
  const auto* qs = reinterpret_cast<const int8_t*>(b + kQ8Qs);
  for (int e = 0; e < kQk; ++e) y[e] = d * static_cast<float>(qs[e]);
}

}  // namespace

Status dequantize_kquant(Type t, const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  const size_t bytes = traits(t).block_bytes;
  for (int64_t i = 0; i < n / kQk; ++i, b += bytes, dst += kQk) {
    switch (t) {
      case Type::Q2_K:
        dequant_q2_k(b, dst);
        break;
      case Type::Q3_K:
        dequant_q3_k(b, dst);
        break;
      case Type::Q4_K:
        dequant_q45_k(b, false, dst);
        break;
      case Type::Q5_K:
        dequant_q45_k(b, true, dst);
        break;
      case Type::Q6_K:
        dequant_q6_k(b, dst);
        break;
      case Type::Q8_K:
        dequant_q8_k(b, dst);
        break;
      default:
        return Status::error("quant: dequantize: " + std::string(type_name(t)) + " is not a K-quant type");
    }
  }
  return ok_status();
}

}  // namespace rf::quant
