#include "backend/cpu/thread_pool.h"

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "core/check.h"

namespace rf::backend::cpu {
namespace {

// Chunk t of n items split over n_threads, aligned to grain.
std::pair<int64_t, int64_t> chunk(int64_t n, int64_t grain, int t, int n_threads) {
  const int64_t units = (n + grain - 1) / grain;
  const int64_t per = units / n_threads;
  const int64_t extra = units % n_threads;
  const int64_t begin_u = t * per + std::min<int64_t>(t, extra);
  const int64_t end_u = begin_u + per + (t < extra ? 1 : 0);
  return {std::min(n, begin_u * grain), std::min(n, end_u * grain)};
}

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
  {
    std::lock_guard<std::mutex> lock(mu_);
    RF_CHECK_MSG(job_ == nullptr, "ThreadPool::parallel_for is not reentrant");
    job_ = &fn;
    job_n_ = n;
    job_grain_ = grain;
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1);
  }
  work_cv_.notify_all();
  const auto [b, e] = chunk(n, grain, 0, n_threads_);
  if (b < e) fn(b, e, 0);
  if (!spin_until([this] { return pending_.load() == 0; }, kSpinMicros)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_.load() == 0; });
  }
  std::lock_guard<std::mutex> lock(mu_);
  job_ = nullptr;
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t, int)>* job;
    int64_t n, grain;
    spin_until([&] { return generation_.load() != seen; }, kSpinMicros);
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      job = job_;
      n = job_n_;
      grain = job_grain_;
    }
    const auto [b, e] = chunk(n, grain, index, n_threads_);
    if (b < e) (*job)(b, e, index);
    if (pending_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller checks pending_ under mu_ before sleeping
      done_cv_.notify_one();
    }
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
