// K-quant quantization: per 256-element super-block, fit every sub-block with a scale search
// (kquant_search.h), quantize the sub-block scales (and mins) against one F16 super-scale, then re-fit the
// codes to the scales as actually stored. Follows ggml's reference quantizers (the ones llama-quantize uses
// without an importance matrix), so our files match llama.cpp's.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "quant/block_bytes.h"
#include "quant/formats.h"
#include "quant/kquant_layout.h"
#include "quant/kquant_search.h"

namespace rf::quant {
namespace {

using namespace kq;  // NOLINT(google-build-using-namespace): layout constants and searches

int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Q2_K / Q3_K code packing: byte l of each 32-byte group holds elements l, l+32, l+64, l+96 of its half.
void pack_two_bits(const uint8_t* L, uint8_t* qs) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = L + 128 * half;
    for (int l = 0; l < 32; ++l) {
      qs[32 * half + l] = static_cast<uint8_t>(q[l] | (q[l + 32] << 2) | (q[l + 64] << 4) | (q[l + 96] << 6));
    }
  }
}

void quant_q2_k(const float* x, uint8_t* b) {
  uint8_t L[kQk];
  float scales[16];
  float mins[16];
  float weights[16];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = fit_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* sc = b + kQ2Scales;
  if (max_scale > 0.0f) {
    const float iscale = 15.0f / max_scale;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(round_even(iscale * scales[j]));
    store_f16(b + kQ2D, max_scale / 15.0f);
  } else {
    std::memset(sc, 0, 16);
    store_f16(b + kQ2D, 0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = 15.0f / max_min;
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(sc[j] | (round_even(iscale * mins[j]) << 4));
    store_f16(b + kQ2Dmin, max_min / 15.0f);
  } else {
    store_f16(b + kQ2Dmin, 0.0f);
  }
  const float d_all = load_f16(b + kQ2D);
  const float m_all = load_f16(b + kQ2Dmin);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc[j] & 0x0F);
    if (d == 0.0f) continue;
    const float dm = m_all * static_cast<float>(sc[j] >> 4);
    for (int l = 0; l < 16; ++l) {
      L[16 * j + l] = static_cast<uint8_t>(clampi(round_even((x[16 * j + l] + dm) / d), 0, 3));
    }
  }
  pack_two_bits(L, b + kQ2Qs);
}

void quant_q3_k(const float* x, uint8_t* b) {
  int8_t L[kQk];
  float scales[16];
  float max_scale = 0.0f;
  float amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_symmetric_refined(16, 4, x + 16 * j, L + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  uint8_t* sc = b + kQ3Scales;
  std::memset(sc, 0, 12);
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < 16; ++j) pack_q3_scale(sc, j, clampi(round_even(iscale * scales[j]), -32, 31) + 32);
    store_f16(b + kQ3D, 1.0f / iscale);
  } else {
    store_f16(b + kQ3D, 0.0f);
  }
  const float d_all = load_f16(b + kQ3D);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(unpack_q3_scale(sc, j) - 32);
    if (d == 0.0f) continue;
    for (int l = 0; l < 16; ++l) {
      L[16 * j + l] = static_cast<int8_t>(clampi(round_even(x[16 * j + l] / d), -4, 3) + 4);
    }
  }
  // Codes 0..7: bit 2 goes to hmask (bit e/32 of byte e%32), bits 0-1 to qs.
  uint8_t* hmask = b + kQ3Hmask;
  std::memset(hmask, 0, 32);
  uint8_t low[kQk];
  for (int e = 0; e < kQk; ++e) {
    if (L[e] > 3) hmask[e % 32] = static_cast<uint8_t>(hmask[e % 32] | (1 << (e / 32)));
    low[e] = static_cast<uint8_t>(L[e] & 3);
  }
  pack_two_bits(low, b + kQ3Qs);
}

