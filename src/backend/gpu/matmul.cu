// Weight kernels: activation rounding, matrix-vector (decode) and tiled matrix-matrix (prefill) products, the
// expert product and embedding lookup. Weights are decoded 8 elements at a time in registers (blocks.cuh).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/gpu/blocks.cuh"
#include "backend/gpu/matmul.h"

namespace rf::gpu {
namespace {

constexpr int kThreads = 256;        // a multiple of both wavefront sizes
constexpr int kMaxVecTokens = 8;     // matrix-vector kernel up to this many tokens per pass
constexpr int kTiledMinTokens = 16;  // from this batch size on, the tiled kernel
constexpr int kTileM = 64;           // weight rows per tile
constexpr int kTileN = 64;           // tokens per tile
constexpr int kTileChunks = 4;       // 8-element chunks per k step (32 elements)
constexpr int kTileK = kTileChunks * 8;

RF_DEVICE int64_t global_thread() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }

RF_DEVICE float round_half(float v) { return __half2float(__float2half_rn(v)); }

RF_DEVICE float round_bf16(float v) {
  uint32_t x = __float_as_uint(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) return __uint_as_float(((x >> 16) | 64u) << 16);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return __uint_as_float((x >> 16) << 16);
}

// Where rounded activations are stored: floats (the float and F16-tile products), or 16-bit rows for the BLAS
// (blas.h): F16, or BF16 for BF16 weights. F16 / BF16-rounded values are exact in their 16-bit format; Q8 values
// (scale * code) round to F16 once more.
enum class OutBits { kF32, kF16, kBF16 };
template <OutBits kOut>
RF_DEVICE void put(void* out, int64_t i, float v) {
  if constexpr (kOut == OutBits::kF32) {
    static_cast<float*>(out)[i] = v;
  } else if constexpr (kOut == OutBits::kF16) {
    static_cast<__half*>(out)[i] = __float2half_rn(v);
  } else {
    static_cast<uint16_t*>(out)[i] = static_cast<uint16_t>(__float_as_uint(round_bf16(v)) >> 16);
  }
}

// Q8_0 / Q8_1 rounding, 32 lanes per 32-element block (one element each): scale fp16(amax / 127), codes
// round-half-even(x * 127 / amax); the stored value is scale * code, as the CPU's dot sees it.
template <OutBits kOut>
__global__ void round_q8_0_kernel(const float* __restrict__ x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                                  void* __restrict__ out, int64_t out_stride) {
  pdl_prologue();
  const int64_t b = global_thread() / 32;  // blocks are a multiple of 32 threads: whole groups exit together
  if (b >= n_in / 32) return;
  const int j = static_cast<int>(threadIdx.x % 32);
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {  // rows along y: no 64-bit division per element
    const float v = x[r * x_stride + b * 32 + j];
    float amax = fabsf(v);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, shfl_xor(amax, off, 32));
    const float d = round_half(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    put<kOut>(out, r * out_stride + b * 32 + j, d * static_cast<float>(__float2int_rn(v * id)));
  }
}

// Q8_K rounding, 32 lanes per 256-element block (8 consecutive elements each): iscale -127 / the signed extreme
// (the first element of largest magnitude, as the CPU's scan finds it), codes capped at 127, scale 1 / iscale.
template <OutBits kOut>
__global__ void round_q8_k_kernel(const float* __restrict__ x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                                  void* __restrict__ out, int64_t out_stride) {
  pdl_prologue();
  const int64_t b = global_thread() / 32;
  if (b >= n_in / 256) return;
  const int lane = static_cast<int>(threadIdx.x % 32);
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    const float* xb = x + r * x_stride + b * 256 + 8 * lane;
    const int64_t ob = r * out_stride + b * 256 + 8 * lane;
    float v[8];
    float amax = 0.0f, max = 0.0f;
    int at = 256;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      v[j] = xb[j];
      if (fabsf(v[j]) > amax) {
        amax = fabsf(v[j]);
        max = v[j];
        at = 8 * lane + j;
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float o_amax = shfl_xor(amax, off, 32), o_max = shfl_xor(max, off, 32);
      const int o_at = shfl_xor(at, off, 32);
      if (o_amax > amax || (o_amax == amax && o_at < at)) {
        amax = o_amax;
        max = o_max;
        at = o_at;
      }
    }
    if (amax == 0.0f) {
#pragma unroll
      for (int j = 0; j < 8; ++j) put<kOut>(out, ob + j, 0.0f);
      continue;
    }
    const float iscale = -127.0f / max;
    const float d = 1.0f / iscale;
#pragma unroll
    for (int j = 0; j < 8; ++j) put<kOut>(out, ob + j, d * static_cast<float>(min(127, __float2int_rn(iscale * v[j]))));
  }
}

// Element-wise F32 / F16 / BF16 rounding (mode 0 / 1 / 2), zeros in the row padding; 4 consecutive elements per
// thread, read with one 16-byte load when vec4 (rows 16-byte aligned, n_in a multiple of 4).
template <int kMode, OutBits kOut>
__global__ void round_float_kernel(const float* __restrict__ x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                                   void* __restrict__ out, int64_t out_stride, bool vec4) {
  pdl_prologue();
  const int64_t i0 = global_thread() * 4;
  if (i0 >= out_stride) return;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    const float* xr = x + r * x_stride;
    float v[4];
    if (vec4 && i0 + 4 <= n_in) {
      const float4 q = *reinterpret_cast<const float4*>(xr + i0);
      v[0] = q.x;
      v[1] = q.y;
      v[2] = q.z;
      v[3] = q.w;
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = i0 + j < n_in ? xr[i0 + j] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (i0 + j >= out_stride) break;
      if (kMode == 1) v[j] = round_half(v[j]);
      if (kMode == 2) v[j] = round_bf16(v[j]);
      put<kOut>(out, r * out_stride + i0 + j, v[j]);
    }
  }
}

