// CPU backend ops (other than matmul, see cpu_matmul_test.cpp) against plain float64 references written here, on
// every kernel table this CPU runs: embed, get_rows, rms_norm, add, silu_mul, rope (normal / NEOX, partial
// rotation, frequency factors, linear scaling), kv_store (F32 / F16 caches), paged attention (GQA, several
// sequences with scattered block tables, mixed prefill and decode tokens, head_dim_v != head_dim_k) and the MoE
// routing / combination.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/half.h"
#include "cpu_test_util.h"
#include "quant/quant.h"

namespace rf::backend::cpu::test {
namespace {

using quant::Type;

class CpuOpsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { be_ = make_backend(GetParam()); }
  std::unique_ptr<CpuBackend> be_;
  std::mt19937 rng_{42};
};

// Batch::generated is empty (all prompt tokens) or one flag per token; validate() says which when it is neither.
TEST(BatchValidate, GeneratedFlagsAreNoneOrOnePerToken) {
  Batch b;
  b.tokens = {1, 2, 3};
  b.positions = {0, 1, 2};
  b.seq = {0, 0, 0};
  b.block_tables = {{0}};
  EXPECT_TRUE(b.validate(10, 4).ok());
  EXPECT_FALSE(b.is_generated(2));
  b.generated = {0, 0, 1};
  EXPECT_TRUE(b.validate(10, 4).ok());
  EXPECT_TRUE(b.is_generated(2));
  EXPECT_FALSE(b.is_generated(1));
  b.generated = {0, 1};
  const Status s = b.validate(10, 4);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("3 tokens but 2 generated flags"), std::string::npos) << s.message();
}

TEST_P(CpuOpsTest, EmbedCopiesTheTokensRowsOfF32AndQuantizedTables) {
  const int64_t n_embd = 64, n_vocab = 11;
  Batch b;
  b.tokens = {7, 0, 10, 7, 3};
  b.positions = {0, 1, 2, 3, 4};
  b.seq = {0, 0, 0, 0, 0};
  b.block_tables = {{0}};
  const auto db = be_->prepare_batch(b);
  Mat table = random_mat(rng_, n_embd, n_vocab);
  Mat out(n_embd, 5, NAN);
  be_->embed(out.t(), table.t(), *db);
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t c = 0; c < n_embd; ++c) ASSERT_EQ(out.at(c, i), table.at(c, b.tokens[static_cast<size_t>(i)]));
  }
  // A Q4_0 table: each row decodes as rf::quant decodes it.
  std::vector<uint8_t> q(*quant::row_bytes(Type::Q4_0, n_embd) * n_vocab);
  ASSERT_TRUE(quant::quantize(Type::Q4_0, table.v.data(), q.data(), n_embd * n_vocab).ok());
  std::vector<float> all(table.v.size());
  ASSERT_TRUE(quant::dequantize(Type::Q4_0, q.data(), all.data(), n_embd * n_vocab).ok());
  be_->embed(out.t(), make_tensor(q.data(), Type::Q4_0, n_embd, n_vocab), *db);
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t c = 0; c < n_embd; ++c) {
      ASSERT_EQ(out.at(c, i), all[static_cast<size_t>(b.tokens[static_cast<size_t>(i)] * n_embd + c)]);
    }
  }
}

TEST_P(CpuOpsTest, GetRowsGathersTheOutputRows) {
  Batch b;
  b.tokens = {1, 2, 3, 4, 5, 6};
  b.positions = {0, 1, 2, 3, 4, 5};
  b.seq = {0, 0, 0, 0, 0, 0};
  b.block_tables = {{0}};
  b.output_rows = {0, 3, 5};
  const auto db = be_->prepare_batch(b);
  Mat x = random_mat(rng_, 13, 6);
  Mat out(13, 3, NAN);
  be_->get_rows(out.t(), x.t(), *db);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t c = 0; c < 13; ++c) ASSERT_EQ(out.at(c, i), x.at(c, b.output_rows[static_cast<size_t>(i)]));
  }
}

TEST_P(CpuOpsTest, RmsNormWithAndWithoutWeightAndInPlace) {
  const int64_t n = 67, rows = 5;
  const float eps = 1e-5f;
  Mat x = random_mat(rng_, n, rows, 3.0f);
  Mat w = random_mat(rng_, n, 1);
  for (bool with_weight : {true, false}) {
    for (bool in_place : {false, true}) {
      Mat xi = x;
      Mat out(n, rows, NAN);
      Mat& dst = in_place ? xi : out;
      be_->rms_norm(dst.t(), xi.t(), with_weight ? w.t() : Tensor{}, eps);
      std::vector<double> want;
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0.0;
        for (int64_t i = 0; i < n; ++i) ss += double{x.at(i, r)} * x.at(i, r);
        const double scale = 1.0 / std::sqrt(ss / n + eps);
        for (int64_t i = 0; i < n; ++i) want.push_back(x.at(i, r) * scale * (with_weight ? w.at(i, 0) : 1.0));
      }
      expect_near_all(dst.v, want, 1e-6, 1e-5, "rms_norm");
    }
  }
}

