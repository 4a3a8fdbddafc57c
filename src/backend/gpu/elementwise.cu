// Row-wise kernels: RMS norm, add, SiLU gate, rope, paged KV store, row gather, MoE routing and combining.
// Numerics follow the CPU reference ops (src/backend/cpu/cpu_ops.cpp) up to float summation order.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backend/gpu/elementwise.h"

#include "backend/gpu/act_quant.cuh"
#include "backend/gpu/rope.cuh"
#include "backend/rope_yarn.h"

namespace rf::gpu {
namespace {

constexpr int kThreads = 256;  // a multiple of both wavefront sizes
constexpr int kRopeHeads = 8;  // rope_store_kernel: heads per thread, sharing one angle (cosf / sinf and its powers)

RF_DEVICE int64_t global_thread() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }

unsigned blocks_for(int64_t items, int threads) { return static_cast<unsigned>((items + threads - 1) / threads); }

Status launch_status(const char* what) {
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, what);
}

// One block per row.
__global__ void __launch_bounds__(kThreads)
    rms_norm_kernel(RowsF32 out, RowsF32 x, const float* __restrict__ weight, float eps) {
  pdl_prologue();
  __shared__ float scratch[kMaxWarpsPerBlock];
  const int64_t r = blockIdx.x;
  const float* xr = x.data + r * x.stride;
  float* o = out.data + r * out.stride;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < x.ne0; i += blockDim.x) sum += xr[i] * xr[i];
  sum = block_reduce_sum(sum, scratch);
  const float scale = rms_scale(sum, x.ne0, eps);
  for (int64_t i = threadIdx.x; i < x.ne0; i += blockDim.x) {
    const float v = xr[i] * scale;
    o[i] = weight ? v * weight[i] : v;
  }
}

// One block per row, rows of whole float4s (16-byte aligned): every thread loads its first kNormVecs float4s before
// the reduction and keeps them in registers, so a decode row (4096 floats, 1024 threads) costs one round trip to
// memory each way instead of a dependent load/store chain per element (16 us -> a few us on the H100).
constexpr int kNormVecs = 4;

// kAdd: the row is first a + b (the residual add), written to x, then normalised into out (out may alias a or b:
// every thread reads its elements before the block-wide reduction and writes only those elements after it).
template <bool kAdd>
__global__ void __launch_bounds__(1024)
    rms_norm_vec_kernel(RowsF32 out, RowsF32 x, RowsF32 a, RowsF32 b, const float* __restrict__ weight, float eps) {
  pdl_prologue();
  __shared__ float scratch[kMaxWarpsPerBlock];
  const int64_t r = blockIdx.x;
  auto* xr = reinterpret_cast<float4*>(x.data + r * x.stride);
  auto* o = reinterpret_cast<float4*>(out.data + r * out.stride);
  const auto* w = reinterpret_cast<const float4*>(weight);
  const int64_t n4 = x.ne0 / 4;
  const int64_t step = blockDim.x;
  auto load = [&](int64_t i) {
    if (!kAdd) return xr[i];
    const float4 p = reinterpret_cast<const float4*>(a.data + r * a.stride)[i];
    const float4 q = reinterpret_cast<const float4*>(b.data + r * b.stride)[i];
    const float4 t = make_float4(p.x + q.x, p.y + q.y, p.z + q.z, p.w + q.w);
    xr[i] = t;
    return t;
  };
  float4 v[kNormVecs];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kNormVecs; ++k) {
    const int64_t i = threadIdx.x + k * step;
    v[k] = i < n4 ? load(i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    sum += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
  }
  for (int64_t i = threadIdx.x + kNormVecs * step; i < n4; i += step) {
    const float4 t = load(i);
    sum += t.x * t.x + t.y * t.y + t.z * t.z + t.w * t.w;
  }
  sum = block_reduce_sum(sum, scratch);
  const float scale = rms_scale(sum, x.ne0, eps);
  auto emit = [&](int64_t i, float4 t) {
    t = make_float4(t.x * scale, t.y * scale, t.z * scale, t.w * scale);
    if (w != nullptr) {
      const float4 g = w[i];
      t = make_float4(t.x * g.x, t.y * g.y, t.z * g.z, t.w * g.w);
    }
    o[i] = t;
  };
#pragma unroll
  for (int k = 0; k < kNormVecs; ++k) {
    const int64_t i = threadIdx.x + k * step;
    if (i < n4) emit(i, v[k]);
  }
  for (int64_t i = threadIdx.x + kNormVecs * step; i < n4; i += step) emit(i, xr[i]);
}