RF_DEVICE float dot8(const float (&v)[8], const float* a) {
  const float4 a0 = reinterpret_cast<const float4*>(a)[0];
  const float4 a1 = reinterpret_cast<const float4*>(a)[1];
  return v[0] * a0.x + v[1] * a0.y + v[2] * a0.z + v[3] * a0.w + v[4] * a1.x + v[5] * a1.y + v[6] * a1.z + v[7] * a1.w;
}

// One warp per weight row, up to NT tokens per block row (blockIdx.y picks the token group).
template <typename BT, int NT>
__global__ void __launch_bounds__(kThreads)
    matvec_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_in, int64_t n_out, const float* __restrict__ act,
                  int64_t act_stride, int64_t n_tok, float* __restrict__ out, int64_t out_stride) {
  pdl_prologue();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id();
  if (row >= n_out) return;  // uniform across the warp
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * NT;
  const int64_t nt = min(static_cast<int64_t>(NT), n_tok - t0);
  const uint8_t* wr = w + row * nb1;
  const int64_t n_chunks = (n_in + 7) / 8;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  for (int64_t idx = lane_id(); idx < n_chunks; idx += kWarpSize) {
    float v[8];
    BT::chunk(wr, idx, n_in, v);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (t < nt) acc[t] += dot8(v, act + (t0 + t) * act_stride + idx * 8);
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const float s = warp_reduce_sum(acc[t]);
    if (lane_id() == 0 && t < nt) out[(t0 + t) * out_stride + row] = s;
  }
}

// 16-bit float rows (F16 / BF16; nb1 and the row start 16-byte aligned, n_in a multiple of 8) times 2 to 8 tokens:
// matvec_kernel's steps for each row and token (lane l takes chunks l, l + warp, ... through the same expression,
// then the warp sum), so the same bits, with the block's tokens' activations staged in shared memory kActTile
// elements at a time and kTokenRows rows per warp. Reading the activations is what bounds matvec_kernel: each
// 16-byte chunk of weights meets 32 bytes of every token's activations, read from L1 once per row (4096 x 11008,
// 8 tokens: 154 us on the H100, 0.59 TB/s). Here a warp reads a tile's chunk once for its rows, a chunk's two
// float4 halves sit in two planes (consecutive lanes read consecutive 16 bytes), a lane's weight chunks of a tile
// are loaded before the block waits for the tile (the first tile's before the wait for the previous kernel), and
// the next tile's weight lines are asked of L2 before the current tile is summed. H100, 8 tokens, us, tiles of 512
// / 1024 elements: 4096 x 11008 76.9 / 67.5, 11008 x 4096 66.2 / 59.9, 4096 x 4096 33.5 / 31.8; one row per warp
// (twice the shared-memory reads) 97-114 us for the larger two; 7B F16 decode of 8 sequences in serve's mode:
// 719-723 / 809-819 t/s (one row per warp: 492-539).
constexpr int64_t kActTile = 1024;
constexpr int kTokenRows = 2;

template <typename BT, int NT>
__global__ void __launch_bounds__(kThreads)
    matvec_tokens_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_in, int64_t n_out,
                         const float* __restrict__ act, int64_t act_stride, int64_t n_tok, float* __restrict__ out,
                         int64_t out_stride) {
  static_assert(BT::kType == quant::Type::F16 || BT::kType == quant::Type::BF16, "16-bit float rows");
  constexpr int kChunks = static_cast<int>(kActTile / 8);  // chunks per tile
  constexpr int kPer = kChunks / kWarpSize;                  // this lane's chunks per tile and row
  static_assert(kPer >= 1 && kChunks % kWarpSize == 0, "whole warp passes per tile");
  constexpr int R = kTokenRows;
  __shared__ float4 tile[NT][2][kChunks];  // [token][half][chunk]
  grid_dependents_launch();
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id()) * R;
  const int nr = static_cast<int>(max(int64_t{0}, min(static_cast<int64_t>(R), n_out - row0)));
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * NT;
  const int nt = static_cast<int>(min(static_cast<int64_t>(NT), n_tok - t0));
  const int64_t n_chunks = n_in / 8;
  const int lane = lane_id();
  uint4 wv[R][kPer];
  const auto load = [&](int64_t e0) {  // no kernel writes weights
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const auto* wr = reinterpret_cast<const uint4*>(w + (row0 + r) * nb1);  // chunk idx: 8 values, 16 bytes
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        const int64_t idx = e0 / 8 + lane + static_cast<int64_t>(k) * kWarpSize;
        wv[r][k] = r < nr && idx < n_chunks ? wr[idx] : make_uint4(0, 0, 0, 0);
      }
    }
  };
  load(0);
  grid_dependency_wait();
  float acc[R][NT];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
  }
  for (int64_t e0 = 0; e0 < n_in; e0 += kActTile) {
    if (e0 > 0) {
      __syncthreads();  // the previous tile is read
      load(e0);
    }
    // The group's tokens' float4s of the tile (the sums read no others).
    const int64_t n4 = min(kActTile, n_in - e0) / 4;
    for (int i = static_cast<int>(threadIdx.x); i < nt * 2 * kChunks; i += static_cast<int>(blockDim.x)) {
      const int t = i / (2 * kChunks), v = i % (2 * kChunks);
      if (v < n4) tile[t][v % 2][v / 2] = reinterpret_cast<const float4*>(act + (t0 + t) * act_stride + e0)[v];
    }
    if (e0 + kActTile < n_in && nr > 0) {  // the next tile's weight lines into L2 (128 bytes a lane)
      const int64_t line = static_cast<int64_t>(lane) * 128, r = line / (kActTile * 2);
      const int64_t at = (e0 + kActTile) * 2 + line % (kActTile * 2);  // bytes into the row
      if (line < static_cast<int64_t>(R) * kActTile * 2 && r < nr && at < n_in * 2) {
        prefetch_l2(w + (row0 + r) * nb1 + at);
      }
    }
    __syncthreads();
    if (nr > 0) {  // uniform across the warp
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        const int c = lane + k * kWarpSize;  // the chunk within the tile
        if (e0 / 8 + c < n_chunks) {
          float v[R][8];
#pragma unroll
          for (int r = 0; r < R; ++r) unpack16x8<BT::kType == quant::Type::BF16>(wv[r][k], v[r]);
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            if (t < nt) {
              const float4 a0 = tile[t][0][c], a1 = tile[t][1][c];
#pragma unroll
              for (int r = 0; r < R; ++r) {
                acc[r][t] += v[r][0] * a0.x + v[r][1] * a0.y + v[r][2] * a0.z + v[r][3] * a0.w + v[r][4] * a1.x +
                             v[r][5] * a1.y + v[r][6] * a1.z + v[r][7] * a1.w;
              }
            }
          }
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float sum = warp_reduce_sum(acc[r][t]);
      if (lane == 0 && r < nr && t < nt) out[(t0 + t) * out_stride + row0 + r] = sum;
    }
  }
}

