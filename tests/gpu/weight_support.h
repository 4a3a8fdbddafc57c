// Test helpers shared by the GPU matmul tests: random quantized weights (with their dequantized values) and a
// guard that restores the process-wide matmul policy.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/matmul.h"
#include "backend_pair.h"
#include "core/half.h"
#include "quant/quant.h"
#include "quant/types.h"

namespace rf::gpu::test {

using quant::Type;

inline std::string label(Type t) { return std::string(quant::type_name(t)); }

// Random weights quantized to t (row by row), and their dequantized values.
struct HostWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // [n_mat * n_out][n_in]
};

// Random blocks of a format without a quantizer: random bytes, then each block's f16 scale set in [0.001, 0.01]
// (IQ1_M keeps it in the top nibbles of its four scale words at byte 48; the others in bytes 0..1).
inline void random_blocks(std::mt19937& rng, Type t, std::vector<uint8_t>& bytes) {
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.01f);
  const size_t bb = quant::traits(t).block_bytes;
  for (size_t off = 0; off + bb <= bytes.size(); off += bb) {
    const uint16_t h = fp32_to_fp16(scale(rng));
    if (t == Type::IQ1_M) {
      for (int k = 0; k < 4; ++k) {
        uint8_t& hi = bytes[off + 48 + 2 * k + 1];
        hi = static_cast<uint8_t>((hi & 0x0f) | (((h >> (4 * k)) & 0x0f) << 4));
      }
    } else {
      bytes[off] = static_cast<uint8_t>(h & 0xff);
      bytes[off + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
}

inline HostWeight make_weight(std::mt19937& rng, Type t, int64_t n_in, int64_t n_rows) {
  HostWeight w;
  const std::vector<float> src = random_floats(rng, static_cast<size_t>(n_in * n_rows));
  const size_t rb = *quant::row_bytes(t, n_in);
  w.bytes.resize(rb * static_cast<size_t>(n_rows));
  w.values.resize(src.size());
  if (!quant::can_quantize(t)) random_blocks(rng, t, w.bytes);
  for (int64_t r = 0; r < n_rows; ++r) {
    if (quant::can_quantize(t)) {
      EXPECT_TRUE(quant::quantize(t, src.data() + r * n_in, w.bytes.data() + r * rb, n_in).ok());
    }
    EXPECT_TRUE(quant::dequantize(t, w.bytes.data() + r * rb, w.values.data() + r * n_in, n_in).ok());
  }
  return w;
}

inline float tol_factor(Type t) { return t == Type::Q4_1 || t == Type::Q5_1 ? 1e-3f : 1e-4f; }

// Restores the process-wide matmul policy when a test leaves.
struct PolicyGuard {
  MatmulPolicy saved = matmul_policy();
  ~PolicyGuard() { matmul_policy() = saved; }
};

}  // namespace rf::gpu::test