// Rows of whole 256-element chunks (at most 64): warp w takes chunks w, w + warps, ... (at most kChunks), each lane
// kQuantPerLane consecutive elements of a chunk, all held in registers from the load to the store, so the row's
// values are read once and (kQuant 32 / 256) quantized for the int8 products straight from registers
// (quantize_warp_values). kAdd as rms_norm_vec_kernel. The norm and its fused form take the same sums, so they give
// the same bits; kChunks 1 (rows of at most one chunk per warp, as decode's) gives the same bits as kMaxNormChunks
// with a quarter of the code: the kernel runs on one SM per row, from a cold instruction cache. The norm weights
// (no kernel writes them) are loaded before the wait for the previous kernel.
constexpr int kMaxNormChunks = 4;  // per warp
template <bool kAdd, int kQuant, int kChunks>
__global__ void __launch_bounds__(1024) rms_norm_rows_kernel(RowsF32 out, RowsF32 x, RowsF32 a, RowsF32 b,
                                                             const float* __restrict__ weight, float eps,
                                                             Int8Rows rows) {
  grid_dependents_launch();
  __shared__ float scratch[kMaxWarpsPerBlock];
  constexpr int kPer = kQuantPerLane, kVecs = kPer / 4;
  const int64_t r = blockIdx.x;
  const int n_warps = static_cast<int>(blockDim.x) / kWarpSize;
  const int64_t n_chunks = x.ne0 / 256;
  auto* xr = reinterpret_cast<float4*>(x.data + r * x.stride);
  const auto* ar = reinterpret_cast<const float4*>(a.data + r * a.stride);
  const auto* br = reinterpret_cast<const float4*>(b.data + r * b.stride);
  const auto index = [&](int64_t c, int f) { return (c * 256 + static_cast<int64_t>(lane_id()) * kPer) / 4 + f; };
  const auto* g = reinterpret_cast<const float4*>(weight);
  float4 gw[kChunks][kVecs];
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = warp_id() + static_cast<int64_t>(j) * n_warps;
#pragma unroll
    for (int f = 0; f < kVecs; ++f) {
      gw[j][f] = g != nullptr && c < n_chunks ? g[index(c, f)] : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    }
  }
  grid_dependency_wait();
  float4 v[kChunks][kVecs];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = warp_id() + static_cast<int64_t>(j) * n_warps;
#pragma unroll
    for (int f = 0; f < kVecs; ++f) {
      float4 t = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (c < n_chunks) {
        if (kAdd) {
          const float4 p = ar[index(c, f)], q = br[index(c, f)];
          t = make_float4(p.x + q.x, p.y + q.y, p.z + q.z, p.w + q.w);
          xr[index(c, f)] = t;
        } else {
          t = xr[index(c, f)];
        }
      }
      v[j][f] = t;
      sum += squares(t);
    }
  }
  sum = block_reduce_sum(sum, scratch);
  const float scale = rms_scale(sum, x.ne0, eps);
  auto* o = reinterpret_cast<float4*>(out.data + r * out.stride);
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
    const int64_t c = warp_id() + static_cast<int64_t>(j) * n_warps;
    if (c >= n_chunks) break;  // uniform across the warp
    float q[kPer];
