// Single-token products fused with the ops around them: a decode layer's chain of ops (output product + residual add
// + norm, gate / up, SiLU + down + residual add, norm + q / k / v) gives the same bits with the ops as separate
// kernels, fused into the products' prologues (matmul.h matvec_int8_fused, MatmulPolicy::fused_matvec) and with the
// residual adds in the products' launches (ResidualAdd, MatmulPolicy::residual_add), for every weight type the
// fused kernel takes; and the steps did take those launches (fused_matvec_launches, residual_add_launches).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/gpu/matmul.h"
#include "backend_pair.h"
#include "weight_support.h"

namespace rf::gpu::test {
namespace {

struct Chain {
  std::vector<std::vector<float>> values;  // every tensor the chain writes, in order
  int64_t fused = 0;                       // fused launches it made
  int64_t adds = 0;                        // launches with a residual add (residual_add_launches)
};

// The ops of forward.cpp's attention output and feed-forward blocks for one token, then the next layer's norm and
// q / k / v; weights: wo, gate, up, down, q, k, v.
Chain run_chain(BackendPair& pair, const std::vector<std::pair<Tensor, Tensor>>& w, int64_t n_embd, int64_t n_ff,
                const int64_t (&n_qkv)[3], const std::vector<float>& resid, const std::vector<float>& att,
                const std::vector<float>& gamma1, const std::vector<float>& gamma2) {
  backend::Backend& be = pair.gpu();
  const int64_t before = fused_matvec_launches(), adds_before = residual_add_launches();
  const Tensor x = pair.gpu_f32(resid, n_embd), a = pair.gpu_f32(att, n_embd);
  const Tensor g1 = pair.gpu_f32(gamma1, n_embd), g2 = pair.gpu_f32(gamma2, n_embd);
  const Tensor xb = pair.gpu_zeros(n_embd, 1), y = pair.gpu_zeros(n_embd, 1);
  const Tensor gate = pair.gpu_zeros(n_ff, 1), up = pair.gpu_zeros(n_ff, 1), act = pair.gpu_zeros(n_ff, 1);
  const Tensor down = pair.gpu_zeros(n_embd, 1), y2 = pair.gpu_zeros(n_embd, 1);
  Tensor qkv[3];
  for (int i = 0; i < 3; ++i) qkv[i] = pair.gpu_zeros(n_qkv[i], 1);
  be.matmul(xb, a, w[0].first);
  be.add(x, x, xb);
  be.rms_norm(y, x, g1, 1e-5f);
  be.matmul(gate, y, w[1].first);
  be.matmul(up, y, w[2].first);
  be.silu_mul(act, gate, up);
  be.matmul(down, act, w[3].first);
  be.add(x, down, x);  // the sum's operands the other way round
  be.rms_norm(y2, x, g2, 1e-5f);
  for (int i = 0; i < 3; ++i) be.matmul(qkv[i], y2, w[4 + i].first);
  Chain c;
  for (const Tensor& t : {xb, y, gate, up, act, down, x, y2, qkv[0], qkv[1], qkv[2]}) {
    c.values.push_back(pair.download(be, t));
  }
  c.fused = fused_matvec_launches() - before;
  c.adds = residual_add_launches() - adds_before;
  return c;
}

struct ChainCase {
  Type main, v;  // v: the type of the v product (Q6_K for the Q4_K_M / Q5_K_M mixes)
  int64_t n_embd, n_ff;
  // With both fusions: the launches that fuse an op (3: the norms and the SiLU gate; products of two warps per row
  // fall back to the kernels) and the residual adds in separate products' launches (1: the output product's).
  int64_t fused = 3, fused_adds = 1;
};

TEST(FusedMatvec, DecodeLayerChainGivesTheSeparateKernelsBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  PolicyGuard guard;
  const ChainCase cases[] = {
      {Type::Q4_0, Type::Q4_0, 1024, 768},
      {Type::Q4_1, Type::Q4_1, 512, 1024},
      {Type::Q5_0, Type::Q5_0, 512, 1024},
      {Type::Q5_1, Type::Q5_1, 512, 1024},
      {Type::Q8_0, Type::Q8_0, 1024, 768},
      {Type::IQ4_NL, Type::IQ4_NL, 512, 1024},
      {Type::Q4_K, Type::Q6_K, 1024, 768},
      {Type::Q5_K, Type::Q6_K, 1024, 768},
      {Type::Q6_K, Type::Q6_K, 512, 1280},
      {Type::Q4_K, Type::Q4_K, 2048, 5632},
      {Type::Q4_0, Type::Q4_0, 4096, 11008},
      // Two warps per row (split_k; the first warp of a row group stores row and sum), where the prologue fusion
      // falls back: the down product; the output product, gate / up and q / k / v.
      {Type::Q6_K, Type::Q6_K, 512, 10240, 2, 2},
      {Type::Q8_0, Type::Q8_0, 4096, 2048, 1, 1},
  };
  for (const ChainCase& cc : cases) {
    const std::string what =
        label(cc.main) + " / " + label(cc.v) + " " + std::to_string(cc.n_embd) + " x " + std::to_string(cc.n_ff);
    std::mt19937 rng(31337 + static_cast<unsigned>(cc.main) + static_cast<unsigned>(cc.n_embd));
    const int64_t n_qkv[3] = {cc.n_embd, cc.n_embd / 4, cc.n_embd / 4};
    const struct {
      Type t;
      int64_t n_in, n_out;
    } shapes[] = {{cc.main, cc.n_embd, cc.n_embd}, {cc.main, cc.n_embd, cc.n_ff},  {cc.main, cc.n_embd, cc.n_ff},
                  {cc.v, cc.n_ff, cc.n_embd},      {cc.main, cc.n_embd, n_qkv[0]}, {cc.main, cc.n_embd, n_qkv[1]},
                  {cc.v, cc.n_embd, n_qkv[2]}};
    std::vector<std::pair<Tensor, Tensor>> w;
    for (const auto& s : shapes)
      w.push_back(pair.weight(s.t, s.n_in, s.n_out, 1, make_weight(rng, s.t, s.n_in, s.n_out).bytes));
    const auto rand = [&](int64_t n, float scale) { return random_floats(rng, static_cast<size_t>(n), scale); };
    const std::vector<float> resid = rand(cc.n_embd, 4.0f), att = rand(cc.n_embd, 1.0f);
    const std::vector<float> gamma1 = rand(cc.n_embd, 1.0f), gamma2 = rand(cc.n_embd, 1.0f);
    // 0: separate kernels; 1: the ops fused into the products' prologues and the adds into the products' launches
    // (the default for 32-element formats); 2: the adds only (the default for the others).
    Chain chains[3];
    for (const int mode : {0, 1, 2}) {
      matmul_policy().fused_matvec = mode == 1 ? 1 : 0;
      matmul_policy().residual_add = mode != 0;
      chains[mode] = run_chain(pair, w, cc.n_embd, cc.n_ff, n_qkv, resid, att, gamma1, gamma2);
    }
    EXPECT_EQ(chains[0].fused + chains[0].adds + chains[2].fused, 0) << what;
    EXPECT_EQ(chains[1].fused, cc.fused) << what;
    EXPECT_EQ(chains[1].adds, cc.fused_adds) << what;
    EXPECT_EQ(chains[2].adds, 2) << what;  // the output product's and the down product's
    for (const int mode : {1, 2}) {
      for (size_t i = 0; i < chains[0].values.size(); ++i) {
        ASSERT_EQ(chains[mode].values[i], chains[0].values[i])
            << what << ", mode " << mode << ": tensor " << i << " of the chain differs";
      }
    }
  }
}

}  // namespace
}  // namespace rf::gpu::test
