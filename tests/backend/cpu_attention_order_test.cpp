// Attention over an F16 KV cache, on every kernel table, bit for bit as the reference engine (llama.cpp's CPU
// backend without flash attention, AVX-512 build) sums it: the model golden tests need that order to reproduce its
// F16 / 8-bit roundings. Written here as that engine's registers would do it: q . k and each output element are
// its F16 dot (whole 64-element steps in 4 accumulators x 16 float lanes, folded (a0 + a2) + (a1 + a3) and then
// 256 / 128 / 64 / 32 bits, the rest added in double) over the KV view (cells rounded up to 32, masked ones add
// zeros); soft max sums 16-element chunks folded the same way into a double. Context lengths straddle the 32 / 64
// boundaries where the split between float lanes and double changes, head sizes cover short (double only),
// whole-step and mixed dots; every result is also checked against float64 math.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/half.h"
#include "cpu_test_util.h"

namespace rf::backend::cpu::test {
namespace {

using quant::Type;

float f16_round(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

// One 16-lane register summed as _mm512_reduce_add_ps does: upper half onto lower, down to one lane.
float reduce_register(std::vector<float> r) {
  for (size_t width = r.size() / 2; width >= 1; width /= 2) {
    if (width == 1) return r[0] + r[1];
    if (width == 2) return (r[0] + r[2]) + (r[1] + r[3]);
    for (size_t i = 0; i < width; ++i) r[i] = r[i] + r[i + width];
  }
  return r[0];
}

float ref_f16_dot(const std::vector<float>& x, const std::vector<float>& y) {
  const size_t n = x.size(), whole = n / 64 * 64;
  std::vector<std::vector<float>> reg(4, std::vector<float>(16, 0.0f));
  for (size_t i = 0; i < whole; i += 64) {
    for (size_t r = 0; r < 4; ++r) {
      for (size_t l = 0; l < 16; ++l) reg[r][l] = std::fma(x[i + 16 * r + l], y[i + 16 * r + l], reg[r][l]);
    }
  }
  double sum = 0.0;
  if (whole > 0) {
    for (size_t l = 0; l < 16; ++l) {
      reg[0][l] += reg[2][l];
      reg[1][l] += reg[3][l];
    }
    for (size_t l = 0; l < 16; ++l) reg[0][l] += reg[1][l];
    sum = reduce_register(reg[0]);
  }
  for (size_t i = whole; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

class CpuAttentionOrderTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuAttentionOrderTest, F16CacheMatchesLlamaCppSummationOrderBitForBit) {
  std::mt19937 rng(11);
  auto be = make_backend(GetParam());
  const int block = 16, n_blocks = 40;
  const int64_t slots = int64_t{n_blocks} * block;
  // One decode token per sequence at these context lengths, and a 3-token chunk.
  Batch b = scattered_batch(
      rng, {{0, 1}, {30, 1}, {31, 1}, {32, 1}, {62, 1}, {63, 1}, {64, 1}, {95, 1}, {129, 1}, {60, 3}}, block, n_blocks);
  const auto db = be->prepare_batch(b);
  for (int dk : {32, 64, 96}) {
    AttentionParams p;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.head_dim_k = dk;
    p.head_dim_v = dk == 64 ? 40 : dk;
    p.scale = 1.0f / std::sqrt(static_cast<float>(dk));
    const int dv = p.head_dim_v;
    Mat kf = random_mat(rng, int64_t{p.n_head_kv} * dk, slots, 1.5f),
        vf = random_mat(rng, int64_t{p.n_head_kv} * dv, slots);
    std::vector<uint16_t> kh(kf.v.size()), vh(vf.v.size());
    for (size_t i = 0; i < kh.size(); ++i) kh[i] = fp32_to_fp16(kf.v[i]);
    for (size_t i = 0; i < vh.size(); ++i) vh[i] = fp32_to_fp16(vf.v[i]);
    Mat q = random_mat(rng, int64_t{p.n_head} * dk, b.n_tokens(), 1.5f);
    Mat out(int64_t{p.n_head} * dv, b.n_tokens(), NAN);
    be->attention(out.t(), q.t(), make_tensor(kh.data(), Type::F16, kf.ne0, slots),
                  make_tensor(vh.data(), Type::F16, vf.ne0, slots), *db, p);
    for (int64_t t = 0; t < b.n_tokens(); ++t) {
      const int32_t seq = b.seq[static_cast<size_t>(t)], n_ctx = b.positions[static_cast<size_t>(t)] + 1;
      const int32_t n_view = (n_ctx + 31) / 32 * 32;
      for (int h = 0; h < p.n_head; ++h) {
        const int hk = h / (p.n_head / p.n_head_kv);
        std::vector<float> qh(static_cast<size_t>(dk));
        for (int i = 0; i < dk; ++i) qh[static_cast<size_t>(i)] = f16_round(q.at(int64_t{h} * dk + i, t));
        std::vector<float> s(static_cast<size_t>(n_view), -INFINITY);
        std::vector<double> exact(static_cast<size_t>(n_ctx));
        for (int32_t j = 0; j < n_ctx; ++j) {
          const int64_t slot = slot_of(b, seq, j);
          std::vector<float> k(static_cast<size_t>(dk));
          double e = 0.0;
          for (int i = 0; i < dk; ++i) {
            k[static_cast<size_t>(i)] = fp16_to_fp32(kh[static_cast<size_t>(slot * kf.ne0 + int64_t{hk} * dk + i)]);
            e += double{q.at(int64_t{h} * dk + i, t)} * k[static_cast<size_t>(i)];
          }
          s[static_cast<size_t>(j)] = ref_f16_dot(k, qh) * p.scale;
          exact[static_cast<size_t>(j)] = e * p.scale;
        }
        float mx = -INFINITY;
        for (float v : s) mx = std::max(mx, v);
        double sum = 0.0;
        for (int32_t c = 0; c < n_view; c += 16) {
          std::vector<float> reg(16);
          for (int l = 0; l < 16; ++l)
            reg[static_cast<size_t>(l)] = s[static_cast<size_t>(c + l)] = std::exp(s[static_cast<size_t>(c + l)] - mx);
          sum += reduce_register(reg);
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (float& v : s) v = f16_round(v * inv);
        const double emx = *std::max_element(exact.begin(), exact.end());
        double esum = 0.0;
        for (double& e : exact) esum += (e = std::exp(e - emx));
        for (int d = 0; d < dv; ++d) {
          std::vector<float> col(static_cast<size_t>(n_view), 0.0f);
          double want = 0.0;
          for (int32_t j = 0; j < n_ctx; ++j) {
            const float v = fp16_to_fp32(vh[static_cast<size_t>(slot_of(b, seq, j) * vf.ne0 + int64_t{hk} * dv + d)]);
            col[static_cast<size_t>(j)] = v;
            want += exact[static_cast<size_t>(j)] / esum * v;
          }
          const float ref = ref_f16_dot(s, col), got = out.at(int64_t{h} * dv + d, t);
          ASSERT_EQ(std::memcmp(&ref, &got, sizeof(float)), 0)
              << GetParam() << " dk " << dk << " n_ctx " << n_ctx << " head " << h << " d " << d << ": got " << got
              << " want " << ref;
          // The F16 query and probabilities: ~1e-3 relative from exact math.
          ASSERT_NEAR(got, want, 4e-3 + 4e-3 * std::fabs(want)) << "dk " << dk << " n_ctx " << n_ctx;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, CpuAttentionOrderTest, ::testing::ValuesIn(isa_names()), isa_param_name);

}  // namespace
}  // namespace rf::backend::cpu::test