#pragma unroll
    for (int f = 0; f < kVecs; ++f) {
      float4 t = v[j][f];
      t = make_float4(t.x * scale, t.y * scale, t.z * scale, t.w * scale);
      if (g != nullptr) {
        const float4 w = gw[j][f];
        t = make_float4(t.x * w.x, t.y * w.y, t.z * w.z, t.w * w.w);
      }
      o[index(c, f)] = t;
      q[4 * f] = t.x;
      q[4 * f + 1] = t.y;
      q[4 * f + 2] = t.z;
      q[4 * f + 3] = t.w;
    }
    if constexpr (kQuant != 0) {
      quantize_warp_values<kQuant>(q, true, c * 256 + static_cast<int64_t>(lane_id()) * kPer,
                                   rows.q + r * rows.q_stride, rows.d + r * rows.d_stride, rows.s + r * rows.s_stride);
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

bool vec_rows(const RowsF32& r) { return r.ne0 % 4 == 0 && r.stride % 4 == 0 && aligned16(r.data); }

// Threads for one row: its float4s spread over kNormVecs per thread, a multiple of 64 (both wavefront sizes).
int norm_threads(int64_t ne0) {
  const int64_t per_pass = (ne0 / 4 + kNormVecs - 1) / kNormVecs;
  return static_cast<int>(std::min<int64_t>(1024, std::max<int64_t>(64, (per_pass + 63) / 64 * 64)));
}

__global__ void add_kernel(RowsF32 out, RowsF32 a, RowsF32 b) {
  pdl_prologue();
  const int64_t t = global_thread();
  if (t >= a.ne0 * a.rows) return;
  const int64_t r = t / a.ne0, i = t % a.ne0;
  out.data[r * out.stride + i] = a.data[r * a.stride + i] + b.data[(b.rows == 1 ? 0 : r) * b.stride + i];
}

__global__ void silu_mul_kernel(RowsF32 out, RowsF32 gate, RowsF32 up) {
  pdl_prologue();
  const int64_t t = global_thread();
  if (t >= gate.ne0 * gate.rows) return;
  const int64_t r = t / gate.ne0, i = t % gate.ne0;
  const float g = gate.data[r * gate.stride + i];
  out.data[r * out.stride + i] = silu_times(g, up.data[r * up.stride + i]);
}

// silu_mul_kernel's values, one warp per 256 of a row (row blockIdx.y), also quantized into rows (kBlock 32 / 256).
template <int kBlock>
__global__ void __launch_bounds__(kThreads) silu_mul_quant_kernel(RowsF32 out, RowsF32 gate, RowsF32 up, Int8Rows rows) {
  pdl_prologue();
  constexpr int kPer = kQuantPerLane;
  const int64_t r = blockIdx.y;
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id()) * 256;
  if (base >= gate.ne0) return;  // uniform across the warp
  const int64_t e0 = base + static_cast<int64_t>(lane_id()) * kPer;
  const bool live = e0 < gate.ne0;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    v[j] = 0.0f;
    if (live) {
      const float g = gate.data[r * gate.stride + e0 + j];
      v[j] = silu_times(g, up.data[r * up.stride + e0 + j]);
      out.data[r * out.stride + e0 + j] = v[j];
    }
  }
  quantize_warp_values<kBlock>(v, live, e0, rows.q + r * rows.q_stride, rows.d + r * rows.d_stride,
                               rows.s + r * rows.s_stride);
}

__global__ void sigmoid_scale_kernel(RowsF32 out, RowsF32 x, RowsF32 gate) {
  pdl_prologue();
  const int64_t t = global_thread();
  if (t >= x.ne0 * x.rows) return;
  const int64_t r = t / x.ne0, i = t % x.ne0;
  const float s = 1.0f / (1.0f + expf(-gate.data[r * gate.stride]));
  out.data[r * out.stride + i] = x.data[r * x.stride + i] * s;
}

// Rotates pair i of head vector v (token position pos) as the CPU reference does.
RF_DEVICE void rope_pair(float* v, int i, int32_t pos, const RopeArgs& a, const backend::YarnRange& yarn, int* i0,
                         int* i1) {
  float c = 0.0f, s = 0.0f;
  rope_angle(i, pos, a, yarn, &c, &s);
  rope_rotate(v, i, c, s, a, i0, i1);
}

