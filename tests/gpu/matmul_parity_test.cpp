// GPU matmul / moe_matmul / embed against the scalar CPU backend, for every weight type with a GPU kernel, odd
// shapes (rows not a multiple of the tile or of the rows per block, F32/F16 rows not a multiple of 8) and batch
// sizes covering each matrix-vector width (1, 2, 3, 5, 8) and the tiled path (16, 33, 70).
//
// Tolerances: both backends round activations the same way, so only float summation order differs:
// |gpu - cpu| <= 1e-4 * sum_k |w_k x_k| (plus 1e-6). Q4_1 / Q5_1 take 1e-3: the CPU applies their minimum with
// the activation block sum stored as F16 (Q8_1's s), the GPU with the exact sum. Embedding rows: 1e-6 relative.
// The IQ2 / IQ3 / IQ1 / TQ / MXFP4 formats have no fused CPU dot: the CPU takes the float dot of the dequantized
// row with the rounded activations, so 1e-4 holds for them too. The IQ2 / IQ3 / IQ1 codebooks have no quantizer:
// their weights are random blocks (every bit pattern is valid) with a moderate f16 scale.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/gpu/blas.h"
#include "backend/gpu/matmul.h"
#include "backend_pair.h"
#include "weight_support.h"
#include "core/half.h"
#include "quant/quant.h"
#include "quant/types.h"

namespace rf::gpu::test {
namespace {

using quant::Type;

const Type kTypes[] = {Type::F32,    Type::F16,     Type::BF16,  Type::Q4_0,  Type::Q4_1,    Type::Q5_0,
                       Type::Q5_1,   Type::Q8_0,    Type::IQ4_NL, Type::Q2_K,  Type::Q3_K,    Type::Q4_K,
                       Type::Q5_K,   Type::Q6_K,    Type::IQ4_XS, Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S,
                       Type::IQ3_XXS, Type::IQ3_S,  Type::IQ1_S, Type::IQ1_M, Type::TQ1_0,   Type::TQ2_0,
                       Type::MXFP4};

int64_t row_len_for(Type t, bool odd) {
  const int64_t block = quant::traits(t).block_size;
  if (block == 1) return odd ? 100 : 512;  // float rows need not be a multiple of 8
  return block == 256 ? (odd ? 768 : 512) : (odd ? 96 : 512);
}

class MatmulParity : public ::testing::TestWithParam<Type> {};

// The backend in batch-invariant mode (serve's) for the scope.
struct InvariantScope {
  GpuBackend& be;
  explicit InvariantScope(GpuBackend& b) : be(b) { be.set_batch_invariant(true); }
  ~InvariantScope() { be.set_batch_invariant(false); }
  InvariantScope(const InvariantScope&) = delete;
  InvariantScope& operator=(const InvariantScope&) = delete;
};

// The GPU product of weight w with the rows of x, downloaded (x.ne1 rows of n_out).
std::vector<float> gpu_product(BackendPair& pair, const Tensor& x, const Tensor& w, int64_t n_out) {
  const Tensor o = pair.gpu_zeros(n_out, x.ne1);
  pair.gpu().matmul(o, x, w);
  return pair.download(pair.gpu(), o);
}

// Token k of a batch x (for k in `tokens`) gets bitwise the product it gets alone.
void expect_tokens_as_alone(BackendPair& pair, const Tensor& x, const Tensor& w, int64_t n_out,
                            const std::vector<int64_t>& tokens, const std::string& what) {
  const std::vector<float> batched = gpu_product(pair, x, w, n_out);
  for (const int64_t k : tokens) {
    const std::vector<float> single = gpu_product(pair, x.rows(k, 1), w, n_out);
    for (int64_t r = 0; r < n_out; ++r) {
      ASSERT_EQ(batched[k * n_out + r], single[r])
          << what << " batch " << x.ne1 << " token " << k << " row " << r << ": not bitwise equal";
    }
  }
}

// Runs batches of each width through the GPU and CPU backends and compares within tol_factor * sum |w x|.
void expect_batches_match(BackendPair& pair, std::mt19937& rng, Type t, const HostWeight& hw, const Tensor& wg,
                          const Tensor& wc, int64_t n_in, int64_t n_out, const std::vector<int64_t>& widths,
                          float factor, const std::string& tag) {
  for (const int64_t n_tok : widths) {
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in * n_tok));
    const Tensor og = pair.gpu_zeros(n_out, n_tok), oc = pair.cpu_zeros(n_out, n_tok);
    pair.gpu().matmul(og, pair.gpu_f32(x, n_in), wg);
    pair.cpu().matmul(oc, pair.cpu_f32(x, n_in), wc);
    std::vector<float> tol(static_cast<size_t>(n_out * n_tok));
    for (int64_t k = 0; k < n_tok; ++k) {
      for (int64_t r = 0; r < n_out; ++r) {
        double s = 0.0;
        for (int64_t i = 0; i < n_in; ++i) s += std::fabs(hw.values[r * n_in + i] * x[k * n_in + i]);
        tol[k * n_out + r] = static_cast<float>(s) * factor + 1e-6f;
      }
    }
    expect_close(pair.download(pair.gpu(), og), pair.download(pair.cpu(), oc), tol,
                 label(t) + " " + tag + " n_in " + std::to_string(n_in) + " n_out " + std::to_string(n_out) +
                     " batch " + std::to_string(n_tok));
  }
}

TEST_P(MatmulParity, MatchesCpuForEveryBatchWidthAndOddShapes) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  PolicyGuard guard;
  matmul_policy().mma_min_tokens = 1 << 30;  // the float kernels (matrix-vector widths and the tiled kernel)
  matmul_policy().int8_max_tokens = 0;
  matmul_policy().mmq_max_tokens = 0;
  std::mt19937 rng(1234 + static_cast<unsigned>(t));
  for (const bool odd : {false, true}) {
    const int64_t n_in = row_len_for(t, odd);
    const int64_t n_out = odd ? 131 : 67;
    const HostWeight hw = make_weight(rng, t, n_in, n_out);
    auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
    expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {1, 2, 3, 5, 8, 16, 33, 70}, tol_factor(t), "float");
  }
}

