#include "model/golden_trace.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "kv/kv_cache.h"

namespace rf::test {
namespace {

void compare(Trace* t, const float* row, const std::vector<float>& golden) {
  const int n = static_cast<int>(golden.size());
  t->nrmse.push_back(nrmse(row, golden));
  t->argmax_equal.push_back(argmax(row, n) == argmax(golden.data(), n));
  if (!t->argmax_equal.back()) t->mismatched_rows[t->nrmse.size() - 1].assign(row, row + n);
}

}  // namespace

std::string Trace::label(size_t row) const {
  return row < n_prompt ? "prefill position " + std::to_string(row) : "decode step " + std::to_string(row - n_prompt);
}

double Trace::worst_prefill() const {
  return n_prompt == 0 ? 0.0 : *std::max_element(nrmse.begin(), nrmse.begin() + static_cast<ptrdiff_t>(n_prompt));
}

double Trace::worst_decode() const {
  return nrmse.size() == n_prompt ? 0.0
                                  : *std::max_element(nrmse.begin() + static_cast<ptrdiff_t>(n_prompt), nrmse.end());
}

int Trace::argmax_mismatches() const {
  return static_cast<int>(std::count(argmax_equal.begin(), argmax_equal.end(), false));
}

size_t Trace::first_above(double threshold) const {
  for (size_t i = 0; i < nrmse.size(); ++i) {
    if (nrmse[i] > threshold || !argmax_equal[i]) return i;
  }
  return nrmse.size();
}

Trace run_trace(model::Model& model, const Golden& g, size_t max_rows) {
  Trace t;
  t.n_prompt = g.tokens.size();
  SequenceFeeder f(model);
  const auto logits = f.feed(g.tokens);
  EXPECT_EQ(logits.size(), g.tokens.size() * static_cast<size_t>(g.n_vocab));
  if (logits.size() != g.tokens.size() * static_cast<size_t>(g.n_vocab)) return t;
  for (size_t p = 0; p < g.tokens.size(); ++p) compare(&t, logits.data() + p * static_cast<size_t>(g.n_vocab), g.logits[p]);
  for (size_t i = 0; i < g.greedy.size() && t.nrmse.size() < max_rows; ++i) {
    const auto step = f.feed({g.greedy[i]});
    if (step.size() != static_cast<size_t>(g.n_vocab)) return t;
    compare(&t, step.data(), g.greedy_logits[i]);
  }
  return t;
}

std::vector<int> greedy_continuation(model::Model& model, const std::vector<int>& prompt, size_t n) {
  SequenceFeeder f(model);
  const auto logits = f.feed(prompt);
  const int nv = model.hparams().n_vocab;
  std::vector<int> out;
  if (logits.size() != prompt.size() * static_cast<size_t>(nv)) return out;
  int next = argmax(logits.data() + (prompt.size() - 1) * static_cast<size_t>(nv), nv);
  while (out.size() < n) {
    out.push_back(next);
    const auto step = f.feed({next});
    if (step.size() != static_cast<size_t>(nv)) break;
    next = argmax(step.data(), nv);
  }
  return out;
}

size_t TieExplanation::first_unexplained(double threshold) const {
  for (size_t r = 0; r < trace.nrmse.size(); ++r) {
    const bool event = trace.nrmse[r] > threshold || !trace.argmax_equal[r];
    if (event && std::count(isolated.begin(), isolated.end(), r) == 0) return r;
  }
  return trace.nrmse.size();
}

TieExplanation explain_by_rounding_ties(model::Model& model, TieBackend& ties, const Golden& golden,
                                        double event_threshold, double max_rel_change, int max_ties,
                                        size_t max_candidates_prefill, size_t max_candidates_decode) {
  TieExplanation ex;
  ties.set_nudges({});
  ties.record(0.0, -1);
  ex.trace = run_trace(model, golden);
  while (true) {
    const size_t bad = ex.first_unexplained(event_threshold);
    if (bad == ex.trace.nrmse.size()) {
      ex.explained = true;
      break;
    }
    if (static_cast<int>(ex.ties.size()) >= max_ties) break;
    const int fwd = ex.trace.forward_of(bad);
    ties.set_nudges(ex.ties);
    ties.record(max_rel_change, fwd);
    (void)run_trace(model, golden, bad + 1);
    ties.record(0.0, -1);
    std::vector<RoundingTie> candidates;
    for (const RoundingTie& c : ties.candidates()) {
      // A tie in prompt row r can only change rows >= r of the prefill.
      if (c.forward == fwd && (fwd > 0 || c.row <= static_cast<int64_t>(bad))) candidates.push_back(c);
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const RoundingTie& a, const RoundingTie& b) { return a.rel_change < b.rel_change; });
    const size_t max_candidates = fwd == 0 ? max_candidates_prefill : max_candidates_decode;
    if (candidates.size() > max_candidates) candidates.resize(max_candidates);
    // Flip the tie that best brings the bad row back (two ties can meet in one forward pass: each flip must at
    // least halve the row's error; the search ends when the row is back under the threshold).
    const double before = ex.trace.nrmse[bad];
    double best_err = before / 2;
    bool found = false;
    RoundingTie best;
    for (const RoundingTie& c : candidates) {
      std::vector<RoundingTie> trial = ex.ties;
      trial.push_back(c);
      ties.set_nudges(trial);
      const Trace t = run_trace(model, golden, bad + 1);
      const double err = t.first_above(event_threshold) > bad ? 0.0 : t.nrmse[bad];
      if (err < best_err) {
        best_err = err;
        best = c;
        found = true;
        if (err == 0.0) break;
      }
    }
    if (found) {
      ex.ties.push_back(best);
    } else if (ex.trace.argmax_equal[bad] &&
               (bad + 1 == ex.trace.nrmse.size() ||
                (ex.trace.nrmse[bad + 1] <= event_threshold && ex.trace.argmax_equal[bad + 1]))) {
      ex.isolated.push_back(bad);  // stays in its row (or is the last row, which nothing follows): look past it
      continue;
    } else {
      break;
    }
    ties.set_nudges(ex.ties);
    ex.trace = run_trace(model, golden);
  }
  ties.set_nudges({});
  return ex;
}

}  // namespace rf::test
