// A GPU backend next to the scalar CPU backend (the oracle) for the op-parity tests: the same host data uploaded
// to both, outputs downloaded as float rows, and comparison helpers that report the worst element.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/gpu/gpu_backend.h"
#include "gpu_test_support.h"

namespace rf::gpu::test {

using backend::Tensor;

// Skips (or fails under ROCMFORGE_REQUIRE_GPU=1) without a GPU; otherwise `pair` holds both backends.
#define RF_REQUIRE_GPU_PAIR(pair)                             \
  RF_REQUIRE_GPU(pair##_info);                                \
  auto pair##_gpu = ::rf::gpu::GpuBackend::create(0);         \
  ASSERT_TRUE(pair##_gpu.ok()) << pair##_gpu.error_message(); \
  ::rf::gpu::test::BackendPair pair(std::move(*pair##_gpu))

class BackendPair {
 public:
  explicit BackendPair(std::unique_ptr<GpuBackend> gpu)
      : gpu_(std::move(gpu)), cpu_(2, &backend::cpu::scalar_kernels()) {}

  GpuBackend& gpu() { return *gpu_; }
  backend::cpu::CpuBackend& cpu() { return cpu_; }

  // Contiguous tensors of `type` (F32 / I32 / F16 raw bytes) on each backend, filled with `bytes`.
  Tensor make(backend::Backend& be, quant::Type type, int64_t ne0, int64_t ne1, const void* bytes) {
    const size_t elem = type == quant::Type::F16 ? 2 : 4;
    const size_t n = static_cast<size_t>(ne0 * ne1) * elem;
    keep_.push_back(be.alloc(n));
    Tensor t;
    t.data = keep_.back()->data();
    t.type = type;
    t.ne0 = ne0;
    t.ne1 = ne1;
    t.nb1 = static_cast<size_t>(ne0) * elem;
    t.nb2 = n;
    if (bytes != nullptr) be.to_device(t, bytes, n);
    return t;
  }
  Tensor gpu_f32(const std::vector<float>& v, int64_t ne0) {
    return make(*gpu_, quant::Type::F32, ne0, static_cast<int64_t>(v.size()) / ne0, v.data());
  }
  Tensor cpu_f32(const std::vector<float>& v, int64_t ne0) {
    return make(cpu_, quant::Type::F32, ne0, static_cast<int64_t>(v.size()) / ne0, v.data());
  }
  Tensor gpu_zeros(int64_t ne0, int64_t ne1) { return make(*gpu_, quant::Type::F32, ne0, ne1, nullptr); }
  Tensor cpu_zeros(int64_t ne0, int64_t ne1) { return make(cpu_, quant::Type::F32, ne0, ne1, nullptr); }

  // The weight (n_mat matrices of n_out rows of n_in, raw `bytes` of `type`) loaded by each backend.
  std::pair<Tensor, Tensor> weight(quant::Type type, int64_t n_in, int64_t n_out, int64_t n_mat,
                                   const std::vector<uint8_t>& bytes) {
    gguf::TensorInfo info;
    info.name = "test.weight";
    info.type = type;
    info.n_dims = n_mat > 1 ? 3 : 2;
    info.ne = {n_in, n_out, n_mat, 1};
    info.n_bytes = bytes.size();
    info.data = bytes.data();
    auto g = gpu_->load_weight(info);
    EXPECT_TRUE(g.ok()) << g.error_message();
    auto c = cpu_.load_weight(info);
    EXPECT_TRUE(c.ok()) << c.error_message();
    return {g.ok() ? *g : Tensor{}, c.ok() ? *c : Tensor{}};
  }

  std::vector<float> download(backend::Backend& be, Tensor t) {
    std::vector<float> v(static_cast<size_t>(t.ne0 * t.ne1));
    be.sync();
    be.to_host(v.data(), t, v.size() * sizeof(float));
    return v;
  }

 private:
  std::unique_ptr<GpuBackend> gpu_;
  backend::cpu::CpuBackend cpu_;
  std::vector<std::unique_ptr<backend::Buffer>> keep_;
};

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Every element within tol[i] (or the one tolerance for all); reports the count and the worst elements.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& tol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float t = tol.size() == 1 ? tol[0] : tol[i];
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    worst = std::max(worst, err / std::max(t, 1e-30f));
    if (!(err <= t)) {  // NaN fails too
      if (++bad <= 5)
        ADD_FAILURE() << what << ": element " << i << " gpu " << got[i] << " cpu " << want[i] << " tol " << t;
    }
  }
  EXPECT_EQ(bad, 0u) << what << " (" << got.size() << " elements, worst error / tolerance " << worst << ")";
}

}  // namespace rf::gpu::test
