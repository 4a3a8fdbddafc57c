// Decode (one token) matrix-vector products with integer dot products: the activation row is quantized once to
// int8 codes plus block scales (Q8_0 for the 32-element formats, Q8_K for the K-quants, as the CPU reference
// does), then every lane multiplies 16-byte runs of weight codes with 16-byte runs of activation codes through
// dot4_i8 and applies the block / sub-block scales in float. Results equal the CPU's up to float summation order.
//
// Work split: the quantizer gives one warp 256 activations (256 / kWarpSize per lane). The K-quant products give
// each 256-element weight block to 8 lanes (each lane: 16 bytes of 4-bit codes = 32 elements of two sub-blocks,
// or 16 + 16 bytes of Q6_K low / high bits), so a warp covers kWarpSize / 8 blocks of a row per step.
// (Block layouts: ggml format facts, see blocks.cuh and src/quant/kquant_layout.h.)
#include <string>

#include "backend/gpu/blocks.cuh"
#include "backend/gpu/matmul.h"

namespace rf::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kLanesPerKBlock = 8;  // lanes sharing one 256-element K-quant block
constexpr int kQ4RowsPerWarp = 2;   // Q4_0 / Q8_0 rows per warp (see PERF_NOTES.md)
constexpr int kKRowsPerWarp = 1;    // K-quant rows per warp

// Up to kMaxMats weights of one type and row length that multiply the same activation row in ONE launch (q / k / v,
// gate / up): each launch block belongs to one matrix, from first_block[m] on.
constexpr int kMaxMats = 3;
struct MatSet {
  const uint8_t* w[kMaxMats];
  size_t nb1[kMaxMats];
  int64_t n_out[kMaxMats];
  float* out[kMaxMats];
  unsigned first_block[kMaxMats];
  int count;
};

// The rows this warp computes: kR rows of its block's matrix from row0 (n_rows of them; <= 0 past the end, the
// same for every lane). Selects with constant indices: indexing the kernel parameter with a run-time index would
// copy it to local memory (7-13 % slower decode on the H100).
struct WarpRows {
  const uint8_t* w;
  size_t nb1;
  float* out;
  int64_t row0;
  int64_t n_rows;
};

template <int kR>
RF_DEVICE WarpRows warp_rows(const MatSet& set) {
  static_assert(kMaxMats == 3, "the selects below name each matrix");
  const unsigned b = blockIdx.x;
  const int m = (set.count > 2 && b >= set.first_block[2]) ? 2 : (set.count > 1 && b >= set.first_block[1]) ? 1 : 0;
  const unsigned first = m == 0 ? set.first_block[0] : m == 1 ? set.first_block[1] : set.first_block[2];
  const int64_t n_out = m == 0 ? set.n_out[0] : m == 1 ? set.n_out[1] : set.n_out[2];
  const int64_t row0 = (static_cast<int64_t>(b - first) * (blockDim.x / kWarpSize) + warp_id()) * kR;
  const int64_t n_rows = min(static_cast<int64_t>(kR), n_out - row0);
  if (m == 0) return {set.w[0], set.nb1[0], set.out[0], row0, n_rows};
  if (m == 1) return {set.w[1], set.nb1[1], set.out[1], row0, n_rows};
  return {set.w[2], set.nb1[2], set.out[2], row0, n_rows};
}

RF_DEVICE float round_half_f(float v) { return __half2float(__float2half_rn(v)); }

// Larger |value| wins; on equal magnitude the smaller index (the CPU scans in order and keeps the first).
RF_DEVICE void take_max(float& amax, float& vmax, int& imax, float a, float v, int i) {
  if (a > amax || (a == amax && i < imax)) {
    amax = a;
    vmax = v;
    imax = i;
  }
}

