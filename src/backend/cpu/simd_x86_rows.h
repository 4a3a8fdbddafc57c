// x86 multi-row dot kernels (the prefill "GEMM" micro-kernels): each weight block is decoded once and used for
// several activation rows, and each activation block for several weight rows. Included only by simd_avx2.cpp /
// simd_avx512.cpp after simd_x86_dots.h (see simd_x86_common.h for why: internal linkage, no std:: helpers).
//
// Every result is BITWISE equal to the single-row dot of simd_x86_dots.h for the same (weight row, activation row):
// the per-lane block integer sums are the same exact int32 values, and the float operations are the same in the
// same order (32-element formats: even blocks into one 8-lane accumulator, odd blocks into another, fmadd with the
// float product of the two fp16 scales, one final hsum of their sum; K formats: one exact int32 per super-block,
// then the scalar float update). So decoding one token and prefilling many give identical logits per row.
#pragma once

#include "backend/cpu/simd_x86_dots.h"

namespace {

// --- 32-element formats with Q8_0 activations --------------------------------------------------------------------
// A decoder gives block i's 32 weights as unsigned codes u (element order) with weight = u - kOffset, and the fp16
// scale. Lane sums: VNNI: dpbusd(-(kOffset * sum4 y), u, y); otherwise the single dot's signed form (dot_s8s8).

struct DecQ4_0 {
  static constexpr int kOffset = 8;
  static constexpr bool kPlainNibbles = true;  // codes = the 16 qs bytes' low then high nibbles
  static constexpr bool kDecodePrepared = true;
  static float dot(int64_t n, const void* w, const void* x) { return dot_q4_0_q8_0(n, w, x); }
  static const BlockQ4_0* blk(const uint8_t* row) { return reinterpret_cast<const BlockQ4_0*>(row); }
  static __m256i codes(const uint8_t* row, int64_t i) { return expand_nibbles(blk(row)[i].qs); }
  static uint16_t scale(const uint8_t* row, int64_t i) { return blk(row)[i].d; }
};

struct DecQ8_0 {
  static constexpr int kOffset = 128;
  static constexpr bool kPlainNibbles = false;
  // Q8_0: the plain dot already streams at memory speed (measured a little faster)
  static constexpr bool kDecodePrepared = false;
  static float dot(int64_t n, const void* w, const void* x) { return dot_q8_0_q8_0(n, w, x); }
  static const BlockQ8_0* blk(const uint8_t* row) { return reinterpret_cast<const BlockQ8_0*>(row); }
  static __m256i codes(const uint8_t* row, int64_t i) {
    return _mm256_xor_si256(load256(blk(row)[i].qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static uint16_t scale(const uint8_t* row, int64_t i) { return blk(row)[i].d; }
};

struct DecQ5_0 {
  static constexpr int kOffset = 16;
  static constexpr bool kPlainNibbles = false;
  static constexpr bool kDecodePrepared = true;
  static float dot(int64_t n, const void* w, const void* x) { return dot_q5_0_q8_0(n, w, x); }
  static const BlockQ5_0* blk(const uint8_t* row) { return reinterpret_cast<const BlockQ5_0*>(row); }
  static __m256i codes(const uint8_t* row, int64_t i) {
    const BlockQ5_0& b = blk(row)[i];
    return _mm256_or_si256(expand_nibbles(b.qs),
                           _mm256_and_si256(bits_to_bytes(load_u32(b.qh)), _mm256_set1_epi8(0x10)));
  }
  static uint16_t scale(const uint8_t* row, int64_t i) { return blk(row)[i].d; }
};

struct DecIq4Nl {
  static constexpr int kOffset = 128;
  static constexpr bool kPlainNibbles = false;
  static constexpr bool kDecodePrepared = true;
  static float dot(int64_t n, const void* w, const void* x) { return dot_iq4_nl_q8_0(n, w, x); }
  static const BlockIq4Nl* blk(const uint8_t* row) { return reinterpret_cast<const BlockIq4Nl*>(row); }
  static __m256i codes(const uint8_t* row, int64_t i) {
    const __m256i lut = _mm256_broadcastsi128_si256(load128(kIq4NlValues));
    return _mm256_xor_si256(_mm256_shuffle_epi8(lut, expand_nibbles(blk(row)[i].qs)),
                            _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static uint16_t scale(const uint8_t* row, int64_t i) { return blk(row)[i].d; }
};

#if RF_SIMD_512
inline __m512i pair256(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

// Blocks i and i + 1 of a weight row: the codes as one vector, the scales as [d_i x 8 | d_i+1 x 8].
template <typename Dec>
inline __m512i codes2(const uint8_t* row, int64_t i) {
  if constexpr (Dec::kPlainNibbles) {
    const auto* b = Dec::blk(row);
    const __m256i q2 = _mm256_inserti128_si256(_mm256_castsi128_si256(load128(b[i].qs)), load128(b[i + 1].qs), 1);
    const __m512i q4 = _mm512_shuffle_i64x2(_mm512_castsi256_si512(q2), _mm512_castsi256_si512(q2), 0x50);
    return _mm512_and_si512(_mm512_srlv_epi64(q4, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(0x0f));
  } else {
    return pair256(Dec::codes(row, i), Dec::codes(row, i + 1));
  }
}
inline __m512 scales2(uint16_t d0, uint16_t d1) {
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d0 | (static_cast<uint32_t>(d1) << 16))));
  return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                               _mm512_castps128_ps512(f));
}

// The sums of an unpaired last block (odd block count), into the even accumulator `lo`.
template <typename Dec>
inline __m256 tail_block(__m256 lo, const uint8_t* row, const BlockQ8_0* x, int64_t i) {
  const __m256i y = load256(x[i].qs);
  const __m256i koff = _mm256_set1_epi8(static_cast<char>(Dec::kOffset));
  const __m256i ny = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), koff, y));
  const __m256i s = _mm256_dpbusd_epi32(ny, Dec::codes(row, i), y);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(Dec::scale(row, i)) * h2f(x[i].d)), lo);
}

