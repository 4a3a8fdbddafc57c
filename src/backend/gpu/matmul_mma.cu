// Batched weight product on tensor cores (prefill and batched decode): a block computes an MT x NT tile of
// out[token][row] = sum_k w[row][k] * act[token][k]. Each K step, the block decodes an MT x KT slice of the weight
// (any format, through blocks.cuh) and an NT x KT slice of the rounded activations into F16 in shared memory, and
// the warps multiply them with 16x16x16 F16 MMAs accumulating in F32. Loads of step k + 1 are in registers while
// step k multiplies (double-buffered shared memory, one barrier per step).
//
// Numerics: the activations arrive rounded exactly as the CPU rounds them (Q8_0 / Q8_1 / Q8_K / F16); the rounded
// values and the decoded weights are then F16 (2^-12 relative rounding of each factor), products and sums F32.
//
// Portability: the MMA is CUDA's WMMA (sm_70+). HIP (and CUDA with ROCMFORGE_GPU_TENSOR_CORES=0, so that the
// H100 tests it) uses the same tiles, loads and epilogue with a plain FMA product over shared memory.
#include <algorithm>
#include <map>
#include <mutex>
#include <string>

#include "backend/gpu/blocks.cuh"
#include "backend/gpu/matmul.h"

#if defined(RF_GPU_CUDA)
#include <mma.h>
#endif

