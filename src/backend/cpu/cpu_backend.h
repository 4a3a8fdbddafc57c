// The CPU backend: scalar reference ops threaded over rows, with the per-type dot kernels from dot_kernels.h.
#pragma once

#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/thread_pool.h"

namespace rf::backend::cpu {

class CpuBackend final : public Backend {
 public:
  // n_threads <= 0: physical cores. `table` defaults to the kernels selected for this CPU.
  explicit CpuBackend(int n_threads = 0, const KernelTable* table = nullptr);

  std::string name() const override;
  int n_threads() const { return pool_.size(); }

  std::unique_ptr<Buffer> alloc(size_t bytes) override;
  Expected<Tensor> load_weight(const gguf::TensorInfo& info) override;
  void to_device(Tensor dst, const void* src, size_t bytes) override;
  void to_host(void* dst, Tensor src, size_t bytes) override;
  void sync() override {}
  std::unique_ptr<DeviceBatch> prepare_batch(Batch batch) override;

  void embed(Tensor out, Tensor table, const DeviceBatch& batch) override;
  void get_rows(Tensor out, Tensor x, const DeviceBatch& batch) override;
  void matmul(Tensor out, Tensor x, Tensor w) override;
  void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) override;
  void add(Tensor out, Tensor a, Tensor b) override;
  void silu_mul(Tensor out, Tensor gate, Tensor up) override;
  void sigmoid_scale(Tensor out, Tensor x, Tensor gate) override;
  void rope(Tensor x, const DeviceBatch& batch, const RopeParams& params) override;
  void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, const DeviceBatch& batch) override;
  void attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const DeviceBatch& batch,
                 const AttentionParams& params) override;
  void moe_route(Tensor ids, Tensor weights, Tensor logits, bool normalize) override;
  void moe_matmul(Tensor out, Tensor x, Tensor w, Tensor ids) override;
  void moe_combine(Tensor out, Tensor expert_out, Tensor weights) override;

 private:
  // Converts the rows of x to the activation format of weight type wt into act_ (returns bytes per row).
  size_t convert_activations(Tensor x, quant::Type wt);
  // out row `o` element `r` = dot(weight row r of w, activation row a) for the given (o, a) pairs.
  void dot_rows(Tensor out, Tensor w, size_t act_row_bytes, int64_t n_pairs, const int32_t* expert_of_pair,
                const int64_t* act_of_pair);

  const KernelTable* table_;
  ThreadPool pool_;
  std::vector<uint8_t> act_;                      // converted activations
  std::vector<float> act_f32_;                    // converted activations back in F32 (fallback path)
  std::vector<std::vector<float>> scratch_;       // per thread: a dequantized weight row / attention scores
  std::vector<std::vector<uint16_t>> scratch16_;  // per thread: F16 attention queries
};

}  // namespace rf::backend::cpu
