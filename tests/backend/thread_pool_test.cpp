// ThreadPool::parallel_for: every index is visited exactly once, chunks respect the grain, the thread index is in
// range, and thousands of back-to-back loops (decode's pattern, where workers still spin from the previous loop)
// never lose or repeat work.
#include "backend/cpu/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <vector>

namespace rf::backend::cpu {
namespace {

TEST(ThreadPoolTest, VisitsEveryIndexOnceInGrainAlignedChunks) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 64, 1000, 4099}) {
      for (int64_t grain : {1, 4, 16}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<bool> bad_chunk{false}, bad_thread{false};
        pool.parallel_for(
            n,
            [&](int64_t b, int64_t e, int t) {
              if (b % grain != 0 || (e != n && e % grain != 0) || b >= e) bad_chunk = true;
              if (t < 0 || t >= threads) bad_thread = true;
              for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
            },
            grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n << " i " << i;
        EXPECT_FALSE(bad_chunk) << "threads " << threads << " n " << n << " grain " << grain;
        EXPECT_FALSE(bad_thread);
      }
    }
  }
}

TEST(ThreadPoolTest, BackToBackLoopsNeverLoseOrRepeatWork) {
  ThreadPool pool(3);
  const int loops = std::getenv("ROCMFORGE_SLOW_TESTS_SKIP") ? 500 : 5000;
  int64_t total = 0;
  for (int l = 0; l < loops; ++l) {
    const int64_t n = 1 + l % 37;
    std::atomic<int64_t> sum{0};
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) sum += i + 1;
    });
    ASSERT_EQ(sum.load(), n * (n + 1) / 2) << "loop " << l;
    total += sum.load();
  }
  EXPECT_GT(total, 0);
}

}  // namespace
}  // namespace rf::backend::cpu
