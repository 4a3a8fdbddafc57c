// The Backend interface: the few ops a transformer forward pass needs, at op level (not a graph library).
// The model code (src/model) calls only these, so the same forward pass runs on the CPU and the GPU backends.
// Every op has a plain scalar CPU reference (src/backend/cpu/reference_ops.*) that is the oracle for SIMD and GPU.
//
// Conventions: a Tensor is a view of backend memory with ne0 the contiguous dimension (a "row"), ne1 rows and,
// for stacked expert weights, ne2 matrices. Activations are F32 with rows = tokens of the batch. A weight of shape
// [n_in, n_out] has n_out rows of n_in elements (the GGUF layout), so matmul computes out = x * W^T per token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"
#include "quant/types.h"

namespace rf::backend {

struct Tensor {
  void* data = nullptr;  // backend memory (host memory for the CPU backend)
  quant::Type type = quant::Type::F32;
  int64_t ne0 = 0;  // elements per row (contiguous)
  int64_t ne1 = 1;  // rows
  int64_t ne2 = 1;  // matrices (experts)
  size_t nb1 = 0;   // bytes between rows
  size_t nb2 = 0;   // bytes between matrices

  bool empty() const { return data == nullptr; }
  int64_t n_rows() const { return ne1 * ne2; }
  // Rows [first, first + count) of a single-matrix tensor.
  Tensor rows(int64_t first, int64_t count) const {
    Tensor t = *this;
    t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(first) * nb1;
    t.ne1 = count;
    t.nb2 = static_cast<size_t>(count) * nb1;
    return t;
  }
  // Matrix i of a stacked tensor.
  Tensor matrix(int64_t i) const {
    Tensor t = *this;
    t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(i) * nb2;
    t.ne2 = 1;
    return t;
  }
  // The same contiguous F32 memory seen as rows of `row_len` elements (row_len must divide ne0 * ne1).
  Tensor reshape_rows(int64_t row_len) const {
    Tensor t = *this;
    const int64_t n = ne0 * ne1;
    t.ne0 = row_len;
    t.ne1 = n / row_len;
    t.nb1 = static_cast<size_t>(row_len) * sizeof(float);
    t.nb2 = static_cast<size_t>(n) * sizeof(float);
    return t;
  }
};

// A contiguous tensor over data (row stride from type and ne0; ne0 must be a multiple of the block size).
inline Tensor make_tensor(void* data, quant::Type type, int64_t ne0, int64_t ne1 = 1, int64_t ne2 = 1) {
  Tensor t;
  t.data = data;
  t.type = type;
  t.ne0 = ne0;
  t.ne1 = ne1;
  t.ne2 = ne2;
  t.nb1 = quant::row_bytes(type, ne0).value_or(0);
  t.nb2 = t.nb1 * static_cast<size_t>(ne1);
  return t;
}

// Memory owned by a backend; released when destroyed.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() const = 0;
  virtual size_t size() const = 0;
};

// One forward batch as the host sees it: tokens of one or more sequences with their positions. Sequence s of the
// batch occupies positions 0..(its largest position) in the paged KV cache through block_tables[s]; a token at
// position p writes its K/V at that position and attends to positions 0..p of its own sequence (causal).
struct Batch {
  std::vector<int32_t> tokens;                    // [n_tokens]
  std::vector<int32_t> positions;                 // [n_tokens]
  std::vector<int32_t> seq;                       // [n_tokens] index into block_tables
  std::vector<std::vector<int32_t>> block_tables;  // per sequence: physical KV block ids, logical order
  std::vector<int32_t> output_rows;               // token indices whose logits are wanted, ascending
  int32_t kv_block_size = 16;                     // tokens per KV block
  // [n_tokens] or empty (all prompt tokens): 1 where the token was sampled by the model, 0 where it came with the
  // prompt. Like its position, a token's kind is part of what it is, never of how it was batched: a batch-invariant
  // backend may compute the two kinds with different kernels (decode- and prefill-shaped), each bitwise the same in
  // any batch (Backend::results_depend_on_kind).
  std::vector<uint8_t> generated;

  int64_t n_tokens() const { return static_cast<int64_t>(tokens.size()); }
  int64_t n_outputs() const { return static_cast<int64_t>(output_rows.size()); }
  bool is_generated(int64_t i) const { return !generated.empty() && generated[static_cast<size_t>(i)] != 0; }
  // Checks the batch for consistency (sizes, token ids < n_vocab, positions >= 0, block tables long enough and
  // ids < n_kv_blocks, output rows in range).
  Status validate(int64_t n_vocab, int64_t n_kv_blocks) const;
};

