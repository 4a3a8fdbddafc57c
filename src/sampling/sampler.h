// The sampler chain: repetition / presence / frequency penalties over the recent tokens, then greedy when the
// temperature is <= 0, else top-k, temperature, softmax, top-p, min-p and a seeded draw (same seed, same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace rf::sampling {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  float repeat_penalty = 1.0f;    // 1: off; > 1 discourages repeats (logit / p if > 0, * p if < 0)
  float presence_penalty = 0.0f;  // subtracted once from tokens that occurred
  float frequency_penalty = 0.0f; // subtracted per occurrence
  int repeat_last_n = 64;         // window for the penalties (0: off, -1: whole history)
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params) : p_(params), rng_(params.seed) {}
  // Picks the next token from logits [n_vocab] given the tokens so far (prompt + generated).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplerParams& params() const { return p_; }

  // On-device sampling (backend::Backend::sample) splits sample() in two: the host takes the draw, the device
  // runs the chain with it. The draws of sample() and next_uniform() are one and the same stream.
  // Whether sample() draws from the RNG (exactly one next_uniform() per call): temperature > 0.
  bool draws() const { return p_.temperature > 0.0f; }
  // The next draw u in [0, 1), advancing the RNG. The chain picks the candidate where the running kept mass first
  // exceeds u * total: what uniform_real_distribution<double>(0, total) draws (libstdc++ scales
  // generate_canonical<double, 53> by total; sampler_test checks the equivalence).
  double next_uniform() { return std::generate_canonical<double, 53>(rng_); }
  // sample() with the draw given (u from next_uniform(); ignored when greedy). The RNG is not touched.
  int32_t sample_drawn(std::span<const float> logits, std::span<const int32_t> history, double u);
  // The tokens the penalties count: the last repeat_last_n of history (all of it for -1); empty when no penalty
  // changes any logit.
  std::span<const int32_t> penalty_window(std::span<const int32_t> history) const;

  // The chain's steps over sorted candidates: the reference that sample() (which never sorts) is tested
  // against. Candidates are (token, logit) pairs.
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  static void apply_penalties(std::vector<float>& logits, std::span<const int32_t> history, const SamplerParams& p);
  static void top_k(std::vector<Candidate>& c, int k);          // sorts by logit, keeps k
  static void softmax(std::vector<Candidate>& c, float temperature);  // sorted input; fills p
  static void top_p(std::vector<Candidate>& c, float p);         // keeps the smallest prefix with mass >= p
  static void min_p(std::vector<Candidate>& c, float p);         // keeps p_i >= p * p_max

 private:
  int32_t sample_top_k(std::span<const float> logits, double u);
  void select_top_k(std::span<const float> logits, size_t k, std::vector<Candidate>& c);
  int32_t sample_full(std::span<const float> logits, double u);
  size_t find_crossing(std::span<const float> logits, double target, bool strict, size_t n);

  SamplerParams p_;
  std::mt19937_64 rng_;
  // Per-call scratch, kept to avoid vocabulary-sized allocations per token.
  std::vector<float> logits_;  // penalised logits (only when a penalty applies)
  std::vector<Candidate> cand_;
  std::vector<float> prob_;        // full path: probability per token (-1: cut by top-p / min-p)
  std::vector<uint16_t> bucket_;   // full path: bucket per token
  std::vector<double> mass_;       // full path: probability mass per bucket
  std::vector<int32_t> members_;   // the tokens of the bucket being sorted
  std::vector<int32_t> counts_;    // top-k: tokens per bucket
};

}  // namespace rf::sampling
