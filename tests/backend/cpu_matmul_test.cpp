// CPU backend matmul and MoE expert matmul against a float64 reference written here, on EVERY weight type the
// backend supports (fused dots and the dequantize-then-dot fallback types alike), on every kernel table this CPU
// runs, with odd shapes (row counts that are not multiples of the row tiles, 1 and several tokens).
//
// Reference: out[t][r] = sum_i W[r][i] * A[t][i] in double, with W the weight dequantized by rf::quant (the format
// oracle) and A the activations rounded to the weight type's activation format (rf::quant quantize + dequantize:
// Q8_0 / Q8_1 / Q8_K / F16 / BF16, F32 as is). The backend sums in float, so the tolerance is relative to
// sum |W x A| (the scale of the rounding error), not to the result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/dot_kernels.h"
#include "cpu_test_util.h"
#include "quant/quant.h"

namespace rf::backend::cpu::test {
namespace {

using quant::Type;

// Every type matmul supports (all known ids).
std::vector<Type> matmul_types() {
  std::vector<Type> out;
  for (uint32_t id = 0; id < 64; ++id) {
    const auto tr = quant::type_traits(id);
    if (tr && matmul_supported(tr->type)) out.push_back(tr->type);
  }
  return out;
}

// A weight row of n elements of type t: quantized from random floats where rf::quant has a quantizer, otherwise
// random blocks (re-drawn until the block decodes to finite values of a sane magnitude).
std::vector<uint8_t> random_weight_rows(std::mt19937& rng, Type t, int64_t n, int64_t rows) {
  const auto& tr = quant::traits(t);
  const size_t rb = *quant::row_bytes(t, n);
  std::vector<uint8_t> w(rb * static_cast<size_t>(rows));
  if (quant::can_quantize(t)) {
    for (int64_t r = 0; r < rows; ++r) {
      const auto f = random_floats(rng, n, 0.5f);
      const Status s = quant::quantize(t, f.data(), w.data() + static_cast<size_t>(r) * rb, n);
      EXPECT_TRUE(s.ok()) << s.message();
    }
    return w;
  }
  std::vector<float> dq(static_cast<size_t>(tr.block_size));
  const size_t n_blocks = w.size() / tr.block_bytes;
  for (size_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = w.data() + b * tr.block_bytes;
    for (int attempt = 0;; ++attempt) {
      EXPECT_LT(attempt, 1000) << quant::type_name(t);
      for (size_t i = 0; i < tr.block_bytes; ++i) blk[i] = static_cast<uint8_t>(rng());
      if (!quant::dequantize(t, blk, dq.data(), tr.block_size).ok()) continue;
      float mx = 0.0f;
      bool finite = true;
      for (float v : dq) {
        finite = finite && std::isfinite(v);
        mx = std::max(mx, std::fabs(v));
      }
      if (finite && mx > 1e-3f && mx < 50.0f) break;
    }
  }
  return w;
}

std::vector<float> dequantized(Type t, const uint8_t* data, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  const Status s = quant::dequantize(t, data, out.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

// The activation row as the weight type's dot sees it.
std::vector<float> rounded_activation(Type weight, const float* x, int64_t n) {
  const Type act = act_type_for(weight);
  if (act == Type::F32) return std::vector<float>(x, x + n);
  std::vector<uint8_t> q(*quant::row_bytes(act, n));
  const Status s = quant::quantize(act, x, q.data(), n);
  EXPECT_TRUE(s.ok()) << s.message();
  return dequantized(act, q.data(), n);
}

// Checks out [n_out, n_pairs] against W[expert(p)] . A[act(p)] for each pair p.
void check_pairs(const Mat& out, Type t, const std::vector<std::vector<float>>& w_rows_per_expert, int64_t n_in,
                 const std::vector<std::vector<float>>& acts, const std::vector<int>& expert_of,
                 const std::vector<int>& act_of, const std::string& what) {
  for (int64_t p = 0; p < out.ne1; ++p) {
    const auto& w = w_rows_per_expert[static_cast<size_t>(expert_of[static_cast<size_t>(p)])];
    const auto& a = acts[static_cast<size_t>(act_of[static_cast<size_t>(p)])];
    for (int64_t r = 0; r < out.ne0; ++r) {
      double want = 0.0, mag = 0.0;
      for (int64_t i = 0; i < n_in; ++i) {
        const double prod = static_cast<double>(w[static_cast<size_t>(r * n_in + i)]) * a[static_cast<size_t>(i)];
        want += prod;
        mag += std::fabs(prod);
      }
      // Float accumulation over n_in terms (and F16/BF16 products): ~n * eps relative to sum |products|.
      double tol = 2e-5 * mag + 1e-6;
      if (act_type_for(t) == Type::Q8_1) {
        // Q4_1 / Q5_1 apply the block min m to the activation block's stored fp16 sum s = fp16(d * sum q): up to
        // 2^-11 |m s| per block, with |m| <= 2 max |w| of the block.
        for (int64_t b0 = 0; b0 < n_in; b0 += 32) {
          double bsum = 0.0, wmax = 0.0;
          for (int64_t i = b0; i < b0 + 32; ++i) {
            bsum += a[static_cast<size_t>(i)];
            wmax = std::max(wmax, std::fabs(double{w[static_cast<size_t>(r * n_in + i)]}));
          }
          tol += std::ldexp(2.0 * wmax * std::fabs(bsum), -11);
        }
      }
      const double got = out.at(r, p);
      ASSERT_LE(std::fabs(got - want), tol)
          << what << " " << quant::type_name(t) << " pair " << p << " row " << r << " got " << got << " want " << want;
    }
  }
}

class CpuMatmulTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuMatmulTest, EveryWeightTypeMatchesFloat64ReferenceOnOddShapes) {
  std::mt19937 rng(1234);
  auto be = make_backend(GetParam());
  const auto types = matmul_types();
  ASSERT_GE(types.size(), 27u);  // F32 F16 BF16, Q4_0..Q8_1 (6), Q2_K..Q8_K (6), 9 IQ, TQ1_0 TQ2_0, MXFP4
  for (Type t : types) {
    const int64_t bs = quant::traits(t).block_size;
    const int64_t n_in = bs == 256 ? 3 * 256 : 416;  // odd block counts (3 super-blocks / 13 blocks of 32)
    const int64_t n_out = 37;                        // not a multiple of any row tile
    auto wbytes = random_weight_rows(rng, t, n_in, n_out);
    const Tensor w = make_tensor(wbytes.data(), t, n_in, n_out);
    const auto wf = dequantized(t, wbytes.data(), n_in * n_out);
    for (int64_t n_tok : {1, 2, 5, 9}) {
      Mat x = random_mat(rng, n_in, n_tok);
      Mat out(n_out, n_tok, NAN);
      be->matmul(out.t(), x.t(), w);
      std::vector<std::vector<float>> acts;
      std::vector<int> expert_of(static_cast<size_t>(n_tok), 0), act_of(static_cast<size_t>(n_tok));
      for (int64_t i = 0; i < n_tok; ++i) {
        acts.push_back(rounded_activation(t, x.row(i), n_in));
        act_of[static_cast<size_t>(i)] = static_cast<int>(i);
      }
      check_pairs(out, t, {wf}, n_in, acts, expert_of, act_of, GetParam() + " n_tok " + std::to_string(n_tok));
      if (HasFatalFailure()) return;
    }
  }
}

TEST_P(CpuMatmulTest, ExpertMatmulPicksEachTokensExpertsWithSharedAndPerSlotInputs) {
  std::mt19937 rng(99);
  auto be = make_backend(GetParam());
  const int64_t n_expert = 5, n_used = 2, n_tok = 3, n_out = 19;
  for (Type t : {Type::Q4_0, Type::Q4_K, Type::F16, Type::IQ2_XS, Type::MXFP4}) {
    const int64_t n_in = quant::traits(t).block_size == 256 ? 512 : 96;
    auto wbytes = random_weight_rows(rng, t, n_in, n_out * n_expert);
    const Tensor w = make_tensor(wbytes.data(), t, n_in, n_out, n_expert);
    std::vector<std::vector<float>> wf;
    for (int64_t e = 0; e < n_expert; ++e) {
      wf.push_back(dequantized(t, wbytes.data() + static_cast<size_t>(e) * w.nb2, n_in * n_out));
    }
    // Token t uses experts ids[t] (distinct per token, not sorted).
    std::vector<int32_t> ids = {3, 0, 4, 2, 1, 3};
    const Tensor ids_t = make_tensor(ids.data(), Type::I32, n_used, n_tok);
    for (bool shared : {true, false}) {
      Mat x = random_mat(rng, n_in, shared ? n_tok : n_tok * n_used);
      Mat out(n_out, n_used * n_tok, NAN);
      be->moe_matmul(out.t(), x.t(), w, ids_t);
      std::vector<std::vector<float>> acts;
      for (int64_t i = 0; i < x.ne1; ++i) acts.push_back(rounded_activation(t, x.row(i), n_in));
      std::vector<int> expert_of, act_of;
      for (int64_t tk = 0; tk < n_tok; ++tk) {
        for (int64_t j = 0; j < n_used; ++j) {
          expert_of.push_back(ids[static_cast<size_t>(tk * n_used + j)]);
          act_of.push_back(static_cast<int>(shared ? tk : tk * n_used + j));
        }
      }
      check_pairs(out, t, wf, n_in, acts, expert_of, act_of, GetParam() + (shared ? " shared" : " per-slot"));
      if (HasFatalFailure()) return;
    }
  }
}

TEST_P(CpuMatmulTest, MultiRowKernelsAreBitwiseEqualToTheSingleRowDot) {
  const KernelTable* table = find_kernel_table(GetParam());
  ASSERT_NE(table, nullptr);
  std::mt19937 rng(5);
  int checked = 0;
  for (Type t : matmul_types()) {
    const TypeKernels& k = table->for_weight(t);
    if (k.dot_rows == nullptr) continue;
    const int64_t bs = quant::traits(t).block_size;
    for (int64_t n_in :
         {bs == 256 ? 768 : 416, bs == 256 ? 512 : 256, bs == 256 ? 256 : 4256}) {  // odd / even / >64 pairs
      const int64_t n_w = 7;
      auto wbytes = random_weight_rows(rng, t, n_in, n_w);
      const size_t ws = wbytes.size() / n_w;
      for (int64_t n_act : {1, 2, 3, 5, 9}) {
        const size_t xs = *quant::row_bytes(k.act_type, n_in);
        std::vector<uint8_t> act(xs * static_cast<size_t>(n_act));
        for (int64_t a = 0; a < n_act; ++a) {
          const auto x = random_floats(rng, n_in);
          table->for_act(k.act_type).quantize(x.data(), act.data() + static_cast<size_t>(a) * xs, n_in);
        }
        const size_t os = static_cast<size_t>(n_w) + 3;  // padded output rows: the kernel honours the stride
        std::vector<float> out(os * static_cast<size_t>(n_act), -7.0f);
        k.dot_rows(n_in, wbytes.data(), ws, n_w, act.data(), xs, n_act, out.data(), os);
        for (int64_t a = 0; a < n_act; ++a) {
          for (int64_t r = 0; r < n_w; ++r) {
            const float want = k.dot(n_in, wbytes.data() + static_cast<size_t>(r) * ws, act.data() + a * xs);
            const float got = out[static_cast<size_t>(a) * os + static_cast<size_t>(r)];
            ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
                << quant::type_name(t) << " n_in " << n_in << " n_act " << n_act << " row " << r << " act " << a << ": "
                << got << " vs " << want;
          }
          for (size_t pad = static_cast<size_t>(n_w); pad < os; ++pad) ASSERT_EQ(out[a * os + pad], -7.0f);
        }
        ++checked;
      }
    }
  }
  if (GetParam() == "avx2" || GetParam() == "avx512") {
    EXPECT_GE(checked, 60);
  }
}

// The backend hands kernels that tile for the caches themselves (dot_rows_blocks) a thread's whole row range and
// every token at once: many activation rows (past the kernels' internal activation chunks, with partial register
// tiles) and many weight rows, the last one ending exactly at the end of the buffer (ASan sees any over-read).
TEST_P(CpuMatmulTest, MultiRowKernelsStayBitwiseEqualOnLargeBatches) {
  const KernelTable* table = find_kernel_table(GetParam());
  ASSERT_NE(table, nullptr);
  std::mt19937 rng(6);
  for (Type t : matmul_types()) {
    const TypeKernels& k = table->for_weight(t);
    if (k.dot_rows == nullptr) continue;
    const int64_t bs = quant::traits(t).block_size;
    const int64_t n_in = bs == 256 ? 512 : 352;  // 11 blocks of 32: an odd tail block
    const int64_t n_w = 37, n_act = 70;
    const auto wbytes = random_weight_rows(rng, t, n_in, n_w);
    const size_t ws = wbytes.size() / n_w;
    const size_t xs = *quant::row_bytes(k.act_type, n_in);
    std::vector<uint8_t> act(xs * static_cast<size_t>(n_act));
    for (int64_t a = 0; a < n_act; ++a) {
      const auto x = random_floats(rng, n_in);
      table->for_act(k.act_type).quantize(x.data(), act.data() + static_cast<size_t>(a) * xs, n_in);
    }
    const size_t os = static_cast<size_t>(n_w) + 5;
    std::vector<float> out(os * static_cast<size_t>(n_act), -7.0f);
    k.dot_rows(n_in, wbytes.data(), ws, n_w, act.data(), xs, n_act, out.data(), os);
    for (int64_t a = 0; a < n_act; ++a) {
      for (int64_t r = 0; r < n_w; ++r) {
        const float want = k.dot(n_in, wbytes.data() + static_cast<size_t>(r) * ws, act.data() + a * xs);
        const float got = out[static_cast<size_t>(a) * os + static_cast<size_t>(r)];
        ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
            << quant::type_name(t) << " row " << r << " act " << a << ": " << got << " vs " << want;
      }
      for (size_t pad = static_cast<size_t>(n_w); pad < os; ++pad) ASSERT_EQ(out[a * os + pad], -7.0f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuMatmulTest, ::testing::ValuesIn(isa_names()), isa_param_name);

}  // namespace
}  // namespace rf::backend::cpu::test
