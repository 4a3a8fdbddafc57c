// CpuBackend element-wise ops, rope, paged KV store, attention and MoE routing: plain scalar code (the reference
// the SIMD and GPU versions are tested against), threaded over rows / (token, head) pairs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "backend/cpu/cpu_backend.h"
#include "backend/rope_yarn.h"
#include "core/check.h"
#include "core/half.h"

namespace rf::backend::cpu {
namespace {

float* row_f32(Tensor t, int64_t r) { return reinterpret_cast<float*>(static_cast<uint8_t*>(t.data) + r * t.nb1); }

int64_t kv_slot(const Batch& b, int32_t seq, int32_t pos) {
  const auto& table = b.block_tables[static_cast<size_t>(seq)];
  return static_cast<int64_t>(table[static_cast<size_t>(pos / b.kv_block_size)]) * b.kv_block_size +
         pos % b.kv_block_size;
}

// Attention sums in the order of the reference engine. The golden logits come from llama.cpp's CPU backend
// without flash attention, built for AVX-512: there q . k is ggml's F16 dot of the F16-rounded query with each F16
// key, and each output element is the same dot of the F16-rounded probabilities with a V column over the KV view
// (the used cells rounded up to kKvPad, the rest masked to probability 0). That dot sums whole 64-element steps in
// 4 accumulators x 16 float lanes, folds them in a fixed order and adds the elements past the last whole step in
// double; so a 32-wide head's q . k and the output over fewer than 64 cells are plain double sums. Any other order
// moves results by a float ulp, and an ulp across an F16 or 8-bit rounding boundary moves the logits by up to
// ~1e-2 nRMSE (on fortune-qwen2-Q8_0 a float-lane q . k flipped a near-tied argmax five decode steps later). The
// products of two F16 values are exact in float, so fused or separate multiply-adds give the same sums.
constexpr int kLanes = 16;         // float lanes of one accumulator
constexpr int kStep = 4 * kLanes;  // elements per step
constexpr int32_t kKvPad = 32;     // llama.cpp's KV view granularity without flash attention

// The reference's horizontal sum of one accumulator a[16], in place: halves onto halves down to two pairs.
float fold16(float* a) {
  for (int l = 0; l < 8; ++l) a[l] += a[l + 8];
  for (int l = 0; l < 4; ++l) a[l] += a[l + 4];
  return (a[0] + a[2]) + (a[1] + a[3]);
}

// The 4 accumulators of a step a[kStep] (accumulator k / 16, lane k % 16), in place: (acc0 + acc2) + (acc1 + acc3)
// per lane, then fold16.
float fold_step(float* a) {
  for (int l = 0; l < kLanes; ++l) a[l] = (a[l] + a[l + 2 * kLanes]) + (a[l + kLanes] + a[l + 3 * kLanes]);
  return fold16(a);
}

// fold_step for `width` independent steps at once: element k of step d at a[k * width + d]; the sums land in
// a[0 .. width) (the other rows are overwritten).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void fold_step_rows(float* a, int64_t width) {
  const auto row = [&](int k) { return a + k * width; };
  for (int l = 0; l < kLanes; ++l) {
    float* r = row(l);
    const float *r1 = row(l + kLanes), *r2 = row(l + 2 * kLanes), *r3 = row(l + 3 * kLanes);
    for (int64_t d = 0; d < width; ++d) r[d] = (r[d] + r2[d]) + (r1[d] + r3[d]);
  }
  for (int half = kLanes / 2; half >= 2; half /= 2) {
    for (int l = 0; l < half; ++l) {
      float* r = row(l);
      const float* o = row(l + half);
      for (int64_t d = 0; d < width; ++d) r[d] += o[d];
    }
  }
  float *r0 = row(0), *r1 = row(1);
  for (int64_t d = 0; d < width; ++d) r0[d] += r1[d];
}

// out[g * stride] = k . q_g * scale for the n_q query rows q_g = q + g * n of a KV head, each dot of F16 values in
// the reference order. (Also compiled for AVX-512 and AVX2 where the compiler can pick per CPU: vector code gives
// the same bits, every operation being an element-wise float add or an exact product.)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void scores_f16_values(int64_t n, const float* k, const float* q, int n_q, float scale, float* out, int64_t stride) {
  const int64_t whole = n - n % kStep;
  for (int g = 0; g < n_q; ++g) {
    const float* y = q + g * n;
    double sum = 0.0;
    if (whole > 0) {
      float acc[kStep] = {};
      for (int64_t i = 0; i < whole; i += kStep) {
        for (int j = 0; j < kStep; ++j) acc[j] += k[i + j] * y[i + j];
      }
      sum = fold_step(acc);
    }
    for (int64_t i = whole; i < n; ++i) sum += static_cast<double>(k[i] * y[i]);
    out[g * stride] = static_cast<float>(sum) * scale;
  }
}

