// The one CUDA/HIP portability header of the GPU backend. Every GPU source includes this instead of a vendor
// header, and names runtime calls, types and warp primitives through it:
//   - runtime API: gpuMalloc, gpuMemcpyAsync, gpuStream_t, gpuEvent_t, gpuGraph_t, ... (one name for both vendors;
//     calls whose signatures differ between CUDA and HIP are inline wrappers with one signature);
//   - GPU_CHECK(call): aborts with file, line and the runtime's message (internal invariants only);
//     GPU_RETURN_IF_ERROR(call): returns an rf::Status from the enclosing function (errors that are values);
//   - kWarpSize: 32 on NVIDIA and on RDNA (gfx10+ in wave32), 64 on GCN/CDNA (gfx9); device code only;
//   - shfl_xor / shfl_down and warp_reduce_sum / warp_reduce_max written over kWarpSize; block_reduce_sum / _max.
// The runtime part is plain host C++ (host-only translation units may include this header); the device part
// is compiled only by nvcc or by clang in HIP mode.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/status.h"

#if !defined(RF_GPU_CUDA) && !defined(RF_GPU_HIP)
#if defined(__HIP_PLATFORM_AMD__) || defined(__HIP__)
#define RF_GPU_HIP 1
#else
#define RF_GPU_CUDA 1
#endif
#endif

#if defined(RF_GPU_HIP)
#if defined(__HIP__)
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#else
#include <hip/hip_runtime_api.h>
#endif
#else
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#if defined(__CUDACC__) || defined(__HIP__)
#define RF_GPU_DEVICE_COMPILER 1
#endif

// ---------------------------------------------------------------------------------------------------------------
// Runtime API names
// ---------------------------------------------------------------------------------------------------------------
#if defined(RF_GPU_HIP)
#define RF_GPU_API(name) hip##name
#else
#define RF_GPU_API(name) cuda##name
#endif

using gpuError_t = RF_GPU_API(Error_t);
using gpuStream_t = RF_GPU_API(Stream_t);
using gpuEvent_t = RF_GPU_API(Event_t);
using gpuGraph_t = RF_GPU_API(Graph_t);
using gpuGraphExec_t = RF_GPU_API(GraphExec_t);
#if defined(RF_GPU_HIP)
using gpuDeviceProp_t = hipDeviceProp_t;
#else
using gpuDeviceProp_t = cudaDeviceProp;
#endif
using gpuMemcpyKind = RF_GPU_API(MemcpyKind);

#define gpuSuccess RF_GPU_API(Success)
#define gpuErrorNotReady RF_GPU_API(ErrorNotReady)
#define gpuMemcpyHostToDevice RF_GPU_API(MemcpyHostToDevice)
#define gpuMemcpyDeviceToHost RF_GPU_API(MemcpyDeviceToHost)
#define gpuMemcpyDeviceToDevice RF_GPU_API(MemcpyDeviceToDevice)
#define gpuMemcpyDefault RF_GPU_API(MemcpyDefault)
#define gpuStreamNonBlocking RF_GPU_API(StreamNonBlocking)
#define gpuEventDefault RF_GPU_API(EventDefault)
#define gpuEventDisableTiming RF_GPU_API(EventDisableTiming)
#define gpuStreamCaptureModeGlobal RF_GPU_API(StreamCaptureModeGlobal)
#define gpuStreamCaptureModeThreadLocal RF_GPU_API(StreamCaptureModeThreadLocal)
#define gpuStreamCaptureModeRelaxed RF_GPU_API(StreamCaptureModeRelaxed)
#define gpuFuncAttributeMaxDynamicSharedMemorySize RF_GPU_API(FuncAttributeMaxDynamicSharedMemorySize)
// Errors after which the device context is unusable (gpu_error_loses_context): the two runtimes spell some apart.
#define gpuErrorIllegalAddress RF_GPU_API(ErrorIllegalAddress)
#define gpuErrorLaunchFailure RF_GPU_API(ErrorLaunchFailure)
#define gpuErrorAssert RF_GPU_API(ErrorAssert)
#define gpuErrorContextIsDestroyed RF_GPU_API(ErrorContextIsDestroyed)
#if defined(RF_GPU_HIP)
#define gpuErrorLaunchTimeout hipErrorLaunchTimeOut
#define gpuErrorECCUncorrectable hipErrorECCNotCorrectable
#else
#define gpuErrorLaunchTimeout cudaErrorLaunchTimeout
#define gpuErrorECCUncorrectable cudaErrorECCUncorrectable
#endif