inline Status Batch::validate(int64_t n_vocab, int64_t n_kv_blocks) const {
  const auto n = tokens.size();
  if (positions.size() != n || seq.size() != n) {
    return Status::error("batch: " + std::to_string(n) + " tokens but " + std::to_string(positions.size()) +
                         " positions and " + std::to_string(seq.size()) + " sequence indices");
  }
  if (!generated.empty() && generated.size() != n) {
    return Status::error("batch: " + std::to_string(n) + " tokens but " + std::to_string(generated.size()) +
                         " generated flags");
  }
  if (kv_block_size <= 0) return Status::error("batch: kv_block_size must be positive");
  for (size_t i = 0; i < n; ++i) {
    const std::string where = "batch: token " + std::to_string(i) + ": ";
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      return Status::error(where + "id " + std::to_string(tokens[i]) + " outside the vocabulary [0, " +
                           std::to_string(n_vocab) + ")");
    }
    if (positions[i] < 0) return Status::error(where + "negative position " + std::to_string(positions[i]));
    if (seq[i] < 0 || static_cast<size_t>(seq[i]) >= block_tables.size()) {
      return Status::error(where + "sequence index " + std::to_string(seq[i]) + " but the batch has " +
                           std::to_string(block_tables.size()) + " block tables");
    }
    const auto& table = block_tables[static_cast<size_t>(seq[i])];
    const auto need = static_cast<size_t>(positions[i] / kv_block_size) + 1;
    if (table.size() < need) {
      return Status::error(where + "position " + std::to_string(positions[i]) + " needs " + std::to_string(need) +
                           " KV blocks but its sequence has " + std::to_string(table.size()));
    }
    for (size_t b = 0; b < need; ++b) {
      if (table[b] < 0 || table[b] >= n_kv_blocks) {
        return Status::error(where + "KV block id " + std::to_string(table[b]) + " outside [0, " +
                             std::to_string(n_kv_blocks) + ")");
      }
    }
  }
  for (size_t i = 0; i < output_rows.size(); ++i) {
    if (output_rows[i] < 0 || static_cast<size_t>(output_rows[i]) >= n ||
        (i > 0 && output_rows[i] <= output_rows[i - 1])) {
      return Status::error("batch: output row " + std::to_string(output_rows[i]) +
                           " out of range or not ascending (" + std::to_string(n) + " tokens)");
    }
  }
  return ok_status();
}

// The batch as a backend holds it (the GPU backend uploads the index arrays once per batch).
class DeviceBatch {
 public:
  explicit DeviceBatch(Batch host) : host_(std::move(host)) {}
  virtual ~DeviceBatch() = default;
  const Batch& host() const { return host_; }
  int64_t n_tokens() const { return host_.n_tokens(); }
  int64_t n_outputs() const { return host_.n_outputs(); }

 private:
  Batch host_;
};

enum class RopeMode { kNormal, kNeox };  // kNormal rotates pairs (2i, 2i+1); kNeox pairs (i, i + n_rot/2)

struct RopeParams {
  RopeMode mode = RopeMode::kNormal;
  int n_head = 0;
  int head_dim = 0;
  int n_rot = 0;             // rotated dims per head (<= head_dim); the rest pass through
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // 1 / linear scaling factor
  Tensor freq_factors;       // optional F32 [n_rot / 2]: per-frequency divisors (llama3-style scaling)
  // YaRN (see backend/rope_yarn.h). With ext_factor 0 (the default) the angle is freq_scale * theta; otherwise
  // pairs below the correction range keep the unscaled angle, pairs above it get the scaled one, and a linear
  // ramp blends the two in between (weight ext_factor on the unscaled side).
  float ext_factor = 0.0f;   // 0: off
  float attn_factor = 1.0f;  // multiplies cos and sin (YaRN's magnitude correction is folded in by the caller)
  float beta_fast = 32.0f;   // correction range, in rotations over n_ctx_orig positions
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;        // context trained on before the extension; > 0 when ext_factor != 0
};

struct AttentionParams {
  int n_head = 0;
  int n_head_kv = 0;   // n_head must be a multiple (GQA / MQA)
  int head_dim_k = 0;  // q/k head size
  int head_dim_v = 0;  // v head size
  float scale = 1.0f;  // usually 1 / sqrt(head_dim_k)
};