// One warp per 256 activations. kBlock 32: Q8_0 (scale fp16(amax / 127), codes round(x * 127 / amax));
// kBlock 256: Q8_K (iscale -127 / the signed extreme, codes min(127, round(iscale * x)), scale 1 / iscale).
// n must be a multiple of kBlock; lanes past n compute zeros and store nothing.
template <int kBlock>
__global__ void __launch_bounds__(kThreads)
    quantize_act_kernel(const float* __restrict__ x, int64_t n, int8_t* __restrict__ q, float* __restrict__ d) {
  constexpr int kPer = 256 / kWarpSize;          // elements per lane: 8 (warp 32) or 4 (warp 64)
  constexpr int kLanesPerBlock = kBlock / kPer;  // lanes sharing one scale
  const int64_t base = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id()) * 256;
  if (base >= n) return;  // uniform across the warp
  const int64_t e0 = base + static_cast<int64_t>(lane_id()) * kPer;
  const bool live = e0 < n;
  float v[kPer];
#pragma unroll
  for (int j = 0; j < kPer; j += 4) {
    const float4 f = live ? *reinterpret_cast<const float4*>(x + e0 + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    v[j] = f.x;
    v[j + 1] = f.y;
    v[j + 2] = f.z;
    v[j + 3] = f.w;
  }
  float amax = -1.0f, vmax = 0.0f;
  int imax = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) take_max(amax, vmax, imax, fabsf(v[j]), v[j], lane_id() * kPer + j);
#pragma unroll
  for (int mask = 1; mask < kLanesPerBlock; mask <<= 1) {
    const float a = shfl_xor(amax, mask), vv = shfl_xor(vmax, mask);
    const int i = shfl_xor(imax, mask);
    take_max(amax, vmax, imax, a, vv, i);
  }
  if (!live) return;
  int codes[kPer];
  float scale = 0.0f;
  if (kBlock == 32) {
    scale = round_half_f(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) codes[j] = __float2int_rn(v[j] * id);
  } else {
    const float iscale = amax != 0.0f ? -127.0f / vmax : 0.0f;
    scale = amax != 0.0f ? 1.0f / iscale : 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) codes[j] = min(127, __float2int_rn(iscale * v[j]));
  }
  uint32_t words[kPer / 4];
#pragma unroll
  for (int w = 0; w < kPer / 4; ++w) {
    words[w] = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) words[w] |= (static_cast<uint32_t>(codes[4 * w + i]) & 0xFFu) << (8 * i);
  }
  if (kPer == 8) {
    *reinterpret_cast<uint2*>(q + e0) = make_uint2(words[0], words[kPer / 4 - 1]);
  } else {
    *reinterpret_cast<uint32_t*>(q + e0) = words[0];
  }
  if (lane_id() % kLanesPerBlock == 0) d[e0 / kBlock] = scale;
}

RF_DEVICE int sum_codes(const int4 a) {
  int s = dot4_i8(0x01010101, a.x, 0);
  s = dot4_i8(0x01010101, a.y, s);
  s = dot4_i8(0x01010101, a.z, s);
  return dot4_i8(0x01010101, a.w, s);
}

RF_DEVICE int dot16(const uint32_t (&v)[4], const int4 a) {
  int s = dot4_i8(static_cast<int>(v[0]), a.x, 0);
  s = dot4_i8(static_cast<int>(v[1]), a.y, s);
  s = dot4_i8(static_cast<int>(v[2]), a.z, s);
  return dot4_i8(static_cast<int>(v[3]), a.w, s);
}

// 16 bytes from a 2-byte aligned address (Q6_K blocks are 210 bytes: only 2-byte alignment is guaranteed).
RF_DEVICE void load16_2aligned(const uint8_t* p, uint32_t (&w)[4]) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
#pragma unroll
  for (int k = 0; k < 4; ++k) w[k] = static_cast<uint32_t>(h[2 * k]) | (static_cast<uint32_t>(h[2 * k + 1]) << 16);
}

