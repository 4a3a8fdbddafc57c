// IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear level table (kIq4nlValues) times a scale.
// Quantization picks, per 32-element block, the scale that minimises the x^2-weighted squared error over a small
// set of candidate scales (the index of each element is then the nearest level), as the formats were designed for.
#include <array>
#include <cmath>
#include <cstring>

#include "quant/block_bytes.h"
#include "quant/iq_grids.h"
#include "quant/iq_internal.h"

namespace rf::quant::iq {
namespace {

constexpr int kBlock = 32;
constexpr int kSearchSteps = 7;  // candidate scales on each side of the max-anchored one
constexpr float kZeroBlock = 1e-15f;

// Twice the midpoints between neighbouring levels: level i wins once 2v reaches kMid2[i] (i >= 1).
constexpr std::array<float, 16> kMid2 = [] {
  std::array<float, 16> m{};
  for (int i = 1; i < 16; ++i) m[i] = static_cast<float>(kIq4nlValues[i - 1] + kIq4nlValues[i]);
  return m;
}();

// Index of the level nearest to v (v in level units; the upper level on a tie), by binary search over the
// midpoints; NaN maps to the level nearest zero.
int nearest_level(float v) {
  if (!(v == v)) return 8;
  const float v2 = v + v;
  int idx = 0;
  for (int step = 8; step > 0; step >>= 1) {
    if (v2 >= kMid2[idx + step]) idx += step;
  }
  return idx;
}

// out[j] = scale * level(qs[j] & 15), out[j + 16] = scale * level(qs[j] >> 4) for a 32-element run.
void emit32(float scale, const uint8_t* qs, float* out) {
  for (int j = 0; j < 16; ++j) {
    out[j] = scale * static_cast<float>(kIq4nlValues[qs[j] & 0xf]);
    out[j + 16] = scale * static_cast<float>(kIq4nlValues[qs[j] >> 4]);
  }
}

void pack32(const uint8_t* idx, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(idx[j] | (idx[j + 16] << 4));
}

// Best scale for one 32-element block (0 for an all-zero block). Weights are x^2: large values matter most.
float search_block_scale(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (!(amax >= kZeroBlock) || !std::isfinite(amax)) return 0.0f;

  // For a candidate inverse scale: assign levels, then the least-squares scale for that assignment and the
  // error reduction it achieves (sum_qx^2 / sum_q2; larger is better).
  float best_scale = 0.0f;
  float best_gain = -1.0f;
  const auto consider = [&](float inv_scale) {
    float sum_qx = 0.0f;
    float sum_q2 = 0.0f;
    for (int j = 0; j < kBlock; ++j) {
      const float q = kIq4nlValues[nearest_level(inv_scale * x[j])];
      const float w = x[j] * x[j];
      sum_qx += w * q * x[j];
      sum_q2 += w * q * q;
    }
    if (sum_q2 > 0.0f && sum_qx * sum_qx > best_gain * sum_q2) {
      best_scale = sum_qx / sum_q2;
      best_gain = best_scale * sum_qx;
    }
  };
  // First the extreme element at +127 (saturating to the top level), then at the outermost negative level and
  // nearby stretches of the grid.
  consider(static_cast<float>(-kIq4nlValues[0]) / max);
  for (int step = -kSearchSteps; step <= kSearchSteps; ++step) {
    consider(static_cast<float>(step + kIq4nlValues[0]) / max);
  }
  return best_scale;
}

// Level indices of x for a scale. Called with the scale before its f16 rounding, as the reference quantizer does
// (this keeps our output byte-identical to it for most blocks; the error difference is negligible).
void assign_levels(const float* x, float scale, uint8_t* idx) {
  const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
  for (int j = 0; j < kBlock; ++j) idx[j] = static_cast<uint8_t>(nearest_level(inv * x[j]));
}

}  // namespace

// IQ4_NL, 18 bytes: f16 d | 16 x u8 index pairs (element j low nibble, element j + 16 high nibble).
void dequantize_iq4_nl(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 18, dst += kBlock) emit32(load_f16(src), src + 2, dst);
}

// IQ4_XS, 136 bytes: f16 d | u16 scale high bits (2 per sub-block) | 4 x u8 scale low nibbles | 8 x 16 index pairs.
// Sub-block scale = d * (s - 32) with the 6-bit s.
void dequantize_iq4_xs(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 136, dst += 8 * kBlock) {
    const float d = load_f16(src);
    uint16_t scales_h;
    std::memcpy(&scales_h, src + 2, 2);
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = ((src[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) | (((scales_h >> (2 * ib)) & 3) << 4);
      emit32(d * static_cast<float>(ls - 32), src + 8 + 16 * ib, dst + kBlock * ib);
    }
  }
}

void quantize_iq4_nl(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += kBlock, dst += 18) {
    const float scale = search_block_scale(src);
    store_f16(dst, scale);
    uint8_t idx[kBlock];
    assign_levels(src, scale, idx);
    pack32(idx, dst + 2);
  }
}

void quantize_iq4_xs(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, src += 8 * kBlock, dst += 136) {
    float scales[8];
    float max_scale = 0.0f;  // the sub-block scale of largest magnitude, with its sign
    for (int ib = 0; ib < 8; ++ib) {
      scales[ib] = search_block_scale(src + kBlock * ib);
      if (std::fabs(scales[ib]) > std::fabs(max_scale)) max_scale = scales[ib];
    }
    // Sub-block scales become d * l with l in [-32, 31]; anchoring the largest one at -32 uses the full range.
    const float d = -max_scale / 32.0f;
    store_f16(dst, d);
    std::memset(dst + 2, 0, 6);
    const float inv_d = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t scales_h = 0;
    for (int ib = 0; ib < 8; ++ib) {
      const int r = round_even(inv_d * scales[ib]);
      const int l = r < -32 ? -32 : (r > 31 ? 31 : r);
      const int ls = l + 32;
      dst[4 + ib / 2] = static_cast<uint8_t>(dst[4 + ib / 2] | ((ls & 0xf) << (4 * (ib % 2))));
      scales_h = static_cast<uint16_t>(scales_h | ((ls >> 4) << (2 * ib)));
      uint8_t idx[kBlock];
      assign_levels(src + kBlock * ib, d * static_cast<float>(l), idx);
      pack32(idx, dst + 8 + 16 * ib);
    }
    std::memcpy(dst + 2, &scales_h, 2);
  }
}

}  // namespace rf::quant::iq
