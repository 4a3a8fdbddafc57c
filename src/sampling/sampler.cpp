#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Whether the penalties change any logit (else sample() reads the caller's logits without copying them).
bool penalties_active(const SamplerParams& p, std::span<const int32_t> history) {
  if (p.repeat_last_n == 0 || history.empty()) return false;
  return p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

// Buckets of the full-vocabulary path: a candidate's bucket is floor((max - logit) / temperature * kPerUnit), the
// last one also holding everything further down. The bucket index never decreases along the chain's order, so the
// running mass over buckets finds the bucket where a cut falls, and only that bucket is sorted.
constexpr int32_t kBuckets = 512;
constexpr float kBucketsPerUnit = 16.0f;
constexpr size_t kLanes = 4;

double lanes_total(const double (&acc)[kLanes]) { return (acc[0] + acc[1]) + (acc[2] + acc[3]); }

// Adds the per-lane bucket masses (kLanes arrays of kBuckets, one after the other) into the first array.
void fold_lanes(std::vector<double>& mass) {
  for (size_t l = 1; l < kLanes; ++l) {
    for (size_t b = 0; b < kBuckets; ++b) mass[b] += mass[l * kBuckets + b];
  }
}

// The index of the first largest value: a maximum over independent lanes (no loop-carried index), then a scan for
// its first occurrence. Same answer as std::max_element.
size_t first_max(std::span<const float> v) {
  constexpr size_t kMaxLanes = 8;
  float lane[kMaxLanes];
  for (size_t j = 0; j < kMaxLanes; ++j) lane[j] = v[0];
  size_t i = 0;
  for (; i + kMaxLanes <= v.size(); i += kMaxLanes) {
    for (size_t j = 0; j < kMaxLanes; ++j) lane[j] = v[i + j] > lane[j] ? v[i + j] : lane[j];
  }
  float mx = lane[0];
  for (size_t j = 1; j < kMaxLanes; ++j) mx = lane[j] > mx ? lane[j] : mx;
  for (; i < v.size(); ++i) mx = v[i] > mx ? v[i] : mx;
  size_t k = 0;
  while (k + 1 < v.size() && !(v[k] == mx)) ++k;  // mx is one of the values (unless NaNs are about)
  return k;
}

}  // namespace

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) return 0;
  return sample_drawn(logits, history, draws() ? next_uniform() : 0.0);
}

std::span<const int32_t> Sampler::penalty_window(std::span<const int32_t> history) const {
  if (!penalties_active(p_, history)) return {};
  const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), static_cast<size_t>(p_.repeat_last_n));
  return history.last(n);
}

int32_t Sampler::sample_drawn(std::span<const float> logits_in, std::span<const int32_t> history, double u) {
  std::span<const float> logits = logits_in;
  if (penalties_active(p_, history)) {
    logits_.assign(logits_in.begin(), logits_in.end());
    apply_penalties(logits_, history, p_);
    logits = logits_;
  }
  if (logits.empty()) return 0;
  if (p_.temperature <= 0.0f) {
    return static_cast<int32_t>(first_max(logits));
  }
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < logits.size()) return sample_top_k(logits, u);
  return sample_full(logits, u);
}

// The same chain as top_k -> softmax -> top_p -> min_p -> draw over the sorted candidates, without sorting: the
// kept sets are found by selection (nth_element, best_prefix), and the draw by a mass-guided selection of the
// first sorted candidate whose running mass passes r.
int32_t Sampler::sample_top_k(std::span<const float> logits, double u) {
  std::vector<Candidate>& c = cand_;
  const auto n_k = static_cast<size_t>(p_.top_k);
  select_top_k(logits, n_k, c);
  size_t n = n_k;
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
  const double r = u * total;  // uniform_real_distribution<double>(0, total) with the draw u
  const size_t m = best_prefix(c, 0, n, r, /*strict=*/true);
  // The draw is the last candidate (in the chain's order) of that prefix: its worst.
  const size_t end = std::max<size_t>(m, 1);
  size_t pick = 0;
  for (size_t i = 1; i < end; ++i) {
    if (better(c[pick], c[i])) pick = i;
  }
  return c[pick].id;
}

// The k best candidates (in no particular order) into c: tokens are bucketed by distance from the max logit
// (kBucketsPerUnit per logit unit), the bucket holding the k-th best is found from the bucket counts, and only that
// bucket is sorted. The same set as nth_element over the chain's order, without a vocabulary-wide selection.
void Sampler::select_top_k(std::span<const float> logits, size_t k, std::vector<Candidate>& c) {
  const size_t n = logits.size();
  const float mx = logits[first_max(logits)];
  bucket_.resize(n);
  std::vector<int32_t>& count = counts_;
  count.assign(kBuckets, 0);
  for (size_t i = 0; i < n; ++i) {
    const float key = (mx - logits[i]) * kBucketsPerUnit;
    const uint16_t b = key < static_cast<float>(kBuckets - 1) ? static_cast<uint16_t>(key) : kBuckets - 1;
    bucket_[i] = b;
    ++count[b];
  }
  int32_t cut = 0;  // the bucket holding the k-th best
  size_t before = 0;  // candidates in the buckets before it
  while (before + static_cast<size_t>(count[static_cast<size_t>(cut)]) < k) before += count[static_cast<size_t>(cut++)];
  c.clear();
  members_.clear();
  for (size_t i = 0; i < n; ++i) {
    if (bucket_[i] < cut) {
      c.push_back({static_cast<int32_t>(i), logits[i], 0.0f});
    } else if (bucket_[i] == cut) {
      members_.push_back(static_cast<int32_t>(i));
    }
  }
  const auto need = static_cast<std::ptrdiff_t>(k - before);
  std::partial_sort(members_.begin(), members_.begin() + need, members_.end(), [&](int32_t x, int32_t y) {
    const float lx = logits[static_cast<size_t>(x)], ly = logits[static_cast<size_t>(y)];
    return lx > ly || (lx == ly && x < y);
  });
  for (std::ptrdiff_t j = 0; j < need; ++j) {
    const int32_t id = members_[static_cast<size_t>(j)];
    c.push_back({id, logits[static_cast<size_t>(id)], 0.0f});
  }
}

