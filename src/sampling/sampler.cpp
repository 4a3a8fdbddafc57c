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

int32_t Sampler::sample(std::span<const float> logits_in, std::span<const int32_t> history) {
  std::vector<float> logits(logits_in.begin(), logits_in.end());
  apply_penalties(logits, history, p_);
  if (p_.temperature <= 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  std::vector<Candidate> c(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) c[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  top_k(c, p_.top_k);
  softmax(c, p_.temperature);
  top_p(c, p_.top_p);
  min_p(c, p_.min_p);
  double total = 0.0;
  for (const auto& x : c) total += x.p;
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double cum = 0.0;
  for (const auto& x : c) {
    cum += x.p;
    if (r < cum) return x.id;
  }
  return c.back().id;
}

}  // namespace rf::sampling
