#include "runtime/scheduler_blocks.h"

#include <gtest/gtest.h>

#include <numeric>

namespace rf::runtime {
namespace {

std::vector<int32_t> iota_tokens(int n, int start = 0) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), start);
  return t;
}

// Allocates and registers a chain of full blocks holding `tokens`; returns the table.
std::vector<int32_t> cache_chain(BlockManager& m, const std::vector<int32_t>& tokens) {
  std::vector<int32_t> table;
  const int bs = m.block_size();
  for (size_t i = 0; i + static_cast<size_t>(bs) <= tokens.size(); i += static_cast<size_t>(bs)) {
    table.push_back(m.allocate());
    const int32_t got = m.register_block(table, static_cast<int32_t>(table.size() - 1),
                                         std::span<const int32_t>(tokens).subspan(i, static_cast<size_t>(bs)));
    EXPECT_EQ(got, table.back());
  }
  return table;
}

TEST(BlockManager, AllocatesEveryBlockOnceThenRunsOut) {
  BlockManager m(4, 16, true);
  std::vector<int32_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(m.allocate());
  EXPECT_EQ(m.allocate(), -1);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(m.n_available(), 0);
  m.release(2);
  EXPECT_EQ(m.n_available(), 1);
  EXPECT_EQ(m.allocate(), 2);
}

TEST(BlockManager, SharedBlockFreedOnlyAfterLastRelease) {
  BlockManager m(2, 4, false);
  const int32_t b = m.allocate();
  m.retain(b);
  EXPECT_EQ(m.refcount(b), 2);
  m.release(b);
  EXPECT_EQ(m.n_available(), 1);
  m.release(b);
  EXPECT_EQ(m.n_available(), 2);
}

TEST(BlockManager, PrefixMatchReturnsCachedChainAndStopsAtFirstDifference) {
  BlockManager m(8, 4, true);
  const auto toks = iota_tokens(12);
  const auto table = cache_chain(m, toks);
  for (int32_t b : table) m.release(b);
  EXPECT_EQ(m.n_cached_idle(), 3);
  // Same first 8 tokens, different third block.
  auto other = toks;
  other[9] = 99;
  const auto got = m.match_prefix(other, 10);
  EXPECT_EQ(got, (std::vector<int32_t>{table[0], table[1]}));
  EXPECT_EQ(m.refcount(table[0]), 1);
  EXPECT_EQ(m.n_cached_idle(), 1);
  // max_blocks bounds the match.
  EXPECT_EQ(m.match_prefix(toks, 1).size(), 1u);
  // A different first block matches nothing, even if later blocks are equal.
  auto shifted = toks;
  shifted[0] = 77;
  EXPECT_TRUE(m.match_prefix(shifted, 10).empty());
}

TEST(BlockManager, SameBlockContentAfterDifferentPrefixIsNotShared) {
  BlockManager m(8, 2, true);
  const auto a = cache_chain(m, {1, 2, 3, 4});
  const auto b = cache_chain(m, {5, 6, 3, 4});  // second block has the same tokens, another parent
  EXPECT_NE(a[1], b[1]);
  const std::vector<int32_t> q = {5, 6, 3, 4};
  EXPECT_EQ(m.match_prefix(q, 2), b);
}

TEST(BlockManager, LeastRecentlyUsedCachedBlockIsEvictedFirstAndForgotten) {
  BlockManager m(3, 2, true);
  const auto a = cache_chain(m, {1, 2});
  const auto b = cache_chain(m, {3, 4});
  m.release(a[0]);
  m.release(b[0]);
  const int32_t fresh = m.allocate();  // the one free block
  EXPECT_NE(fresh, a[0]);
  EXPECT_NE(fresh, b[0]);
  const int32_t evicted = m.allocate();  // no free block left: evicts a (released first)
  EXPECT_EQ(evicted, a[0]);
  EXPECT_TRUE(m.match_prefix(std::vector<int32_t>{1, 2}, 1).empty());
  EXPECT_EQ(m.match_prefix(std::vector<int32_t>{3, 4}, 1), b);
  EXPECT_EQ(m.allocate(), -1);  // b is referenced again
}

TEST(BlockManager, RegisteringDuplicateContentSharesTheCachedBlock) {
  BlockManager m(4, 2, true);
  const auto a = cache_chain(m, {1, 2});
  std::vector<int32_t> table = {m.allocate()};
  const std::vector<int32_t> toks = {1, 2};
  const int32_t got = m.register_block(table, 0, toks);
  EXPECT_EQ(got, a[0]);
  EXPECT_EQ(m.refcount(a[0]), 2);
  EXPECT_FALSE(m.is_registered(table[0]));
}

TEST(BlockManager, ChildOfUnregisteredParentIsNotRegistered) {
  BlockManager m(4, 2, true);
  std::vector<int32_t> table = {m.allocate(), m.allocate()};
  const std::vector<int32_t> second = {3, 4};
  EXPECT_EQ(m.register_block(table, 1, second), table[1]);
  EXPECT_FALSE(m.is_registered(table[1]));
}

TEST(BlockManager, PrefixCacheOffNeverMatches) {
  BlockManager m(4, 2, false);
  std::vector<int32_t> table = {m.allocate()};
  const std::vector<int32_t> toks = {1, 2};
  m.register_block(table, 0, toks);
  m.release(table[0]);
  EXPECT_TRUE(m.match_prefix(toks, 1).empty());
  EXPECT_EQ(m.n_cached_idle(), 0);
}

}  // namespace
}  // namespace rf::runtime
