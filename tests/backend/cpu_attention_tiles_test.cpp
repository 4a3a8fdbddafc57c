// CPU attention runs one job per (tile of one sequence's tokens, KV head) so that each K / V row is converted once
// for all the tile's queries, with each query still summed in the per-query reference order (pinned bit for bit by
// cpu_attention_order_test). So the tiling must not move a bit: a prefill batch has to give exactly the outputs of
// its tokens evaluated one at a time (one-token tiles, the decode path), of other splits of the batch and of other
// thread counts. Covered on every kernel table: grouped-query and plain multi-head attention; F16 and F32 K and V
// caches, also mixed; head sizes 64 and 128, and 96 / 40 (a q . k with a double tail, a V row that is not a whole
// number of vectors); context lengths that are not multiples of 16, 32 or 64, sequences that start at 0 or continue
// a cache, and a batch that interleaves sequences.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"
#include "cpu_test_util.h"

namespace rf::backend::cpu::test {
namespace {

using quant::Type;

// The tokens [first, last) of batch b as a batch of their own (same sequences and block tables).
Batch sub_batch(const Batch& b, int64_t first, int64_t last) {
  Batch s;
  s.kv_block_size = b.kv_block_size;
  s.block_tables = b.block_tables;
  for (int64_t t = first; t < last; ++t) {
    s.tokens.push_back(b.tokens[static_cast<size_t>(t)]);
    s.positions.push_back(b.positions[static_cast<size_t>(t)]);
    s.seq.push_back(b.seq[static_cast<size_t>(t)]);
  }
  return s;
}

struct Case {
  int n_head, n_head_kv, dk, dv;
  Type k_type, v_type;
};

class CpuAttentionTilesTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuAttentionTilesTest, BatchGivesTheBitsOfItsTokensOneByOneAndOfOtherSplits) {
  std::mt19937 rng(29);
  const int block = 16, n_blocks = 40;
  const int64_t slots = int64_t{n_blocks} * block;
  // A 150-token prefill from 0 (tiles of up to 16 tokens, a ragged last one), a 70-token chunk continuing a cached
  // sequence at 45, a 2-token chunk across 64 and a decode token at 129, interleaved.
  const Batch b = scattered_batch(rng, {{0, 150}, {45, 70}, {63, 2}, {129, 1}}, block, n_blocks);
  std::vector<Case> cases;
  for (auto [nh, nkv] : {std::pair{8, 2}, std::pair{3, 3}}) {
    for (auto [dk, dv] : {std::pair{64, 64}, std::pair{128, 128}, std::pair{96, 40}}) {
      for (Type kt : {Type::F16, Type::F32}) {
        for (Type vt : {Type::F16, Type::F32}) cases.push_back({nh, nkv, dk, dv, kt, vt});
      }
    }
  }
  for (const Case& c : cases) {
    AttentionParams p;
    p.n_head = c.n_head;
    p.n_head_kv = c.n_head_kv;
    p.head_dim_k = c.dk;
    p.head_dim_v = c.dv;
    p.scale = 1.0f / std::sqrt(static_cast<float>(c.dk));
    Mat kf = random_mat(rng, int64_t{p.n_head_kv} * c.dk, slots, 1.5f),
        vf = random_mat(rng, int64_t{p.n_head_kv} * c.dv, slots);
    std::vector<uint16_t> kh(kf.v.size()), vh(vf.v.size());
    for (size_t i = 0; i < kh.size(); ++i) kh[i] = fp32_to_fp16(kf.v[i]);
    for (size_t i = 0; i < vh.size(); ++i) vh[i] = fp32_to_fp16(vf.v[i]);
    const Tensor k_cache = c.k_type == Type::F16 ? make_tensor(kh.data(), Type::F16, kf.ne0, slots) : kf.t();
    const Tensor v_cache = c.v_type == Type::F16 ? make_tensor(vh.data(), Type::F16, vf.ne0, slots) : vf.t();
    Mat q = random_mat(rng, int64_t{p.n_head} * c.dk, b.n_tokens(), 1.5f);
    const int64_t n_out = int64_t{p.n_head} * c.dv;
    // Evaluates the tokens [first, last) of b as one batch on `threads` threads into rows [first, last) of `out`.
    const auto run = [&](Mat& out, int64_t first, int64_t last, int threads) {
      auto be = make_backend(GetParam(), threads);
      const auto db = be->prepare_batch(sub_batch(b, first, last));
      be->attention(make_tensor(out.v.data() + first * n_out, Type::F32, n_out, last - first),
                    make_tensor(q.v.data() + first * q.ne0, Type::F32, q.ne0, last - first), k_cache, v_cache, *db,
                    p);
    };
    Mat whole(n_out, b.n_tokens(), NAN), one_by_one(n_out, b.n_tokens(), NAN), split(n_out, b.n_tokens(), NAN),
        single_thread(n_out, b.n_tokens(), NAN);
    run(whole, 0, b.n_tokens(), 3);
    run(single_thread, 0, b.n_tokens(), 1);
    for (int64_t t = 0; t < b.n_tokens(); ++t) run(one_by_one, t, t + 1, 1);
    const int64_t cuts[] = {0, 7, 8, 61, 131, b.n_tokens()};  // ragged splits
    for (size_t i = 0; i + 1 < std::size(cuts); ++i) run(split, cuts[i], cuts[i + 1], 2);
    for (int64_t t = 0; t < b.n_tokens(); ++t) {
      for (int64_t e = 0; e < n_out; ++e) {
        const float want = one_by_one.at(e, t);
        ASSERT_TRUE(std::isfinite(want));
        for (const Mat* m : {&whole, &split, &single_thread}) {
          const float got = m->at(e, t);
          ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
              << GetParam() << " heads " << c.n_head << "/" << c.n_head_kv << " dk " << c.dk << " dv " << c.dv
              << " K " << (c.k_type == Type::F16 ? "F16" : "F32") << " V " << (c.v_type == Type::F16 ? "F16" : "F32")
              << " token " << t << " (position " << b.positions[static_cast<size_t>(t)] << ") element " << e
              << ": got " << got << " one by one " << want
              << (m == &whole ? " (whole batch)" : m == &split ? " (split batch)" : " (one thread)");
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuAttentionTilesTest, ::testing::ValuesIn(isa_names()), isa_param_name);

}  // namespace
}  // namespace rf::backend::cpu::test