TEST_P(CpuOpsTest, AddSameShapeAndBroadcastRow) {
  Mat a = random_mat(rng_, 29, 4), b = random_mat(rng_, 29, 4), bias = random_mat(rng_, 29, 1);
  Mat out(29, 4, NAN);
  be_->add(out.t(), a.t(), b.t());
  std::vector<double> want;
  for (size_t i = 0; i < a.v.size(); ++i) want.push_back(double{a.v[i]} + b.v[i]);
  expect_near_all(out.v, want, 0, 1e-7, "add");
  Mat ai = a;
  be_->add(ai.t(), ai.t(), bias.t());  // in place, bias broadcast over rows
  want.clear();
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t i = 0; i < 29; ++i) want.push_back(double{a.at(i, r)} + bias.at(i, 0));
  }
  expect_near_all(ai.v, want, 0, 1e-7, "add bias");
}

TEST_P(CpuOpsTest, SiluMulMatchesDefinition) {
  Mat g = random_mat(rng_, 53, 3, 4.0f), u = random_mat(rng_, 53, 3);
  std::vector<double> want;
  for (size_t i = 0; i < g.v.size(); ++i) want.push_back(g.v[i] / (1.0 + std::exp(-double{g.v[i]})) * u.v[i]);
  Mat out(53, 3, NAN);
  be_->silu_mul(out.t(), g.t(), u.t());
  expect_near_all(out.v, want, 1e-7, 1e-5, "silu_mul");
  be_->silu_mul(g.t(), g.t(), u.t());  // in place
  expect_near_all(g.v, want, 1e-7, 1e-5, "silu_mul in place");
}

// Reference rope: theta_i = pos * freq_scale / ff_i * base^(-2i / n_rot), pairs by mode, dims >= n_rot untouched.
std::vector<double> rope_reference(const Mat& x, const std::vector<int32_t>& pos, const RopeParams& p,
                                   const std::vector<float>& ff) {
  std::vector<double> out(x.v.begin(), x.v.end());
  const int half = p.n_rot / 2;
  for (int64_t t = 0; t < x.ne1; ++t) {
    for (int h = 0; h < p.n_head; ++h) {
      for (int i = 0; i < half; ++i) {
        double theta = pos[static_cast<size_t>(t)] * std::pow(double{p.freq_base}, -2.0 * i / p.n_rot);
        if (!ff.empty()) theta /= ff[static_cast<size_t>(i)];
        theta *= p.freq_scale;
        const int i0 = p.mode == RopeMode::kNeox ? i : 2 * i;
        const int i1 = p.mode == RopeMode::kNeox ? i + half : 2 * i + 1;
        const int64_t base = t * x.ne0 + int64_t{h} * p.head_dim;
        const double a0 = x.v[static_cast<size_t>(base + i0)], a1 = x.v[static_cast<size_t>(base + i1)];
        out[static_cast<size_t>(base + i0)] = a0 * std::cos(theta) - a1 * std::sin(theta);
        out[static_cast<size_t>(base + i1)] = a0 * std::sin(theta) + a1 * std::cos(theta);
      }
    }
  }
  return out;
}

TEST_P(CpuOpsTest, RopeNormalAndNeoxWithPartialRotationFreqFactorsAndScaling) {
  Batch b = scattered_batch(rng_, {{0, 3}, {150, 2}, {37, 1}}, 16, 32);
  const auto db = be_->prepare_batch(b);
  for (RopeMode mode : {RopeMode::kNormal, RopeMode::kNeox}) {
    for (bool factors : {false, true}) {
      RopeParams p;
      p.mode = mode;
      p.n_head = 3;
      p.head_dim = 20;
      p.n_rot = factors ? 20 : 12;  // partial rotation: dims 12..19 pass through
      p.freq_base = 10000.0f;
      p.freq_scale = factors ? 0.25f : 1.0f;
      std::vector<float> ff;
      if (factors) {
        for (int i = 0; i < p.n_rot / 2; ++i) ff.push_back(1.0f + 0.7f * static_cast<float>(i));
        p.freq_factors = make_tensor(ff.data(), Type::F32, static_cast<int64_t>(ff.size()));
      }
      Mat x = random_mat(rng_, int64_t{p.n_head} * p.head_dim, b.n_tokens());
      const auto want = rope_reference(x, b.positions, p, ff);
      be_->rope(x.t(), *db, p);
      // Angles up to ~150 rad in float: ~1e-4 absolute error in the rotated values.
      expect_near_all(x.v, want, 2e-3, 0, mode == RopeMode::kNeox ? "rope neox" : "rope normal");
    }
  }
}

