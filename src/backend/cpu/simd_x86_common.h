// x86 SIMD building blocks shared by simd_avx2.cpp and simd_avx512.cpp. Include ONLY from those two files: each
// compiles it with its own -m flags inside its own namespace, so nothing here may be an inline function with
// external linkage (the linker could otherwise keep an AVX-512 copy for a caller on an AVX2-only CPU). Everything
// is in an anonymous namespace and avoids std:: helpers for the same reason.
//
// RF_SIMD_VNNI (0/1) selects the 8-bit dot-product primitive: AVX-512 VNNI vpdpbusd, or AVX2 maddubs + madd.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "backend/cpu/blocks.h"

#ifndef RF_SIMD_VNNI
#error "define RF_SIMD_VNNI before including simd_x86_common.h"
#endif

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t f2h(float f) { return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// acc += per-int32-lane sums of 4 products u8 x s8. Exact: the AVX2 path's int16 intermediate holds 2 products,
// which stays below 32767 for every caller here (|u| <= 128 with |s| <= 127, or u <= 63).
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if RF_SIMD_VNNI
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// Signed x signed through the unsigned form: |a| x (b with a's sign). b must not hold -128 (activations never do).
inline __m256i dot_s8s8(__m256i acc, __m256i a, __m256i b) {
  return dot_u8s8(acc, _mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

// Sum of u8 x s8 products of 16-element groups times a per-group int16 scale (scale16 holds the scale of the low
// 16 bytes in its low 128 bits, of the high 16 bytes in the high 128 bits). Exact as above.
inline __m256i dot_u8s8_scaled(__m256i acc, __m256i u, __m256i s, __m256i scale16) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16));
}

inline __m256i scales16(int lo, int hi) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)), _mm_set1_epi16(static_cast<int16_t>(lo)));
}

// 16 bytes of packed nibbles -> 32 bytes: the low nibbles (elements 0..15) then the high nibbles (16..31).
inline __m256i expand_nibbles(const uint8_t* qs) {
  const __m128i q = load128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
}

// 32 bits -> 32 bytes, 0xff where bit j is set.
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                        3, 3, 3, 3, 3, 3, 3);
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// 32 floats -> 32 int8 (round half to even, saturating) in element order.
inline __m256i round_pack_32(const float* x, __m256 mul) {
  const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), mul));
  const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), mul));
  const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), mul));
  const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), mul));
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline float amax_32(const float* x) {
  const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_and_ps(_mm256_loadu_ps(x), mask);
  m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 8), mask));
  m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 16), mask));
  m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(x + 24), mask));
  return hmax_ps(m);
}

inline int sum_i8_32(__m256i q) {
  const __m256i lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
  const __m256i hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
  return hsum_i32(_mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1)));
}

inline int sum_i8_16(const int8_t* q) {
  return hsum_i32(_mm256_madd_epi16(_mm256_cvtepi8_epi16(load128(q)), _mm256_set1_epi16(1)));
}

// Six-bit scale and min j (0..7) of the Q4_K / Q5_K 12-byte scale field (format fact).
inline void scale_min_k4(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

}  // namespace
