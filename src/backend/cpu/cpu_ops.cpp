// CpuBackend element-wise ops, rope, paged KV store, attention and MoE routing: plain scalar code (the reference
// the SIMD and GPU versions are tested against), threaded over rows / (token tile, KV head) pairs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "backend/cpu/cpu_backend.h"
#include "backend/rope_yarn.h"
#include "core/check.h"
#include "core/half.h"

namespace rf::backend::cpu {
namespace {

float* row_f32(Tensor t, int64_t r) { return reinterpret_cast<float*>(static_cast<uint8_t*>(t.data) + r * t.nb1); }

int64_t kv_slot(const Batch& b, int32_t seq, int32_t pos) {
  const auto& table = b.block_tables[static_cast<size_t>(seq)];
  return static_cast<int64_t>(table[static_cast<size_t>(pos / b.kv_block_size)]) * b.kv_block_size +
         pos % b.kv_block_size;
}

// Attention sums in the order of the reference engine. The golden logits come from llama.cpp's CPU backend
// without flash attention, built for AVX-512: there q . k is ggml's F16 dot of the F16-rounded query with each F16
// key, and each output element is the same dot of the F16-rounded probabilities with a V column over the KV view
// (the used cells rounded up to kKvPad, the rest masked to probability 0). That dot sums whole 64-element steps in
// 4 accumulators x 16 float lanes, folds them in a fixed order and adds the elements past the last whole step in
// double; so a 32-wide head's q . k and the output over fewer than 64 cells are plain double sums. Any other order
// moves results by a float ulp, and an ulp across an F16 or 8-bit rounding boundary moves the logits by up to
// ~1e-2 nRMSE (on fortune-qwen2-Q8_0 a float-lane q . k flipped a near-tied argmax five decode steps later). The
// products of two F16 values are exact in float, so fused or separate multiply-adds give the same sums.
constexpr int kLanes = 16;         // float lanes of one accumulator
constexpr int kStep = 4 * kLanes;  // elements per step
constexpr int32_t kKvPad = 32;     // llama.cpp's KV view granularity without flash attention

// The reference's horizontal sum of one accumulator a[16], in place: halves onto halves down to two pairs.
float fold16(float* a) {
  for (int l = 0; l < 8; ++l) a[l] += a[l + 8];
  for (int l = 0; l < 4; ++l) a[l] += a[l + 4];
  return (a[0] + a[2]) + (a[1] + a[3]);
}

// The reference's sum of one 64-element step (its 4 accumulators merged (acc0 + acc2) + (acc1 + acc3) per lane, then
// fold16) for `width` independent steps at once: element k of step d at a[k * width + d]; the sums land in
// a[0 .. width) (the other rows are overwritten).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void fold_step_rows(float* a, int64_t width) {
  const auto row = [&](int k) { return a + k * width; };
  for (int l = 0; l < kLanes; ++l) {
    float* r = row(l);
    const float *r1 = row(l + kLanes), *r2 = row(l + 2 * kLanes), *r3 = row(l + 3 * kLanes);
    for (int64_t d = 0; d < width; ++d) r[d] = (r[d] + r2[d]) + (r1[d] + r3[d]);
  }
  for (int half = kLanes / 2; half >= 2; half /= 2) {
    for (int l = 0; l < half; ++l) {
      float* r = row(l);
      const float* o = row(l + half);
      for (int64_t d = 0; d < width; ++d) r[d] += o[d];
    }
  }
  float *r0 = row(0), *r1 = row(1);
  for (int64_t d = 0; d < width; ++d) r0[d] += r1[d];
}

// The F16 cache kernels below work on 16 keys (q . k) or 16 output columns (p . V) at once, one per vector lane:
// each lane goes through exactly the float operations of the per-element code, in the same order, so the results
// are the same bits. For q . k that is the reference's fold tree applied to whole vectors; for the 64 step sums
// P(0..63) (lane l of accumulator a is P(16 a + l)):
//   t_l = (P(l) + P(l + 32)) + (P(l + 16) + P(l + 48))   l < 16 (the accumulators merged)
//   u_l = t_l + t_(l + 8)   l < 8;   w_l = u_l + u_(l + 4)   l < 4;   sum = (w_0 + w_2) + (w_1 + w_3)   (fold16)
// evaluated depth first so that few vectors are live. The GNU vector types are lowered to whatever the clone's ISA
// has (one zmm, two ymm, or SSE / scalar code): element-wise float operations, the same bits on every clone.
using F32x16 = float __attribute__((vector_size(64)));
using F32x8 = float __attribute__((vector_size(32)));
using F64x8 = double __attribute__((vector_size(64)));
using F32x16u = float __attribute__((vector_size(64), aligned(4), may_alias));  // unaligned loads / stores
using F32x8u = float __attribute__((vector_size(32), aligned(4), may_alias));
constexpr int kKeyBlock = 16;  // keys (or output columns) per vector

#define RF_LOAD16(p) (*reinterpret_cast<const F32x16u*>(p))
#define RF_LOAD8(p) (*reinterpret_cast<const F32x8u*>(p))
#define RF_STORE16(p, x) (*reinterpret_cast<F32x16u*>(p) = (x))
#define RF_STORE8(p, x) (*reinterpret_cast<F32x8u*>(p) = (x))
// Helpers inlined into each clone below, so compiled for its ISA (vectors go by reference, never by value).
#define RF_ATTN_INLINE __attribute__((always_inline)) inline

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RF_ATTN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RF_ATTN_CLONES
#endif

// The scaled q . k of 16 keys kb ([dk][16]: element i of key c at kb[i * 16 + c]) with NQ F16-rounded queries
// y + g * y_stride, stored at dst + g * dst_stride. Per key and query: the whole 64-element steps summed per
// element, folded, the elements past them added in double, then scaled. Each key block is loaded once for the NQ
// queries. An element's first product is taken as is where the reference adds it to a zero accumulator: that only
// turns a -0 sum into +0, i.e. can only flip the sign of a zero score, and a score enters the outputs only through
// exp(score - max), where the sign of a zero does not matter (x - (+-0) = x for x != 0, and exp(+-0) = 1).
template <int NQ>
RF_ATTN_INLINE void scores_f16_keys(int dk, const float* kb, const float* y, int64_t y_stride, float scale,
                                    float* dst, int64_t dst_stride) {
  const int whole = dk - dk % kStep;
  F32x16 res[NQ] = {};
  if (whole > 0) {
    F32x16 w[4][NQ];
#pragma GCC unroll 4
    for (int a = 0; a < 4; ++a) {
      F32x16 u[2][NQ];
#pragma GCC unroll 2
      for (int b = 0; b < 2; ++b) {
        F32x16 t[2][NQ];
#pragma GCC unroll 2
        for (int c = 0; c < 2; ++c) {
          F32x16 p[4][NQ];
#pragma GCC unroll 4
          for (int e = 0; e < 4; ++e) {
            const int i = a + 4 * b + 8 * c + kLanes * e;
            const F32x16 k = RF_LOAD16(kb + i * kKeyBlock);
#pragma GCC unroll 4
            for (int g = 0; g < NQ; ++g) p[e][g] = k * y[g * y_stride + i];
            for (int s = kStep; s < whole; s += kStep) {
              const F32x16 ks = RF_LOAD16(kb + (s + i) * kKeyBlock);
#pragma GCC unroll 4
              for (int g = 0; g < NQ; ++g) p[e][g] += ks * y[g * y_stride + s + i];
            }
          }
#pragma GCC unroll 4
          for (int g = 0; g < NQ; ++g) t[c][g] = (p[0][g] + p[2][g]) + (p[1][g] + p[3][g]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < NQ; ++g) u[b][g] = t[0][g] + t[1][g];
      }
#pragma GCC unroll 4
      for (int g = 0; g < NQ; ++g) w[a][g] = u[0][g] + u[1][g];
    }
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g) res[g] = (w[0][g] + w[2][g]) + (w[1][g] + w[3][g]);
  }
  for (int g = 0; g < NQ; ++g) {
    float* out = dst + g * dst_stride;
    if (whole == dk) {
      RF_STORE16(out, res[g] * scale);
      continue;
    }
    float f[kKeyBlock];
    RF_STORE16(f, res[g]);
    F64x8 lo = {}, hi = {};
    if (whole > 0) {
      lo = __builtin_convertvector(RF_LOAD8(f), F64x8);
      hi = __builtin_convertvector(RF_LOAD8(f + 8), F64x8);
    }
    const float* yg = y + g * y_stride;
    for (int i = whole; i < dk; ++i) {
      lo += __builtin_convertvector(RF_LOAD8(kb + i * kKeyBlock) * yg[i], F64x8);
      hi += __builtin_convertvector(RF_LOAD8(kb + i * kKeyBlock + 8) * yg[i], F64x8);
    }
    RF_STORE8(out, __builtin_convertvector(lo, F32x8) * scale);
    RF_STORE8(out + 8, __builtin_convertvector(hi, F32x8) * scale);
  }
}

// Scaled q . k over F16 values for the 16 keys from `first`, kb = [dk][16] (element i of key first + c at
// kb[i * 16 + c]): query r (the F16-rounded qf + r * dk) that sees any of them (n_ctx[r] > first) gets their scores
// at scores + r * stride + first. Queries go in pairs (a pair's block is computed when one of them needs it; the
// other's row has room for it).
RF_ATTN_CLONES
void scores_f16_block(int dk, const float* kb, int64_t first, const float* qf, int n_q, const int32_t* n_ctx,
                      float scale, float* scores, int64_t stride) {
  int r = 0;
  for (; r + 2 <= n_q; r += 2) {
    if (n_ctx[r] <= first && n_ctx[r + 1] <= first) continue;
    scores_f16_keys<2>(dk, kb, qf + static_cast<int64_t>(r) * dk, dk, scale, scores + r * stride + first, stride);
  }
  if (r < n_q && n_ctx[r] > first) {
    scores_f16_keys<1>(dk, kb, qf + static_cast<int64_t>(r) * dk, dk, scale, scores + r * stride + first, stride);
  }
}

// The largest of s[0, n), n >= 1: std::max_element's value, but for the sign of a zero maximum when both signs occur,
// which cannot matter (it is used only as exp(s - max); see scores_f16_keys). With a NaN, std::max_element's answer.
// (std::max_element's loop runs a store-to-load chain per element.)
RF_ATTN_CLONES
float row_max(const float* s, int32_t n) {
  using I32x16 = int32_t __attribute__((vector_size(64)));
  float m = s[0];
  bool nan = false;
  int32_t j = 0;
  if (n >= kKeyBlock) {
    F32x16 mv = RF_LOAD16(s);
    I32x16 bad = mv != mv;
    for (j = kKeyBlock; j + kKeyBlock <= n; j += kKeyBlock) {
      const F32x16 v = RF_LOAD16(s + j);
      mv = v > mv ? v : mv;
      bad |= v != v;
    }
    for (int l = 0; l < kKeyBlock; ++l) {
      m = mv[l] > m ? mv[l] : m;
      nan = nan || bad[l] != 0;
    }
  }
  for (; j < n; ++j) {
    m = s[j] > m ? s[j] : m;
    nan = nan || s[j] != s[j];
  }
  return nan ? *std::max_element(s, s + n) : m;
}

// acc = the sum of lane c of p . V for NQ queries with the same cells (the probabilities pr + q * p_stride) over
// the NV column vectors from column d0: cell c's product, then those of cells c + 64, c + 128, ... (< n_lanes)
// added in order; 0 if no cell reaches the lane. Each V row piece is loaded once for the NQ queries.
template <int NQ, int NV>
RF_ATTN_INLINE void value_lane(int c, int dvp, int d0, const float* v, const float* pr, int64_t p_stride,
                               int32_t n_lanes, F32x16 (&acc)[NQ][NV]) {
  if (c >= n_lanes) {
#pragma GCC unroll 8
    for (int q = 0; q < NQ; ++q) {
#pragma GCC unroll 4
      for (int k = 0; k < NV; ++k) acc[q][k] = F32x16{};
    }
    return;
  }
  const float* vr = v + static_cast<int64_t>(c) * dvp + d0;
  F32x16 vk[NV];
#pragma GCC unroll 4
  for (int k = 0; k < NV; ++k) vk[k] = RF_LOAD16(vr + k * kKeyBlock);
#pragma GCC unroll 8
  for (int q = 0; q < NQ; ++q) {
#pragma GCC unroll 4
    for (int k = 0; k < NV; ++k) acc[q][k] = vk[k] * pr[q * p_stride + c];
  }
  for (int32_t j = c + kStep; j < n_lanes; j += kStep) {
    vr = v + static_cast<int64_t>(j) * dvp + d0;
#pragma GCC unroll 4
    for (int k = 0; k < NV; ++k) vk[k] = RF_LOAD16(vr + k * kKeyBlock);
#pragma GCC unroll 8
    for (int q = 0; q < NQ; ++q) {
#pragma GCC unroll 4
      for (int k = 0; k < NV; ++k) acc[q][k] += vk[k] * pr[q * p_stride + j];
    }
  }
}

template <int NQ, int NV>
RF_ATTN_INLINE void add_to(F32x16 (&x)[NQ][NV], const F32x16 (&y)[NQ][NV]) {
#pragma GCC unroll 8
  for (int q = 0; q < NQ; ++q) {
#pragma GCC unroll 4
    for (int k = 0; k < NV; ++k) x[q][k] += y[q][k];
  }
}

// The first level of the fold for NQ queries and the NV column vectors from d0: t_l = (L_l + L_(l+32)) +
// (L_(l+16) + L_(l+48)) of the lane sums L, into t[(q * 16 + l) * dvp + d0 ...] for l < 16.
template <int NQ, int NV>
RF_ATTN_INLINE void value_t(int dvp, int d0, const float* v, const float* pr, int64_t p_stride, int32_t n_lanes,
                            float* t) {
  for (int l = 0; l < kLanes; ++l) {
    F32x16 x[NQ][NV], y[NQ][NV], z[NQ][NV];
    value_lane<NQ, NV>(l, dvp, d0, v, pr, p_stride, n_lanes, x);
    value_lane<NQ, NV>(l + 2 * kLanes, dvp, d0, v, pr, p_stride, n_lanes, y);
    add_to<NQ, NV>(x, y);
    value_lane<NQ, NV>(l + kLanes, dvp, d0, v, pr, p_stride, n_lanes, y);
    value_lane<NQ, NV>(l + 3 * kLanes, dvp, d0, v, pr, p_stride, n_lanes, z);
    add_to<NQ, NV>(y, z);
    add_to<NQ, NV>(x, y);
#pragma GCC unroll 8
    for (int q = 0; q < NQ; ++q) {
#pragma GCC unroll 4
      for (int k = 0; k < NV; ++k) RF_STORE16(t + (q * kLanes + l) * static_cast<int64_t>(dvp) + d0 + k * kKeyBlock, x[q][k]);
    }
  }
}

// value_t over all columns [0, dvp): NV column vectors at a time, single ones for the rest.
template <int NQ, int NV>
RF_ATTN_INLINE void value_t_all(int dvp, const float* v, const float* pr, int64_t p_stride, int32_t n_lanes, float* t) {
  int d0 = 0;
  for (; d0 + NV * kKeyBlock <= dvp; d0 += NV * kKeyBlock) value_t<NQ, NV>(dvp, d0, v, pr, p_stride, n_lanes, t);
  for (; d0 < dvp; d0 += kKeyBlock) value_t<NQ, 1>(dvp, d0, v, pr, p_stride, n_lanes, t);
}

// probabilities . V for F16 values: v holds the tile's converted V rows at a stride of dvp floats (a multiple of
// 16; the columns past dv are 0); query r's F16-rounded probabilities over its n_ctx[r] cells (probs + r * stride)
// give out[r][0, dv). Per output element, as the reference's F16 dot over the KV view: cell j's product into lane
// j % 64 (the lane's first cell as is, later ones added), the lanes folded (lanes no cell reaches hold 0), then the
// cells past the last whole step of the view added in double. Runs of up to kValueQueries queries with the same
// cells (a token's query heads) share the V loads. t: scratch of kValueQueries x 16 x dvp floats.
constexpr int kValueQueries = 8;
RF_ATTN_CLONES
void values_f16_rows(int dv, int dvp, const float* v, int n_q, const int32_t* n_ctx, const float* probs,
                     int64_t stride, float* t, float* const* out) {
  for (int r = 0; r < n_q;) {
    const int32_t n = n_ctx[r];
    int run = 1;
    while (run < kValueQueries && r + run < n_q && n_ctx[r + run] == n) ++run;
    const int nq = run >= 8 ? 8 : run >= 4 ? 4 : run >= 2 ? 2 : 1;
    const int32_t n_view = (n + kKvPad - 1) / kKvPad * kKvPad;
    const int32_t n_lanes = std::min(n, n_view - n_view % kStep);
    const float* pr = probs + r * stride;
    if (n_lanes > 0) {
      switch (nq) {
        case 8: value_t_all<8, 1>(dvp, v, pr, stride, n_lanes, t); break;
        case 4: value_t_all<4, 2>(dvp, v, pr, stride, n_lanes, t); break;
        case 2: value_t_all<2, 4>(dvp, v, pr, stride, n_lanes, t); break;
        default: value_t_all<1, 4>(dvp, v, pr, stride, n_lanes, t); break;
      }
    }
    for (int q = 0; q < nq; ++q) {
      const float* tq = t + static_cast<int64_t>(q) * kLanes * dvp;
      const float* pq = pr + q * stride;
      for (int d0 = 0; d0 < dv; d0 += kKeyBlock) {
        F32x16 folded = {};
        if (n_lanes > 0) {  // fold16 of t_0 .. t_15: u_l = t_l + t_(l+8), w_l = u_l + u_(l+4), (w0 + w2) + (w1 + w3)
          F32x16 w[4];
#pragma GCC unroll 4
          for (int l = 0; l < 4; ++l) {
            const auto tl = [&](int i) { return tq + static_cast<int64_t>(i) * dvp + d0; };
            w[l] = (RF_LOAD16(tl(l)) + RF_LOAD16(tl(l + 8))) + (RF_LOAD16(tl(l + 4)) + RF_LOAD16(tl(l + 12)));
          }
          folded = (w[0] + w[2]) + (w[1] + w[3]);
        }
        float f[kKeyBlock];
        RF_STORE16(f, folded);
        if (n_lanes < n) {
          F64x8 lo = {}, hi = {};
          if (n_lanes > 0) {
            lo = __builtin_convertvector(RF_LOAD8(f), F64x8);
            hi = __builtin_convertvector(RF_LOAD8(f + 8), F64x8);
          }
          for (int32_t j = n_lanes; j < n; ++j) {
            lo += __builtin_convertvector(RF_LOAD8(v + static_cast<int64_t>(j) * dvp + d0) * pq[j], F64x8);
            hi += __builtin_convertvector(RF_LOAD8(v + static_cast<int64_t>(j) * dvp + d0 + 8) * pq[j], F64x8);
          }
          RF_STORE8(f, __builtin_convertvector(lo, F32x8));
          RF_STORE8(f + 8, __builtin_convertvector(hi, F32x8));
        }
        std::memcpy(out[r + q] + d0, f, static_cast<size_t>(std::min(kKeyBlock, dv - d0)) * sizeof(float));
      }
    }
    r += nq;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// glibc's expf as x86-64 glibc (>= 2.28) runs it on CPUs with AVX2 and FMA (__expf_fma), 8 lanes at once: the same
// double operations in the same order (x * 32 / ln 2 split into k + r by adding 1.5 * 2^52, 2^(k/32) from a
// 32-entry table of 2^(i/32) with k / 32 added to its exponent, a cubic in r), fused exactly where that build
// fuses them, so the same bits wherever it takes its main path (|x| < 88); other lanes go to std::exp. Used only
// where a check against std::exp passes (exp_fma_usable), else std::exp does it all.
constexpr uint64_t kExpTable[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540};
constexpr uint64_t kExpInvLn2N = 0x40471547652b82fe;  // 32 / ln 2
constexpr uint64_t kExpShift = 0x4338000000000000;    // 1.5 * 2^52
constexpr uint64_t kExpC0 = 0x3ebc6af84b912394, kExpC1 = 0x3f2ebfce50fac4f3, kExpC2 = 0x3f962e42ff0c52d6;

__attribute__((target("avx2,fma"))) inline __m256d exp_const(uint64_t u) {
  return _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(u)));
}

__attribute__((target("avx2,fma"))) __m128 exp_fma4(__m128 x) {
  const __m256d xd = _mm256_cvtps_pd(x);
  __m256d kd = _mm256_fmadd_pd(exp_const(kExpInvLn2N), xd, exp_const(kExpShift));
  const __m256i ki = _mm256_castpd_si256(kd);
  kd = _mm256_sub_pd(kd, exp_const(kExpShift));
  const __m256d r = _mm256_fmsub_pd(exp_const(kExpInvLn2N), xd, kd);
  const __m256i t =
      _mm256_add_epi64(_mm256_i64gather_epi64(reinterpret_cast<const long long*>(kExpTable),
                                              _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8),
                       _mm256_slli_epi64(ki, 47));
  const __m256d z = _mm256_fmadd_pd(r, exp_const(kExpC0), exp_const(kExpC1));
  const __m256d r2 = _mm256_mul_pd(r, r);
  __m256d y = _mm256_fmadd_pd(r, exp_const(kExpC2), _mm256_set1_pd(1.0));
  y = _mm256_fmadd_pd(z, r2, y);
  return _mm256_cvtpd_ps(_mm256_mul_pd(y, _mm256_castsi256_pd(t)));
}

// s[j] = exp(s[j] - max) for j < n.
__attribute__((target("avx2,fma"))) void exp_shifted_fma(float* s, int32_t n, float max) {
  const __m256 vmax = _mm256_set1_ps(max);
  int32_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_sub_ps(_mm256_loadu_ps(s + j), vmax);
    const __m256i abstop =
        _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(x), 20), _mm256_set1_epi32(0x7ff));
    const int special =
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(abstop, _mm256_set1_epi32(0x42a))));
    const __m256 e = _mm256_set_m128(exp_fma4(_mm256_extractf128_ps(x, 1)), exp_fma4(_mm256_castps256_ps128(x)));
    if (special == 0) {
      _mm256_storeu_ps(s + j, e);
      continue;
    }
    float xs[8];
    _mm256_storeu_ps(xs, x);
    _mm256_storeu_ps(s + j, e);
    for (int l = 0; l < 8; ++l) {
      if (special & (1 << l)) s[j + l] = std::exp(xs[l]);
    }
  }
  for (; j < n; ++j) s[j] = std::exp(s[j] - max);
}