namespace rf::gpu {
namespace {

constexpr int kPad = 8;  // halves of padding per shared row (keeps 32-byte fragment alignment, spreads banks)

// Tile shape: MT weight rows x NT tokens, KT elements per K step, WM x WN warps of 32 lanes (the thread count is
// 32 * WM * WN on every vendor; the tensor-core path exists only on CUDA, where a warp is 32 lanes).
// SPLIT: each factor is carried as two F16 parts, hi = f16(v) and lo = f16((v - hi) * 2^11), and the product
// takes hi*hi + 2^-11 (hi*lo + lo*hi): about 2^-22 relative per product, as exact as F32 products for these inputs.
// It costs 3 MMAs and twice the shared memory, which small batches (bound by weight reads, not MMAs) can afford.
template <int MT_, int NT_, int KT_, int WM_, int WN_, bool SPLIT_ = false>
struct Tile {
  static constexpr int MT = MT_, NT = NT_, KT = KT_, WM = WM_, WN = WN_;
  static constexpr bool kSplit = SPLIT_;
  static constexpr int kParts = SPLIT_ ? 2 : 1;
  static constexpr int kThreads = 32 * WM * WN;
  static constexpr int KC = KT / 8;                  // 8-element chunks per row per step
  static constexpr int kLd = KT + kPad;              // shared row length (halves)
  static constexpr int FM = MT / WM / 16;            // 16x16 fragments per warp along rows
  static constexpr int FN = NT / WN / 16;            // ... along tokens
  static constexpr int kWLoads = MT * KC / kThreads;  // weight chunks each thread loads per step
  static constexpr int kXLoads = (NT * KC + kThreads - 1) / kThreads;
  static_assert(MT % (16 * WM) == 0 && NT % (16 * WN) == 0 && KT % 16 == 0, "tile shape");
  static_assert(MT * KC % kThreads == 0, "weight loads must split evenly");
  // SIMT product: 16 thread rows x (kThreads / 16) thread columns, RM x RN outputs each.
  static constexpr int TGN = kThreads / 16;
  static constexpr int RM = MT / 16, RN = NT / TGN;
  static_assert(NT % TGN == 0, "SIMT split");
};

using TileLarge = Tile<128, 128, 32, 2, 4>;  // long prompts
using TileMid = Tile<128, 64, 32, 4, 2>;
using TileSmall = Tile<64, 32, 32, 4, 1, true>;  // batched decode / short chunks (split over K, see below)

constexpr float kLoScale = 2048.0f, kLoUnscale = 1.0f / 2048.0f;

// 8 floats -> 8 halves (round to nearest) packed in 16 bytes; part 1: the scaled residuals of part 0.
template <int kParts>
RF_DEVICE void pack_half8(const float (&v)[8], uint4 (&r)[kParts]) {
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const __half h0 = __float2half_rn(v[2 * j]), h1 = __float2half_rn(v[2 * j + 1]);
    (&r[0].x)[j] = static_cast<uint32_t>(__half_as_ushort(h0)) | (static_cast<uint32_t>(__half_as_ushort(h1)) << 16);
    if constexpr (kParts == 2) {
      const __half l0 = __float2half_rn((v[2 * j] - __half2float(h0)) * kLoScale);
      const __half l1 = __float2half_rn((v[2 * j + 1] - __half2float(h1)) * kLoScale);
      (&r[1].x)[j] =
          static_cast<uint32_t>(__half_as_ushort(l0)) | (static_cast<uint32_t>(__half_as_ushort(l1)) << 16);
    }
  }
}

template <typename T>
struct alignas(32) SharedTiles {
  __half w[2][T::kParts][T::MT][T::kLd];
  __half x[2][T::kParts][T::NT][T::kLd];
};

template <typename BT, typename T, bool kTensorCores>
__global__ void __launch_bounds__(T::kThreads)
    matmul_mma_kernel(const uint8_t* __restrict__ w, size_t nb1, int64_t n_in, int64_t n_out,
                      const float* __restrict__ act, int64_t act_stride, int64_t n_tok, float* __restrict__ out,
                      int64_t out_stride, int64_t steps_per_split) {
  pdl_prologue();
  __shared__ SharedTiles<T> sh;
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * T::MT;
  const int64_t tok0 = static_cast<int64_t>(blockIdx.y) * T::NT;
  const int64_t n_chunks = (n_in + 7) / 8;
  // Split over K (blockIdx.z): this block's steps, and its slice of the partial sums (out then points at
  // gridDim.z slices of n_tok x n_out, summed in order by reduce_splits_kernel).
  const int64_t first_step = static_cast<int64_t>(blockIdx.z) * steps_per_split;
  const int64_t n_steps = min(steps_per_split, (n_chunks + T::KC - 1) / T::KC - first_step);
  if (gridDim.z > 1) {
    out += static_cast<int64_t>(blockIdx.z) * n_tok * out_stride;
  }

  uint4 wreg[T::kWLoads][T::kParts];
  uint4 xreg[T::kXLoads][T::kParts];
  const auto load_step = [&](int64_t step) {
#pragma unroll
    for (int l = 0; l < T::kWLoads; ++l) {
      const int i = tid + l * T::kThreads;
      const int r = i / T::KC, c = i % T::KC;
      const int64_t idx = (first_step + step) * T::KC + c;
      float v[8];
      if (row0 + r < n_out && idx < n_chunks) {
        BT::chunk(w + (row0 + r) * nb1, idx, n_in, v);
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = 0.0f;
      }
      pack_half8<T::kParts>(v, wreg[l]);
    }
#pragma unroll
    for (int l = 0; l < T::kXLoads; ++l) {
      const int i = tid + l * T::kThreads;
      const int t = i / T::KC, c = i % T::KC;
      const int64_t idx = (first_step + step) * T::KC + c;
      float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
      if (t < T::NT && tok0 + t < n_tok && idx < n_chunks) {
        const auto* a = reinterpret_cast<const float4*>(act + (tok0 + t) * act_stride + idx * 8);
        const float4 a0 = a[0], a1 = a[1];
        v[0] = a0.x, v[1] = a0.y, v[2] = a0.z, v[3] = a0.w, v[4] = a1.x, v[5] = a1.y, v[6] = a1.z, v[7] = a1.w;
      }
      pack_half8<T::kParts>(v, xreg[l]);
    }
  };
  const auto store_step = [&](int buf) {
#pragma unroll
    for (int l = 0; l < T::kWLoads; ++l) {
      const int i = tid + l * T::kThreads;
#pragma unroll
      for (int p = 0; p < T::kParts; ++p) {
        *reinterpret_cast<uint4*>(&sh.w[buf][p][i / T::KC][(i % T::KC) * 8]) = wreg[l][p];
      }
    }
#pragma unroll
    for (int l = 0; l < T::kXLoads; ++l) {
      const int i = tid + l * T::kThreads;
      if (i / T::KC < T::NT) {
#pragma unroll
        for (int p = 0; p < T::kParts; ++p) {
          *reinterpret_cast<uint4*>(&sh.x[buf][p][i / T::KC][(i % T::KC) * 8]) = xreg[l][p];
        }
      }
    }
  };

#if defined(RF_GPU_CUDA)
  using namespace nvcuda;
  [[maybe_unused]] const int warp = tid / 32, lane = tid % 32;
  [[maybe_unused]] const int wm0 = (warp % T::WM) * (T::MT / T::WM), wn0 = (warp / T::WM) * (T::NT / T::WN);
  [[maybe_unused]] wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[T::FM][T::FN];
  [[maybe_unused]] wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc_lo[T::kSplit ? T::FM : 1][T::FN];
  if constexpr (kTensorCores) {
#pragma unroll
    for (int i = 0; i < T::FM; ++i) {
#pragma unroll
      for (int j = 0; j < T::FN; ++j) {
        wmma::fill_fragment(acc[i][j], 0.0f);
        if constexpr (T::kSplit) wmma::fill_fragment(acc_lo[i][j], 0.0f);
      }
    }
  }
#endif
  [[maybe_unused]] const int tx = tid % 16, ty = tid / 16;  // SIMT product
  [[maybe_unused]] float sacc[kTensorCores ? 1 : T::RM][kTensorCores ? 1 : T::RN] = {};

  load_step(0);
  store_step(0);
  __syncthreads();
  for (int64_t step = 0; step < n_steps; ++step) {
    const int buf = static_cast<int>(step & 1);
    if (step + 1 < n_steps) load_step(step + 1);
    if constexpr (kTensorCores) {
#if defined(RF_GPU_CUDA)
#pragma unroll
      for (int kk = 0; kk < T::KT; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[T::kParts][T::FM];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[T::kParts][T::FN];
#pragma unroll
        for (int p = 0; p < T::kParts; ++p) {
#pragma unroll
          for (int i = 0; i < T::FM; ++i) wmma::load_matrix_sync(fa[p][i], &sh.w[buf][p][wm0 + 16 * i][kk], T::kLd);
#pragma unroll
          for (int j = 0; j < T::FN; ++j) wmma::load_matrix_sync(fb[p][j], &sh.x[buf][p][wn0 + 16 * j][kk], T::kLd);
        }
#pragma unroll
        for (int i = 0; i < T::FM; ++i) {
#pragma unroll
          for (int j = 0; j < T::FN; ++j) {
            wmma::mma_sync(acc[i][j], fa[0][i], fb[0][j], acc[i][j]);
            if constexpr (T::kSplit) {
              wmma::mma_sync(acc_lo[i][j], fa[0][i], fb[1][j], acc_lo[i][j]);
              wmma::mma_sync(acc_lo[i][j], fa[1][i], fb[0][j], acc_lo[i][j]);
            }
          }
        }
      }
#endif
    } else {
#pragma unroll 4
      for (int k = 0; k < T::KT; ++k) {
        float a[T::RM], b[T::RN];
#pragma unroll
        for (int i = 0; i < T::RM; ++i) {
          a[i] = __half2float(sh.w[buf][0][tx + 16 * i][k]);
          if constexpr (T::kSplit) a[i] += __half2float(sh.w[buf][1][tx + 16 * i][k]) * kLoUnscale;
        }
#pragma unroll
        for (int j = 0; j < T::RN; ++j) {
          b[j] = __half2float(sh.x[buf][0][ty + T::TGN * j][k]);
          if constexpr (T::kSplit) b[j] += __half2float(sh.x[buf][1][ty + T::TGN * j][k]) * kLoUnscale;
        }
#pragma unroll
        for (int i = 0; i < T::RM; ++i) {
#pragma unroll
          for (int j = 0; j < T::RN; ++j) sacc[i][j] += a[i] * b[j];
        }
      }
    }
    if (step + 1 < n_steps) store_step(buf ^ 1);
    __syncthreads();
  }

  if constexpr (kTensorCores) {
#if defined(RF_GPU_CUDA)
    // Each warp stages one 16x16 fragment at a time in shared memory (the tiles are free after the last barrier)
    // and writes it with bounds checks: element (m, n) of the fragment is stage[m + 16 n].
    float* stage = reinterpret_cast<float*>(&sh) + warp * 256;
    static_assert(sizeof(SharedTiles<T>) >= T::kThreads / 32 * 256 * sizeof(float), "epilogue staging space");
#pragma unroll
    for (int i = 0; i < T::FM; ++i) {
#pragma unroll
      for (int j = 0; j < T::FN; ++j) {
        if constexpr (T::kSplit) {
#pragma unroll
          for (int e = 0; e < acc[i][j].num_elements; ++e) acc[i][j].x[e] += acc_lo[i][j].x[e] * kLoUnscale;
        }
        wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_col_major);
        __syncwarp();
#pragma unroll
        for (int e = lane; e < 256; e += 32) {
          const int64_t row = row0 + wm0 + 16 * i + e % 16;
          const int64_t tok = tok0 + wn0 + 16 * j + e / 16;
          if (row < n_out && tok < n_tok) out[tok * out_stride + row] = stage[e];
        }
        __syncwarp();
      }
    }
#endif
  } else {
#pragma unroll
    for (int j = 0; j < T::RN; ++j) {
      const int64_t tok = tok0 + ty + T::TGN * j;
      if (tok >= n_tok) continue;
#pragma unroll
      for (int i = 0; i < T::RM; ++i) {
        const int64_t row = row0 + tx + 16 * i;
        if (row < n_out) out[tok * out_stride + row] = sacc[i][j];
      }
    }
  }
}

unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

// Blocks a product should have so that every SM of a large part has enough loads in flight (132 SMs on an H100,
// 104-110 CUs on MI200 parts): with fewer, the product is split over K. 4-warp tiles want ~8 per SM, 8-warp ~2.
template <typename T>
constexpr int64_t target_blocks() {
  return T::kThreads <= 128 ? 1024 : 264;
}
constexpr int kMaxSplits = 16;

template <typename BT, typename T>
Status launch(bool tensor_cores, const WeightView& w, const float* act, int64_t n_tok, float* out, int64_t out_stride,
              gpuStream_t stream) {
  const int64_t n_steps = (w.n_in + T::KT - 1) / T::KT;
  const int64_t blocks = static_cast<int64_t>(ceil_div(w.n_out, T::MT)) * ceil_div(n_tok, T::NT);
  int splits = static_cast<int>(std::min<int64_t>({(target_blocks<T>() + blocks - 1) / blocks, n_steps / 4, kMaxSplits}));
  splits = std::max(splits, 1);
  const int64_t steps_per_split = (n_steps + splits - 1) / splits;
  splits = static_cast<int>((n_steps + steps_per_split - 1) / steps_per_split);
  float* dst = out;
  int64_t dst_stride = out_stride;
  if (splits > 1) {
    dst = split_scratch(stream, static_cast<size_t>(splits * n_tok * w.n_out));
    if (dst == nullptr) return Status::error("gpu matmul_mma: out of GPU memory for split-K partial sums");
    dst_stride = w.n_out;
  }
  const dim3 grid(ceil_div(w.n_out, T::MT), ceil_div(n_tok, T::NT), static_cast<unsigned>(splits));
  const auto* wb = static_cast<const uint8_t*>(w.data);
  const int64_t as = act_row_stride(w.n_in);
#if defined(RF_GPU_CUDA)
  // Rare formats: the tensor-core kernel only (compile time). The FMA variant exists on CUDA to test HIP's code
  // path on NVIDIA parts, and its product is the same for every format; HIP builds compile it for them.
  if (tensor_cores || is_rare_format<BT>()) {
    launch_kernel(matmul_mma_kernel<BT, T, true>, grid, T::kThreads, 0, stream, wb, w.nb1, w.n_in, w.n_out, act, as, n_tok, dst,
                                                                     dst_stride, steps_per_split);
  } else if constexpr (!is_rare_format<BT>()) {
    launch_kernel(matmul_mma_kernel<BT, T, false>, grid, T::kThreads, 0, stream, wb, w.nb1, w.n_in, w.n_out, act, as, n_tok,
                                                                      dst, dst_stride, steps_per_split);
  }
#else
  (void)tensor_cores;
  launch_kernel(matmul_mma_kernel<BT, T, false>, grid, T::kThreads, 0, stream, wb, w.nb1, w.n_in, w.n_out, act, as, n_tok, dst,
                                                                    dst_stride, steps_per_split);
#endif
  if (splits > 1) {
    return reduce_splits(dst, splits, n_tok, w.n_out, out, out_stride, stream);
  }
  return ok_status();
}

}  // namespace