// The tensor-core product (and its FMA variant, which HIP builds run) for every tile shape. Both factors are
// rounded to F16 (relative error <= 2^-11 each), so the bound is 2 * 2^-11 * sum |w x| plus float summation.
// The rare formats (has_all_mma_tiles false) run kMid for every tile asked (on CUDA with tensor cores) and their
// kSmall batches the float kernels, which meet kSmall's bound too.
TEST_P(MatmulParity, MmaTilesMatchCpuWithinF16Rounding) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!has_mma_matmul(t)) GTEST_SKIP() << label(t) << " has no tensor-core path";
  PolicyGuard guard;
  matmul_policy().mma_min_tokens = 2;
  matmul_policy().int8_max_tokens = 0;
  matmul_policy().mmq_max_tokens = 0;
  matmul_policy().blas_min_tokens = 0;  // batch 130 would go through the BLAS (F16 factors) instead of the tiles
  std::mt19937 rng(4321 + static_cast<unsigned>(t));
  const float factor = 2.0f * 4.8828125e-4f + tol_factor(t);
  for (const bool odd : {false, true}) {
    const int64_t n_in = row_len_for(t, odd);
    const int64_t n_out = odd ? 131 : 67;
    const HostWeight hw = make_weight(rng, t, n_in, n_out);
    auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
    for (const bool tensor_cores : {true, false}) {
      for (const MmaTile tile : {MmaTile::kSmall, MmaTile::kMid, MmaTile::kLarge}) {
        matmul_policy().tensor_cores = tensor_cores;
        matmul_policy().force_tile = static_cast<int>(tile);
        // kSmall carries both factors as hi + lo F16 parts: as exact as the float kernels.
        expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {2, 5, 33, 130},
                             tile == MmaTile::kSmall ? tol_factor(t) : factor,
                             std::string(tensor_cores ? "mma" : "mma-fma") + " tile " +
                                 std::to_string(static_cast<int>(tile)));
      }
    }
  }
}

// matmul() takes the tiles from mma_min_tokens_for(t) tokens on and the matrix-vector kernels below that: one
// token fewer gets the float kernels' bits, the threshold itself the tiles' (int8, mmq and BLAS paths off).
TEST_P(MatmulParity, TakesTheTilesFromTheTypesThreshold) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!has_all_mma_tiles(t)) GTEST_SKIP() << label(t) << " has no small tensor-core tile";
  PolicyGuard guard;
  matmul_policy().int8_max_tokens = 0;
  matmul_policy().mmq_max_tokens = 0;
  matmul_policy().blas_min_tokens = 0;
  const int64_t at = mma_min_tokens_for(t);
  ASSERT_GE(at, 2) << label(t);
  std::mt19937 rng(99 + static_cast<unsigned>(t));
  const int64_t n_in = row_len_for(t, false), n_out = 67;
  const HostWeight hw = make_weight(rng, t, n_in, n_out);
  const Tensor wg = pair.weight(t, n_in, n_out, 1, hw.bytes).first;
  for (const int64_t n_tok : {at - 1, at}) {
    const Tensor x = pair.gpu_f32(random_floats(rng, static_cast<size_t>(n_in * n_tok)), n_in);
    const std::vector<float> routed = gpu_product(pair, x, wg, n_out);
    matmul_policy().mma_min_tokens = n_tok < at ? int64_t{1} << 30 : 1;
    const std::vector<float> forced = gpu_product(pair, x, wg, n_out);
    matmul_policy().mma_min_tokens = 0;
    for (size_t i = 0; i < routed.size(); ++i) {
      ASSERT_EQ(routed[i], forced[i]) << label(t) << " batch " << n_tok << " element " << i << ": expected the "
                                      << (n_tok < at ? "matrix-vector" : "tile") << " kernel's bits";
    }
  }
}

// The int8 products (Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / IQ4_NL / Q2_K / Q3_K / Q4_K / Q5_K / Q6_K / IQ4_XS) for 1 to
// 40 tokens: within float summation order of the CPU, and every token's row bitwise equal to the product of that
// token alone (batched decode must not change a sequence's numbers, so greedy text does not depend on load).
TEST_P(MatmulParity, Int8BatchesMatchCpuAndEqualSingleTokenProductsBitwise) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!has_int8_matvec(t, 1)) GTEST_SKIP() << label(t) << " has no int8 product";
  PolicyGuard guard;
  matmul_policy().int8_max_tokens = 64;
  matmul_policy().mmq_max_tokens = 0;
  std::mt19937 rng(777 + static_cast<unsigned>(t));
  const int64_t n_in = quant::traits(t).block_size == 256 ? 768 : 544, n_out = 133;
  const HostWeight hw = make_weight(rng, t, n_in, n_out);
  auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
  // Q4_0 / Q8_0: one warp per row group and two (split K); the shape picks one of them for real weights.
  for (const int split_k : {1, 2}) {
    matmul_policy().split_k = split_k;
    const std::string what = "int8 split_k " + std::to_string(split_k);
    expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {1, 2, 3, 4, 5, 8, 9, 17, 32, 40}, tol_factor(t), what);
    for (const int64_t n_tok : {2, 3, 7, 8, 13, 32}) {
      const Tensor xg = pair.gpu_f32(random_floats(rng, static_cast<size_t>(n_in * n_tok)), n_in);
      std::vector<int64_t> every(static_cast<size_t>(n_tok));
      for (int64_t k = 0; k < n_tok; ++k) every[static_cast<size_t>(k)] = k;
      expect_tokens_as_alone(pair, xg, wg, n_out, every, label(t) + " " + what);
    }
  }
}

// Single tokens take other int8 kernels than batches: Q4_0 / Q8_0 one split row per warp instead of two, bitwise
// the same result either way. K-quants have one kernel for both; their variants are one or two warps per row (split
// K: other sums, each checked against the CPU). Rows of 43 blocks (11008), split rows padded to 16 bytes (17
// blocks) and passes cut short at a row's end are included.
TEST_P(MatmulParity, SingleTokenProductVariantsAreBitwiseEqual) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!has_int8_matvec(t, 1)) GTEST_SKIP() << label(t) << " has no int8 product";
  PolicyGuard guard;
  matmul_policy().mmq_max_tokens = 0;
  std::mt19937 rng(991 + static_cast<unsigned>(t));
  const bool k_quant = quant::traits(t).block_size == 256;
  for (const int64_t n_in : {k_quant ? int64_t{768} : int64_t{544}, int64_t{11008}}) {
    const int64_t n_out = 37;
    const HostWeight hw = make_weight(rng, t, n_in, n_out);
    auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in));
    const Tensor xg = pair.gpu_f32(x, n_in);
    std::vector<float> outs[2];
    for (const int variant : {0, 1}) {
      if (k_quant) {
        matmul_policy().split_k = variant + 1;
        expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {1}, tol_factor(t),
                             "single, split_k " + std::to_string(variant + 1));
        continue;
      }
      matmul_policy().split_rows = variant == 0 ? 2 : 1;  // rows per warp
      const Tensor og = pair.gpu_zeros(n_out, 1);
      pair.gpu().matmul(og, xg, wg);
      outs[variant] = pair.download(pair.gpu(), og);
    }
    if (k_quant) continue;
    for (int64_t r = 0; r < n_out; ++r) {
      ASSERT_EQ(outs[0][r], outs[1][r]) << label(t) << " n_in " << n_in << " row " << r << ": the variants differ";
    }
    expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {1}, tol_factor(t), "single");  // and the CPU
  }
}