// Whether exp_shifted_fma can stand in for std::exp here: the CPU has AVX2 and FMA, and the two agree bit for bit
// on a sweep of [-90, 1] (every 1/1024, which crosses every table entry and the special-case bounds) and on
// 2^16 pseudo-random values of [-88, 0] (checked once).
bool exp_fma_usable() {
  static const bool usable = [] {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return false;
    std::vector<float> x;
    for (int k = -90 * 1024; k <= 1024; ++k) x.push_back(static_cast<float>(k) / 1024.0f);
    uint32_t state = 12345;
    for (int i = 0; i < 1 << 16; ++i) {
      state = state * 1664525u + 1013904223u;
      x.push_back(-88.0f * static_cast<float>(state >> 8) / static_cast<float>(1u << 24));
    }
    for (float v : {0.0f, -0.0f, -87.999f, -88.0f, -103.5f, -104.0f, -INFINITY, NAN}) x.push_back(v);
    std::vector<float> got = x;
    exp_shifted_fma(got.data(), static_cast<int32_t>(got.size()), 0.0f);
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = std::exp(x[i] - 0.0f);
      if (std::memcmp(&want, &got[i], sizeof(float)) != 0) return false;
    }
    return true;
  }();
  return usable;
}
#endif

// s[j] = exp(s[j] - max); returns their sum as the reference's soft max forms it: 16-element chunks folded in
// float, added in double (the masked cells of the view add zeros). Its exp is a vectorised approximation within
// ~1.5 ulp of expf; this one is the C library's (or exp_shifted_fma, its equal).
double exp_sum(float* s, int32_t n, float max) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (exp_fma_usable()) {
    exp_shifted_fma(s, n, max);
  } else {
    for (int32_t j = 0; j < n; ++j) s[j] = std::exp(s[j] - max);
  }