namespace {
// out[tok][row] = sum over the splits, in split order, of partial[split][tok][row] (rows n_out apart).
__global__ void reduce_splits_kernel(const float* __restrict__ partial, int splits, int64_t n_tok, int64_t n_out,
                                     float* __restrict__ out, int64_t out_stride) {
  pdl_prologue();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_tok * n_out) return;
  float s = 0.0f;
  for (int z = 0; z < splits; ++z) s += partial[z * n_tok * n_out + i];
  out[(i / n_out) * out_stride + i % n_out] = s;
}

}  // namespace

// Partial-sum scratch per stream (products on one stream run in order, so one buffer each suffices). Never used
// inside a graph capture: graphs capture single-token decode only, which has no split. A buffer of an earlier
// device context (context_generation) is forgotten, not freed: the reset freed it, and a stream of the new context
// may have the old one's handle.
float* split_scratch(gpuStream_t stream, size_t floats) {
  struct Buf {
    float* ptr = nullptr;
    size_t floats = 0;
    uint64_t generation = 0;
  };
  static std::mutex mu;
  static std::map<gpuStream_t, Buf> bufs;
  std::lock_guard<std::mutex> lock(mu);
  Buf& b = bufs[stream];
  if (const uint64_t now = context_generation().load(); b.generation != now) b = Buf{nullptr, 0, now};
  if (floats > b.floats) {
    if (b.ptr != nullptr) {
      flush_recorded_launches();  // recorded launches may use the old buffer: they run before it is freed
      (void)gpuStreamSynchronize(stream);
      (void)gpuFree(b.ptr);
    }
    b.floats = 0;
    b.ptr = nullptr;
    if (gpuMalloc(reinterpret_cast<void**>(&b.ptr), floats * sizeof(float)) != gpuSuccess) return nullptr;
    b.floats = floats;
  }
  return b.ptr;
}