// Q4_K (kFive false) / Q5_K (true) weights times Q8_K activations, kKRowsPerWarp rows per warp.
template <bool kFive>
__global__ void __launch_bounds__(kThreads)
    matvec_q45k_kernel(const MatSet set, int64_t n_blocks,
                       const int8_t* __restrict__ aq, const float* __restrict__ ad) {
  constexpr int kBytes = kFive ? 176 : 144;
  constexpr int kQsOffset = kFive ? 48 : 16;
  constexpr int kR = kKRowsPerWarp;
  const auto [w, nb1, out, row0, nr] = warp_rows<kR>(set);
  if (nr <= 0) return;  // uniform across the warp
  const int sub = lane_id() % kLanesPerKBlock;
  const int c = sub / 2, half = sub % 2;  // 64-element chunk c; low nibbles: sub-block 2c, high: 2c + 1
  float acc[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) acc[r] = 0.0f;
#pragma unroll 4
  for (int64_t ib = lane_id() / kLanesPerKBlock; ib < n_blocks; ib += kWarpSize / kLanesPerKBlock) {
    const int8_t* ab = aq + ib * 256 + 64 * c + 16 * half;
    const int4 a_lo = *reinterpret_cast<const int4*>(ab);
    const int4 a_hi = *reinterpret_cast<const int4*>(ab + 32);
    const float da = ad[ib];
    const int s_lo = sum_codes(a_lo), s_hi = sum_codes(a_hi);
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      if (r < nr) {
        const uint8_t* b = w + (row0 + r) * nb1 + ib * kBytes;
        const uint4 qs = *reinterpret_cast<const uint4*>(b + kQsOffset + 32 * c + 16 * half);
        const uint32_t q[4] = {qs.x, qs.y, qs.z, qs.w};
        uint32_t lo[4], hi[4];
        if (kFive) {
          const uint4 qh4 = *reinterpret_cast<const uint4*>(b + 16 + 16 * half);
          const uint32_t qh[4] = {qh4.x, qh4.y, qh4.z, qh4.w};
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            lo[k] = (q[k] & 0x0F0F0F0Fu) | (((qh[k] >> (2 * c)) & 0x01010101u) << 4);
            hi[k] = ((q[k] >> 4) & 0x0F0F0F0Fu) | (((qh[k] >> (2 * c + 1)) & 0x01010101u) << 4);
          }
        } else {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            lo[k] = q[k] & 0x0F0F0F0Fu;
            hi[k] = (q[k] >> 4) & 0x0F0F0F0Fu;
          }
        }
        const uint32_t dm = *reinterpret_cast<const uint32_t*>(b);
        const float d = half_bits_to_float(static_cast<uint16_t>(dm & 0xFFFFu));
        const float dmin = half_bits_to_float(static_cast<uint16_t>(dm >> 16));
        int sc_lo = 0, m_lo = 0, sc_hi = 0, m_hi = 0;
        scale_min_k4(b + 4, 2 * c, &sc_lo, &m_lo);
        scale_min_k4(b + 4, 2 * c + 1, &sc_hi, &m_hi);
        const int dot = sc_lo * dot16(lo, a_lo) + sc_hi * dot16(hi, a_hi);
        const int mins = m_lo * s_lo + m_hi * s_hi;
        acc[r] += da * (d * static_cast<float>(dot) - dmin * static_cast<float>(mins));
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    const float s = warp_reduce_sum(acc[r]);
    if (lane_id() == 0 && r < nr) out[row0 + r] = s;
  }
}

// Q6_K weights times Q8_K activations. Lane sub (0..7) of a block: half h = sub / 4, j = sub % 4 reads ql bytes
// [64h + 16j, +16) and qh bytes [32h + l0, +16) (l0 = 16 (j & 1)); they hold elements 128h + 32k0 + l0 + i (low
// nibbles, qh bits 2k0) and 128h + 32(k0 + 2) + l0 + i (high nibbles, qh bits 2k0 + 4), k0 = j / 2, i < 16.
__global__ void __launch_bounds__(kThreads)
    matvec_q6k_kernel(const MatSet set, int64_t n_blocks,
                      const int8_t* __restrict__ aq, const float* __restrict__ ad) {
  constexpr int kBytes = 210;
  constexpr int kR = kKRowsPerWarp;
  const auto [w, nb1, out, row0, nr] = warp_rows<kR>(set);
  if (nr <= 0) return;  // uniform across the warp
  const int sub = lane_id() % kLanesPerKBlock;
  const int h = sub / 4, j = sub % 4, k0 = j / 2, l0 = 16 * (j & 1);
  const int e1 = 128 * h + 32 * k0 + l0, e2 = e1 + 64;
  float acc[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) acc[r] = 0.0f;
#pragma unroll 4
  for (int64_t ib = lane_id() / kLanesPerKBlock; ib < n_blocks; ib += kWarpSize / kLanesPerKBlock) {
    const int8_t* ab = aq + ib * 256;
    const int4 a1 = *reinterpret_cast<const int4*>(ab + e1);
    const int4 a2 = *reinterpret_cast<const int4*>(ab + e2);
    const float da = ad[ib];
    const int s1 = sum_codes(a1), s2 = sum_codes(a2);
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      if (r < nr) {
        const uint8_t* b = w + (row0 + r) * nb1 + ib * kBytes;
        uint32_t ql[4], qh[4], v1[4], v2[4];
        load16_2aligned(b + 64 * h + 16 * j, ql);
        load16_2aligned(b + 128 + 32 * h + l0, qh);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          v1[k] = (ql[k] & 0x0F0F0F0Fu) | (((qh[k] >> (2 * k0)) & 0x03030303u) << 4);
          v2[k] = ((ql[k] >> 4) & 0x0F0F0F0Fu) | (((qh[k] >> (2 * k0 + 4)) & 0x03030303u) << 4);
        }
        const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
        const int sc1 = scales[e1 / 16], sc2 = scales[e2 / 16];
        const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(b + 208));
        const int dot = sc1 * (dot16(v1, a1) - 32 * s1) + sc2 * (dot16(v2, a2) - 32 * s2);
        acc[r] += da * d * static_cast<float>(dot);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    const float s = warp_reduce_sum(acc[r]);
    if (lane_id() == 0 && r < nr) out[row0 + r] = s;
  }
}