#define gpuGetErrorName RF_GPU_API(GetErrorName)
#define gpuGetErrorString RF_GPU_API(GetErrorString)
#define gpuGetLastError RF_GPU_API(GetLastError)
#define gpuPeekAtLastError RF_GPU_API(PeekAtLastError)
#define gpuGetDeviceCount RF_GPU_API(GetDeviceCount)
#define gpuGetDeviceProperties RF_GPU_API(GetDeviceProperties)
#define gpuGetDevice RF_GPU_API(GetDevice)
#define gpuSetDevice RF_GPU_API(SetDevice)
#define gpuDeviceSynchronize RF_GPU_API(DeviceSynchronize)
#define gpuDriverGetVersion RF_GPU_API(DriverGetVersion)
#define gpuRuntimeGetVersion RF_GPU_API(RuntimeGetVersion)
#define gpuMemGetInfo RF_GPU_API(MemGetInfo)
#define gpuMalloc RF_GPU_API(Malloc)
#define gpuFree RF_GPU_API(Free)
#define gpuMemcpy RF_GPU_API(Memcpy)
#define gpuMemcpyAsync RF_GPU_API(MemcpyAsync)
#define gpuMemset RF_GPU_API(Memset)
#define gpuMemsetAsync RF_GPU_API(MemsetAsync)
#define gpuStreamCreateWithFlags RF_GPU_API(StreamCreateWithFlags)
#define gpuStreamDestroy RF_GPU_API(StreamDestroy)
#define gpuStreamSynchronize RF_GPU_API(StreamSynchronize)
#define gpuStreamWaitEvent RF_GPU_API(StreamWaitEvent)
#define gpuStreamBeginCapture RF_GPU_API(StreamBeginCapture)
#define gpuStreamEndCapture RF_GPU_API(StreamEndCapture)
#define gpuEventCreateWithFlags RF_GPU_API(EventCreateWithFlags)
#define gpuEventDestroy RF_GPU_API(EventDestroy)
#define gpuEventRecord RF_GPU_API(EventRecord)
#define gpuEventSynchronize RF_GPU_API(EventSynchronize)
#define gpuEventElapsedTime RF_GPU_API(EventElapsedTime)
#define gpuGraphLaunch RF_GPU_API(GraphLaunch)
#define gpuGraphDestroy RF_GPU_API(GraphDestroy)
#define gpuGraphExecDestroy RF_GPU_API(GraphExecDestroy)
#define gpuFuncSetAttribute RF_GPU_API(FuncSetAttribute)
#define gpuDeviceReset RF_GPU_API(DeviceReset)

// Host-pinned memory: the two runtimes spell these differently.
inline gpuError_t gpuMallocHost(void** ptr, size_t bytes) {
#if defined(RF_GPU_HIP)
  return hipHostMalloc(ptr, bytes, hipHostMallocDefault);
#else
  return cudaMallocHost(ptr, bytes);
#endif
}

inline gpuError_t gpuFreeHost(void* ptr) {
#if defined(RF_GPU_HIP)
  return hipHostFree(ptr);
#else
  return cudaFreeHost(ptr);
#endif
}

// Instantiates a captured graph (CUDA 12+ takes flags, HIP 5.x an error node and a log buffer).
inline gpuError_t gpuGraphInstantiate(gpuGraphExec_t* exec, gpuGraph_t graph) {
#if defined(RF_GPU_HIP)
  return hipGraphInstantiate(exec, graph, nullptr, nullptr, 0);
#else
  return cudaGraphInstantiate(exec, graph, 0);
#endif
}