// Decode (one token): each warp computes R rows, so every activation chunk it loads serves several weight rows
// (the activations would otherwise be read once per row, more bytes than the weights themselves). More rows per
// warp also means fewer warps in flight: K-quants (heavy decode) take 1, the others kRowsPerWarp.
constexpr int kRowsPerWarp = 2;

template <typename BT>
constexpr int rows_per_warp() {
  return BT::kQk == 256 ? 1 : kRowsPerWarp;
}

template <typename BT, int R = rows_per_warp<BT>()>
__global__ void __launch_bounds__(kThreads)
    matvec1_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_in, int64_t n_out,
                   const float* __restrict__ act, float* __restrict__ out) {
  grid_dependents_launch();
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id()) * R;
  if (row0 >= n_out) return;  // uniform across the warp
  const int64_t nr = min(static_cast<int64_t>(R), n_out - row0);
  // This warp's weight rows into L2 while the previous kernel may still run (no kernel writes weights).
  for (int64_t off = static_cast<int64_t>(lane_id()) * 128; off < nr * static_cast<int64_t>(nb1);
       off += kWarpSize * 128) {
    prefetch_l2(w + row0 * nb1 + off);
  }
  grid_dependency_wait();
  const int64_t n_chunks = (n_in + 7) / 8;
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  RF_UNROLL4_CUDA  // several chunks' loads in flight (the sums keep their order)
  for (int64_t idx = lane_id(); idx < n_chunks; idx += kWarpSize) {
    const float4 a0 = reinterpret_cast<const float4*>(act + idx * 8)[0];
    const float4 a1 = reinterpret_cast<const float4*>(act + idx * 8)[1];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (r < nr) {
        float v[8];
        BT::chunk(w + (row0 + r) * nb1, idx, n_in, v);
        acc[r] += v[0] * a0.x + v[1] * a0.y + v[2] * a0.z + v[3] * a0.w + v[4] * a1.x + v[5] * a1.y + v[6] * a1.z +
                  v[7] * a1.w;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float s = warp_reduce_sum(acc[r]);
    if (lane_id() == 0 && r < nr) out[row0 + r] = s;
  }
}

// Single-token rows of the formats outside split rows (those take matvec_int8) but F32 and the rare formats, one row
// per warp, the row's bytes streamed into shared memory kStagedStages steps ahead through 16-byte asynchronous
// copies (as matvec_int8's staged products): lane l still takes chunks l, l + warp, ... of 8 values with
// matvec1_kernel's expression, so the sums are the same. A step is 512 elements of 16-bit rows (1 KB) or 2048 of a
// block format (64 blocks of 32 or 8 of 256: whole blocks, and a multiple of 16 bytes for every GGUF block size).
// Rows must start 16-byte aligned (nb1 % 16 == 0; GGUF rows are not padded): others take matvec1_kernel.
// Today that is F16 and BF16: every common block format now lives in split rows and takes matvec_int8. The
// block-format step has no user left (it took Q4_1 from 48.9 to 41.9 us on the H100, 4096 x 11008 back-to-back,
// before matvec_int8 took Q4_1 to 13.1).
constexpr int kStagedStages = 4;
template <typename BT>
struct Staged {
  static constexpr int64_t kStepElems = BT::kQk == 1 ? 512 : 2048;
  static constexpr int kStepBytes = static_cast<int>(kStepElems / BT::kQk * BT::kBytes);
  // F32 rows stay direct (a 2 KB step would take 64 KB of shared memory per block on 32-wide AMD parts), and so do
  // the rare formats (compile time: CI builds this file for four GPU targets).
  static constexpr bool kOn = split_code_bytes(BT::kType) == 0 && BT::kType != quant::Type::F32 &&
                              !is_rare_format<BT>() && kStepElems % BT::kQk == 0 && kStepBytes % 16 == 0 &&
                              kStepElems / 8 % kWarpSize == 0;
};
template <typename BT>
size_t staged_shared_bytes(int warp_size) {
  return static_cast<size_t>(kThreads / warp_size) * kStagedStages * Staged<BT>::kStepBytes;
}