// Q4_0 / Q8_0 weights times Q8_0 activations: each lane takes whole 32-element blocks, kQ4RowsPerWarp rows per warp.
template <bool kQ8Weights>
__global__ void __launch_bounds__(kThreads)
    matvec_q40_q80_kernel(const MatSet set, int64_t n_blocks,
                          const int8_t* __restrict__ aq, const float* __restrict__ ad) {
  constexpr int kBlockBytes = kQ8Weights ? 34 : 18;
  constexpr int kR = kQ4RowsPerWarp;
  const auto [w, nb1, out, row0, nr] = warp_rows<kR>(set);
  if (nr <= 0) return;  // uniform across the warp
  float acc[kR];
#pragma unroll
  for (int r = 0; r < kR; ++r) acc[r] = 0.0f;
#pragma unroll 4
  for (int64_t ib = lane_id(); ib < n_blocks; ib += kWarpSize) {
    const int4 a0 = reinterpret_cast<const int4*>(aq + ib * 32)[0];
    const int4 a1 = reinterpret_cast<const int4*>(aq + ib * 32)[1];
    const int a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float da = ad[ib];
    const int asum = kQ8Weights ? 0 : sum_codes(a0) + sum_codes(a1);  // Q4_0 codes carry an offset of 8
#pragma unroll
    for (int r = 0; r < kR; ++r) {
      if (r < nr) {
        const auto* hw = reinterpret_cast<const uint16_t*>(w + (row0 + r) * nb1 + ib * kBlockBytes);
        const float dw = half_bits_to_float(hw[0]);
        int sumi = 0;
        if (kQ8Weights) {
#pragma unroll
          for (int k = 0; k < 8; ++k) {
            sumi = dot4_i8(static_cast<int>(hw[1 + 2 * k] | (static_cast<uint32_t>(hw[2 + 2 * k]) << 16)), a[k], sumi);
          }
        } else {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const uint32_t x = hw[1 + 2 * k] | (static_cast<uint32_t>(hw[2 + 2 * k]) << 16);
            sumi = dot4_i8(static_cast<int>(x & 0x0F0F0F0Fu), a[k], sumi);
            sumi = dot4_i8(static_cast<int>((x >> 4) & 0x0F0F0F0Fu), a[k + 4], sumi);
          }
          sumi -= 8 * asum;
        }
        acc[r] += static_cast<float>(sumi) * (dw * da);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kR; ++r) {
    const float s = warp_reduce_sum(acc[r]);
    if (lane_id() == 0 && r < nr) out[row0 + r] = s;
  }
}

unsigned blocks_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned>((items + per_block - 1) / per_block);
}

}  // namespace

bool has_int8_matvec(quant::Type weight, int64_t n_tok) {
  using quant::Type;
  return n_tok == 1 && (weight == Type::Q4_0 || weight == Type::Q8_0 || weight == Type::Q4_K || weight == Type::Q5_K ||
                        weight == Type::Q6_K);
}

