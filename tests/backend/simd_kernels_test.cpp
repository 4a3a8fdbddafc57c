// Every SIMD kernel table this CPU can run (AVX2, AVX-512 VNNI, NEON) against the scalar oracle, on every weight
// type with a fused dot, odd block counts and random data:
//  - activation quantizers (Q8_0 / Q8_1 / Q8_K / F16 / BF16): byte-identical output;
//  - dots with unit scales and small activations (all partial sums exact integers in float): exactly equal;
//  - dots with random scales: |simd - scalar| <= 1e-5 * sum |w_i x_i| (+1e-30), the float summation order being
//    the only difference (per-block integer sums are exact); F32/F16/BF16 dots 1e-5 likewise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/blocks.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/simd_kernels.h"
#include "core/half.h"
#include "quant/quant.h"

namespace rf::backend::cpu {
namespace {

using quant::Type;

std::vector<const KernelTable*> simd_tables() {
  auto all = available_kernel_tables();
  return std::vector<const KernelTable*>(all.begin() + 1, all.end());
}

struct WeightCase {
  Type type;
  std::vector<size_t> half_fields;  // byte offsets of the fp16 scale fields in a block
};

const std::vector<WeightCase>& quant_cases() {
  static const std::vector<WeightCase> cases = {
      {Type::Q4_0, {0}},     {Type::Q4_1, {0, 2}},   {Type::Q5_0, {0}},  {Type::Q5_1, {0, 2}},
      {Type::Q8_0, {0}},     {Type::IQ4_NL, {0}},    {Type::Q2_K, {80, 82}}, {Type::Q3_K, {108}},
      {Type::Q4_K, {0, 2}},  {Type::Q5_K, {0, 2}},   {Type::Q6_K, {208}},    {Type::IQ4_XS, {0}},
  };
  return cases;
}

std::vector<float> random_floats(std::mt19937& rng, int64_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) f = dist(rng);
  return v;
}

// Random bytes with the fp16 scale fields set to `unit` ? 1.0 : random finite values.
std::vector<uint8_t> random_weights(std::mt19937& rng, const WeightCase& c, int64_t n, bool unit) {
  const auto& tr = quant::traits(c.type);
  const int64_t nb = n / tr.block_size;
  std::vector<uint8_t> w(static_cast<size_t>(nb) * tr.block_bytes);
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (int64_t i = 0; i < nb; ++i) {
    for (size_t off : c.half_fields) {
      const uint16_t h = fp32_to_fp16(unit ? 1.0f : scale(rng));
      std::memcpy(w.data() + static_cast<size_t>(i) * tr.block_bytes + off, &h, 2);
    }
  }
  return w;
}

// Activations in the weight's act format with d = 1 and |q| <= 2, so every partial sum is a small integer.
std::vector<uint8_t> unit_activations(std::mt19937& rng, Type act, int64_t n) {
  std::uniform_int_distribution<int> q(-2, 2);
  std::vector<uint8_t> out(*quant::row_bytes(act, n));
  if (act == Type::Q8_K) {
    auto* y = reinterpret_cast<BlockQ8K*>(out.data());
    for (int64_t i = 0; i < n / kQkK; ++i) {
      y[i].d = 1.0f;
      for (int g = 0; g < kQkK / 16; ++g) {
        int s = 0;
        for (int j = 0; j < 16; ++j) s += (y[i].qs[16 * g + j] = static_cast<int8_t>(q(rng)));
        y[i].bsums[g] = static_cast<int16_t>(s);
      }
    }
  } else if (act == Type::Q8_0) {
    auto* y = reinterpret_cast<BlockQ8_0*>(out.data());
    for (int64_t i = 0; i < n / kQk; ++i) {
      y[i].d = fp32_to_fp16(1.0f);
      for (auto& v : y[i].qs) v = static_cast<int8_t>(q(rng));
    }
  } else {
    EXPECT_EQ(act, Type::Q8_1);
    auto* y = reinterpret_cast<BlockQ8_1*>(out.data());
    for (int64_t i = 0; i < n / kQk; ++i) {
      int s = 0;
      for (auto& v : y[i].qs) s += (v = static_cast<int8_t>(q(rng)));
      y[i].d = fp32_to_fp16(1.0f);
      y[i].s = fp32_to_fp16(static_cast<float>(s));
    }
  }
  return out;
}

// sum |w_i x_i| from the dequantized weight and activation rows: the scale of the rounding error.
double abs_dot_bound(Type wt, const void* w, Type act, const void* a, int64_t n) {
  std::vector<float> wf(static_cast<size_t>(n)), af(static_cast<size_t>(n));
  EXPECT_TRUE(quant::dequantize(wt, w, wf.data(), n).ok());
  scalar_kernels().for_act(act).dequantize(a, af.data(), n);
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(wf[i]) * af[i]);
  return s;
}

