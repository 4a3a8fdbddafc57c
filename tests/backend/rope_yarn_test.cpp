// YaRN rope on the CPU backend against a float64 evaluation of the YaRN formulas written out here (normal and NEOX
// pairing, factors 4 and 8, full and partial rotation, positions well past the original context), plus exact
// checks of the two ends of the correction range: pairs before it rotate as unscaled rope, pairs after it as
// linearly interpolated rope.
#include "backend/rope_yarn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "cpu_test_util.h"

namespace rf::backend::cpu::test {
namespace {

using quant::Type;

struct YarnCase {
  RopeMode mode;
  int head_dim, n_rot;
  float base, factor, ext_factor, attn_factor;
  int n_ctx_orig;
  bool freq_factors;
};

void PrintTo(const YarnCase& c, std::ostream* os) {
  *os << (c.mode == RopeMode::kNeox ? "neox" : "normal") << " head_dim " << c.head_dim << " n_rot " << c.n_rot
      << " base " << c.base << " factor " << c.factor << " ext_factor " << c.ext_factor << " attn_factor "
      << c.attn_factor << " n_ctx_orig " << c.n_ctx_orig << (c.freq_factors ? " freq_factors" : "");
}

// The correction range in float64: pairs turning more than beta_fast times over n_ctx_orig keep their angle, those
// turning less than beta_slow times are interpolated. d(r) solves n_ctx_orig * base^(-2d / n_rot) = 2 pi r for d.
struct RangeF64 {
  double d_fast, d_slow, low, high;
};

RangeF64 range_f64(const YarnCase& c, double beta_fast, double beta_slow) {
  const double pi = std::acos(-1.0);
  auto d = [&](double turns) {
    return c.n_rot * std::log(c.n_ctx_orig / (2.0 * pi * turns)) / (2.0 * std::log(c.base));
  };
  RangeF64 r;
  r.d_fast = d(beta_fast);
  r.d_slow = d(beta_slow);
  r.low = std::max(0.0, std::floor(r.d_fast));
  r.high = std::min(c.n_rot - 1.0, std::ceil(r.d_slow));
  return r;
}

// One row per token of n_head heads; returns the rotated rows in float64.
std::vector<double> yarn_reference(const Mat& x, const std::vector<int32_t>& pos, const YarnCase& c, int n_head,
                                   const std::vector<float>& ff, const RangeF64& r) {
  std::vector<double> out(x.v.begin(), x.v.end());
  const int half = c.n_rot / 2;
  for (int64_t t = 0; t < x.ne1; ++t) {
    for (int h = 0; h < n_head; ++h) {
      for (int i = 0; i < half; ++i) {
        double extrap = pos[static_cast<size_t>(t)] * std::pow(double{c.base}, -2.0 * i / c.n_rot);
        if (!ff.empty()) extrap /= ff[static_cast<size_t>(i)];
        const double interp = extrap / c.factor;
        const double y = (i - r.low) / std::max(0.001, r.high - r.low);
        const double mix = (1.0 - std::min(1.0, std::max(0.0, y))) * c.ext_factor;
        const double theta = interp * (1.0 - mix) + extrap * mix;
        const int i0 = c.mode == RopeMode::kNeox ? i : 2 * i;
        const int i1 = c.mode == RopeMode::kNeox ? i + half : 2 * i + 1;
        const int64_t b = t * x.ne0 + int64_t{h} * c.head_dim;
        const double a0 = x.v[static_cast<size_t>(b + i0)], a1 = x.v[static_cast<size_t>(b + i1)];
        out[static_cast<size_t>(b + i0)] = c.attn_factor * (a0 * std::cos(theta) - a1 * std::sin(theta));
        out[static_cast<size_t>(b + i1)] = c.attn_factor * (a0 * std::sin(theta) + a1 * std::cos(theta));
      }
    }
  }
  return out;
}

// Each token its own sequence (rope reads only the positions; the block tables just keep the batch valid).
Batch batch_at(const std::vector<int32_t>& positions) {
  Batch b;
  b.kv_block_size = 1 << 15;
  for (size_t i = 0; i < positions.size(); ++i) {
    b.tokens.push_back(0);
    b.positions.push_back(positions[i]);
    b.seq.push_back(static_cast<int32_t>(i));
    b.block_tables.push_back({static_cast<int32_t>(i)});
  }
  return b;
}

class RopeYarnTest : public ::testing::TestWithParam<YarnCase> {};

TEST_P(RopeYarnTest, MatchesFloat64YarnFormulasAndKeepsBothEndsOfTheCorrectionRange) {
  const YarnCase c = GetParam();
  const int n_head = 3, half = c.n_rot / 2;
  const float beta_fast = 32.0f, beta_slow = 1.0f;
  const RangeF64 r = range_f64(c, beta_fast, beta_slow);
  // The case must have pairs below, inside and above the range, and its edges must not sit on an integer (where
  // float and float64 could round to different sides).
  ASSERT_GT(r.low, 0.0);
  ASSERT_LT(r.high, half - 1.0);
  ASSERT_GT(std::fabs(r.d_fast - std::round(r.d_fast)), 1e-3);
  ASSERT_GT(std::fabs(r.d_slow - std::round(r.d_slow)), 1e-3);
  const YarnRange fr = yarn_range(c.n_rot, c.n_ctx_orig, c.base, beta_fast, beta_slow);
  EXPECT_EQ(fr.low, static_cast<float>(r.low));
  EXPECT_EQ(fr.high, static_cast<float>(r.high));

  const std::vector<int32_t> positions = {0,
                                          1,
                                          5,
                                          c.n_ctx_orig - 1,
                                          c.n_ctx_orig + 17,
                                          2 * c.n_ctx_orig + 3,
                                          static_cast<int32_t>(c.factor) * c.n_ctx_orig - 1};
  const Batch b = batch_at(positions);
  std::mt19937 rng(7);
  std::vector<float> ff;
  if (c.freq_factors) {
    for (int i = 0; i < half; ++i) ff.push_back(1.0f + 0.25f * static_cast<float>(i % 5));
  }

  RopeParams p;
  p.mode = c.mode;
  p.n_head = n_head;
  p.head_dim = c.head_dim;
  p.n_rot = c.n_rot;
  p.freq_base = c.base;
  p.freq_scale = 1.0f / c.factor;
  if (c.freq_factors) p.freq_factors = make_tensor(ff.data(), Type::F32, static_cast<int64_t>(ff.size()));
  p.ext_factor = c.ext_factor;
  p.attn_factor = c.attn_factor;
  p.beta_fast = beta_fast;
  p.beta_slow = beta_slow;
  p.n_ctx_orig = c.n_ctx_orig;

  const std::string what = std::string(c.mode == RopeMode::kNeox ? "neox" : "normal") + " n_rot " +
                           std::to_string(c.n_rot) + " factor " + std::to_string(c.factor);
  for (const std::string& isa : isa_names()) {
    auto be = make_backend(isa);
    const auto db = be->prepare_batch(b);
    const Mat x0 = random_mat(rng, int64_t{n_head} * c.head_dim, b.n_tokens());
    const auto want = yarn_reference(x0, b.positions, c, n_head, ff, r);
    Mat yarn = x0;
    be->rope(yarn.t(), *db, p);
    // Float angles of up to ~30k rad: the error of a rotated value grows with its angle (the float angle is off
    // by a few ulps of it) and with its pair index (the angle is advanced by repeated multiplication).
    for (int64_t t = 0; t < x0.ne1; ++t) {
      for (int h = 0; h < n_head; ++h) {
        for (int i = 0; i < half; ++i) {
          const int i0 = c.mode == RopeMode::kNeox ? i : 2 * i;
          const int i1 = c.mode == RopeMode::kNeox ? i + half : 2 * i + 1;
          const int64_t base = t * x0.ne0 + int64_t{h} * c.head_dim;
          const double mag =
              std::fabs(x0.v[static_cast<size_t>(base + i0)]) + std::fabs(x0.v[static_cast<size_t>(base + i1)]);
          const double angle = positions[static_cast<size_t>(t)] * std::pow(double{c.base}, -2.0 * i / c.n_rot);
          const double tol = c.attn_factor * mag * (1e-6 + 3e-7 * (i + 2) * angle);
          for (int k : {i0, i1}) {
            const double got = yarn.v[static_cast<size_t>(base + k)], w = want[static_cast<size_t>(base + k)];
            ASSERT_LE(std::fabs(got - w), tol) << what << " " << isa << " pos " << positions[static_cast<size_t>(t)]
                                               << " pair " << i << " got " << got << " want " << w;
          }
        }
        for (int k = c.n_rot; k < c.head_dim; ++k) {  // unrotated tail
          const int64_t idx = t * x0.ne0 + int64_t{h} * c.head_dim + k;
          ASSERT_EQ(yarn.v[static_cast<size_t>(idx)], x0.v[static_cast<size_t>(idx)]) << what << " tail dim " << k;
        }
      }
    }

    if (c.ext_factor != 1.0f) continue;
    // Below the range the angle is the unscaled one, above it the interpolated one, exactly.
    RopeParams plain = p, linear = p;
    plain.freq_scale = 1.0f;
    plain.ext_factor = 0.0f;
    linear.ext_factor = 0.0f;
    Mat xp = x0, xl = x0;
    be->rope(xp.t(), *db, plain);
    be->rope(xl.t(), *db, linear);
    int n_below = 0, n_above = 0;
    for (int64_t t = 0; t < x0.ne1; ++t) {
      for (int h = 0; h < n_head; ++h) {
        for (int i = 0; i < half; ++i) {
          if (i > r.low && i < r.high) continue;
          const Mat& ref = i <= r.low ? xp : xl;
          (i <= r.low ? n_below : n_above) += 1;
          for (int k : {c.mode == RopeMode::kNeox ? i : 2 * i, c.mode == RopeMode::kNeox ? i + half : 2 * i + 1}) {
            const int64_t idx = t * x0.ne0 + int64_t{h} * c.head_dim + k;
            ASSERT_EQ(yarn.v[static_cast<size_t>(idx)], ref.v[static_cast<size_t>(idx)])
                << what << " pair " << i << (i <= r.low ? " (below)" : " (above)");
          }
        }
      }
    }
    EXPECT_GT(n_below, 0);
    EXPECT_GT(n_above, 0);
  }
}

// Ranges: base 1e4, n_rot 128, 4096 -> pairs [20, 46] of 64; base 1e6, n_rot 64, 2048 -> [5, 14] of 32;
// base 1e4, n_rot 32, 512 -> [1, 8] of 16.
INSTANTIATE_TEST_SUITE_P(
    Cases, RopeYarnTest,
    ::testing::Values(YarnCase{RopeMode::kNormal, 128, 128, 10000.0f, 4.0f, 1.0f, 1.1386294f, 4096, false},
                      YarnCase{RopeMode::kNeox, 128, 128, 10000.0f, 8.0f, 1.0f, 1.2079442f, 4096, false},
                      YarnCase{RopeMode::kNeox, 64, 64, 1000000.0f, 4.0f, 1.0f, 1.1386294f, 2048, false},
                      YarnCase{RopeMode::kNormal, 64, 64, 1000000.0f, 8.0f, 1.0f, 1.0f, 2048, true},
                      YarnCase{RopeMode::kNeox, 48, 32, 10000.0f, 8.0f, 1.0f, 1.2079442f, 512, true},
                      YarnCase{RopeMode::kNormal, 48, 32, 10000.0f, 4.0f, 0.5f, 1.1386294f, 512, false}),
    [](const ::testing::TestParamInfo<YarnCase>& pi) { return "case" + std::to_string(pi.index); });

TEST(YarnRange, ClampsToTheRotatedDimsAndRampsLinearlyBetweenItsEnds) {
  // A short original context moves the fast end below pair 0; a long one moves the slow end past n_rot - 1.
  const YarnRange lo = yarn_range(64, 64, 10000.0f, 32.0f, 1.0f);
  EXPECT_EQ(lo.low, 0.0f);
  const YarnRange hi = yarn_range(16, 1 << 30, 10000.0f, 32.0f, 1.0f);
  EXPECT_EQ(hi.high, 15.0f);
  const YarnRange r{4.0f, 12.0f};
  EXPECT_EQ(yarn_ramp(r, 0), 1.0f);
  EXPECT_EQ(yarn_ramp(r, 4), 1.0f);
  EXPECT_EQ(yarn_ramp(r, 8), 0.5f);
  EXPECT_EQ(yarn_ramp(r, 12), 0.0f);
  EXPECT_EQ(yarn_ramp(r, 30), 0.0f);
  const YarnRange flat{5.0f, 5.0f};  // an empty range is a step
  EXPECT_EQ(yarn_ramp(flat, 5), 1.0f);
  EXPECT_EQ(yarn_ramp(flat, 6), 0.0f);
}

}  // namespace
}  // namespace rf::backend::cpu::test