// Updates an instantiated graph in place from a newly captured one of the same topology (only kernel parameters
// changed); false when it cannot (the caller re-instantiates). ROCm 5.2 has no hipGraphExecUpdate: always false.
inline bool gpuGraphExecUpdateOk(gpuGraphExec_t exec, gpuGraph_t graph) {
#if defined(RF_GPU_HIP)
  (void)exec;
  (void)graph;
  return false;
#else
  cudaGraphExecUpdateResultInfo info{};
  if (cudaGraphExecUpdate(exec, graph, &info) == cudaSuccess) return true;
  (void)cudaGetLastError();
  return false;
#endif
}

// True when decode steps may be captured as graphs: CUDA (update in place); HIP re-instantiates every step, slower
// than plain launches, so it stays off there.
#if defined(RF_GPU_HIP)
inline constexpr bool kGraphUpdateSupported = false;
#else
inline constexpr bool kGraphUpdateSupported = true;
#endif

namespace rf::gpu {

inline constexpr const char* kBackendName =
#if defined(RF_GPU_HIP)
    "HIP";
#else
    "CUDA";
#endif

// "cudaErrorNoDevice: no CUDA-capable device is detected"
inline std::string error_text(gpuError_t err) {
  return std::string(gpuGetErrorName(err)) + ": " + gpuGetErrorString(err);
}

// An error Status for a failed runtime call: "gpu: <what> failed: <name>: <message>".
inline Status error_status(gpuError_t err, const char* what) {
  return Status::error(std::string("gpu: ") + what + " failed: " + error_text(err));
}

// True for the "sticky" errors: a kernel fault (illegal or misaligned address, illegal instruction, hardware stack
// error, device assert, launch failure or timeout) or an uncorrectable ECC error leaves the context unusable, and
// every later runtime call in the process fails with the same error until the device is reset (gpuDeviceReset,
// which frees everything the context held). Other errors (out of memory, a bad launch configuration) leave the
// context working. HIP 5.2 has fewer distinct codes; its launch failure covers the kernel faults it reports (and
// ROCm's default is to abort the process on a GPU memory fault before the runtime returns anything).
inline bool gpu_error_loses_context(gpuError_t err) {
  switch (err) {
    case gpuErrorIllegalAddress:
    case gpuErrorLaunchFailure:
    case gpuErrorLaunchTimeout:
    case gpuErrorAssert:
    case gpuErrorECCUncorrectable:
    case gpuErrorContextIsDestroyed:
#if defined(RF_GPU_CUDA)
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
#endif
      return true;
    default:
      return false;
  }
}

// The device context's generation: 1 for the process's first context, advanced by every device reset
// (GpuBackend::reset_device). State that lives in the context but is cached on the host (a kernel's shared-memory
// opt-in, a scratch buffer kept in a static) is redone when the generation it was made in has passed.
inline std::atomic<uint64_t>& context_generation() {
  static std::atomic<uint64_t> generation{1};
  return generation;
}

// Runs f() (returning bool) once per device context and returns its result: for a kernel's one-time attribute
// setting (gpuFuncSetAttribute), which a device reset forgets. Cheap after the first call (one atomic load).
class OncePerContext {
 public:
  template <typename F>
  bool operator()(F&& f) {
    const uint64_t now = context_generation().load(std::memory_order_acquire);
    if (done_.load(std::memory_order_acquire) == now) return ok_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    if (done_.load(std::memory_order_relaxed) != now) {
      ok_.store(f(), std::memory_order_relaxed);
      done_.store(now, std::memory_order_release);
    }
    return ok_.load(std::memory_order_relaxed);
  }