TEST_P(CpuOpsTest, KvStoreWritesEachTokenAtItsPagedSlotOnly) {
  const int block = 4, n_blocks = 12, k_row = 10, v_row = 6;
  Batch b = scattered_batch(rng_, {{0, 5}, {9, 1}, {2, 3}}, block, n_blocks);
  const auto db = be_->prepare_batch(b);
  Mat k = random_mat(rng_, k_row, b.n_tokens()), v = random_mat(rng_, v_row, b.n_tokens());
  for (Type ct : {Type::F32, Type::F16}) {
    const size_t es = ct == Type::F32 ? 4 : 2;
    std::vector<uint8_t> kc(es * k_row * n_blocks * block, 0xee), vc(es * v_row * n_blocks * block, 0xee);
    const Tensor kt = make_tensor(kc.data(), ct, k_row, n_blocks * block);
    const Tensor vt = make_tensor(vc.data(), ct, v_row, n_blocks * block);
    be_->kv_store(kt, vt, k.t(), v.t(), *db);
    std::vector<bool> written(static_cast<size_t>(n_blocks * block), false);
    auto read = [&](const std::vector<uint8_t>& c, int64_t row_len, int64_t slot, int64_t i) {
      const uint8_t* p = c.data() + (slot * row_len + i) * static_cast<int64_t>(es);
      if (ct == Type::F32) {
        float f;
        std::memcpy(&f, p, 4);
        return f;
      }
      uint16_t h;
      std::memcpy(&h, p, 2);
      return fp16_to_fp32(h);
    };
    for (int64_t t = 0; t < b.n_tokens(); ++t) {
      const int64_t slot = slot_of(b, b.seq[static_cast<size_t>(t)], b.positions[static_cast<size_t>(t)]);
      written[static_cast<size_t>(slot)] = true;
      for (int64_t i = 0; i < k_row; ++i) {
        const float want = ct == Type::F32 ? k.at(i, t) : fp16_to_fp32(fp32_to_fp16(k.at(i, t)));
        ASSERT_EQ(read(kc, k_row, slot, i), want);
      }
      for (int64_t i = 0; i < v_row; ++i) {
        const float want = ct == Type::F32 ? v.at(i, t) : fp16_to_fp32(fp32_to_fp16(v.at(i, t)));
        ASSERT_EQ(read(vc, v_row, slot, i), want);
      }
    }
    for (size_t s = 0; s < written.size(); ++s) {
      if (written[s]) continue;
      for (size_t byte = 0; byte < es * k_row; ++byte) ASSERT_EQ(kc[s * es * k_row + byte], 0xee) << "slot " << s;
    }
  }
}

