// Deterministic random values for synthetic models: element i of tensor t depends only on (seed, t, i), so any
// chunk can be generated on any thread and the file is the same whatever the thread count.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rf::cli {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t hash_name(std::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Fills out[0..n) with N(mean, stddev^2) values for elements [first, first + n) of the stream `key`.
inline void fill_normal(uint64_t key, int64_t first, int64_t n, float mean, float stddev, float* out) {
  constexpr double kTwoPi = 6.283185307179586;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t i = first + j;
    const uint64_t r = splitmix64(key ^ splitmix64(static_cast<uint64_t>(i >> 1)));
    const double u1 = (static_cast<double>(r >> 40) + 0.5) / 16777216.0;            // (0, 1)
    const double u2 = static_cast<double>((r >> 16) & 0xffffffull) / 16777216.0;  // [0, 1)
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double z = (i & 1) ? radius * std::sin(kTwoPi * u2) : radius * std::cos(kTwoPi * u2);
    out[j] = mean + stddev * static_cast<float>(z);
  }
}

}  // namespace rf::cli
