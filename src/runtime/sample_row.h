// A sequence's Sampler as one row of on-backend sampling (backend::Backend::sample): its settings, its penalty
// window over the tokens so far, and the step's draw taken from its RNG now (the host fallback samples with the
// same draw: Sampler::sample_drawn). The Sampler keeps owning the settings and the RNG.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "sampling/sampler.h"

namespace rf::runtime {

// The device sampling arguments of one logits row: parameters p, the penalty window and the draw u.
inline backend::SampleRow sample_row_args(const sampling::SamplerParams& p, int32_t row,
                                          std::span<const int32_t> window, double u) {
  backend::SampleRow r;
  r.row = row;
  r.temperature = p.temperature;
  r.top_k = p.top_k;
  r.top_p = p.top_p;
  r.min_p = p.min_p;
  r.repeat_penalty = p.repeat_penalty;
  r.presence_penalty = p.presence_penalty;
  r.frequency_penalty = p.frequency_penalty;
  r.penalty_window = window;
  r.u = u;
  return r;
}

// `history` must stay unchanged until the row is sampled (the penalty window points into it). Takes the sampler's
// next draw (when it draws at all).
inline backend::SampleRow sample_row(sampling::Sampler& s, std::span<const int32_t> history, int32_t row) {
  const std::span<const int32_t> window = s.penalty_window(history);
  return sample_row_args(s.params(), row, window, s.draws() ? s.next_uniform() : 0.0);
}

}  // namespace rf::runtime