// q and k in Q4_K (Q5_K) and v in Q6_K, as Q4_K_M (Q5_K_M) models have them, over one row: the backend groups the
// three products, and a single token runs them as one mixed launch (MatmulPolicy::mixed_launches), which gives
// each product the bits of its type's own launch; the CPU agrees.
TEST(MatmulParityMixed, ProductsOfTwoTypesInOneLaunchGiveEachTypesOwnBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  PolicyGuard guard;
  for (const Type first : {Type::Q4_K, Type::Q5_K}) {
    for (const int64_t n_in : {int64_t{768}, int64_t{4096}}) {
      std::mt19937 rng(777 + static_cast<unsigned>(first) + static_cast<unsigned>(n_in));
      const Type types[3] = {first, first, Type::Q6_K};
      const int64_t n_outs[3] = {37, 29, 45};
      std::vector<HostWeight> hws;
      std::vector<std::pair<Tensor, Tensor>> ws;
      for (int i = 0; i < 3; ++i) {
        hws.push_back(make_weight(rng, types[i], n_in, n_outs[i]));
        ws.push_back(pair.weight(types[i], n_in, n_outs[i], 1, hws.back().bytes));
      }
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in));
      std::vector<float> outs[2][3];
      for (const int mixed : {0, 1}) {
        matmul_policy().mixed_launches = mixed == 1;
        const Tensor xg = pair.gpu_f32(x, n_in);
        Tensor og[3];
        for (int i = 0; i < 3; ++i) {
          og[i] = pair.gpu_zeros(n_outs[i], 1);
          pair.gpu().matmul(og[i], xg, ws[i].first);
        }
        for (int i = 0; i < 3; ++i) outs[mixed][i] = pair.download(pair.gpu(), og[i]);
      }
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(outs[1][i], outs[0][i]) << label(first) << " + Q6_K, n_in " << n_in << ", product " << i
                                          << ": the mixed launch differs from the launch per type";
      }
      for (int i = 0; i < 3; ++i) {
        expect_batches_match(pair, rng, types[i], hws[i], ws[i].first, ws[i].second, n_in, n_outs[i], {1},
                             tol_factor(types[i]), "mixed");
      }
    }
  }
}

// Every format outside split rows but F32: the single-token product with the rows staged in shared memory gives
// matvec1_kernel's bits (each lane the same chunks in the same order; the rare formats, never staged, compare the
// direct kernel with itself). Rows of one partial step and of several steps plus a partial one (16-byte aligned
// rows: others take the direct kernel; F16's n_in 11000 is one of those).
TEST(MatmulParityStaged, SingleTokenProductEqualsTheDirectKernelBitwise) {
  RF_REQUIRE_GPU_PAIR(pair);
  PolicyGuard guard;
  for (const Type t : kTypes) {
    if (split_code_bytes(t) > 0 || t == Type::F32) continue;
    std::mt19937 rng(313 + static_cast<unsigned>(t));
    const int64_t block = quant::traits(t).block_size;
    const std::vector<int64_t> lengths = block == 1 ? std::vector<int64_t>{512, 11000}
                                         : block == 256 ? std::vector<int64_t>{2048, 10240}
                                                        : std::vector<int64_t>{512, 8448};
    for (const int64_t n_in : lengths) {
      const int64_t n_out = 37;
      const HostWeight hw = make_weight(rng, t, n_in, n_out);
      auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in));
      const Tensor xg = pair.gpu_f32(x, n_in);
      std::vector<float> outs[2];
      for (const int staged : {0, 1}) {
        matmul_policy().staged_matvec = staged;
        const Tensor og = pair.gpu_zeros(n_out, 1);
        pair.gpu().matmul(og, xg, wg);
        outs[staged] = pair.download(pair.gpu(), og);
      }
      ASSERT_EQ(outs[0], outs[1]) << label(t) << " n_in " << n_in << ": staged != direct";
      expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {1}, tol_factor(t), "staged");  // and the CPU
    }
  }
}

// A norm, a residual add + norm, or a SiLU gate followed by an int8 product of its output runs as one kernel that
// also quantizes the rows: the product's result and the op's own output are bitwise those of the separate kernels
// (forced here by reading the op's output back before the product).
TEST_P(MatmulParity, NormAndSiluFusedWithTheQuantizationGiveTheSeparateKernelsBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!has_int8_matvec(t, 1)) GTEST_SKIP() << label(t) << " has no int8 product";
  std::mt19937 rng(4242 + static_cast<unsigned>(t));
  const int64_t n_in = 1280, n_out = 40;
  const HostWeight hw = make_weight(rng, t, n_in, n_out);
  auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
  backend::Backend& be = pair.gpu();
  for (const int64_t n_tok : {int64_t{1}, int64_t{3}}) {
    const auto rand = [&](int64_t rows) { return random_floats(rng, static_cast<size_t>(n_in * rows)); };
    const std::vector<float> x = rand(n_tok), x2 = rand(n_tok), gamma = rand(1), gate = rand(n_tok), up = rand(n_tok);
    for (int op = 0; op < 3; ++op) {  // norm, add + norm, silu
      std::vector<float> act[2], prod[2];
      for (int fused = 0; fused < 2; ++fused) {
        const Tensor a = pair.gpu_f32(op == 2 ? gate : x, n_in), b = pair.gpu_f32(op == 2 ? up : x2, n_in);
        const Tensor g = pair.gpu_f32(gamma, n_in), y = pair.gpu_zeros(n_in, n_tok), o = pair.gpu_zeros(n_out, n_tok);
        if (op == 0) be.rms_norm(y, a, g, 1e-5f);
        if (op == 1) {
          be.add(a, a, b);
          be.rms_norm(y, a, g, 1e-5f);
        }
        if (op == 2) be.silu_mul(y, a, b);
        if (!fused) act[0] = pair.download(be, y);  // runs the op alone before the product
        be.matmul(o, y, wg);
        prod[fused] = pair.download(be, o);
        if (fused) act[1] = pair.download(be, y);
      }
      ASSERT_EQ(act[0], act[1]) << label(t) << " op " << op << " n_tok " << n_tok << ": the op's output differs";
      ASSERT_EQ(prod[0], prod[1]) << label(t) << " op " << op << " n_tok " << n_tok << ": the product differs";
    }
  }
}