// Decode (one activation row): the activation's per-block-pair terms (its codes, -kOffset * lane sums and scale
// pair) are prepared once per chunk of block pairs and reused by up to kRows weight rows, which are then read in
// order (one sequential stream from memory).
template <typename Dec>
void rows32_one_act(int64_t nb, const uint8_t* w, size_t ws, int64_t n_w, const BlockQ8_0* x, float* out) {
  constexpr int64_t kChunk = 64;  // block pairs per prepared chunk (12 KiB)
  constexpr int kRows = 16;
  __m512i ys[kChunk], nys[kChunk];
  __m512 dys[kChunk];
  const __m512i koff = _mm512_set1_epi8(static_cast<char>(Dec::kOffset));
  const int64_t np = nb / 2;
  for (int64_t r0 = 0; r0 < n_w; r0 += kRows) {
    const int rm = static_cast<int>(n_w - r0 < kRows ? n_w - r0 : kRows);
    __m512 acc[kRows];
    for (int r = 0; r < rm; ++r) acc[r] = _mm512_setzero_ps();
    for (int64_t c0 = 0; c0 < np; c0 += kChunk) {
      const int64_t nc = np - c0 < kChunk ? np - c0 : kChunk;
      if (r0 == 0 || np > kChunk) {
        for (int64_t p = 0; p < nc; ++p) {
          const int64_t i = 2 * (c0 + p);
          ys[p] = pair256(load256(x[i].qs), load256(x[i + 1].qs));
          nys[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), koff, ys[p]));
          dys[p] = scales2(x[i].d, x[i + 1].d);
        }
      }
      for (int r = 0; r < rm; ++r) {
        const uint8_t* row = w + static_cast<size_t>(r0 + r) * ws;
        __m512 a = acc[r];
        for (int64_t p = 0; p < nc; ++p) {
          const int64_t i = 2 * (c0 + p);
          const __m512i sum = _mm512_dpbusd_epi32(nys[p], codes2<Dec>(row, i), ys[p]);
          const __m512 d = _mm512_mul_ps(scales2(Dec::scale(row, i), Dec::scale(row, i + 1)), dys[p]);
          a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), d, a);
        }
        acc[r] = a;
      }
    }
    for (int r = 0; r < rm; ++r) {
      __m256 lo = _mm512_castps512_ps256(acc[r]);
      const __m256 hi = _mm512_extractf32x8_ps(acc[r], 1);
      if (2 * np < nb) lo = tail_block<Dec>(lo, w + static_cast<size_t>(r0 + r) * ws, x, 2 * np);
      out[r0 + r] = hsum_ps(_mm256_add_ps(lo, hi));
    }
  }
}

