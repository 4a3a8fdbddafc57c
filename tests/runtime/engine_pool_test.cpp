#include "runtime/engine_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
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
  const auto caller = std::this_thread::get_id();
  std::atomic<bool> helper_ran{false};
  // Whatever the caller claims, it holds until a helper has run an index (or 10 s pass): the helpers must take
  // the rest, however late the scheduler wakes them.
  pool.run(16, 2, [&](int64_t) {
    if (std::this_thread::get_id() != caller) {
      helper_ran = true;
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!helper_ran && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  EXPECT_TRUE(helper_ran);
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
