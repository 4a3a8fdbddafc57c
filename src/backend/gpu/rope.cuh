// Rotary position embedding on the device: one pair's angle and rotation, as the CPU reference computes them.
// Shared by rope / rope_kv_store (elementwise.cu) and decode attention's fused rope (attention.cu), so that every
// path rotates with the same operations and gives the same bits.
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "backend/gpu/elementwise.h"
#include "backend/rope_yarn.h"

namespace rf::gpu {

// The rotation of pair i at token position pos, as the CPU reference computes it: c and s (attn_factor included).
RF_DEVICE void rope_angle(int i, int32_t pos, const RopeArgs& a, const backend::YarnRange& yarn, float* c, float* s) {
  // theta_i = pos * theta_scale^i by repeated multiplication, exactly as the CPU reference advances it.
  float theta = static_cast<float>(pos);
  for (int k = 0; k < i; ++k) theta *= a.theta_scale;
  const float th_extrap = a.freq_factors ? theta / a.freq_factors[i] : theta;
  float th = a.freq_scale * th_extrap;
  if (a.ext_factor != 0.0f) {
    // YaRN: blend back towards the unscaled angle, weight 1 up to yarn.low falling linearly to 0 at yarn.high.
    const float y = (static_cast<float>(i) - yarn.low) / fmaxf(0.001f, yarn.high - yarn.low);
    const float mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * a.ext_factor;
    // Rounded products and sum (no fused multiply-add), as the CPU reference computes them.
    th = __fadd_rn(__fmul_rn(th, 1.0f - mix), __fmul_rn(th_extrap, mix));
  }
  float sn, cs;
  sincosf(th, &sn, &cs);  // one argument reduction (and one copy of its slow path in every kernel) for both
  *c = cs * a.attn_factor;
  *s = sn * a.attn_factor;
}

// Rotates pair i of head vector v by (c, s); returns the pair's indices in i0 / i1. Rounded products and sums (no
// fused multiply-add), so that the result does not depend on how a kernel's compilation contracts them.
RF_DEVICE void rope_rotate(float* v, int i, float c, float s, const RopeArgs& a, int* i0, int* i1) {
  *i0 = a.neox ? i : 2 * i;
  *i1 = a.neox ? i + a.n_rot / 2 : 2 * i + 1;
  const float a0 = v[*i0], a1 = v[*i1];
  v[*i0] = __fsub_rn(__fmul_rn(a0, c), __fmul_rn(a1, s));
  v[*i1] = __fadd_rn(__fmul_rn(a0, s), __fmul_rn(a1, c));
}

}  // namespace rf::gpu
