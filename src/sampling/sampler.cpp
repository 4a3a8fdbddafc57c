#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace rf::sampling {

void Sampler::apply_penalties(std::vector<float>& logits, std::span<const int32_t> history, const SamplerParams& p) {
  if (p.repeat_last_n == 0) return;
  if (p.repeat_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f) return;
  const size_t n = p.repeat_last_n < 0 ? history.size() : std::min(history.size(), static_cast<size_t>(p.repeat_last_n));
  std::unordered_map<int32_t, int> counts;
  for (size_t i = history.size() - n; i < history.size(); ++i) ++counts[history[i]];
  for (const auto& [id, count] : counts) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
    float& l = logits[static_cast<size_t>(id)];
    l = l > 0.0f ? l / p.repeat_penalty : l * p.repeat_penalty;
    l -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
  }
}

void Sampler::top_k(std::vector<Candidate>& c, int k) {
  auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
  if (k > 0 && static_cast<size_t>(k) < c.size()) {
    std::partial_sort(c.begin(), c.begin() + k, c.end(), by_logit);
    c.resize(static_cast<size_t>(k));
  } else {
    std::sort(c.begin(), c.end(), by_logit);
  }
}

void Sampler::softmax(std::vector<Candidate>& c, float temperature) {
  if (c.empty()) return;
  const float mx = c.front().logit;
  double sum = 0.0;
  for (auto& x : c) sum += (x.p = std::exp((x.logit - mx) / temperature));
  for (auto& x : c) x.p = static_cast<float>(x.p / sum);
}

void Sampler::top_p(std::vector<Candidate>& c, float p) {
  if (p >= 1.0f) return;
  double cum = 0.0;
  for (size_t i = 0; i < c.size(); ++i) {
    cum += c[i].p;
    if (cum >= p) {
      c.resize(i + 1);
      return;
    }
  }
}

void Sampler::min_p(std::vector<Candidate>& c, float p) {
  if (p <= 0.0f || c.empty()) return;
  const float threshold = p * c.front().p;
  size_t keep = 1;
  while (keep < c.size() && c[keep].p >= threshold) ++keep;
  c.resize(keep);
}

namespace {

using Candidate = Sampler::Candidate;

// The chain's candidate order: higher logit first, then lower id.
bool better(const Candidate& a, const Candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); }

// Reorders c[b, e) so that [b, m) holds (in no particular order) the fewest best candidates whose p sum reaches
// target (sum > target when strict, >= otherwise), and returns m; e when even the whole range does not reach it.
// Quickselect over the candidate order with running mass: expected linear time, no sort.
size_t best_prefix(std::vector<Candidate>& c, size_t b, size_t e, double target, bool strict) {
  const auto reaches = [strict](double sum, double t) { return strict ? sum > t : sum >= t; };
  while (b < e) {
    // Median of three as the pivot, moved to the end.
    const size_t m = b + (e - b) / 2, l = e - 1;
    size_t piv = m;
    if (better(c[b], c[m]) != better(c[b], c[l])) {
      piv = b;
    } else if (better(c[l], c[m]) != better(c[l], c[b])) {
      piv = l;
    }
    std::swap(c[piv], c[l]);
    size_t i = b;
    double sum = 0.0;
    for (size_t j = b; j < l; ++j) {
      if (better(c[j], c[l])) {
        std::swap(c[i], c[j]);
        sum += c[i].p;
        ++i;
      }
    }
    std::swap(c[i], c[l]);  // the pivot at i: [b, i) better, (i, e) worse
    if (reaches(sum, target)) {
      e = i;
      continue;
    }
    const double with = sum + c[i].p;
    if (reaches(with, target)) return i + 1;
    target -= with;
    b = i + 1;
  }
  return b;
}

// Moves the best candidate of c[0, n) to the front.
void best_to_front(std::vector<Candidate>& c, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (better(c[i], c[best])) best = i;
  }
  std::swap(c[0], c[best]);
}

}  // namespace

// The same chain as top_k -> softmax -> top_p -> min_p -> draw over the sorted candidates, without sorting: the
// kept sets are found by selection (nth_element, best_prefix), and the draw by a mass-guided selection of the
// first sorted candidate whose running mass passes r. Linear time instead of a full sort of the vocabulary (a
// 32k sort per token and sequence was most of a server step).
int32_t Sampler::sample(std::span<const float> logits_in, std::span<const int32_t> history) {
  logits_.assign(logits_in.begin(), logits_in.end());
  apply_penalties(logits_, history, p_);
  if (p_.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits_.begin(), logits_.end()) - logits_.begin());
  }
  std::vector<Candidate>& c = cand_;
  c.resize(logits_.size());
  for (size_t i = 0; i < logits_.size(); ++i) c[i] = {static_cast<int32_t>(i), logits_[i], 0.0f};
  size_t n = c.size();
  if (n == 0) return 0;
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
    n = static_cast<size_t>(p_.top_k);
    std::nth_element(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(n - 1), c.end(), better);
  }
  float mx = c[0].logit;
  for (size_t i = 1; i < n; ++i) mx = std::max(mx, c[i].logit);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += (c[i].p = std::exp((c[i].logit - mx) / p_.temperature));
  for (size_t i = 0; i < n; ++i) c[i].p = static_cast<float>(c[i].p / sum);
  if (p_.top_p < 1.0f) {
    n = best_prefix(c, 0, n, p_.top_p, /*strict=*/false);
    if (n == 0) {
      best_to_front(c, c.size());
      n = 1;
    }
  }
  if (p_.min_p > 0.0f) {
    float p_max = 0.0f;
    for (size_t i = 0; i < n; ++i) p_max = std::max(p_max, c[i].p);
    const float threshold = p_.min_p * p_max;
    best_to_front(c, n);
    size_t kept = 1;  // the best stays whatever min_p is
    for (size_t i = 1; i < n; ++i) {
      if (c[i].p >= threshold) std::swap(c[kept++], c[i]);
    }
    n = kept;
  }
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) total += c[i].p;
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  const size_t m = best_prefix(c, 0, n, r, /*strict=*/true);
  // The draw is the last candidate (in the chain's order) of that prefix: its worst.
  const size_t end = std::max<size_t>(m, 1);
  size_t pick = 0;
  for (size_t i = 1; i < end; ++i) {
    if (better(c[pick], c[i])) pick = i;
  }
  return c[pick].id;
}

}  // namespace rf::sampling