// One thread per (token, head, rotated pair).
__global__ void rope_kernel(RowsF32 x, const int32_t* __restrict__ positions, RopeArgs a, backend::YarnRange yarn) {
  pdl_prologue();
  const int half = a.n_rot / 2;
  const int64_t t = global_thread();
  if (t >= x.rows * a.n_head * half) return;
  const int i = static_cast<int>(t % half);
  const int h = static_cast<int>((t / half) % a.n_head);
  const int64_t tok = t / (static_cast<int64_t>(half) * a.n_head);
  int i0 = 0, i1 = 0;
  rope_pair(x.data + tok * x.stride + static_cast<int64_t>(h) * a.head_dim, i, positions[tok], a, yarn, &i0, &i1);
}

template <bool kF16>
RF_DEVICE void cache_put(void* cache, int64_t at, float v) {
  if (kF16) {
    static_cast<__half*>(cache)[at] = __float2half_rn(v);
  } else {
    static_cast<float*>(cache)[at] = v;
  }
}

// rope of q and of k, and the KV store of k (rotated) and v, in one launch: threads [0, nq) rotate one q pair (as
// rope_kernel) in up to kRopeHeads heads with one angle, [nq, nq + nk) take one k pair (a rotated pair, or two
// dimensions past n_rot) of up to kRopeHeads heads into k and its cache rows, the rest copy v into its cache row.
template <bool kF16K, bool kF16V>
__global__ void rope_store_kernel(RowsF32 q, RopeArgs aq, RowsF32 k, RopeArgs ak, RowsF32 v,
                                  const int32_t* __restrict__ positions, const int32_t* __restrict__ slots,
                                  void* __restrict__ k_cache, int64_t k_stride, void* __restrict__ v_cache,
                                  int64_t v_stride, backend::YarnRange yarn) {
  pdl_prologue();
  const int64_t t = global_thread();
  const int qhalf = aq.n_rot / 2;
  const int qgroups = (aq.n_head + kRopeHeads - 1) / kRopeHeads;
  const int64_t nq = q.rows * qgroups * qhalf;
  const int kslots = ak.head_dim / 2;
  const int kgroups = (ak.n_head + kRopeHeads - 1) / kRopeHeads;
  const int64_t nk = k.rows * kgroups * kslots;
  if (t < nq) {  // one angle, up to kRopeHeads heads
    const int i = static_cast<int>(t % qhalf);
    const int hg = static_cast<int>((t / qhalf) % qgroups);
    const int64_t tok = t / (static_cast<int64_t>(qhalf) * qgroups);
    float c = 0.0f, sn = 0.0f;
    rope_angle(i, positions[tok], aq, yarn, &c, &sn);
    for (int h = hg * kRopeHeads; h < min(aq.n_head, (hg + 1) * kRopeHeads); ++h) {
      int i0 = 0, i1 = 0;
      rope_rotate(q.data + tok * q.stride + static_cast<int64_t>(h) * aq.head_dim, i, c, sn, aq, &i0, &i1);
    }
  } else if (t < nq + nk) {
    const int64_t u = t - nq;
    const int j = static_cast<int>(u % kslots);
    const int hg = static_cast<int>((u / kslots) % kgroups);
    const int64_t tok = u / (static_cast<int64_t>(kslots) * kgroups);
    const bool rotated = j < ak.n_rot / 2;
    float c = 0.0f, sn = 0.0f;
    if (rotated) rope_angle(j, positions[tok], ak, yarn, &c, &sn);
    const int64_t slot_row = static_cast<int64_t>(slots[tok]) * k_stride;
    for (int h = hg * kRopeHeads; h < min(ak.n_head, (hg + 1) * kRopeHeads); ++h) {
      float* head = k.data + tok * k.stride + static_cast<int64_t>(h) * ak.head_dim;
      int i0 = 0, i1 = 0;
      if (rotated) {
        rope_rotate(head, j, c, sn, ak, &i0, &i1);
      } else {
        i0 = ak.n_rot + 2 * (j - ak.n_rot / 2);
        i1 = i0 + 1;
      }
      const int64_t row = slot_row + static_cast<int64_t>(h) * ak.head_dim;
      cache_put<kF16K>(k_cache, row + i0, head[i0]);
      cache_put<kF16K>(k_cache, row + i1, head[i1]);
    }
  } else if (t < nq + nk + v.rows * v.ne0) {
    const int64_t u = t - nq - nk;
    const int64_t r = u / v.ne0, i = u % v.ne0;
    cache_put<kF16V>(v_cache, static_cast<int64_t>(slots[r]) * v_stride + i, v.data[r * v.stride + i]);
  }
}

