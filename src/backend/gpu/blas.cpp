// BlasContext (blas.h): cuBLAS, loaded at run time, for long batches. The only file that names a BLAS.
#include "backend/gpu/blas.h"

#include <algorithm>
#include <string>
#include <vector>

#include "backend/gpu/dequant.h"

// cuBLAS's header comes with the CUDA toolkit; a toolkit without it builds the no-BLAS variant.
#if defined(RF_GPU_CUDA) && __has_include(<cublas_v2.h>)
#define RF_HAVE_CUBLAS 1
#include <cublas_v2.h>
#include <dlfcn.h>
#endif

namespace rf::gpu {

namespace {

// Weights whose F16 copy would exceed this take the backend's own kernels (e.g. a 128k-vocabulary output matrix
// applied to a whole batch): the copy would cost more memory than the product gains.
constexpr size_t kMaxDecodedWeightBytes = size_t{512} << 20;

bool is_16bit(quant::Type t) { return t == quant::Type::F16 || t == quant::Type::BF16; }

}  // namespace

#if defined(RF_HAVE_CUBLAS)

namespace {

#define RF_STR2(x) #x
#define RF_STR(x) RF_STR2(x)

// The cuBLAS entry points this file calls, resolved once from the toolkit's library.
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  // (cublasGemmEx is overloaded in C++: the 32-bit-size C entry point.)
  cublasStatus_t (*gemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                         const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                         cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  std::string error;  // why it is unusable (empty when usable)
};

const CublasApi& cublas_api() {
  static const CublasApi api = [] {
    CublasApi a;
    // The major version of the headers this was compiled with, by name, then the toolkit's directory, then any.
    const std::string soname = "libcublas.so." RF_STR(CUBLAS_VER_MAJOR);
    std::vector<std::string> names = {soname};
#if defined(RF_CUBLAS_DIR)
    names.push_back(std::string(RF_CUBLAS_DIR) + "/" + soname);
#endif
    names.push_back("libcublas.so");
    void* lib = nullptr;
    for (const std::string& n : names) {
      lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib != nullptr) break;
    }
    if (lib == nullptr) {
      a.error = "cannot load " + soname + " (" + std::string(dlerror() ? dlerror() : "not found") + ")";
      return a;
    }
    // The library stays loaded for the life of the process (handles may outlive any one backend).
    a.create = reinterpret_cast<decltype(a.create)>(dlsym(lib, "cublasCreate_v2"));
    a.destroy = reinterpret_cast<decltype(a.destroy)>(dlsym(lib, "cublasDestroy_v2"));
    a.set_stream = reinterpret_cast<decltype(a.set_stream)>(dlsym(lib, "cublasSetStream_v2"));
    a.gemm = reinterpret_cast<decltype(a.gemm)>(dlsym(lib, "cublasGemmEx"));
    if (a.create == nullptr || a.destroy == nullptr || a.set_stream == nullptr || a.gemm == nullptr) {
      a.error = soname + " lacks an entry point this build needs";
    }
    return a;
  }();
  return api;
}

Status cublas_status(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return ok_status();
  return Status::error(std::string("gpu blas: ") + what + " failed (cublasStatus " + std::to_string(static_cast<int>(s)) +
                       ")");
}

}  // namespace

struct BlasContext::Impl {
  cublasHandle_t handle = nullptr;
  ~Impl() {
    if (handle != nullptr) (void)cublas_api().destroy(handle);
  }
};

Expected<std::unique_ptr<BlasContext>> BlasContext::create(gpuStream_t stream) {
  const CublasApi& api = cublas_api();
  if (!api.error.empty()) return Status::error("gpu blas: " + api.error);
  auto impl = std::make_unique<Impl>();
  RF_RETURN_IF_ERROR(cublas_status(api.create(&impl->handle), "cublasCreate"));
  RF_RETURN_IF_ERROR(cublas_status(api.set_stream(impl->handle, stream), "cublasSetStream"));
  return std::unique_ptr<BlasContext>(new BlasContext(std::move(impl), stream));
}

#else  // HIP (no BLAS in Debian 12's ROCm, see blas.h) or a CUDA toolkit without cuBLAS

struct BlasContext::Impl {};

Expected<std::unique_ptr<BlasContext>> BlasContext::create(gpuStream_t) {
  return Status::error("gpu blas: this build has no BLAS (it uses the backend's own kernels)");
}