// F16 / BF16 batches of 2 to 32 tokens (matmul_mmf, CUDA only): within float summation order of the CPU, the
// backend's route is the kernel itself, and a token's row is bitwise the same in every batch it is part of. Rows of
// 8 K steps (two splits) and 200 outputs (a partial row tile).
TEST_P(MatmulParity, MmfBatchesMatchCpuAndDoNotDependOnTheBatch) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (t != Type::F16 && t != Type::BF16) GTEST_SKIP() << label(t) << " is not a 16-bit float format";
  std::mt19937 rng(9090 + static_cast<unsigned>(t));
  const int64_t n_in = 1024, n_out = 200;
  const HostWeight hw = make_weight(rng, t, n_in, n_out);
  auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
  const WeightView view{wg.data, t, n_in, n_out, 1, wg.nb1, wg.nb2};
  if (!has_mmf_matmul(view, 8)) GTEST_SKIP() << "no matmul_mmf in this build";
  expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {2, 3, 8, 9, 17, 32}, tol_factor(t), "mmf");
  const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in * 32));
  const Tensor xt = pair.gpu_f32(x, n_in);
  const std::vector<float> all = gpu_product(pair, xt, wg, n_out);
  for (const auto& [first, n] : {std::pair<int64_t, int64_t>{0, 2}, {5, 9}, {0, 17}, {30, 2}}) {
    const int64_t m = n;
    const std::vector<float> part = gpu_product(pair, xt.rows(first, m), wg, n_out);
    for (int64_t k = 0; k < m; ++k) {
      for (int64_t r = 0; r < n_out; ++r) {
        ASSERT_EQ(part[k * n_out + r], all[(first + k) * n_out + r])
            << label(t) << " token " << first + k << " in a batch of " << m << " against 32, row " << r;
      }
    }
  }
  // The kernel called directly (rows x of n_in, weight v of n_rows) gives the backend's bits (the backend routes
  // these batches to it).
  const auto direct = [&](const Tensor& rows, const WeightView& v, int64_t n_rows) {
    auto buf = pair.gpu().alloc(static_cast<size_t>(n_in * rows.ne1) * sizeof(uint16_t));
    auto* act16 = static_cast<uint16_t*>(buf->data());
    const Tensor o = pair.gpu_zeros(n_rows, rows.ne1);
    const gpuStream_t stream = pair.gpu().stream();
    EXPECT_TRUE(round_activations_16bit(activation_type(t), static_cast<const float*>(rows.data),
                                        static_cast<int64_t>(rows.nb1 / sizeof(float)), n_in, rows.ne1, act16, n_in,
                                        stream)
                    .ok());
    EXPECT_TRUE(matmul_mmf(v, act16, n_in, rows.ne1, static_cast<float*>(o.data), n_rows, stream).ok());
    return pair.download(pair.gpu(), o);
  };
  ASSERT_EQ(direct(xt.rows(0, 9), view, n_out), gpu_product(pair, xt.rows(0, 9), wg, n_out))
      << label(t) << ": the backend's product is not matmul_mmf's";
  // Products of the same rows in a row round them once (the second reads the first's rounded rows) and give each
  // product its bits alone; rows written in between (an add into them) are rounded again.
  {
    const HostWeight h2 = make_weight(rng, t, n_in, n_out);
    auto [w2, w2c] = pair.weight(t, n_in, n_out, 1, h2.bytes);
    (void)w2c;
    const std::vector<float> x8(x.begin(), x.begin() + 8 * n_in), y8 = random_floats(rng, x8.size());
    std::vector<float> sum8(x8.size());
    for (size_t i = 0; i < x8.size(); ++i) sum8[i] = x8[i] + y8[i];
    const Tensor xs = pair.gpu_f32(x8, n_in), ys = pair.gpu_f32(y8, n_in);
    const Tensor o1 = pair.gpu_zeros(n_out, 8), o2 = pair.gpu_zeros(n_out, 8), o3 = pair.gpu_zeros(n_out, 8);
    pair.gpu().matmul(o1, xs, wg);
    pair.gpu().matmul(o2, xs, w2);  // reads the rows o1's product rounded
    pair.gpu().add(xs, xs, ys);
    pair.gpu().matmul(o3, xs, w2);  // rounds the new rows
    ASSERT_EQ(pair.download(pair.gpu(), o2), gpu_product(pair, pair.gpu_f32(x8, n_in), w2, n_out)) << label(t);
    ASSERT_EQ(pair.download(pair.gpu(), o3), gpu_product(pair, pair.gpu_f32(sum8, n_in), w2, n_out)) << label(t);
  }
  // A batch whose grid fills the GPU (9 row tiles x 30 token tiles) sums the weight's two K splits inside each block:
  // the bits of the split launch a lone token gets.
  const int64_t n_rows = 576, n_big = 960;
  const HostWeight hb = make_weight(rng, t, n_in, n_rows);
  auto [wb, wbc] = pair.weight(t, n_in, n_rows, 1, hb.bytes);
  (void)wbc;
  const WeightView big{wb.data, t, n_in, n_rows, 1, wb.nb1, wb.nb2};
  const Tensor xb = pair.gpu_f32(random_floats(rng, static_cast<size_t>(n_in * n_big)), n_in);
  const std::vector<float> all_big = direct(xb, big, n_rows);
  for (const int64_t k : {int64_t{0}, int64_t{517}, n_big - 1}) {
    const std::vector<float> alone = direct(xb.rows(k, 1), big, n_rows);
    for (int64_t r = 0; r < n_rows; ++r) {
      ASSERT_EQ(alone[r], all_big[k * n_rows + r]) << label(t) << " token " << k << " of " << n_big << ", row " << r;
    }
  }
}

// The integer tensor-core product (CUDA only) for 2 to 130 tokens: within float summation order of the CPU, and a
// token's row bitwise the same in every batch it is part of (K order and splits depend on the weight alone).
TEST_P(MatmulParity, MmqBatchesMatchCpuAndDoNotDependOnTheBatch) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!has_mmq_matmul(t)) GTEST_SKIP() << label(t) << " has no integer tensor-core product in this build";
  PolicyGuard guard;
  matmul_policy().mmq_min_tokens = 2;
  matmul_policy().mmq_max_tokens = 1 << 30;
  matmul_policy().mmq_fuse_split_blocks = 0;  // K split over blocks as the weight's shape asks
  matmul_policy().blas_min_tokens = 0;        // 130 tokens: two token tiles of the widest launch
  std::mt19937 rng(555 + static_cast<unsigned>(t));
  for (const int64_t n_in : {int64_t{768}, int64_t{4096}}) {
    const int64_t n_out = n_in == 768 ? 133 : 70;
    const HostWeight hw = make_weight(rng, t, n_in, n_out);
    auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
    expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {2, 3, 8, 9, 16, 17, 32, 33, 70, 130}, tol_factor(t),
                         "mmq");
    const int64_t n_all = 40;
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in * n_all));
    const Tensor xg = pair.gpu_f32(x, n_in);
    const Tensor og = pair.gpu_zeros(n_out, n_all);
    pair.gpu().matmul(og, xg, wg);
    const std::vector<float> all = pair.download(pair.gpu(), og);
    // The same launch unsplit, each block summing the weight's K splits apart and then in order (n_in 4096: 8
    // splits of 2 steps): the same bits.
    matmul_policy().mmq_fuse_split_blocks = 1;
    const Tensor of = pair.gpu_zeros(n_out, n_all);
    pair.gpu().matmul(of, xg, wg);
    ASSERT_EQ(pair.download(pair.gpu(), of), all) << label(t) << " n_in " << n_in << ": the unsplit launch differs";
    matmul_policy().mmq_fuse_split_blocks = 0;
    for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, 2}, {3, 5}, {1, 9}, {7, 17}, {5, 33}}) {
      const Tensor o = pair.gpu_zeros(n_out, count);
      pair.gpu().matmul(o, xg.rows(first, count), wg);
      const std::vector<float> part = pair.download(pair.gpu(), o);
      for (int64_t k = 0; k < count; ++k) {
        for (int64_t r = 0; r < n_out; ++r) {
          ASSERT_EQ(part[k * n_out + r], all[(first + k) * n_out + r])
              << label(t) << " n_in " << n_in << ": token " << first + k << " row " << r << " differs between a batch of "
              << count << " and one of " << n_all;
        }
      }
    }
  }
}

