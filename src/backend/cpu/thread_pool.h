// A fixed pool of worker threads for data-parallel loops: parallel_for splits [0, n) into contiguous chunks
// (about kChunksPerThread per thread) that the calling thread and the workers claim from an atomic counter, and
// returns when all are done. Claiming instead of a fixed split matters on a busy machine: a worker the OS has not
// scheduled yet simply claims nothing, and the others take its share instead of waiting for it. Decode runs
// hundreds of small loops per token, so idle workers and the waiting caller spin briefly (kSpinMicros) before
// sleeping on a condition variable: a loop that follows within that window starts without a futex wake-up.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rf::backend::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1 (the caller counts as one)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(begin, end, thread_index) over a partition of [0, n); chunks are multiples of `grain` (except the last).
  // fn may be called several times per thread.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

  // Physical cores of this machine (logical CPUs / SMT siblings), at least 1.
  static int physical_cores();

 private:
  void worker(int index);
  // Claims and runs chunks of loop `gen` until none is left (or the loop is no longer current).
  void run_chunks(uint64_t gen, const std::function<void(int64_t, int64_t, int)>& fn, int64_t n, int64_t chunk,
                  int thread);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  static constexpr int kSpinMicros = 200;
  static constexpr int kChunksPerThread = 4;
  static constexpr int kIndexBits = 40;  // claim_ = (generation tag << kIndexBits) | next unclaimed index

  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;  // written under mu_ with generation_
  int64_t job_n_ = 0;
  int64_t job_chunk_ = 1;
  std::atomic<uint64_t> generation_{0};  // bumped under mu_ for each loop
  std::atomic<uint64_t> claim_{0};
  std::atomic<int64_t> done_{0};  // items of the current loop finished
  bool stop_ = false;
};

}  // namespace rf::backend::cpu
