#include "kv/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "backend/cpu/cpu_backend.h"

namespace rf::kv {
namespace {

TEST(BlockPool, AllocatesEveryBlockOnceThenRunsOut) {
  BlockPool pool(3);
  std::vector<int32_t> got = {pool.allocate(), pool.allocate(), pool.allocate()};
  EXPECT_EQ(pool.allocate(), -1);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2}));
  pool.release(1);
  EXPECT_EQ(pool.allocate(), 1);
}

TEST(KvCache, ReserveGrowsBlockTablesAndReleaseReturnsBlocks) {
  backend::cpu::CpuBackend be(1);
  KvOptions o;
  o.n_slots = 64;
  o.block_size = 16;
  auto c = KvCache::create(be, {2, 8, 8}, o);
  ASSERT_TRUE(c.ok()) << c.error_message();
  KvCache& cache = **c;
  EXPECT_EQ(cache.n_blocks(), 4);
  const int32_t a = cache.add_sequence(), b = cache.add_sequence();
  ASSERT_TRUE(cache.reserve(a, 17).ok());
  cache.advance(a, 17);
  EXPECT_EQ(cache.block_table(a).size(), 2u);
  ASSERT_TRUE(cache.reserve(b, 20).ok());
  EXPECT_EQ(cache.n_free_blocks(), 0);
  const Status full = cache.reserve(a, 16);
  EXPECT_FALSE(full.ok());
  EXPECT_NE(full.message().find("free blocks"), std::string::npos);
  cache.release_sequence(b);
  EXPECT_EQ(cache.n_free_blocks(), 2);
  cache.truncate(a, 5);
  EXPECT_EQ(cache.block_table(a).size(), 1u);
  EXPECT_EQ(cache.length(a), 5);
  EXPECT_EQ(cache.k(1).ne0, 8);
  EXPECT_EQ(cache.k(1).ne1, 64);
}

TEST(KvCache, RejectsUnsupportedType) {
  backend::cpu::CpuBackend be(1);
  KvOptions o;
  o.type = quant::Type::Q4_0;
  EXPECT_FALSE(KvCache::create(be, {1, 8, 8}, o).ok());
}

}  // namespace
}  // namespace rf::kv