// RM weight rows x RN activation rows; acc low 256 bits = even blocks, high = odd blocks (the single dot's acc0 /
// acc1). w[r] / x[a] point at the rows; out[a * os + r].
template <typename Dec, int RM, int RN>
void tile32(int64_t nb, const uint8_t* const* w, const BlockQ8_0* const* x, float* out, size_t os, int rm, int rn) {
  __m512 acc[RM][RN];
  for (int r = 0; r < RM; ++r) {
    for (int a = 0; a < RN; ++a) acc[r][a] = _mm512_setzero_ps();
  }
  const __m512i koff = _mm512_set1_epi8(static_cast<char>(Dec::kOffset));
  int64_t i = 0;
  for (; i + 1 < nb; i += 2) {
    __m512i u[RM];
    __m512 dw[RM];
    for (int r = 0; r < RM; ++r) {
      u[r] = codes2<Dec>(w[r], i);
      dw[r] = scales2(Dec::scale(w[r], i), Dec::scale(w[r], i + 1));
    }
    for (int a = 0; a < RN; ++a) {
      const __m512i y = pair256(load256(x[a][i].qs), load256(x[a][i + 1].qs));
      const __m512i ny = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), koff, y));
      const __m512 dy = scales2(x[a][i].d, x[a][i + 1].d);
      for (int r = 0; r < RM; ++r) {
        const __m512i s = _mm512_dpbusd_epi32(ny, u[r], y);
        acc[r][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dy), acc[r][a]);
      }
    }
  }
  for (int r = 0; r < RM; ++r) {
    for (int a = 0; a < RN; ++a) {
      __m256 lo = _mm512_castps512_ps256(acc[r][a]);
      const __m256 hi = _mm512_extractf32x8_ps(acc[r][a], 1);
      if (i < nb) lo = tail_block<Dec>(lo, w[r], x[a], i);  // odd block count: the last block is even
      if (r < rm && a < rn) out[static_cast<size_t>(a) * os + static_cast<size_t>(r)] = hsum_ps(_mm256_add_ps(lo, hi));
    }
  }
}
#else
template <typename Dec, int RM, int RN>
void tile32(int64_t nb, const uint8_t* const* w, const BlockQ8_0* const* x, float* out, size_t os, int rm, int rn) {
  __m256 acc0[RM][RN], acc1[RM][RN];
  for (int r = 0; r < RM; ++r) {
    for (int a = 0; a < RN; ++a) acc0[r][a] = acc1[r][a] = _mm256_setzero_ps();
  }
  const __m256i koff = _mm256_set1_epi8(static_cast<char>(Dec::kOffset));
  for (int64_t i = 0; i < nb; ++i) {
    __m256i q[RM];
    float dw[RM];
    for (int r = 0; r < RM; ++r) {
      q[r] = _mm256_sub_epi8(Dec::codes(w[r], i), koff);
      dw[r] = h2f(Dec::scale(w[r], i));
    }
    const bool to_acc1 = (i & 1) != 0;  // even blocks -> acc0, odd -> acc1; an unpaired last block is even
    for (int a = 0; a < RN; ++a) {
      const __m256i y = load256(x[a][i].qs);
      const float dy = h2f(x[a][i].d);
      for (int r = 0; r < RM; ++r) {
        const __m256i s = dot_s8s8(_mm256_setzero_si256(), q[r], y);
        __m256& acc = to_acc1 ? acc1[r][a] : acc0[r][a];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(dw[r] * dy), acc);
      }
    }
  }
  for (int r = 0; r < rm; ++r) {
    for (int a = 0; a < rn; ++a) {
      out[static_cast<size_t>(a) * os + static_cast<size_t>(r)] = hsum_ps(_mm256_add_ps(acc0[r][a], acc1[r][a]));
    }
  }
}
#endif

