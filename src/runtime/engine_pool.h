// A small pool of sleeping worker threads for the engine's per-step, per-sequence work (sampling): the scheduler
// thread calls run(n, fn), which hands out the indices [0, n) one at a time to itself and to the workers it woke,
// and returns when every index is done. Started once with the engine: a step pays a wake-up per worker instead of
// a thread start. Workers do not spin between steps (on a CPU backend they would steal cores from the forward pass).
//
// An index is claimed by a compare-and-swap on (generation, next index): a worker that wakes late, after the run it
// was woken for has finished and another began, can claim nothing of the new run with the old run's function.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rf::runtime {

class WorkerPool {
 public:
  explicit WorkerPool(int n_workers) {
    for (int i = 0; i < n_workers; ++i) threads_.emplace_back([this, i] { work(i); });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int n_workers() const { return static_cast<int>(threads_.size()); }

  // Calls fn(i) once for every i in [0, n) on the calling thread and up to `helpers` workers; returns when all
  // calls have returned. Calls of one run may run concurrently, so fn must be safe for distinct indices.
  void run(int64_t n, int helpers, const std::function<void(int64_t)>& fn) {
    helpers = std::clamp(helpers, 0, n_workers());
    if (n <= 0) return;
    if (helpers == 0 || n == 1) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    uint64_t gen = 0;
    {
      std::lock_guard lock(mu_);
      gen = ++gen_;
      fn_ = &fn;
      n_ = n;
      helpers_ = helpers;
      done_.store(0);
      claim_.store(gen << 32);
    }
    wake_.notify_all();
    drain(gen, n, fn);
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return done_.load() == n; });
    fn_ = nullptr;
  }

 private:
  // Claims and runs indices of run `gen` until none is left.
  void drain(uint64_t gen, int64_t n, const std::function<void(int64_t)>& fn) {
    uint64_t c = claim_.load();
    while ((c >> 32) == (gen & 0xffffffffu) && static_cast<int64_t>(c & 0xffffffffu) < n) {
      if (!claim_.compare_exchange_weak(c, c + 1)) continue;
      fn(static_cast<int64_t>(c & 0xffffffffu));
      if (done_.fetch_add(1) + 1 == n) {
        std::lock_guard lock(mu_);
        done_cv_.notify_all();
      }
      c = claim_.load();
    }
  }

  void work(int index) {
    uint64_t seen = 0;
    while (true) {
      const std::function<void(int64_t)>* fn = nullptr;
      int64_t n = 0;
      uint64_t gen = 0;
      {
        std::unique_lock lock(mu_);
        wake_.wait(lock, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen = gen_;
        if (index >= helpers_ || fn_ == nullptr) continue;  // not needed for this run, or it is over already
        fn = fn_;
        n = n_;
      }
      drain(gen, n, *fn);
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, done_cv_;
  uint64_t gen_ = 0;  // guarded by mu_, as are the run's fn_, n_ and helpers_
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int helpers_ = 0;
  std::atomic<uint64_t> claim_{0};  // (generation << 32) | next index
  std::atomic<int64_t> done_{0};
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace rf::runtime
