// x86 integer dot products of the quantized weight formats with Q8_0 / Q8_1 / Q8_K activations. Included only by
// simd_avx2.cpp / simd_avx512.cpp after simd_x86_common.h (see there for why).
//
// Every block's integer sum is exact (the same int32 as the scalar kernel). The 32-element formats accumulate
// block sums times their float scales in 8 float lanes (a different summation order from the scalar loop); the
// 256-element K formats reduce each super-block to one int32 and then apply the scales exactly as the scalar code.
#pragma once

#include "backend/cpu/simd_x86_common.h"

namespace {

using rf::backend::cpu::BlockIq4Nl;
using rf::backend::cpu::BlockIq4Xs;
using rf::backend::cpu::BlockQ2K;
using rf::backend::cpu::BlockQ3K;
using rf::backend::cpu::BlockQ4_0;
using rf::backend::cpu::BlockQ4_1;
using rf::backend::cpu::BlockQ4K;
using rf::backend::cpu::BlockQ5_0;
using rf::backend::cpu::BlockQ5_1;
using rf::backend::cpu::BlockQ5K;
using rf::backend::cpu::BlockQ6K;
using rf::backend::cpu::BlockQ8_0;
using rf::backend::cpu::BlockQ8_1;
using rf::backend::cpu::BlockQ8K;
using rf::backend::cpu::kIq4NlValues;
using rf::backend::cpu::kQk;
using rf::backend::cpu::kQkK;

// --- 32-element formats ----------------------------------------------------------------------------------------

// Shared loop: `weights(i)` gives block i's 32 signed (or unsigned when kUnsigned) weight bytes in element order.
template <bool kUnsigned, typename WBlock, typename ABlock, typename Decode>
float dot_blocks32(int64_t n, const WBlock* a, const ABlock* b, Decode weights) {
  const int64_t nb = n / kQk;
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    const __m256i y0 = load256(b[i].qs);
    const __m256i y1 = load256(b[i + 1].qs);
    const __m256i q0 = weights(i);
    const __m256i q1 = weights(i + 1);
    const __m256i s0 = kUnsigned ? dot_u8s8(_mm256_setzero_si256(), q0, y0) : dot_s8s8(_mm256_setzero_si256(), q0, y0);
    const __m256i s1 = kUnsigned ? dot_u8s8(_mm256_setzero_si256(), q1, y1) : dot_s8s8(_mm256_setzero_si256(), q1, y1);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s0), _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), _mm256_set1_ps(h2f(a[i + 1].d) * h2f(b[i + 1].d)), acc1);
  }
  for (; i < nb; ++i) {
    const __m256i y = load256(b[i].qs);
    const __m256i q = weights(i);
    const __m256i s = kUnsigned ? dot_u8s8(_mm256_setzero_si256(), q, y) : dot_s8s8(_mm256_setzero_si256(), q, y);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(a[i].d) * h2f(b[i].d)), acc0);
  }
  return hsum_ps(_mm256_add_ps(acc0, acc1));
}

float dot_q4_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_0*>(w);
  const __m256i eight = _mm256_set1_epi8(8);
  return dot_blocks32<false>(n, a, static_cast<const BlockQ8_0*>(x),
                             [&](int64_t i) { return _mm256_sub_epi8(expand_nibbles(a[i].qs), eight); });
}

float dot_q4_1_q8_1(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_1*>(w);
  const auto* b = static_cast<const BlockQ8_1*>(x);
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) mins += h2f(a[i].m) * h2f(b[i].s);
  return dot_blocks32<true>(n, a, b, [&](int64_t i) { return expand_nibbles(a[i].qs); }) + mins;
}

float dot_q5_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ5_0*>(w);
  const __m256i high = _mm256_set1_epi8(static_cast<char>(0xf0));
  // (q | fifth bit << 4) - 16 == q | 0xf0 (as int8) where the fifth bit is clear, q where it is set.
  return dot_blocks32<false>(n, a, static_cast<const BlockQ8_0*>(x), [&](int64_t i) {
    return _mm256_or_si256(expand_nibbles(a[i].qs), _mm256_andnot_si256(bits_to_bytes(load_u32(a[i].qh)), high));
  });
}

float dot_q5_1_q8_1(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ5_1*>(w);
  const auto* b = static_cast<const BlockQ8_1*>(x);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  float mins = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) mins += h2f(a[i].m) * h2f(b[i].s);
  return dot_blocks32<true>(n, a, b, [&](int64_t i) {
           return _mm256_or_si256(expand_nibbles(a[i].qs), _mm256_and_si256(bits_to_bytes(load_u32(a[i].qh)), bit4));
         }) +
         mins;
}

float dot_q8_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ8_0*>(w);
  return dot_blocks32<false>(n, a, static_cast<const BlockQ8_0*>(x), [&](int64_t i) { return load256(a[i].qs); });
}

float dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockIq4Nl*>(w);
  const __m256i lut = _mm256_broadcastsi128_si256(load128(kIq4NlValues));
  return dot_blocks32<false>(n, a, static_cast<const BlockQ8_0*>(x),
                             [&](int64_t i) { return _mm256_shuffle_epi8(lut, expand_nibbles(a[i].qs)); });
}

// --- 256-element K formats -------------------------------------------------------------------------------------

// sum_g scale16[g] * bsums[g] over the 16 groups of a Q8_K block.
inline int scaled_bsums(const int16_t* scale16, const int16_t* bsums) {
  return hsum_i32(_mm256_madd_epi16(load256(scale16), load256(bsums)));
}

