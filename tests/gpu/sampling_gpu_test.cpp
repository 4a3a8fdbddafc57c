// On-GPU sampling (GpuBackend::sample, sampling.cu) against the CPU Sampler: greedy ids equal exactly (ties
// included); stochastic ids equal for every draw whose target u * total is not within float-summation noise of a
// boundary of the chain (a cumulative-mass step, the top-p cut, the min-p threshold), and at least 99.9 % of all
// draws agree. Rows the kernel hands back to the host must come out as the CPU's too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/gpu_backend.h"
#include "gpu_test_support.h"
#include "runtime/sample_row.h"
#include "sampling/sampler.h"

namespace rf::gpu {
namespace {

using sampling::Sampler;
using sampling::SamplerParams;

constexpr double kNear = 1e-5;  // relative distance to a boundary within which GPU and CPU may differ

enum class Shape { kPeaked, kFlat, kTies, kConstant };

std::vector<float> make_row(int64_t n_vocab, Shape shape, std::mt19937& gen) {
  std::vector<float> row(static_cast<size_t>(n_vocab));
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_real_distribution<float> flat(-0.5f, 0.5f);
  std::uniform_int_distribution<int64_t> pos(0, n_vocab - 1);
  switch (shape) {
    case Shape::kPeaked:
      for (float& v : row) v = normal(gen);
      for (int i = 0; i < 12; ++i) row[static_cast<size_t>(pos(gen))] = 9.0f + static_cast<float>(i) * 0.5f;
      break;
    case Shape::kFlat:
      for (float& v : row) v = flat(gen);
      break;
    case Shape::kTies:  // few distinct values: many equal logits, the maximum at several ids
      for (float& v : row) v = static_cast<float>(static_cast<int>(normal(gen)));
      for (int i = 0; i < 5; ++i) row[static_cast<size_t>(pos(gen))] = 20.0f;
      break;
    case Shape::kConstant:
      std::fill(row.begin(), row.end(), 0.25f);
      break;
  }
  return row;
}

// Whether the draw u of a row is within kNear of a boundary of the chain (the plain sorted chain of sampler.h).
struct Boundaries {
  bool ambiguous = false;   // the kept set itself is within noise (top-p / min-p cut)
  std::vector<double> cum;  // running kept mass, in order
  double total = 0.0;
  bool near(double u) const {
    if (ambiguous) return true;
    const double r = u * total;
    for (double c : cum) {
      if (std::abs(c - r) <= kNear * total) return true;
    }
    return false;
  }
};

Boundaries boundaries(const SamplerParams& p, const std::vector<float>& in, const std::vector<int32_t>& history) {
  Boundaries b;
  std::vector<float> logits = in;
  Sampler::apply_penalties(logits, history, p);
  std::vector<Sampler::Candidate> c(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) c[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
  Sampler::top_k(c, p.top_k);
  Sampler::softmax(c, p.temperature);
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    for (const auto& x : c) {
      cum += x.p;
      if (std::abs(cum - p.top_p) <= kNear) b.ambiguous = true;
      if (cum > p.top_p + kNear) break;
    }
  }
  Sampler::top_p(c, p.top_p);
  if (p.min_p > 0.0f && !c.empty()) {
    const double threshold = static_cast<double>(p.min_p) * c.front().p;
    for (const auto& x : c) {
      if (std::abs(x.p - threshold) <= kNear * threshold) b.ambiguous = true;
    }
  }
  Sampler::min_p(c, p.min_p);
  for (const auto& x : c) b.cum.push_back(b.total += x.p);
  return b;
}

struct Case {
  std::string name;
  SamplerParams p;
  bool penalties = false;
};

std::vector<Case> stochastic_cases() {
  auto make = [](std::string name, float temp, int k, float top_p, float min_p) {
    Case c;
    c.name = std::move(name);
    c.p.temperature = temp;
    c.p.top_k = k;
    c.p.top_p = top_p;
    c.p.min_p = min_p;
    return c;
  };
  std::vector<Case> cases = {
      make("top-k only", 0.8f, 40, 1.0f, 0.0f),      make("top-p only", 1.0f, 0, 0.9f, 0.0f),
      make("min-p only", 1.0f, 0, 1.0f, 0.05f),      make("all", 0.7f, 50, 0.95f, 0.05f),
      make("all, k 1000", 1.2f, 1000, 0.95f, 0.01f), make("k 0, temperature only", 1.0f, 0, 1.0f, 0.0f),
      make("k 2000", 1.0f, 2000, 1.0f, 0.0f),        make("hot, top-p", 2.0f, 0, 0.5f, 0.0f),
  };
  Case pen = make("penalties, top-k", 0.9f, 40, 0.95f, 0.05f);
  pen.penalties = true;
  pen.p.repeat_penalty = 1.3f;
  pen.p.presence_penalty = 0.2f;
  pen.p.frequency_penalty = 0.1f;
  cases.push_back(pen);
  pen.name = "penalties, k 0";
  pen.p.top_k = 0;
  cases.push_back(pen);
  return cases;
}

class GpuSampling : public ::testing::Test {
 protected:
  // Uploads `rows` (each n_vocab floats) as one logits matrix and samples `req` over it on the GPU.
  std::vector<int32_t> gpu_sample(const std::vector<std::vector<float>>& rows,
                                  const std::vector<backend::SampleRow>& req,
                                  const std::vector<std::vector<int32_t>>& histories, const SamplerParams& p,
                                  int* host_rows) {
    const auto nv = static_cast<int64_t>(rows[0].size());
    std::vector<float> flat;
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    auto buf = be_->alloc(flat.size() * sizeof(float));
    EXPECT_NE(buf, nullptr);
    const backend::Tensor t =
        backend::make_tensor(buf->data(), quant::Type::F32, nv, static_cast<int64_t>(rows.size()));
    be_->to_device(t, flat.data(), flat.size() * sizeof(float));
    std::vector<int32_t> ids(req.size(), -7);
    const backend::HostSampleFn host = [&](std::span<const size_t> which, const float* lg, int32_t* out) {
      for (size_t j = 0; j < which.size(); ++j) {
        const size_t i = which[j];
        Sampler s(p);
        out[i] = s.sample_drawn(std::span<const float>(lg + j * static_cast<size_t>(nv), static_cast<size_t>(nv)),
                                histories[static_cast<size_t>(req[i].row)], req[i].u);
        ++*host_rows;
      }
    };
    const Status st = be_->sample(t, req, host, ids.data());
    EXPECT_TRUE(st.ok()) << st.message();
    return ids;
  }