TEST(SimdKernels, ThisMachineHasAtLeastOneSimdTableOnX86) {
#if defined(__x86_64__)
  ASSERT_FALSE(simd_tables().empty());
  EXPECT_EQ(kernels().isa, available_kernel_tables().back()->isa);
#endif
  EXPECT_EQ(available_kernel_tables().front(), &scalar_kernels());
}

TEST(SimdKernels, ActivationQuantizersAreByteIdenticalToScalar) {
  std::mt19937 rng(1);
  for (const KernelTable* t : simd_tables()) {
    for (Type act : {Type::Q8_0, Type::Q8_1, Type::Q8_K, Type::F16, Type::BF16}) {
      const int64_t bs = quant::traits(act).block_size;
      for (int64_t n : {bs, 3 * bs, 7 * bs, act == Type::Q8_K ? 5 * bs : 37 * bs}) {
        for (int variant = 0; variant < 4; ++variant) {
          std::vector<float> x = random_floats(rng, n, variant == 1 ? 1e-3f : 3.0f);
          if (variant == 2) std::fill(x.begin(), x.begin() + bs, 0.0f);  // an all-zero block
          if (variant == 3 && n > 9) {  // ties of the extreme with both signs (Q8_K takes the first)
            x[5] = 7.5f;
            x[9] = -7.5f;
          }
          const size_t bytes = *quant::row_bytes(act, n);
          std::vector<uint8_t> ref(bytes), got(bytes);
          scalar_kernels().for_act(act).quantize(x.data(), ref.data(), n);
          t->for_act(act).quantize(x.data(), got.data(), n);
          ASSERT_EQ(ref, got) << t->isa << " " << quant::type_name(act) << " n=" << n << " variant " << variant;
        }
      }
    }
    // F16 / BF16 conversions at lengths that leave a tail after the vector loop.
    for (int64_t n = 1; n < 70; n += 3) {
      const std::vector<float> x = random_floats(rng, n);
      for (Type act : {Type::F16, Type::BF16}) {
        std::vector<uint16_t> ref(static_cast<size_t>(n)), got(static_cast<size_t>(n));
        scalar_kernels().for_act(act).quantize(x.data(), ref.data(), n);
        t->for_act(act).quantize(x.data(), got.data(), n);
        ASSERT_EQ(ref, got) << t->isa << " " << quant::type_name(act) << " n=" << n;
      }
    }
  }
}

TEST(SimdKernels, QuantizedDotsWithUnitScalesAreExact) {
  std::mt19937 rng(2);
  for (const KernelTable* t : simd_tables()) {
    for (const WeightCase& c : quant_cases()) {
      const Type act = scalar_kernels().for_weight(c.type).act_type;
      const DotFn ref = scalar_kernels().for_weight(c.type).dot;
      const DotFn got = t->for_weight(c.type).dot;
      ASSERT_NE(got, nullptr) << t->isa << " " << quant::type_name(c.type);
#if defined(__x86_64__)
      ASSERT_NE(got, ref) << t->isa << " still uses the scalar kernel for " << quant::type_name(c.type);
#endif
      const int64_t bs = quant::traits(c.type).block_size;
      for (int64_t nb : {1, 2, 3, 5}) {
        const int64_t n = nb * bs;
        for (int rep = 0; rep < 4; ++rep) {
          const auto w = random_weights(rng, c, n, /*unit=*/true);
          const auto a = unit_activations(rng, act, n);
          ASSERT_EQ(ref(n, w.data(), a.data()), got(n, w.data(), a.data()))
              << t->isa << " " << quant::type_name(c.type) << " blocks=" << nb;
        }
      }
    }
  }
}

