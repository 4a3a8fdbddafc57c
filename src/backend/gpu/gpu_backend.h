// The GPU backend: the Backend interface on one CUDA or HIP device (one stream). Weights are uploaded from the
// mapped file into a few large arena allocations; every op is a kernel launch on the backend's stream (see
// matmul.h, elementwise.h, attention.h for the kernels and their numerics).
//
// Errors: create_gpu_backend() returns an error (never aborts) when there is no usable GPU or driver;
// load_weight() returns an error for tensor types without a GPU kernel or when GPU memory runs out. Ops have no
// status in the Backend interface: a failed launch, a kernel fault seen at a synchronisation, or memory that
// cannot be had mid-run is recorded (the first one), later ops are skipped, and take_error() reports it, so one
// failing request does not take the process down. A shape mismatch is a caller bug and aborts.
//
// Device loss: a "sticky" error (compat.h gpu_error_loses_context: a kernel fault, an uncorrectable ECC error)
// leaves the context unusable. The backend then reports device_lost(), skips every op, and frees nothing of the
// old context any more (buffers it handed out know it through a shared flag). reset_device() resets the device
// (which frees everything the context held), forgets the old context's pointers without freeing them, and starts
// a new stream; the owner (model::Model::recover) then reloads the weights and reallocates its buffers. The reset
// is process-wide: it ends every context the process holds on that device, so one process runs one GpuBackend
// per device when it relies on recovery (rocmforge does).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/gpu/attention.h"
#include "backend/gpu/blas.h"
#include "backend/gpu/compat.h"
#include "backend/gpu/device_info.h"
#include "backend/gpu/elementwise.h"
#include "backend/gpu/matmul.h"
#include "core/status.h"

namespace rf::gpu {

class GpuDeviceBatch;
// A run of consecutive rows of one kind (Batch::generated) of a prepared batch: [begin, end).
struct KindRun {
  int64_t begin = 0, end = 0;
  bool generated = false;
};

class GpuBackend final : public backend::Backend {
 public:
  ~GpuBackend() override;
  GpuBackend(const GpuBackend&) = delete;
  GpuBackend& operator=(const GpuBackend&) = delete;

  // Opens device `device_index`; an error when it cannot be used.
  static Expected<std::unique_ptr<GpuBackend>> create(int device_index = 0);

  std::string name() const override;
  Status take_error() override;
  bool device_lost() const override { return !lost_error_.ok(); }
  Status reset_device() override;
  // Batch-invariant mode in CUDA builds: prompt and generated tokens take different kernels (products_by_kind,
  // attention_by_kind).
  bool results_depend_on_kind() const override;
  int64_t device_resets() const { return device_resets_; }
  // Test hook (fault_inject.h): the n-th batch prepared from now on (1: the next one, the next forward pass) first
  // launches a kernel that stores through an invalid address, a real sticky fault; 0: none. Also set from the
  // environment at create(): ROCMFORGE_GPU_INJECT_FAULT=N, N counted from the backend's first batch.
  void inject_fault_in(int64_t n) { fault_at_batch_ = n > 0 ? batches_prepared_ + n : 0; }
  // Batches prepared since create() (one per forward pass that uses this backend).
  int64_t batches_prepared() const { return batches_prepared_; }
  const DeviceInfo& device() const { return info_; }
  // Free device memory now, in bytes (an error when the runtime cannot say).
  Expected<size_t> free_memory() const;
  gpuStream_t stream() const { return stream_; }
  // Bytes of weight arenas allocated and used so far.
  size_t arena_bytes_reserved() const;
  size_t arena_bytes_used() const;
  size_t arena_count() const { return arenas_.size(); }
  // The weight bytes about to be loaded (arena-aligned, e.g. model::offload_bytes' weights): arenas are then
  // sized to hold them (one allocation per 16 GiB) instead of doubling, so a planned fit is not lost to
  // a half-used last arena. Counted down as weights load.
  void plan_weight_bytes(size_t bytes) { planned_weight_bytes_ = bytes; }
  // Device memory bandwidth in bytes/s: read + write of a `bytes` device-to-device copy, median of a few runs
  // (an error when the buffers cannot be allocated).
  Expected<double> measure_copy_bandwidth(size_t bytes = size_t{1} << 30);