TEST_P(CpuOpsTest, PagedAttentionGqaOverSeveralSequencesMatchesReference) {
  const int block = 4, n_blocks = 24;
  AttentionParams p;
  p.n_head = 6;
  p.n_head_kv = 2;  // groups of 3 query heads
  p.head_dim_k = 12;
  p.head_dim_v = 8;
  p.scale = 1.0f / std::sqrt(12.0f);
  // Sequence 0: prefill chunk at 5..11; 1: a decode token at 30; 2: a fresh prompt 0..3.
  Batch b = scattered_batch(rng_, {{5, 7}, {30, 1}, {0, 4}}, block, n_blocks);
  const auto db = be_->prepare_batch(b);
  const int64_t slots = int64_t{n_blocks} * block;
  for (Type ct : {Type::F32, Type::F16}) {
    // Caches hold random history for every slot (earlier positions) plus this batch's k/v stored by kv_store.
    Mat kf = random_mat(rng_, int64_t{p.n_head_kv} * p.head_dim_k, slots, 1.5f);
    Mat vf = random_mat(rng_, int64_t{p.n_head_kv} * p.head_dim_v, slots);
    std::vector<uint16_t> kh(kf.v.size()), vh(vf.v.size());
    for (size_t i = 0; i < kh.size(); ++i) kh[i] = fp32_to_fp16(kf.v[i]);
    for (size_t i = 0; i < vh.size(); ++i) vh[i] = fp32_to_fp16(vf.v[i]);
    const bool f16 = ct == Type::F16;
    const Tensor kt = f16 ? make_tensor(kh.data(), ct, kf.ne0, slots) : kf.t();
    const Tensor vt = f16 ? make_tensor(vh.data(), ct, vf.ne0, slots) : vf.t();
    Mat q = random_mat(rng_, int64_t{p.n_head} * p.head_dim_k, b.n_tokens(), 1.5f);
    Mat out(int64_t{p.n_head} * p.head_dim_v, b.n_tokens(), NAN);
    be_->attention(out.t(), q.t(), kt, vt, *db, p);

    auto kval = [&](int64_t slot, int64_t i) {
      return f16 ? double{fp16_to_fp32(kh[slot * kf.ne0 + i])} : kf.at(i, slot);
    };
    auto vval = [&](int64_t slot, int64_t i) {
      return f16 ? double{fp16_to_fp32(vh[slot * vf.ne0 + i])} : vf.at(i, slot);
    };
    std::vector<double> want;
    for (int64_t t = 0; t < b.n_tokens(); ++t) {
      const int32_t seq = b.seq[static_cast<size_t>(t)], pos = b.positions[static_cast<size_t>(t)];
      for (int h = 0; h < p.n_head; ++h) {
        const int hk = h / (p.n_head / p.n_head_kv);
        std::vector<double> s(static_cast<size_t>(pos + 1));
        for (int32_t j = 0; j <= pos; ++j) {
          const int64_t slot = slot_of(b, seq, j);
          double d = 0.0;
          for (int i = 0; i < p.head_dim_k; ++i)
            d += double{q.at(int64_t{h} * p.head_dim_k + i, t)} * kval(slot, int64_t{hk} * p.head_dim_k + i);
          s[static_cast<size_t>(j)] = d * p.scale;
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double sum = 0.0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int i = 0; i < p.head_dim_v; ++i) {
          double acc = 0.0;
          for (int32_t j = 0; j <= pos; ++j)
            acc += s[static_cast<size_t>(j)] / sum * vval(slot_of(b, seq, j), int64_t{hk} * p.head_dim_v + i);
          want.push_back(acc);
        }
      }
    }
    // F16 caches: the query and the probabilities are rounded to F16 as llama.cpp does (~1e-3 relative).
    expect_near_all(out.v, want, f16 ? 4e-3 : 2e-5, f16 ? 4e-3 : 2e-5, f16 ? "attention f16" : "attention f32");
  }
}

TEST_P(CpuOpsTest, MoeRouteTakesTopKOfSoftmaxOptionallyRenormalised) {
  const int64_t n_expert = 7, n_used = 3, n_tok = 4;
  Mat logits = random_mat(rng_, n_expert, n_tok, 2.0f);
  for (bool normalize : {false, true}) {
    std::vector<int32_t> ids(static_cast<size_t>(n_used * n_tok), -1);
    Mat w(n_used, n_tok, NAN);
    be_->moe_route(make_tensor(ids.data(), Type::I32, n_used, n_tok), w.t(), logits.t(), normalize);
    for (int64_t t = 0; t < n_tok; ++t) {
      std::vector<double> pr(static_cast<size_t>(n_expert));
      double mx = -1e30, sum = 0.0;
      for (int64_t e = 0; e < n_expert; ++e) mx = std::max(mx, double{logits.at(e, t)});
      for (int64_t e = 0; e < n_expert; ++e) sum += (pr[static_cast<size_t>(e)] = std::exp(logits.at(e, t) - mx));
      std::vector<int> order(static_cast<size_t>(n_expert));
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(),
                [&](int a, int c) { return pr[static_cast<size_t>(a)] > pr[static_cast<size_t>(c)]; });
      double top = 0.0;
      for (int64_t j = 0; j < n_used; ++j) top += pr[static_cast<size_t>(order[static_cast<size_t>(j)])] / sum;
      for (int64_t j = 0; j < n_used; ++j) {
        const int e = order[static_cast<size_t>(j)];
        ASSERT_EQ(ids[static_cast<size_t>(t * n_used + j)], e) << "token " << t << " slot " << j;
        const double want = pr[static_cast<size_t>(e)] / sum / (normalize ? top : 1.0);
        ASSERT_NEAR(w.at(j, t), want, 1e-6);
      }
    }
  }
}

TEST_P(CpuOpsTest, MoeCombineSumsWeightedExpertRows) {
  const int64_t n_embd = 21, n_used = 3, n_tok = 5;
  Mat ex = random_mat(rng_, n_embd, n_used * n_tok), w = random_mat(rng_, n_used, n_tok);
  Mat out(n_embd, n_tok, NAN);
  be_->moe_combine(out.t(), ex.t(), w.t());
  std::vector<double> want;
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t i = 0; i < n_embd; ++i) {
      double s = 0.0;
      for (int64_t j = 0; j < n_used; ++j) s += double{w.at(j, t)} * ex.at(i, t * n_used + j);
      want.push_back(s);
    }
  }
  expect_near_all(out.v, want, 1e-6, 1e-6, "moe_combine");
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuOpsTest, ::testing::ValuesIn(isa_names()), isa_param_name);

}  // namespace
}  // namespace rf::backend::cpu::test
