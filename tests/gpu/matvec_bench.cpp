// Micro-benchmark of the GPU backend's matmul (activation rounding + product) for decode (1 token) and a
// prefill-sized batch, on 7B-shaped weights: reports weight GB/s for decode as a share of the device's measured
// copy bandwidth, and GFLOP/s for the batch. Run on the GPU machine:  gpu_matvec_bench [types...]
// Weights rotate over several copies so that the 50 MB L2 cache cannot hold them.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/gpu_backend.h"
#include "backend/gpu/matmul.h"
#include "quant/quant.h"
#include "quant/types.h"

namespace {

using rf::backend::Tensor;
using rf::quant::Type;

struct Timer {
  gpuEvent_t a{}, b{};
  Timer() {
    GPU_CHECK(gpuEventCreateWithFlags(&a, gpuEventDefault));
    GPU_CHECK(gpuEventCreateWithFlags(&b, gpuEventDefault));
  }
  ~Timer() {
    (void)gpuEventDestroy(a);
    (void)gpuEventDestroy(b);
  }
};

template <typename F>
double median_ms(gpuStream_t s, int reps, F&& f) {
  Timer t;
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    GPU_CHECK(gpuEventRecord(t.a, s));
    f(i);
    GPU_CHECK(gpuEventRecord(t.b, s));
    GPU_CHECK(gpuEventSynchronize(t.b));
    float v = 0.0f;
    GPU_CHECK(gpuEventElapsedTime(&v, t.a, t.b));
    ms.push_back(v);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double copy_bandwidth_gbs(gpuStream_t s) {
  const size_t bytes = size_t{1} << 30;
  void *src = nullptr, *dst = nullptr;
  GPU_CHECK(gpuMalloc(&src, bytes));
  GPU_CHECK(gpuMalloc(&dst, bytes));
  GPU_CHECK(gpuMemsetAsync(src, 1, bytes, s));
  const double ms =
      median_ms(s, 10, [&](int) { GPU_CHECK(gpuMemcpyAsync(dst, src, bytes, gpuMemcpyDeviceToDevice, s)); });
  GPU_CHECK(gpuFree(src));
  GPU_CHECK(gpuFree(dst));
  return 2.0 * static_cast<double>(bytes) / (ms * 1e6);  // read + write
}

}  // namespace

int main(int argc, char** argv) {
  auto created = rf::gpu::GpuBackend::create(0);
  if (!created.ok()) {
    std::fprintf(stderr, "gpu_matvec_bench: %s\n", created.error_message().c_str());
    return 1;
  }
  rf::gpu::GpuBackend& be = **created;
  std::printf("%s\n", rf::gpu::describe(be.device()).c_str());
  const double copy_gbs = copy_bandwidth_gbs(be.stream());
  std::printf("device copy bandwidth: %.0f GB/s (read + write)\n", copy_gbs);

  std::vector<Type> types = {Type::Q4_0, Type::Q4_K, Type::Q6_K, Type::Q8_0, Type::F16};
  if (argc > 1) {
    types.clear();
    for (int i = 1; i < argc; ++i) {
      if (auto t = rf::quant::type_from_name(argv[i])) types.push_back(*t);
    }
  }
  // ROCMFORGE_BENCH_SHAPE=IN,OUT (default 4096,11008: a 7B gate / up matrix).
  int64_t n_in = 4096, n_out = 11008;
  if (const char* v = std::getenv("ROCMFORGE_BENCH_SHAPE")) {
    long a = 0, b = 0;
    if (std::sscanf(v, "%ld,%ld", &a, &b) == 2 && a > 0 && b > 0) n_in = a, n_out = b;
  }
  // ROCMFORGE_BENCH_BATCHES=2,3,4 (default 2,4,...,512): the batch sweep's sizes, each at most 512.
  std::vector<int64_t> batches = {2, 4, 8, 16, 32, 64, 128, 256, 512};
  if (const char* v = std::getenv("ROCMFORGE_BENCH_BATCHES")) {
    batches.clear();
    for (const char* p = v; *p != '\0';) {
      char* end = nullptr;
      const long nb = std::strtol(p, &end, 10);
      if (end == p) break;
      if (nb >= 1 && nb <= 512) batches.push_back(nb);
      p = *end == ',' ? end + 1 : end;
    }
  }
  // ROCMFORGE_BENCH_COPIES=N (default 6): 1 keeps a matrix of up to ~40 MB in L2, what a product whose weights were
  // asked of L2 ahead of it could reach.
  int64_t n_copies = 6;
  if (const char* v = std::getenv("ROCMFORGE_BENCH_COPIES")) n_copies = std::clamp<int64_t>(std::atol(v), 1, 64);
  const int64_t n_batch = 512;
  std::printf("shape %ld x %ld\n", static_cast<long>(n_in), static_cast<long>(n_out));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::printf("%-7s %10s %12s %10s %8s %14s\n", "type", "MB/copy", "decode us", "GB/s", "% copy", "batch GFLOP/s");
  for (const Type t : types) {
    const size_t rb = *rf::quant::row_bytes(t, n_in);
    // 256 quantized random rows, tiled over the matrix.
    std::vector<float> src(static_cast<size_t>(n_in) * 256);
    for (auto& v : src) v = dist(rng);
    std::vector<uint8_t> seed(rb * 256);
    for (int r = 0; r < 256; ++r) (void)rf::quant::quantize(t, src.data() + r * n_in, seed.data() + r * rb, n_in);
    std::vector<uint8_t> bytes(rb * static_cast<size_t>(n_out));
    for (int64_t r = 0; r < n_out; ++r) std::memcpy(bytes.data() + r * rb, seed.data() + (r % 256) * rb, rb);
    std::vector<Tensor> w;
    for (int c = 0; c < n_copies; ++c) {
      rf::gguf::TensorInfo info;
      info.name = "bench";
      info.type = t;
      info.ne = {n_in, n_out, 1, 1};
      info.data = bytes.data();
      auto loaded = be.load_weight(info);
      if (!loaded.ok()) {
        std::fprintf(stderr, "%s\n", loaded.error_message().c_str());
        return 1;
      }
      w.push_back(*loaded);
    }
    auto xbuf = be.alloc(static_cast<size_t>(n_in * n_batch) * sizeof(float));
    auto obuf = be.alloc(static_cast<size_t>(n_out * n_batch) * sizeof(float));
    std::vector<float> x(static_cast<size_t>(n_in * n_batch));
    for (auto& v : x) v = dist(rng);
    Tensor xt = rf::backend::make_tensor(xbuf->data(), Type::F32, n_in, n_batch);
    be.to_device(xt, x.data(), x.size() * sizeof(float));
    Tensor ot = rf::backend::make_tensor(obuf->data(), Type::F32, n_out, n_batch);
    const Tensor x1 = xt.rows(0, 1), o1 = ot.rows(0, 1);
    for (int i = 0; i < 5; ++i) be.matmul(o1, x1, w[static_cast<size_t>(i) % w.size()]);  // warm-up
    const double dec_ms = median_ms(be.stream(), 60, [&](int i) {
      be.matmul(o1, x1, w[static_cast<size_t>(i) % w.size()]);
      be.flush_deferred();
    });
    // Back-to-back products (as in a decode graph: no idle GPU between launches), one and two warps per row (split
    // K, where the kernel has it); the activation row is quantized once and reused.
    {
      rf::gpu::MatmulPolicy& pol = rf::gpu::matmul_policy();
      const int saved_split = pol.split_k;
      for (const int split : {1, 2}) {
        pol.split_k = split;
        be.matmul(o1, x1, w[0]);
        be.flush_deferred();
        const int k = 24;
        const double ms = median_ms(be.stream(), 15, [&](int) {
          for (int i = 0; i < k; ++i) {
            be.matmul(o1, x1, w[static_cast<size_t>(i) % w.size()]);
            be.flush_deferred();
          }
        }) / k;
        const double g = static_cast<double>(bytes.size()) / (ms * 1e6);
        std::printf("  back-to-back %-7s split_k %d %8.2f us %7.0f GB/s %6.1f%% copy\n",
                    std::string(rf::quant::type_name(t)).c_str(), split, ms * 1e3, g, 100.0 * g / copy_gbs);
      }
      pol.split_k = saved_split;
    }
    if (std::getenv("ROCMFORGE_BENCH_DECODE_ONLY") != nullptr) continue;  // decode figures only
    be.matmul(ot, xt, w[0]);
    const double bat_ms =
        median_ms(be.stream(), 5, [&](int i) { be.matmul(ot, xt, w[static_cast<size_t>(i) % w.size()]); });
    const double gbs = static_cast<double>(bytes.size()) / (dec_ms * 1e6);
    const double gflops = 2.0 * n_in * n_out * n_batch / (bat_ms * 1e6);
    std::printf("%-7s %10.1f %12.1f %10.0f %7.1f%% %14.0f\n", std::string(rf::quant::type_name(t)).c_str(),
                static_cast<double>(bytes.size()) / 1e6, dec_ms * 1e3, gbs, 100.0 * gbs / copy_gbs, gflops);
    // Batch sweep: the float kernels against the tensor-core tiles (auto choice, then each tile forced).
    rf::gpu::MatmulPolicy& policy = rf::gpu::matmul_policy();
    const rf::gpu::MatmulPolicy saved = policy;
    // Every column but the last runs its own kernel: the BLAS (which takes batches of blas_min_tokens or more by
    // default) is off there.
    rf::gpu::MatmulPolicy kernels = saved;
    kernels.blas_min_tokens = 0;
    for (const int64_t nb : batches) {
      const Tensor xb = xt.rows(0, nb), ob = ot.rows(0, nb);
      auto time_it = [&]() {
        be.matmul(ob, xb, w[0]);
        be.flush_deferred();
        return median_ms(be.stream(), 12, [&](int i) {
          be.matmul(ob, xb, w[static_cast<size_t>(i) % w.size()]);
          be.flush_deferred();
        });
      };
      policy = kernels;
      policy.mma_min_tokens = 1 << 30;
      policy.int8_max_tokens = 0;
      policy.mmq_max_tokens = 0;
      const double f_ms = time_it();
      std::printf("  batch %4ld  float %8.1f us", static_cast<long>(nb), f_ms * 1e3);
      policy = kernels;
      policy.mmq_max_tokens = 1 << 30;
      if (rf::gpu::has_mmq_matmul(t)) {
        const double q_ms = time_it();
        std::printf("  mmq %8.1f us (%5.0f GB/s %6.1f TOP/s)", q_ms * 1e3, static_cast<double>(bytes.size()) / (q_ms * 1e6),
                    2.0 * n_in * n_out * nb / (q_ms * 1e9));
      }
      policy = kernels;
      policy.int8_max_tokens = 1 << 30;
      policy.mmq_max_tokens = 0;
      if (rf::gpu::has_int8_matvec(t, 1)) {
        const double i_ms = time_it();
        std::printf("  int8 %8.1f us (%5.0f GB/s)", i_ms * 1e3, static_cast<double>(bytes.size()) / (i_ms * 1e6));
        policy.stage_min_tokens = 0;  // the same product with every warp reading the activations from L2
        std::printf("  unstaged %8.1f us", time_it() * 1e3);
      }
      if (rf::gpu::has_mma_matmul(t)) {
        for (int tile = -1; tile < 3; ++tile) {
          policy = kernels;
          policy.int8_max_tokens = 0;
          policy.mmq_max_tokens = 0;
          policy.force_tile = tile;
          const double m_ms = time_it();
          std::printf("  %s %8.1f us", tile < 0 ? "mma(auto)" : tile == 0 ? "S" : tile == 1 ? "M" : "L", m_ms * 1e3);
          if (tile < 0) {
            std::printf(" (%5.0f GB/s %6.1f TFLOP/s)", static_cast<double>(bytes.size()) / (m_ms * 1e6),
                        2.0 * n_in * n_out * nb / (m_ms * 1e9));
          }
        }
      }
      if (saved.blas_min_tokens > 0 && nb >= saved.blas_min_tokens) {
        policy = saved;
        const double b_ms = time_it();
        std::printf("  default (blas) %8.1f us (%6.1f TFLOP/s)", b_ms * 1e3, 2.0 * n_in * n_out * nb / (b_ms * 1e9));
      }
      std::printf("\n");
    }
    policy = saved;
  }
  return 0;
}
