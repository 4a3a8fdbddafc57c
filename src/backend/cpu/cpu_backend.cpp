// CpuBackend: memory, weights, embedding, row gathers and the (expert) matmuls. Element-wise ops, rope and
// attention are in cpu_ops.cpp.
#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/check.h"
#include "quant/quant.h"

namespace rf::backend::cpu {
namespace {

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes) : size_(bytes) {
    // 64-byte aligned for SIMD loads; at least one cache line so data() is never null.
    const size_t rounded = ((bytes + 63) / 64) * 64;
    data_ = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    RF_CHECK_MSG(data_ != nullptr, "out of host memory allocating " + std::to_string(bytes) + " bytes");
    std::memset(data_, 0, rounded == 0 ? 64 : rounded);
  }
  ~HostBuffer() override { std::free(data_); }
  void* data() const override { return data_; }
  size_t size() const override { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

float* row_f32(Tensor t, int64_t r) { return reinterpret_cast<float*>(static_cast<uint8_t*>(t.data) + r * t.nb1); }

}  // namespace

CpuBackend::CpuBackend(int n_threads, const KernelTable* table)
    : table_(table ? table : &kernels()), pool_(n_threads > 0 ? n_threads : ThreadPool::physical_cores()) {
  scratch_.resize(static_cast<size_t>(pool_.size()));
  scratch16_.resize(static_cast<size_t>(pool_.size()));
}

std::string CpuBackend::name() const {
  return "cpu (" + table_->isa + ", " + std::to_string(pool_.size()) + " threads)";
}

std::unique_ptr<Buffer> CpuBackend::alloc(size_t bytes) { return std::make_unique<HostBuffer>(bytes); }

Expected<Tensor> CpuBackend::load_weight(const gguf::TensorInfo& info) {
  const auto rb = quant::row_bytes(info.type, info.ne[0]);
  if (!rb) {
    return Status::error("cpu backend: tensor '" + info.name + "': row of " + std::to_string(info.ne[0]) +
                         " elements is not a whole number of " + std::string(quant::type_name(info.type)) + " blocks");
  }
  if (info.data == nullptr) return Status::error("cpu backend: tensor '" + info.name + "' has no data");
  if (info.ne[3] != 1) return Status::error("cpu backend: tensor '" + info.name + "' has 4 dimensions");
  Tensor t;
  t.data = const_cast<uint8_t*>(info.data);  // weights are read-only; ops never write them
  t.type = info.type;
  t.ne0 = info.ne[0];
  t.ne1 = info.ne[1];
  t.ne2 = info.ne[2];
  t.nb1 = *rb;
  t.nb2 = *rb * static_cast<size_t>(info.ne[1]);
  return t;
}

void CpuBackend::to_device(Tensor dst, const void* src, size_t bytes) { std::memcpy(dst.data, src, bytes); }
void CpuBackend::to_host(void* dst, Tensor src, size_t bytes) { std::memcpy(dst, src.data, bytes); }

std::unique_ptr<DeviceBatch> CpuBackend::prepare_batch(Batch batch) {
  return std::make_unique<DeviceBatch>(std::move(batch));
}

void CpuBackend::embed(Tensor out, Tensor table, const DeviceBatch& batch) {
  const auto& tokens = batch.host().tokens;
  RF_CHECK(out.type == quant::Type::F32 && out.ne0 == table.ne0 && out.ne1 == batch.n_tokens());
  pool_.parallel_for(batch.n_tokens(), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const auto* src = static_cast<const uint8_t*>(table.data) + static_cast<size_t>(tokens[i]) * table.nb1;
      const Status s = quant::dequantize(table.type, src, row_f32(out, i), table.ne0);
      RF_CHECK_MSG(s.ok(), s.message());
    }
  });
}

void CpuBackend::get_rows(Tensor out, Tensor x, const DeviceBatch& batch) {
  const auto& rows = batch.host().output_rows;
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == batch.n_outputs() && out.type == x.type);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(row_f32(out, static_cast<int64_t>(i)), row_f32(x, rows[i]), static_cast<size_t>(x.ne0) * sizeof(float));
  }
}

size_t CpuBackend::convert_activations(Tensor x, quant::Type wt) {
  RF_CHECK(x.type == quant::Type::F32);
  const TypeKernels& k = table_->for_weight(wt);
  const ActKernels& a = table_->for_act(k.act_type);
  RF_CHECK_MSG(a.quantize != nullptr, "matmul: no kernel for weight type " + std::string(quant::type_name(wt)));
  const auto rb = quant::row_bytes(k.act_type, x.ne0);
  RF_CHECK_MSG(rb.has_value(), "matmul: row of " + std::to_string(x.ne0) + " does not fit the activation blocks");
  act_.resize(*rb * static_cast<size_t>(x.ne1));
  const size_t row_bytes = *rb;
  pool_.parallel_for(x.ne1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) a.quantize(row_f32(x, r), act_.data() + r * row_bytes, x.ne0);
  });
  if (k.dot == nullptr) {  // fallback path works on the activations rounded back to F32
    act_f32_.resize(static_cast<size_t>(x.ne0 * x.ne1));
    for (int64_t r = 0; r < x.ne1; ++r) a.dequantize(act_.data() + r * row_bytes, act_f32_.data() + r * x.ne0, x.ne0);
  }
  return row_bytes;
}

