#include "backend/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "core/check.h"

namespace rf::backend::cpu {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Waits for done() without sleeping for about `micros`: pause-spins for the first kPauseMicros (an idle core: the
// next loop starts within nanoseconds), then yields between checks, so that on an oversubscribed machine the
// other runnable threads (often the worker this thread waits for) get the core. True when done() became true.
template <typename Done>
bool spin_until(Done done, int micros) {
  constexpr int kPauseMicros = 20;
  const auto start = std::chrono::steady_clock::now();
  const auto pause_end = start + std::chrono::microseconds(kPauseMicros);
  const auto deadline = start + std::chrono::microseconds(micros);
  bool pausing = true;
  for (int i = 0;; ++i) {
    if (done()) return true;
    if (pausing) {
      cpu_relax();
      if ((i & 63) != 63) continue;
      pausing = std::chrono::steady_clock::now() < pause_end;
    } else {
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n_threads_ == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  RF_CHECK_MSG(n < (int64_t{1} << (kIndexBits - 1)), "ThreadPool::parallel_for: loop too long");
  const int64_t parts = int64_t{n_threads_} * kChunksPerThread;
  const int64_t chunk = std::max(grain, ((n + parts - 1) / parts + grain - 1) / grain * grain);
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RF_CHECK_MSG(job_ == nullptr, "ThreadPool::parallel_for is not reentrant");
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    done_.store(0);
    gen = generation_.load() + 1;
    claim_.store(gen << kIndexBits);
    generation_.store(gen);
  }
  work_cv_.notify_all();
  run_chunks(gen, fn, n, chunk, 0);
  if (!spin_until([&] { return done_.load() == n; }, kSpinMicros)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return done_.load() == n; });
  }
  std::lock_guard<std::mutex> lock(mu_);
  job_ = nullptr;
}

void ThreadPool::run_chunks(uint64_t gen, const std::function<void(int64_t, int64_t, int)>& fn, int64_t n,
                            int64_t chunk, int thread) {
  constexpr uint64_t kIndexMask = (uint64_t{1} << kIndexBits) - 1;
  const uint64_t tag = gen & (~uint64_t{0} >> kIndexBits);
  for (;;) {
    uint64_t v = claim_.load();
    int64_t begin;
    for (;;) {
      if ((v >> kIndexBits) != tag) return;  // a later loop has started: this one is finished
      begin = static_cast<int64_t>(v & kIndexMask);
      if (begin >= n) return;
      if (claim_.compare_exchange_weak(v, v + static_cast<uint64_t>(chunk))) break;
    }
    const int64_t end = std::min(n, begin + chunk);
    fn(begin, end, thread);
    if (done_.fetch_add(end - begin) + (end - begin) == n) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller checks done_ under mu_ before sleeping
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t, int)>* job;
    int64_t n, chunk;
    spin_until([&] { return generation_.load() != seen; }, kSpinMicros);
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      job = job_;
      n = job_n_;
      chunk = job_chunk_;
    }
    // The loop may already be over (job_ cleared, or claim_ carries a later generation): then nothing runs.
    if (job != nullptr) run_chunks(seen, *job, n, chunk, index);
  }
}

int ThreadPool::physical_cores() {
  // Count distinct (physical id, core id) pairs in /proc/cpuinfo; fall back to hardware_concurrency.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_first_of(" \t"));
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (key == "physical") phys = value;
    if (key == "core" && line.rfind("core id", 0) == 0) cores.insert({phys, value});
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

}  // namespace rf::backend::cpu
