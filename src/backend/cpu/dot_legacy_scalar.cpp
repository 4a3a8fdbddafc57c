// Scalar integer dot products of the 32-element block formats with Q8_0 / Q8_1 activations.
// Per block: an exact int32 sum of weight-quant x activation-quant, then one float multiply by both scales.
#include <cstring>

#include "backend/cpu/blocks.h"
#include "backend/cpu/dot_kernels.h"
#include "core/half.h"

namespace rf::backend::cpu::scalar {
namespace {

uint32_t load_qh(const uint8_t qh[4]) {
  uint32_t v;
  std::memcpy(&v, qh, sizeof(v));
  return v;
}

}  // namespace

float dot_q4_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQk / 2; ++j) {
      sumi += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j];
      sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + kQk / 2];
    }
    sum += static_cast<float>(sumi) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

float dot_q4_1_q8_1(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ4_1*>(w);
  const auto* b = static_cast<const BlockQ8_1*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQk / 2; ++j) {
      sumi += (a[i].qs[j] & 0x0f) * b[i].qs[j];
      sumi += (a[i].qs[j] >> 4) * b[i].qs[j + kQk / 2];
    }
    sum += fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d) * static_cast<float>(sumi) +
           fp16_to_fp32(a[i].m) * fp16_to_fp32(b[i].s);
  }
  return sum;
}

float dot_q5_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ5_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) {
    const uint32_t qh = load_qh(a[i].qh);
    int sumi = 0;
    for (int j = 0; j < kQk / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      sumi += (((a[i].qs[j] & 0x0f) | h0) - 16) * b[i].qs[j];
      sumi += (((a[i].qs[j] >> 4) | h1) - 16) * b[i].qs[j + kQk / 2];
    }
    sum += static_cast<float>(sumi) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

float dot_q5_1_q8_1(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ5_1*>(w);
  const auto* b = static_cast<const BlockQ8_1*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) {
    const uint32_t qh = load_qh(a[i].qh);
    int sumi = 0;
    for (int j = 0; j < kQk / 2; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      sumi += ((a[i].qs[j] & 0x0f) | h0) * b[i].qs[j];
      sumi += ((a[i].qs[j] >> 4) | h1) * b[i].qs[j + kQk / 2];
    }
    sum += fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d) * static_cast<float>(sumi) +
           fp16_to_fp32(a[i].m) * fp16_to_fp32(b[i].s);
  }
  return sum;
}

float dot_q8_0_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockQ8_0*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQk; ++j) sumi += a[i].qs[j] * b[i].qs[j];
    sum += static_cast<float>(sumi) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

float dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x) {
  const auto* a = static_cast<const BlockIq4Nl*>(w);
  const auto* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQk; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQk / 2; ++j) {
      sumi += kIq4NlValues[a[i].qs[j] & 0x0f] * b[i].qs[j];
      sumi += kIq4NlValues[a[i].qs[j] >> 4] * b[i].qs[j + kQk / 2];
    }
    sum += static_cast<float>(sumi) * fp16_to_fp32(a[i].d) * fp16_to_fp32(b[i].d);
  }
  return sum;
}

}  // namespace rf::backend::cpu::scalar