TEST(SimdKernels, QuantizedDotsMatchScalarWithinFloatTolerance) {
  std::mt19937 rng(3);
  for (const KernelTable* t : simd_tables()) {
    for (const WeightCase& c : quant_cases()) {
      const Type act = scalar_kernels().for_weight(c.type).act_type;
      const DotFn ref = scalar_kernels().for_weight(c.type).dot;
      const DotFn got = t->for_weight(c.type).dot;
      const int64_t bs = quant::traits(c.type).block_size;
      for (int64_t nb : {1, 3, 7, 11}) {
        const int64_t n = nb * bs;
        for (int rep = 0; rep < 6; ++rep) {
          const std::vector<float> wf = random_floats(rng, n);
          std::vector<uint8_t> w;
          if (rep % 2 == 0 && quant::can_quantize(c.type)) {  // realistic blocks from the reference quantizer
            w.resize(*quant::row_bytes(c.type, n));
            ASSERT_TRUE(quant::quantize(c.type, wf.data(), w.data(), n).ok());
          } else {  // arbitrary bit patterns (every quant value, incl. -128 for Q8_0)
            w = random_weights(rng, c, n, /*unit=*/false);
          }
          const std::vector<float> x = random_floats(rng, n);
          std::vector<uint8_t> a(*quant::row_bytes(act, n));
          scalar_kernels().for_act(act).quantize(x.data(), a.data(), n);
          const double bound = abs_dot_bound(c.type, w.data(), act, a.data(), n);
          const float r = ref(n, w.data(), a.data());
          const float g = got(n, w.data(), a.data());
          ASSERT_NEAR(r, g, 1e-5 * bound + 1e-30)
              << t->isa << " " << quant::type_name(c.type) << " blocks=" << nb << " rep " << rep;
        }
      }
    }
  }
}

TEST(SimdKernels, FloatDotsMatchScalarAtEveryLength) {
  std::mt19937 rng(4);
  for (const KernelTable* t : simd_tables()) {
    for (int64_t n : {1, 7, 31, 64, 101, 256, 1000, 2051}) {
      const std::vector<float> a = random_floats(rng, n), b = random_floats(rng, n);
      double bound = 0.0;
      for (int64_t i = 0; i < n; ++i) bound += std::fabs(static_cast<double>(a[i]) * b[i]);
      const double tol = 1e-5 * bound + 1e-30;
      EXPECT_NEAR(scalar_kernels().dot_f32(n, a.data(), b.data()), t->dot_f32(n, a.data(), b.data()), tol)
          << t->isa << " n=" << n;
      for (Type wt : {Type::F32, Type::F16, Type::BF16}) {
        std::vector<uint8_t> wq(*quant::row_bytes(wt, n)), xq(*quant::row_bytes(wt, n));
        scalar_kernels().for_act(wt).quantize(a.data(), wq.data(), n);
        scalar_kernels().for_act(wt).quantize(b.data(), xq.data(), n);
        EXPECT_NEAR(scalar_kernels().for_weight(wt).dot(n, wq.data(), xq.data()),
                    t->for_weight(wt).dot(n, wq.data(), xq.data()), 1.01 * tol)
            << t->isa << " " << quant::type_name(wt) << " n=" << n;
      }
    }
  }
}

}  // namespace
}  // namespace rf::backend::cpu