size_t int8_matvec_scratch_bytes(int64_t n_in) {
  // Codes, then one float scale per 32 elements (enough for Q8_K's one per 256), 16-byte aligned.
  return (static_cast<size_t>(n_in) + 15) / 16 * 16 + static_cast<size_t>(n_in / 32 + 1) * sizeof(float);
}

int int8_matvec_act_kind(quant::Type weight) {
  using quant::Type;
  return weight == Type::Q4_K || weight == Type::Q5_K || weight == Type::Q6_K ? 256 : 32;
}

Status matvec_int8(const WeightView& w, const float* x, void* scratch, float* out, int warp_size, gpuStream_t stream,
                   bool quantize) {
  return matvec_int8_multi(&w, &out, 1, x, scratch, warp_size, stream, quantize);
}

Status matvec_int8_multi(const WeightView* ws, float* const* outs, int count, const float* x, void* scratch,
                         int warp_size, gpuStream_t stream, bool quantize) {
  using quant::Type;
  if (count < 1 || count > kMaxMats) return Status::error("gpu matvec_int8: 1 to 3 weights per launch");
  const WeightView& w = ws[0];
  for (int i = 1; i < count; ++i) {
    if (ws[i].type != w.type || ws[i].n_in != w.n_in) {
      return Status::error("gpu matvec_int8: weights of one launch need one type and row length");
    }
  }
  const bool k_quant = w.type == Type::Q4_K || w.type == Type::Q5_K || w.type == Type::Q6_K;
  const int64_t qk = k_quant ? 256 : 32;
  if (!has_int8_matvec(w.type, 1) || w.n_in % qk != 0) {
    return Status::error("gpu matvec_int8: needs Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K rows of whole blocks, got " +
                         std::string(quant::type_name(w.type)) + " x " + std::to_string(w.n_in));
  }
  auto* aq = static_cast<int8_t*>(scratch);
  auto* ad = reinterpret_cast<float*>(aq + (w.n_in + 15) / 16 * 16);
  const int warps_per_block = kThreads / warp_size;
  const unsigned q_blocks = blocks_for((w.n_in + 255) / 256, warps_per_block);
  if (!quantize) {
    // the caller's scratch already holds this activation row
  } else if (k_quant) {
    quantize_act_kernel<256><<<q_blocks, kThreads, 0, stream>>>(x, w.n_in, aq, ad);
  } else {
    quantize_act_kernel<32><<<q_blocks, kThreads, 0, stream>>>(x, w.n_in, aq, ad);
  }
  const int64_t n_blocks = w.n_in / qk;
  const int64_t rows_per_block = static_cast<int64_t>(warps_per_block) * (k_quant ? kKRowsPerWarp : kQ4RowsPerWarp);
  MatSet set{};
  unsigned grid = 0;
  for (int i = 0; i < count; ++i) {
    set.w[i] = static_cast<const uint8_t*>(ws[i].data);
    set.nb1[i] = ws[i].nb1;
    set.n_out[i] = ws[i].n_out;
    set.out[i] = outs[i];
    set.first_block[i] = grid;
    grid += blocks_for(ws[i].n_out, rows_per_block);
  }
  set.count = count;
  if (grid == 0) return ok_status();
  switch (w.type) {
    case Type::Q4_0:
      matvec_q40_q80_kernel<false><<<grid, kThreads, 0, stream>>>(set, n_blocks, aq, ad);
      break;
    case Type::Q8_0:
      matvec_q40_q80_kernel<true><<<grid, kThreads, 0, stream>>>(set, n_blocks, aq, ad);
      break;
    case Type::Q4_K:
      matvec_q45k_kernel<false><<<grid, kThreads, 0, stream>>>(set, n_blocks, aq, ad);
      break;
    case Type::Q5_K:
      matvec_q45k_kernel<true><<<grid, kThreads, 0, stream>>>(set, n_blocks, aq, ad);
      break;
    default:
      matvec_q6k_kernel<<<grid, kThreads, 0, stream>>>(set, n_blocks, aq, ad);
      break;
  }
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "matvec_int8 launch");
}

}  // namespace rf::gpu