// Rows in tiles of kTileW x kTileA (a partial tile repeats its last row; only real rows are stored); a lone
// activation row (decode) uses the kTileW x 1 tile.
template <typename Dec>
void dot_rows32(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x, float* out,
                size_t os) {
  constexpr int kTileW = RF_SIMD_512 ? 4 : 2;
  constexpr int kTileA = RF_SIMD_512 ? 4 : 2;
  const int64_t nb = n / kQk;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  if (n_x == 1) {
#if RF_SIMD_512
    if constexpr (!Dec::kDecodePrepared) {
      for (int64_t r = 0; r < n_w; ++r) out[r] = Dec::dot(n, wb + static_cast<size_t>(r) * ws, x);
      return;
    }
    rows32_one_act<Dec>(nb, wb, ws, n_w, reinterpret_cast<const BlockQ8_0*>(xb), out);
#else
    for (int64_t r = 0; r < n_w; ++r) out[r] = Dec::dot(n, wb + static_cast<size_t>(r) * ws, x);
#endif
    return;
  }
  for (int64_t r0 = 0; r0 < n_w; r0 += kTileW) {
    const int rm = static_cast<int>(n_w - r0 < kTileW ? n_w - r0 : kTileW);
    const uint8_t* wr[kTileW];
    for (int r = 0; r < kTileW; ++r) wr[r] = wb + static_cast<size_t>(r0 + (r < rm ? r : rm - 1)) * ws;
    int64_t a0 = 0;
    for (; a0 < n_x; a0 += kTileA) {
      const int rn = static_cast<int>(n_x - a0 < kTileA ? n_x - a0 : kTileA);
      if (rn < kTileA && rn == 1) break;
      const BlockQ8_0* xr[kTileA];
      for (int a = 0; a < kTileA; ++a) {
        xr[a] = reinterpret_cast<const BlockQ8_0*>(xb + static_cast<size_t>(a0 + (a < rn ? a : rn - 1)) * xs);
      }
      tile32<Dec, kTileW, kTileA>(nb, wr, xr, out + static_cast<size_t>(a0) * os + static_cast<size_t>(r0), os, rm, rn);
    }
    for (; a0 < n_x; ++a0) {
      const BlockQ8_0* xr[1] = {reinterpret_cast<const BlockQ8_0*>(xb + static_cast<size_t>(a0) * xs)};
      tile32<Dec, kTileW, 1>(nb, wr, xr, out + static_cast<size_t>(a0) * os + static_cast<size_t>(r0), os, rm, 1);
    }
  }
}

void dot_rows_q4_0(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x, float* out,
                   size_t os) {
  dot_rows32<DecQ4_0>(n, w, ws, n_w, x, xs, n_x, out, os);
}
void dot_rows_q5_0(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x, float* out,
                   size_t os) {
  dot_rows32<DecQ5_0>(n, w, ws, n_w, x, xs, n_x, out, os);
}
void dot_rows_q8_0(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x, float* out,
                   size_t os) {
  dot_rows32<DecQ8_0>(n, w, ws, n_w, x, xs, n_x, out, os);
}
void dot_rows_iq4_nl(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x,
                     float* out, size_t os) {
  dot_rows32<DecIq4Nl>(n, w, ws, n_w, x, xs, n_x, out, os);
}

// --- K formats: one weight row's super-block decoded once for up to 8 activation rows -------------------------
// A super-block as 8 groups of 32 unsigned codes u[g] with int16 scales s16[g], group g against activation bytes
// y + 32 g: sumi = sum_g sum_lanes madd(maddubs(u[g], y), s16[g]), an exact int32 (AVX-512: two groups per op).