// Long batches through the vendor BLAS (blas.h; CUDA builds, which find the toolkit's cuBLAS: there a missing one
// fails under ROCMFORGE_REQUIRE_GPU=1). F16 / BF16 weights meet the CPU's factors exactly; quantized weights are
// decoded to F16 and their rounded activations carried as F16, so their bound is the F16 tiles' one. Then the
// conversion kept for the next product of the same rows (q / k / v) must be dropped once an op rewrites them.
TEST_P(MatmulParity, BlasMatchesCpuAndSeesRewrittenRows) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  if (!BlasContext::supports(t, row_len_for(t, false))) GTEST_SKIP() << label(t) << " does not go through the BLAS";
  if (auto probe = BlasContext::create(pair.gpu().stream()); !probe.ok()) {
#if defined(RF_GPU_CUDA)
    if (gpu_required()) FAIL() << probe.error_message();
#endif
    GTEST_SKIP() << probe.error_message();
  }
  PolicyGuard guard;
  matmul_policy().blas_min_tokens = 2;
  std::mt19937 rng(777 + static_cast<unsigned>(t));
  const bool exact = t == Type::F16 || t == Type::BF16;
  const float factor = exact ? tol_factor(t) : 2.0f * 4.8828125e-4f + tol_factor(t);
  for (const bool odd : {false, true}) {
    const int64_t n_in = row_len_for(t, odd);
    const int64_t n_out = odd ? 131 : 67;
    const HostWeight hw = make_weight(rng, t, n_in, n_out);
    auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
    expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {2, 5, 33, 130}, factor, "blas");
    const int64_t n_tok = 9;
    const Tensor x = pair.gpu_f32(random_floats(rng, static_cast<size_t>(n_in * n_tok)), n_in);
    const Tensor o1 = pair.gpu_zeros(n_out, n_tok), o2 = pair.gpu_zeros(n_out, n_tok), o3 = pair.gpu_zeros(n_out, n_tok);
    pair.gpu().matmul(o1, x, wg);
    pair.gpu().matmul(o2, x, wg);  // the rows converted by the first product
    pair.gpu().add(x, x, x);       // rewrites them: doubled, which every rounding keeps exactly doubled
    pair.gpu().matmul(o3, x, wg);
    const std::vector<float> a = pair.download(pair.gpu(), o1), b = pair.download(pair.gpu(), o2),
                             c = pair.download(pair.gpu(), o3);
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i], b[i]) << label(t) << " element " << i << " of the product of reused converted rows";
      ASSERT_NEAR(c[i], 2.0f * a[i], 1e-5f * std::fabs(a[i]) + 1e-6f)
          << label(t) << " element " << i << " after the rows were rewritten";
    }
  }
}

// Decode matmuls of one input are deferred and launched together (q / k / v, gate / up): a group of two of one
// type, one of another type, then a matmul that overwrites its own input and one that must read the new values.
TEST(GpuMatmulGroups, DeferredDecodeGroupsMatchCpuAndRespectInPlaceWrites) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(99);
  const int64_t n = 512;
  for (const auto& [t, n_tok] : {std::pair{Type::Q4_0, 1}, std::pair{Type::Q4_K, 1}, std::pair{Type::Q4_0, 6},
                                 std::pair{Type::F16, 1}, std::pair{Type::BF16, 1}}) {
    const HostWeight ha = make_weight(rng, t, n, 96), hb = make_weight(rng, t, n, 64);
    const HostWeight hc = make_weight(rng, Type::Q6_K, n, 32), hsq = make_weight(rng, t, n, n);
    auto [ag, ac] = pair.weight(t, n, 96, 1, ha.bytes);
    auto [bg, bc] = pair.weight(t, n, 64, 1, hb.bytes);
    auto [cg, cc] = pair.weight(Type::Q6_K, n, 32, 1, hc.bytes);
    auto [sg, sc] = pair.weight(t, n, n, 1, hsq.bytes);
    const std::vector<float> x = random_floats(rng, static_cast<size_t>(n * n_tok));
    const Tensor xg = pair.gpu_f32(x, n), xc = pair.cpu_f32(x, n);
    std::vector<Tensor> og, oc;
    for (const int64_t rows : {96, 64, 32, 64}) {
      og.push_back(pair.gpu_zeros(rows, n_tok));
      oc.push_back(pair.cpu_zeros(rows, n_tok));
    }
    for (int side = 0; side < 2; ++side) {
      backend::Backend& be = side == 0 ? static_cast<backend::Backend&>(pair.gpu()) : pair.cpu();
      const std::vector<Tensor>& o = side == 0 ? og : oc;
      const Tensor xs = side == 0 ? xg : xc;
      be.matmul(o[0], xs, side == 0 ? ag : ac);
      be.matmul(o[1], xs, side == 0 ? bg : bc);
      be.matmul(o[2], xs, side == 0 ? cg : cc);
      be.matmul(xs, xs, side == 0 ? sg : sc);  // in place: x = x * S^T
      be.matmul(o[3], xs, side == 0 ? bg : bc);  // must see the new x
    }
    for (size_t i = 0; i < og.size(); ++i) {
      const auto g = pair.download(pair.gpu(), og[i]), c = pair.download(pair.cpu(), oc[i]);
      float scale = 0.0f;
      for (const float v : c) scale = std::max(scale, std::fabs(v));
      expect_close(g, c, {1e-3f * scale + 1e-5f},
                   label(t) + " grouped output " + std::to_string(i) + " tokens " + std::to_string(n_tok));
    }
  }
}

