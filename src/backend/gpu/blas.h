// Long batches (prefill) through the vendor BLAS: the one file of the GPU backend that uses it (blas.cpp).
//
// A product out[token][row] = weight row . activation row becomes one dense GEMM with F32 accumulation:
//   - F16 weights are used in place; BF16 weights too (a BF16 x BF16 GEMM);
//   - quantized weights are first decoded to F16 rows in scratch (dequant.h decode_rows_16bit);
//   - the activations are rounded as the CPU pairs them with the weight type (matmul.h activation_type: F16, BF16,
//     Q8_0 / Q8_1 / Q8_K values) and then carried as F16 (BF16 for BF16 weights).
// F16 and BF16 weights therefore see exactly the CPU's factors; quantized weights see both factors rounded to F16
// once more (2^-11 relative each), as the F16 tensor-core tiles of matmul_mma do.
//
// The library is loaded at run time (dlopen), so a build links no BLAS and runs without one: CUDA builds look for
// the cuBLAS of the toolkit they were compiled with. HIP builds have none (Debian 12 ships neither hipBLAS nor
// rocBLAS) and keep the backend's own kernels.
//
// The BLAS chooses its algorithm by the batch shape, so a token's result depends on the batch it came in: the
// backend never uses this path in batch-invariant mode (serve's default).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "backend/gpu/compat.h"
#include "backend/gpu/matmul.h"
#include "core/status.h"

namespace rf::gpu {

class BlasContext {
 public:
  // A BLAS handle on `stream`; an error when this build or machine has no BLAS library.
  static Expected<std::unique_ptr<BlasContext>> create(gpuStream_t stream);
  ~BlasContext();
  BlasContext(const BlasContext&) = delete;
  BlasContext& operator=(const BlasContext&) = delete;

  // Whether matmul() takes weights of type t (and row length n_in).
  static bool supports(quant::Type t, int64_t n_in);
  // out[t * out_stride + r] = dot(weight row r, x row t) for t < n_tok, r < w.n_out (first matrix of w); x rows are
  // x_stride floats apart. x_converted: the previous call converted these same rows for a weight of the same
  // activation_type and nothing has written them since (q / k / v, gate / up), so they are not converted again.
  // False, with nothing launched, when scratch memory cannot be had (the caller then uses its own kernels); an
  // error when a launch fails.
  Expected<bool> matmul(const WeightView& w, const float* x, int64_t x_stride, int64_t n_tok, float* out,
                        int64_t out_stride, bool x_converted);

 private:
  struct Impl;
  explicit BlasContext(std::unique_ptr<Impl> impl, gpuStream_t stream);
  // Device scratch of at least `bytes` in *buf (capacity *cap), reallocated when too small; false when it cannot be
  // had (the runtime error is cleared: the caller falls back).
  bool reserve(void** buf, size_t* cap, size_t bytes);

  std::unique_ptr<Impl> impl_;
  gpuStream_t stream_ = nullptr;
  void* weight_ = nullptr;  // decoded F16 weight rows
  size_t weight_cap_ = 0;
  void* act_ = nullptr;  // the activations rounded as the CPU pairs them, as F16 / BF16
  size_t act_cap_ = 0;
};

}  // namespace rf::gpu