#else
  for (int32_t j = 0; j < n; ++j) s[j] = std::exp(s[j] - max);
#endif
  double sum = 0.0;
  for (int32_t c = 0; c < n; c += kLanes) {
    float e[kLanes] = {};
    for (int l = 0; l < kLanes && c + l < n; ++l) e[l] = s[c + l];
    sum += static_cast<double>(fold16(e));
  }
  return sum;
}

}  // namespace

void CpuBackend::rms_norm(Tensor out, Tensor x, Tensor weight, float eps) {
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == x.ne1 && (weight.empty() || weight.ne0 == x.ne0));
  RF_CHECK(weight.empty() || weight.type == quant::Type::F32);
  const auto* w = static_cast<const float*>(weight.data);
  pool_.parallel_for(x.ne1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = row_f32(x, r);
      float* o = row_f32(out, r);
      double sum = 0.0;
      for (int64_t i = 0; i < x.ne0; ++i) sum += static_cast<double>(xr[i] * xr[i]);
      const float mean = static_cast<float>(sum / static_cast<double>(x.ne0));
      const float scale = 1.0f / std::sqrt(mean + eps);
      for (int64_t i = 0; i < x.ne0; ++i) o[i] = w ? (xr[i] * scale) * w[i] : xr[i] * scale;
    }
  });
}