  std::unique_ptr<backend::Buffer> alloc(size_t bytes) override;
  Expected<backend::Tensor> load_weight(const gguf::TensorInfo& info) override;
  void to_device(backend::Tensor dst, const void* src, size_t bytes) override;
  void to_host(void* dst, backend::Tensor src, size_t bytes) override;
  void sync() override;
  // Launches the deferred decode matmul group and add now (benchmarks that time kernels with stream events).
  void flush_deferred() { flush_pending_add(); }
  std::unique_ptr<backend::DeviceBatch> prepare_batch(backend::Batch batch) override;

  void embed(backend::Tensor out, backend::Tensor table, const backend::DeviceBatch& batch) override;
  void get_rows(backend::Tensor out, backend::Tensor x, const backend::DeviceBatch& batch) override;
  void matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w) override;
  void rms_norm(backend::Tensor out, backend::Tensor x, backend::Tensor weight, float eps) override;
  void add(backend::Tensor out, backend::Tensor a, backend::Tensor b) override;
  void silu_mul(backend::Tensor out, backend::Tensor gate, backend::Tensor up) override;
  void sigmoid_scale(backend::Tensor out, backend::Tensor x, backend::Tensor gate) override;
  void rope(backend::Tensor x, const backend::DeviceBatch& batch, const backend::RopeParams& params) override;
  void kv_store(backend::Tensor k_cache, backend::Tensor v_cache, backend::Tensor k, backend::Tensor v,
                const backend::DeviceBatch& batch) override;
  void attention(backend::Tensor out, backend::Tensor q, backend::Tensor k_cache, backend::Tensor v_cache,
                 const backend::DeviceBatch& batch, const backend::AttentionParams& params) override;
  void moe_route(backend::Tensor ids, backend::Tensor weights, backend::Tensor logits, bool normalize) override;
  void moe_matmul(backend::Tensor out, backend::Tensor x, backend::Tensor w, backend::Tensor ids) override;
  void moe_combine(backend::Tensor out, backend::Tensor expert_out, backend::Tensor weights) override;
  // On the device (sampling.h): only the ids are downloaded, and the logits of rows the kernel hands back.
  Status sample(backend::Tensor logits, std::span<const backend::SampleRow> rows, const backend::HostSampleFn& host,
                int32_t* ids) override;

  // Index memory of prepared batches, reused from batch to batch (no allocation or synchronisation per step): a
  // device array and its pinned host staging copy of at least `ints` int32 values. release_batch_mem() records an
  // event after the work queued so far; acquire waits for it before the host copy is rewritten.
  struct BatchMem {
    int32_t* dev = nullptr;
    int32_t* host = nullptr;
    size_t capacity = 0;
    gpuEvent_t done = nullptr;
  };
  BatchMem acquire_batch_mem(size_t ints);
  void release_batch_mem(BatchMem mem);
  // A prepared batch is going away (its destructor).
  void forget_batch(const GpuDeviceBatch* b) {
    if (live_batch_ == b) live_batch_ = nullptr;
  }
  // Records a failed runtime call as the backend's error (see take_error); true when `err` is success.
  bool check_call(gpuError_t err, const char* what);