// Single-token F16 / BF16 products of one input run as one launch that rounds the floats itself: each product gets
// bitwise what it gets alone (a download between the products flushes each one by itself) and what the rounding
// launch + direct kernel give (staged_matvec 0), for row counts that end inside a launch block.
TEST(GpuMatmulGroups, FloatDecodeGroupsGiveEachProductItsAloneBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  PolicyGuard guard;
  for (const Type t : {Type::F16, Type::BF16}) {
    for (const int64_t n_in : {int64_t{776}, int64_t{4096}}) {
      std::mt19937 rng(4242 + static_cast<unsigned>(t) + static_cast<unsigned>(n_in));
      const int64_t n_outs[3] = {37, 29, 45};
      std::vector<HostWeight> hws;
      std::vector<std::pair<Tensor, Tensor>> ws;
      for (const int64_t n_out : n_outs) {
        hws.push_back(make_weight(rng, t, n_in, n_out));
        ws.push_back(pair.weight(t, n_in, n_out, 1, hws.back().bytes));
      }
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in));
      const Tensor xg = pair.gpu_f32(x, n_in);
      WeightView wv;
      wv.data = ws[0].first.data;
      wv.type = t;
      wv.n_in = n_in;
      wv.n_out = n_outs[0];
      wv.nb1 = ws[0].first.nb1;
      ASSERT_TRUE(has_float_matvec_multi(wv, static_cast<const float*>(xg.data), 1))
          << label(t) << " n_in " << n_in << " should take the grouped launch";
      const auto run = [&](bool grouped) {
        std::vector<std::vector<float>> outs(3);
        Tensor og[3];
        for (int i = 0; i < 3; ++i) {
          og[i] = pair.gpu_zeros(n_outs[i], 1);
          pair.gpu().matmul(og[i], xg, ws[i].first);
          if (!grouped) outs[i] = pair.download(pair.gpu(), og[i]);
        }
        if (grouped) {
          for (int i = 0; i < 3; ++i) outs[i] = pair.download(pair.gpu(), og[i]);
        }
        return outs;
      };
      const auto grouped = run(true), alone = run(false);
      matmul_policy().staged_matvec = 0;  // the rounding launch, then the direct kernel
      const auto direct = run(false);
      matmul_policy().staged_matvec = 1;
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(grouped[i], alone[i]) << label(t) << " n_in " << n_in << " product " << i << ": grouped != alone";
        ASSERT_EQ(grouped[i], direct[i]) << label(t) << " n_in " << n_in << " product " << i << ": grouped != direct";
        expect_batches_match(pair, rng, t, hws[i], ws[i].first, ws[i].second, n_in, n_outs[i], {1}, tol_factor(t),
                             "grouped");
      }
    }
  }
}

TEST_P(MatmulParity, MoeMatmulMatchesCpuWithSharedAndPerSlotInputs) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  std::mt19937 rng(99 + static_cast<unsigned>(t));
  const int64_t n_in = row_len_for(t, false), n_out = 37, n_expert = 5, n_used = 2;
  const HostWeight hw = make_weight(rng, t, n_in, n_out * n_expert);
  auto [wg, wc] = pair.weight(t, n_in, n_out, n_expert, hw.bytes);
  for (const int64_t n : {1, 7}) {
    std::vector<int32_t> ids(static_cast<size_t>(n * n_used));
    for (int64_t k = 0; k < n; ++k) {  // two distinct experts per token
      ids[k * n_used] = static_cast<int32_t>(rng() % n_expert);
      ids[k * n_used + 1] = static_cast<int32_t>((ids[k * n_used] + 1 + rng() % (n_expert - 1)) % n_expert);
    }
    const Tensor idg = pair.make(pair.gpu(), Type::I32, n_used, n, ids.data());
    const Tensor idc = pair.make(pair.cpu(), Type::I32, n_used, n, ids.data());
    for (const bool shared : {true, false}) {
      const int64_t rows = shared ? n : n * n_used;
      const std::vector<float> x = random_floats(rng, static_cast<size_t>(n_in * rows));
      const Tensor og = pair.gpu_zeros(n_out, n * n_used), oc = pair.cpu_zeros(n_out, n * n_used);
      pair.gpu().moe_matmul(og, pair.gpu_f32(x, n_in), wg, idg);
      pair.cpu().moe_matmul(oc, pair.cpu_f32(x, n_in), wc, idc);
      std::vector<float> tol(static_cast<size_t>(n_out * n * n_used));
      for (int64_t p = 0; p < n * n_used; ++p) {
        const int64_t e = ids[p], a = shared ? p / n_used : p;
        for (int64_t r = 0; r < n_out; ++r) {
          double s = 0.0;
          for (int64_t i = 0; i < n_in; ++i) s += std::fabs(hw.values[(e * n_out + r) * n_in + i] * x[a * n_in + i]);
          tol[p * n_out + r] = static_cast<float>(s) * tol_factor(t) + 1e-6f;
        }
      }
      expect_close(pair.download(pair.gpu(), og), pair.download(pair.cpu(), oc), tol,
                   label(t) + " moe n " + std::to_string(n) + (shared ? " shared" : " per-slot"));
    }
  }
}

TEST_P(MatmulParity, EmbedMatchesCpuDequantization) {
  RF_REQUIRE_GPU_PAIR(pair);
  const Type t = GetParam();
  std::mt19937 rng(7 + static_cast<unsigned>(t));
  const int64_t n_embd = row_len_for(t, true), n_vocab = 29;
  const HostWeight hw = make_weight(rng, t, n_embd, n_vocab);
  auto [wg, wc] = pair.weight(t, n_embd, n_vocab, 1, hw.bytes);
  backend::Batch b;
  for (int32_t tok : {3, 0, 28, 3, 17}) b.tokens.push_back(tok);
  b.positions = {0, 1, 2, 3, 4};
  b.seq = {0, 0, 0, 0, 0};
  b.block_tables = {{0}};
  const auto bg = pair.gpu().prepare_batch(b);
  const auto bc = pair.cpu().prepare_batch(b);
  const Tensor og = pair.gpu_zeros(n_embd, 5), oc = pair.cpu_zeros(n_embd, 5);
  pair.gpu().embed(og, wg, *bg);
  pair.cpu().embed(oc, wc, *bc);
  const std::vector<float> want = pair.download(pair.cpu(), oc);
  float amax = 0.0f;
  for (float v : want) amax = std::max(amax, std::fabs(v));
  expect_close(pair.download(pair.gpu(), og), want, {amax * 1e-6f}, label(t) + " embed");
}

