// YaRN rope scaling (arXiv 2309.00071), the part every backend shares: which rotary pairs keep their trained
// frequency, which are interpolated, and the blend in between. Computed in float, as GGUF runtimes do, so the
// integer edges of the range agree with them.
//
// A pair of frequency w_i = base^(-2i / n_rot) turns n_ctx_orig * w_i / (2 pi) times over the original context.
// Solving that for i at a given number of turns r gives  d(r) = n_rot * ln(n_ctx_orig / (2 pi r)) / (2 ln base).
// Pairs i <= low = floor(d(beta_fast)) (fast, many turns) are left unscaled; pairs i >= high = ceil(d(beta_slow))
// (slow, under one turn) are fully interpolated (angle * freq_scale). low is clamped to >= 0 and high to
// <= n_rot - 1.
#pragma once

#include <algorithm>
#include <cmath>

namespace rf::backend {

struct YarnRange {
  float low = 0.0f;
  float high = 0.0f;
};

inline float yarn_corr_dim(int n_rot, int n_ctx_orig, float turns, float freq_base) {
  constexpr float kTwoPi = 6.283185307179586f;
  return static_cast<float>(n_rot) * std::log(static_cast<float>(n_ctx_orig) / (turns * kTwoPi)) /
         (2.0f * std::log(freq_base));
}

inline YarnRange yarn_range(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow) {
  YarnRange r;
  r.low = std::max(0.0f, std::floor(yarn_corr_dim(n_rot, n_ctx_orig, beta_fast, freq_base)));
  r.high = std::min(static_cast<float>(n_rot - 1), std::ceil(yarn_corr_dim(n_rot, n_ctx_orig, beta_slow, freq_base)));
  return r;
}

// Weight of the unscaled angle for pair i: 1 up to low, 0 from high on, linear in between (a range narrower than
// 0.001 is treated as 0.001 wide).
inline float yarn_ramp(const YarnRange& r, int i) {
  const float y = (static_cast<float>(i) - r.low) / std::max(0.001f, r.high - r.low);
  return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace rf::backend
