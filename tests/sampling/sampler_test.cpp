#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace rf::sampling {
namespace {

// The chain written the plain way: sort, cut, draw (the definition sample() must reproduce without sorting).
int32_t reference_sample(const SamplerParams& p, std::span<const float> in, std::span<const int32_t> history,
                         std::mt19937_64& rng) {
  std::vector<float> logits(in.begin(), in.end());
  Sampler::apply_penalties(logits, history, p);
  if (p.temperature <= 0.0f) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<Sampler::Candidate> c(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) c[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  Sampler::top_k(c, p.top_k);
  Sampler::softmax(c, p.temperature);
  Sampler::top_p(c, p.top_p);
  Sampler::min_p(c, p.min_p);
  double total = 0.0;
  for (const auto& x : c) total += x.p;
  const double r = std::uniform_real_distribution<double>(0.0, total)(rng);
  double cum = 0.0;
  for (const auto& x : c) {
    cum += x.p;
    if (r < cum) return x.id;
  }
  return c.back().id;
}

TEST(Sampler, SelectionBasedDrawEqualsTheSortedChain) {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  int cases = 0, draws = 0;
  for (const size_t n_vocab : {1u, 2u, 7u, 100u, 5000u}) {
    for (const float temp : {0.3f, 1.0f, 2.5f}) {
      for (const int top_k : {0, 1, 5, 40}) {
        for (const float top_p : {1.0f, 0.9f, 0.5f, 0.01f}) {
          for (const float min_p : {0.0f, 0.05f, 0.5f}) {
            SamplerParams p;
            p.temperature = temp;
            p.top_k = top_k;
            p.top_p = top_p;
            p.min_p = min_p;
            p.repeat_penalty = 1.1f;
            p.seed = static_cast<uint64_t>(cases) * 7919u + 1u;
            std::vector<float> logits(n_vocab);
            // Every third case has many exact ties (coarse values): the order's id tie-break matters there.
            const bool coarse = cases % 3 == 0;
            for (auto& v : logits) v = coarse ? std::round(normal(gen) * 2.0f) * 0.5f : normal(gen) * 3.0f;
            const std::vector<int32_t> history = {0, static_cast<int32_t>(n_vocab / 2), 0};
            Sampler fast(p);
            std::mt19937_64 rng(p.seed);
            for (int d = 0; d < 12; ++d, ++draws) {
              ASSERT_EQ(fast.sample(logits, history), reference_sample(p, logits, history, rng))
                  << "vocab " << n_vocab << " temp " << temp << " top_k " << top_k << " top_p " << top_p
                  << " min_p " << min_p << " draw " << d;
            }
            ++cases;
          }
        }
      }
    }
  }
  EXPECT_EQ(draws, cases * 12);
}

TEST(Sampler, FullVocabularyDrawEqualsTheSortedChainAtLlamaVocabularySize) {
  // 32000 tokens, without top-k (the bucketed draw) and with top-k 40 (the bucketed selection). A tiny temperature
  // pushes nearly every token into the last bucket; a large one spreads the mass over many buckets; a peaked row
  // puts it all in the first.
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> flat(32000), peaked(32000);
  for (auto& v : flat) v = normal(gen) * 2.0f;
  for (size_t i = 0; i < peaked.size(); ++i) peaked[i] = (i % 997 == 3 ? 12.0f : 0.0f) + normal(gen);
  int cases = 0;
  for (const auto* row : {&flat, &peaked}) {
    for (const float temp : {0.02f, 1.0f, 2.0f}) {
      const std::vector<std::pair<float, float>> cuts = {{1.0f, 0.0f}, {0.9f, 0.0f}, {1.0f, 0.1f}};  // top_p, min_p
      for (const auto& [top_p, min_p] : cuts) {
        SamplerParams p;
        p.temperature = temp;
        p.top_k = cases % 2 == 0 ? 0 : 40;  // every other case through the bucketed top-k selection
        p.top_p = top_p;
        p.min_p = min_p;
        p.seed = static_cast<uint64_t>(++cases);
        Sampler fast(p);
        std::mt19937_64 rng(p.seed);
        for (int d = 0; d < 4; ++d) {
          ASSERT_EQ(fast.sample(*row, {}), reference_sample(p, *row, {}, rng))
              << "top_k " << p.top_k << " temp " << temp << " top_p " << top_p << " min_p " << min_p << " draw " << d;
        }
      }
    }
  }
}

TEST(Sampler, GreedyPicksTheFirstOfEqualMaxima) {
  SamplerParams p;
  p.temperature = 0.0f;
  std::vector<float> logits(37, -1.0f);
  logits[21] = 5.0f;
  logits[30] = 5.0f;
  EXPECT_EQ(Sampler(p).sample(logits, {}), 21);
}

TEST(Sampler, ZeroTemperatureIsGreedy) {
  SamplerParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  const std::vector<float> logits = {0.1f, 3.0f, 2.9f, -1.0f};
  EXPECT_EQ(s.sample(logits, {}), 1);
}

TEST(Sampler, SameSeedGivesSameTokens) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i % 7) * 0.3f;
  Sampler a(p), b(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 32; ++i) {
    ta.push_back(a.sample(logits, {}));
    tb.push_back(b.sample(logits, {}));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_GT(std::set<int32_t>(ta.begin(), ta.end()).size(), 3u);  // it really samples
}

// On-device sampling takes the draw on the host as generate_canonical<double, 53>(rng) and scales it by the kept
// mass; that must be exactly what the CPU chain's uniform_real_distribution<double>(0, total) draws.
TEST(Sampler, CanonicalDrawTimesTotalIsTheUniformRealDistribution) {
  for (const uint64_t seed : {0ull, 1ull, 42ull, 0x9e3779b97f4a7c15ull}) {
    std::mt19937_64 a(seed), b(seed);
    std::mt19937 pick(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<double> totals(1e-9, 2.0);
    for (int i = 0; i < 20000; ++i) {
      const double total = i % 3 == 0 ? 1.0 : totals(pick);
      const double expected = std::uniform_real_distribution<double>(0.0, total)(a);
      const double u = std::generate_canonical<double, 53>(b);
      ASSERT_GE(u, 0.0);
      ASSERT_LT(u, 1.0);
      ASSERT_EQ(expected, u * total) << "seed " << seed << " draw " << i << " total " << total;
    }
  }
}

// sample() == next_uniform() then sample_drawn(): the split the device path uses, step for step on one RNG stream.
TEST(Sampler, SampleDrawnWithNextUniformIsSample) {
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(3000);
  for (float& v : logits) v = normal(gen);
  std::vector<int32_t> history = {5, 7, 7, 2999, 12};
  for (const float temp : {0.0f, 0.7f, 1.3f}) {
    for (const int k : {0, 1, 40}) {
      SamplerParams p;
      p.temperature = temp;
      p.top_k = k;
      p.top_p = 0.9f;
      p.min_p = 0.02f;
      p.repeat_penalty = 1.3f;
      p.frequency_penalty = 0.1f;
      p.seed = 99;
      Sampler a(p), b(p);
      for (int step = 0; step < 50; ++step) {
        const int32_t ta = a.sample(logits, history);
        const double u = b.draws() ? b.next_uniform() : 0.0;
        const int32_t tb = b.sample_drawn(logits, history, u);
        ASSERT_EQ(ta, tb) << "temp " << temp << " k " << k << " step " << step;
      }
    }
  }
}

TEST(Sampler, DrawsOnlyWhenNotGreedy) {
  SamplerParams p;
  p.temperature = 0.0f;
  EXPECT_FALSE(Sampler(p).draws());
  p.temperature = 0.1f;
  EXPECT_TRUE(Sampler(p).draws());
}

TEST(Sampler, PenaltyWindowIsTheLastRepeatLastNTokensWhenAPenaltyApplies) {
  const std::vector<int32_t> history = {1, 2, 3, 4, 5};
  SamplerParams p;
  p.repeat_last_n = 3;
  EXPECT_TRUE(Sampler(p).penalty_window(history).empty());  // no penalty set
  p.presence_penalty = 0.5f;
  auto w = Sampler(p).penalty_window(history);
  EXPECT_EQ(std::vector<int32_t>(w.begin(), w.end()), (std::vector<int32_t>{3, 4, 5}));
  p.repeat_last_n = -1;
  w = Sampler(p).penalty_window(history);
  EXPECT_EQ(w.size(), 5u);
  p.repeat_last_n = 0;
  EXPECT_TRUE(Sampler(p).penalty_window(history).empty());
}

TEST(Sampler, TopKOneAlwaysPicksTheBest) {
  SamplerParams p;
  p.temperature = 5.0f;
  p.top_k = 1;
  Sampler s(p);
  const std::vector<float> logits = {1.0f, 0.9f, 2.0f, 1.5f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits, {}), 2);
}

TEST(Sampler, TopPKeepsSmallestPrefixWithEnoughMass) {
  std::vector<Sampler::Candidate> c = {{0, 0, 0.5f}, {1, 0, 0.3f}, {2, 0, 0.15f}, {3, 0, 0.05f}};
  Sampler::top_p(c, 0.8f);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].id, 1);
}

TEST(Sampler, MinPDropsTokensBelowFractionOfBest) {
  std::vector<Sampler::Candidate> c = {{0, 0, 0.6f}, {1, 0, 0.3f}, {2, 0, 0.05f}};
  Sampler::min_p(c, 0.1f);  // threshold 0.06
  EXPECT_EQ(c.size(), 2u);
}

TEST(Sampler, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerParams p;
  p.repeat_penalty = 2.0f;
  std::vector<float> logits = {4.0f, -1.0f, 3.0f};
  const std::vector<int32_t> history = {0, 1};
  Sampler::apply_penalties(logits, history, p);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], -2.0f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesSubtract) {
  SamplerParams p;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  std::vector<float> logits = {1.0f, 1.0f};
  const std::vector<int32_t> history = {0, 0, 0};
  Sampler::apply_penalties(logits, history, p);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 0.75f - 0.5f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f);
}

TEST(Sampler, PenaltyChangesGreedyChoice) {
  SamplerParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = 3.0f;
  Sampler s(p);
  const std::vector<float> logits = {3.0f, 2.0f};
  const std::vector<int32_t> history = {0};
  EXPECT_EQ(s.sample(logits, history), 1);
}

}  // namespace
}  // namespace rf::sampling
