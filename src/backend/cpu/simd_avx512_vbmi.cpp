// Q4_0 x Q8_0 multi-row kernel for AVX-512 CPUs that also have VBMI (vpermb) and GFNI (gf2p8affineqb): the Q4_0
// matmul of the "avx512" table where the CPU has them (kernels_select.cpp). Compiled with its own flags, like
// simd_avx512.cpp (see simd_x86_common.h for why everything here has internal linkage and avoids std:: helpers).
//
// Same numbers as dot_q4_0_q8_0 of simd_x86_dots.h, bit for bit: a block pair's 16 int32 lane sums are the same
// exact integers and each float lane gets the same fmadd chain (even blocks into acc0, odd into acc1, the float
// product of the two fp16 scales, one final hsum of acc0 + acc1). Only where the numbers sit differs: a pair's
// 16 int32 slots are interleaved, slot s = lane s / 2 of block s % 2 (acc0 / acc1 lane s / 2), which lets
//  - the weights be decoded with one 64-byte load of the 36-byte block pair (masked at the end of the matrix),
//    one vpermb and one gf2p8affineqb (the low or high nibble per qword), and the pair's two scales with one
//    vpermw and one vcvtph2ps;
//  - the activations be prepared once per call (codes in slot order, the -8 * sum(y) offset term of the unsigned
//    form, the two scales), then read as plain memory operands by every weight row.
// Prefill decodes each tile of weight rows once per chunk of 32 activation rows and runs 4 x 4 register tiles
// over the decoded codes; decode streams 4 weight rows at a time. The caller hands the whole row range of a thread
// at once (TypeKernels::dot_rows_blocks); the kernel tiles it for the caches itself.
#define RF_SIMD_VNNI 1
#include <cstdlib>

#include "backend/cpu/simd_x86_common.h"
// (everything above is in an anonymous namespace: internal to this file)
#include "backend/cpu/simd_kernels.h"

namespace {

using rf::backend::cpu::BlockQ4_0;
using rf::backend::cpu::BlockQ8_0;
using rf::backend::cpu::kQk;

constexpr int kPairBytes = 2 * static_cast<int>(sizeof(BlockQ4_0));  // 36
constexpr uint64_t kPairMask = (uint64_t{1} << kPairBytes) - 1;

// vpermb index: weight codes of a block pair (36 raw bytes) in slot order; byte b of the result is code
// 4 (b / 8) + b % 4 (+ 16 in the upper half: the high nibbles) of block (b / 4) % 2.
inline __m512i weight_index() {
  alignas(64) uint8_t idx[64];
  for (int b = 0; b < 64; ++b) {
    const int blk = (b / 4) % 2, lane = (b / 4) / 2, e = (4 * lane + b % 4) % 16;
    idx[b] = static_cast<uint8_t>(static_cast<int>(sizeof(BlockQ4_0)) * blk + 2 + e);
  }
  return _mm512_load_si512(idx);
}
// vpermb index: the 64 activation bytes of a block pair ([block i | block i + 1]) in slot order.
inline __m512i act_index() {
  alignas(64) uint8_t idx[64];
  for (int b = 0; b < 64; ++b) idx[b] = static_cast<uint8_t>(32 * ((b / 4) % 2) + 4 * ((b / 4) / 2) + b % 4);
  return _mm512_load_si512(idx);
}
// gf2p8affineqb matrices (one per qword): the low nibble for the lower 32 bytes, the high nibble for the upper 32.
inline __m512i nibble_matrix() {
  const int64_t lo = 0x0102040800000000ll, hi = 0x1020408000000000ll;
  return _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo);
}
// vpermw index: the pair's two fp16 scales (words 0 and 9 of the raw pair) alternating.
inline __m256i scale_index() { return _mm256_set_epi16(9, 0, 9, 0, 9, 0, 9, 0, 9, 0, 9, 0, 9, 0, 9, 0); }

struct WeightPair {
  __m512i u;  // unsigned codes (weight + 8) in slot order
  __m512 d;   // the two fp16 scales as floats in slot order
};

// kMasked: load exactly the pair's 36 bytes (at the end of the matrix); otherwise a plain 64-byte load, which is
// much faster where the TLB misses (masked loads take a slow path then).
template <bool kMasked>
inline WeightPair decode_pair(const uint8_t* p, __m512i widx, __m512i nib, __m256i sidx) {
  const __m512i raw = kMasked ? _mm512_maskz_loadu_epi8(kPairMask, p) : _mm512_loadu_si512(p);
  WeightPair w;
  w.u = _mm512_gf2p8affine_epi64_epi8(_mm512_permutexvar_epi8(widx, raw), nib, 0);
  w.d = _mm512_cvtph_ps(_mm256_permutexvar_epi16(sidx, _mm512_castsi512_si256(raw)));
  return w;
}

