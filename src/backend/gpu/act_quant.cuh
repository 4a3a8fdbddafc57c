// Activation rows quantized for the int8 products (Q8_0 or Q8_K codes, scales and 32-code sums), computed by one
// warp per 256 elements: shared by quantize_int8_rows (matvec_int8.cu) and the kernels that quantize what they
// produce (rms_norm / silu_mul in elementwise.cu), so every path gives the same codes for the same floats.
#pragma once

#include "backend/gpu/compat.h"
#include "backend/gpu/matmul.h"

namespace rf::gpu {

RF_DEVICE float round_half_f(float v) { return __half2float(__float2half_rn(v)); }

// Larger |value| wins; on equal magnitude the smaller index (the CPU scans in order and keeps the first).
RF_DEVICE void take_max(float& amax, float& vmax, int& imax, float a, float v, int i) {
  if (a > amax || (a == amax && i < imax)) {
    amax = a;
    vmax = v;
    imax = i;
  }
}

// The arithmetic of the ops whose output the int8 products read, shared by their own kernels (elementwise.cu)
// and the products that compute them in their prologue (matvec_fused.cu): one expression, the same bits.
RF_DEVICE float squares(float4 v) { return v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w; }
RF_DEVICE float rms_scale(float sum_squares, int64_t n, float eps) {
  return 1.0f / sqrtf(sum_squares / static_cast<float>(n) + eps);
}
RF_DEVICE float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// Elements per lane of the warp that quantizes 256 of them.
constexpr int kQuantPerLane = 256 / kWarpSize;  // 8 (warp 32) or 4 (warp 64)

// kBlock 32: Q8_0 (scale fp16(amax / 127), codes round(x * 127 / amax)); kBlock 256: Q8_K (iscale -127 / the signed
// extreme, codes min(127, round(iscale * x)), scale 1 / iscale); also the sum of every 32 codes. The calling warp
// holds 256 elements, lane l the kQuantPerLane from e0 = base + l * kQuantPerLane (zeros where !live); they land
// in codes q, scales d and sums of one row. Every lane of the warp must call it.
template <int kBlock>
RF_DEVICE void quantize_warp_values(const float (&v)[kQuantPerLane], bool live, int64_t e0, int8_t* q, float* d,
                                    int32_t* sums) {
  constexpr int kPer = kQuantPerLane;
  constexpr int kLanesPerBlock = kBlock / kPer;  // lanes sharing one scale
  float amax = -1.0f, vmax = 0.0f;
  int imax = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) take_max(amax, vmax, imax, fabsf(v[j]), v[j], lane_id() * kPer + j);
#pragma unroll
  for (int mask = 1; mask < kLanesPerBlock; mask <<= 1) {
    const float a = shfl_xor(amax, mask), vv = shfl_xor(vmax, mask);
    const int i = shfl_xor(imax, mask);
    take_max(amax, vmax, imax, a, vv, i);
  }
  int codes[kPer];
  float scale = 0.0f;
  if (kBlock == 32) {
    scale = round_half_f(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) codes[j] = __float2int_rn(v[j] * id);
  } else {
    const float iscale = amax != 0.0f ? -127.0f / vmax : 0.0f;
    scale = amax != 0.0f ? 1.0f / iscale : 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) codes[j] = min(127, __float2int_rn(iscale * v[j]));
  }
  uint32_t words[kPer / 4];
#pragma unroll
  for (int w = 0; w < kPer / 4; ++w) {
    words[w] = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) words[w] |= (static_cast<uint32_t>(codes[4 * w + i]) & 0xFFu) << (8 * i);
  }
  // The code sum of every 32 elements (the offsets of Q4_0 / K-quant minimums in the tensor-core products). Every
  // lane takes part in the shuffles; lanes past n (zeros) store nothing.
  constexpr int kLanesPer32 = 32 / kPer;
  int sum = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) sum += codes[j];
#pragma unroll
  for (int mask = 1; mask < kLanesPer32; mask <<= 1) sum += shfl_xor(sum, mask);
  if (!live) return;
  if (kPer == 8) {
    *reinterpret_cast<uint2*>(q + e0) = make_uint2(words[0], words[kPer / 4 - 1]);
  } else {
    *reinterpret_cast<uint32_t*>(q + e0) = words[0];
  }
  if (lane_id() % kLanesPerBlock == 0) d[e0 / kBlock] = scale;
  if (lane_id() % kLanesPer32 == 0) sums[e0 / 32] = sum;
}

}  // namespace rf::gpu
