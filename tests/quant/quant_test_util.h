// Helpers for the quant tests: random data, error measures and a typed wrapper around quantize/dequantize.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "quant/quant.h"
#include "quant/types.h"

namespace rf::quant::test {

inline std::vector<float> normal_data(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// rms(a - b) / rms(b); 0 when both are all zero.
inline double nrmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0.0;
  double den = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

inline std::vector<uint8_t> quantized(Type t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*row_bytes(t, static_cast<int64_t>(x.size())));
  const Status s = quantize(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  EXPECT_TRUE(s.ok()) << s.message();
  return q;
}

inline std::vector<float> dequantized(Type t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n), NAN);
  const Status s = dequantize(t, q.data(), y.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return y;
}

inline std::vector<float> round_trip(Type t, const std::vector<float>& x) {
  return dequantized(t, quantized(t, x), static_cast<int64_t>(x.size()));
}

inline void put_f16(uint8_t* p, float v) {
  const uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

}  // namespace rf::quant::test