#if RF_SIMD_512
struct SbCodes {
  __m512i u[4], s[4];
};
inline SbCodes pack_sb(const __m256i* u, const __m256i* s16) {
  SbCodes c;
  for (int p = 0; p < 4; ++p) {
    c.u[p] = pair256(u[2 * p], u[2 * p + 1]);
    c.s[p] = pair256(s16[2 * p], s16[2 * p + 1]);
  }
  return c;
}
inline int sb_dot(const SbCodes& c, const int8_t* y) {
  __m512i acc = _mm512_setzero_si512();
  for (int p = 0; p < 4; ++p) {
    acc =
        _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(c.u[p], _mm512_loadu_si512(y + 64 * p)), c.s[p]));
  }
  return _mm512_reduce_add_epi32(acc);
}
#else
struct SbCodes {
  __m256i u[8], s[8];
};
inline SbCodes pack_sb(const __m256i* u, const __m256i* s16) {
  SbCodes c;
  for (int g = 0; g < 8; ++g) {
    c.u[g] = u[g];
    c.s[g] = s16[g];
  }
  return c;
}
inline int sb_dot(const SbCodes& c, const int8_t* y) {
  __m256i acc = _mm256_setzero_si256();
  for (int g = 0; g < 8; ++g) acc = dot_u8s8_scaled(acc, c.u[g], load256(y + 32 * g), c.s[g]);
  return hsum_i32(acc);
}
#endif

// The Q4_K / Q5_K scale field as 16 bytes: the 8 six-bit scales, then the 8 six-bit mins (scale_min_k4's values,
// unpacked with 32-bit word masks).
inline __m128i unpack_k4_scales(const uint8_t* s) {
  const uint32_t w0 = load_u32(s), w1 = load_u32(s + 4), w2 = load_u32(s + 8);
  const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
  const uint32_t sc_lo = w0 & m6, sc_hi = (w2 & m4) | (((w0 >> 6) & m2) << 4);
  const uint32_t mn_lo = w1 & m6, mn_hi = ((w2 >> 4) & m4) | (((w1 >> 6) & m2) << 4);
  return _mm_set_epi32(static_cast<int>(mn_hi), static_cast<int>(mn_lo), static_cast<int>(sc_hi),
                       static_cast<int>(sc_lo));
}

// Q4_K codes of one super-block (group g: the low or high nibbles of qs[32 (g / 2) ...]) with their scales.
inline SbCodes q4k_codes(const uint8_t* qs, __m128i sm) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i u[8];
  for (int j = 0; j < 4; ++j) {
    const __m256i q = load256(qs + 32 * j);
    u[2 * j] = _mm256_and_si256(q, m4);
    u[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
  }
#if RF_SIMD_512
  const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm));
  SbCodes c;
  for (int p = 0; p < 4; ++p) {
    c.u[p] = pair256(u[2 * p], u[2 * p + 1]);
    const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<int16_t>(2 * p))),
                                           _mm256_set1_epi16(static_cast<int16_t>(2 * p + 1)), 1);
    c.s[p] = _mm512_permutexvar_epi16(idx, sc16);
  }
  return c;
#else
  alignas(16) uint8_t sc[16];
  _mm_store_si128(reinterpret_cast<__m128i*>(sc), sm);
  __m256i s16[8];
  for (int g = 0; g < 8; ++g) s16[g] = _mm256_set1_epi16(static_cast<int16_t>(sc[g]));
  return pack_sb(u, s16);
#endif
}

// The Q8_K activation rows [a0, a0 + kA) of x (rows xs bytes apart; past n_x the last row repeats) and zeroed sums;
// returns how many are real.
template <int kA>
inline int q8k_row_group(const void* x, size_t xs, int64_t a0, int64_t n_x, const BlockQ8K* (&b)[kA],
                         float (&sum)[kA]) {
  const int rn = static_cast<int>(n_x - a0 < kA ? n_x - a0 : kA);
  for (int j = 0; j < kA; ++j) {
    b[j] = reinterpret_cast<const BlockQ8K*>(static_cast<const uint8_t*>(x) +
                                             static_cast<size_t>(a0 + (j < rn ? j : rn - 1)) * xs);
    sum[j] = 0.0f;
  }
  return rn;
}