// s[j] = exp(s[j] - max); returns their sum as the reference's soft max forms it: 16-element chunks folded in
// float, added in double (the masked cells of the view add zeros). Its exp is a vectorised approximation within
// ~1.5 ulp of expf; this one is the C library's.
double exp_sum(float* s, int32_t n, float max) {
  double sum = 0.0;
  for (int32_t c = 0; c < n; c += kLanes) {
    float e[kLanes] = {};
    for (int l = 0; l < kLanes && c + l < n; ++l) e[l] = s[c + l] = std::exp(s[c + l] - max);
    sum += static_cast<double>(fold16(e));
  }
  return sum;
}

}  // namespace

void CpuBackend::rms_norm(Tensor out, Tensor x, Tensor weight, float eps) {
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == x.ne1 && (weight.empty() || weight.ne0 == x.ne0));
  RF_CHECK(weight.empty() || weight.type == quant::Type::F32);
  const auto* w = static_cast<const float*>(weight.data);
  pool_.parallel_for(x.ne1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = row_f32(x, r);
      float* o = row_f32(out, r);
      double sum = 0.0;
      for (int64_t i = 0; i < x.ne0; ++i) sum += static_cast<double>(xr[i] * xr[i]);
      const float mean = static_cast<float>(sum / static_cast<double>(x.ne0));
      const float scale = 1.0f / std::sqrt(mean + eps);
      for (int64_t i = 0; i < x.ne0; ++i) o[i] = w ? (xr[i] * scale) * w[i] : xr[i] * scale;
    }
  });
}

void CpuBackend::add(Tensor out, Tensor a, Tensor b) {
  RF_CHECK(a.ne0 == b.ne0 && out.ne0 == a.ne0 && out.ne1 == a.ne1 && (b.ne1 == a.ne1 || b.ne1 == 1));
  RF_CHECK(b.type == quant::Type::F32);
  pool_.parallel_for(a.ne1, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const float* ar = row_f32(a, r);
      const float* br = row_f32(b, b.ne1 == 1 ? 0 : r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < a.ne0; ++i) o[i] = ar[i] + br[i];
    }
  });
}

void CpuBackend::silu_mul(Tensor out, Tensor gate, Tensor up) {
  RF_CHECK(gate.ne0 == up.ne0 && gate.ne1 == up.ne1 && out.ne0 == gate.ne0 && out.ne1 == gate.ne1);
  pool_.parallel_for(gate.ne1, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const float* g = row_f32(gate, r);
      const float* u = row_f32(up, r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < gate.ne0; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }
  });
}

void CpuBackend::sigmoid_scale(Tensor out, Tensor x, Tensor gate) {
  RF_CHECK(out.ne0 == x.ne0 && out.ne1 == x.ne1 && gate.ne0 == 1 && gate.ne1 == x.ne1);
  RF_CHECK(gate.type == quant::Type::F32);
  pool_.parallel_for(x.ne1, [&](int64_t rb, int64_t re, int) {
    for (int64_t r = rb; r < re; ++r) {
      const float s = 1.0f / (1.0f + std::exp(-row_f32(gate, r)[0]));
      const float* xr = row_f32(x, r);
      float* o = row_f32(out, r);
      for (int64_t i = 0; i < x.ne0; ++i) o[i] = xr[i] * s;
    }
  });
}