void CpuBackend::add(Tensor out, Tensor a, Tensor b) {
  RF_CHECK(a.ne0 == b.ne0 && out.ne0 == a.ne0 && out.ne1 == a.ne1 && (b.ne1 == a.ne1 || b.ne1 == 1));
  RF_CHECK(b.type == quant::Type::F32);
  pool_.parallel_for(a.ne1, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const float* ar = row_f32(a, r);
      const float* br = row_f32(b, b.ne1 == 1 ? 0 : r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < a.ne0; ++i) o[i] = ar[i] + br[i];
    }
  });
}

void CpuBackend::silu_mul(Tensor out, Tensor gate, Tensor up) {
  RF_CHECK(gate.ne0 == up.ne0 && gate.ne1 == up.ne1 && out.ne0 == gate.ne0 && out.ne1 == gate.ne1);
  pool_.parallel_for(gate.ne1, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const float* g = row_f32(gate, r);
      const float* u = row_f32(up, r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < gate.ne0; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }
  });
}

void CpuBackend::sigmoid_scale(Tensor out, Tensor x, Tensor gate) {
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == x.ne1 && gate.ne0 == 1 && gate.ne1 == x.ne1);
  RF_CHECK(gate.type == quant::Type::F32);
  pool_.parallel_for(x.ne1, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const float s = 1.0f / (1.0f + std::exp(-row_f32(gate, r)[0]));
      const float* xr = row_f32(x, r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < x.ne0; ++i) o[i] = xr[i] * s;
    }
  });
}