// One logits row to sample (Backend::sample): the settings of sampling::Sampler's chain, the tokens its penalties
// count and its draw. The Sampler stays the owner of the settings and the RNG; this is a copy for one step.
struct SampleRow {
  int32_t row = 0;                  // the logits row
  float temperature = 0.0f;         // <= 0: greedy
  int32_t top_k = 0;                // <= 0: off
  float top_p = 1.0f;               // >= 1: off
  float min_p = 0.0f;               // <= 0: off
  float repeat_penalty = 1.0f;      // as sampling::SamplerParams
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::span<const int32_t> penalty_window;  // the tokens the penalties count (empty: no penalty applies)
  double u = 0.0;  // the draw in [0, 1) (sampling::Sampler::next_uniform; unused when greedy)
};

// Samples rows on the host: for the j-th index i of `which`, ids[i] = the token of SampleRow i picked from its
// logits at logits + j * n_vocab (the caller's Sampler with the row's draw u).
using HostSampleFn = std::function<void(std::span<const size_t> which, const float* logits, int32_t* ids)>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // e.g. "cpu (avx2, 2 threads)"

  // --- errors -------------------------------------------------------------------------------------------------
  // Ops return nothing: a backend whose ops can fail at run time (a GPU launch, an asynchronous kernel fault, out
  // of device memory) records the first failure, may skip further ops until it is taken, and reports it here.
  // Returns that error and clears it (ok when none happened since the last call). Callers check it after a
  // sync() or to_host(), which wait for the queued work. Broken caller invariants (shape mismatch) still abort.
  virtual Status take_error() { return ok_status(); }
  // True after an error that lost the device context: a GPU kernel fault (illegal address, ...) or an uncorrectable
  // memory error, after which every call on that device fails ("sticky" errors). Ops are then skipped and every
  // take_error() reports the loss until reset_device() succeeds. A CPU backend never loses its device.
  virtual bool device_lost() const { return false; }
  // Starts the device afresh (a GPU device reset) after device_lost(). Everything the backend handed out before is
  // invalid afterwards, its memory gone: buffers from alloc() (they free nothing when destroyed), tensors from
  // load_weight(), prepared batches. The caller drops them, loads the weights again and allocates anew. An error
  // when the device cannot be brought back (it then stays lost). Nothing to do for a CPU backend.
  virtual Status reset_device() { return ok_status(); }
  // True when a token's results (its logits, the K/V it leaves in the cache) depend on its Batch::generated flag:
  // the same token at the same place, computed as a prompt token and as a generated one, may differ in the last
  // bits. The prefix cache then must not hand a generated token's K/V to a prompt (the GPU backend in
  // batch-invariant mode, which takes its decode kernels for generated tokens and its prefill kernels for prompts).
  virtual bool results_depend_on_kind() const { return false; }

  // --- memory -------------------------------------------------------------------------------------------------
  // nullptr when the backend cannot provide the memory (the backend's take_error() then says why).
  virtual std::unique_ptr<Buffer> alloc(size_t bytes) = 0;
  // A weight as the backend uses it. The CPU backend views the mapped file (no copy); GPU backends upload it.
  virtual Expected<Tensor> load_weight(const gguf::TensorInfo& info) = 0;
  virtual void to_device(Tensor dst, const void* src, size_t bytes) = 0;
  virtual void to_host(void* dst, Tensor src, size_t bytes) = 0;
  virtual void sync() = 0;
  virtual std::unique_ptr<DeviceBatch> prepare_batch(Batch batch) = 0;

  // --- ops (all outputs F32 unless said; out may alias an input where noted) -----------------------------------
  // out [n_embd, n_tokens] = rows batch.tokens of table [n_embd, n_vocab] (any type).
  virtual void embed(Tensor out, Tensor table, const DeviceBatch& batch) = 0;
  // out [n_embd, n_outputs] = rows batch.output_rows of x [n_embd, n_tokens].
  virtual void get_rows(Tensor out, Tensor x, const DeviceBatch& batch) = 0;
  // out [n_out, n] = x [n_in, n] * w^T, w [n_in, n_out] of any type (activations rounded as the type's dot needs).
  virtual void matmul(Tensor out, Tensor x, Tensor w) = 0;
  // Per row of ne0: out = x / rms(x) * weight (weight F32 [ne0], or empty). out may alias x.
  virtual void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) = 0;
  // out = a + b; b has a's shape or is one row broadcast over a's rows (bias). out may alias a.
  virtual void add(Tensor out, Tensor a, Tensor b) = 0;
  // out = silu(gate) * up. out may alias gate.
  virtual void silu_mul(Tensor out, Tensor gate, Tensor up) = 0;
  // out row t = x row t * sigmoid(gate(0, t)), gate F32 [1, n_tokens] (a gated shared expert). out may alias x.
  virtual void sigmoid_scale(Tensor out, Tensor x, Tensor gate) = 0;
  // In place on x [n_head * head_dim, n_tokens] at the batch positions.
  virtual void rope(Tensor x, const DeviceBatch& batch, const RopeParams& params) = 0;
  // Writes k [k_row, n_tokens] and v [v_row, n_tokens] into the caches [k_row|v_row, n_blocks * block_size]
  // (F32 or F16) at each token's slot (block_tables[seq][pos / block_size] * block_size + pos % block_size).
  virtual void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, const DeviceBatch& batch) = 0;
  // out [n_head * head_dim_v, n_tokens]: causal softmax(q k^T * scale) v over positions 0..pos of each token's
  // sequence, read from the paged caches. q [n_head * head_dim_k, n_tokens].
  virtual void attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const DeviceBatch& batch,
                         const AttentionParams& params) = 0;
  // Mixture of experts. logits [n_expert, n] -> ids (I32 [n_used, n], best first) and weights (F32 [n_used, n]):
  // softmax over all experts, top n_used, optionally renormalised to sum 1.
  virtual void moe_route(Tensor ids, Tensor weights, Tensor logits, bool normalize) = 0;
  // out [n_out, n_used * n]: for token t and slot j, w[ids(j, t)] applied to x row t (x.ne1 == n, shared input)
  // or to x row t * n_used + j (x.ne1 == n_used * n). w [n_in, n_out, n_expert].
  virtual void moe_matmul(Tensor out, Tensor x, Tensor w, Tensor ids) = 0;
  // out [n_embd, n] = sum_j weights(j, t) * expert_out row (t * n_used + j).
  virtual void moe_combine(Tensor out, Tensor expert_out, Tensor weights) = 0;

  // --- sampling -----------------------------------------------------------------------------------------------
  // ids[i] = the token of rows[i] from logits [n_vocab, n_rows] (F32). This default downloads the rows and hands
  // them to `host`; a GPU backend samples on the device (only ids cross), and hands to `host` only the rows it
  // cannot sample exactly. Returns take_error() after the downloads.
  virtual Status sample(Tensor logits, std::span<const SampleRow> rows, const HostSampleFn& host, int32_t* ids) {
    const auto nv = static_cast<size_t>(logits.ne0);
    std::vector<float> host_logits(rows.size() * nv);
    std::vector<size_t> which(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      which[i] = i;
      to_host(host_logits.data() + i * nv, logits.rows(rows[i].row, 1), nv * sizeof(float));
    }
    if (Status st = take_error(); !st.ok()) return st;
    if (!rows.empty()) host(which, host_logits.data(), ids);
    return ok_status();
  }
};

