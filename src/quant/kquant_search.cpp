// Scale searches for the K-quants (see kquant_search.h). Floating-point operations are written in the order
// of the reference algorithm so that the chosen codes agree with llama.cpp's quantizer.
#include "quant/kquant_search.h"

#include <cmath>

#include "core/check.h"
#include "quant/block_bytes.h"

namespace rf::quant::kq {
namespace {

constexpr float kGroupEps = 1e-15f;

int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The element of largest magnitude with its sign (first one on ties), and that magnitude.
float signed_extreme(int n, const float* x, float* amax_out) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

// Weighted sums sum(w x l) and sum(w l^2) for the grid of inverse scale iscale, weights x^2.
void symmetric_sums(int n, int nmax, const float* x, float iscale, float* sumlx, float* suml2) {
  float slx = 0.0f;
  float sl2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
    const float w = x[i] * x[i];
    slx += w * x[i] * static_cast<float>(l);
    sl2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  *sumlx = slx;
  *suml2 = sl2;
}

void symmetric_codes(int n, int nmax, const float* x, float iscale, int8_t* L) {
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + clampi(round_even(iscale * x[i]), -nmax, nmax - 1));
}

}  // namespace

float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0.0f;
  const float max = signed_extreme(n, x, &amax);
  if (amax < kGroupEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float fmax = static_cast<float>(nmax);
  float iscale = -fmax / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  symmetric_sums(n, nmax, x, iscale, &sumlx, &suml2);
  symmetric_codes(n, nmax, x, iscale, L);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(fmax + 0.1f * static_cast<float>(step)) / max;
    symmetric_sums(n, nmax, x, iscale, &sumlx, &suml2);
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      symmetric_codes(n, nmax, x, iscale, L);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float fit_symmetric_refined(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0.0f;
  const float max = signed_extreme(n, x, &amax);
  if (amax < kGroupEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = -static_cast<float>(nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0.0f) {
        float sl2 = suml2 - w * li * li;
        const int new_l = clampi(round_even(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const float nl = static_cast<float>(new_l);
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          // Keep the move when the error of the least-squares fit drops: sumlx^2 / suml2 grows.
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float fit_affine(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* neg_min, float rmin,
                 float rdelta, int nstep, bool use_abs) {
  RF_CHECK(n >= 1 && n <= 32);
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  auto error_of = [&](float scale, float mn, const uint8_t* codes) {
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
      float diff = scale * static_cast<float>(codes[i]) + mn - x[i];
      diff = use_abs ? std::fabs(diff) : diff * diff;
      err += weights[i] * diff;
    }
    return err;
  };
  const float fnmax = static_cast<float>(nmax);
  float iscale = fnmax / (max - min);
  float scale = 1.0f / iscale;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(clampi(round_even(iscale * (x[i] - min)), 0, nmax));
  float best_error = error_of(scale, min, L);
  uint8_t aux[32];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + fnmax) / (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(round_even(iscale * (x[i] - min)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += weights[i] * fl;
      sum_l2 += weights[i] * fl * fl;
      sum_xl += weights[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0.0f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      const float err = error_of(this_scale, this_min, aux);
      if (err < best_error) {
        for (int i = 0; i < n; ++i) L[i] = aux[i];
        best_error = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

}  // namespace rf::quant::kq
