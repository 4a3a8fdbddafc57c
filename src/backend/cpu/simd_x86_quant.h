// x86 activation quantizers and float dots (F32 -> Q8_0 / Q8_1 / Q8_K / F16 / BF16; F32, F16, BF16 dots).
// Included only by simd_avx2.cpp / simd_avx512.cpp after simd_x86_common.h (see there for why). The quantizers
// are bit-exact with the scalar ones: same amax, same scale expression, round half to even (vcvtps2dq in the
// default rounding mode), same fp16 rounding of the scales.
#pragma once

#include "backend/cpu/simd_x86_common.h"

namespace {

using rf::backend::cpu::BlockQ8_0;
using rf::backend::cpu::BlockQ8_1;
using rf::backend::cpu::BlockQ8K;
using rf::backend::cpu::kQk;
using rf::backend::cpu::kQkK;

void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQk; ++i, x += kQk) {
    const float amax = amax_32(x);
    y[i].d = f2h(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), round_pack_32(x, _mm256_set1_ps(id)));
  }
}

void quantize_q8_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(out);
  for (int64_t i = 0; i < n / kQk; ++i, x += kQk) {
    const float amax = amax_32(x);
    const float d = amax / 127.0f;
    y[i].d = f2h(d);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256i q = round_pack_32(x, _mm256_set1_ps(id));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), q);
    y[i].s = f2h(d * static_cast<float>(sum_i8_32(q)));
  }
}

void quantize_q8_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(out);
  for (int64_t i = 0; i < n / kQkK; ++i, x += kQkK) {
    float amax = 0.0f;
    for (int j = 0; j < kQkK; j += 32) {
      const float m = amax_32(x + j);
      amax = m > amax ? m : amax;
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    float max = 0.0f;  // the first element of largest magnitude, with its sign (as the scalar loop picks it)
    for (int j = 0; j < kQkK; ++j) {
      if (__builtin_fabsf(x[j]) == amax) {
        max = x[j];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 mul = _mm256_set1_ps(iscale);
    for (int j = 0; j < kQkK; j += 32) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + j), round_pack_32(x + j, mul));
    }
    for (int g = 0; g < kQkK / 16; ++g) y[i].bsums[g] = static_cast<int16_t>(sum_i8_16(y[i].qs + 16 * g));
    y[i].d = 1.0f / iscale;
  }
}

void quantize_f16(const float* x, void* out, int64_t n) {
  auto* y = static_cast<uint16_t*>(out);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = f2h(x[i]);
}

// F16 -> F32 (exact, F16C).
void dequantize_f16(const void* a, float* out, int64_t n) {
  const auto* y = static_cast<const uint16_t*>(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(load128(y + i)));
  for (; i < n; ++i) out[i] = h2f(y[i]);
}

// y += a * x (fused multiply-add per element).
void axpy_f32(int64_t n, float a, const float* x, float* y) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(a, x[i], y[i]);
}

uint16_t f2bf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 64u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

void quantize_bf16(const float* x, void* out, int64_t n) {
  auto* y = static_cast<uint16_t*>(out);
  int64_t i = 0;
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  for (; i + 16 <= n; i += 16) {
    __m256i r[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_castps_si256(_mm256_loadu_ps(x + i + 8 * h));
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(v, abs_mask), inf);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(v, 16), _mm256_set1_epi32(1));
      const __m256i rounded =
          _mm256_srli_epi32(_mm256_add_epi32(v, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
      const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(v, 16), _mm256_set1_epi32(64));
      r[h] = _mm256_blendv_epi8(rounded, quiet, nan);
    }
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), packed);
  }
  for (; i < n; ++i) y[i] = f2bf(x[i]);
}

#if RF_SIMD_512
float dot_f32(int64_t n, const float* a, const float* b) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16 * k), _mm512_loadu_ps(b + i + 16 * k), acc[k]);
    }
  }
  for (; i + 16 <= n; i += 16) acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc[0]);
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float dot_f16_f16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    for (int k = 0; k < 4; ++k) {
      const __m512 va = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16 * k)));
      const __m512 vb = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i + 16 * k)));
      acc[k] = _mm512_fmadd_ps(va, vb, acc[k]);
    }
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += h2f(a[i]) * h2f(b[i]);
  return sum;
}

float dot_bf16_bf16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 2; ++k) {
      const __m512i ra = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16 * k)));
      const __m512i rb = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i + 16 * k)));
      acc[k] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(ra, 16)),
                               _mm512_castsi512_ps(_mm512_slli_epi32(rb, 16)), acc[k]);
    }
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
  for (; i < n; ++i) {
    const uint32_t ua = static_cast<uint32_t>(a[i]) << 16, ub = static_cast<uint32_t>(b[i]) << 16;
    float fa, fb;
    std::memcpy(&fa, &ua, 4);
    std::memcpy(&fb, &ub, 4);
    sum += fa * fb;
  }
  return sum;
}
#else
float dot_f32(int64_t n, const float* a, const float* b) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8 * k), _mm256_loadu_ps(b + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc[0]);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float dot_f16_f16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] =
          _mm256_fmadd_ps(_mm256_cvtph_ps(load128(a + i + 8 * k)), _mm256_cvtph_ps(load128(b + i + 8 * k)), acc[k]);
    }
  }
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += h2f(a[i]) * h2f(b[i]);
  return sum;
}

float dot_bf16_bf16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 2; ++k) {
      const __m256i ra = _mm256_cvtepu16_epi32(load128(a + i + 8 * k));
      const __m256i rb = _mm256_cvtepu16_epi32(load128(b + i + 8 * k));
      acc[k] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(ra, 16)),
                               _mm256_castsi256_ps(_mm256_slli_epi32(rb, 16)), acc[k]);
    }
  }
  float sum = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
  for (; i < n; ++i) {
    const uint32_t ua = static_cast<uint32_t>(a[i]) << 16, ub = static_cast<uint32_t>(b[i]) << 16;
    float fa, fb;
    std::memcpy(&fa, &ua, 4);
    std::memcpy(&fb, &ub, 4);
    sum += fa * fb;
  }
  return sum;
}
#endif

float dot_f32_f32(int64_t n, const void* w, const void* x) {
  return dot_f32(n, static_cast<const float*>(w), static_cast<const float*>(x));
}

}  // namespace