enum class DeviceKind { kAuto, kCpu, kGpu };

struct BackendOptions {
  DeviceKind device = DeviceKind::kAuto;
  int n_threads = 0;  // CPU threads; 0 = physical cores
  // Layers on the GPU when one is used (--n-gpu-layers): the first n_gpu_layers run there and the rest on the
  // CPU backend (hybrid execution). -1: as many as fit in free GPU memory; 0: none (CPU only); >= n_layer: all.
  int n_gpu_layers = -1;
  // Every row of a batch computed with the same arithmetic whatever the rest of the batch is (the server: greedy
  // text must not depend on load). The CPU backend always is. The GPU backend then fixes each token's product and
  // attention kernels by its kind (Batch::generated).
  bool batch_invariant = false;
  // The most sequences decoded at once (serve's --parallel; 0: not known). A batch-invariant GPU backend decodes
  // generated tokens with its matrix-vector product up to kMatvecDecodeSequences of them (the fastest for few
  // sequences), with its tensor-core product beyond (the fastest for many).
  int max_sequences = 0;
};
// On the H100, 7B Q4_0, batch-invariant decode: matrix-vector 402 / 1303 / 1559 t/s for 1 / 8 / 32 sequences,
// tensor-core 237 / 1818 / 3785.
inline constexpr int kMatvecDecodeSequences = 8;

}  // namespace rf::backend