 private:
  std::mutex mu_;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> ok_{false};
};

[[noreturn]] void fatal_gpu_error(const char* file, int line, const char* expr, gpuError_t err);

// Decode-step recording (GpuBackend's graphs). While a recorder is installed on the calling thread,
// launch_kernel() does not launch: it appends a closure that performs the launch, and the launch's bytes (kernel,
// shape, stream, argument values) to the step's signature. A step whose signature equals an earlier one's replays
// that step's graph without capturing it again. Code that must reach the stream in order mid-step (an allocation
// that frees a buffer recorded launches use, a copy) calls flush_recorded_launches() first: the launches recorded so
// far then run at once, and the step is not replayable.
struct LaunchRecorder {
  std::vector<unsigned char> signature;
  std::vector<std::function<void()>> launches;
  bool active = false;  // recording (a thread's pointer to a finished recorder records nothing)
  bool broken = false;  // launches ran outside the step's graph
  template <typename T>
  void sign(const T& v) {
    const auto* p = reinterpret_cast<const unsigned char*>(&v);
    signature.insert(signature.end(), p, p + sizeof(T));
  }
  void clear() {
    signature.clear();
    launches.clear();
    broken = false;
  }
};
inline LaunchRecorder*& launch_recorder() {
  thread_local LaunchRecorder* recorder = nullptr;
  return recorder;
}
inline void flush_recorded_launches() {
  LaunchRecorder* r = launch_recorder();
  if (r == nullptr || !r->active || r->launches.empty()) return;
  r->active = false;  // the closures launch for real
  for (const auto& f : r->launches) f();
  r->launches.clear();
  r->broken = true;
  r->active = true;
}

// Kernel tracing, for measurements only: built with -DROCMFORGE_GPU_TRACE=ON (CUDA), and on when the backend is
// created with ROCMFORGE_GPU_TRACE_FILE set. Thread 0 of block (0, 0, 0) of every kernel stamps the global timer
// when it lets its dependents launch (kind 0) and when its grid_dependency_wait returns (kind 1); the host logs
// each launched kernel in order. The backend writes both to the file when it is destroyed (bench/gpu-trace.sh).
#if defined(RF_GPU_TRACE)
// Kinds 0 and 1 are every kernel's; 2 .. kTraceKinds - 1 are for trace_stamp(k) / trace_last_warp(k) calls placed
// inside kernels under study (each kind its own sequence of stamps, written as "@k i stamp" lines). In the tree: the
// last warp of matvec_split_kernel 2, of matvec_fused_kernel 3, of attention_lean_kernel 4, of matvec_kquant_kernel
// 5, and block 0 of matvec_fused_kernel done with its op 6.
inline constexpr unsigned kTraceKinds = 8;
struct TraceBuf {
  unsigned long long* stamps = nullptr;  // [kTraceKinds][cap]
  unsigned* counts = nullptr;            // [kTraceKinds]
  unsigned cap = 0;
  unsigned unused = 0;
};
using TraceSetter = void (*)(const TraceBuf&);
inline std::vector<TraceSetter>& trace_setters() {  // one per translation unit with kernels
  static std::vector<TraceSetter> v;
  return v;
}
inline bool trace_register(TraceSetter s) {
  trace_setters().push_back(s);
  return true;
}
inline std::vector<const void*>*& trace_launches() {  // the kernels launched while tracing, in order
  static std::vector<const void*>* v = nullptr;
  return v;
}
#endif

// Programmatic dependent launch (CUDA, sm_90+): kernels launched through launch_kernel() may start while the
// kernel before them on the stream is still running, so their launch and prologue (weight prefetch) overlap its
// tail. Set once per process by the backend from the device (compute capability 9+) and ROCMFORGE_GPU_PDL (0: off).
inline bool& pdl_enabled() {
  static bool on = false;
  return on;
}

}  // namespace rf::gpu