// One activation row prepared for np pairs: codes (slot order), the offset term -8 * (4-element sums), scales.
struct PreparedAct {
  const __m512i* y;
  const __m512i* ny;
  const double* dy;  // two floats per pair (dy_i, dy_i+1), broadcast as one 64-bit element
};

inline void prepare_act(const BlockQ8_0* x, int64_t np, __m512i* y, __m512i* ny, double* dy) {
  const __m512i aidx = act_index();
  const __m512i eight = _mm512_set1_epi8(8);
  for (int64_t p = 0; p < np; ++p) {
    const BlockQ8_0* b = x + 2 * p;
    const __m512i raw = _mm512_inserti64x4(_mm512_castsi256_si512(load256(b[0].qs)), load256(b[1].qs), 1);
    y[p] = _mm512_permutexvar_epi8(aidx, raw);
    ny[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, y[p]));
    const float f[2] = {h2f(b[0].d), h2f(b[1].d)};
    std::memcpy(&dy[p], f, sizeof(f));
  }
}

// The last block of an odd block count (block nb - 1, an even block) into acc0, as the single dot does.
inline __m256 tail_block(__m256 acc0, const BlockQ4_0& w, const BlockQ8_0& x) {
  const __m256i y = load256(x.qs);
  const __m256i ny =
      _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), y));
  const __m256i s = _mm256_dpbusd_epi32(ny, expand_nibbles(w.qs), y);
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(h2f(w.d) * h2f(x.d)), acc0);
}

// Slot-order accumulator -> the single dot's result.
inline float finish(__m512 acc, int64_t nb, const uint8_t* wrow, const BlockQ8_0* x) {
  const __m512 split =
      _mm512_permutexvar_ps(_mm512_set_epi32(15, 13, 11, 9, 7, 5, 3, 1, 14, 12, 10, 8, 6, 4, 2, 0), acc);
  __m256 acc0 = _mm512_castps512_ps256(split);
  const __m256 acc1 = _mm512_extractf32x8_ps(split, 1);
  if (nb % 2 != 0) acc0 = tail_block(acc0, reinterpret_cast<const BlockQ4_0*>(wrow)[nb - 1], x[nb - 1]);
  return hsum_ps(_mm256_add_ps(acc0, acc1));
}

// Pairs [p0, p1) of an RM x RN tile into acc.
template <int RM, int RN, bool kMasked>
inline void tile_pairs(int64_t p0, int64_t p1, const uint8_t* const* w, const PreparedAct* a, __m512 (&acc)[RM][RN]) {
  const __m512i widx = weight_index(), nib = nibble_matrix();
  const __m256i sidx = scale_index();
  for (int64_t p = p0; p < p1; ++p) {
    __m512i u[RM];
    alignas(64) float dw[RM][16];  // (read back as memory operands: frees RM registers for accumulators)
    for (int r = 0; r < RM; ++r) {
      const WeightPair wp = decode_pair<kMasked>(w[r] + kPairBytes * p, widx, nib, sidx);
      u[r] = wp.u;
      _mm512_store_ps(dw[r], wp.d);
    }
    for (int k = 0; k < RN; ++k) {
      const __m512 dy = _mm512_castpd_ps(_mm512_set1_pd(a[k].dy[p]));
      for (int r = 0; r < RM; ++r) {
        const __m512i s = _mm512_dpbusd_epi32(a[k].ny[p], u[r], a[k].y[p]);
        acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(_mm512_load_ps(dw[r]), dy), acc[r][k]);
      }
    }
  }
}

// RM weight rows x RN activation rows. w[r]: weight rows (wend: the end of the readable weight bytes); a[k]: the
// prepared activations; x[k]: the raw activation rows (for an odd tail block); out[k * os + r]; only r < rm,
// k < rn are stored.
template <int RM, int RN>
void tile(int64_t nb, const uint8_t* const* w, const uint8_t* wend, const PreparedAct* a, const BlockQ8_0* const* x,
          float* out, size_t os, int rm, int rn) {
  const int64_t np = nb / 2;
  const uint8_t* wmax = w[0];
  for (int r = 1; r < RM; ++r) wmax = w[r] > wmax ? w[r] : wmax;
  // pairs whose plain 64-byte load stays inside the matrix for every row of the tile
  const int64_t room = wend - wmax;
  int64_t np_plain = room < 64 ? 0 : (room - 64) / kPairBytes + 1;
  if (np_plain > np) np_plain = np;
  __m512 acc[RM][RN];
  for (int r = 0; r < RM; ++r) {
    for (int k = 0; k < RN; ++k) acc[r][k] = _mm512_setzero_ps();
  }
  tile_pairs<RM, RN, false>(0, np_plain, w, a, acc);
  tile_pairs<RM, RN, true>(np_plain, np, w, a, acc);
  // (constant bounds: the accumulators stay in registers, none is spilled inside the loops above)
  for (int r = 0; r < RM; ++r) {
    for (int k = 0; k < RN; ++k) {
      const float v = finish(acc[r][k], nb, w[r], x[k]);
      if (r < rm && k < rn) out[static_cast<size_t>(k) * os + static_cast<size_t>(r)] = v;
    }
  }
}

