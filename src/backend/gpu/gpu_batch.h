// Internal to the GPU backend (gpu_backend.cpp, gpu_ops.cpp): its prepared batch, and the views of backend tensors
// that the kernel launchers take.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/gpu/elementwise.h"
#include "backend/gpu/gpu_backend.h"
#include "backend/gpu/matmul.h"
#include "core/check.h"

namespace rf::gpu {

// The batch's index arrays in one device array (from the backend's pool): tokens, positions, sequence ids, KV
// slots, output rows and the block tables (one row of table_stride ids per sequence).
class GpuDeviceBatch final : public backend::DeviceBatch {
 public:
  // Uploads the batch's indices (one copy on the backend's stream).
  GpuDeviceBatch(backend::Batch batch, GpuBackend& be);
  ~GpuDeviceBatch() override {
    be_.forget_batch(this);
    be_.release_batch_mem(mem_);
  }

  const int32_t* tokens() const { return tokens_; }
  const int32_t* positions() const { return positions_; }
  const int32_t* seq() const { return seq_; }
  const int32_t* slots() const { return slots_; }
  const int32_t* outputs() const { return outputs_; }
  const int32_t* tables() const { return tables_; }
  int64_t table_stride() const { return table_stride_; }
  int32_t max_ctx() const { return max_ctx_; }  // the longest context of the batch (largest position + 1)
  bool one_token_per_seq() const { return one_token_per_seq_; }  // no sequence has two tokens in the batch
  // Its token rows and its output rows as runs of one kind (Batch::generated).
  const std::vector<KindRun>& token_runs() const { return token_runs_; }
  const std::vector<KindRun>& output_runs() const { return output_runs_; }

 private:
  GpuBackend& be_;
  GpuBackend::BatchMem mem_;
  const int32_t *tokens_ = nullptr, *positions_ = nullptr, *seq_ = nullptr, *slots_ = nullptr, *outputs_ = nullptr;
  const int32_t* tables_ = nullptr;
  int64_t table_stride_ = 0;
  int32_t max_ctx_ = 0;
  bool one_token_per_seq_ = true;
  std::vector<KindRun> token_runs_, output_runs_;
};


// The GPU batch behind a DeviceBatch this backend prepared (a batch from another backend is a caller bug: aborts).
inline const GpuDeviceBatch& gpu_batch(const backend::DeviceBatch& b) {
  const auto* g = dynamic_cast<const GpuDeviceBatch*>(&b);
  RF_CHECK_MSG(g != nullptr, "gpu backend: batch was not prepared by the GPU backend");
  return *g;
}

// An F32 tensor as rows for the element-wise launchers.
inline RowsF32 rows_of(backend::Tensor t) {
  RF_CHECK_MSG(t.type == quant::Type::F32,
               "gpu backend: expected an F32 tensor, got " + std::string(quant::type_name(t.type)));
  RF_CHECK(t.nb1 % sizeof(float) == 0);
  return RowsF32{static_cast<float*>(t.data), t.ne0, t.ne1, static_cast<int64_t>(t.nb1 / sizeof(float))};
}

// A weight tensor for the matmul launchers.
inline WeightView view_of(backend::Tensor w) { return WeightView{w.data, w.type, w.ne0, w.ne1, w.ne2, w.nb1, w.nb2}; }

// QuantizedRows::kind of rows the BLAS converted (plus the activation type): apart from the int8 kinds 32 / 256.
inline constexpr int kBlasRowsKind = 1000;
// QuantizedRows::kind of rows rounded to 16 bits for matmul_mmf in the int8 scratch (plus the activation type).
inline constexpr int kMmfRowsKind = 2000;

}  // namespace rf::gpu