// Aborts on a failed runtime call: for calls that can only fail through a programming error.
#define GPU_CHECK(call)                                                                                \
  do {                                                                                                 \
    const gpuError_t rf_gpu_err_ = (call);                                                             \
    if (rf_gpu_err_ != gpuSuccess) ::rf::gpu::fatal_gpu_error(__FILE__, __LINE__, #call, rf_gpu_err_); \
  } while (0)

// Returns an error Status from the enclosing function on a failed runtime call.
#define GPU_RETURN_IF_ERROR(call)                                                      \
  do {                                                                                 \
    const gpuError_t rf_gpu_err_ = (call);                                             \
    if (rf_gpu_err_ != gpuSuccess) return ::rf::gpu::error_status(rf_gpu_err_, #call); \
  } while (0)

// ---------------------------------------------------------------------------------------------------------------
// Device side: warp size, shuffles, reductions
// ---------------------------------------------------------------------------------------------------------------
#if defined(RF_GPU_DEVICE_COMPILER)

// "#pragma unroll 4" where nvcc can apply it to a loop of unknown trip count; HIP's clang refuses some such loops
// (an error with -Werror), so there it is left out.
#if defined(RF_GPU_HIP)
#define RF_UNROLL4_CUDA
#else
#define RF_UNROLL4_CUDA _Pragma("unroll 4")
#endif
#define RF_DEVICE __device__ __forceinline__
#define RF_HOST_DEVICE __host__ __device__ __forceinline__

namespace rf::gpu {

// Threads per warp (wavefront) of the target being compiled. On HIP the value is per offload target: one .cu
// file compiled for gfx90a and gfx1030 gets 64 in one device pass and 32 in the other. The HIP host pass sees
// no target, so there it is only a placeholder that lets kernel bodies parse: host code must never size a launch
// or instantiate a template from kWarpSize; it asks the device (DeviceInfo::warp_size) or launches block shapes
// that are multiples of 64 (valid for both wavefront sizes).
#if defined(RF_GPU_HIP)
#if defined(__HIP_DEVICE_COMPILE__)
inline constexpr int kWarpSize = __AMDGCN_WAVEFRONT_SIZE;
#else
inline constexpr int kWarpSize = 64;  // host-pass placeholder (see above)
#endif
#else
inline constexpr int kWarpSize = 32;  // every NVIDIA architecture
#endif
static_assert(kWarpSize == 32 || kWarpSize == 64, "unexpected warp size");

// The largest warp count of a 1024-thread block: sizes shared scratch for block reductions.
inline constexpr int kMaxWarpsPerBlock = 1024 / kWarpSize;

#if defined(RF_GPU_HIP)
using LaneMask = uint64_t;
#else
using LaneMask = unsigned;            // CUDA's *_sync primitives take a 32-bit member mask
#endif
// Every lane of the warp takes part (the only mask the shuffles below use).
inline constexpr LaneMask kFullLaneMask = ~LaneMask{0};

// Value of `v` from lane (lane ^ lane_mask) within groups of `width` lanes.
template <typename T>
RF_DEVICE T shfl_xor(T v, int lane_mask, int width = kWarpSize) {
#if defined(RF_GPU_HIP)
  return __shfl_xor(v, lane_mask, width);
#else
  return __shfl_xor_sync(kFullLaneMask, v, lane_mask, width);
#endif
}

// Value of `v` from lane (lane + delta) within groups of `width` lanes (own value past the group's end).
template <typename T>
RF_DEVICE T shfl_down(T v, unsigned delta, int width = kWarpSize) {
#if defined(RF_GPU_HIP)
  return __shfl_down(v, delta, width);
#else
  return __shfl_down_sync(kFullLaneMask, v, delta, width);
#endif
}

// Broadcast of `v` from lane `src_lane` of the warp.
template <typename T>
RF_DEVICE T shfl(T v, int src_lane, int width = kWarpSize) {
#if defined(RF_GPU_HIP)
  return __shfl(v, src_lane, width);
#else
  return __shfl_sync(kFullLaneMask, v, src_lane, width);
#endif
}

RF_DEVICE int lane_id() { return static_cast<int>(threadIdx.x) % kWarpSize; }
RF_DEVICE int warp_id() { return static_cast<int>(threadIdx.x) / kWarpSize; }

// Butterfly reductions: every lane of the warp ends with the result. All lanes must be active.
template <typename T>
RF_DEVICE T warp_reduce_sum(T v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) v += shfl_xor(v, offset);
  return v;
}

template <typename T>
RF_DEVICE T warp_reduce_max(T v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset >>= 1) {
    const T other = shfl_xor(v, offset);
    v = other > v ? other : v;
  }
  return v;
}

// Sum over a 1-D block whose size is a multiple of kWarpSize (at most 1024 threads); every thread gets the
// result. `scratch` is shared memory of kMaxWarpsPerBlock elements; the call contains __syncthreads(), so all
// threads of the block must reach it.
template <typename T>
RF_DEVICE T block_reduce_sum(T v, T* scratch) {
  v = warp_reduce_sum(v);
  const int n_warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (lane_id() == 0) scratch[warp_id()] = v;
  __syncthreads();
  T total = lane_id() < n_warps ? scratch[lane_id()] : T{};
  total = warp_reduce_sum(total);
  __syncthreads();  // scratch may be reused by the caller right after
  return total;
}

// Maximum over a 1-D block whose size is a multiple of kWarpSize; every thread gets the result. `scratch`: shared
// memory of kMaxWarpsPerBlock elements; contains __syncthreads() (all threads of the block must reach it).
template <typename T>
RF_DEVICE T block_reduce_max(T v, T* scratch) {
  v = warp_reduce_max(v);
  const int n_warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (lane_id() == 0) scratch[warp_id()] = v;
  __syncthreads();
  T total = scratch[0];
  for (int w = 1; w < n_warps; ++w) total = scratch[w] > total ? scratch[w] : total;
  __syncthreads();  // scratch may be reused by the caller right after
  return total;
}

// c + the sum of the four products of the signed bytes of a and b (CUDA __dp4a; the AMD sdot4 instruction on the
// CDNA / Vega 20 targets that have it; byte arithmetic elsewhere).
RF_DEVICE int dot4_i8(int a, int b, int c) {
#if defined(RF_GPU_HIP)
#if defined(__gfx906__) || defined(__gfx908__) || defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || \
    defined(__gfx942__)
  return __builtin_amdgcn_sdot4(a, b, c, false);
#else
#pragma unroll
  for (int k = 0; k < 4; ++k) c += static_cast<int8_t>(a >> (8 * k)) * static_cast<int8_t>(b >> (8 * k));
  return c;
#endif
#else
  return __dp4a(a, b, c);
#endif
}

// Memory ordering and a rendezvous among the lanes of one warp (the lanes that reach it; no block barrier, so
// warps of a block may leave early).
RF_DEVICE void warp_sync() {
#if defined(RF_GPU_HIP)
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "wavefront");
  __builtin_amdgcn_wave_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "wavefront");