template <bool kF16>
__global__ void kv_store_kernel(void* __restrict__ cache, int64_t cache_stride, RowsF32 src,
                                const int32_t* __restrict__ slots) {
  pdl_prologue();
  const int64_t t = global_thread();
  if (t >= src.ne0 * src.rows) return;
  const int64_t r = t / src.ne0, i = t % src.ne0;
  cache_put<kF16>(cache, static_cast<int64_t>(slots[r]) * cache_stride + i, src.data[r * src.stride + i]);
}

__global__ void gather_rows_kernel(RowsF32 out, RowsF32 x, const int32_t* __restrict__ rows) {
  pdl_prologue();
  const int64_t t = global_thread();
  if (t >= out.ne0 * out.rows) return;
  const int64_t r = t / out.ne0, i = t % out.ne0;
  out.data[r * out.stride + i] = x.data[static_cast<int64_t>(rows[r]) * x.stride + i];
}

// One thread per token; the expert probabilities live in dynamic shared memory (a float per expert).
__global__ void moe_route_kernel(int32_t* __restrict__ ids, int64_t ids_stride, RowsF32 weights, RowsF32 logits,
                                 int n_used, bool normalize) {
  pdl_prologue();
  extern __shared__ float probs[];
  const int64_t t = blockIdx.x;
  const int64_t n_expert = logits.ne0;
  const float* l = logits.data + t * logits.stride;
  float mx = l[0];
  for (int64_t e = 1; e < n_expert; ++e) mx = fmaxf(mx, l[e]);
  double sum = 0.0;
  for (int64_t e = 0; e < n_expert; ++e) {
    probs[e] = expf(l[e] - mx);
    sum += probs[e];
  }
  for (int64_t e = 0; e < n_expert; ++e) probs[e] = static_cast<float>(probs[e] / sum);
  int32_t* id_row = ids + t * ids_stride;
  float* w_row = weights.data + t * weights.stride;
  float wsum = 0.0f;
  for (int j = 0; j < n_used; ++j) {
    int best = -1;
    for (int64_t e = 0; e < n_expert; ++e) {  // strict '>' keeps the lowest id among equals (a stable order)
      if (probs[e] >= 0.0f && (best < 0 || probs[e] > probs[best])) best = static_cast<int>(e);
    }
    id_row[j] = best;
    w_row[j] = probs[best];
    wsum += w_row[j];
    probs[best] = -1.0f;  // taken
  }
  if (normalize) {
    for (int j = 0; j < n_used; ++j) w_row[j] /= wsum;
  }
}

__global__ void moe_combine_kernel(RowsF32 out, RowsF32 expert_out, RowsF32 weights) {
  pdl_prologue();
  const int64_t t = global_thread();
  if (t >= out.ne0 * out.rows) return;
  const int64_t r = t / out.ne0, i = t % out.ne0;
  const int64_t n_used = weights.ne0;
  const float* w = weights.data + r * weights.stride;
  float acc = 0.0f;
  for (int64_t j = 0; j < n_used; ++j) {
    const float v = expert_out.data[(r * n_used + j) * expert_out.stride + i] * w[j];
    acc = j == 0 ? v : acc + v;
  }
  out.data[r * out.stride + i] = acc;
}

}  // namespace

// rms_norm_rows_kernel takes rows of 256 .. 64 x 256 elements; its block: 32 threads per chunk (a multiple of 64,
// at most 1024), so that 64-wide warps too hold every chunk (kMaxNormChunks each).
bool rows_kernel_fits(int64_t ne0) { return ne0 % 256 == 0 && ne0 / 256 <= 64; }
int rows_kernel_threads(int64_t ne0) { return static_cast<int>(std::min<int64_t>(1024, (ne0 / 256 * 32 + 63) / 64 * 64)); }