// The activation values the CPU's dot product sees for 16-bit weights: F16 / BF16 rows round each element to the
// weights' format, as round_activations does. Rounding a rounded value keeps it, so rows rounded already pass
// unchanged.
template <typename BT>
RF_DEVICE float4 act_for(float4 a) {
  static_assert(BT::kType == quant::Type::F16 || BT::kType == quant::Type::BF16, "16-bit weight rows");
  if constexpr (BT::kType == quant::Type::F16) {
    return make_float4(round_half(a.x), round_half(a.y), round_half(a.z), round_half(a.w));
  } else {
    return make_float4(round_bf16(a.x), round_bf16(a.y), round_bf16(a.z), round_bf16(a.w));
  }
}

// Up to kMaxFloatMats weights of one type and row length that multiply the same activation row in one launch (q /
// k / v, gate / up): launch block b belongs to matrix m from first_block[m] on. No padding bytes (decode graphs
// compare launch arguments byte for byte).
constexpr int kMaxFloatMats = 3;
struct FloatSet {
  const uint8_t* w[kMaxFloatMats];
  size_t nb1[kMaxFloatMats];
  int64_t n_out[kMaxFloatMats];
  float* out[kMaxFloatMats];
  unsigned first_block[kMaxFloatMats];
  int count;
};

// act: one row of n_in floats, rounded already or not (act_for rounds it); n_in a multiple of 8 unless the row
// is padded with zeros to whole 8-element chunks (round_activations' rows).
template <typename BT>
__global__ void __launch_bounds__(kThreads)
    matvec_staged_kernel(const FloatSet set, int64_t n_in, const float* __restrict__ act) {
  static_assert(Staged<BT>::kOn, "rows of whole 16-byte steps");
  static_assert(kMaxFloatMats == 3, "the selects below name each matrix");
  constexpr int kStepBytes = Staged<BT>::kStepBytes;
  constexpr int64_t kStepElems = Staged<BT>::kStepElems;
  extern __shared__ uint4 staged_rows[];
  grid_dependents_launch();
  // Selects with constant indices: a run-time index into the kernel parameter would copy it to local memory.
  const unsigned b = blockIdx.x;
  const int m = (set.count > 2 && b >= set.first_block[2]) ? 2 : (set.count > 1 && b >= set.first_block[1]) ? 1 : 0;
  const unsigned first = m == 0 ? set.first_block[0] : m == 1 ? set.first_block[1] : set.first_block[2];
  const int64_t n_out = m == 0 ? set.n_out[0] : m == 1 ? set.n_out[1] : set.n_out[2];
  const int64_t row = static_cast<int64_t>(b - first) * (blockDim.x / kWarpSize) + warp_id();
  if (row >= n_out) return;  // uniform across the warp; no block-wide barrier below
  const size_t nb1 = m == 0 ? set.nb1[0] : m == 1 ? set.nb1[1] : set.nb1[2];
  const uint8_t* w = m == 0 ? set.w[0] : m == 1 ? set.w[1] : set.w[2];
  float* out = m == 0 ? set.out[0] : m == 1 ? set.out[1] : set.out[2];
  uint8_t* mine = reinterpret_cast<uint8_t*>(staged_rows) + warp_id() * (kStagedStages * kStepBytes);
  const uint8_t* src = w + row * nb1;
  const int64_t row_bytes = (n_in + BT::kQk - 1) / BT::kQk * BT::kBytes;
  const int64_t n_steps = (row_bytes + kStepBytes - 1) / kStepBytes;
  const int lane = lane_id();
  const auto issue = [&](int64_t s) {
    if (s < n_steps) {
      const int64_t n_bytes = min(static_cast<int64_t>(kStepBytes), row_bytes - s * kStepBytes);
      const uint8_t* g = src + s * kStepBytes;
      uint8_t* dst = mine + (s % kStagedStages) * kStepBytes;
      for (int c = lane; c * 16 < n_bytes; c += kWarpSize) {
        if (n_bytes - c * 16 >= 16) {
          async_copy16(dst + 16 * c, g + 16 * c);
        } else {
          async_copy16_partial(dst + 16 * c, g + 16 * c, static_cast<int>(n_bytes - c * 16));
        }
      }
    }
    async_copy_commit();
  };
#pragma unroll
  for (int s = 0; s < kStagedStages - 1; ++s) issue(s);  // weights only: no kernel writes them
  grid_dependency_wait();
  float acc = 0.0f;
  constexpr int kChunksPerStep = static_cast<int>(kStepElems / 8);
  for (int64_t s = 0; s < n_steps; ++s) {
    issue(s + kStagedStages - 1);
    async_copy_wait<kStagedStages - 1>();
    warp_sync();
    const uint8_t* stage = mine + (s % kStagedStages) * kStepBytes;
    const int64_t n_left = n_in - s * kStepElems;
#pragma unroll
    for (int k = 0; k < kChunksPerStep / kWarpSize; ++k) {
      const int c = lane + k * kWarpSize;
      const int64_t idx = s * kChunksPerStep + c;  // the chunk of the whole row
      if (idx * 8 < n_in) {
        const float4 a0 = act_for<BT>(reinterpret_cast<const float4*>(act + idx * 8)[0]);
        const float4 a1 = act_for<BT>(reinterpret_cast<const float4*>(act + idx * 8)[1]);
        float v[8];
        BT::chunk(stage, c, n_left, v);
        acc += v[0] * a0.x + v[1] * a0.y + v[2] * a0.z + v[3] * a0.w + v[4] * a1.x + v[5] * a1.y + v[6] * a1.z +
               v[7] * a1.w;
      }
    }
    warp_sync();  // every lane is done with this stage before a later issue() overwrites it
  }
  const float total = warp_reduce_sum(acc);
  if (lane == 0) out[row] = total;
}

