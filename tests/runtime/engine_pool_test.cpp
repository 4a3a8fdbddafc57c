#include "runtime/engine_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace rf::runtime {
namespace {

TEST(WorkerPool, EveryIndexRunsExactlyOnceInEveryRun) {
  WorkerPool pool(3);
  for (int run = 0; run < 300; ++run) {
    const int64_t n = run % 41;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.run(n, run % 5, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "run " << run << " i " << i;
  }
}

TEST(WorkerPool, HelpersRunOnOtherThreads) {
  WorkerPool pool(2);
  std::mutex mu;
  std::set<std::thread::id> ids;
  // Each call waits a little so that the woken helpers get a share of the indices.
  pool.run(64, 2, [&](int64_t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  EXPECT_GT(ids.size(), 1u);
}

TEST(WorkerPool, WithoutHelpersEverythingRunsOnTheCaller) {
  WorkerPool pool(2);
  std::vector<std::thread::id> ids;
  pool.run(10, 0, [&](int64_t) { ids.push_back(std::this_thread::get_id()); });  // no lock needed: one thread
  ASSERT_EQ(ids.size(), 10u);
  for (const auto& id : ids) EXPECT_EQ(id, std::this_thread::get_id());
}

}  // namespace
}  // namespace rf::runtime