// Q4_K (4-bit codes) and Q5_K (5-bit codes): 8 sub-blocks of 32 with 6-bit scales and mins.
void quant_q45_k(const float* x, bool five_bit, uint8_t* b) {
  const int nmax = five_bit ? 31 : 15;
  uint8_t L[kQk];
  float scales[8];
  float mins[8];
  float weights[32];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = five_bit ? fit_affine(32, nmax, xs, weights, L + 32 * j, &mins[j], -0.5f, 0.1f, 15, false)
                         : fit_affine(32, nmax, xs, weights, L + 32 * j, &mins[j], -1.0f, 0.1f, 20, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  uint8_t* sc = b + kQ4Scales;
  std::memset(sc, 0, 12);
  for (int j = 0; j < 8; ++j) {
    // A negative fit wraps like the unsigned byte it is stored in, then saturates at 63.
    const int ls = std::min<int>(63, static_cast<uint8_t>(round_even(inv_scale * scales[j])));
    const int lm = std::min<int>(63, static_cast<uint8_t>(round_even(inv_min * mins[j])));
    pack_scale_min(sc, j, ls, lm);
  }
  store_f16(b + kQ4D, max_scale / 63.0f);
  store_f16(b + kQ4Dmin, max_min / 63.0f);
  const float d_all = load_f16(b + kQ4D);
  const float m_all = load_f16(b + kQ4Dmin);
  for (int j = 0; j < 8; ++j) {
    int ls = 0;
    int lm = 0;
    unpack_scale_min(sc, j, &ls, &lm);
    const float d = d_all * static_cast<float>(ls);
    if (d == 0.0f) continue;
    const float dm = m_all * static_cast<float>(lm);
    for (int l = 0; l < 32; ++l) {
      L[32 * j + l] = static_cast<uint8_t>(clampi(round_even((x[32 * j + l] + dm) / d), 0, nmax));
    }
  }
  uint8_t* qs = b + (five_bit ? kQ5Qs : kQ4Qs);
  if (five_bit) std::memset(b + kQ5Qh, 0, 32);
  for (int e = 0; e < kQk; ++e) {
    const int chunk = e / 64, r = e % 64;
    uint8_t& byte = qs[32 * chunk + r % 32];
    const int low = L[e] & 0x0F;
    byte = static_cast<uint8_t>(r < 32 ? low : (byte | (low << 4)));
    if (five_bit && L[e] > 15) b[kQ5Qh + e % 32] = static_cast<uint8_t>(b[kQ5Qh + e % 32] | (1 << (e / 32)));
  }
}

void quant_q6_k(const float* x, uint8_t* b) {
  int8_t L[kQk];
  float scales[16];
  float max_scale = 0.0f;
  float max_abs_scale = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
    if (std::fabs(scales[j]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  if (max_abs_scale < 1e-15f) {
    std::memset(b, 0, 210);
    return;
  }
  const float iscale = -128.0f / max_scale;
  store_f16(b + kQ6D, 1.0f / iscale);
  auto* sc = reinterpret_cast<int8_t*>(b + kQ6Scales);
  for (int j = 0; j < 16; ++j) sc[j] = static_cast<int8_t>(std::min(127, round_even(iscale * scales[j])));
  const float d_all = load_f16(b + kQ6D);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(sc[j]);
    if (d == 0.0f) continue;
    for (int l = 0; l < 16; ++l) {
      L[16 * j + l] = static_cast<int8_t>(clampi(round_even(x[16 * j + l] / d), -32, 31) + 32);
    }
  }
  // Inverse of the layout described in kquant_dequant.cpp (dequant_q6_k).
  std::memset(b + kQ6Ql, 0, 192);
  for (int e = 0; e < kQk; ++e) {
    const int h = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const int q = L[e];
    uint8_t& lo = b[kQ6Ql + 64 * h + l + 32 * (k & 1)];
    lo = static_cast<uint8_t>(lo | ((q & 0x0F) << (k < 2 ? 0 : 4)));
    uint8_t& hi = b[kQ6Qh + 32 * h + l];
    hi = static_cast<uint8_t>(hi | ((q >> 4) << (2 * k)));
  }
}

// Q8_K: one float scale, the extreme value maps to -127, plus the sum of each 16 codes.
void quant_q8_k(const float* x, uint8_t* b) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int e = 0; e < kQk; ++e) {
    if (std::fabs(x[e]) > amax) {
      amax = std::fabs(x[e]);
      max = x[e];
    }
  }
  auto* qs = reinterpret_cast<int8_t*>(b + kQ8Qs);
  if (amax == 0.0f) {
    std::memset(b, 0, 292);
    return;
  }
  const float iscale = -127.0f / max;
  for (int e = 0; e < kQk; ++e) qs[e] = static_cast<int8_t>(clampi(round_even(iscale * x[e]), -128, 127));
  for (int j = 0; j < 16; ++j) {
    int sum = 0;
    for (int l = 0; l < 16; ++l) sum += qs[16 * j + l];
    const auto s = static_cast<int16_t>(sum);
    std::memcpy(b + kQ8Bsums + 2 * j, &s, 2);
  }
  store_f32(b + kQ8D, 1.0f / iscale);
}

}  // namespace

bool can_quantize_kquant(Type t) {
  switch (t) {
    case Type::Q2_K:
    case Type::Q3_K:
    case Type::Q4_K:
    case Type::Q5_K:
    case Type::Q6_K:
    case Type::Q8_K:
      return true;
    default:
      return false;
  }
}

Status quantize_kquant(Type t, const float* src, void* dst, int64_t n) {
  if (!can_quantize_kquant(t)) {
    return Status::error("quant: quantize: " + std::string(type_name(t)) + " is not a K-quant type");
  }
  auto* b = static_cast<uint8_t*>(dst);
  const size_t bytes = traits(t).block_bytes;
  for (int64_t i = 0; i < n / kQk; ++i, b += bytes, src += kQk) {
    switch (t) {
      case Type::Q2_K:
        quant_q2_k(src, b);
        break;
      case Type::Q3_K:
        quant_q3_k(src, b);
        break;
      case Type::Q4_K:
        quant_q45_k(src, false, b);
        break;
      case Type::Q5_K:
        quant_q45_k(src, true, b);
        break;
      case Type::Q6_K:
        quant_q6_k(src, b);
        break;
      default:
        quant_q8_k(src, b);
        break;  // Q8_K
    }
  }
  return ok_status();
}

}  // namespace rf::quant
