// parallel_for over an index range on a fixed number of threads (coarse-grained work: tools, loaders).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace rf {

// Number of hardware threads, at least 1.
inline int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// Calls fn(begin, end) on contiguous chunks of [0, n) from up to `threads` threads; returns when all are done.
template <typename Fn>
void parallel_for(int64_t n, int threads, Fn&& fn) {
  if (n <= 0) return;
  const int64_t t = std::clamp<int64_t>(threads, 1, n);
  if (t == 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(t - 1));
  const int64_t chunk = (n + t - 1) / t;
  for (int64_t i = 1; i < t; ++i) {
    const int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(int64_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

}  // namespace rf
