// Host launcher of the on-GPU sampler (sampling.cu): per logits row the chain of sampling::Sampler (penalties,
// greedy or top-k -> temperature -> softmax -> top-p -> min-p -> draw), so that only token ids cross to the host.
// The draw is the host's: u = std::generate_canonical<double, 53>(rng) per row (what the CPU's
// uniform_real_distribution<double>(0, total) scales by total), and the kernel picks the candidate where the running
// kept probability first exceeds u * total, in the CPU's candidate order (logit descending, then id ascending).
// Rows it cannot do exactly (a histogram bucket that must be sorted holds more than kSampleSortCapacity tokens)
// come back as kSampleOnHost: the caller samples those on the host with the same u.
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "backend/gpu/elementwise.h"
#include "core/status.h"

namespace rf::gpu {

// One row's settings (sampling::SamplerParams' meaning). No padding bytes (it is copied as raw bytes).
struct SampleRowArgs {
  double u = 0.0;            // the draw in [0, 1) (unused when greedy)
  int32_t row = 0;           // the logits row
  int32_t top_k = 0;         // <= 0 or >= n_vocab: off
  float temperature = 0.0f;  // <= 0: greedy
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  float repeat_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t pen_first = 0;  // the row's (token, count) pairs: pen_ids / pen_counts [pen_first, pen_first + pen_count)
  int32_t pen_count = 0;  // 0: no penalties (the logits are read as they are)
};
static_assert(sizeof(SampleRowArgs) == 48, "SampleRowArgs has padding bytes");

inline constexpr int32_t kSampleOnHost = -1;
inline constexpr int kSampleSortCapacity = 2048;

// ids[i] = the token of rows[i] (a device array of n_rows SampleRowArgs), or kSampleOnHost. pen_ids / pen_counts:
// distinct in-vocabulary token ids of each row's penalty window with their occurrence counts. scratch: n_rows *
// logits.ne0 floats (the penalised copies; the logits themselves are left untouched).
Status sample_rows(RowsF32 logits, const SampleRowArgs* rows, int n_rows, const int32_t* pen_ids,
                   const int32_t* pen_counts, float* scratch, int32_t* ids, gpuStream_t stream);

}  // namespace rf::gpu