  static backend::SampleRow row_args(const SamplerParams& p, int32_t row, std::span<const int32_t> window, double u) {
    return runtime::sample_row_args(p, row, window, u);
  }

  std::unique_ptr<GpuBackend> be_;
};

#define RF_OPEN_GPU_BACKEND()                             \
  RF_REQUIRE_GPU(info);                                   \
  (void)info;                                             \
  {                                                       \
    auto created = GpuBackend::create(0);                 \
    ASSERT_TRUE(created.ok()) << created.error_message(); \
    be_ = std::move(*created);                            \
  }

TEST_F(GpuSampling, GreedyIdsEqualTheCpuExactlyTiesAndPenaltiesIncluded) {
  RF_OPEN_GPU_BACKEND();
  std::mt19937 gen(3);
  for (const int64_t nv : {int64_t{7}, int64_t{1000}, int64_t{151936}, int64_t{128256}}) {
    for (const bool pen : {false, true}) {
      SamplerParams p;
      p.temperature = 0.0f;
      if (pen) {
        p.repeat_penalty = 1.5f;
        p.presence_penalty = 0.5f;
        p.frequency_penalty = 0.25f;
      }
      std::vector<std::vector<float>> rows;
      std::vector<std::vector<int32_t>> histories;
      for (const Shape shape : {Shape::kPeaked, Shape::kTies, Shape::kFlat, Shape::kConstant}) {
        for (int rep = 0; rep < 4; ++rep) {
          rows.push_back(make_row(nv, shape, gen));
          std::vector<int32_t> h;
          if (pen) {  // the row's best tokens and a few others, some repeated
            const auto& r = rows.back();
            const auto best = static_cast<int32_t>(std::max_element(r.begin(), r.end()) - r.begin());
            h = {best, best, static_cast<int32_t>(nv - 1), 0, best, static_cast<int32_t>(nv / 2)};
          }
          histories.push_back(h);
        }
      }
      std::vector<backend::SampleRow> req;
      for (size_t r = 0; r < rows.size(); ++r) {
        req.push_back(row_args(p, static_cast<int32_t>(r), Sampler(p).penalty_window(histories[r]), 0.0));
      }
      int host_rows = 0;
      const auto ids = gpu_sample(rows, req, histories, p, &host_rows);
      for (size_t r = 0; r < rows.size(); ++r) {
        Sampler cpu(p);
        EXPECT_EQ(ids[r], cpu.sample(rows[r], histories[r])) << "n_vocab " << nv << " row " << r << " pen " << pen;
      }
      EXPECT_EQ(host_rows, 0);
    }
  }
}

TEST_F(GpuSampling, StochasticIdsEqualTheCpuAwayFromBoundaries) {
  RF_OPEN_GPU_BACKEND();
  std::mt19937 gen(5);
  std::mt19937_64 draw(17);
  int64_t total = 0, agree = 0, exact_required = 0, host_total = 0;
  constexpr int kRowsPerShape = 3, kDrawsPerRow = 48;
  for (const Case& c : stochastic_cases()) {
    for (const int64_t nv : {int64_t{151936}, int64_t{128256}, int64_t{3000}}) {
      std::vector<std::vector<float>> rows;
      std::vector<std::vector<int32_t>> histories;
      std::vector<Boundaries> bounds;
      for (const Shape shape : {Shape::kPeaked, Shape::kFlat, Shape::kTies}) {
        for (int rep = 0; rep < kRowsPerShape; ++rep) {
          rows.push_back(make_row(nv, shape, gen));
          std::vector<int32_t> h;
          if (c.penalties) {  // recent tokens: the row's top ones (so the penalties matter), repeats, random ids
            std::vector<int32_t> order(static_cast<size_t>(nv));
            for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
            const auto& r = rows.back();
            std::partial_sort(order.begin(), order.begin() + 8, order.end(), [&](int32_t a, int32_t b) {
              return r[static_cast<size_t>(a)] > r[static_cast<size_t>(b)];
            });
            std::uniform_int_distribution<int32_t> any(0, static_cast<int32_t>(nv - 1));
            for (int i = 0; i < 40; ++i) h.push_back(i % 3 == 0 ? any(gen) : order[static_cast<size_t>(i % 8)]);
          }
          histories.push_back(h);
          bounds.push_back(boundaries(c.p, rows.back(), histories.back()));
        }
      }
      std::vector<backend::SampleRow> req;
      for (int d = 0; d < kDrawsPerRow; ++d) {
        for (size_t r = 0; r < rows.size(); ++r) {
          const double u = std::generate_canonical<double, 53>(draw);
          req.push_back(row_args(c.p, static_cast<int32_t>(r), Sampler(c.p).penalty_window(histories[r]), u));
        }
      }
      int host_rows = 0;
      const auto ids = gpu_sample(rows, req, histories, c.p, &host_rows);
      host_total += host_rows;
      if (host_rows > 0) {
        std::printf("  %s, n_vocab %lld: %d of %zu draws sampled on the host\n", c.name.c_str(),
                    static_cast<long long>(nv), host_rows, req.size());
      }
      int64_t mismatches = 0;
      for (size_t i = 0; i < req.size(); ++i) {
        const auto r = static_cast<size_t>(req[i].row);
        Sampler cpu(c.p);
        const int32_t want = cpu.sample_drawn(rows[r], histories[r], req[i].u);
        ++total;
        if (ids[i] == want) {
          ++agree;
        }
        if (!bounds[r].near(req[i].u)) {
          ++exact_required;
          if (ids[i] != want && ++mismatches <= 3) {
            ADD_FAILURE() << c.name << ", n_vocab " << nv << ", row " << r << " u " << req[i].u << ": gpu " << ids[i]
                          << " cpu " << want;
          }
        }
      }
      EXPECT_EQ(mismatches, 0) << c.name << ", n_vocab " << nv;
    }
  }
  std::printf("stochastic draws: %lld, agree %lld (%.4f %%), away from boundaries %lld, sampled on the host %lld\n",
              static_cast<long long>(total), static_cast<long long>(agree), 100.0 * agree / total,
              static_cast<long long>(exact_required), static_cast<long long>(host_total));
  EXPECT_GE(static_cast<double>(agree), 0.999 * static_cast<double>(total));
  EXPECT_GE(total, 5000);
}

TEST_F(GpuSampling, RowsTheKernelCannotSortGoToTheHostWithTheSameDraw) {
  RF_OPEN_GPU_BACKEND();
  // A constant row: every token in one histogram bucket, far more than the kernel sorts.
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 0.5f;
  p.min_p = 0.0f;
  std::mt19937 gen(9);
  const std::vector<std::vector<float>> rows = {make_row(151936, Shape::kConstant, gen),
                                                make_row(151936, Shape::kPeaked, gen)};
  const std::vector<std::vector<int32_t>> histories(2);
  std::vector<backend::SampleRow> req = {row_args(p, 0, {}, 0.3), row_args(p, 1, {}, 0.6), row_args(p, 0, {}, 0.9)};
  int host_rows = 0;
  const auto ids = gpu_sample(rows, req, histories, p, &host_rows);
  EXPECT_EQ(host_rows, 2);
  for (size_t i = 0; i < req.size(); ++i) {
    EXPECT_EQ(ids[i], Sampler(p).sample_drawn(rows[static_cast<size_t>(req[i].row)], {}, req[i].u)) << i;
  }
}

}  // namespace
}  // namespace rf::gpu
