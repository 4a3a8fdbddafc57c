// Shared helpers of the CPU backend op tests: random data, F32 tensors owned by the test, a backend per kernel
// table (scalar, AVX2, AVX-512, NEON: whatever this CPU runs) and a batch builder with scattered KV block tables.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_kernels.h"

namespace rf::backend::cpu::test {

inline std::vector<float> random_floats(std::mt19937& rng, int64_t n, float sd = 1.0f) {
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) f = dist(rng);
  return v;
}

// An F32 matrix [ne0, ne1] owned by the test.
struct Mat {
  int64_t ne0 = 0, ne1 = 0;
  std::vector<float> v;
  Mat(int64_t cols, int64_t rows, float fill = 0.0f)
      : ne0(cols), ne1(rows), v(static_cast<size_t>(cols * rows), fill) {}
  float& at(int64_t col, int64_t row) { return v[static_cast<size_t>(row * ne0 + col)]; }
  float at(int64_t col, int64_t row) const { return v[static_cast<size_t>(row * ne0 + col)]; }
  const float* row(int64_t r) const { return v.data() + r * ne0; }
  Tensor t() { return make_tensor(v.data(), quant::Type::F32, ne0, ne1); }
};

inline Mat random_mat(std::mt19937& rng, int64_t ne0, int64_t ne1, float sd = 1.0f) {
  Mat m(ne0, ne1);
  m.v = random_floats(rng, ne0 * ne1, sd);
  return m;
}

// |got - want| <= abs_tol + rel_tol * |want| element-wise, with the first failure reported.
inline void expect_near_all(const std::vector<float>& got, const std::vector<double>& want, double abs_tol,
                            double rel_tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = abs_tol + rel_tol * std::fabs(want[i]);
    if (!(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol)) {
      ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " want " << want[i] << " (tol " << tol << ")";
      return;
    }
  }
}

// Parameter: the ISA name of one kernel table this CPU can run.
inline std::vector<std::string> isa_names() {
  std::vector<std::string> names;
  for (const KernelTable* t : available_kernel_tables()) names.push_back(t->isa);
  return names;
}

inline std::string isa_param_name(const ::testing::TestParamInfo<std::string>& p) { return p.param; }

// A backend on the named table with 3 threads (an odd count, so row partitions have ragged ends).
inline std::unique_ptr<CpuBackend> make_backend(const std::string& isa, int threads = 3) {
  const KernelTable* table = find_kernel_table(isa);
  EXPECT_NE(table, nullptr) << isa;
  return std::make_unique<CpuBackend>(threads, table);
}

// Tokens of several sequences: seq_tokens[s] = {first position, count}. Each sequence gets a block table of
// distinct physical blocks drawn from a shuffled pool of n_blocks ids (so logical order != physical order).
inline Batch scattered_batch(std::mt19937& rng, const std::vector<std::pair<int, int>>& seq_tokens, int block_size,
                             int n_blocks) {
  Batch b;
  b.kv_block_size = block_size;
  std::vector<int32_t> pool(static_cast<size_t>(n_blocks));
  for (int i = 0; i < n_blocks; ++i) pool[static_cast<size_t>(i)] = i;
  std::shuffle(pool.begin(), pool.end(), rng);
  size_t next = 0;
  for (size_t s = 0; s < seq_tokens.size(); ++s) {
    const auto [first, count] = seq_tokens[s];
    const int need = (first + count + block_size - 1) / block_size;
    std::vector<int32_t> table;
    for (int i = 0; i < need; ++i) table.push_back(pool.at(next++));
    b.block_tables.push_back(table);
  }
  // Interleave the sequences' tokens (a mixed batch), each sequence's positions ascending.
  std::vector<int> done(seq_tokens.size(), 0);
  for (bool any = true; any;) {
    any = false;
    for (size_t s = 0; s < seq_tokens.size(); ++s) {
      if (done[s] == seq_tokens[s].second) continue;
      any = true;
      b.tokens.push_back(0);
      b.positions.push_back(seq_tokens[s].first + done[s]++);
      b.seq.push_back(static_cast<int32_t>(s));
    }
  }
  return b;
}

inline int64_t slot_of(const Batch& b, int32_t seq, int32_t pos) {
  return int64_t{b.block_tables[static_cast<size_t>(seq)][static_cast<size_t>(pos / b.kv_block_size)]} *
             b.kv_block_size +
         pos % b.kv_block_size;
}

}  // namespace rf::backend::cpu::test