void CpuBackend::rope(Tensor x, const DeviceBatch& batch, const RopeParams& p) {
  RF_CHECK(x.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim && x.ne1 == batch.n_tokens());
  RF_CHECK(p.n_rot > 0 && p.n_rot <= p.head_dim && p.n_rot % 2 == 0);
  RF_CHECK(p.freq_factors.empty() || p.freq_factors.ne0 >= p.n_rot / 2);
  RF_CHECK(p.ext_factor == 0.0f || p.n_ctx_orig > 0);
  const auto* ff = static_cast<const float*>(p.freq_factors.data);
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  const int half = p.n_rot / 2;
  const bool yarn = p.ext_factor != 0.0f;
  const YarnRange range = yarn ? yarn_range(p.n_rot, p.n_ctx_orig, p.freq_base, p.beta_fast, p.beta_slow) : YarnRange{};
  pool_.parallel_for(x.ne1, [&](int64_t b, int64_t e, int thread) {
    std::vector<float>& cs = scratch_[static_cast<size_t>(thread)];
    cs.resize(static_cast<size_t>(p.n_rot));
    for (int64_t t = b; t < e; ++t) {
      // cos/sin per frequency i: theta_i = pos * base^(-2i/n_rot) (advanced by repeated multiplication),
      // divided by the frequency factor and scaled by freq_scale; with YaRN, blended back towards the unscaled
      // angle by the ramp. cos and sin are multiplied by attn_factor.
      float theta = static_cast<float>(batch.host().positions[static_cast<size_t>(t)]);
      for (int i = 0; i < half; ++i) {
        const float th_extrap = ff ? theta / ff[i] : theta;
        float th = p.freq_scale * th_extrap;
        if (yarn) {
          const float mix = yarn_ramp(range, i) * p.ext_factor;
          th = th * (1.0f - mix) + th_extrap * mix;
        }
        cs[2 * i] = std::cos(th) * p.attn_factor;
        cs[2 * i + 1] = std::sin(th) * p.attn_factor;
        theta *= theta_scale;
      }
      float* row = row_f32(x, t);
      for (int h = 0; h < p.n_head; ++h) {
        float* v = row + static_cast<int64_t>(h) * p.head_dim;
        for (int i = 0; i < half; ++i) {
          const int i0 = p.mode == RopeMode::kNeox ? i : 2 * i;
          const int i1 = p.mode == RopeMode::kNeox ? i + half : 2 * i + 1;
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const float a0 = v[i0], a1 = v[i1];
          v[i0] = a0 * c - a1 * s;
          v[i1] = a0 * s + a1 * c;
        }
      }
    }
  });
}

void CpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, const DeviceBatch& batch) {
  const Batch& b = batch.host();
  RF_CHECK(k.ne0 == k_cache.ne0 && v.ne0 == v_cache.ne0 && k.ne1 == b.n_tokens() && v.ne1 == b.n_tokens());
  for (int64_t t = 0; t < b.n_tokens(); ++t) {
    const int64_t slot = kv_slot(b, b.seq[static_cast<size_t>(t)], b.positions[static_cast<size_t>(t)]);
    RF_CHECK(slot < k_cache.ne1 && slot < v_cache.ne1);
    for (auto [cache, src] : {std::pair{k_cache, k}, std::pair{v_cache, v}}) {
      auto* dst = static_cast<uint8_t*>(cache.data) + slot * cache.nb1;
      const float* s = row_f32(src, t);
      if (cache.type == quant::Type::F16) {
        auto* h = reinterpret_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < src.ne0; ++i) h[i] = fp32_to_fp16(s[i]);
      } else {
        RF_CHECK(cache.type == quant::Type::F32);
        std::memcpy(dst, s, static_cast<size_t>(src.ne0) * sizeof(float));
      }
    }
  }
}

void CpuBackend::attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const DeviceBatch& batch,
                           const AttentionParams& p) {
  const Batch& b = batch.host();
  RF_CHECK(p.n_head > 0 && p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0);
  RF_CHECK(q.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim_k && q.ne1 == b.n_tokens());
  RF_CHECK(out.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim_v && out.ne1 == b.n_tokens());
  RF_CHECK(k_cache.ne0 == static_cast<int64_t>(p.n_head_kv) * p.head_dim_k);
  RF_CHECK(v_cache.ne0 == static_cast<int64_t>(p.n_head_kv) * p.head_dim_v);
  RF_CHECK((k_cache.type == quant::Type::F16 || k_cache.type == quant::Type::F32) &&
           (v_cache.type == quant::Type::F16 || v_cache.type == quant::Type::F32));
  const int group = p.n_head / p.n_head_kv;
  const bool f16_keys = k_cache.type == quant::Type::F16;
  const bool f16_values = v_cache.type == quant::Type::F16;
  const ActKernels& f16 = table_->for_act(quant::Type::F16);  // exact F16 <-> F32 row conversions
  const int dk = p.head_dim_k, dv = p.head_dim_v;
  const int dvp = (dv + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const int64_t n_tokens = b.n_tokens();
  if (n_tokens == 0) return;
  // Tiles: the batch's tokens grouped by sequence (batch order within one), cut into runs of up to `tile` tokens.
  // One job per (tile, KV head) converts each K / V row it reads once for all the tile's queries (its tokens x the
  // group's query heads). Every query's sums are those of the per-query order, so the tiling changes no bit. Tiles
  // are as long as leaves a few jobs per thread and the scores within ~kTileFloats; the most expensive go first,
  // as the pool's threads claim contiguous job ranges in order.
  int32_t max_ctx_all = 0;
  for (int32_t pos : b.positions) max_ctx_all = std::max(max_ctx_all, pos + 1);
  constexpr int64_t kTileTokens = 16, kTileFloats = int64_t{1} << 17;
  const int64_t jobs_wanted = 4 * static_cast<int64_t>(pool_.size());
  const int64_t tile = std::clamp(std::min((n_tokens * p.n_head_kv + jobs_wanted - 1) / jobs_wanted,
                                           kTileFloats / (int64_t{group} * (max_ctx_all + kKeyBlock + dk))),
                                  int64_t{1}, kTileTokens);
  std::vector<int64_t> order(static_cast<size_t>(n_tokens));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return b.seq[static_cast<size_t>(x)] < b.seq[static_cast<size_t>(y)]; });
  struct Tile {
    int64_t begin, end;  // in `order`
    int64_t cost;
  };
  std::vector<Tile> tiles;
  for (int64_t i = 0; i < n_tokens; ++i) {
    const int64_t t = order[static_cast<size_t>(i)];
    if (tiles.empty() || tiles.back().end - tiles.back().begin == tile ||
        b.seq[static_cast<size_t>(order[static_cast<size_t>(tiles.back().begin)])] != b.seq[static_cast<size_t>(t)]) {
      tiles.push_back({i, i, 0});
    }
    tiles.back().end = i + 1;
    tiles.back().cost = std::max<int64_t>(tiles.back().cost, b.positions[static_cast<size_t>(t)] + 1);
  }
  for (Tile& tl : tiles) tl.cost *= tl.end - tl.begin;
  std::stable_sort(tiles.begin(), tiles.end(), [](const Tile& x, const Tile& y) { return x.cost > y.cost; });

  pool_.parallel_for(static_cast<int64_t>(tiles.size()) * p.n_head_kv, [&](int64_t begin, int64_t end, int thread) {
    std::vector<float>& buf = scratch_[static_cast<size_t>(thread)];
    std::vector<uint16_t>& buf16 = scratch16_[static_cast<size_t>(thread)];
    std::vector<int32_t> n_ctx;
    std::vector<float*> out_rows;
    for (int64_t job = begin; job < end; ++job) {
      const Tile& tl = tiles[static_cast<size_t>(job / p.n_head_kv)];
      const int hk = static_cast<int>(job % p.n_head_kv);
      const int n_tok = static_cast<int>(tl.end - tl.begin);
      const int n_q = n_tok * group;  // query r: token r / group of the tile, query head hk * group + r % group
      const int32_t seq = b.seq[static_cast<size_t>(order[static_cast<size_t>(tl.begin)])];
      n_ctx.resize(static_cast<size_t>(n_q));
      out_rows.resize(static_cast<size_t>(n_q));
      int32_t max_ctx = 0;
      for (int r = 0; r < n_q; ++r) {
        const int64_t t = order[static_cast<size_t>(tl.begin + r / group)];
        n_ctx[static_cast<size_t>(r)] = b.positions[static_cast<size_t>(t)] + 1;
        out_rows[static_cast<size_t>(r)] = row_f32(out, t) + (static_cast<int64_t>(hk) * group + r % group) * dv;
        max_ctx = std::max(max_ctx, n_ctx[static_cast<size_t>(r)]);
      }
      const int64_t n_blocks = (max_ctx + kKeyBlock - 1) / kKeyBlock;
      const int64_t stride = n_blocks * kKeyBlock;
      // scores [n_q][stride] | queries [n_q][dk] | 16 F16 keys [dk][16] | F16 V rows [max_ctx][dvp]
      // | V lane sums ([kValueQueries][16][dvp] or [kStep][dv]) | one row [max(dk, dv)]
      const int64_t kt_size = f16_keys ? int64_t{kKeyBlock} * dk : 0;
      const int64_t v_size = f16_values ? static_cast<int64_t>(max_ctx) * dvp : 0;
      const int64_t lanes_size = std::max(int64_t{kValueQueries} * kLanes * dvp, int64_t{kStep} * dv);
      buf.resize(static_cast<size_t>(n_q * (stride + dk) + kt_size + v_size + lanes_size + std::max(dk, dv)));
      float* scores = buf.data();
      float* qf = scores + n_q * stride;
      float* kt = qf + static_cast<int64_t>(n_q) * dk;
      float* vbuf = kt + kt_size;
      float* lanes = vbuf + v_size;
      float* row = lanes + lanes_size;
      buf16.resize(static_cast<size_t>(std::max(static_cast<int64_t>(group) * dk, stride)));
      // The queries, rounded to F16 for F16 keys (llama.cpp converts them to the keys' type).
      for (int ti = 0; ti < n_tok; ++ti) {
        const float* qsrc = row_f32(q, order[static_cast<size_t>(tl.begin + ti)]) + static_cast<int64_t>(hk) * group * dk;
        float* qdst = qf + static_cast<int64_t>(ti) * group * dk;
        if (f16_keys) {
          f16.quantize(qsrc, buf16.data(), static_cast<int64_t>(group) * dk);
          f16.dequantize(buf16.data(), qdst, static_cast<int64_t>(group) * dk);
        } else {
          std::memcpy(qdst, qsrc, static_cast<size_t>(group) * dk * sizeof(float));
        }
      }
      const auto k_row = [&](int32_t j) {
        return static_cast<const uint8_t*>(k_cache.data) + kv_slot(b, seq, j) * k_cache.nb1 +
               static_cast<size_t>(hk) * dk * (f16_keys ? 2 : 4);
      };
      const auto v_row = [&](int32_t j) {
        return static_cast<const uint8_t*>(v_cache.data) + kv_slot(b, seq, j) * v_cache.nb1 +
               static_cast<size_t>(hk) * dv * (f16_values ? 2 : 4);
      };
      if (f16_keys) {  // 16 keys at a time converted (each once per tile) and transposed, then scored
        for (int64_t first = 0; first < stride; first += kKeyBlock) {
          for (int c = 0; c < kKeyBlock; ++c) {
            const int32_t j = static_cast<int32_t>(first) + c;
            if (j < max_ctx) {
              f16.dequantize(k_row(j), row, dk);
            } else {
              std::fill(row, row + dk, 0.0f);  // past the context
            }
            for (int i = 0; i < dk; ++i) kt[i * kKeyBlock + c] = row[i];
          }
          scores_f16_block(dk, kt, first, qf, n_q, n_ctx.data(), p.scale, scores, stride);
        }
      } else {
        for (int32_t j = 0; j < max_ctx; ++j) {
          const auto* k = reinterpret_cast<const float*>(k_row(j));
          for (int r = 0; r < n_q; ++r) {
            if (j >= n_ctx[static_cast<size_t>(r)]) continue;
            scores[r * stride + j] = table_->dot_f32(dk, qf + static_cast<int64_t>(r) * dk, k) * p.scale;
          }
        }
      }
      // Probabilities: exp(score - max) * (1 / sum), rounded to F16 for an F16 V cache (llama.cpp multiplies the
      // V cache by them converted to its type).
      for (int r = 0; r < n_q; ++r) {
        float* sr = scores + r * stride;
        const int32_t n = n_ctx[static_cast<size_t>(r)];
        const float inv = static_cast<float>(1.0 / exp_sum(sr, n, row_max(sr, n)));
        for (int32_t j = 0; j < n; ++j) sr[j] *= inv;
        if (f16_values) {
          f16.quantize(sr, buf16.data(), n);
          f16.dequantize(buf16.data(), sr, n);
        }
      }
      if (f16_values) {
        for (int32_t j = 0; j < max_ctx; ++j) {
          float* dst = vbuf + static_cast<int64_t>(j) * dvp;
          f16.dequantize(v_row(j), dst, dv);
          std::fill(dst + dv, dst + dvp, 0.0f);
        }
        values_f16_rows(dv, dvp, vbuf, n_q, n_ctx.data(), scores, stride, lanes, out_rows.data());
        continue;
      }
      // F32 values, per query: cell j's products into lane j % kStep (the first cell of a lane as is, later ones by
      // the table's axpy, fused where it can), the lanes folded, then the tail cells added in double.
      for (int r = 0; r < n_q; ++r) {
        const int32_t n = n_ctx[static_cast<size_t>(r)];
        const int32_t n_view = (n + kKvPad - 1) / kKvPad * kKvPad;
        const int32_t n_lanes = std::min(n, n_view - n_view % kStep);
        const float* pr = scores + r * stride;
        if (n_lanes > 0 && n_lanes < kStep) {  // lanes no cell sets
          std::fill(lanes + static_cast<int64_t>(n_lanes) * dv, lanes + static_cast<int64_t>(kStep) * dv, 0.0f);
        }
        for (int32_t j = 0; j < n_lanes; ++j) {
          const auto* v = reinterpret_cast<const float*>(v_row(j));
          float* lane = lanes + static_cast<int64_t>(j % kStep) * dv;
          if (j < kStep) {
            for (int d = 0; d < dv; ++d) lane[d] = pr[j] * v[d];
          } else {
            table_->axpy_f32(dv, pr[j], v, lane);
          }
        }
        if (n_lanes > 0) fold_step_rows(lanes, dv);
        float* o = out_rows[static_cast<size_t>(r)];
        for (int d = 0; d < dv; ++d) {
          double sum = n_lanes > 0 ? lanes[d] : 0.0;
          for (int32_t j = n_lanes; j < n; ++j) {
            sum += static_cast<double>(pr[j] * reinterpret_cast<const float*>(v_row(j))[d]);
          }
          o[d] = static_cast<float>(sum);
        }
      }
    }
  });
}