// The codebook, ternary and MXFP4 decoders follow the CPU reference operation for operation (and none of their steps
// is a multiply-add the compiler could fuse): decoded elements are bitwise quant::dequantize's. Many rows, so that
// random blocks reach a good part of every grid. Q4_0 / Q5_0 / Q8_0 / IQ4_NL / Q6_K / IQ4_XS / Q3_K too, whose GGUF
// rows load_weight rearranges into split rows (matmul.h SplitLayout), 16-byte padded ones included (17 blocks of 32,
// 3 of 256).
TEST(GpuMatmul, RareFormatEmbeddingsAreBitwiseTheCpuDequantization) {
  RF_REQUIRE_GPU_PAIR(pair);
  const std::pair<Type, int64_t> cases[] = {
      {Type::IQ2_XXS, 1024}, {Type::IQ2_XS, 1024}, {Type::IQ2_S, 1024}, {Type::IQ3_XXS, 1024}, {Type::IQ3_S, 1024},
      {Type::IQ1_S, 1024},   {Type::IQ1_M, 1024},  {Type::TQ1_0, 1024}, {Type::TQ2_0, 1024},   {Type::MXFP4, 1024},
      {Type::Q4_0, 1024},    {Type::Q4_0, 544},    {Type::Q8_0, 1024},  {Type::Q8_0, 544},   {Type::IQ4_NL, 1024},
      {Type::IQ4_NL, 544},   {Type::Q6_K, 1024},   {Type::Q6_K, 768},   {Type::IQ4_XS, 1024}, {Type::IQ4_XS, 768},
      {Type::Q3_K, 1024},    {Type::Q3_K, 768},    {Type::Q5_0, 1024},  {Type::Q5_0, 544}};
  for (const auto& [t, n_embd] : cases) {
    std::mt19937 rng(31 + static_cast<unsigned>(t));
    const int64_t n_vocab = 256;
    const HostWeight hw = make_weight(rng, t, n_embd, n_vocab);
    auto [wg, wc] = pair.weight(t, n_embd, n_vocab, 1, hw.bytes);
    backend::Batch b;
    for (int32_t tok = 0; tok < n_vocab; ++tok) {
      b.tokens.push_back(tok);
      b.positions.push_back(0);  // embed reads only the token ids
      b.seq.push_back(0);
    }
    b.block_tables = {{0}};
    const auto bg = pair.gpu().prepare_batch(b);
    const Tensor og = pair.gpu_zeros(n_embd, n_vocab);
    pair.gpu().embed(og, wg, *bg);
    const std::vector<float> got = pair.download(pair.gpu(), og);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], hw.values[i]) << label(t) << " row " << i / n_embd << " element " << i % n_embd;
    }
  }
}

// A random weight of type t, checked against the CPU in batches of 1 to 100 tokens (`tag`), and 100 random
// activation rows for the caller's batch-invariance checks.
std::pair<Tensor, Tensor> invariant_case(BackendPair& pair, std::mt19937& rng, Type t, int64_t n_in, int64_t n_out,
                                         const std::string& tag) {
  const HostWeight hw = make_weight(rng, t, n_in, n_out);
  auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
  expect_batches_match(pair, rng, t, hw, wg, wc, n_in, n_out, {1, 7, 33, 100}, tol_factor(t), tag);
  return {wg, pair.gpu_f32(random_floats(rng, static_cast<size_t>(n_in * 100)), n_in)};
}

// A batch-invariant backend (serve's default) runs every batch of a weight through one int8 kernel: matmul_mmq
// where it takes the weight (the K-quants' rows of 768 here), the int8 matrix-vector product where it cannot (rows
// of 544, not whole 256-element spans) or where the policy asks for it. Each token of batches of 1 to 100 gets
// bitwise the bits it gets alone, and the CPU's within tolerance.
TEST(GpuMatmul, BatchInvariantProductsGiveEveryTokenItsSingleTokenBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  PolicyGuard guard;
  InvariantScope invariant{pair.gpu()};
  std::mt19937 rng(61);
  const int default_stage = matmul_policy().stage_min_tokens;
  for (const bool matvec : {false, true}) {
    matmul_policy().invariant_matvec = matvec;
    std::vector<Type> types = {Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0,   Type::IQ4_NL,
                               Type::Q2_K, Type::Q3_K, Type::Q4_K, Type::Q5_K, Type::Q6_K, Type::IQ4_XS};
    // F16 / BF16 through matmul_mmf (CUDA builds: the only kernel that keeps their tokens' bits in any batch).
    if (mmf_fits(WeightView{nullptr, Type::F16, 640, 133, 1, 1280, 0})) {
      types.insert(types.end(), {Type::F16, Type::BF16});
    }
    for (const Type t : types) {
      // Rows of one partial staging tile (F16 / BF16: 5 K steps of matmul_mmf), and of 11008 (2.7 tiles of 4096;
      // two warps per row for Q5_K / Q6_K / Q8_0, one for Q4_0 / Q4_K).
      const int64_t small = quant::traits(t).block_size == 256 ? 768 : quant::traits(t).block_size == 1 ? 640 : 544;
      for (const int64_t n_in : {small, int64_t{11008}}) {
        const int64_t n_out = 133;
        const auto [wg, xg] = invariant_case(pair, rng, t, n_in, n_out, "batch-invariant");
        // The matrix-vector product with activations read from L2 (0), staged for every token group (2), and by
        // default; batches of 2, 4 and 100 tokens (groups of 2, 4 and 8 tokens, the last one part full).
        for (const int stage : matvec ? std::vector<int>{0, 2, default_stage} : std::vector<int>{default_stage}) {
          matmul_policy().stage_min_tokens = stage;
          const std::string what = label(t) + " x " + std::to_string(n_in) +
                                   (matvec ? " matvec, stage from " + std::to_string(stage) : " default");
          expect_tokens_as_alone(pair, xg, wg, n_out, {0, 37, 99}, what);
          expect_tokens_as_alone(pair, xg.rows(0, 4), wg, n_out, {0, 3}, what);
          expect_tokens_as_alone(pair, xg.rows(0, 2), wg, n_out, {1}, what);
        }
      }
    }
  }
}

// Float weights outside matmul_mmf (F32 everywhere; F16 / BF16 on HIP builds, emulated here with mmf off) in
// batch-invariant mode: the matrix-vector kernels for every batch size, so each token of batches of 1 to 100 gets
// bitwise its single-token bits (the tiles for 16 tokens and more, or the tensor-core tiles, would not).
TEST(GpuMatmul, BatchInvariantFloatProductsWithoutMmfGiveEveryTokenItsSingleTokenBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  PolicyGuard guard;
  matmul_policy().mmf_max_tokens = 0;
  InvariantScope invariant{pair.gpu()};
  std::mt19937 rng(63);
  for (const Type t : {Type::F32, Type::F16, Type::BF16}) {
    for (const int64_t n_in : {int64_t{100}, int64_t{640}, int64_t{4096}}) {
      const int64_t n_out = 133;
      const auto [wg, xg] = invariant_case(pair, rng, t, n_in, n_out, "batch-invariant float");
      const std::string what = label(t) + " x " + std::to_string(n_in) + " without mmf";
      expect_tokens_as_alone(pair, xg, wg, n_out, {0, 37, 99}, what);
      expect_tokens_as_alone(pair, xg.rows(0, 17), wg, n_out, {0, 16}, what);
      expect_tokens_as_alone(pair, xg.rows(0, 4), wg, n_out, {0, 3}, what);
      expect_tokens_as_alone(pair, xg.rows(0, 2), wg, n_out, {1}, what);
    }
  }
}

