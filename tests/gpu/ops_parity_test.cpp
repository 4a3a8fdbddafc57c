// GPU element-wise ops, rope, paged KV store + attention and MoE routing against the scalar CPU backend, on
// random data with odd sizes and batches of 1, 7 and 33 tokens.
//
// Tolerances (absolute, values of order 1): rms_norm / add / silu_mul / moe_combine 1e-5 relative to the row's
// largest value (float vs double sums, expf vs std::exp); rope 2e-5 (cosf / sinf vs the C library); attention
// with an F32 cache 1e-4, with an F16 cache 2e-3 (the CPU rounds each probability to F16 before weighting V,
// the GPU's online softmax cannot); kv_store F16 caches bit-exact (both round to nearest even), F32 exact;
// moe_route: identical expert ids, weights 1e-6.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/matmul.h"
#include "quant/quant.h"
#include "backend_pair.h"

namespace rf::gpu::test {
namespace {

using quant::Type;

// A batch of n tokens of one sequence at positions start.. (block table: shuffled physical blocks).
backend::Batch seq_batch(std::mt19937& rng, int64_t n, int32_t start, int32_t n_blocks) {
  backend::Batch b;
  std::vector<int32_t> blocks(static_cast<size_t>(n_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  b.block_tables = {blocks};
  for (int64_t i = 0; i < n; ++i) {
    b.tokens.push_back(0);
    b.positions.push_back(start + static_cast<int32_t>(i));
    b.seq.push_back(0);
  }
  return b;
}

float row_scale(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

TEST(GpuOpsParity, RmsNormAddSiluMulAndGetRowsMatchCpu) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(5);
  // 1024 / 4096: rows of whole 256-element chunks (the register-resident norm, one chunk per warp); 12288: 48 chunks,
  // more than the block's warps; 16640: 65 chunks, the general one.
  for (const int64_t ne0 : {1, 67, 4099, 1024, 4096, 12288, 16640}) {
    for (const int64_t n : {1, 7, 33}) {
      const std::string at = " ne0 " + std::to_string(ne0) + " n " + std::to_string(n);
      const auto x = random_floats(rng, static_cast<size_t>(ne0 * n), 3.0f);
      const auto y = random_floats(rng, static_cast<size_t>(ne0 * n));
      const auto w = random_floats(rng, static_cast<size_t>(ne0));
      Tensor xg = pair.gpu_f32(x, ne0), xc = pair.cpu_f32(x, ne0);
      const Tensor yg = pair.gpu_f32(y, ne0), yc = pair.cpu_f32(y, ne0);
      const Tensor wg = pair.gpu_f32(w, ne0), wc = pair.cpu_f32(w, ne0);
      Tensor og = pair.gpu_zeros(ne0, n), oc = pair.cpu_zeros(ne0, n);

      pair.gpu().rms_norm(og, xg, wg, 1e-5f);
      pair.cpu().rms_norm(oc, xc, wc, 1e-5f);
      auto want = pair.download(pair.cpu(), oc);
      expect_close(pair.download(pair.gpu(), og), want, {row_scale(want) * 1e-5f}, "rms_norm" + at);
      pair.gpu().rms_norm(og, xg, Tensor{}, 1e-6f);  // no weight
      pair.cpu().rms_norm(oc, xc, Tensor{}, 1e-6f);
      want = pair.download(pair.cpu(), oc);
      expect_close(pair.download(pair.gpu(), og), want, {row_scale(want) * 1e-5f}, "rms_norm no weight" + at);

      pair.gpu().add(og, xg, yg);
      pair.cpu().add(oc, xc, yc);
      want = pair.download(pair.cpu(), oc);
      expect_close(pair.download(pair.gpu(), og), want, {0.0f}, "add" + at);
      pair.gpu().add(og, xg, wg);  // one row broadcast (bias)
      pair.cpu().add(oc, xc, wc);
      want = pair.download(pair.cpu(), oc);
      expect_close(pair.download(pair.gpu(), og), want, {0.0f}, "add broadcast" + at);
      {  // the residual add, then the norm of its sum: one kernel on the GPU
        const Tensor sg = pair.gpu_zeros(ne0, n), sc = pair.cpu_zeros(ne0, n);
        const Tensor ng = pair.gpu_zeros(ne0, n), nc = pair.cpu_zeros(ne0, n);
        pair.gpu().add(sg, xg, yg);
        pair.gpu().rms_norm(ng, sg, wg, 1e-5f);
        pair.cpu().add(sc, xc, yc);
        pair.cpu().rms_norm(nc, sc, wc, 1e-5f);
        want = pair.download(pair.cpu(), nc);
        expect_close(pair.download(pair.gpu(), ng), want, {row_scale(want) * 1e-5f}, "add + rms_norm" + at);
        expect_close(pair.download(pair.gpu(), sg), pair.download(pair.cpu(), sc), {0.0f}, "add + rms_norm sum" + at);
      }

      pair.gpu().silu_mul(xg, xg, yg);  // in place on the gate
      pair.cpu().silu_mul(xc, xc, yc);
      want = pair.download(pair.cpu(), xc);
      expect_close(pair.download(pair.gpu(), xg), want, {row_scale(want) * 1e-5f + 1e-7f}, "silu_mul" + at);

      backend::Batch b = seq_batch(rng, n, 0, static_cast<int32_t>(n));
      for (int64_t i = n - 1; i >= 0; i -= 3) b.output_rows.insert(b.output_rows.begin(), static_cast<int32_t>(i));
      const auto bg = pair.gpu().prepare_batch(b);
      const auto bc = pair.cpu().prepare_batch(b);
      const auto n_out = static_cast<int64_t>(b.output_rows.size());
      const Tensor rg = pair.gpu_zeros(ne0, n_out), rc = pair.cpu_zeros(ne0, n_out);
      pair.gpu().get_rows(rg, yg, *bg);
      pair.cpu().get_rows(rc, yc, *bc);
      expect_close(pair.download(pair.gpu(), rg), pair.download(pair.cpu(), rc), {0.0f}, "get_rows" + at);
    }
  }
}

// Rope of 33 tokens at scattered positions on both backends (frequency factors 1..8 when `factors`), compared
// within tol.
void expect_rope_matches(BackendPair& pair, std::mt19937& rng, const backend::RopeParams& p, bool factors, float tol,
                         const std::string& what) {
  const int64_t n = 33;
  std::vector<float> ff(static_cast<size_t>(p.n_rot / 2));
  for (auto& f : ff) f = 1.0f + static_cast<float>(rng() % 8);
  const backend::Batch b = seq_batch(rng, n, 1000, 70);
  const auto bg = pair.gpu().prepare_batch(b);
  const auto bc = pair.cpu().prepare_batch(b);
  const auto x = random_floats(rng, static_cast<size_t>(p.n_head * p.head_dim * n));
  const Tensor xg = pair.gpu_f32(x, p.n_head * p.head_dim), xc = pair.cpu_f32(x, p.n_head * p.head_dim);
  backend::RopeParams pg = p, pc = p;
  if (factors) {
    pg.freq_factors = pair.gpu_f32(ff, p.n_rot / 2);
    pc.freq_factors = pair.cpu_f32(ff, p.n_rot / 2);
  }
  pair.gpu().rope(xg, *bg, pg);
  pair.cpu().rope(xc, *bc, pc);
  expect_close(pair.download(pair.gpu(), xg), pair.download(pair.cpu(), xc), {tol},
               what + (p.mode == backend::RopeMode::kNeox ? " neox" : " normal") + (factors ? " factors" : ""));
}

TEST(GpuOpsParity, SigmoidScaleMatchesCpu) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(9);
  for (const int64_t ne0 : {1, 67, 4099}) {
    for (const int64_t n : {1, 7, 33}) {
      const std::string at = " ne0 " + std::to_string(ne0) + " n " + std::to_string(n);
      const auto x = random_floats(rng, static_cast<size_t>(ne0 * n), 3.0f);
      const auto gate = random_floats(rng, static_cast<size_t>(n), 6.0f);  // one value per row
      Tensor xg = pair.gpu_f32(x, ne0), xc = pair.cpu_f32(x, ne0);
      const Tensor gg = pair.gpu_f32(gate, 1), gc = pair.cpu_f32(gate, 1);
      Tensor og = pair.gpu_zeros(ne0, n), oc = pair.cpu_zeros(ne0, n);
      pair.gpu().sigmoid_scale(og, xg, gg);
      pair.cpu().sigmoid_scale(oc, xc, gc);
      auto want = pair.download(pair.cpu(), oc);
      expect_close(pair.download(pair.gpu(), og), want, {row_scale(want) * 1e-5f + 1e-7f}, "sigmoid_scale" + at);
      pair.gpu().sigmoid_scale(xg, xg, gg);  // in place
      pair.cpu().sigmoid_scale(xc, xc, gc);
      want = pair.download(pair.cpu(), xc);
      expect_close(pair.download(pair.gpu(), xg), want, {row_scale(want) * 1e-5f + 1e-7f},
                   "sigmoid_scale in place" + at);
    }
  }
}

TEST(GpuOpsParity, RopeNormalAndNeoxWithPartialRotationAndFrequencyFactors) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(11);
  for (const auto mode : {backend::RopeMode::kNormal, backend::RopeMode::kNeox}) {
    for (const int n_rot : {64, 32}) {
      for (const bool factors : {false, true}) {
        backend::RopeParams p;
        p.mode = mode;
        p.n_head = 3;
        p.head_dim = 64;
        p.n_rot = n_rot;
        p.freq_base = 500000.0f;
        p.freq_scale = 0.5f;
        expect_rope_matches(pair, rng, p, factors, 2e-5f, "rope n_rot " + std::to_string(n_rot));
      }
    }
  }
}

// YaRN: positions past the original context (n_ctx_orig 256, factor 8), the ramp on and half on, with and without
// frequency factors. Both backends derive the correction range with the same host function, so the ramped angles
// agree exactly and only cosf / sinf differ (2e-5, times attn_factor).
TEST(GpuOpsParity, RopeYarnNormalAndNeoxPastTheOriginalContext) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(12);
  for (const auto mode : {backend::RopeMode::kNormal, backend::RopeMode::kNeox}) {
    for (const float ext_factor : {1.0f, 0.5f}) {
      for (const bool factors : {false, true}) {
        backend::RopeParams p;
        p.mode = mode;
        p.n_head = 3;
        p.head_dim = 80;
        p.n_rot = 64;
        p.freq_base = 10000.0f;
        p.freq_scale = 1.0f / 8.0f;
        p.ext_factor = ext_factor;
        p.attn_factor = 1.0f + 0.1f * std::log(8.0f);
        p.beta_fast = 32.0f;
        p.beta_slow = 1.0f;
        p.n_ctx_orig = 256;
        expect_rope_matches(pair, rng, p, factors, 2e-5f * p.attn_factor,
                            "rope yarn ext_factor " + std::to_string(ext_factor));
      }
    }
  }
}

// rope(q), rope(k), kv_store(k, v) run as one launch on the GPU: q, k and both caches are bitwise what the three
// separate kernels give (forced by reading k back before the store), and match the CPU (rope 2e-5; the caches are
// then the stored values' roundings). GQA, partial rotation (dimensions past n_rot are stored unrotated), both
// rope modes, F16 / F32 caches, 1 and 5 tokens.
TEST(GpuOpsParity, RopeOfQAndKWithTheKvStoreInOneLaunchGivesTheSeparateKernelsBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(31);
  for (const auto mode : {backend::RopeMode::kNormal, backend::RopeMode::kNeox}) {
    for (const Type cache_type : {Type::F16, Type::F32}) {
      for (const int n_rot : {64, 32}) {
        for (const int64_t n : {int64_t{1}, int64_t{5}}) {
          const int n_head = 6, n_head_kv = 2, head_dim = 64, n_cells = 32;
          const int64_t q_row = n_head * head_dim, k_row = n_head_kv * head_dim;
          backend::Batch b = seq_batch(rng, n, 9, 2);
          b.kv_block_size = 16;
          const auto q = random_floats(rng, static_cast<size_t>(q_row * n));
          const auto k = random_floats(rng, static_cast<size_t>(k_row * n));
          const auto v = random_floats(rng, static_cast<size_t>(k_row * n));
          backend::RopeParams p;
          p.mode = mode;
          p.head_dim = head_dim;
          p.n_rot = n_rot;
          p.freq_base = 10000.0f;
          std::vector<float> out_q[3], out_k[3];
          std::vector<uint8_t> kc[3], vc[3];
          for (int run = 0; run < 3; ++run) {  // 0: fused GPU, 1: separate GPU kernels, 2: CPU
            backend::Backend& be = run == 2 ? static_cast<backend::Backend&>(pair.cpu()) : pair.gpu();
            const auto db = be.prepare_batch(b);
            const Tensor qt = pair.make(be, Type::F32, q_row, n, q.data()), kt = pair.make(be, Type::F32, k_row, n, k.data());
            const Tensor vt = pair.make(be, Type::F32, k_row, n, v.data());
            const Tensor kcache = pair.make(be, cache_type, k_row, n_cells, nullptr);
            const Tensor vcache = pair.make(be, cache_type, k_row, n_cells, nullptr);
            p.n_head = n_head;
            be.rope(qt, *db, p);
            p.n_head = n_head_kv;
            be.rope(kt, *db, p);
            if (run == 1) (void)pair.download(be, kt);  // the ropes run alone before the store
            be.kv_store(kcache, vcache, kt, vt, *db);
            out_q[run] = pair.download(be, qt);
            out_k[run] = pair.download(be, kt);
            const size_t bytes = kcache.nb1 * static_cast<size_t>(n_cells);
            kc[run].resize(bytes);
            vc[run].resize(bytes);
            be.to_host(kc[run].data(), kcache, bytes);
            be.to_host(vc[run].data(), vcache, bytes);
          }
          const std::string what = std::string(mode == backend::RopeMode::kNeox ? "neox" : "normal") + " " +
                                   std::string(quant::type_name(cache_type)) + " n_rot " + std::to_string(n_rot) +
                                   " tokens " + std::to_string(n);
          ASSERT_EQ(out_q[0], out_q[1]) << what << ": q differs";
          ASSERT_EQ(out_k[0], out_k[1]) << what << ": k differs";
          ASSERT_TRUE(kc[0] == kc[1]) << what << ": K cache differs";
          ASSERT_TRUE(vc[0] == vc[1]) << what << ": V cache differs";
          ASSERT_TRUE(vc[0] == vc[2]) << what << ": V cache differs from the CPU";
          expect_close(out_q[0], out_q[2], {2e-5f}, what + " q vs CPU");
          expect_close(out_k[0], out_k[2], {2e-5f}, what + " k vs CPU");
        }
      }
    }
  }
}

struct AttnCase {
  Type cache_type;
  int n_head, n_head_kv, head_dim;
};

class AttentionParity : public ::testing::TestWithParam<AttnCase> {};

// Two sequences in one prefill batch (shuffled, interleaved physical blocks), then one decode token each.
TEST_P(AttentionParity, PrefillThenDecodeOverPagedCacheMatchesCpu) {
  RF_REQUIRE_GPU_PAIR(pair);
  const AttnCase c = GetParam();
  std::mt19937 rng(17 + c.head_dim + c.n_head);
  const int block = 16, n_blocks = 24;
  const int64_t k_row = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  const int64_t q_row = static_cast<int64_t>(c.n_head) * c.head_dim;
  std::vector<int32_t> ids(n_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  const std::vector<std::vector<int32_t>> tables = {{ids.begin(), ids.begin() + 12}, {ids.begin() + 12, ids.end()}};
  Tensor kg = pair.make(pair.gpu(), c.cache_type, k_row, n_blocks * block, nullptr);
  Tensor vg = pair.make(pair.gpu(), c.cache_type, k_row, n_blocks * block, nullptr);
  Tensor kc = pair.make(pair.cpu(), c.cache_type, k_row, n_blocks * block, nullptr);
  Tensor vc = pair.make(pair.cpu(), c.cache_type, k_row, n_blocks * block, nullptr);
  backend::AttentionParams p;
  p.n_head = c.n_head;
  p.n_head_kv = c.n_head_kv;
  p.head_dim_k = p.head_dim_v = c.head_dim;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const float tol = c.cache_type == Type::F16 ? 2e-3f : 1e-4f;
  const int32_t lens[2] = {150, 33};  // the first walks two 128-position tiles
  for (int step = 0; step < 2; ++step) {
    backend::Batch b;
    b.block_tables = tables;
    b.kv_block_size = block;
    for (int s = 0; s < 2; ++s) {
      const int32_t from = step == 0 ? 0 : lens[s], to = step == 0 ? lens[s] : lens[s] + 1;
      for (int32_t pos = from; pos < to; ++pos) {
        b.tokens.push_back(0);
        b.positions.push_back(pos);
        b.seq.push_back(s);
      }
    }
    const int64_t n = b.n_tokens();
    const auto bg = pair.gpu().prepare_batch(b);
    const auto bc = pair.cpu().prepare_batch(b);
    const auto k = random_floats(rng, static_cast<size_t>(k_row * n));
    const auto v = random_floats(rng, static_cast<size_t>(k_row * n));
    const auto q = random_floats(rng, static_cast<size_t>(q_row * n), 2.0f);
    pair.gpu().kv_store(kg, vg, pair.gpu_f32(k, k_row), pair.gpu_f32(v, k_row), *bg);
    pair.cpu().kv_store(kc, vc, pair.cpu_f32(k, k_row), pair.cpu_f32(v, k_row), *bc);
    const Tensor og = pair.gpu_zeros(q_row, n), oc = pair.cpu_zeros(q_row, n);
    pair.gpu().attention(og, pair.gpu_f32(q, q_row), kg, vg, *bg, p);
    pair.cpu().attention(oc, pair.cpu_f32(q, q_row), kc, vc, *bc, p);
    const std::vector<float> got = pair.download(pair.gpu(), og);
    expect_close(got, pair.download(pair.cpu(), oc), {tol},
                 std::string(step == 0 ? "prefill" : "decode") + " head_dim " + std::to_string(c.head_dim));
    if (step == 1) {
      // The first sequence's decode token alone gives the same bits as in the two-sequence batch.
      backend::Batch one;
      one.block_tables = tables;
      one.kv_block_size = block;
      one.tokens = {0};
      one.positions = {lens[0]};
      one.seq = {0};
      const auto b1 = pair.gpu().prepare_batch(one);
      const std::vector<float> q0(q.begin(), q.begin() + q_row);
      const Tensor o1 = pair.gpu_zeros(q_row, 1);
      pair.gpu().attention(o1, pair.gpu_f32(q0, q_row), kg, vg, *b1, p);
      const std::vector<float> alone = pair.download(pair.gpu(), o1);
      for (int64_t i = 0; i < q_row; ++i) {
        ASSERT_EQ(alone[i], got[i]) << "decode output " << i << " differs alone and in a batch";
      }
    }
  }
  // The caches themselves: identical bytes.
  const size_t cache_bytes = kg.nb1 * static_cast<size_t>(kg.ne1);
  std::vector<uint8_t> cg(cache_bytes), cc(cache_bytes);
  pair.gpu().to_host(cg.data(), kg, cache_bytes);
  pair.cpu().to_host(cc.data(), kc, cache_bytes);
  EXPECT_TRUE(cg == cc) << "K caches differ";
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionParity,
                         ::testing::Values(AttnCase{Type::F32, 4, 4, 64}, AttnCase{Type::F16, 8, 2, 64},
                                           AttnCase{Type::F32, 6, 1, 128}, AttnCase{Type::F16, 4, 2, 256},
                                           AttnCase{Type::F16, 8, 8, 128},
                                           AttnCase{Type::F32, 2, 1, 80}),
                         [](const ::testing::TestParamInfo<AttnCase>& i) {
                           return std::string(quant::type_name(i.param.cache_type)) + "_h" +
                                  std::to_string(i.param.n_head) + "_kv" + std::to_string(i.param.n_head_kv) + "_d" +
                                  std::to_string(i.param.head_dim);
                         });

// Prefill (the query-tile kernels: flash attention on tensor cores with CUDA) gives every token the same bits in
// any batch: with other sequences or alone, at another place in its query tile, in a chunk of its prompt. Each
// query row's scores, softmax and weighted sum depend only on that row (key tiles past its position are masked
// whole and leave it unchanged). Batch-invariant mode relies on it: there a token's attention kernel follows its
// kind (Batch::generated), the prefill kernel for prompt tokens and the decode kernel for generated ones, and a
// batch of both kinds gives each token its kernel's bits.
TEST(GpuOpsParity, PrefillAttentionGivesEveryTokenTheSameBitsInAnyBatch) {
  RF_REQUIRE_GPU_PAIR(pair);
  GpuBackend& be = pair.gpu();
  struct Restore {
    GpuBackend& be;
    ~Restore() { be.set_batch_invariant(false); }
  } restore{be};
  for (const int head_dim : {64, 128}) {
    std::mt19937 rng(41 + static_cast<unsigned>(head_dim));
    backend::AttentionParams p;
    p.n_head = 8;
    p.n_head_kv = 2;
    p.head_dim_k = p.head_dim_v = head_dim;
    p.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const int block = 16, n_blocks = 24;
    const int64_t k_row = int64_t{p.n_head_kv} * head_dim, q_row = int64_t{p.n_head} * head_dim;
    Tensor kg = pair.make(pair.gpu(), Type::F16, k_row, n_blocks * block, nullptr);
    Tensor vg = pair.make(pair.gpu(), Type::F16, k_row, n_blocks * block, nullptr);
    const std::vector<std::vector<int32_t>> tables = {{0, 3, 6, 9, 12, 15, 18}, {1, 4, 7}, {2, 5, 8, 11, 14}};
    const int32_t lens[3] = {100, 37, 70};
    std::vector<std::vector<float>> qs(3);  // each sequence's query rows
    // parts: (sequence, [first, end) positions), generated tokens when `generated`.
    const auto batch_of = [&](const std::vector<std::pair<int, std::pair<int32_t, int32_t>>>& parts,
                              const std::vector<bool>& generated = {}) {
      backend::Batch b;
      b.block_tables = tables;
      b.kv_block_size = block;
      for (size_t j = 0; j < parts.size(); ++j) {
        const auto& [s, range] = parts[j];
        for (int32_t pos = range.first; pos < range.second; ++pos) {
          b.tokens.push_back(0);
          b.positions.push_back(pos);
          b.seq.push_back(s);
          b.generated.push_back(j < generated.size() && generated[j] ? 1 : 0);
        }
      }
      return b;
    };
    const backend::Batch all = batch_of({{0, {0, 100}}, {1, {0, 37}}, {2, {0, 70}}});
    for (int s = 0; s < 3; ++s) qs[static_cast<size_t>(s)] = random_floats(rng, static_cast<size_t>(q_row * lens[s]), 2.0f);
    const auto k = random_floats(rng, static_cast<size_t>(k_row * all.n_tokens()));
    const auto v = random_floats(rng, static_cast<size_t>(k_row * all.n_tokens()));
    pair.gpu().kv_store(kg, vg, pair.gpu_f32(k, k_row), pair.gpu_f32(v, k_row), *pair.gpu().prepare_batch(all));
    // The outputs of a batch, by (sequence, position).
    const auto run = [&](const backend::Batch& b) {
      std::vector<float> q;
      for (int64_t i = 0; i < b.n_tokens(); ++i) {
        const auto& src = qs[static_cast<size_t>(b.seq[static_cast<size_t>(i)])];
        const auto at = static_cast<size_t>(b.positions[static_cast<size_t>(i)] * q_row);
        q.insert(q.end(), src.begin() + static_cast<std::ptrdiff_t>(at),
                 src.begin() + static_cast<std::ptrdiff_t>(at + static_cast<size_t>(q_row)));
      }
      const Tensor o = pair.gpu_zeros(q_row, b.n_tokens());
      pair.gpu().attention(o, pair.gpu_f32(q, q_row), kg, vg, *pair.gpu().prepare_batch(b), p);
      return pair.download(pair.gpu(), o);
    };
    const std::vector<float> ref = run(all);
    const auto row_of_all = [&](int s, int32_t pos) {
      int64_t r = pos;
      for (int j = 0; j < s; ++j) r += lens[j];
      return r;
    };
    for (const auto& parts : std::vector<std::vector<std::pair<int, std::pair<int32_t, int32_t>>>>{
             {{1, {10, 37}}}, {{2, {50, 70}}, {0, {3, 100}}}, {{1, {0, 37}}, {2, {0, 5}}, {0, {90, 100}}}}) {
      const backend::Batch b = batch_of(parts);
      const std::vector<float> got = run(b);
      for (int64_t i = 0; i < b.n_tokens(); ++i) {
        const int s = b.seq[static_cast<size_t>(i)];
        const int32_t pos = b.positions[static_cast<size_t>(i)];
        for (int64_t e = 0; e < q_row; ++e) {
          ASSERT_EQ(got[static_cast<size_t>(i * q_row + e)], ref[static_cast<size_t>(row_of_all(s, pos) * q_row + e)])
              << "head_dim " << head_dim << " sequence " << s << " position " << pos << " element " << e;
        }
      }
    }
    be.set_batch_invariant(true);
    if (!be.results_depend_on_kind()) continue;  // no kind routing without mmq (HIP builds): one kernel for all
    // Generated tokens alone (the decode kernel), then a batch of both kinds in runs.
    const std::vector<float> dec = run(batch_of({{0, {99, 100}}, {2, {69, 70}}}, {true, true}));
    const backend::Batch mixed = batch_of({{0, {99, 100}}, {1, {10, 37}}, {2, {69, 70}}}, {true, false, true});
    const std::vector<float> got = run(mixed);
    EXPECT_NE(std::vector<float>(dec.begin(), dec.begin() + q_row),
              std::vector<float>(ref.begin() + row_of_all(0, 99) * q_row, ref.begin() + (row_of_all(0, 99) + 1) * q_row))
        << "the decode and prefill kernels agree bitwise: the routes cannot be told apart";
    for (int64_t i = 0; i < mixed.n_tokens(); ++i) {
      const int s = mixed.seq[static_cast<size_t>(i)];
      const int32_t pos = mixed.positions[static_cast<size_t>(i)];
      const bool generated = mixed.is_generated(i);
      for (int64_t e = 0; e < q_row; ++e) {
        const float want = generated ? dec[static_cast<size_t>((s == 0 ? 0 : 1) * q_row + e)]
                                     : ref[static_cast<size_t>(row_of_all(s, pos) * q_row + e)];
        ASSERT_EQ(got[static_cast<size_t>(i * q_row + e)], want)
            << "batch-invariant, head_dim " << head_dim << " sequence " << s << " position " << pos
            << (generated ? " (generated)" : " (prompt)") << " element " << e;
      }
    }
    be.set_batch_invariant(false);
  }
}

// A decode batch of many sequences takes blocks of up to four query heads of one KV head; a token alone takes one
// head per block (more blocks for the SMs). Both give the same bits, and match the CPU.
TEST(GpuOpsParity, DecodeAttentionHeadGroupingIsInvariant) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(29);
  const int n_seq = 48, block = 16, per_seq = 2, n_blocks = n_seq * per_seq;
  backend::AttentionParams p;
  p.n_head = 16;
  p.n_head_kv = 4;
  p.head_dim_k = p.head_dim_v = 128;
  p.scale = 1.0f / std::sqrt(128.0f);
  const int64_t k_row = int64_t{p.n_head_kv} * p.head_dim_k, q_row = int64_t{p.n_head} * p.head_dim_k;
  Tensor kg = pair.make(pair.gpu(), Type::F16, k_row, n_blocks * block, nullptr);
  Tensor vg = pair.make(pair.gpu(), Type::F16, k_row, n_blocks * block, nullptr);
  Tensor kc = pair.make(pair.cpu(), Type::F16, k_row, n_blocks * block, nullptr);
  Tensor vc = pair.make(pair.cpu(), Type::F16, k_row, n_blocks * block, nullptr);
  std::vector<std::vector<int32_t>> tables(n_seq);
  for (int s = 0; s < n_seq; ++s) tables[static_cast<size_t>(s)] = {2 * s, 2 * s + 1};
  // Fill every sequence's first 20 positions (one prefill batch per backend), then decode position 20 of each.
  backend::Batch fill;
  fill.block_tables = tables;
  fill.kv_block_size = block;
  for (int s = 0; s < n_seq; ++s) {
    for (int32_t pos = 0; pos < 21; ++pos) {
      fill.tokens.push_back(0);
      fill.positions.push_back(pos);
      fill.seq.push_back(s);
    }
  }
  const int64_t nf = fill.n_tokens();
  const auto k = random_floats(rng, static_cast<size_t>(k_row * nf));
  const auto v = random_floats(rng, static_cast<size_t>(k_row * nf));
  pair.gpu().kv_store(kg, vg, pair.gpu_f32(k, k_row), pair.gpu_f32(v, k_row), *pair.gpu().prepare_batch(fill));
  pair.cpu().kv_store(kc, vc, pair.cpu_f32(k, k_row), pair.cpu_f32(v, k_row), *pair.cpu().prepare_batch(fill));
  backend::Batch dec;
  dec.block_tables = tables;
  dec.kv_block_size = block;
  for (int s = 0; s < n_seq; ++s) {
    dec.tokens.push_back(0);
    dec.positions.push_back(20);
    dec.seq.push_back(s);
  }
  const auto q = random_floats(rng, static_cast<size_t>(q_row * n_seq), 2.0f);
  const Tensor og = pair.gpu_zeros(q_row, n_seq), oc = pair.cpu_zeros(q_row, n_seq);
  pair.gpu().attention(og, pair.gpu_f32(q, q_row), kg, vg, *pair.gpu().prepare_batch(dec), p);
  pair.cpu().attention(oc, pair.cpu_f32(q, q_row), kc, vc, *pair.cpu().prepare_batch(dec), p);
  const std::vector<float> got = pair.download(pair.gpu(), og);
  expect_close(got, pair.download(pair.cpu(), oc), {2e-3f}, "decode of 48 sequences");
  for (const int s : {0, 31, 47}) {
    backend::Batch one;
    one.block_tables = tables;
    one.kv_block_size = block;
    one.tokens = {0};
    one.positions = {20};
    one.seq = {s};
    const std::vector<float> qs(q.begin() + s * q_row, q.begin() + (s + 1) * q_row);
    const Tensor o1 = pair.gpu_zeros(q_row, 1);
    pair.gpu().attention(o1, pair.gpu_f32(qs, q_row), kg, vg, *pair.gpu().prepare_batch(one), p);
    const std::vector<float> alone = pair.download(pair.gpu(), o1);
    for (int64_t i = 0; i < q_row; ++i) {
      ASSERT_EQ(alone[i], got[s * q_row + i]) << "sequence " << s << " output " << i
                                              << " differs alone and in the batch";
    }
  }
}

// Two sequences in interleaved physical blocks (16 blocks of 16 cells): `fill` caches their first 150 and 20
// positions (the first spans two 128-position chunks; with own_row also the decode positions themselves), `dec`
// is one decode token of each, at positions 150 and 20.
constexpr int kTwoSeqBlock = 16, kTwoSeqBlocks = 16;
struct TwoSequenceDecode {
  backend::Batch fill, dec;
};
TwoSequenceDecode two_sequence_decode(bool own_row) {
  const std::vector<std::vector<int32_t>> tables = {{0, 2, 4, 6, 8, 10, 12, 14, 15, 13}, {1, 3, 5}};
  const int32_t lens[2] = {150, 20};
  TwoSequenceDecode b;
  for (backend::Batch* x : {&b.fill, &b.dec}) {
    x->block_tables = tables;
    x->kv_block_size = kTwoSeqBlock;
  }
  for (int s = 0; s < 2; ++s) {
    for (int32_t pos = 0; pos < lens[s] + (own_row ? 1 : 0); ++pos) {
      b.fill.tokens.push_back(0);
      b.fill.positions.push_back(pos);
      b.fill.seq.push_back(s);
    }
    b.dec.tokens.push_back(0);
    b.dec.positions.push_back(lens[s]);
    b.dec.seq.push_back(s);
  }
  return b;
}

// A decode batch (one token per sequence) does rope(q), rope(k) and kv_store inside decode attention: the output
// and both caches are bitwise those of the separate rope + KV store kernel (forced by a download between kv_store
// and attention), and match the CPU. Contexts of one and of two 128-position chunks, GQA, partial rotation, both
// rope modes, F16 / F32 caches, head sizes 64 and 128.
TEST(GpuOpsParity, DecodeAttentionDoesTheRopeAndKvStoreWithTheSeparateKernelsBits) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(41);
  const auto [fill, dec] = two_sequence_decode(false);  // the step stores its own row
  for (const auto mode : {backend::RopeMode::kNormal, backend::RopeMode::kNeox}) {
    for (const Type cache_type : {Type::F16, Type::F32}) {
      for (const int head_dim : {64, 128}) {
        for (const int n_rot : {head_dim, head_dim / 2}) {
          const int n_head = 8, n_head_kv = 2;
          const int64_t q_row = int64_t{n_head} * head_dim, k_row = int64_t{n_head_kv} * head_dim;
          const std::string what = std::string(mode == backend::RopeMode::kNeox ? "neox" : "normal") + " " +
                                   std::string(quant::type_name(cache_type)) + " head_dim " +
                                   std::to_string(head_dim) + " n_rot " + std::to_string(n_rot);
          const auto fk = random_floats(rng, static_cast<size_t>(k_row * fill.n_tokens()));
          const auto fv = random_floats(rng, static_cast<size_t>(k_row * fill.n_tokens()));
          const auto q = random_floats(rng, static_cast<size_t>(q_row * 2), 2.0f);
          const auto k = random_floats(rng, static_cast<size_t>(k_row * 2));
          const auto v = random_floats(rng, static_cast<size_t>(k_row * 2));
          backend::RopeParams rp;
          rp.mode = mode;
          rp.head_dim = head_dim;
          rp.n_rot = n_rot;
          rp.freq_base = 10000.0f;
          backend::AttentionParams ap;
          ap.n_head = n_head;
          ap.n_head_kv = n_head_kv;
          ap.head_dim_k = ap.head_dim_v = head_dim;
          ap.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
          std::vector<float> out[3], q_after[3];
          std::vector<uint8_t> kc[3], vc[3];
          for (int run = 0; run < 3; ++run) {  // 0: GPU, fused; 1: GPU, separate kernels; 2: CPU
            backend::Backend& be = run == 2 ? static_cast<backend::Backend&>(pair.cpu()) : pair.gpu();
            const Tensor kcache = pair.make(be, cache_type, k_row, kTwoSeqBlocks * kTwoSeqBlock, nullptr);
            const Tensor vcache = pair.make(be, cache_type, k_row, kTwoSeqBlocks * kTwoSeqBlock, nullptr);
            be.kv_store(kcache, vcache, pair.make(be, Type::F32, k_row, fill.n_tokens(), fk.data()),
                        pair.make(be, Type::F32, k_row, fill.n_tokens(), fv.data()), *be.prepare_batch(fill));
            const auto db = be.prepare_batch(dec);
            const Tensor qt = pair.make(be, Type::F32, q_row, 2, q.data());
            const Tensor kt = pair.make(be, Type::F32, k_row, 2, k.data());
            const Tensor vt = pair.make(be, Type::F32, k_row, 2, v.data());
            const Tensor ot = pair.make(be, Type::F32, q_row, 2, nullptr);  // before the ops: alloc runs what waits
            rp.n_head = n_head;
            be.rope(qt, *db, rp);
            rp.n_head = n_head_kv;
            be.rope(kt, *db, rp);
            be.kv_store(kcache, vcache, kt, vt, *db);
            if (run == 1) (void)pair.download(be, kt);  // rope + KV store run before attention
            be.attention(ot, qt, kcache, vcache, *db, ap);
            out[run] = pair.download(be, ot);
            q_after[run] = pair.download(be, qt);
            const size_t bytes = kcache.nb1 * static_cast<size_t>(kcache.ne1);
            kc[run].resize(bytes);
            vc[run].resize(bytes);
            be.to_host(kc[run].data(), kcache, bytes);
            be.to_host(vc[run].data(), vcache, bytes);
          }
          ASSERT_EQ(q_after[0], q) << what << ": the fused path leaves q unrotated (did it run?)";
          ASSERT_NE(q_after[1], q) << what << ": the separate kernels rotate q in place";
          ASSERT_EQ(out[0], out[1]) << what << ": attention output differs";
          ASSERT_TRUE(kc[0] == kc[1]) << what << ": K cache differs";
          ASSERT_TRUE(vc[0] == vc[1]) << what << ": V cache differs";
          ASSERT_TRUE(vc[0] == vc[2]) << what << ": V cache differs from the CPU";
          expect_close(out[0], out[2], {cache_type == Type::F16 ? 2e-3f : 2e-4f}, what + " vs CPU");
        }
      }
    }
  }
}