#endif

BlasContext::BlasContext(std::unique_ptr<Impl> impl, gpuStream_t stream) : impl_(std::move(impl)), stream_(stream) {}

BlasContext::~BlasContext() {
  if (weight_ != nullptr || act_ != nullptr) (void)gpuStreamSynchronize(stream_);
  for (void* p : {weight_, act_}) {
    if (p != nullptr) (void)gpuFree(p);
  }
}

bool BlasContext::supports(quant::Type t, int64_t n_in) {
  if (t == quant::Type::F32 || n_in % 8 != 0) return false;  // F32 weights pair with F32 activations
  return weight_type_supported(t) && n_in % quant::traits(t).block_size == 0;
}

bool BlasContext::reserve(void** buf, size_t* cap, size_t bytes) {
  if (bytes <= *cap) return true;
  if (*buf != nullptr) {
    (void)gpuStreamSynchronize(stream_);  // work queued on the old buffer finishes first
    (void)gpuFree(*buf);
  }
  *buf = nullptr;
  *cap = 0;
  if (gpuMalloc(buf, bytes) != gpuSuccess) {
    (void)gpuGetLastError();
    *buf = nullptr;
    return false;
  }
  *cap = bytes;
  return true;
}

Expected<bool> BlasContext::matmul(const WeightView& w, const float* x, int64_t x_stride, int64_t n_tok, float* out,
                                   int64_t out_stride, bool x_converted) {
  if (!supports(w.type, w.n_in)) {
    return Status::error("gpu blas: no product for " + std::string(quant::type_name(w.type)) + " rows of " +
                         std::to_string(w.n_in));
  }
  if (n_tok == 0 || w.n_out == 0) return true;
  const bool bf16 = w.type == quant::Type::BF16;
  const quant::Type act_type = activation_type(w.type);
  const int64_t n_in = w.n_in;
  const int64_t act_stride = n_in;  // supports(): a multiple of 8, so rows stay 16-byte aligned (no padding)
  // The weight as 16-bit rows: in place when it already is one (rows 16-byte aligned), else decoded to F16.
  const void* a = w.data;
  int64_t lda = static_cast<int64_t>(w.nb1 / 2);
  const bool in_place = is_16bit(w.type) && w.nb1 % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0;
  if (bf16 && !in_place) return false;  // decoded it would be F16, but its activations are BF16: own kernels
  if (!in_place) {
    const size_t bytes = static_cast<size_t>(n_in) * static_cast<size_t>(w.n_out) * 2;
    if (bytes > kMaxDecodedWeightBytes || !reserve(&weight_, &weight_cap_, bytes)) return false;
    a = weight_;
    lda = n_in;
  }
  if (!x_converted) {
    if (!reserve(&act_, &act_cap_, static_cast<size_t>(act_stride * n_tok) * 2)) return false;
  } else if (act_ == nullptr || act_cap_ < static_cast<size_t>(act_stride * n_tok) * 2) {
    return Status::error("gpu blas: activation rows claimed converted but absent");
  }
  if (!in_place) {
    RF_RETURN_IF_ERROR(decode_rows_half(w.type, w.data, w.nb1, n_in, w.n_out, static_cast<uint16_t*>(weight_), stream_));
  }
  if (!x_converted) {
    RF_RETURN_IF_ERROR(round_activations_16bit(act_type, x, x_stride, n_in, n_tok, static_cast<uint16_t*>(act_),
                                               act_stride, stream_));
  }
#if defined(RF_HAVE_CUBLAS)
  // Column-major view: C (n_out x n_tok, ldc out_stride) = A^T (A: n_in x n_out, lda) * B (n_in x n_tok, ldb).
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType ab_type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  RF_RETURN_IF_ERROR(cublas_status(
      cublas_api().gemm(impl_->handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.n_out), static_cast<int>(n_tok),
                        static_cast<int>(n_in), &alpha, a, ab_type, static_cast<int>(lda), act_, ab_type,
                        static_cast<int>(act_stride), &beta, out, CUDA_R_32F, static_cast<int>(out_stride),
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx"));
  return true;
#else
  (void)bf16;
  (void)a;
  (void)lda;
  (void)out;
  (void)out_stride;
  return Status::error("gpu blas: this build has no BLAS");
#endif
}

}  // namespace rf::gpu