void CpuBackend::rope(Tensor x, const DeviceBatch& batch, const RopeParams& p) {
  RF_CHECK(x.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim && x.ne1 == batch.n_tokens());
  RF_CHECK(p.n_rot > 0 && p.n_rot <= p.head_dim && p.n_rot % 2 == 0);
  RF_CHECK(p.freq_factors.empty() || p.freq_factors.ne0 >= p.n_rot / 2);
  RF_CHECK(p.ext_factor == 0.0f || p.n_ctx_orig > 0);
  const auto* ff = static_cast<const float*>(p.freq_factors.data);
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  const int half = p.n_rot / 2;
  const bool yarn = p.ext_factor != 0.0f;
  const YarnRange range = yarn ? yarn_range(p.n_rot, p.n_ctx_orig, p.freq_base, p.beta_fast, p.beta_slow) : YarnRange{};
  pool_.parallel_for(x.ne1, [&](int64_t b, int64_t e, int thread) {
    std::vector<float>& cs = scratch_[static_cast<size_t>(thread)];
    cs.resize(static_cast<size_t>(p.n_rot));
    for (int64_t t = b; t < e; ++t) {
      // cos/sin per frequency i: theta_i = pos * base^(-2i/n_rot) (advanced by repeated multiplication),
      // divided by the frequency factor and scaled by freq_scale; with YaRN, blended back towards the unscaled
      // angle by the ramp. cos and sin are multiplied by attn_factor.
      float theta = static_cast<float>(batch.host().positions[static_cast<size_t>(t)]);
      for (int i = 0; i < half; ++i) {
        const float th_extrap = ff ? theta / ff[i] : theta;
        float th = p.freq_scale * th_extrap;
        if (yarn) {
          const float mix = yarn_ramp(range, i) * p.ext_factor;
          th = th * (1.0f - mix) + th_extrap * mix;
        }
        cs[2 * i] = std::cos(th) * p.attn_factor;
        cs[2 * i + 1] = std::sin(th) * p.attn_factor;
        theta *= theta_scale;
      }
      float* row = row_f32(x, t);
      for (int h = 0; h < p.n_head; ++h) {
        float* v = row + static_cast<int64_t>(h) * p.head_dim;
        for (int i = 0; i < half; ++i) {
          const int i0 = p.mode == RopeMode::kNeox ? i : 2 * i;
          const int i1 = p.mode == RopeMode::kNeox ? i + half : 2 * i + 1;
          const float c = cs[2 * i], s = cs[2 * i + 1];
          const float a0 = v[i0], a1 = v[i1];
          v[i0] = a0 * c - a1 * s;
          v[i1] = a0 * s + a1 * c;
        }
      }
    }
  });
}

void CpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, const DeviceBatch& batch) {
  const Batch& b = batch.host();
  RF_CHECK(k.ne0 == k_cache.ne0 && v.ne0 == v_cache.ne0 && k.ne1 == b.n_tokens() && v.ne1 == b.n_tokens());
  for (int64_t t = 0; t < b.n_tokens(); ++t) {
    const int64_t slot = kv_slot(b, b.seq[static_cast<size_t>(t)], b.positions[static_cast<size_t>(t)]);
    RF_CHECK(slot < k_cache.ne1 && slot < v_cache.ne1);
    for (auto [cache, src] : {std::pair{k_cache, k}, std::pair{v_cache, v}}) {
      auto* dst = static_cast<uint8_t*>(cache.data) + slot * cache.nb1;
      const float* s = row_f32(src, t);
      if (cache.type == quant::Type::F16) {
        auto* h = reinterpret_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < src.ne0; ++i) h[i] = fp32_to_fp16(s[i]);
      } else {
        RF_CHECK(cache.type == quant::Type::F32);
        std::memcpy(dst, s, static_cast<size_t>(src.ne0) * sizeof(float));
      }
    }
  }
}