// Decode attention followed by an int8 product of its output with Q8_0 activations (Q4_0 / Q8_0 weights): the
// attention kernels quantize their output for the product (the decode kernel for a context of one chunk, the
// merge for two). The product is bitwise that of the separate quantization (forced by a download between them)
// and matches the CPU; a Q4_K product (Q8_K activations) quantizes for itself.
TEST(GpuOpsParity, DecodeAttentionQuantizesItsOutputForTheNextProduct) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(43);
  const int n_head = 8, n_head_kv = 2, head_dim = 128;
  const int64_t q_row = int64_t{n_head} * head_dim, k_row = int64_t{n_head_kv} * head_dim, n_out = 96;
  const auto [fill, dec] = two_sequence_decode(true);  // no rope: the step's own rows come from the cache
  const auto fk = random_floats(rng, static_cast<size_t>(k_row * fill.n_tokens()));
  const auto fv = random_floats(rng, static_cast<size_t>(k_row * fill.n_tokens()));
  const auto q = random_floats(rng, static_cast<size_t>(q_row * 2), 2.0f);
  backend::AttentionParams ap;
  ap.n_head = n_head;
  ap.n_head_kv = n_head_kv;
  ap.head_dim_k = ap.head_dim_v = head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  for (const Type wt : {Type::Q4_0, Type::Q8_0, Type::Q4_K}) {
    const auto wf = random_floats(rng, static_cast<size_t>(q_row * n_out));
    const size_t rb = *quant::row_bytes(wt, q_row);
    std::vector<uint8_t> wbytes(rb * static_cast<size_t>(n_out));
    for (int64_t r = 0; r < n_out; ++r) {
      ASSERT_TRUE(quant::quantize(wt, wf.data() + r * q_row, wbytes.data() + r * rb, q_row).ok());
    }
    auto [wg, wc] = pair.weight(wt, q_row, n_out, 1, wbytes);
    std::vector<float> prod[3];
    for (int run = 0; run < 3; ++run) {  // 0: GPU, fused; 1: GPU, separate quantization; 2: CPU
      backend::Backend& be = run == 2 ? static_cast<backend::Backend&>(pair.cpu()) : pair.gpu();
      const Tensor kcache = pair.make(be, Type::F32, k_row, kTwoSeqBlocks * kTwoSeqBlock, nullptr);
      const Tensor vcache = pair.make(be, Type::F32, k_row, kTwoSeqBlocks * kTwoSeqBlock, nullptr);
      be.kv_store(kcache, vcache, pair.make(be, Type::F32, k_row, fill.n_tokens(), fk.data()),
                  pair.make(be, Type::F32, k_row, fill.n_tokens(), fv.data()), *be.prepare_batch(fill));
      const auto db = be.prepare_batch(dec);
      const Tensor qt = pair.make(be, Type::F32, q_row, 2, q.data());
      const Tensor ot = pair.make(be, Type::F32, q_row, 2, nullptr);
      const Tensor pt = pair.make(be, Type::F32, n_out, 2, nullptr);
      be.attention(ot, qt, kcache, vcache, *db, ap);
      if (run == 1) (void)pair.download(be, ot);  // attention runs alone
      be.matmul(pt, ot, run == 2 ? wc : wg);
      prod[run] = pair.download(be, pt);
    }
    const std::string what = "attention then a " + std::string(quant::type_name(wt)) + " product";
    ASSERT_EQ(prod[0], prod[1]) << what << ": differs from the separate quantization";
    expect_close(prod[0], prod[2], {1e-2f * row_scale(prod[2])}, what + " vs CPU");
  }
}