template <bool kAdd, int kQuant>
void launch_norm_rows(RowsF32 out, RowsF32 x, RowsF32 a, RowsF32 b, const float* weight, float eps,
                      const Int8Rows& rows, int warp_size, gpuStream_t stream) {
  const int threads = rows_kernel_threads(x.ne0);
  // One chunk per warp when the block's warps hold them all.
  const auto kernel = x.ne0 / 256 <= threads / warp_size ? rms_norm_rows_kernel<kAdd, kQuant, 1>
                                                         : rms_norm_rows_kernel<kAdd, kQuant, kMaxNormChunks>;
  launch_kernel(kernel, static_cast<unsigned>(x.rows), threads, 0, stream, out, x, a, b, weight, eps, rows);
}

Status rms_norm(RowsF32 out, RowsF32 x, const float* weight, float eps, int warp_size, gpuStream_t stream) {
  if (x.rows == 0) return ok_status();
  if (vec_rows(x) && vec_rows(out) && (weight == nullptr || aligned16(weight))) {
    if (rows_kernel_fits(x.ne0)) {
      launch_norm_rows<false, 0>(out, x, x, x, weight, eps, Int8Rows{}, warp_size, stream);
    } else {
      launch_kernel(rms_norm_vec_kernel<false>, static_cast<unsigned>(x.rows), norm_threads(x.ne0), 0, stream, out, x,
                    x, x, weight, eps);
    }
  } else {
    launch_kernel(rms_norm_kernel, static_cast<unsigned>(x.rows), kThreads, 0, stream, out, x, weight, eps);
  }
  return launch_status("rms_norm launch");
}

int norm_row_warps(int64_t n_in, int warp_size) {
  if (!rows_kernel_fits(n_in)) return 0;
  const int warps = rows_kernel_threads(n_in) / warp_size;
  return n_in / 256 <= warps ? warps : 0;
}

bool can_add_rms_norm(RowsF32 sum, RowsF32 a, RowsF32 b, RowsF32 out, const float* weight) {
  return vec_rows(sum) && vec_rows(a) && vec_rows(b) && vec_rows(out) && (weight == nullptr || aligned16(weight)) &&
         a.rows == sum.rows && b.rows == sum.rows && out.rows == sum.rows && a.ne0 == sum.ne0 && b.ne0 == sum.ne0 &&
         out.ne0 == sum.ne0;
}

Status add_rms_norm(RowsF32 sum, RowsF32 a, RowsF32 b, RowsF32 out, const float* weight, float eps, int warp_size,
                    gpuStream_t stream) {
  if (!can_add_rms_norm(sum, a, b, out, weight)) return Status::error("gpu add_rms_norm: unsupported row layout");
  if (sum.rows == 0) return ok_status();
  if (rows_kernel_fits(sum.ne0)) {
    launch_norm_rows<true, 0>(out, sum, a, b, weight, eps, Int8Rows{}, warp_size, stream);
  } else {
    launch_kernel(rms_norm_vec_kernel<true>, static_cast<unsigned>(sum.rows), norm_threads(sum.ne0), 0, stream, out,
                  sum, a, b, weight, eps);
  }
  return launch_status("add_rms_norm launch");
}

Status rms_norm_quant(RowsF32 out, RowsF32 x, const RowsF32* add_a, const RowsF32* add_b, const float* weight,
                      float eps, int kind, const Int8Rows& rows, int warp_size, gpuStream_t stream) {
  const bool add = add_a != nullptr;
  if (!can_rms_norm_quant(out, x, add_a, add_b, weight, kind)) {
    return Status::error("gpu rms_norm_quant: unsupported row layout or kind");
  }
  if (x.rows == 0) return ok_status();
  const RowsF32 a = add ? *add_a : x, b = add ? *add_b : x;
  if (kind == 32) {
    add ? launch_norm_rows<true, 32>(out, x, a, b, weight, eps, rows, warp_size, stream)
        : launch_norm_rows<false, 32>(out, x, a, b, weight, eps, rows, warp_size, stream);
  } else {
    add ? launch_norm_rows<true, 256>(out, x, a, b, weight, eps, rows, warp_size, stream)
        : launch_norm_rows<false, 256>(out, x, a, b, weight, eps, rows, warp_size, stream);
  }
  return launch_status("rms_norm_quant launch");
}