void CpuBackend::attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const DeviceBatch& batch,
                           const AttentionParams& p) {
  const Batch& b = batch.host();
  RF_CHECK(p.n_head > 0 && p.n_head_kv > 0 && p.n_head % p.n_head_kv == 0);
  RF_CHECK(q.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim_k && q.ne1 == b.n_tokens());
  RF_CHECK(out.ne0 == static_cast<int64_t>(p.n_head) * p.head_dim_v && out.ne1 == b.n_tokens());
  RF_CHECK(k_cache.ne0 == static_cast<int64_t>(p.n_head_kv) * p.head_dim_k);
  RF_CHECK(v_cache.ne0 == static_cast<int64_t>(p.n_head_kv) * p.head_dim_v);
  RF_CHECK((k_cache.type == quant::Type::F16 || k_cache.type == quant::Type::F32) &&
           (v_cache.type == quant::Type::F16 || v_cache.type == quant::Type::F32));
  const int group = p.n_head / p.n_head_kv;
  const bool f16_keys = k_cache.type == quant::Type::F16;
  const bool f16_values = v_cache.type == quant::Type::F16;
  const ActKernels& f16 = table_->for_act(quant::Type::F16);  // exact F16 <-> F32 row conversions
  const int dk = p.head_dim_k, dv = p.head_dim_v;
  // One job per (token, KV head): the group's query heads share each K / V row read (and its F16 conversion).
  pool_.parallel_for(b.n_tokens() * p.n_head_kv, [&](int64_t begin, int64_t end, int thread) {
    std::vector<float>& buf = scratch_[static_cast<size_t>(thread)];
    std::vector<uint16_t>& buf16 = scratch16_[static_cast<size_t>(thread)];
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / p.n_head_kv;
      const int hk = static_cast<int>(job % p.n_head_kv);
      const int32_t seq = b.seq[static_cast<size_t>(t)];
      const int32_t n_ctx = b.positions[static_cast<size_t>(t)] + 1;
      // Cells [0, n_lanes) of the output sums go through the float lanes, the rest (at most kKvPad) through double.
      const int32_t n_view = (n_ctx + kKvPad - 1) / kKvPad * kKvPad;
      const int32_t n_lanes = std::min(n_ctx, n_view - n_view % kStep);
      const int32_t n_tail = n_ctx - n_lanes;
      // scores [group][n_ctx] | queries [group][dk] | one K row [dk] | one V row [dv] | lane sums [group][kStep][dv]
      // | the tail's V rows [n_tail][dv]
      const int64_t lanes_size = n_lanes > 0 ? static_cast<int64_t>(group) * kStep * dv : 0;
      buf.resize(static_cast<size_t>(static_cast<int64_t>(group) * (n_ctx + dk) + dk + dv + lanes_size +
                                     static_cast<int64_t>(n_tail) * dv));
      float* scores = buf.data();
      float* qf = scores + static_cast<int64_t>(group) * n_ctx;
      float* krow = qf + static_cast<int64_t>(group) * dk;
      float* vrow = krow + dk;
      float* lanes = vrow + dv;
      float* vtail = lanes + lanes_size;
      buf16.resize(static_cast<size_t>(std::max(group * dk, n_ctx)));
      // The queries, rounded to F16 for F16 keys (llama.cpp converts them to the keys' type).
      const float* qsrc = row_f32(q, t) + static_cast<int64_t>(hk) * group * dk;
      if (f16_keys) {
        f16.quantize(qsrc, buf16.data(), static_cast<int64_t>(group) * dk);
        f16.dequantize(buf16.data(), qf, static_cast<int64_t>(group) * dk);
      } else {
        std::memcpy(qf, qsrc, static_cast<size_t>(group) * dk * sizeof(float));
      }
      for (int32_t j = 0; j < n_ctx; ++j) {
        const auto* ksrc = static_cast<const uint8_t*>(k_cache.data) + kv_slot(b, seq, j) * k_cache.nb1 +
                           static_cast<size_t>(hk) * dk * (f16_keys ? 2 : 4);
        if (f16_keys) {
          f16.dequantize(ksrc, krow, dk);
          scores_f16_values(dk, krow, qf, group, p.scale, scores + j, n_ctx);
          continue;
        }
        for (int g = 0; g < group; ++g) {
          const float s = table_->dot_f32(dk, qf + static_cast<int64_t>(g) * dk, reinterpret_cast<const float*>(ksrc));
          scores[static_cast<int64_t>(g) * n_ctx + j] = s * p.scale;
        }
      }
      // Probabilities: exp(score - max) * (1 / sum), rounded to F16 for an F16 V cache (llama.cpp multiplies the
      // V cache by them converted to its type).
      for (int g = 0; g < group; ++g) {
        float* sg = scores + static_cast<int64_t>(g) * n_ctx;
        const float inv = static_cast<float>(1.0 / exp_sum(sg, n_ctx, *std::max_element(sg, sg + n_ctx)));
        for (int32_t j = 0; j < n_ctx; ++j) sg[j] *= inv;
        if (f16_values) {
          f16.quantize(sg, buf16.data(), n_ctx);
          f16.dequantize(buf16.data(), sg, n_ctx);
        }
      }
      // Output = probabilities . V columns in the F16 dot's order: cell j's products into lane j % kStep (float
      // adds), the lanes folded, then the tail cells added in double.
      for (int g = 0; g < group && n_lanes > 0 && n_lanes < kStep; ++g) {  // lanes no cell sets (see below)
        float* lg = lanes + static_cast<int64_t>(g) * kStep * dv;
        std::fill(lg + static_cast<int64_t>(n_lanes) * dv, lg + static_cast<int64_t>(kStep) * dv, 0.0f);
      }
      for (int32_t j = 0; j < n_ctx; ++j) {
        float* v = j < n_lanes ? vrow : vtail + static_cast<int64_t>(j - n_lanes) * dv;
        const auto* vsrc = static_cast<const uint8_t*>(v_cache.data) + kv_slot(b, seq, j) * v_cache.nb1 +
                           static_cast<size_t>(hk) * dv * (f16_values ? 2 : 4);
        if (f16_values) {
          f16.dequantize(vsrc, v, dv);
        } else {
          std::memcpy(v, vsrc, static_cast<size_t>(dv) * sizeof(float));
        }
        if (j >= n_lanes) continue;
        for (int g = 0; g < group; ++g) {
          const float pj = scores[static_cast<int64_t>(g) * n_ctx + j];
          float* lane = lanes + (static_cast<int64_t>(g) * kStep + j % kStep) * dv;
          if (j < kStep) {  // the first cell of a lane: 0 + p * v
            for (int d = 0; d < dv; ++d) lane[d] = pj * v[d];
          } else {  // the table's axpy: fused where it can, equal here as the F16 x F16 product is exact
            table_->axpy_f32(dv, pj, v, lane);
          }
        }
      }
      float* o = row_f32(out, t) + static_cast<int64_t>(hk) * group * dv;
      for (int g = 0; g < group && n_lanes > 0; ++g) fold_step_rows(lanes + static_cast<int64_t>(g) * kStep * dv, dv);
      for (int g = 0; g < group; ++g) {
        const float* pg = scores + static_cast<int64_t>(g) * n_ctx + n_lanes;
        const float* lg = lanes + static_cast<int64_t>(g) * kStep * dv;  // folded sums in its first row
        for (int d = 0; d < dv; ++d) {
          double sum = n_lanes > 0 ? lg[d] : 0.0;
          for (int32_t j = 0; j < n_tail; ++j) {
            sum += static_cast<double>(pg[j] * vtail[static_cast<int64_t>(j) * dv + d]);
          }
          o[static_cast<int64_t>(g) * dv + d] = static_cast<float>(sum);
        }
      }
    }
  });
}