TEST(GpuOpsParity, MoeRouteAndCombineMatchCpu) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::mt19937 rng(23);
  for (const int64_t n_expert : {8, 60}) {
    for (const int64_t n_used : {1, 2, 6}) {
      for (const bool normalize : {false, true}) {
        const int64_t n = 7, n_embd = 45;
        const auto logits = random_floats(rng, static_cast<size_t>(n_expert * n), 2.0f);
        const std::string at = " experts " + std::to_string(n_expert) + " used " + std::to_string(n_used);
        const Tensor idg = pair.make(pair.gpu(), Type::I32, n_used, n, nullptr);
        const Tensor idc = pair.make(pair.cpu(), Type::I32, n_used, n, nullptr);
        const Tensor wg = pair.gpu_zeros(n_used, n), wc = pair.cpu_zeros(n_used, n);
        pair.gpu().moe_route(idg, wg, pair.gpu_f32(logits, n_expert), normalize);
        pair.cpu().moe_route(idc, wc, pair.cpu_f32(logits, n_expert), normalize);
        std::vector<int32_t> ig(static_cast<size_t>(n_used * n)), ic(ig.size());
        pair.gpu().to_host(ig.data(), idg, ig.size() * 4);
        pair.cpu().to_host(ic.data(), idc, ic.size() * 4);
        EXPECT_EQ(ig, ic) << "moe_route ids" << at;
        const auto weights = pair.download(pair.cpu(), wc);
        expect_close(pair.download(pair.gpu(), wg), weights, {1e-6f}, "moe_route weights" + at);

        const auto eo = random_floats(rng, static_cast<size_t>(n_embd * n * n_used));
        const Tensor og = pair.gpu_zeros(n_embd, n), oc = pair.cpu_zeros(n_embd, n);
        pair.gpu().moe_combine(og, pair.gpu_f32(eo, n_embd), wg);
        pair.cpu().moe_combine(oc, pair.cpu_f32(eo, n_embd), wc);
        const auto want = pair.download(pair.cpu(), oc);
        expect_close(pair.download(pair.gpu(), og), want, {row_scale(want) * 1e-5f}, "moe_combine" + at);
      }
    }
  }
}