  // Decode graphs: the kernels of a one-token batch that follows another one-token batch are recorded (compat.h
  // LaunchRecorder) from prepare_batch() to the next call that needs the host (to_host, sync, to_device, alloc,
  // scratch growth, the batch's release). A step whose launches are byte for byte those of one of the last
  // kGraphCache steps replays that step's graph: one launch, no capture. Otherwise the recorded launches are
  // captured into a new graph (replacing the least recently used one) and launched. With CUDA the first decode
  // steps time themselves with and without graphs and keep the faster (ROCMFORGE_GPU_GRAPHS=0 / 1: off / on).
  void set_graphs_enabled(bool on) {
    graphs_ = on && kGraphUpdateSupported;
    auto_graphs_.active = false;
  }
  // BackendOptions::batch_invariant: each token's products take one kernel whatever its batch, chosen by the
  // token's kind (Batch::generated): the matrix-vector products for generated tokens (decode speed), the tensor-core
  // ones for prompt tokens (prefill speed: matmul_mmq for int8 weights, matmul_mmf for F16 / BF16); the
  // matrix-vector products for both where those cannot take the weight or MatmulPolicy::invariant_matvec asks.
  // Each kernel gives a token the same bits in any batch. Attention likewise: prompt tokens the prefill kernel where
  // it gives each row the same bits in any batch (attention.h prefill_invariant: flash attention), generated tokens
  // (and every token where flash does not apply) the per-token decode kernel.
  void set_batch_invariant(bool on) { batch_invariant_ = on; }
  // Batch-invariant mode's kernel for generated tokens: the matrix-vector products (true, the default: the faster
  // for up to backend::kMatvecDecodeSequences sequences at once) or the tensor-core ones, as for prompt tokens.
  void set_generated_by_matvec(bool on) { generated_by_matvec_ = on; }
  bool graphs_enabled() const { return graphs_; }
  int64_t graph_launches() const { return graph_launches_; }
  int64_t graph_instantiations() const { return graph_instantiations_; }
  int64_t graph_replays() const { return graph_replays_; }  // launches of a graph captured for an earlier step

 private:
  struct Arena {
    void* base = nullptr;
    size_t size = 0;
    size_t used = 0;
  };

  GpuBackend(DeviceInfo info, gpuStream_t stream) : info_(std::move(info)), stream_(stream) {}
  // Launches one small kernel and waits for it: an error (with the runtime's reason) when this build has no code for
  // the device or the device does not work.
  Status first_kernel();
  // Marks the context lost (the first sticky error is kept as the reason).
  void lose_context(const Status& why);
  // Device memory for a weight of `bytes` from the arenas (a new arena when the current one is full).
  Expected<void*> arena_alloc(size_t bytes);
  // Host to device through the backend's stream, complete on return (so the stream's later kernels see it).
  Status upload(void* dst, const void* src, size_t bytes);
  // A split-type weight (dequant.h: split_rows) from its mmapped GGUF rows into dst, rows `pitch` apart.
  Status upload_split(const gguf::TensorInfo& info, size_t row_bytes, size_t pitch, void* dst);
  // The rounded-activation scratch, grown to at least `floats`.
  float* act_scratch(size_t floats);
  // Ends a capture in progress and launches it (no-op when not capturing).
  void finish_capture();
  // Before every op but matmul: runs a deferred add and forgets the quantized activation row in the int8 scratch
  // (the op may write its source). False while an error is recorded: the op is then skipped.
  bool before_op() {
    flush_pending_add();
    quantized_.src = nullptr;
    return !failed();
  }
  // Records a failed launch or runtime call (the first one is kept until take_error()).
  void check(const Status& s);
  bool failed() const { return !error_.ok() || device_lost(); }
  // Runs the deferred matrix-vector group, then the deferred add, if any. add() waits for the next op: an
  // rms_norm of its result fuses with it.
  void flush_pending_add();
  void flush_add_only();
  // Decode matmuls of one input (q / k / v, gate / up) wait for the next op and then run as one launch (int8
  // weights: matvec_int8_multi; F16 / BF16: matvec_float_multi).
  void flush_matvec_group();