bool can_rms_norm_quant(RowsF32 out, RowsF32 x, const RowsF32* add_a, const RowsF32* add_b, const float* weight,
                        int kind) {
  if ((kind != 32 && kind != 256) || !rows_kernel_fits(x.ne0) || x.rows > 65535) return false;
  if (add_a != nullptr) return add_b != nullptr && can_add_rms_norm(x, *add_a, *add_b, out, weight);
  return vec_rows(x) && vec_rows(out) && out.rows == x.rows && out.ne0 == x.ne0 &&
         (weight == nullptr || aligned16(weight));
}

Status silu_mul_quant(RowsF32 out, RowsF32 gate, RowsF32 up, int kind, const Int8Rows& rows, gpuStream_t stream) {
  if ((kind != 32 && kind != 256) || gate.ne0 % kind != 0 || gate.rows > 65535) {
    return Status::error("gpu silu_mul_quant: rows of " + std::to_string(gate.ne0) + " are not whole blocks of " +
                         std::to_string(kind));
  }
  if (gate.rows * gate.ne0 == 0) return ok_status();
  // Blocks for 64-wide warps (4 per block): on 32-wide devices the second half of the warps finds nothing to do.
  const dim3 grid(static_cast<unsigned>(blocks_for((gate.ne0 + 255) / 256, kThreads / 64)),
                  static_cast<unsigned>(gate.rows));
  if (kind == 32) {
    launch_kernel(silu_mul_quant_kernel<32>, grid, kThreads, 0, stream, out, gate, up, rows);
  } else {
    launch_kernel(silu_mul_quant_kernel<256>, grid, kThreads, 0, stream, out, gate, up, rows);
  }
  return launch_status("silu_mul_quant launch");
}

Status add(RowsF32 out, RowsF32 a, RowsF32 b, gpuStream_t stream) {
  if (a.rows * a.ne0 == 0) return ok_status();
  launch_kernel(add_kernel, blocks_for(a.rows * a.ne0, kThreads), kThreads, 0, stream, out, a, b);
  return launch_status("add launch");
}

Status silu_mul(RowsF32 out, RowsF32 gate, RowsF32 up, gpuStream_t stream) {
  if (gate.rows * gate.ne0 == 0) return ok_status();
  launch_kernel(silu_mul_kernel, blocks_for(gate.rows * gate.ne0, kThreads), kThreads, 0, stream, out, gate, up);
  return launch_status("silu_mul launch");
}

Status sigmoid_scale(RowsF32 out, RowsF32 x, RowsF32 gate, gpuStream_t stream) {
  if (x.rows * x.ne0 == 0) return ok_status();
  launch_kernel(sigmoid_scale_kernel, blocks_for(x.rows * x.ne0, kThreads), kThreads, 0, stream, out, x, gate);
  return launch_status("sigmoid_scale launch");
}

Status rope(RowsF32 x, const int32_t* positions, const RopeArgs& args, gpuStream_t stream) {
  const int64_t items = x.rows * args.n_head * (args.n_rot / 2);
  if (items == 0) return ok_status();
  const backend::YarnRange yarn = args.ext_factor != 0.0f ? backend::yarn_range(args.n_rot, args.n_ctx_orig, args.freq_base,
                                                               args.beta_fast, args.beta_slow)
                                                  : backend::YarnRange{};
  launch_kernel(rope_kernel, blocks_for(items, kThreads), kThreads, 0, stream, x, positions, args, yarn);
  return launch_status("rope launch");
}

backend::YarnRange rope_yarn_range(const RopeArgs& args) {
  return args.ext_factor != 0.0f
             ? backend::yarn_range(args.n_rot, args.n_ctx_orig, args.freq_base, args.beta_fast, args.beta_slow)
             : backend::YarnRange{};
}

