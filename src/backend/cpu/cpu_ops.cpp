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
  // q . k: the F16 x F16 dot with the query rounded to F16 (as llama.cpp's F16 dot does), else the F32 dot; both
  // from the kernel table (the scalar table sums the float products in double).
  const DotFn dot_f16 = table_->for_weight(quant::Type::F16).dot;
  const int dk = p.head_dim_k, dv = p.head_dim_v;
  // One job per (token, KV head): the group's query heads share each K / V row read (and its F16 conversion).
  pool_.parallel_for(b.n_tokens() * p.n_head_kv, [&](int64_t begin, int64_t end, int thread) {
    std::vector<float>& buf = scratch_[static_cast<size_t>(thread)];
    for (int64_t job = begin; job < end; ++job) {
      const int64_t t = job / p.n_head_kv;
      const int hk = static_cast<int>(job % p.n_head_kv);
      const int32_t seq = b.seq[static_cast<size_t>(t)];
      const int32_t n_ctx = b.positions[static_cast<size_t>(t)] + 1;
      // scores [group][n_ctx] | query [group][dk] | acc [group][dv] | one V row [dv]; the F16 query in buf16
      std::vector<uint16_t>& buf16 = scratch16_[static_cast<size_t>(thread)];
      buf16.resize(static_cast<size_t>(group) * dk);
      buf.resize(static_cast<size_t>(group) * (n_ctx + dk + dv) + dv);
      float* scores = buf.data();
      float* qf = scores + static_cast<int64_t>(group) * n_ctx;
      float* acc = qf + static_cast<int64_t>(group) * dk;
      float* vrow = acc + static_cast<int64_t>(group) * dv;
      const float* qsrc = row_f32(q, t) + static_cast<int64_t>(hk) * group * dk;
      for (int g = 0; g < group; ++g) {
        if (f16_keys) {
          uint16_t* qh = buf16.data() + static_cast<int64_t>(g) * dk;
          for (int i = 0; i < dk; ++i) qh[i] = fp32_to_fp16(qsrc[static_cast<int64_t>(g) * dk + i]);
        } else {
          std::memcpy(qf + static_cast<int64_t>(g) * dk, qsrc + static_cast<int64_t>(g) * dk,
                      static_cast<size_t>(dk) * sizeof(float));
        }
      }
      std::vector<float> max_score(static_cast<size_t>(group), -INFINITY);
      for (int32_t j = 0; j < n_ctx; ++j) {
        const auto* krow = static_cast<const uint8_t*>(k_cache.data) + kv_slot(b, seq, j) * k_cache.nb1 +
                           static_cast<size_t>(hk) * dk * (f16_keys ? 2 : 4);
        for (int g = 0; g < group; ++g) {
          const float s =
              f16_keys ? dot_f16(dk, krow, buf16.data() + static_cast<int64_t>(g) * dk)
                       : table_->dot_f32(dk, qf + static_cast<int64_t>(g) * dk, reinterpret_cast<const float*>(krow));
          float& sc = scores[static_cast<int64_t>(g) * n_ctx + j];
          sc = s * p.scale;
          max_score[static_cast<size_t>(g)] = std::max(max_score[static_cast<size_t>(g)], sc);
        }
      }
      // Probabilities (scores * 1/sum); llama.cpp multiplies the F16 V cache by them rounded to F16, and its golden
      // logits need that rounding.
      const ActKernels& f16 = table_->for_act(quant::Type::F16);
      if (f16_values) buf16.resize(static_cast<size_t>(n_ctx));  // (the F16 queries are no longer needed)
      for (int g = 0; g < group; ++g) {
        float* sg = scores + static_cast<int64_t>(g) * n_ctx;
        double sum = 0.0;
        for (int32_t j = 0; j < n_ctx; ++j) {
          sg[j] = std::exp(sg[j] - max_score[static_cast<size_t>(g)]);
          sum += sg[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int32_t j = 0; j < n_ctx; ++j) sg[j] *= inv;
        if (f16_values) {
          f16.quantize(sg, buf16.data(), n_ctx);
          f16.dequantize(buf16.data(), sg, n_ctx);
        }
      }
      std::fill(acc, acc + static_cast<int64_t>(group) * dv, 0.0f);
      for (int32_t j = 0; j < n_ctx; ++j) {
        const auto* vsrc = static_cast<const uint8_t*>(v_cache.data) + kv_slot(b, seq, j) * v_cache.nb1 +
                           static_cast<size_t>(hk) * dv * (f16_values ? 2 : 4);
        const float* v = reinterpret_cast<const float*>(vsrc);
        if (f16_values) {
          f16.dequantize(vsrc, vrow, dv);
          v = vrow;
        }
        for (int g = 0; g < group; ++g) {
          table_->axpy_f32(dv, scores[static_cast<int64_t>(g) * n_ctx + j], v, acc + static_cast<int64_t>(g) * dv);
        }
      }
      float* o = row_f32(out, t) + static_cast<int64_t>(hk) * group * dv;
      std::memcpy(o, acc, static_cast<size_t>(group) * dv * sizeof(float));
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
