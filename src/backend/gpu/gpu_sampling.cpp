// GpuBackend::sample: the sampler chain on the device (sampling.h). One upload of the rows' settings and penalty
// pairs, one launch, one download of the ids; the rows the kernel cannot sample exactly come back as
// kSampleOnHost, and only their logits are downloaded for the host sampler (with the same draw).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/gpu/gpu_backend.h"
#include "backend/gpu/sampling.h"
#include "core/check.h"

namespace rf::gpu {
namespace {

size_t align16(size_t bytes) { return (bytes + 15) & ~size_t{15}; }

// ROCMFORGE_GPU_SAMPLING=0: the host path (download the logits, sample on the CPU), for measurements.
bool device_sampling_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("ROCMFORGE_GPU_SAMPLING");
    return v == nullptr || v[0] != '0';
  }();
  return on;
}

}  // namespace

Status GpuBackend::sample(backend::Tensor logits, std::span<const backend::SampleRow> rows,
                          const backend::HostSampleFn& host, int32_t* ids) {
  if (!device_sampling_enabled()) return Backend::sample(logits, rows, host, ids);
  finish_capture();
  if (failed() || rows.empty()) return take_error();
  RF_CHECK(logits.type == quant::Type::F32 && logits.nb1 % sizeof(float) == 0);
  const int64_t nv = logits.ne0;
  const size_t n = rows.size();

  // The rows' arguments and their penalty pairs: distinct in-vocabulary tokens of the window with their counts.
  std::vector<SampleRowArgs> args(n);
  std::vector<int32_t> pen_ids, pen_counts;
  for (size_t i = 0; i < n; ++i) {
    const backend::SampleRow& r = rows[i];
    RF_CHECK(r.row >= 0 && r.row < logits.ne1);
    SampleRowArgs& a = args[i];
    a.u = r.u;
    a.row = r.row;
    a.top_k = r.top_k;
    a.temperature = r.temperature;
    a.top_p = r.top_p;
    a.min_p = r.min_p;
    a.repeat_penalty = r.repeat_penalty;
    a.presence_penalty = r.presence_penalty;
    a.frequency_penalty = r.frequency_penalty;
    a.pen_first = static_cast<int32_t>(pen_ids.size());
    sample_window_.assign(r.penalty_window.begin(), r.penalty_window.end());
    std::sort(sample_window_.begin(), sample_window_.end());
    for (size_t j = 0; j < sample_window_.size();) {
      size_t e = j;
      while (e < sample_window_.size() && sample_window_[e] == sample_window_[j]) ++e;
      if (sample_window_[j] >= 0 && sample_window_[j] < nv) {
        pen_ids.push_back(sample_window_[j]);
        pen_counts.push_back(static_cast<int32_t>(e - j));
      }
      j = e;
    }
    a.pen_count = static_cast<int32_t>(pen_ids.size()) - a.pen_first;
  }

  // One layout for the device buffer and its pinned staging copy: args | ids | penalty ids | penalty counts.
  const size_t args_bytes = align16(n * sizeof(SampleRowArgs));
  const size_t ids_bytes = align16(n * sizeof(int32_t));
  const size_t pen_bytes = align16(pen_ids.size() * sizeof(int32_t));
  const size_t total = args_bytes + ids_bytes + 2 * pen_bytes;
  if (sample_dev_ == nullptr || sample_dev_->size() < total) {
    sample_dev_.reset();
    sample_dev_ = alloc(2 * total);
    if (sample_dev_ == nullptr) return take_error();
  }
  if (sample_host_bytes_ < total) {
    sample_host_.reset();
    sample_host_bytes_ = 0;
    void* p = nullptr;
    if (!check_call(gpuMallocHost(&p, 2 * total), "pinned sampling staging allocation")) return take_error();
    sample_host_.reset(p);
    sample_host_bytes_ = 2 * total;
  }
  const bool penalised = !pen_ids.empty();
  const size_t scratch_bytes = penalised ? n * static_cast<size_t>(nv) * sizeof(float) : 0;
  if (penalised && (sample_scratch_ == nullptr || sample_scratch_->size() < scratch_bytes)) {
    sample_scratch_.reset();
    sample_scratch_ = alloc(scratch_bytes);
    if (sample_scratch_ == nullptr) return take_error();
  }
  auto* h = static_cast<unsigned char*>(sample_host_.get());
  auto* d = static_cast<unsigned char*>(sample_dev_->data());
  std::memcpy(h, args.data(), n * sizeof(SampleRowArgs));
  if (penalised) {
    std::memcpy(h + args_bytes + ids_bytes, pen_ids.data(), pen_ids.size() * sizeof(int32_t));
    std::memcpy(h + args_bytes + ids_bytes + pen_bytes, pen_counts.data(), pen_counts.size() * sizeof(int32_t));
  }
  if (!check_call(gpuMemcpyAsync(d, h, total, gpuMemcpyHostToDevice, stream_), "sampling upload")) {
    return take_error();
  }
  const RowsF32 lg{static_cast<float*>(logits.data), nv, logits.ne1, static_cast<int64_t>(logits.nb1 / sizeof(float))};
  auto* dev_ids = reinterpret_cast<int32_t*>(d + args_bytes);
  check(sample_rows(lg, reinterpret_cast<const SampleRowArgs*>(d), static_cast<int>(n),
                    reinterpret_cast<const int32_t*>(d + args_bytes + ids_bytes),
                    reinterpret_cast<const int32_t*>(d + args_bytes + ids_bytes + pen_bytes),
                    penalised ? static_cast<float*>(sample_scratch_->data()) : nullptr, dev_ids, stream_));
  if (failed()) return take_error();
  if (check_call(gpuMemcpyAsync(h + args_bytes, dev_ids, n * sizeof(int32_t), gpuMemcpyDeviceToHost, stream_),
                 "sampled ids download")) {
    check_call(gpuStreamSynchronize(stream_), "sampling (a kernel before it may have failed)");
  }
  if (failed()) return take_error();
  std::memcpy(ids, h + args_bytes, n * sizeof(int32_t));

  // The rows left to the host: their logits only.
  std::vector<size_t> which;
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] == kSampleOnHost) which.push_back(i);
  }
  if (which.empty()) return ok_status();
  const auto row_floats = static_cast<size_t>(nv);
  std::vector<float> host_logits(which.size() * row_floats);
  for (size_t j = 0; j < which.size(); ++j) {
    to_host(host_logits.data() + j * row_floats, logits.rows(rows[which[j]].row, 1), row_floats * sizeof(float));
  }
  if (failed()) return take_error();
  host(which, host_logits.data(), ids);
  return ok_status();
}

}  // namespace rf::gpu
