// Scalar activation conversions (F32 -> Q8_0 / Q8_1 / Q8_K / F16 / BF16) and plain float dots.
// Rounding follows llama.cpp's x86 CPU path: Q8_0/Q8_1 scale by 127/amax and round half to even; Q8_K uses
// -127/max of the signed extreme (so the extreme maps to exactly -127) and also rounds half to even.
#include <cmath>
#include <cstring>

#include "backend/cpu/blocks.h"
#include "backend/cpu/dot_kernels.h"
#include "core/half.h"

namespace rf::backend::cpu::scalar {
namespace {

int round_even(float v) { return static_cast<int>(std::lrintf(v)); }

float block_amax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

}  // namespace

void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < n / kQk; ++i, x += kQk) {
    const float amax = block_amax(x, kQk);
    y[i].d = fp32_to_fp16(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < kQk; ++j) y[i].qs[j] = static_cast<int8_t>(round_even(x[j] * id));
  }
}

void quantize_q8_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(out);
  for (int64_t i = 0; i < n / kQk; ++i, x += kQk) {
    const float amax = block_amax(x, kQk);
    const float d = amax / 127.0f;
    y[i].d = fp32_to_fp16(d);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQk; ++j) {
      const int q = round_even(x[j] * id);
      y[i].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

void quantize_q8_k(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8K*>(out);
  for (int64_t i = 0; i < n / kQkK; ++i, x += kQkK) {
    float amax = 0.0f;
    float max = 0.0f;  // the element of largest magnitude, with its sign
    for (int j = 0; j < kQkK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQkK; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, round_even(iscale * x[j])));
    for (int g = 0; g < kQkK / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[i].qs[g * 16 + j];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

void quantize_f16(const float* x, void* out, int64_t n) {
  auto* y = static_cast<uint16_t*>(out);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

void quantize_bf16(const float* x, void* out, int64_t n) {
  auto* y = static_cast<uint16_t*>(out);
  for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

void quantize_f32(const float* x, void* out, int64_t n) { std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float)); }

void dequantize_q8_0(const void* a, float* out, int64_t n) {
  const auto* y = static_cast<const BlockQ8_0*>(a);
  for (int64_t i = 0; i < n / kQk; ++i) {
    const float d = fp16_to_fp32(y[i].d);
    for (int j = 0; j < kQk; ++j) out[i * kQk + j] = d * static_cast<float>(y[i].qs[j]);
  }
}

void dequantize_q8_1(const void* a, float* out, int64_t n) {
  const auto* y = static_cast<const BlockQ8_1*>(a);
  for (int64_t i = 0; i < n / kQk; ++i) {
    const float d = fp16_to_fp32(y[i].d);
    for (int j = 0; j < kQk; ++j) out[i * kQk + j] = d * static_cast<float>(y[i].qs[j]);
  }
}

void dequantize_q8_k(const void* a, float* out, int64_t n) {
  const auto* y = static_cast<const BlockQ8K*>(a);
  for (int64_t i = 0; i < n / kQkK; ++i) {
    for (int j = 0; j < kQkK; ++j) out[i * kQkK + j] = y[i].d * static_cast<float>(y[i].qs[j]);
  }
}

void dequantize_f16(const void* a, float* out, int64_t n) {
  const auto* y = static_cast<const uint16_t*>(a);
  for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(y[i]);
}

void dequantize_bf16(const void* a, float* out, int64_t n) {
  const auto* y = static_cast<const uint16_t*>(a);
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(y[i]);
}

void dequantize_f32(const void* a, float* out, int64_t n) {
  std::memcpy(out, a, static_cast<size_t>(n) * sizeof(float));
}

float dot_f32(int64_t n, const float* a, const float* b) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i] * b[i]);
  return static_cast<float>(sum);
}

void axpy_f32(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

float dot_f32_f32(int64_t n, const void* w, const void* x) {
  return dot_f32(n, static_cast<const float*>(w), static_cast<const float*>(x));
}

float dot_f16_f16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]));
  return static_cast<float>(sum);
}

float dot_bf16_bf16(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const uint16_t*>(x);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(bf16_to_fp32(a[i]) * bf16_to_fp32(b[i]));
  return static_cast<float>(sum);
}

}  // namespace rf::backend::cpu::scalar