// Without top-k the chain covers the whole vocabulary. Both cuts (top-p, and the draw) are prefixes of the chain's
// order, found through the buckets: one pass for the probabilities and the buckets' masses, then a walk over the
// buckets and a sort of the one bucket where the running mass crosses the target. Expected linear time with small
// constants (no comparison-based selection over the vocabulary, no vocabulary-sized candidate records).
int32_t Sampler::sample_full(std::span<const float> logits, double u) {
  const size_t n = logits.size();
  const size_t best = first_max(logits);  // the chain's first candidate
  const float mx = logits[best];
  const float t = p_.temperature;
  const float scale = kBucketsPerUnit / t;
  prob_.resize(n);
  bucket_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    prob_[i] = std::exp((logits[i] - mx) / t);  // the same expression as softmax() (identical values)
    const float key = (mx - logits[i]) * scale;
    bucket_[i] = key < static_cast<float>(kBuckets - 1) ? static_cast<uint16_t>(key) : kBuckets - 1;
  }
  // Sums over kLanes interleaved lanes: independent chains instead of one add latency per token.
  double acc[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) acc[j] += prob_[i + j];
  }
  for (; i < n; ++i) acc[0] += prob_[i];
  const double sum = lanes_total(acc);
  // Bucket masses per lane too (neighbouring tokens often share a bucket: one array would chain through memory).
  mass_.assign(kBuckets * kLanes, 0.0);
  double tot[kLanes] = {};
  for (i = 0; i < n; ++i) {
    const float q = static_cast<float>(prob_[i] / sum);
    prob_[i] = q;
    mass_[(i % kLanes) * kBuckets + bucket_[i]] += q;
    tot[i % kLanes] += q;
  }
  double total = lanes_total(tot);
  fold_lanes(mass_);
  // The kept set is a prefix of the chain's order: everything up to and including `last` (index; n: all).
  size_t last = n;
  if (p_.top_p < 1.0f) last = find_crossing(logits, p_.top_p, /*strict=*/false, n);
  const float threshold = p_.min_p > 0.0f ? p_.min_p * prob_[best] : 0.0f;
  auto kept = [&](size_t k) {
    if (k == best) return true;  // the best stays whatever min_p is
    if (last < n && (logits[k] < logits[last] || (logits[k] == logits[last] && k > last))) return false;
    return prob_[k] >= threshold;
  };
  const bool filtered = last < n || p_.min_p > 0.0f;
  if (filtered) {
    mass_.assign(kBuckets * kLanes, 0.0);
    std::fill(std::begin(tot), std::end(tot), 0.0);
    for (i = 0; i < n; ++i) {
      if (!kept(i)) {
        prob_[i] = -1.0f;  // out of the draw (and no longer kept() itself)
        continue;
      }
      mass_[(i % kLanes) * kBuckets + bucket_[i]] += prob_[i];
      tot[i % kLanes] += prob_[i];
    }
    total = lanes_total(tot);
    fold_lanes(mass_);
  }
  const double r = u * total;  // uniform_real_distribution<double>(0, total) with the draw u
  const size_t pick = find_crossing(logits, r, /*strict=*/true, n);
  if (pick < n) return static_cast<int32_t>(pick);
  // Rounding left r at or beyond the running mass: the chain's last kept candidate.
  size_t worst = best;
  for (i = 0; i < n; ++i) {
    if (kept(i) && better({static_cast<int32_t>(worst), logits[worst], 0.0f},
                                  {static_cast<int32_t>(i), logits[i], 0.0f})) {
      worst = i;
    }
  }
  return static_cast<int32_t>(worst);
}

// The first candidate (in the chain's order) at which the running mass of prob_ reaches target (> when strict, >=
// otherwise), or n when none does. Uses mass_ (per bucket) to skip to the bucket where that happens.
size_t Sampler::find_crossing(std::span<const float> logits, double target, bool strict, size_t n) {
  const auto reaches = [strict, target](double v) { return strict ? v > target : v >= target; };
  double cum = 0.0;
  for (int32_t b = 0; b < kBuckets; ++b) {
    if (!reaches(cum + mass_[static_cast<size_t>(b)])) {
      cum += mass_[static_cast<size_t>(b)];
      continue;
    }
    members_.clear();
    for (size_t i = 0; i < n; ++i) {
      if (bucket_[i] == b) members_.push_back(static_cast<int32_t>(i));
    }
    std::sort(members_.begin(), members_.end(), [&](int32_t x, int32_t y) {
      const float lx = logits[static_cast<size_t>(x)], ly = logits[static_cast<size_t>(y)];
      return lx > ly || (lx == ly && x < y);
    });
    for (int32_t id : members_) {
      cum += std::max(prob_[static_cast<size_t>(id)], 0.0f);  // excluded candidates carry -1
      if (reaches(cum)) return static_cast<size_t>(id);
    }
  }
  return n;
}

}  // namespace rf::sampling