// Expert product: one warp per weight row, blockIdx.y = pair (token t, slot j).
template <typename BT>
__global__ void __launch_bounds__(kThreads)
    moe_matvec_kernel(const uint8_t* __restrict__ w, size_t nb1, size_t nb2, int64_t n_in, int64_t n_out,
                      const float* __restrict__ act, int64_t act_stride, bool shared_act,
                      const int32_t* __restrict__ ids, int64_t ids_stride, int n_used, float* __restrict__ out,
                      int64_t out_stride) {
  pdl_prologue();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id();
  if (row >= n_out) return;
  const int64_t pair = blockIdx.y;
  const int64_t t = pair / n_used, j = pair % n_used;
  const int32_t expert = ids[t * ids_stride + j];
  const uint8_t* wr = w + static_cast<size_t>(expert) * nb2 + row * nb1;
  const float* a = act + (shared_act ? t : pair) * act_stride;
  const int64_t n_chunks = (n_in + 7) / 8;
  float acc = 0.0f;
  for (int64_t idx = lane_id(); idx < n_chunks; idx += kWarpSize) {
    float v[8];
    BT::chunk(wr, idx, n_in, v);
    acc += dot8(v, a + idx * 8);
  }
  acc = warp_reduce_sum(acc);
  if (lane_id() == 0) out[pair * out_stride + row] = acc;
}

// Tiled product for batches: a 64 x 64 (rows x tokens) output tile per block, k in steps of 32 elements through
// shared memory; each thread accumulates 4 x 4 outputs (rows tx + 16 i, tokens ty + 16 j).
template <typename BT>
__global__ void __launch_bounds__(kThreads)
    matmul_tiled_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_in, int64_t n_out,
                        const float* __restrict__ act, int64_t act_stride, int64_t n_tok, float* __restrict__ out,
                        int64_t out_stride) {
  pdl_prologue();
  __shared__ float ws[kTileK][kTileM + 1];
  __shared__ float xs[kTileK][kTileN + 4];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kTileM;
  const int64_t tok0 = static_cast<int64_t>(blockIdx.y) * kTileN;
  const int tx = tid % 16, ty = tid / 16;
  const int lr = tid / kTileChunks, lc = tid % kTileChunks;  // loader: row / token lr, chunk lc of the k step
  const int64_t n_chunks = (n_in + 7) / 8;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < n_chunks; k0 += kTileChunks) {
    const int64_t idx = k0 + lc;
    float v[8];
    if (row0 + lr < n_out && idx < n_chunks) {
      BT::chunk(w + (row0 + lr) * nb1, idx, n_in, v);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) ws[lc * 8 + j][lr] = v[j];
    float4 a0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), a1 = a0;
    if (tok0 + lr < n_tok && idx < n_chunks) {
      const auto* a = reinterpret_cast<const float4*>(act + (tok0 + lr) * act_stride + idx * 8);
      a0 = a[0];
      a1 = a[1];
    }
    xs[lc * 8 + 0][lr] = a0.x;
    xs[lc * 8 + 1][lr] = a0.y;
    xs[lc * 8 + 2][lr] = a0.z;
    xs[lc * 8 + 3][lr] = a0.w;
    xs[lc * 8 + 4][lr] = a1.x;
    xs[lc * 8 + 5][lr] = a1.y;
    xs[lc * 8 + 6][lr] = a1.z;
    xs[lc * 8 + 7][lr] = a1.w;
    __syncthreads();
#pragma unroll 8
    for (int k = 0; k < kTileK; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = ws[k][tx + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = xs[k][ty + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t tok = tok0 + ty + 16 * j;
    if (tok >= n_tok) continue;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = row0 + tx + 16 * i;
      if (row < n_out) out[tok * out_stride + row] = acc[i][j];
    }
  }
}

// One thread per 8-element chunk of the output rows.
template <typename BT>
__global__ void embed_kernel(const uint8_t* __restrict__ table, size_t nb1, int64_t n, const int32_t* __restrict__ rows,
                             int64_t n_rows, float* __restrict__ out, int64_t out_stride) {
  pdl_prologue();
  const int64_t n_chunks = (n + 7) / 8;
  const int64_t t = global_thread();
  if (t >= n_chunks * n_rows) return;
  const int64_t i = t / n_chunks, idx = t % n_chunks;
  float v[8];
  BT::chunk(table + static_cast<size_t>(rows[i]) * nb1, idx, n, v);
  float* o = out + i * out_stride + idx * 8;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (idx * 8 + j < n) o[j] = v[j];
  }
}

unsigned blocks_for(int64_t items, int threads) { return static_cast<unsigned>((items + threads - 1) / threads); }

Status launch_status(const char* what) {
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, what);
}

Status unsupported(quant::Type t, const char* op) {
  return Status::error(std::string("gpu ") + op + ": weight type " + std::string(quant::type_name(t)) +
                       " has no GPU kernel (supported: " + supported_weight_types() + ")");
}

// One launch of matvec_staged_kernel over count (1..kMaxFloatMats) weights of type BT and row length n_in.
template <typename BT>
void launch_staged(const WeightView* ws, float* const* outs, int count, int64_t n_in, const float* act,
                   int warp_size, gpuStream_t stream) {
  const size_t shared = staged_shared_bytes<BT>(warp_size);
  static OncePerContext opt_in;  // above 48 KB needs the opt-in, once per kernel and context
  const bool opted_in = opt_in([&] {
    return gpuFuncSetAttribute(reinterpret_cast<const void*>(&matvec_staged_kernel<BT>),
                               gpuFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)) == gpuSuccess;
  });
  (void)opted_in;  // a refused opt-in shows as the launch error
  const int rows_per_block = kThreads / warp_size;
  FloatSet set{};
  unsigned blocks = 0;
  for (int i = 0; i < count; ++i) {
    set.w[i] = static_cast<const uint8_t*>(ws[i].data);
    set.nb1[i] = ws[i].nb1;
    set.n_out[i] = ws[i].n_out;
    set.out[i] = outs[i];
    set.first_block[i] = blocks;
    blocks += blocks_for(ws[i].n_out, rows_per_block);
  }
  set.count = count;
  if (blocks > 0) launch_kernel(matvec_staged_kernel<BT>, blocks, kThreads, shared, stream, set, n_in, act);
}

}  // namespace