  DeviceInfo info_;
  gpuStream_t stream_ = nullptr;
  Status error_;  // the first failure since the last take_error()
  // Device loss: the first sticky error (ok: the context is usable), cleared by a successful reset_device().
  // context_live_ is shared with the buffers alloc() hands out: false once their context is lost or reset, so they
  // never free into a new one.
  Status lost_error_;
  std::shared_ptr<std::atomic<bool>> context_live_ = std::make_shared<std::atomic<bool>>(true);
  int64_t device_resets_ = 0;
  int64_t batches_prepared_ = 0;
  int64_t fault_at_batch_ = 0;  // inject_fault_in / ROCMFORGE_GPU_INJECT_FAULT (0: none)
  std::vector<Arena> arenas_;
  size_t planned_weight_bytes_ = 0;
  float* act_ = nullptr;
  size_t act_floats_ = 0;
  std::vector<BatchMem> batch_pool_;
  // What the int8 scratch holds: rows `src` (n_tok rows of n_in floats, stride apart) quantized for `kind` weights
  // (src nullptr: nothing reusable).
  struct QuantizedRows {
    const void* src = nullptr;
    int64_t n_in = 0, n_tok = 0, stride = 0;
    int kind = 0;
    bool operator==(const QuantizedRows&) const = default;
  } quantized_;
  // A norm or SiLU gate waiting for the next op: when that is an int8 product of its output, one kernel writes the
  // output and its quantized rows (elementwise.h rms_norm_quant / silu_mul_quant).
  enum class ActOp { kNone, kNorm, kAddNorm, kSiluMul };
  struct PendingAct {
    ActOp op = ActOp::kNone;
    backend::Tensor out, x, a, b;  // norm: out = norm(x), with x = a + b first for kAddNorm; silu: out = silu(a) * b
    const float* weight = nullptr;
    float eps = 0.0f;
  };
  // The fused kernel's form of an op that can wait in a matvec group (kNorm or kSiluMul).
  static FusedPrologue fused_prologue_of(ActOp op) {
    return op == ActOp::kNorm ? FusedPrologue::kNorm : FusedPrologue::kSilu;
  }
  struct PendingMatvec {
    int count = 0;
    bool closed = false;  // a member's output overlaps the input: later matmuls must see the new values
    bool quantize = true;
    bool float_rows = false;  // F16 / BF16 weights reading x as floats (matvec_float_multi), not int8 codes
    const float* x = nullptr;
    int64_t x_stride = 0;
    int64_t n_in = 0;
    int64_t n_tok = 0;
    quant::Type type = quant::Type::F32;
    WeightView w[3];
    float* out[3] = {};
    int64_t out_stride[3] = {};
    // Single tokens (matvec_int8_fused): the norm or SiLU gate that makes x, launched in the product's prologue
    // (act.op kNone: none), and the residual add after member i (add_out[i] = add_other[i] + out[i]; add_out[i].data
    // nullptr: none). Where the fused kernel cannot take them at launch, they run as their own kernels.
    PendingAct act;
    backend::Tensor add_out[3], add_other[3];
  } pending_mv_;
  struct PendingAdd {
    bool active = false;
    backend::Tensor out, a, b;
  } pending_add_;
  PendingAct pending_act_;
  void flush_act_only();
  // The act's kernel that also quantizes its output into rows for `kind` products (rms_norm_quant, silu_mul_quant).
  void launch_act_quant(const PendingAct& p, int kind, const Int8Rows& rows);
  // add(out, a, b) of a pending single-token product's output: whether it became that launch's residual epilogue.
  bool add_joins_matvec(const backend::Tensor& out, const backend::Tensor& a, const backend::Tensor& b);
  // rope(q) then rope(k) wait for the next op: when that is kv_store of the rotated k, the three run as one
  // launch (elementwise.h rope_kv_store).
  struct PendingRope {
    RowsF32 x;
    RopeArgs args;
    const int32_t* positions = nullptr;
  } pending_rope_[2];
  int pending_ropes_ = 0;
  void flush_ropes();
  // That fused rope + KV store of a batch with one token per sequence waits in turn: when the next op is decode
  // attention of the rotated q over the same caches, attention does the rope and the store itself (attention.h
  // AttentionRope); anything else launches rope_kv_store first.
  struct PendingStore {
    bool active = false;
    RowsF32 q, k, v;
    RopeArgs aq, ak;
    const int32_t* positions = nullptr;
    const int32_t* slots = nullptr;
    backend::Tensor k_cache, v_cache;
  } pending_store_;
  void flush_store();
  void launch_rope_kv_store(const PendingStore& p);
  // Decode attention waits for the next op: when that is an int8 product of its output with Q8_0 activations, the
  // attention kernels also write the quantized rows (attention.h attention_fuses_quant) and the product reads them.
  struct PendingAttention {
    bool active = false;
    AttentionArgs args;
    bool rope = false;
    AttentionRope r;
    backend::Tensor out;
  } pending_attn_;
  void flush_attention(bool quantize);
  // Batch-invariant attention of a batch whose tokens are not all generated: each run of one kind through its
  // kernel (prompt runs: the prefill kernel, args.prefill; generated runs: the decode kernel), K / V stored already.
  void attention_runs(const AttentionArgs& a, const std::vector<KindRun>& runs);
  // Launches the pending act fused with the quantization of its output for `kind` products, when it produced x
  // and the layout allows; else launches it alone.
  // attach (a single-token int8 product of x of a type fused_matvec_for takes): a norm (without add) or SiLU gate that
  // fits is returned instead, for the product's launch to compute (pending_mv_.act); else the returned op is kNone.
  PendingAct fuse_or_flush_act(const backend::Tensor& x, int kind, bool attach = false);
  bool graphs_ = kGraphUpdateSupported;
  // ROCMFORGE_GPU_TIMING=1: host seconds spent recording captured steps, updating / instantiating and launching
  // their graphs, and waiting in downloads and syncs, printed to stderr when the backend is destroyed.
  struct HostTiming {
    bool on = false;
    double record = 0, update = 0, wait = 0;
    int64_t steps = 0;
    std::chrono::steady_clock::time_point capture_start;
  } timing_;
  // The vendor BLAS for long batches (blas.h), opened at the first product that could use it.
  std::unique_ptr<BlasContext> blas_;
  bool blas_tried_ = false;
  BlasContext* blas();
  bool fuse_ = true;  // the norm / SiLU + quantize and rope + KV store fusions (ROCMFORGE_GPU_FUSE=0: off)
  bool batch_invariant_ = false;
  bool generated_by_matvec_ = true;
  // The live prepared batch (the last one prepare_batch made, until it is released): batch-invariant products
  // route its rows by kind. kind_runs(rows): the runs of a product over `rows` rows of it (its token rows, else
  // its output rows; nullptr for neither, or without a live batch).
  const GpuDeviceBatch* live_batch_ = nullptr;
  const std::vector<KindRun>* kind_runs(int64_t rows) const;
  // Batch-invariant routing by kind: int8 and F16 / BF16 products (generated tokens the matrix-vector kernels,
  // prompt tokens matmul_mmq / matmul_mmf; needs those and generated_by_matvec_) and attention (prompt tokens the
  // prefill kernel where prefill_invariant, generated tokens the decode kernel).
  bool products_by_kind() const;
  bool attention_by_kind() const;
  bool capturing_ = false;
  int64_t last_batch_tokens_ = -1;
  LaunchRecorder recorder_;
  struct CachedGraph {
    std::vector<unsigned char> signature;
    gpuGraphExec_t exec = nullptr;
    int64_t last_used = 0;
  };
  static constexpr size_t kGraphCache = 4;
  std::vector<CachedGraph> graph_cache_;
  // Captures the recorded launches into a graph, instantiated into a cache slot; nullptr on failure (recorded).
  gpuGraphExec_t capture_recorded();
  int64_t graph_launches_ = 0;
  int64_t graph_instantiations_ = 0;
  int64_t graph_replays_ = 0;
  int64_t graph_clock_ = 0;  // captured steps so far: orders the cache for eviction
  // Default graph mode: the first 2 x kCalibrationSteps consecutive decode steps run with graphs, then without,
  // and the faster median step time decides (set_graphs_enabled() ends the calibration).
  static constexpr int kCalibrationSteps = 8;
  struct AutoGraphs {
    bool active = false;
    int step = 0;
    std::chrono::steady_clock::time_point last;
    std::vector<double> with, without;
    double seconds_with = 0, seconds_without = 0;
  } auto_graphs_;
  void calibrate_graphs();
  // sample()'s memory, grown as needed: the row arguments, penalty pairs and ids (device, and pinned host staging of
  // the same layout), and the penalised logits copies.
  struct PinnedFree {
    void operator()(void* p) const { (void)gpuFreeHost(p); }
  };
  std::unique_ptr<backend::Buffer> sample_dev_, sample_scratch_;
  std::unique_ptr<void, PinnedFree> sample_host_;
  size_t sample_host_bytes_ = 0;
  std::vector<int32_t> sample_window_;  // one row's penalty window, sorted
};

// The factory the engine's device selection calls: a GpuBackend on device 0, or an error saying why no GPU is
// usable (no driver, no device, runtime failure). Never aborts.
Expected<std::unique_ptr<backend::Backend>> create_gpu_backend(const backend::BackendOptions& options);

}  // namespace rf::gpu