#else
  __syncwarp();
#endif
}

// Global -> shared copies of 16 bytes (both addresses 16-byte aligned) that run in the background: cp.async on
// NVIDIA sm_80+ (cached in L2 only), a plain load and store elsewhere. async_copy_commit() closes a group of
// copies; async_copy_wait<N>() returns once every group but the N most recent is in shared memory (for this
// thread: other lanes see the data after a warp_sync() / __syncthreads() that follows it).
// async_copy16_partial copies the first n (0..16) bytes and zero-fills the rest, reading nothing past src + n.
RF_DEVICE void async_copy16(void* smem, const void* gmem) {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
#else
  *static_cast<uint4*>(smem) = *static_cast<const uint4*>(gmem);
#endif
}
RF_DEVICE void async_copy16_partial(void* smem, const void* gmem, int n) {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
#else
  auto* d = static_cast<uint8_t*>(smem);
  const auto* g = static_cast<const uint8_t*>(gmem);
  for (int i = 0; i < 16; ++i) d[i] = i < n ? g[i] : uint8_t{0};
#endif
}
// The same for 4 bytes (both addresses 4-byte aligned; cached in L1 and L2).
RF_DEVICE void async_copy4(void* smem, const void* gmem) {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem) : "memory");
#else
  *static_cast<uint32_t*>(smem) = *static_cast<const uint32_t*>(gmem);