// A batch of kinds.size() tokens of one sequence, token i generated when kinds[i] is 1, with these output rows.
backend::Batch kind_batch(const std::vector<uint8_t>& kinds, std::vector<int32_t> outputs) {
  backend::Batch b;
  const auto n = static_cast<int32_t>(kinds.size());
  for (int32_t i = 0; i < n; ++i) {
    b.tokens.push_back(i % 7);
    b.positions.push_back(i);
    b.seq.push_back(0);
  }
  b.block_tables.emplace_back();
  for (int32_t i = 0; i * b.kv_block_size < n; ++i) b.block_tables[0].push_back(i);
  b.output_rows = std::move(outputs);
  b.generated = kinds;
  return b;
}

// In batch-invariant mode a token's product takes its kernel by the token's kind (Batch::generated of the live
// prepared batch): generated tokens the matrix-vector product, prompt tokens the tensor-core one (int8 weights mmq,
// F16 / BF16 matmul_mmf), each run of one kind apart. Every row of a mixed batch, of its output rows, of an
// all-generated batch and a lone generated token (the grouped single-token kernel) gets bitwise what its kind's
// kernel gives it in a one-kernel batch (the kernels are batch-invariant on their own, tested above).
TEST(GpuMatmul, BatchInvariantProductsTakeTheKernelOfEachTokensKind) {
  RF_REQUIRE_GPU_PAIR(pair);
  if (!has_mmq_matmul(Type::Q8_0)) GTEST_SKIP() << "no integer tensor-core product in this build: one kernel for all";
  PolicyGuard guard;
  GpuBackend& be = pair.gpu();
  InvariantScope invariant{be};
  EXPECT_TRUE(be.results_depend_on_kind());
  std::mt19937 rng(62);
  const int64_t n_tok = 40;
  std::vector<uint8_t> kinds(n_tok, 0);
  for (const int64_t i : {0, 1, 2, 20, 30, 31, 32, 39}) kinds[static_cast<size_t>(i)] = 1;
  const std::vector<int32_t> outputs = {1, 5, 20, 33, 39};  // kinds 1 0 1 0 1
  std::vector<Type> types = {Type::Q4_0, Type::Q8_0, Type::Q4_K, Type::Q5_K, Type::Q6_K};
  if (mmf_fits(WeightView{nullptr, Type::F16, 512, 133, 1, 1024, 0})) {  // CUDA builds: prompt tokens matmul_mmf
    types.insert(types.end(), {Type::F16, Type::BF16});
  }
  for (const Type t : types) {
    const int64_t n_in = quant::traits(t).block_size == 256 ? 768 : 512, n_out = 133;
    const HostWeight hw = make_weight(rng, t, n_in, n_out);
    auto [wg, wc] = pair.weight(t, n_in, n_out, 1, hw.bytes);
    (void)wc;
    const Tensor x = pair.gpu_f32(random_floats(rng, static_cast<size_t>(n_in * n_tok)), n_in);
    const Tensor xo = pair.gpu_f32(random_floats(rng, outputs.size() * static_cast<size_t>(n_in)), n_in);
    // The references, with no live batch: every row through one kernel.
    matmul_policy().invariant_matvec = true;
    const std::vector<float> matvec = gpu_product(pair, x, wg, n_out), matvec_o = gpu_product(pair, xo, wg, n_out);
    matmul_policy().invariant_matvec = false;
    const std::vector<float> mmq = gpu_product(pair, x, wg, n_out), mmq_o = gpu_product(pair, xo, wg, n_out);
    ASSERT_NE(matvec, mmq) << label(t) << ": the two kernels agree bitwise, so the routes cannot be told apart";
    std::vector<float> mixed, mixed_o, generated, lone;
    {
      const auto db = be.prepare_batch(kind_batch({1}, {0}));
      lone = gpu_product(pair, x.rows(0, 1), wg, n_out);
    }
    for (int64_t r = 0; r < n_out; ++r) ASSERT_EQ(lone[r], matvec[r]) << label(t) << " lone generated token, row " << r;
    {
      const auto db = be.prepare_batch(kind_batch(kinds, outputs));
      mixed = gpu_product(pair, x, wg, n_out);
      mixed_o = gpu_product(pair, xo, wg, n_out);
    }
    {
      const auto db = be.prepare_batch(kind_batch(std::vector<uint8_t>(n_tok, 1), {static_cast<int32_t>(n_tok) - 1}));
      generated = gpu_product(pair, x, wg, n_out);
    }
    for (int64_t k = 0; k < n_tok; ++k) {
      const std::vector<float>& want = kinds[static_cast<size_t>(k)] != 0 ? matvec : mmq;
      for (int64_t r = 0; r < n_out; ++r) {
        ASSERT_EQ(mixed[k * n_out + r], want[k * n_out + r]) << label(t) << " token " << k << " row " << r;
        ASSERT_EQ(generated[k * n_out + r], matvec[k * n_out + r]) << label(t) << " all generated, token " << k;
      }
    }
    for (size_t j = 0; j < outputs.size(); ++j) {
      const std::vector<float>& want = kinds[static_cast<size_t>(outputs[j])] != 0 ? matvec_o : mmq_o;
      for (int64_t r = 0; r < n_out; ++r) {
        const size_t at = j * static_cast<size_t>(n_out) + static_cast<size_t>(r);
        ASSERT_EQ(mixed_o[at], want[at]) << label(t) << " output row " << j << " row " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulParity, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<Type>& p) { return label(p.param); });

TEST(GpuMatmul, SupportedTypesMatchTheParityList) {
  for (Type t : kTypes) EXPECT_TRUE(weight_type_supported(t)) << label(t);
  EXPECT_FALSE(weight_type_supported(Type::Q8_K));
  // The list error messages print: exactly kTypes, in GGUF id order.
  std::vector<Type> sorted(std::begin(kTypes), std::end(kTypes));
  std::sort(sorted.begin(), sorted.end());
  std::string want;
  for (Type t : sorted) want += (want.empty() ? "" : ", ") + label(t);
  EXPECT_EQ(supported_weight_types(), want);
  EXPECT_EQ(activation_type(Type::Q4_K), Type::Q8_K);
  EXPECT_EQ(activation_type(Type::Q4_1), Type::Q8_1);
  EXPECT_EQ(activation_type(Type::F16), Type::F16);
  // The CPU's pairing (kernel_table.cpp): Q8_K for the codebook and ternary formats, Q8_0 for MXFP4.
  for (Type t : {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S, Type::IQ1_S, Type::IQ1_M,
                 Type::TQ1_0, Type::TQ2_0}) {
    EXPECT_EQ(activation_type(t), Type::Q8_K) << label(t);
  }
  EXPECT_EQ(activation_type(Type::MXFP4), Type::Q8_0);
}

}  // namespace
}  // namespace rf::gpu::test