void CpuBackend::moe_route(Tensor ids, Tensor weights, Tensor logits, bool normalize) {
  const int64_t n_used = ids.ne0;
  const int64_t n_expert = logits.ne0;
  RF_CHECK(ids.type == quant::Type::I32 && weights.ne0 == n_used && ids.ne1 == logits.ne1 &&
           weights.ne1 == logits.ne1 && n_used <= n_expert);
  std::vector<float> probs(static_cast<size_t>(n_expert));
  std::vector<int32_t> order(static_cast<size_t>(n_expert));
  for (int64_t t = 0; t < logits.ne1; ++t) {
    const float* l = row_f32(logits, t);
    const float mx = *std::max_element(l, l + n_expert);
    double sum = 0.0;
    for (int64_t e = 0; e < n_expert; ++e) sum += (probs[static_cast<size_t>(e)] = std::exp(l[e] - mx));
    for (auto& pr : probs) pr = static_cast<float>(pr / sum);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t c) { return probs[a] > probs[c]; });
    auto* id_row = reinterpret_cast<int32_t*>(static_cast<uint8_t*>(ids.data) + t * ids.nb1);
    float* w_row = row_f32(weights, t);
    float wsum = 0.0f;
    for (int64_t j = 0; j < n_used; ++j) {
      id_row[j] = order[static_cast<size_t>(j)];
      w_row[j] = probs[static_cast<size_t>(order[static_cast<size_t>(j)])];
      wsum += w_row[j];
    }
    if (normalize) {
      for (int64_t j = 0; j < n_used; ++j) w_row[j] /= wsum;
    }
  }
}

void CpuBackend::moe_combine(Tensor out, Tensor expert_out, Tensor weights) {
  const int64_t n_used = weights.ne0;
  RF_CHECK(expert_out.ne1 == n_used * out.ne1 && expert_out.ne0 == out.ne0 && weights.ne1 == out.ne1);
  pool_.parallel_for(out.ne1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* o = row_f32(out, t);
      const float* w = row_f32(weights, t);
      for (int64_t j = 0; j < n_used; ++j) {
        const float* x = row_f32(expert_out, t * n_used + j);
        for (int64_t i = 0; i < out.ne0; ++i) o[i] = j == 0 ? x[i] * w[j] : o[i] + x[i] * w[j];
      }
    }
  });
}

}  // namespace rf::backend::cpu
