// GpuBackend: device memory, weight arenas, batch upload, errors and device reset, decode graphs. The op dispatch
// to the kernel launchers is in gpu_ops.cpp.
#include "backend/gpu/gpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "backend/gpu/attention.h"
#include "backend/gpu/elementwise.h"
#include "backend/gpu/blas.h"
#include "backend/gpu/dequant.h"
#include "backend/gpu/fault_inject.h"
#include "backend/gpu/gpu_batch.h"
#include "backend/gpu/matmul.h"
#include "core/check.h"

namespace rf::gpu {
namespace {

using backend::Tensor;
using quant::Type;

constexpr size_t kArenaAlign = 256;
constexpr size_t kFirstArenaBytes = size_t{64} << 20;  // arenas double from 64 MiB up to 1 GiB
constexpr size_t kMaxArenaBytes = size_t{1} << 30;
constexpr size_t kMaxPlannedArenaBytes = size_t{16} << 30;  // with plan_weight_bytes(): arenas of up to 16 GiB
// How long reset_device() keeps retrying while the driver refuses the new context.
constexpr int kResetWaitSeconds = 10;
// What take_error() adds to the errors of a lost device context.
constexpr const char* kLostNote = " (GPU device lost: the context is unusable until the device is reset)";

class GpuBuffer final : public backend::Buffer {
 public:
  // Owns `data` (from gpuMalloc) of `bytes` in the context whose flag `live` is: once that context is lost or reset,
  // the memory is gone with it and the buffer frees nothing (its address may belong to a new allocation by then).
  GpuBuffer(void* data, size_t bytes, std::shared_ptr<const std::atomic<bool>> live)
      : data_(data), size_(bytes), live_(std::move(live)) {}
  ~GpuBuffer() override {
    if (live_->load()) (void)gpuFree(data_);
  }
  void* data() const override { return data_; }
  size_t size() const override { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  std::shared_ptr<const std::atomic<bool>> live_;
};

}  // namespace

GpuDeviceBatch::GpuDeviceBatch(backend::Batch batch, GpuBackend& be) : DeviceBatch(std::move(batch)), be_(be) {
  const backend::Batch& b = host();
  const size_t n = b.tokens.size();
  for (const auto& t : b.block_tables)
    table_stride_ = std::max<int64_t>(table_stride_, static_cast<int64_t>(t.size()));
  table_stride_ = std::max<int64_t>(table_stride_, 1);
  std::vector<int32_t> ints;
  ints.reserve(5 * n + b.output_rows.size() + b.block_tables.size() * static_cast<size_t>(table_stride_));
  ints.insert(ints.end(), b.tokens.begin(), b.tokens.end());
  ints.insert(ints.end(), b.positions.begin(), b.positions.end());
  ints.insert(ints.end(), b.seq.begin(), b.seq.end());
  RF_CHECK(b.positions.size() == n && b.seq.size() == n && b.kv_block_size > 0);
  std::vector<bool> seen(b.block_tables.size(), false);
  for (size_t t = 0; t < n; ++t) {
    const auto& table = b.block_tables.at(static_cast<size_t>(b.seq[t]));
    if (seen[static_cast<size_t>(b.seq[t])]) one_token_per_seq_ = false;
    seen[static_cast<size_t>(b.seq[t])] = true;
    const auto block = static_cast<size_t>(b.positions[t] / b.kv_block_size);
    RF_CHECK_MSG(block < table.size(), "gpu batch: token " + std::to_string(t) + " position " +
                                           std::to_string(b.positions[t]) + " past its block table");
    ints.push_back(table[block] * b.kv_block_size + b.positions[t] % b.kv_block_size);
    max_ctx_ = std::max(max_ctx_, b.positions[t] + 1);
  }
  ints.insert(ints.end(), b.output_rows.begin(), b.output_rows.end());
  // Row i of a run list is generated or not (g); consecutive rows of one kind make one run.
  const auto extend = [](std::vector<KindRun>* runs, int64_t i, bool g) {
    if (runs->empty() || runs->back().generated != g) runs->push_back(KindRun{i, i, g});
    runs->back().end = i + 1;
  };
  RF_CHECK(b.generated.empty() || b.generated.size() == n);
  for (size_t i = 0; i < n; ++i) extend(&token_runs_, static_cast<int64_t>(i), b.is_generated(static_cast<int64_t>(i)));
  for (size_t i = 0; i < b.output_rows.size(); ++i) {
    extend(&output_runs_, static_cast<int64_t>(i), b.is_generated(b.output_rows[i]));
  }
  for (const auto& t : b.block_tables) {
    ints.insert(ints.end(), t.begin(), t.end());
    ints.insert(ints.end(), static_cast<size_t>(table_stride_) - t.size(), 0);
  }
  mem_ = be_.acquire_batch_mem(ints.size());
  if (!ints.empty() && mem_.dev != nullptr) {  // no memory: the backend has recorded the error, ops are skipped
    std::memcpy(mem_.host, ints.data(), ints.size() * sizeof(int32_t));
    be_.check_call(
        gpuMemcpyAsync(mem_.dev, mem_.host, ints.size() * sizeof(int32_t), gpuMemcpyHostToDevice, be_.stream()),
        "batch index upload");
  }
  const auto nn = static_cast<int64_t>(n);
  int32_t* base = mem_.dev;
  if (base == nullptr) return;  // every index pointer stays null; the ops that read them are skipped
  tokens_ = base;
  positions_ = base + nn;
  seq_ = base + 2 * nn;
  slots_ = base + 3 * nn;
  outputs_ = base + 4 * nn;
  tables_ = outputs_ + static_cast<int64_t>(b.output_rows.size());
}

#if defined(RF_GPU_TRACE) && defined(RF_GPU_CUDA)
namespace {
// Kernel tracing (compat.h): buffers for every translation unit's stamps, written out when the backend goes.
struct TraceState {
  TraceBuf buf;
  std::string file;
  std::vector<const void*> launches;
};
TraceState* trace_state() {
  static TraceState* st = [] {
    const char* f = std::getenv("ROCMFORGE_GPU_TRACE_FILE");
    if (f == nullptr || f[0] == '\0') return static_cast<TraceState*>(nullptr);
    auto* t = new TraceState;
    t->file = f;
    t->buf.cap = 1u << 20;
    if (cudaMalloc(&t->buf.stamps, kTraceKinds * sizeof(unsigned long long) * t->buf.cap) != cudaSuccess ||
        cudaMalloc(&t->buf.counts, kTraceKinds * sizeof(unsigned)) != cudaSuccess ||
        cudaMemset(t->buf.counts, 0, kTraceKinds * sizeof(unsigned)) != cudaSuccess) {
      return static_cast<TraceState*>(nullptr);
    }
    for (TraceSetter set : trace_setters()) set(t->buf);
    trace_launches() = &t->launches;
    return t;
  }();
  return st;
}
void trace_dump() {
  TraceState* t = trace_state();
  if (t == nullptr || cudaDeviceSynchronize() != cudaSuccess) return;
  unsigned counts[kTraceKinds] = {};
  (void)cudaMemcpy(counts, t->buf.counts, sizeof counts, cudaMemcpyDeviceToHost);
  std::vector<unsigned long long> stamps(kTraceKinds * static_cast<size_t>(t->buf.cap));
  (void)cudaMemcpy(stamps.data(), t->buf.stamps, stamps.size() * sizeof(unsigned long long), cudaMemcpyDeviceToHost);
  FILE* f = std::fopen(t->file.c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f, "# launches %zu starts %u waits %u\n", t->launches.size(), counts[0], counts[1]);
  const size_t n = std::max<size_t>(t->launches.size(), std::max(counts[0], counts[1]));
  for (size_t i = 0; i < n && i < t->buf.cap; ++i) {
    const char* name = "?";
    if (i < t->launches.size()) (void)cudaFuncGetName(&name, t->launches[i]);
    const unsigned long long start = i < counts[0] ? stamps[i] : 0ull;
    const unsigned long long wait = i < counts[1] ? stamps[t->buf.cap + i] : 0ull;
    std::fprintf(f, "%zu %llu %llu %s\n", i, start, wait, name);
  }
  for (unsigned k = 2; k < kTraceKinds; ++k) {  // points inside a kernel under study, one sequence per kind
    for (unsigned i = 0; i < counts[k] && i < t->buf.cap; ++i) {
      std::fprintf(f, "@%u %u %llu\n", k, i, stamps[static_cast<size_t>(k) * t->buf.cap + i]);
    }
  }
  std::fclose(f);
  trace_launches() = nullptr;
}
}  // namespace
#endif

Expected<std::unique_ptr<GpuBackend>> GpuBackend::create(int device_index) {
  Expected<DeviceInfo> info = device_info(device_index);  // makes the device current
  if (!info.ok()) return info.status();
  gpuStream_t stream = nullptr;
  GPU_RETURN_IF_ERROR(gpuStreamCreateWithFlags(&stream, gpuStreamNonBlocking));
  std::unique_ptr<GpuBackend> be(new GpuBackend(std::move(*info), stream));
#if defined(RF_GPU_TRACE) && defined(RF_GPU_CUDA)
  (void)trace_state();
#endif
  // Decode graphs: ROCMFORGE_GPU_GRAPHS=0 off, =1 on; by default the first decode steps time both ways and keep
  // the faster (graphs win where launching is what bounds a step: small models; recording a step leaves the GPU
  // idle, which large models notice).
  const char* g = std::getenv("ROCMFORGE_GPU_GRAPHS");
  be->set_graphs_enabled(g == nullptr || g[0] != '0');
  be->auto_graphs_.active = be->graphs_ && g == nullptr;
  if (const char* f = std::getenv("ROCMFORGE_GPU_FUSE"); f != nullptr && f[0] == '0') be->fuse_ = false;
  if (const char* t = std::getenv("ROCMFORGE_GPU_TIMING"); t != nullptr && t[0] == '1') be->timing_.on = true;
  // Test hook (fault_inject.h), read once here: ROCMFORGE_GPU_INJECT_FAULT=N faults the N-th forward pass.
  if (const char* f = std::getenv("ROCMFORGE_GPU_INJECT_FAULT"); f != nullptr) be->inject_fault_in(std::atoll(f));
  // Programmatic dependent launch (compat.h) on NVIDIA compute capability 9.0 and later; ROCMFORGE_GPU_PDL=0: off.
  if (be->info_.arch.rfind("sm_", 0) == 0 && std::atoi(be->info_.arch.c_str() + 3) >= 90) {
    const char* v = std::getenv("ROCMFORGE_GPU_PDL");
    pdl_enabled() = v == nullptr || v[0] != '0';
  }
  if (Status s = be->first_kernel(); !s.ok()) return s;
  return be;
}

Status GpuBackend::first_kernel() {
  float* probe = act_scratch(64);
  if (probe == nullptr) {
    return Status::error("gpu: cannot allocate a 256-byte scratch buffer: " + take_error().message());
  }
  Status s = round_activations(Type::F32, probe, 8, 8, 1, probe + 32, stream_);
  if (s.ok()) {
    const gpuError_t err = gpuStreamSynchronize(stream_);
    if (err != gpuSuccess) s = error_status(err, "first kernel");
  }
  if (!s.ok()) return Status::error(s.message() + " (" + describe(info_) + ")");
  return ok_status();
}

void GpuBackend::lose_context(const Status& why) {
  if (device_lost()) return;
  lost_error_ = why.ok() ? Status::error("gpu: device lost") : why;
  context_live_->store(false);  // nothing of this context is freed from now on: its memory dies with it
  last_batch_tokens_ = -1;
}

Status GpuBackend::reset_device() {
  // Forget, without freeing, everything of the old context: the reset frees it all, and a free after the reset
  // could hit an allocation of the new context at the same address.
  context_live_->store(false);
  recorder_.active = false;
  recorder_.clear();
  if (launch_recorder() == &recorder_) launch_recorder() = nullptr;
  capturing_ = false;
  pending_mv_.count = 0;
  pending_mv_.closed = false;
  pending_add_.active = false;
  pending_act_.op = ActOp::kNone;
  pending_ropes_ = 0;
  pending_store_.active = false;
  pending_attn_.active = false;
  quantized_ = QuantizedRows{};
  planned_weight_bytes_ = arena_bytes_used();  // the reloaded weights fill arenas of the old size, as planned
  arenas_.clear();
  act_ = nullptr;
  act_floats_ = 0;
  batch_pool_.clear();
  graph_cache_.clear();
  // The BLAS handle's destructor would free memory of the old context and call into the library with a handle of
  // it: the handle (a little host memory) is left behind instead, and a new one is made for the new stream.
  (void)blas_.release();
  blas_tried_ = false;
  sample_dev_.reset();  // its flag is down: frees nothing
  sample_scratch_.reset();
  (void)sample_host_.release();  // pinned by the old context, freed by the reset
  sample_host_bytes_ = 0;
  stream_ = nullptr;
  last_batch_tokens_ = -1;
  error_ = ok_status();

  const auto failed_reset = [&](const Status& why) {
    lost_error_ = Status::error("gpu: the device was lost and could not be reset: " + why.message());
    return lost_error_;
  };
  // The driver may still be tearing the faulted context down when the reset returns, and refuses a new one until
  // it is gone (seen on an H100: cudaErrorDevicesUnavailable at the first call after the reset): the reset and
  // the new context's first call (the stream) are retried, backing off, for up to kResetWaitSeconds. (With the
  // H100's driver 580 the refusal lasted as long as the process: an illegal-address fault cannot be recovered
  // in-process there, and the caller reports the device lost for good.)
  const auto t0 = std::chrono::steady_clock::now();
  auto pause = std::chrono::milliseconds(50);
  int attempts = 0;
  gpuError_t err = gpuSuccess;
  const char* what = "gpuDeviceReset";
  while (true) {
    ++attempts;
    (void)gpuSetDevice(info_.index);  // the reset acts on the calling thread's device; this may report the fault
    err = gpuDeviceReset();
    what = "gpuDeviceReset";
    context_generation().fetch_add(1);  // kernel attributes and static scratch of the old context are redone
    (void)gpuGetLastError();
    if (err == gpuSuccess) {
      err = gpuStreamCreateWithFlags(&stream_, gpuStreamNonBlocking);
      what = "stream creation after the reset";
    }
    if (err == gpuSuccess) break;
    stream_ = nullptr;
    (void)gpuGetLastError();
    if (std::chrono::steady_clock::now() - t0 + pause > std::chrono::seconds(kResetWaitSeconds)) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(1000));
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (err != gpuSuccess) {
    return failed_reset(Status::error(error_status(err, what).message() + " (" + std::to_string(attempts) +
                                      " attempts over " + std::to_string(static_cast<int>(waited)) + " s)"));
  }
  if (attempts > 1) {
    std::fprintf(stderr, "rocmforge: gpu: device reset took %d attempts over %.1f s\n", attempts, waited);
  }
  context_live_ = std::make_shared<std::atomic<bool>>(true);
  lost_error_ = ok_status();  // first_kernel's calls must run; a fault there loses the context again
  if (Status s = first_kernel(); !s.ok()) {
    error_ = ok_status();
    return failed_reset(s);
  }
  ++device_resets_;
  return ok_status();
}

GpuBackend::~GpuBackend() {
  finish_capture();
  if (timing_.on && timing_.steps > 0) {
    const double n = static_cast<double>(timing_.steps);
    std::fprintf(stderr, "gpu timing: %lld recorded steps (%lld replayed a graph), per step: record %.3f ms, "
                 "capture / replay + launch %.3f ms; download waits %.3f ms per step; graphs %s (decode step "
                 "%.3f ms with, %.3f ms without)\n",
                 static_cast<long long>(timing_.steps), static_cast<long long>(graph_replays_),
                 1e3 * timing_.record / n, 1e3 * timing_.update / n, 1e3 * timing_.wait / n, graphs_ ? "on" : "off",
                 1e3 * auto_graphs_.seconds_with, 1e3 * auto_graphs_.seconds_without);
  }
  if (device_lost()) {  // the context is gone (or a reset failed): nothing of it can be freed, the process ends it
    (void)blas_.release();
    (void)sample_host_.release();
    return;
  }
  (void)gpuStreamSynchronize(stream_);
#if defined(RF_GPU_TRACE) && defined(RF_GPU_CUDA)
  trace_dump();
#endif
  blas_.reset();
  for (const CachedGraph& g : graph_cache_) {
    if (g.exec != nullptr) (void)gpuGraphExecDestroy(g.exec);
  }
  for (const Arena& a : arenas_) (void)gpuFree(a.base);
  if (act_ != nullptr) (void)gpuFree(act_);
  for (const BatchMem& m : batch_pool_) {
    (void)gpuFree(m.dev);
    (void)gpuFreeHost(m.host);
    (void)gpuEventDestroy(m.done);
  }
  (void)gpuStreamDestroy(stream_);
}

std::string GpuBackend::name() const {
  return std::string("gpu (") + kBackendName + ", " + info_.name + ", " + info_.arch + ")";
}

size_t GpuBackend::arena_bytes_reserved() const {
  size_t s = 0;
  for (const Arena& a : arenas_) s += a.size;
  return s;
}

size_t GpuBackend::arena_bytes_used() const {
  size_t s = 0;
  for (const Arena& a : arenas_) s += a.used;
  return s;
}

Expected<void*> GpuBackend::arena_alloc(size_t bytes) {
  const size_t need = (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
  if (arenas_.empty() || arenas_.back().size - arenas_.back().used < need) {
    // With a plan, arenas hold what is still to come (up to kMaxPlannedArenaBytes each), so the last one ends
    // where the weights do; without one they double from 64 MiB up to 1 GiB.
    const size_t grow = planned_weight_bytes_ > 0 ? std::min(planned_weight_bytes_, kMaxPlannedArenaBytes)
                        : arenas_.empty()         ? kFirstArenaBytes
                                                  : std::min(arenas_.back().size * 2, kMaxArenaBytes);
    Arena a;
    a.size = std::max(grow, need);
    gpuError_t err = gpuMalloc(&a.base, a.size);
    if (err != gpuSuccess && a.size > need) {  // the growth does not fit: the tensor alone may
      (void)gpuGetLastError();
      a.size = need;
      err = gpuMalloc(&a.base, a.size);
    }
    if (err != gpuSuccess) {
      (void)gpuGetLastError();
      return Status::error("gpu backend: out of GPU memory allocating a weight arena of " + std::to_string(a.size) +
                           " bytes (" + std::to_string(arena_bytes_used()) +
                           " bytes of weights loaded): " + error_text(err));
    }
    arenas_.push_back(a);
  }
  Arena& a = arenas_.back();
  void* p = static_cast<uint8_t*>(a.base) + a.used;
  a.used += need;
  planned_weight_bytes_ -= std::min(planned_weight_bytes_, need);
  return p;
}

void GpuBackend::check(const Status& s) {
  if (s.ok()) return;
  // Clears a launch error that is not sticky, so later calls start clean; a sticky one stays and says the context
  // is lost (the launchers' Status carries only its text).
  if (gpu_error_loses_context(gpuGetLastError())) lose_context(s);
  if (error_.ok()) error_ = s;
  last_batch_tokens_ = -1;  // the next decode step runs uncaptured
}

bool GpuBackend::check_call(gpuError_t err, const char* what) {
  if (err == gpuSuccess) return true;
  if (gpu_error_loses_context(err)) lose_context(error_status(err, what));
  check(error_status(err, what));
  return false;
}

Status GpuBackend::take_error() {
  finish_capture();
  // Launch errors not seen yet (a kernel fault shows up at the next synchronisation).
  if (!device_lost()) check_call(gpuGetLastError(), "kernel launch");
  Status s = error_;
  error_ = ok_status();
  if (device_lost() && s.ok()) s = lost_error_;  // every pass on a lost device fails, with the reason
  if (device_lost() && s.message().find(kLostNote) == std::string::npos) s = Status::error(s.message() + kLostNote);
  return s;
}

Expected<size_t> GpuBackend::free_memory() const {
  size_t free_bytes = 0, total_bytes = 0;
  const gpuError_t err = gpuMemGetInfo(&free_bytes, &total_bytes);
  if (err != gpuSuccess) {
    (void)gpuGetLastError();
    return error_status(err, "gpuMemGetInfo");
  }
  return free_bytes;
}

void GpuBackend::finish_capture() {
  flush_pending_add();  // the deferred add belongs to the work before this point
  if (!capturing_) return;
  capturing_ = false;
  recorder_.active = false;  // whichever thread ends the step: launches run directly from here on
  if (launch_recorder() == &recorder_) launch_recorder() = nullptr;
  const auto t_end = std::chrono::steady_clock::now();
  if (failed() || recorder_.broken) {  // a failed step launches nothing more; a broken one launches directly
    if (!failed()) {
      for (const auto& f : recorder_.launches) f();
    }
    recorder_.clear();
    return;
  }
  ++graph_clock_;
  gpuGraphExec_t exec = nullptr;
  for (CachedGraph& g : graph_cache_) {
    if (g.signature == recorder_.signature) {
      g.last_used = graph_clock_;
      exec = g.exec;
      ++graph_replays_;
      break;
    }
  }
  if (exec == nullptr) exec = capture_recorded();
  if (exec != nullptr && check_call(gpuGraphLaunch(exec, stream_), "decode graph launch")) ++graph_launches_;
  recorder_.clear();
  if (timing_.on) {
    const auto now = std::chrono::steady_clock::now();
    timing_.record += std::chrono::duration<double>(t_end - timing_.capture_start).count();
    timing_.update += std::chrono::duration<double>(now - t_end).count();
    ++timing_.steps;
  }
}

void GpuBackend::calibrate_graphs() {
  AutoGraphs& c = auto_graphs_;
  if (!c.active) return;
  const auto now = std::chrono::steady_clock::now();
  // A step's time runs from its prepare_batch to the next one's; steps 1..kCalibrationSteps record with graphs,
  // the next as many without (the step after each switch, which captures or drains, is left out).
  if (c.step > 0 && c.step != 1 && c.step != kCalibrationSteps + 1) {
    (c.step <= kCalibrationSteps ? c.with : c.without).push_back(std::chrono::duration<double>(now - c.last).count());
  }
  c.last = now;
  ++c.step;
  if (c.step <= kCalibrationSteps) {
    graphs_ = true;
  } else if (c.step <= 2 * kCalibrationSteps) {
    graphs_ = false;
  } else {
    const auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v.empty() ? 0.0 : v[v.size() / 2];
    };
    // Graphs must win clearly: recording a step keeps the GPU idle (~0.15 ms for a 7B step on the H100), which
    // the calibration's few steps can miss.
    graphs_ = median(c.with) < 0.95 * median(c.without);
    c.active = false;
    c.seconds_with = median(c.with);
    c.seconds_without = median(c.without);
  }
}

gpuGraphExec_t GpuBackend::capture_recorded() {
  if (!check_call(gpuStreamBeginCapture(stream_, gpuStreamCaptureModeRelaxed), "decode graph capture")) return nullptr;
  for (const auto& f : recorder_.launches) f();
  gpuGraph_t graph = nullptr;
  // A launch that failed during the capture invalidates it: the error is recorded and nothing is launched.
  const bool captured = check_call(gpuStreamEndCapture(stream_, &graph), "end of decode graph capture");
  gpuGraphExec_t exec = nullptr;
  if (captured && !failed()) {
    CachedGraph* slot = nullptr;
    if (graph_cache_.size() < kGraphCache) {
      slot = &graph_cache_.emplace_back();
    } else {
      slot = &*std::min_element(graph_cache_.begin(), graph_cache_.end(),
                                [](const CachedGraph& a, const CachedGraph& b) { return a.last_used < b.last_used; });
    }
    // The evicted graph differs only in kernel parameters as a rule: update it in place, else instantiate anew.
    if (slot->exec == nullptr || !gpuGraphExecUpdateOk(slot->exec, graph)) {
      if (slot->exec != nullptr) (void)gpuGraphExecDestroy(slot->exec);
      slot->exec = nullptr;
      if (check_call(gpuGraphInstantiate(&slot->exec, graph), "decode graph instantiation")) {
        ++graph_instantiations_;
      } else {
        slot->exec = nullptr;
      }
    }
    slot->signature = recorder_.signature;
    slot->last_used = graph_clock_;
    exec = slot->exec;
    if (exec == nullptr) graph_cache_.erase(graph_cache_.begin() + (slot - graph_cache_.data()));
  }
  if (graph != nullptr) (void)gpuGraphDestroy(graph);
  return exec;
}

float* GpuBackend::act_scratch(size_t floats) {
  if (floats > act_floats_) {
    finish_capture();
    check_call(gpuStreamSynchronize(stream_), "stream synchronisation");
    quantized_.src = nullptr;  // the rows quantized in the old buffer are gone
    if (act_ != nullptr) (void)gpuFree(act_);
    const size_t want = std::max(floats, act_floats_ * 2);
    act_ = nullptr;
    act_floats_ = 0;
    if (!check_call(gpuMalloc(reinterpret_cast<void**>(&act_), want * sizeof(float)), "activation scratch")) {
      act_ = nullptr;
      return nullptr;
    }
    act_floats_ = want;
  }
  return act_;
}

Expected<double> GpuBackend::measure_copy_bandwidth(size_t bytes) {
  finish_capture();
  void* src = nullptr;
  void* dst = nullptr;
  if (gpuMalloc(&src, bytes) != gpuSuccess || gpuMalloc(&dst, bytes) != gpuSuccess) {
    (void)gpuGetLastError();
    if (src != nullptr) (void)gpuFree(src);
    return Status::error("gpu: cannot allocate 2 x " + std::to_string(bytes) + " bytes to measure copy bandwidth");
  }
  gpuEvent_t a{}, b{};
  std::vector<float> ms;
  gpuError_t err = gpuEventCreateWithFlags(&a, gpuEventDefault);
  if (err == gpuSuccess) err = gpuEventCreateWithFlags(&b, gpuEventDefault);
  if (err == gpuSuccess) err = gpuMemsetAsync(src, 0x5a, bytes, stream_);
  if (err == gpuSuccess) err = gpuMemcpyAsync(dst, src, bytes, gpuMemcpyDeviceToDevice, stream_);  // warm-up
  for (int i = 0; i < 9 && err == gpuSuccess; ++i) {
    float v = 0.0f;
    err = gpuEventRecord(a, stream_);
    if (err == gpuSuccess) err = gpuMemcpyAsync(dst, src, bytes, gpuMemcpyDeviceToDevice, stream_);
    if (err == gpuSuccess) err = gpuEventRecord(b, stream_);
    if (err == gpuSuccess) err = gpuEventSynchronize(b);
    if (err == gpuSuccess) err = gpuEventElapsedTime(&v, a, b);
    ms.push_back(v);
  }
  if (a != nullptr) (void)gpuEventDestroy(a);
  if (b != nullptr) (void)gpuEventDestroy(b);
  (void)gpuFree(src);
  (void)gpuFree(dst);
  if (err != gpuSuccess) {
    (void)gpuGetLastError();
    return error_status(err, "copy bandwidth measurement");
  }
  std::sort(ms.begin(), ms.end());
  return 2.0 * static_cast<double>(bytes) / (static_cast<double>(ms[ms.size() / 2]) * 1e-3);
}

GpuBackend::BatchMem GpuBackend::acquire_batch_mem(size_t ints) {
  if (device_lost()) return BatchMem{};  // no memory: the batch's ops are skipped
  ints = std::max<size_t>(ints, 1);
  for (size_t i = 0; i < batch_pool_.size(); ++i) {
    if (batch_pool_[i].capacity >= ints) {
      BatchMem m = batch_pool_[i];
      batch_pool_.erase(batch_pool_.begin() + static_cast<std::ptrdiff_t>(i));
      check_call(gpuEventSynchronize(m.done), "batch index event");  // the last batch that used it has been read
      return m;
    }
  }
  if (!batch_pool_.empty()) {  // none large enough: replace the smallest
    BatchMem& old = batch_pool_.front();
    check_call(gpuEventSynchronize(old.done), "batch index event");
    (void)gpuFree(old.dev);
    (void)gpuFreeHost(old.host);
    (void)gpuEventDestroy(old.done);
    batch_pool_.erase(batch_pool_.begin());
  }
  BatchMem m;
  m.capacity = std::max<size_t>(ints, 4096);
  const bool ok = check_call(gpuMalloc(reinterpret_cast<void**>(&m.dev), m.capacity * sizeof(int32_t)),
                             "batch index allocation") &&
                  check_call(gpuMallocHost(reinterpret_cast<void**>(&m.host), m.capacity * sizeof(int32_t)),
                             "pinned batch index allocation") &&
                  check_call(gpuEventCreateWithFlags(&m.done, gpuEventDisableTiming), "batch index event creation");
  if (!ok) {  // the error is recorded; the batch gets no index memory and its ops are skipped
    if (m.dev != nullptr) (void)gpuFree(m.dev);
    if (m.host != nullptr) (void)gpuFreeHost(m.host);
    return BatchMem{};
  }
  return m;
}

void GpuBackend::release_batch_mem(BatchMem mem) {
  finish_capture();
  if (mem.dev == nullptr || device_lost()) return;  // a lost context's memory goes with it
  check_call(gpuEventRecord(mem.done, stream_), "batch index event");
  batch_pool_.push_back(mem);
  std::sort(batch_pool_.begin(), batch_pool_.end(),
            [](const BatchMem& a, const BatchMem& b) { return a.capacity < b.capacity; });
}

std::unique_ptr<backend::Buffer> GpuBackend::alloc(size_t bytes) {
  finish_capture();
  before_op();
  if (device_lost()) {
    check(lost_error_);
    return nullptr;
  }
  const size_t n = bytes == 0 ? 1 : bytes;
  void* data = nullptr;
  if (!check_call(gpuMalloc(&data, n), "device buffer allocation")) return nullptr;
  auto buf = std::make_unique<GpuBuffer>(data, bytes, context_live_);
  if (!check_call(gpuMemsetAsync(data, 0, n, stream_), "device buffer clear") ||
      !check_call(gpuStreamSynchronize(stream_), "stream synchronisation")) {
    return nullptr;
  }
  return buf;
}

Expected<Tensor> GpuBackend::load_weight(const gguf::TensorInfo& info) {
  finish_capture();
  const std::string where = "gpu backend: tensor '" + info.name + "'";
  const auto rb = quant::row_bytes(info.type, info.ne[0]);
  if (!rb) {
    return Status::error(where + ": row of " + std::to_string(info.ne[0]) + " elements is not a whole number of " +
                         std::string(quant::type_name(info.type)) + " blocks");
  }
  if (info.data == nullptr) return Status::error(where + " has no data");
  if (info.ne[3] != 1) return Status::error(where + " has 4 dimensions");
  if (!weight_type_supported(info.type)) {
    return Status::error(where + ": type " + std::string(quant::type_name(info.type)) +
                         " has no GPU kernel (supported: " + supported_weight_types() + ")");
  }
  const int64_t n_rows = info.ne[1] * info.ne[2];
  const size_t pitch = weight_row_pitch(info.type, *rb);
  Expected<void*> mem = arena_alloc(pitch * static_cast<size_t>(n_rows));
  if (!mem.ok()) return Status::error(where + ": " + mem.error_message());
  const Status up = split_code_bytes(info.type) > 0 ? upload_split(info, *rb, pitch, *mem)
                                             : upload(*mem, info.data, *rb * static_cast<size_t>(n_rows));
  if (!up.ok()) return Status::error(where + ": " + up.message());
  Tensor t;
  t.data = *mem;
  t.type = info.type;
  t.ne0 = info.ne[0];
  t.ne1 = info.ne[1];
  t.ne2 = info.ne[2];
  t.nb1 = pitch;
  t.nb2 = pitch * static_cast<size_t>(info.ne[1]);
  return t;
}

Status GpuBackend::upload(void* dst, const void* src, size_t bytes) {
  // On the stream, then waited for: a synchronous copy from pageable memory may return before its DMA has landed,
  // and the non-blocking stream's kernels do not wait for the legacy stream.
  gpuError_t err = gpuMemcpyAsync(dst, src, bytes, gpuMemcpyHostToDevice, stream_);
  if (err == gpuSuccess) err = gpuStreamSynchronize(stream_);
  if (err == gpuSuccess) return ok_status();
  (void)gpuGetLastError();
  return Status::error("upload of " + std::to_string(bytes) + " bytes failed: " + error_text(err));
}

// The GGUF rows go up in pieces of at most kSplitStagingBytes through a temporary device buffer, from which
// split_rows writes them into their split layout at dst.
Status GpuBackend::upload_split(const gguf::TensorInfo& info, size_t row_bytes, size_t pitch, void* dst) {
  constexpr size_t kSplitStagingBytes = size_t{64} << 20;
  const int64_t n_rows = info.ne[1] * info.ne[2];
  int64_t per_piece = std::min(n_rows, std::max<int64_t>(1, static_cast<int64_t>(kSplitStagingBytes / row_bytes)));
  void* staging = nullptr;
  for (;;) {  // a nearly full device: smaller pieces, down to one row
    const size_t staging_bytes = row_bytes * static_cast<size_t>(per_piece);
    const gpuError_t err = gpuMalloc(&staging, staging_bytes);
    if (err == gpuSuccess) break;
    (void)gpuGetLastError();
    if (per_piece == 1) {
      return Status::error("no device memory for a " + std::to_string(staging_bytes) +
                           "-byte upload buffer: " + error_text(err));
    }
    per_piece = (per_piece + 1) / 2;
  }
  Status st = ok_status();
  for (int64_t r = 0; r < n_rows && st.ok(); r += per_piece) {
    const int64_t n = std::min(per_piece, n_rows - r);
    st = upload(staging, static_cast<const uint8_t*>(info.data) + static_cast<size_t>(r) * row_bytes,
                row_bytes * static_cast<size_t>(n));
    if (st.ok()) {
      st = split_rows(info.type, staging, row_bytes, n, info.ne[0], static_cast<uint8_t*>(dst) + r * pitch, pitch,
                      stream_);
    }
    if (st.ok()) {  // before the staging buffer is refilled
      const gpuError_t err = gpuStreamSynchronize(stream_);
      if (err != gpuSuccess) st = error_status(err, "weight layout");
    }
  }
  (void)gpuFree(staging);
  return st;
}

void GpuBackend::to_device(Tensor dst, const void* src, size_t bytes) {
  before_op();
  finish_capture();
  if (failed()) return;
  if (check_call(gpuMemcpyAsync(dst.data, src, bytes, gpuMemcpyHostToDevice, stream_), "upload")) {
    check_call(gpuStreamSynchronize(stream_), "upload");
  }
}

void GpuBackend::to_host(void* dst, Tensor src, size_t bytes) {
  finish_capture();
  if (failed()) return;
  if (check_call(gpuMemcpyAsync(dst, src.data, bytes, gpuMemcpyDeviceToHost, stream_), "download")) {
    const auto t0 = std::chrono::steady_clock::now();
    check_call(gpuStreamSynchronize(stream_), "download (a kernel before it may have failed)");
    timing_.wait += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

void GpuBackend::sync() {
  finish_capture();
  if (device_lost()) return;
  check_call(gpuStreamSynchronize(stream_), "stream synchronisation (a kernel before it may have failed)");
}

std::unique_ptr<backend::DeviceBatch> GpuBackend::prepare_batch(backend::Batch batch) {
  finish_capture();
  const bool inject = ++batches_prepared_ == fault_at_batch_ && !failed();
  if (inject) {
    std::fprintf(stderr, "rocmforge: test hook: forward pass %lld launches a faulting kernel\n",
                 static_cast<long long>(batches_prepared_));
    check(launch_fault_kernel(stream_));
  }
  auto db = std::make_unique<GpuDeviceBatch>(std::move(batch), *this);  // uploads its indices before any capture
  live_batch_ = db.get();
  const int64_t n = db->n_tokens();
  if (n == 1 && last_batch_tokens_ == 1) calibrate_graphs();
  if (graphs_ && !failed() && !inject && n == 1 && last_batch_tokens_ == 1) {
    recorder_.clear();
    recorder_.active = true;
    launch_recorder() = &recorder_;  // until finish_capture()
    capturing_ = true;
    timing_.capture_start = std::chrono::steady_clock::now();
  }
  last_batch_tokens_ = failed() ? -1 : n;
  return db;
}

const std::vector<KindRun>* GpuBackend::kind_runs(int64_t rows) const {
  if (live_batch_ == nullptr) return nullptr;
  const auto covers = [rows](const std::vector<KindRun>& r) { return !r.empty() && r.back().end == rows; };
  if (covers(live_batch_->token_runs())) return &live_batch_->token_runs();
  if (covers(live_batch_->output_runs())) return &live_batch_->output_runs();
  return nullptr;
}

bool GpuBackend::products_by_kind() const {
  return batch_invariant_ && generated_by_matvec_ && !matmul_policy().invariant_matvec &&
         has_mmq_matmul(quant::Type::Q8_0);
}

bool GpuBackend::attention_by_kind() const { return batch_invariant_ && prefill_invariant_available(); }

bool GpuBackend::results_depend_on_kind() const { return products_by_kind() || attention_by_kind(); }

}  // namespace rf::gpu