// Weight rows decoded once for a whole chunk of activation rows: codes (slot order) and the scale pair per block
// pair, read back by tile_decoded.
struct DecodedRow {
  const __m512i* u;
  const double* d;  // two floats per pair (dw_i, dw_i+1)
};

inline void decode_row(const uint8_t* row, const uint8_t* wend, int64_t np, __m512i* u, double* d) {
  const __m512i widx = weight_index(), nib = nibble_matrix();
  const __m256i sidx = scale_index();
  for (int64_t p = 0; p < np; ++p) {
    const uint8_t* src = row + kPairBytes * p;
    const WeightPair wp =
        wend - src >= 64 ? decode_pair<false>(src, widx, nib, sidx) : decode_pair<true>(src, widx, nib, sidx);
    u[p] = wp.u;
    alignas(64) float f[16];
    _mm512_store_ps(f, wp.d);
    std::memcpy(&d[p], f, 2 * sizeof(float));
  }
}

// RM decoded weight rows x RN prepared activation rows; w[r]: the raw rows (odd tail block); out[k * os + r].
template <int RM, int RN>
void tile_decoded(int64_t nb, const DecodedRow* dr, const uint8_t* const* w, const PreparedAct* a,
                  const BlockQ8_0* const* x, float* out, size_t os, int rm, int rn) {
  const int64_t np = nb / 2;
  __m512 acc[RM][RN];
  for (int r = 0; r < RM; ++r) {
    for (int k = 0; k < RN; ++k) acc[r][k] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < np; ++p) {
    __m512i u[RM];
    __m512 dw[RM];
    for (int r = 0; r < RM; ++r) {
      u[r] = dr[r].u[p];
      dw[r] = _mm512_castpd_ps(_mm512_set1_pd(dr[r].d[p]));
    }
    for (int k = 0; k < RN; ++k) {
      const __m512 dy = _mm512_castpd_ps(_mm512_set1_pd(a[k].dy[p]));
      for (int r = 0; r < RM; ++r) {
        const __m512i s = _mm512_dpbusd_epi32(a[k].ny[p], u[r], a[k].y[p]);
        acc[r][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dy), acc[r][k]);
      }
    }
  }
  for (int r = 0; r < RM; ++r) {
    for (int k = 0; k < RN; ++k) {
      const float v = finish(acc[r][k], nb, w[r], x[k]);
      if (r < rm && k < rn) out[static_cast<size_t>(k) * os + static_cast<size_t>(r)] = v;
    }
  }
}

// Per-thread buffer for the prepared activations (grown, never shrunk; freed at thread exit).
struct Scratch {
  void* p = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(p); }
  void* get(size_t bytes) {
    if (bytes > cap) {
      std::free(p);
      cap = (bytes + 4095) / 4096 * 4096;
      p = std::aligned_alloc(64, cap);
    }
    return p;
  }
};
thread_local Scratch scratch, wscratch;

// Tiling (measured on a 2-core AVX-512 EPYC): 4 x 4 register tiles (larger ones spill or, with fewer weight rows,
// read more activation bytes per product); decode takes one weight row at a time (interleaving 2-4 rows was 3x
// slower on weights streamed from DRAM).
constexpr int kRm = 4, kRn = 4;
constexpr int kDecodeRows = 4;
constexpr int64_t kActChunk = 32;                      // activation rows prepared at a time
constexpr size_t kWeightTileBytes = size_t{32} << 10;  // decoded weight rows per tile (reused by the chunk)
constexpr int64_t kMaxTileRows = 256;