Status reduce_splits(const float* partial, int splits, int64_t n_tok, int64_t n_out, float* out, int64_t out_stride,
                     gpuStream_t stream) {
  const int64_t n = n_tok * n_out;
  launch_kernel(reduce_splits_kernel, static_cast<unsigned>((n + 255) / 256), 256, 0, stream, partial, splits, n_tok, n_out, out,
                                                                                    out_stride);
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "reduce_splits launch");
}

bool has_mma_matmul(quant::Type weight) {
  // F32 stays on the float kernels (F16 would lose its precision); BF16 values can exceed F16's range.
  return weight != quant::Type::F32 && weight != quant::Type::BF16 && weight_type_supported(weight);
}

bool has_all_mma_tiles(quant::Type weight) {
  bool all = false;
  dispatch_block_type(weight, [&](auto bt) { all = !is_rare_format<decltype(bt)>(); });
  return all && has_mma_matmul(weight);
}

Status matmul_mma(const WeightView& w, const float* act, int64_t n_tok, float* out, int64_t out_stride,
                  MmaTile tile, bool tensor_cores, gpuStream_t stream) {
  if (n_tok == 0 || w.n_out == 0) return ok_status();
  if (!has_mma_matmul(w.type)) {
    return Status::error("gpu matmul_mma: no tensor-core path for weight type " +
                         std::string(quant::type_name(w.type)));
  }
  Status launched = ok_status();
  dispatch_block_type(w.type, [&](auto bt) {
    using BT = decltype(bt);
    if constexpr (BT::kType == quant::Type::F32 || BT::kType == quant::Type::BF16) {
      return;  // not has_mma_matmul: no kernels for them
    } else if constexpr (is_rare_format<BT>()) {
      // Rare formats: one tile, the prefill one, for every request (compile time: 1 kernel per type, not 6).
      launched = launch<BT, TileMid>(tensor_cores, w, act, n_tok, out, out_stride, stream);
    } else {
      switch (tile) {
        case MmaTile::kLarge: launched = launch<BT, TileLarge>(tensor_cores, w, act, n_tok, out, out_stride, stream); break;
        case MmaTile::kMid: launched = launch<BT, TileMid>(tensor_cores, w, act, n_tok, out, out_stride, stream); break;
        case MmaTile::kSmall: launched = launch<BT, TileSmall>(tensor_cores, w, act, n_tok, out, out_stride, stream); break;
      }
    }
  });
  if (!launched.ok()) return launched;
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "matmul_mma launch");
}

}  // namespace rf::gpu