bool weight_type_supported(quant::Type t) {
  return dispatch_block_type(t, [](auto) {});
}

std::string supported_weight_types() {
  std::string names;
  for (uint32_t id = 0; id < 64; ++id) {
    const auto traits = quant::type_traits(id);
    if (!traits || !weight_type_supported(traits->type)) continue;
    if (!names.empty()) names += ", ";
    names += traits->name;
  }
  return names;
}

quant::Type activation_type(quant::Type weight) {
  using quant::Type;
  switch (weight) {
    case Type::F16:
      return Type::F16;
    case Type::BF16:
      return Type::BF16;
    case Type::Q4_0:
    case Type::Q5_0:
    case Type::Q8_0:
    case Type::IQ4_NL:
    case Type::MXFP4:
      return Type::Q8_0;
    case Type::Q4_1:
    case Type::Q5_1:
      return Type::Q8_1;
    case Type::Q2_K:
    case Type::Q3_K:
    case Type::Q4_K:
    case Type::Q5_K:
    case Type::Q6_K:
    case Type::IQ4_XS:
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ2_S:
    case Type::IQ3_XXS:
    case Type::IQ3_S:
    case Type::IQ1_S:
    case Type::IQ1_M:
    case Type::TQ1_0:
    case Type::TQ2_0:
      return Type::Q8_K;
    default:
      return Type::F32;
  }
}

int64_t act_row_stride(int64_t n_in) { return (n_in + 7) / 8 * 8; }

MatmulPolicy& matmul_policy() {
  static MatmulPolicy policy = [] {
    MatmulPolicy p;
#if defined(RF_GPU_HIP)
    p.tensor_cores = false;
#endif
    const auto env_count = [](const char* name, int64_t* dst) {
      if (const char* v = std::getenv(name)) *dst = std::max<int64_t>(0, std::atoll(v));
    };
    env_count("ROCMFORGE_GPU_MMA_MIN_TOKENS", &p.mma_min_tokens);
    env_count("ROCMFORGE_GPU_INT8_MAX_TOKENS", &p.int8_max_tokens);
    env_count("ROCMFORGE_GPU_MMQ_MIN_TOKENS", &p.mmq_min_tokens);
    env_count("ROCMFORGE_GPU_MMQ_MAX_TOKENS", &p.mmq_max_tokens);
    env_count("ROCMFORGE_GPU_MMQ_FUSE_BLOCKS", &p.mmq_fuse_split_blocks);
    env_count("ROCMFORGE_GPU_BLAS_MIN_TOKENS", &p.blas_min_tokens);
    if (const char* v = std::getenv("ROCMFORGE_GPU_TENSOR_CORES")) p.tensor_cores = p.tensor_cores && v[0] != '0';
    if (const char* v = std::getenv("ROCMFORGE_GPU_STAGED")) p.staged_matvec = std::atoi(v);
    if (const char* v = std::getenv("ROCMFORGE_GPU_SPLIT_ROWS")) p.split_rows = std::atoi(v) == 1 ? 1 : 2;
    if (const char* v = std::getenv("ROCMFORGE_GPU_SPLIT_K")) p.split_k = std::atoi(v) == 1 ? 1 : 2;
    if (const char* v = std::getenv("ROCMFORGE_GPU_STAGE_TOKENS")) p.stage_min_tokens = std::atoi(v);
    if (const char* v = std::getenv("ROCMFORGE_GPU_INVARIANT_MATVEC")) p.invariant_matvec = v[0] == '1';
    if (const char* v = std::getenv("ROCMFORGE_GPU_MIXED_LAUNCH")) p.mixed_launches = v[0] != '0';
    if (const char* v = std::getenv("ROCMFORGE_GPU_MMF_MAX_TOKENS")) p.mmf_max_tokens = std::max(0, std::atoi(v));
    if (const char* v = std::getenv("ROCMFORGE_GPU_FUSED_MATVEC")) p.fused_matvec = v[0] == '1' ? 1 : 0;
    if (const char* v = std::getenv("ROCMFORGE_GPU_RESIDUAL_ADD")) p.residual_add = v[0] != '0';
    return p;
  }();
  return policy;
}

bool fused_matvec_for(quant::Type weight) {
  using quant::Type;
  const int p = matmul_policy().fused_matvec;
  if (p >= 0) return p > 0;
  // By format, where it measured faster on the H100 (PERF_NOTES_2, session 22): Q4_0 only.
  return weight == Type::Q4_0;
}

MmaTile pick_mma_tile(int64_t n_tok, int64_t n_out) {
  const MatmulPolicy& p = matmul_policy();
  if (p.force_tile >= 0) return static_cast<MmaTile>(p.force_tile);
  if (n_tok <= 32) return MmaTile::kSmall;
  // 128-row tiles: keep at least ~2 blocks per SM of an H100-class part before widening the token tile.
  const int64_t row_tiles = (n_out + 127) / 128;
  if (n_tok <= 64 || row_tiles * ((n_tok + 127) / 128) < 256) return MmaTile::kMid;
  return MmaTile::kLarge;
}