void CpuBackend::dot_rows(Tensor out, Tensor w, size_t act_row_bytes, int64_t n_pairs, const int32_t* expert_of_pair,
                          const int64_t* act_of_pair) {
  const TypeKernels& k = table_->for_weight(w.type);
  const int64_t n_in = w.ne0;
  const int64_t n_out = w.ne1;
  pool_.parallel_for(
      n_out,
      [&](int64_t rb, int64_t re, int thread) {
        std::vector<float>& wrow = scratch_[static_cast<size_t>(thread)];
        if (k.dot == nullptr) wrow.resize(static_cast<size_t>(n_in));
        if (k.dot_rows != nullptr && k.dot_rows_blocks && expert_of_pair == nullptr && act_of_pair == nullptr) {
          // Multi-row kernel that does its own cache tiling: the whole row range at once.
          k.dot_rows(n_in, static_cast<const uint8_t*>(w.data) + rb * w.nb1, w.nb1, re - rb, act_.data(), act_row_bytes,
                     n_pairs, row_f32(out, 0) + rb, out.nb1 / sizeof(float));
          return;
        }
        if (k.dot_rows != nullptr && expert_of_pair == nullptr && act_of_pair == nullptr) {
          // Multi-row kernel: tiles of kRowTile weight rows (L1) x kActTile activation rows (L2); inside, each
          // weight block is decoded once for several activation rows.
          constexpr int64_t kRowTile = 16, kActTile = 64;
          const size_t os = out.nb1 / sizeof(float);
          for (int64_t r0 = rb; r0 < re; r0 += kRowTile) {
            const int64_t nr = std::min(re, r0 + kRowTile) - r0;
            for (int64_t p0 = 0; p0 < n_pairs; p0 += kActTile) {
              k.dot_rows(n_in, static_cast<const uint8_t*>(w.data) + r0 * w.nb1, w.nb1, nr,
                         act_.data() + p0 * act_row_bytes, act_row_bytes, std::min(kActTile, n_pairs - p0),
                         row_f32(out, p0) + r0, os);
            }
          }
          return;
        }
        if (k.dot != nullptr && expert_of_pair == nullptr) {
          // Fused dots, one weight matrix: tiles of kRowTile weight rows (kept in L1/L2) against each activation
          // row in turn, so an activation row is read once per tile instead of once per weight row.
          constexpr int64_t kRowTile = 16;
          for (int64_t r0 = rb; r0 < re; r0 += kRowTile) {
            const int64_t r1 = std::min(re, r0 + kRowTile);
            for (int64_t p = 0; p < n_pairs; ++p) {
              const uint8_t* act = act_.data() + (act_of_pair ? act_of_pair[p] : p) * act_row_bytes;
              float* o = row_f32(out, p);
              for (int64_t r = r0; r < r1; ++r)
                o[r] = k.dot(n_in, static_cast<const uint8_t*>(w.data) + r * w.nb1, act);
            }
          }
          return;
        }
        for (int64_t r = rb; r < re; ++r) {
          int32_t loaded_expert = -1;
          for (int64_t p = 0; p < n_pairs; ++p) {
            const int32_t e = expert_of_pair ? expert_of_pair[p] : 0;
            const auto* wr = static_cast<const uint8_t*>(w.data) + static_cast<size_t>(e) * w.nb2 + r * w.nb1;
            const int64_t a = act_of_pair ? act_of_pair[p] : p;
            float v;
            if (k.dot != nullptr) {
              v = k.dot(n_in, wr, act_.data() + a * act_row_bytes);
            } else {
              if (e != loaded_expert) {
                const Status s = quant::dequantize(w.type, wr, wrow.data(), n_in);
                RF_CHECK_MSG(s.ok(), s.message());
                loaded_expert = e;
              }
              v = table_->dot_f32(n_in, wrow.data(), act_f32_.data() + a * n_in);
            }
            row_f32(out, p)[r] = v;
          }
        }
      },
      4);
}

void CpuBackend::matmul(Tensor out, Tensor x, Tensor w) {
  RF_CHECK_MSG(x.ne0 == w.ne0 && out.ne0 == w.ne1 && out.ne1 == x.ne1 && out.type == quant::Type::F32,
               "matmul: shapes x [" + std::to_string(x.ne0) + ", " + std::to_string(x.ne1) + "] w [" +
                   std::to_string(w.ne0) + ", " + std::to_string(w.ne1) + "] out [" + std::to_string(out.ne0) + ", " +
                   std::to_string(out.ne1) + "]");
  const size_t arb = convert_activations(x, w.type);
  dot_rows(out, w, arb, x.ne1, nullptr, nullptr);
}

void CpuBackend::moe_matmul(Tensor out, Tensor x, Tensor w, Tensor ids) {
  const int64_t n_used = ids.ne0;
  const int64_t n = ids.ne1;
  RF_CHECK(ids.type == quant::Type::I32 && out.ne1 == n_used * n && out.ne0 == w.ne1 && x.ne0 == w.ne0);
  RF_CHECK(x.ne1 == n || x.ne1 == n_used * n);
  const size_t arb = convert_activations(x, w.type);
  std::vector<int32_t> experts(static_cast<size_t>(n_used * n));
  std::vector<int64_t> act_rows(static_cast<size_t>(n_used * n));
  for (int64_t t = 0; t < n; ++t) {
    const auto* id_row = reinterpret_cast<const int32_t*>(static_cast<const uint8_t*>(ids.data) + t * ids.nb1);
    for (int64_t j = 0; j < n_used; ++j) {
      RF_CHECK(id_row[j] >= 0 && id_row[j] < w.ne2);
      experts[static_cast<size_t>(t * n_used + j)] = id_row[j];
      act_rows[static_cast<size_t>(t * n_used + j)] = x.ne1 == n ? t : t * n_used + j;
    }
  }
  dot_rows(out, w, arb, n_used * n, experts.data(), act_rows.data());
}

}  // namespace rf::backend::cpu