#endif
}
RF_DEVICE void async_copy_commit() {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
RF_DEVICE void async_copy_wait() {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

#if defined(RF_GPU_TRACE) && defined(RF_GPU_CUDA)
namespace {
__device__ TraceBuf g_trace_buf;  // this translation unit's copy
__device__ unsigned g_trace_warps[kTraceKinds];  // trace_last_warp's counters
void trace_set_here(const TraceBuf& b) { (void)cudaMemcpyToSymbol(g_trace_buf, &b, sizeof b); }
[[maybe_unused]] const bool g_trace_registered = trace_register(&trace_set_here);
}  // namespace
// Appends the global timer to kind's sequence of stamps (the calling thread's; the callers pick one thread).
RF_DEVICE void trace_record(unsigned kind) {
#if defined(__CUDA_ARCH__)
  unsigned long long now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  const unsigned i = atomicAdd(g_trace_buf.counts + kind, 1u);
  if (i < g_trace_buf.cap) g_trace_buf.stamps[kind * g_trace_buf.cap + i] = now;
#endif
}
RF_DEVICE void trace_stamp(unsigned kind) {
#if defined(__CUDA_ARCH__)
  if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && g_trace_buf.stamps != nullptr) {
    trace_record(kind);
  }
#endif
}
// Stamps kind when the last warp of the grid calls it (every warp must, once per launch): when a launch's work ends.
RF_DEVICE void trace_last_warp(unsigned kind) {
#if defined(__CUDA_ARCH__)
  if (g_trace_buf.stamps == nullptr || threadIdx.x % kWarpSize != 0) return;
  const unsigned warps = gridDim.x * gridDim.y * gridDim.z * (blockDim.x / kWarpSize);
  if (atomicAdd(g_trace_warps + kind, 1u) == warps - 1) {
    g_trace_warps[kind] = 0;  // for the kernel's next launch
    trace_record(kind);
  }
#endif
}
#else
RF_DEVICE void trace_stamp(unsigned) {}
RF_DEVICE void trace_last_warp(unsigned) {}
#endif

// Programmatic dependent launch, device side (no-ops where the target lacks it). Every kernel launched through
// launch_kernel() calls grid_dependency_wait() before it reads anything an earlier kernel wrote or writes anything
// an earlier kernel reads; work before it may only touch data no kernel writes (weights). grid_dependents_launch()
// lets the next kernel's launch begin (it still waits in its own grid_dependency_wait for this one to finish).
RF_DEVICE void grid_dependency_wait() {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  trace_stamp(1);
}
RF_DEVICE void grid_dependents_launch() {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" :::);
#endif
  trace_stamp(0);
}
// The start of a kernel with nothing to do before it waits: lets the next kernel launch, then waits.
RF_DEVICE void pdl_prologue() {
  grid_dependents_launch();
  grid_dependency_wait();
}
// Hint: bring the 128-byte line holding p into L2 (weights a kernel will read after grid_dependency_wait).
RF_DEVICE void prefetch_l2(const void* p) {
#if defined(RF_GPU_CUDA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
#else
  (void)p;
#endif
}
// Hint: bring every 128-byte line of [p, p + bytes) into L2, from one thread.
RF_DEVICE void prefetch_span_l2(const void* p, int64_t bytes) {
  const auto first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{127};
  const auto end = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes);
  for (uintptr_t line = first; line < end; line += 128) prefetch_l2(reinterpret_cast<const void*>(line));
}

// IEEE half (as its 16 raw bits) to float, exact for every finite value, subnormals and infinities.
RF_DEVICE float half_bits_to_float(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }

// bfloat16 (raw bits) to float: the upper half of the float's bits.
RF_DEVICE float bf16_bits_to_float(uint16_t bits) { return __uint_as_float(static_cast<uint32_t>(bits) << 16); }

// kernel<<<grid, block, shared, stream>>>(args...), as a programmatic dependent launch when pdl_enabled() (the
// kernel must then follow grid_dependency_wait's rule). A failed launch shows in gpuGetLastError(), as for <<<>>>.
template <typename... Params, typename... Args>
inline void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, gpuStream_t stream,
                                Args&&... args) {
  if (LaunchRecorder* rec = launch_recorder(); rec != nullptr && rec->active) {  // recorded: see LaunchRecorder
    std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
    rec->sign(kernel);
    rec->sign(grid);
    rec->sign(block);
    rec->sign(shared);
    rec->sign(stream);
    std::apply([rec](const auto&... v) { (rec->sign(v), ...); }, values);
    rec->launches.push_back([=] {
      std::apply([&](const auto&... v) { launch_kernel(kernel, grid, block, shared, stream, v...); }, values);
    });
    return;
  }
#if defined(RF_GPU_TRACE)
  if (trace_launches() != nullptr) trace_launches()->push_back(reinterpret_cast<const void*>(kernel));
#endif
#if defined(RF_GPU_CUDA)
  if (pdl_enabled()) {
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared;
    config.stream = stream;
    cudaLaunchAttribute attribute[1];
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = 1;
    (void)cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);  // its error stays the last error
    return;
  }
#endif
  kernel<<<grid, block, shared, stream>>>(std::forward<Args>(args)...);
}

}  // namespace rf::gpu

#endif  // RF_GPU_DEVICE_COMPILER
