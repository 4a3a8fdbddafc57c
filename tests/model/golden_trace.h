// Runs a golden prompt through a model (one-batch prefill, then the golden `greedy` tokens teacher-forced one at a
// time through the paged KV cache) and compares every row of logits with the golden ones; explains argmax
// disagreements as resolved 8-bit rounding ties (rounding_ties.h) or fails to.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/golden.h"
#include "model/model.h"
#include "model/rounding_ties.h"

namespace rf::test {

// Rows in order: prompt positions (forward 0), then decode steps (forward 1 + step).
struct Trace {
  std::vector<double> nrmse;
  std::vector<bool> argmax_equal;
  std::map<size_t, std::vector<float>> mismatched_rows;  // our logits of the rows whose argmax differs
  size_t n_prompt = 0;
  int forward_of(size_t row) const { return row < n_prompt ? 0 : static_cast<int>(row - n_prompt) + 1; }
  std::string label(size_t row) const;
  double worst_prefill() const;
  double worst_decode() const;
  int argmax_mismatches() const;
  // First row whose nRMSE exceeds `threshold`, or nrmse.size().
  size_t first_above(double threshold) const;
};

// Stops after the forward pass that completes `max_rows` rows.
Trace run_trace(model::Model& model, const Golden& golden, size_t max_rows = SIZE_MAX);

// Greedy continuation of `prompt` for n tokens (one-batch prefill, then one token per step).
std::vector<int> greedy_continuation(model::Model& model, const std::vector<int>& prompt, size_t n);

struct TieExplanation {
  bool explained = false;       // every row within `event_threshold` or isolated, equal argmax, after the nudges
  std::vector<RoundingTie> ties;  // the rounding ties resolved the other way
  // Rows above `event_threshold` that no tie explains but whose deviation stays in the row: equal argmax and the
  // next row back within `event_threshold` (so nothing it feeds, no K/V entry, differs: a rounding after the last
  // layer's K/V, e.g. inside that layer's attention probabilities, which the search cannot nudge), or the last
  // row with equal argmax (nothing follows it).
  std::vector<size_t> isolated;
  // First row above `threshold` or with a different argmax that is not isolated, or trace.nrmse.size().
  size_t first_unexplained(double threshold) const;
  Trace trace;                  // the trace with those ties flipped
};

// `ties` is the TieBackend the model was loaded through. For the first row above `event_threshold` (or with a
// different argmax), tries the ties of that row's forward pass (needing at most `max_rel_change` relative change,
// smallest first, at most `max_candidates_prefill` for a prefill row, `max_candidates_decode` for a decode step:
// a decode pass has few candidates and each trial is cheap), keeps the flip that best brings that row back (it
// must at least halve its error) and repeats, up to `max_ties` ties.
TieExplanation explain_by_rounding_ties(model::Model& model, TieBackend& ties, const Golden& golden,
                                        double event_threshold, double max_rel_change, int max_ties,
                                        size_t max_candidates_prefill, size_t max_candidates_decode);

}  // namespace rf::test
