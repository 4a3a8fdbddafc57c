#include "model/rounding_ties.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backend/cpu/dot_kernels.h"
#include "core/half.h"
#include "quant/block_bytes.h"

namespace rf::test {
namespace {

using backend::Tensor;
using quant::Type;

float* row_f32(Tensor t, int64_t r) { return reinterpret_cast<float*>(static_cast<uint8_t*>(t.data) + r * t.nb1); }

int rounded(float v) { return std::min(127, quant::round_even(v)); }

}  // namespace

std::string RoundingTie::describe() const {
  char buf[200];
  std::snprintf(buf, sizeof(buf), "forward %d input %d row %lld col %lld (%s activations): %.9g -> %.9g (%.1e relative)",
                forward, call, static_cast<long long>(row), static_cast<long long>(col), weight_type.c_str(),
                static_cast<double>(original), static_cast<double>(nudged), rel_change);
  return buf;
}

bool tie_block(Type weight, int* block) {
  const Type act = backend::cpu::act_type_for(weight);
  if (act == Type::Q8_0 || act == Type::Q8_1) {
    *block = 32;
  } else if (act == Type::Q8_K) {
    *block = 256;
  } else {
    return false;
  }
  return true;
}

float tie_scale(const float* block, int n, int* extreme) {
  float amax = 0.0f, max = 0.0f;
  *extreme = -1;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(block[i]) > amax) {
      amax = std::fabs(block[i]);
      max = block[i];
      *extreme = i;
    }
  }
  if (amax == 0.0f) return 0.0f;
  return n == 32 ? 127.0f / amax : -127.0f / max;  // as the Q8_0/Q8_1 and Q8_K activation quantizers
}

bool tie_nudge(float x, float scale, float* nudged) {
  const float v = x * scale;
  const int q = rounded(v);
  if (scale == 0.0f || v == static_cast<float>(q) || std::fabs(v) >= 127.0f) return false;
  // Move x towards the .5 boundary on v's side of q until its rounding changes.
  const float towards = (v > static_cast<float>(q)) == (scale > 0.0f) ? INFINITY : -INFINITY;
  for (int step = 0; step < 4096; ++step) {
    x = std::nextafter(x, towards);
    if (rounded(x * scale) != q) {
      *nudged = x;
      return true;
    }
  }
  return false;
}

bool tie_nudge_f16(float x, float* nudged) {
  const uint16_t h = fp32_to_fp16(x);
  const float r = fp16_to_fp32(h);
  if (std::isinf(r) || r == x || std::fabs(x) < 6.2e-5f) return false;  // exact, or subnormal F16
  // The neighbouring F16 on x's side of r; the midpoint of the two is exact in F32.
  const bool up = (x > r) == (r > 0.0f);
  const uint16_t other = static_cast<uint16_t>(up ? h + 1 : h - 1);
  const float o = fp16_to_fp32(other);
  if (std::isinf(o)) return false;
  float y = static_cast<float>((static_cast<double>(r) + o) / 2.0);
  if (fp32_to_fp16(y) == h) y = std::nextafter(y, x > r ? INFINITY : -INFINITY);
  if (fp32_to_fp16(y) == h) return false;
  *nudged = y;
  return true;
}

void TieBackend::kv_store(Tensor kc, Tensor vc, Tensor k, Tensor v, const backend::DeviceBatch& b) {
  if (kc.type == Type::F16) visit_input(k, Type::F16);
  if (vc.type == Type::F16) visit_input(v, Type::F16);
  inner_.kv_store(kc, vc, k, v, b);
}

void TieBackend::attention(Tensor out, Tensor q, Tensor kc, Tensor vc, const backend::DeviceBatch& b,
                           const backend::AttentionParams& p) {
  if (kc.type == Type::F16) visit_input(q, Type::F16);
  inner_.attention(out, q, kc, vc, b, p);
}

void TieBackend::set_nudges(std::vector<RoundingTie> nudges) {
  nudges_ = std::move(nudges);
  restart();
}

std::unique_ptr<backend::DeviceBatch> TieBackend::prepare_batch(backend::Batch batch) {
  ++forward_;
  call_ = -1;
  last_input_ = nullptr;
  return inner_.prepare_batch(std::move(batch));
}

void TieBackend::visit_input(Tensor x, Type weight) {
  const bool new_input = x.data != last_input_;
  if (new_input) {
    ++call_;
    last_input_ = x.data;
    for (const RoundingTie& t : nudges_) {
      if (t.forward == forward_ && t.call == call_ && t.row < x.ne1 && t.col < x.ne0) row_f32(x, t.row)[t.col] = t.nudged;
    }
  }
  if (record_rel_ <= 0.0 || forward_ != record_forward_ || x.type != Type::F32) return;
  for (int64_t r = 0; r < x.ne1; ++r) {
    const float* row = row_f32(x, r);
    for_each_tie(weight, row, x.ne0, record_rel_, [&](int64_t j, float nudged) {
      const bool seen = std::any_of(candidates_.begin(), candidates_.end(), [&](const RoundingTie& c) {
        return c.forward == forward_ && c.call == call_ && c.row == r && c.col == j;
      });
      if (seen) return;
      const double rel = std::fabs(static_cast<double>(nudged) - row[j]) / std::fabs(static_cast<double>(row[j]));
      candidates_.push_back({forward_, call_, r, j, row[j], nudged, rel, std::string(quant::type_name(weight))});
    });
  }
}

void TieBackend::matmul(Tensor out, Tensor x, Tensor w) {
  visit_input(x, w.type);
  inner_.matmul(out, x, w);
}

void TieBackend::moe_matmul(Tensor out, Tensor x, Tensor w, Tensor ids) {
  visit_input(x, w.type);
  inner_.moe_matmul(out, x, w, ids);
}

}  // namespace rf::test
