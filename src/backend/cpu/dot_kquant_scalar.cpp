// Scalar integer dot products of the K-quant super-block formats (and IQ4_XS) with Q8_K activations.
// Per sub-block: an exact int32 sum of quant x activation-quant, weighted by the integer sub-block scale; mins
// are applied through the activation's per-16 sums (bsums). One float scale multiply per super-block.
#include <cstring>

#include "backend/cpu/blocks.h"
#include "backend/cpu/dot_kernels.h"
#include "core/half.h"

namespace rf::backend::cpu::scalar {
namespace {

// Six-bit scale and min j (0..7) of the Q4_K / Q5_K 12-byte scale field.
void scale_min_k4(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Signed six-bit scale j (0..15) of the Q3_K 12-byte scale field.
int scale_q3k(int j, const uint8_t* s) {
  const int low = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

int dot16(const int8_t* q, const int8_t* y) {
  int s = 0;
  for (int l = 0; l < 16; ++l) s += q[l] * y[l];
  return s;
}

}  // namespace

float dot_q2_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ2K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float sum = 0.0f;
  int8_t q[kQkK];
  for (int64_t i = 0; i < n / kQkK; ++i) {
    // Element 128 h + 32 s + l holds bits (2 s, 2 s + 1) of qs[32 h + l].
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        for (int l = 0; l < 32; ++l) q[128 * h + 32 * s + l] = static_cast<int8_t>((a[i].qs[32 * h + l] >> (2 * s)) & 3);
      }
    }
    int sumi = 0;
    int summ = 0;
    for (int g = 0; g < kQkK / 16; ++g) {
      sumi += (a[i].scales[g] & 0x0f) * dot16(q + 16 * g, b[i].qs + 16 * g);
      summ += (a[i].scales[g] >> 4) * b[i].bsums[g];
    }
    const float d = fp16_to_fp32(a[i].d) * b[i].d;
    const float dmin = fp16_to_fp32(a[i].dmin) * b[i].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

float dot_q3_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ3K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float sum = 0.0f;
  int8_t q[kQkK];
  for (int64_t i = 0; i < n / kQkK; ++i) {
    // Element 128 h + 32 s + l: low bits (2 s, 2 s + 1) of qs[32 h + l]; minus 4 unless hmask[l] bit 4 h + s is set.
    for (int h = 0; h < 2; ++h) {
      for (int s = 0; s < 4; ++s) {
        const uint8_t m = static_cast<uint8_t>(1u << (4 * h + s));
        for (int l = 0; l < 32; ++l) {
          const int low = (a[i].qs[32 * h + l] >> (2 * s)) & 3;
          q[128 * h + 32 * s + l] = static_cast<int8_t>(low - ((a[i].hmask[l] & m) ? 0 : 4));
        }
      }
    }
    int sumi = 0;
    for (int g = 0; g < kQkK / 16; ++g) sumi += scale_q3k(g, a[i].scales) * dot16(q + 16 * g, b[i].qs + 16 * g);
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return sum;
}

float dot_q4_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    int sumi = 0;
    int summ = 0;
    for (int sb = 0; sb < 8; ++sb) {  // sub-block sb: nibble (sb % 2) of qs[32 (sb / 2) + l]
      int sc, m;
      scale_min_k4(sb, a[i].scales, &sc, &m);
      const uint8_t* qs = a[i].qs + 32 * (sb / 2);
      const int shift = 4 * (sb % 2);
      int s = 0;
      for (int l = 0; l < 32; ++l) s += ((qs[l] >> shift) & 0x0f) * b[i].qs[32 * sb + l];
      sumi += sc * s;
      summ += m * (b[i].bsums[2 * sb] + b[i].bsums[2 * sb + 1]);
    }
    const float d = fp16_to_fp32(a[i].d) * b[i].d;
    const float dmin = fp16_to_fp32(a[i].dmin) * b[i].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

float dot_q5_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ5K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    int sumi = 0;
    int summ = 0;
    for (int sb = 0; sb < 8; ++sb) {  // as Q4_K, plus bit sb of qh[l] as the fifth bit
      int sc, m;
      scale_min_k4(sb, a[i].scales, &sc, &m);
      const uint8_t* qs = a[i].qs + 32 * (sb / 2);
      const int shift = 4 * (sb % 2);
      int s = 0;
      for (int l = 0; l < 32; ++l) {
        const int q = ((qs[l] >> shift) & 0x0f) | (((a[i].qh[l] >> sb) & 1) << 4);
        s += q * b[i].qs[32 * sb + l];
      }
      sumi += sc * s;
      summ += m * (b[i].bsums[2 * sb] + b[i].bsums[2 * sb + 1]);
    }
    const float d = fp16_to_fp32(a[i].d) * b[i].d;
    const float dmin = fp16_to_fp32(a[i].dmin) * b[i].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

float dot_q6_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ6K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float sum = 0.0f;
  int8_t q[kQkK];
  for (int64_t i = 0; i < n / kQkK; ++i) {
    // Half h (128 elements): ql + 64 h, qh + 32 h. Element l, l+32, l+64, l+96 of the half take the low/high
    // nibble of ql[l] / ql[l + 32] and bit pairs 0, 2, 4, 6 of qh[l]; value minus 32.
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = a[i].ql + 64 * h;
      const uint8_t* qh = a[i].qh + 32 * h;
      int8_t* out = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        out[l] = static_cast<int8_t>(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
        out[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
        out[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        out[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    int sumi = 0;
    for (int g = 0; g < kQkK / 16; ++g) sumi += a[i].scales[g] * dot16(q + 16 * g, b[i].qs + 16 * g);
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return sum;
}

float dot_iq4_xs_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockIq4Xs*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    int sumi = 0;
    for (int sb = 0; sb < 8; ++sb) {  // 32-element sub-block: qs[16 sb + j] holds elements j and j + 16
      const int ls = ((a[i].scales_l[sb / 2] >> (4 * (sb % 2))) & 0x0f) | (((a[i].scales_h >> (2 * sb)) & 3) << 4);
      const uint8_t* qs = a[i].qs + 16 * sb;
      const int8_t* y = b[i].qs + 32 * sb;
      int s = 0;
      for (int j = 0; j < 16; ++j) {
        s += kIq4NlValues[qs[j] & 0x0f] * y[j];
        s += kIq4NlValues[qs[j] >> 4] * y[j + 16];
      }
      sumi += (ls - 32) * s;
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return sum;
}

}  // namespace rf::backend::cpu::scalar