bool can_rope_kv_store(RowsF32 q, const RopeArgs& aq, RowsF32 k, const RopeArgs& ak, RowsF32 v) {
  const backend::YarnRange yq = rope_yarn_range(aq), yk = rope_yarn_range(ak);
  return ak.head_dim % 2 == 0 && ak.n_rot <= ak.head_dim && q.rows == k.rows && v.rows == k.rows &&
         yq.low == yk.low && yq.high == yk.high && k.ne0 == static_cast<int64_t>(ak.n_head) * ak.head_dim;
}

Status rope_kv_store(RowsF32 q, const RopeArgs& aq, RowsF32 k, const RopeArgs& ak, RowsF32 v, const int32_t* positions,
                     const int32_t* slots, void* k_cache, bool k_f16, int64_t k_stride, void* v_cache, bool v_f16,
                     int64_t v_stride, gpuStream_t stream) {
  if (!can_rope_kv_store(q, aq, k, ak, v)) return Status::error("gpu rope_kv_store: unsupported shapes");
  const backend::YarnRange yarn = rope_yarn_range(aq);
  const int64_t items = q.rows * ((aq.n_head + kRopeHeads - 1) / kRopeHeads) * (aq.n_rot / 2) +
                        k.rows * ((ak.n_head + kRopeHeads - 1) / kRopeHeads) * (ak.head_dim / 2) + v.rows * v.ne0;
  if (items == 0) return ok_status();
  const auto go = [&](auto kernel) {
    launch_kernel(kernel, blocks_for(items, kThreads), kThreads, 0, stream, q, aq, k, ak, v, positions, slots, k_cache,
                  k_stride, v_cache, v_stride, yarn);
  };
  if (k_f16 && v_f16) go(rope_store_kernel<true, true>);
  if (k_f16 && !v_f16) go(rope_store_kernel<true, false>);
  if (!k_f16 && v_f16) go(rope_store_kernel<false, true>);
  if (!k_f16 && !v_f16) go(rope_store_kernel<false, false>);
  return launch_status("rope_kv_store launch");
}

Status kv_store(void* cache, bool f16, int64_t cache_stride, RowsF32 src, const int32_t* slots, gpuStream_t stream) {
  const int64_t items = src.rows * src.ne0;
  if (items == 0) return ok_status();
  if (f16) {
    launch_kernel(kv_store_kernel<true>, blocks_for(items, kThreads), kThreads, 0, stream, cache, cache_stride, src, slots);
  } else {
    launch_kernel(kv_store_kernel<false>, blocks_for(items, kThreads), kThreads, 0, stream, cache, cache_stride, src, slots);
  }
  return launch_status("kv_store launch");
}

Status gather_rows(RowsF32 out, RowsF32 x, const int32_t* rows, gpuStream_t stream) {
  const int64_t items = out.rows * out.ne0;
  if (items == 0) return ok_status();
  launch_kernel(gather_rows_kernel, blocks_for(items, kThreads), kThreads, 0, stream, out, x, rows);
  return launch_status("get_rows launch");
}

Status moe_route(int32_t* ids, int64_t ids_stride, RowsF32 weights, RowsF32 logits, int n_used, bool normalize,
                 gpuStream_t stream) {
  if (logits.rows == 0) return ok_status();
  const size_t shared = static_cast<size_t>(logits.ne0) * sizeof(float);
  launch_kernel(moe_route_kernel, static_cast<unsigned>(logits.rows), 1, shared, stream, ids, ids_stride, weights, logits, n_used,
                                                                              normalize);
  return launch_status("moe_route launch");
}

Status moe_combine(RowsF32 out, RowsF32 expert_out, RowsF32 weights, gpuStream_t stream) {
  const int64_t items = out.rows * out.ne0;
  if (items == 0) return ok_status();
  launch_kernel(moe_combine_kernel, blocks_for(items, kThreads), kThreads, 0, stream, out, expert_out, weights);
  return launch_status("moe_combine launch");
}

}  // namespace rf::gpu
