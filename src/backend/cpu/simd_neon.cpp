// NEON kernels for aarch64 (baseline ARMv8-A: widening multiplies, no dot-product extension needed): Q8_0
// activation quantizer and the Q4_0, Q8_0, Q4_K, Q6_K and F16 dots. Integer block sums are exact; the 32-element
// formats accumulate block results in float lanes, the K formats apply the scales as the scalar code does.
#include <arm_neon.h>

#include <cstring>

#include "backend/cpu/blocks.h"
#include "backend/cpu/simd_kernels.h"
#include "core/half.h"

namespace rf::backend::cpu {
namespace {

// Four int32 partial sums of 16 int8 x int8 products (each product fits int16).
inline int32x4_t dot16(int8x16_t a, int8x16_t b) {
  const int16x8_t p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t p1 = vmull_high_s8(a, b);
  return vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
}

void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQk; ++i, x += kQk) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; ++k) {
      v[k] = vld1q_f32(x + 4 * k);
      m = vmaxq_f32(m, vabsq_f32(v[k]));
    }
    const float amax = vmaxvq_f32(m);
    y[i].d = fp32_to_fp16(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int k = 0; k < 8; k += 2) {
      const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[k], id));  // round half to even
      const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(v[k + 1], id));
      vst1_s8(y[i].qs + 4 * k, vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
    }
  }
}

float dot_q4_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float32x4_t acc = vdupq_n_f32(0.0f);
  const uint8x16_t m4 = vdupq_n_u8(0x0f);
  const int8x16_t eight = vdupq_n_s8(8);
  for (int64_t i = 0; i < n / kQk; ++i) {
    const uint8x16_t q = vld1q_u8(a[i].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    const int32x4_t s = vaddq_s32(dot16(lo, vld1q_s8(b[i].qs)), dot16(hi, vld1q_s8(b[i].qs + 16)));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(s), fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
  }
  return vaddvq_f32(acc);
}

float dot_q8_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ8_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < n / kQk; ++i) {
    const int32x4_t s = vaddq_s32(dot16(vld1q_s8(a[i].qs), vld1q_s8(b[i].qs)),
                                  dot16(vld1q_s8(a[i].qs + 16), vld1q_s8(b[i].qs + 16)));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(s), fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d));
  }
  return vaddvq_f32(acc);
}

void scale_min_k4(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

float dot_q4_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  const uint8x16_t m4 = vdupq_n_u8(0x0f);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 4; ++j) {
      int sc0, m0, sc1, m1;
      scale_min_k4(2 * j, a[i].scales, &sc0, &m0);
      scale_min_k4(2 * j + 1, a[i].scales, &sc1, &m1);
      const uint8x16_t q0 = vld1q_u8(a[i].qs + 32 * j), q1 = vld1q_u8(a[i].qs + 32 * j + 16);
      const int8_t* y = b[i].qs + 64 * j;
      const int32x4_t lo = vaddq_s32(dot16(vreinterpretq_s8_u8(vandq_u8(q0, m4)), vld1q_s8(y)),
                                     dot16(vreinterpretq_s8_u8(vandq_u8(q1, m4)), vld1q_s8(y + 16)));
      const int32x4_t hi = vaddq_s32(dot16(vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(y + 32)),
                                     dot16(vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(y + 48)));
      sumi += sc0 * vaddvq_s32(lo) + sc1 * vaddvq_s32(hi);
      summ += m0 * (b[i].bsums[4 * j] + b[i].bsums[4 * j + 1]) + m1 * (b[i].bsums[4 * j + 2] + b[i].bsums[4 * j + 3]);
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
  const uint8x16_t m4 = vdupq_n_u8(0x0f), m2 = vdupq_n_u8(0x30);
  const int8x16_t off = vdupq_n_s8(32);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    int sumi = 0;
    for (int h = 0; h < 2; ++h) {
      for (int half = 0; half < 2; ++half) {  // 16 of the 32 columns l at a time
        const uint8x16_t l0 = vld1q_u8(a[i].ql + 64 * h + 16 * half);
        const uint8x16_t l1 = vld1q_u8(a[i].ql + 64 * h + 32 + 16 * half);
        const uint8x16_t qh = vld1q_u8(a[i].qh + 32 * h + 16 * half);
        const uint8x16_t u[4] = {
            vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(qh, 4), m2)),
            vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(qh, 2), m2)),
            vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(qh, m2)),
            vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(qh, 2), m2)),
        };
        for (int c = 0; c < 4; ++c) {
          const int g = 8 * h + 2 * c + half;
          const int8x16_t q = vsubq_s8(vreinterpretq_s8_u8(u[c]), off);
          sumi += a[i].scales[g] * vaddvq_s32(dot16(q, vld1q_s8(b[i].qs + 16 * g)));
        }
      }
    }
    sum += fp16_to_fp32(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return sum;
}

float dot_f16_f16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t va = vreinterpretq_f16_u16(vld1q_u16(a + i));
    const float16x8_t vb = vreinterpretq_f16_u16(vld1q_u16(b + i));
    acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(va)), vcvt_f32_f16(vget_low_f16(vb)));
    acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(va), vcvt_high_f32_f16(vb));
  }
  float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) sum += fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]);
  return sum;
}

}  // namespace

void register_neon_kernels(KernelTable& t) {
  t.acts[static_cast<uint32_t>(quant::Type::Q8_0)].quantize = quantize_q8_0;
  t.weights[static_cast<uint32_t>(quant::Type::Q4_0)].dot = dot_q4_0_q8_0;
  t.weights[static_cast<uint32_t>(quant::Type::Q8_0)].dot = dot_q8_0_q8_0;
  t.weights[static_cast<uint32_t>(quant::Type::Q4_K)].dot = dot_q4_k_q8_k;
  t.weights[static_cast<uint32_t>(quant::Type::Q6_K)].dot = dot_q6_k_q8_k;
  t.weights[static_cast<uint32_t>(quant::Type::F16)].dot = dot_f16_f16;
}

}  // namespace rf::backend::cpu