namespace {

// Launches the rounding of act_type into rows of kOut values out_stride apart (kF32: any act_type; kF16: Q8_0 /
// Q8_1 / Q8_K / F16; kBF16: BF16).
template <OutBits kOut>
Status launch_rounding(quant::Type act_type, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows, void* out,
                       int64_t os, gpuStream_t stream) {
  using quant::Type;
  if (n_rows == 0 || n_in == 0) return ok_status();
  const auto rows_y = static_cast<unsigned>(std::min<int64_t>(n_rows, 65535));  // grid y: rows, in a stride loop
  const bool vec4 = x_stride % 4 == 0 && n_in % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  switch (act_type) {
    case Type::Q8_0:
    case Type::Q8_1:
      if (n_in % 32 != 0) return Status::error("gpu round_activations: row of " + std::to_string(n_in) + " not /32");
      launch_kernel(round_q8_0_kernel<kOut>, dim3(blocks_for(n_in, kThreads), rows_y), kThreads, 0, stream, x,
                    x_stride, n_in, n_rows, out, os);
      break;
    case Type::Q8_K:
      if (n_in % 256 != 0) return Status::error("gpu round_activations: row of " + std::to_string(n_in) + " not /256");
      launch_kernel(round_q8_k_kernel<kOut>, dim3(blocks_for(n_in / 256 * 32, kThreads), rows_y), kThreads, 0,
                    stream, x, x_stride, n_in, n_rows, out, os);
      break;
    case Type::F16:
      launch_kernel(round_float_kernel<1, kOut>, dim3(blocks_for((os + 3) / 4, kThreads), rows_y), kThreads, 0,
                    stream, x, x_stride, n_in, n_rows, out, os, vec4);
      break;
    case Type::BF16:
      if constexpr (kOut != OutBits::kF16) {
        launch_kernel(round_float_kernel<2, kOut>, dim3(blocks_for((os + 3) / 4, kThreads), rows_y), kThreads, 0,
                      stream, x, x_stride, n_in, n_rows, out, os, vec4);
        break;
      }
      return Status::error("gpu round_activations: BF16 rows stored as F16");
    default:
      if constexpr (kOut == OutBits::kF32) {
        launch_kernel(round_float_kernel<0, kOut>, dim3(blocks_for((os + 3) / 4, kThreads), rows_y), kThreads, 0,
                      stream, x, x_stride, n_in, n_rows, out, os, vec4);
        break;
      }
      return Status::error("gpu round_activations: " + std::string(quant::type_name(act_type)) +
                           " activations have no 16-bit form");
  }
  return launch_status("round_activations launch");
}

}  // namespace

Status round_activations(quant::Type act_type, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                         float* out, gpuStream_t stream) {
  return launch_rounding<OutBits::kF32>(act_type, x, x_stride, n_in, n_rows, out, act_row_stride(n_in), stream);
}

Status round_activations_16bit(quant::Type act_type, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                               uint16_t* out, int64_t out_stride, gpuStream_t stream) {
  if (out_stride < n_in) return Status::error("gpu round_activations_16bit: rows overlap");
  if (act_type == quant::Type::BF16) {
    return launch_rounding<OutBits::kBF16>(act_type, x, x_stride, n_in, n_rows, out, out_stride, stream);
  }
  return launch_rounding<OutBits::kF16>(act_type, x, x_stride, n_in, n_rows, out, out_stride, stream);
}

int64_t mma_min_tokens_for(quant::Type weight) {
  if (const int64_t forced = matmul_policy().mma_min_tokens; forced > 0) return forced;
  switch (weight) {
    case quant::Type::F16:
      return 5;
    case quant::Type::Q2_K:
    case quant::Type::Q3_K:
      return 7;
    case quant::Type::Q4_1:
    case quant::Type::Q5_0:
    case quant::Type::Q5_1:
    case quant::Type::IQ4_XS:
      return 9;
    default:
      return 2;
  }
}