void dot_rows_q4_0_vbmi(int64_t n, const void* w, size_t ws, int64_t n_w, const void* x, size_t xs, int64_t n_x,
                        float* out, size_t os) {
  const int64_t nb = n / kQk, np = nb / 2;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  const uint8_t* wend = wb + static_cast<size_t>(n_w - 1) * ws + static_cast<size_t>(nb) * sizeof(BlockQ4_0);
  const int64_t chunk = n_x < kActChunk ? n_x : kActChunk;
  const size_t per_act = (static_cast<size_t>(np) * (2 * sizeof(__m512i) + sizeof(double)) + 63) / 64 * 64;
  auto* buf = static_cast<uint8_t*>(scratch.get(per_act * static_cast<size_t>(chunk) + 64));
  const size_t per_row = (static_cast<size_t>(np) * (sizeof(__m512i) + sizeof(double)) + 63) / 64 * 64;
  int64_t wtile = static_cast<int64_t>(kWeightTileBytes / (per_row == 0 ? 1 : per_row)) / kRm * kRm;
  wtile = wtile < kRm ? kRm : wtile > kMaxTileRows ? kMaxTileRows : wtile;
  auto* wbuf = n_x > 1 ? static_cast<uint8_t*>(wscratch.get(per_row * static_cast<size_t>(wtile) + 64)) : nullptr;
  for (int64_t a0 = 0; a0 < n_x; a0 += chunk) {
    const int64_t na = n_x - a0 < chunk ? n_x - a0 : chunk;
    PreparedAct pa[kActChunk];
    const BlockQ8_0* xr[kActChunk];
    for (int64_t k = 0; k < na; ++k) {
      uint8_t* base = buf + per_act * static_cast<size_t>(k);
      auto* y = reinterpret_cast<__m512i*>(base);
      auto* ny = y + np;
      auto* dy = reinterpret_cast<double*>(ny + np);
      xr[k] = reinterpret_cast<const BlockQ8_0*>(xb + static_cast<size_t>(a0 + k) * xs);
      prepare_act(xr[k], np, y, ny, dy);
      pa[k] = {y, ny, dy};
    }
    float* o = out + static_cast<size_t>(a0) * os;
    if (na == 1) {
      // decode: kDecodeRows weight rows at a time against the one activation row, taken from kDecodeRows far apart
      // segments of the range, so that each is a sequential stream the hardware prefetcher follows (adjacent rows
      // interleaved defeat it: 3x slower from DRAM)
      const int64_t seg = (n_w + kDecodeRows - 1) / kDecodeRows;
      for (int64_t i = 0; i < seg; ++i) {
        const uint8_t* wr[kDecodeRows];
        int64_t rows[kDecodeRows];
        for (int r = 0; r < kDecodeRows; ++r) {
          rows[r] = r * seg + i < n_w ? r * seg + i : n_w - 1;
          wr[r] = wb + static_cast<size_t>(rows[r]) * ws;
        }
        float v[kDecodeRows];
        tile<kDecodeRows, 1>(nb, wr, wend, pa, xr, v, 1, kDecodeRows, 1);
        for (int r = 0; r < kDecodeRows; ++r) {
          if (r * seg + i < n_w) o[rows[r]] = v[r];
        }
      }
      continue;
    }
    // prefill: weight tiles decoded once for the chunk, then RM x RN register tiles over them
    for (int64_t t0 = 0; t0 < n_w; t0 += wtile) {
      const int64_t t1 = n_w - t0 < wtile ? n_w : t0 + wtile;
      DecodedRow drow[kMaxTileRows];
      for (int64_t r = t0; r < t1; ++r) {
        auto* u = reinterpret_cast<__m512i*>(wbuf + per_row * static_cast<size_t>(r - t0));
        auto* d = reinterpret_cast<double*>(u + np);
        decode_row(wb + static_cast<size_t>(r) * ws, wend, np, u, d);
        drow[r - t0] = {u, d};
      }
      for (int64_t k0 = 0; k0 < na; k0 += kRn) {
        const int rn = static_cast<int>(na - k0 < kRn ? na - k0 : kRn);
        PreparedAct ak[kRn];
        const BlockQ8_0* xk[kRn];
        for (int k = 0; k < kRn; ++k) {
          ak[k] = pa[k0 + (k < rn ? k : rn - 1)];
          xk[k] = xr[k0 + (k < rn ? k : rn - 1)];
        }
        for (int64_t r0 = t0; r0 < t1; r0 += kRm) {
          const int rm = static_cast<int>(t1 - r0 < kRm ? t1 - r0 : kRm);
          const uint8_t* wr[kRm];
          DecodedRow dk[kRm];
          for (int r = 0; r < kRm; ++r) {
            const int64_t rr = r0 + (r < rm ? r : rm - 1);
            wr[r] = wb + static_cast<size_t>(rr) * ws;
            dk[r] = drow[rr - t0];
          }
          float* ot = o + static_cast<size_t>(k0) * os + static_cast<size_t>(r0);
          if (rn == kRn) {
            tile_decoded<kRm, kRn>(nb, dk, wr, ak, xk, ot, os, rm, rn);
          } else {
            for (int k = 0; k < rn; ++k) {
              tile_decoded<kRm, 1>(nb, dk, wr, ak + k, xk + k, ot + static_cast<size_t>(k) * os, os, rm, 1);
            }
          }
        }
      }
    }
  }
}

}  // namespace

namespace rf::backend::cpu {

void register_avx512_vbmi_kernels(KernelTable& t) {
  TypeKernels& k = t.weights[static_cast<uint32_t>(quant::Type::Q4_0)];
  k.dot_rows = dot_rows_q4_0_vbmi;
  k.dot_rows_blocks = true;
}

}  // namespace rf::backend::cpu