void dot_rows_q4_k(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x, float* out,
                   size_t os) {
  constexpr int kA = 8;  // activation rows per decoded super-block
  const int64_t nsb = n / kQkK;
  for (int64_t r = 0; r < n_w; ++r) {
    const auto* a = reinterpret_cast<const BlockQ4K*>(static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * ws);
    for (int64_t a0 = 0; a0 < n_x; a0 += kA) {
      const BlockQ8K* b[kA];
      float sum[kA];
      const int rn = q8k_row_group(x, xs, a0, n_x, b, sum);
      for (int64_t i = 0; i < nsb; ++i) {
        const __m128i sm = unpack_k4_scales(a[i].scales);  // 8 scales, 8 mins
        const __m128i mins = _mm_unpackhi_epi64(sm, sm);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins));  // each min twice: per 16
        const SbCodes codes = q4k_codes(a[i].qs, sm);
        const float dw = h2f(a[i].d), dmw = h2f(a[i].dmin);
        for (int k = 0; k < rn; ++k) {
          const int sumi = sb_dot(codes, b[k][i].qs);
          // exact: the same integer as the single dot's loop over the 8 mins
          const int summ = hsum_i32(_mm256_madd_epi16(mn16, load256(b[k][i].bsums)));
          const float d = dw * b[k][i].d;
          const float dmin = dmw * b[k][i].d;
          sum[k] += d * static_cast<float>(sumi) - dmin * static_cast<float>(summ);
        }
      }
      for (int k = 0; k < rn; ++k) out[static_cast<size_t>(a0 + k) * os + static_cast<size_t>(r)] = sum[k];
    }
  }
}

void dot_rows_q6_k(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x, float* out,
                   size_t os) {
  if (n_x == 1) {  // decode: the single-row dot is faster than this kernel's one-row form
    for (int64_t r = 0; r < n_w; ++r)
      out[r] = dot_q6_k_q8_k(n, static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * ws, x);
    return;
  }
  constexpr int kA = 8;  // activation rows per decoded super-block
  const int64_t nsb = n / kQkK;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m2 = _mm256_set1_epi8(0x30);
  for (int64_t r = 0; r < n_w; ++r) {
    const auto* a = reinterpret_cast<const BlockQ6K*>(static_cast<const uint8_t*>(w) + static_cast<size_t>(r) * ws);
    for (int64_t a0 = 0; a0 < n_x; a0 += kA) {
      const BlockQ8K* b[kA];
      float sum[kA];
      const int rn = q8k_row_group(x, xs, a0, n_x, b, sum);
      for (int64_t i = 0; i < nsb; ++i) {
        alignas(32) int16_t sc[16];
        for (int g = 0; g < 16; ++g) sc[g] = a[i].scales[g];
        __m256i u[8], s16[8];
        for (int h = 0; h < 2; ++h) {
          const __m256i l0 = load256(a[i].ql + 64 * h);
          const __m256i l1 = load256(a[i].ql + 64 * h + 32);
          const __m256i qh = load256(a[i].qh + 32 * h);
          u[4 * h] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
          u[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
          u[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m2));
          u[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
          for (int c = 0; c < 4; ++c) s16[4 * h + c] = scales16(sc[8 * h + 2 * c], sc[8 * h + 2 * c + 1]);
        }
        const SbCodes codes = pack_sb(u, s16);
        const float dw = h2f(a[i].d);
        for (int k = 0; k < rn; ++k) {
          const int sumi = sb_dot(codes, b[k][i].qs) - 32 * scaled_bsums(sc, b[k][i].bsums);
          sum[k] += dw * b[k][i].d * static_cast<float>(sumi);
        }
      }
      for (int k = 0; k < rn; ++k) out[static_cast<size_t>(a0 + k) * os + static_cast<size_t>(r)] = sum[k];
    }
  }
}

}  // namespace