Status matmul(const WeightView& w, const float* act, int64_t n_tok, float* out, int64_t out_stride, int warp_size,
              gpuStream_t stream, bool per_token) {
  if (n_tok == 0 || w.n_out == 0) return ok_status();
  const int64_t as = act_row_stride(w.n_in);
  const auto* wb = static_cast<const uint8_t*>(w.data);
  const MatmulPolicy& policy = matmul_policy();
  if (!per_token && n_tok >= mma_min_tokens_for(w.type) && n_tok > 1 && has_mma_matmul(w.type)) {
    const MmaTile tile = pick_mma_tile(n_tok, w.n_out);
    // Rare formats have the kMid tile only: it serves kLarge batches, and kSmall ones (up to 32 tokens, where
    // kSmall's hi + lo split keeps F32 precision) take the float kernels below instead.
    if (has_all_mma_tiles(w.type) || tile != MmaTile::kSmall) {
      return matmul_mma(w, act, n_tok, out, out_stride, tile, policy.tensor_cores, stream);
    }
  }
  const int rows_per_block = kThreads / warp_size;
  const bool known = dispatch_block_type(w.type, [&](auto bt) {
    using BT = decltype(bt);
    if constexpr (!is_rare_format<BT>()) {  // rare formats: the matrix-vector kernel, 8 tokens per pass
      if (!per_token && n_tok >= kTiledMinTokens) {
        const dim3 grid(blocks_for(w.n_out, kTileM), blocks_for(n_tok, kTileN));
        launch_kernel(matmul_tiled_kernel<BT>, grid, kThreads, 0, stream, wb, w.nb1, w.n_in, w.n_out, act, as, n_tok, out,
                      out_stride);
        return;
      }
    }
    if constexpr (Staged<BT>::kOn) {
      if (n_tok == 1 && policy.staged_matvec > 0 && w.nb1 % 16 == 0 &&
          (reinterpret_cast<uintptr_t>(wb) & 15) == 0) {
        launch_staged<BT>(&w, &out, 1, w.n_in, act, warp_size, stream);
        return;
      }
    }
    if (n_tok == 1) {
      const int64_t rows_per_launch_block = static_cast<int64_t>(rows_per_block) * rows_per_warp<BT>();
      launch_kernel(matvec1_kernel<BT>, blocks_for(w.n_out, static_cast<int>(rows_per_launch_block)), kThreads, 0, stream, 
          wb, w.nb1, w.n_in, w.n_out, act, out);
      return;
    }
    // 2 to 15 tokens (rare formats: any number). Rare formats have only the widest kernel (compile time; its
    // extra token slots sit idle for fewer tokens).
    const int64_t per = std::min<int64_t>(n_tok, kMaxVecTokens);
    // One token's sums take the same steps in the 1-, 2-, 4- and 8-token kernels (and the staged one), so per_token
    // batches pick among them by size as the others do.
    const int nt = is_rare_format<BT>() ? 8 : per <= 2 ? 2 : per <= 4 ? 4 : 8;
    // Launches a kernel whose warps take `rows` rows each.
    const auto launch = [&](auto kernel, int rows) {
      const dim3 grid(blocks_for(w.n_out, rows_per_block * rows), blocks_for(n_tok, nt));
      launch_kernel(kernel, grid, kThreads, 0, stream, wb, w.nb1, w.n_in, w.n_out, act, as, n_tok, out, out_stride);
    };
    const auto args = [&](auto kernel) { launch(kernel, 1); };
    if constexpr (BT::kType == quant::Type::F16 || BT::kType == quant::Type::BF16) {
      if (w.n_in % 8 == 0 && w.nb1 % 16 == 0 && (reinterpret_cast<uintptr_t>(wb) & 15) == 0) {
        if (nt == 2) launch(matvec_tokens_kernel<BT, 2>, kTokenRows);
        if (nt == 4) launch(matvec_tokens_kernel<BT, 4>, kTokenRows);
        if (nt == 8) launch(matvec_tokens_kernel<BT, 8>, kTokenRows);
        return;
      }
    }
    if constexpr (!is_rare_format<BT>()) {
      if (nt == 2) args(matvec_kernel<BT, 2>);
      if (nt == 4) args(matvec_kernel<BT, 4>);
    }
    if (nt == 8) args(matvec_kernel<BT, 8>);
  });
  if (!known) return unsupported(w.type, "matmul");
  return launch_status("matmul launch");
}

bool has_float_matvec_multi(const WeightView& w, const float* x, int64_t n_tok) {
  using quant::Type;
  return n_tok == 1 && (w.type == Type::F16 || w.type == Type::BF16) && matmul_policy().staged_matvec > 0 &&
         w.n_in % 8 == 0 && w.nb1 % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

Status matvec_float_multi(const WeightView* ws, float* const* outs, int count, const float* x, int warp_size,
                          gpuStream_t stream) {
  if (count < 1 || count > kMaxFloatMats) return Status::error("gpu matvec_float_multi: 1 to 3 weights per launch");
  for (int i = 0; i < count; ++i) {
    if (ws[i].type != ws[0].type || ws[i].n_in != ws[0].n_in || !has_float_matvec_multi(ws[i], x, 1)) {
      return Status::error("gpu matvec_float_multi: needs F16 or BF16 weights of one type and row length (a multiple "
                           "of 8), 16-byte aligned rows and activations");
    }
  }
  const bool known = dispatch_block_type(ws[0].type, [&](auto bt) {
    using BT = decltype(bt);
    if constexpr (Staged<BT>::kOn) launch_staged<BT>(ws, outs, count, ws[0].n_in, x, warp_size, stream);
  });
  if (!known) return unsupported(ws[0].type, "matvec_float_multi");
  return launch_status("matvec_float_multi launch");
}

Status moe_matmul(const WeightView& w, const float* act, bool shared_act, const int32_t* ids, int64_t ids_stride,
                  int n_used, int64_t n_tok, float* out, int64_t out_stride, int warp_size, gpuStream_t stream) {
  if (n_tok == 0 || n_used == 0 || w.n_out == 0) return ok_status();
  const int64_t as = act_row_stride(w.n_in);
  const auto* wb = static_cast<const uint8_t*>(w.data);
  const int rows_per_block = kThreads / warp_size;
  const bool known = dispatch_block_type(w.type, [&](auto bt) {
    using BT = decltype(bt);
    const dim3 grid(blocks_for(w.n_out, rows_per_block), static_cast<unsigned>(n_tok * n_used));
    launch_kernel(moe_matvec_kernel<BT>, grid, kThreads, 0, stream, wb, w.nb1, w.nb2, w.n_in, w.n_out, act, as, shared_act, ids,
                                                         ids_stride, n_used, out, out_stride);
  });
  if (!known) return unsupported(w.type, "moe_matmul");
  return launch_status("moe_matmul launch");
}

Status embed_rows(const WeightView& table, const int32_t* rows, int64_t n_rows, float* out, int64_t out_stride,
                  gpuStream_t stream) {
  if (n_rows == 0) return ok_status();
  const auto* tb = static_cast<const uint8_t*>(table.data);
  const int64_t items = (table.n_in + 7) / 8 * n_rows;
  const bool known = dispatch_block_type(table.type, [&](auto bt) {
    using BT = decltype(bt);
    launch_kernel(embed_kernel<BT>, blocks_for(items, kThreads), kThreads, 0, stream, tb, table.nb1, table.n_in, rows, n_rows, out,
                                                                           out_stride);
  });
  if (!known) return unsupported(table.type, "embed");
  return launch_status("embed launch");
}

}  // namespace rf::gpu