float dot_q2_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ2K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  const __m256i m3 = _mm256_set1_epi8(3);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    alignas(32) int16_t sc[16], mn[16];
    for (int g = 0; g < 16; ++g) {
      sc[g] = static_cast<int16_t>(a[i].scales[g] & 0x0f);
      mn[g] = static_cast<int16_t>(a[i].scales[g] >> 4);
    }
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load256(a[i].qs + 32 * h);
      for (int s = 0; s < 4; ++s) {
        const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * s), m3);
        const int g = 8 * h + 2 * s;
        acc = dot_u8s8_scaled(acc, v, load256(b[i].qs + 128 * h + 32 * s), scales16(sc[g], sc[g + 1]));
      }
    }
    const int sumi = hsum_i32(acc);
    const int summ = scaled_bsums(mn, b[i].bsums);
    const float d = h2f(a[i].d) * b[i].d;
    const float dmin = h2f(a[i].dmin) * b[i].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

float dot_q3_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ3K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m256i one = _mm256_set1_epi8(1);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    alignas(32) int16_t sc[16];
    const uint8_t* s = a[i].scales;
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? (s[j] & 0x0f) : (s[j - 8] >> 4);
      const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
      sc[j] = static_cast<int16_t>((low | (high << 4)) - 32);
    }
    // Weight = u - 4 with u = low bits + 4 * (hmask bit): sum sc * (u . y) - 4 * sum sc * bsums.
    const __m256i hm = load256(a[i].hmask);
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load256(a[i].qs + 32 * h);
      for (int t = 0; t < 4; ++t) {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * t), m3);
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + t), one);
        const __m256i u = _mm256_or_si256(low, _mm256_slli_epi16(hb, 2));
        const int g = 8 * h + 2 * t;
        acc = dot_u8s8_scaled(acc, u, load256(b[i].qs + 128 * h + 32 * t), scales16(sc[g], sc[g + 1]));
      }
    }
    const int sumi = hsum_i32(acc) - 4 * scaled_bsums(sc, b[i].bsums);
    sum += h2f(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return sum;
}

// Q4_K and Q5_K share the scale layout; kFive adds the fifth bit from qh.
template <bool kFive, typename Block>
float dot_q45_k(int64_t n, const Block* a, const BlockQ8K* b) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) scale_min_k4(j, a[i].scales, &sc[j], &mn[j]);
    __m256i hbits = _mm256_setzero_si256();
    if constexpr (kFive) hbits = load256(a[i].qh);
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i q = load256(a[i].qs + 32 * j);
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      if constexpr (kFive) {
        const __m256i b4 = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(hbits, 2 * j), 4), b4));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(hbits, 2 * j + 1), 4), b4));
      }
      acc = dot_u8s8_scaled(acc, lo, load256(b[i].qs + 64 * j), _mm256_set1_epi16(static_cast<int16_t>(sc[2 * j])));
      acc = dot_u8s8_scaled(acc, hi, load256(b[i].qs + 64 * j + 32),
                            _mm256_set1_epi16(static_cast<int16_t>(sc[2 * j + 1])));
    }
    const int sumi = hsum_i32(acc);
    int summ = 0;
    for (int j = 0; j < 8; ++j) summ += mn[j] * (b[i].bsums[2 * j] + b[i].bsums[2 * j + 1]);
    const float d = h2f(a[i].d) * b[i].d;
    const float dmin = h2f(a[i].dmin) * b[i].d;
    sum += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
  }
  return sum;
}

float dot_q4_k_q8_k(int64_t n, const void* w, const void* x) {
  return dot_q45_k<false>(n, static_cast<const BlockQ4K*>(w), static_cast<const BlockQ8K*>(x));
}

float dot_q5_k_q8_k(int64_t n, const void* w, const void* x) {
  return dot_q45_k<true>(n, static_cast<const BlockQ5K*>(w), static_cast<const BlockQ8K*>(x));
}

float dot_q6_k_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ6K*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m2 = _mm256_set1_epi8(0x30);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    alignas(32) int16_t sc[16];
    for (int g = 0; g < 16; ++g) sc[g] = a[i].scales[g];
    // Weight = u - 32 with u the unsigned 6-bit value: sum sc * (u . y) - 32 * sum sc * bsums.
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = load256(a[i].ql + 64 * h);
      const __m256i l1 = load256(a[i].ql + 64 * h + 32);
      const __m256i qh = load256(a[i].qh + 32 * h);
      const __m256i u[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
          _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m2)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)),
      };
      for (int c = 0; c < 4; ++c) {
        const int g = 8 * h + 2 * c;
        acc = dot_u8s8_scaled(acc, u[c], load256(b[i].qs + 128 * h + 32 * c), scales16(sc[g], sc[g + 1]));
      }
    }
    const int sumi = hsum_i32(acc) - 32 * scaled_bsums(sc, b[i].bsums);
    sum += h2f(a[i].d) * b[i].d * static_cast<float>(sumi);
  }
  return sum;
}

float dot_iq4_xs_q8_k(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockIq4Xs*>(w);
  const auto* b = static_cast<const BlockQ8K*>(x);
  const __m256i lut = _mm256_broadcastsi128_si256(load128(kIq4NlValues));
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQkK; ++i) {
    __m256i acc = _mm256_setzero_si256();
    for (int sb = 0; sb < 8; ++sb) {
      const int ls = ((a[i].scales_l[sb / 2] >> (4 * (sb % 2))) & 0x0f) | (((a[i].scales_h >> (2 * sb)) & 3) << 4);
      const __m256i q = _mm256_shuffle_epi8(lut, expand_nibbles(a[i].qs + 16 * sb));
      const __m256i y = load256(b[i].qs + 32 * sb);
      acc = dot_u8s8_scaled(acc, _mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q),
                            _mm256_set1_epi16(static_cast<int16_t>(ls - 32)));
    }
    sum += h2f(a[i].d) * b[i].d * static_cast<float>(hsum_i32(acc));
  }
  return sum;
}

}  // namespace