void CpuBackend::moe_route(Tensor ids, Tensor weights, Tensor logits, bool normalize) {
  const int64_t n_used = ids.ne0;
  const int64_t n_expert = logits.ne0;
  RF_CHECK(ids.type == quant::Type::I32 && weights.ne0 == n_used && ids.ne1 == logits.ne1 &&
           weights.ne1 == logits.ne1 && n_used <= n_expert);
  std::vector<float> probs(static_cast<size_t>(n_expert));
  std::vector<int32_t> order(static_cast<size_t>(n_expert));
  for (int64_t t = 0; t < logits.ne1; ++t) {
    const float* l = row_f32(logits, t);
    const float mx = *std::max_element(l, l + n_expert);
    double sum = 0.0;
    for (int64_t e = 0; e < n_expert; ++e) sum += (probs[static_cast<size_t>(e)] = std::exp(l[e] - mx));
    for (auto& pr : probs) pr = static_cast<float>(pr / sum);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t c) { return probs[a] > probs[c]; });
    auto* id_row = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(ids.data) + t * ids.nb1);
    float* w_row = row_f32(weights, t);
    float wsum = 0.0f;
    for (int64_t j = 0; j < n_used; ++j) {
      id_row[j] = order[static_cast<size_t>(j)];
      w_row[j] = probs[static_cast<size_t>(order[static_cast<size_t>(j)])];
      wsum += w_row[j];
    }
    if (normalize) {
      for (int64_t j = 0; j < n_used; ++j) w_row[j] /= wsum;
    }
  }
}

void CpuBackend::moe_combine(Tensor out, Tensor expert_out, Tensor weights) {
  const int64_t n_used = weights.ne0;
  RF_CHECK(expert_out.ne1 == n_used * out.ne1 && expert_out.ne0 == out.ne0 && weights.ne1 == out.ne1);
  pool_.parallel_for(out.ne1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* o = row_f32(out, t);
      const float* w = row_f32(weights, t);
      for (int64_t j = 0; j < n_used; ++j) {
        const float* x = row_f32(expert_out, t * n_used + j);
        for (int64_t i = 0; i < out.ne0; ++i) o[i] = j == 0 ? x[i] * w[j] : o[i] + x[i] * w[j];
      }
    }
  });
}

}  // namespace rf::backend::cpu