// Runs without a GPU too: the factory must answer with a backend or a clear error, never abort.
TEST(GpuBackendFactory, ReturnsABackendOrAnErrorSayingWhy) {
  auto be = create_gpu_backend(backend::BackendOptions{});
  if (be.ok()) {
    EXPECT_NE((*be)->name().find("gpu"), std::string::npos);
  } else {
    EXPECT_FALSE(be.error_message().empty());
    if (gpu_required()) ADD_FAILURE() << "GPU required but the factory failed: " << be.error_message();
  }
}

TEST(GpuBackendFactory, WeightsShareAFewLargeArenas) {
  RF_REQUIRE_GPU_PAIR(pair);
  std::vector<uint8_t> bytes(*quant::row_bytes(Type::Q4_0, 4096) * 64, 0x11);
  for (int i = 0; i < 200; ++i) pair.weight(Type::Q4_0, 4096, 64, 1, bytes);
  EXPECT_LE(pair.gpu().arena_count(), 2u);
  EXPECT_GE(pair.gpu().arena_bytes_used(), bytes.size() * 200);
  gguf::TensorInfo info;
  info.name = "blk.0.unsupported";
  info.type = Type::Q8_K;  // an activation format: no GPU decoder
  info.ne = {256, 4, 1, 1};
  std::vector<uint8_t> q8k(*quant::row_bytes(Type::Q8_K, 256) * 4);
  info.data = q8k.data();
  const auto w = pair.gpu().load_weight(info);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error_message().find("Q8_K"), std::string::npos) << w.error_message();
  // The message lists what the GPU decodes, from the decoders themselves.
  EXPECT_NE(w.error_message().find("(supported: " + supported_weight_types() + ")"), std::string::npos)
      << w.error_message();
}

}  // namespace
}  // namespace rf::gpu::test
