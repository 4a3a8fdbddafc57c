// Single-token int8 products fused with the op that makes their activations (matmul.h matvec_int8_fused; by
// default for Q4_0 weights only: MatmulPolicy::fused_matvec, fused_matvec_for). A decode layer's small ops (RMS
// norm, SiLU gate) are launches of their own between the products: on the H100 each costs ~4 us of a ~69 us 7B
// layer, mostly the chain of dependent memory round trips at the kernel boundary, not the work. Here every block of
// the product computes the op itself, from the op's inputs in L2, into its shared memory, then streams its weight
// rows against it; the op's outputs (floats and quantized rows) are written a chunk per block for whoever reads them
// later. The residual add after the product (x = a + product) is the epilogue of the same launch.
//
// The grid is one block of up to 1024 threads per SM (the unfused launches' occupancy), so the op's inputs are read
// once per SM; warp w of the grid takes rows w, w + all warps, ... of the launch's matrices. Each row's sums are
// those of matvec_int8's single-token kernels (same per-row code, same order), and the op's values those of its own
// kernel (same expressions, same reduction tree), so fused and unfused decode give the same bits.
//
// Measured on the H100 (PERF_NOTES_2, sessions 21-24): 7B Q4_0 tg128 even with the separate launches to 6 % ahead
// (the default for Q4_0 since session 22), Q4_K_M behind them (off for the K-quants).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "backend/gpu/matvec_int8.cuh"

namespace rf::gpu {
namespace {

// Threads per block: 1024, or fewer for the K-quants whose rows need more registers than that leaves a thread
// without spilling (nvcc 12, sm_90: Q6_K 80 at 768 threads; Q5_K spills at 80, takes 512).
constexpr RF_HOST_DEVICE int fused_threads(quant::Type t, quant::Type t2) {
  return t == quant::Type::Q5_K ? 512 : t == quant::Type::Q6_K || t2 == quant::Type::Q6_K ? 768 : 1024;
}
constexpr int64_t kFusedMaxIn = 16384;  // activation elements the shared tile holds

struct FusedTile {
  alignas(16) int8_t q[kFusedMaxIn];
  float d[kFusedMaxIn / 32];
  int32_t s[kFusedMaxIn / 32];
};

// The launch's arguments beyond MatSet: the op (with the residual epilogue), first_row[m] matrix m's first row in
// the launch's row numbering, second_row the first row of T2 weights (mixed launches).
struct FusedArgs {
  FusedOp op;
  int64_t first_row[kMaxMats];
  int64_t total_rows;
  int64_t second_row;
  int prefetch_rows;  // rows per warp asked of L2 after the wait
};

// Row r of the launch: its matrix m, as WarpRows (one row, one token).
RF_DEVICE WarpRows fused_row(const MatSet& set, const FusedArgs& f, int64_t r, int* m_out) {
  static_assert(kMaxMats == 3, "the selects below name each matrix");
  const int m = (set.count > 2 && r >= f.first_row[2]) ? 2 : (set.count > 1 && r >= f.first_row[1]) ? 1 : 0;
  *m_out = m;
  const int64_t first = m == 0 ? f.first_row[0] : m == 1 ? f.first_row[1] : f.first_row[2];
  const int64_t n_rows = r < f.total_rows ? 1 : 0;
  if (m == 0) return {set.w[0], set.nb1[0], set.out[0], set.out_stride[0], r - first, n_rows, 0, 1};
  if (m == 1) return {set.w[1], set.nb1[1], set.out[1], set.out_stride[1], r - first, n_rows, 0, 1};
  return {set.w[2], set.nb1[2], set.out[2], set.out_stride[2], r - first, n_rows, 0, 1};
}

// The op into the tile (and, from block 0, into op.out and op.rows). Every thread of the block must call it.
// loaded(): called by every thread once the op's first inputs are asked for (the kernel's weight prefetches).
template <int QK, typename Loaded>
RF_DEVICE void fused_prologue(FusedTile& tile, const FusedOp& op, int64_t n_in, Loaded&& loaded) {
  constexpr int kPer = kQuantPerLane, kVecs = kPer / 4;
  // Chunk c's outputs are written by block c % gridDim.x (every block computes them all, alike).
  const auto writes = [](int64_t c) { return c % gridDim.x == blockIdx.x; };
  const int n_warps = static_cast<int>(blockDim.x) / kWarpSize;
  if (op.prologue == FusedPrologue::kSilu) {  // silu_mul_quant_kernel's chunks of 256, one warp each
    for (int64_t base = static_cast<int64_t>(warp_id()) * 256; base < n_in; base += n_warps * 256) {
      const int64_t e0 = base + static_cast<int64_t>(lane_id()) * kPer;
      const bool live = e0 < n_in;
      float4 g[kVecs], u[kVecs];
#pragma unroll
      for (int k = 0; k < kVecs; ++k) {  // 16-byte loads (flush_matvec_group: aligned rows)
        g[k] = live ? reinterpret_cast<const float4*>(op.x + e0)[k] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        u[k] = live ? reinterpret_cast<const float4*>(op.y + e0)[k] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      }
      if (base == static_cast<int64_t>(warp_id()) * 256) loaded();
      float v[kPer];
#pragma unroll
      for (int k = 0; k < kVecs; ++k) {
        v[4 * k] = live ? silu_times(g[k].x, u[k].x) : 0.0f;
        v[4 * k + 1] = live ? silu_times(g[k].y, u[k].y) : 0.0f;
        v[4 * k + 2] = live ? silu_times(g[k].z, u[k].z) : 0.0f;
        v[4 * k + 3] = live ? silu_times(g[k].w, u[k].w) : 0.0f;
      }
      const bool writer = writes(base / 256);
      if (live && writer) {
#pragma unroll
        for (int k = 0; k < kVecs; ++k) {
          reinterpret_cast<float4*>(op.out + e0)[k] = make_float4(v[4 * k], v[4 * k + 1], v[4 * k + 2], v[4 * k + 3]);
        }
      }
      quantize_warp_values<QK>(v, live, e0, tile.q, tile.d, tile.s);
      if (writer) quantize_warp_values<QK>(v, live, e0, op.rows.q, op.rows.d, op.rows.s);
    }
    if (static_cast<int64_t>(warp_id()) * 256 >= n_in) loaded();  // warps without a chunk
    return;
  }
  // RMS norm as rms_norm_rows_kernel with one chunk of 256 per warp for its op.norm_warps warps: the others add
  // zeros to the block's sum, as that kernel's missing warps do.
  __shared__ float scratch[kMaxWarpsPerBlock];
  const int64_t c = warp_id();
  const bool has = c < op.norm_warps && c < n_in / 256;
  const int64_t e0 = c * 256 + static_cast<int64_t>(lane_id()) * kPer;
  float4 v[kVecs], g[kVecs];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    v[k] = has ? reinterpret_cast<const float4*>(op.x + e0)[k] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    g[k] = has && op.y != nullptr ? reinterpret_cast<const float4*>(op.y + e0)[k] : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
  }
  loaded();
#pragma unroll
  for (int k = 0; k < kVecs; ++k) sum += squares(v[k]);
  sum = block_reduce_sum(sum, scratch);
  const float scale = rms_scale(sum, n_in, op.eps);
  if (!has) return;  // uniform across the warp
  const bool writer = writes(c);
  float q[kPer];
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    float4 t = v[k];
    t = make_float4(t.x * scale, t.y * scale, t.z * scale, t.w * scale);
    if (op.y != nullptr) t = make_float4(t.x * g[k].x, t.y * g[k].y, t.z * g[k].z, t.w * g[k].w);
    if (writer) reinterpret_cast<float4*>(op.out + e0)[k] = t;
    q[4 * k] = t.x;
    q[4 * k + 1] = t.y;
    q[4 * k + 2] = t.z;
    q[4 * k + 3] = t.w;
  }
  quantize_warp_values<QK>(q, true, e0, tile.q, tile.d, tile.s);
  if (writer) quantize_warp_values<QK>(q, true, e0, op.rows.q, op.rows.d, op.rows.s);
}

// Blocks of a row each lane loads before summing any (fused_row_sums, 32-element formats).
constexpr int kFusedAhead = 4;

// One row's sums, as matvec_split_kernel / matvec_kquant_kernel's single-token unstaged loops.
template <quant::Type T>
RF_DEVICE void fused_row_sums(const WarpRows& wr, int64_t n_blocks, const ActSpan& span, float (&acc)[1][1]) {
  const uint8_t* row = wr.w + wr.row0 * wr.nb1;
  if constexpr (SplitFormat<T>::kQk == 256) {
    constexpr int kPass = kWarpSize / kLanesPerKBlock;
    kquant_row<T, 1, kPass, kKquantUnroll<T, 1>>(row, n_blocks, lane_id() / kLanesPerKBlock,
                                                 lane_id() % kLanesPerKBlock, 1, span, acc);
  } else {
    // The lane's blocks in batches of kFusedAhead: every load of a batch is issued before the first is used. (A loop
    // of split_block unrolled by the compiler, capped at 64 registers by the 1024-thread block, issued them one or
    // two at a time, each waited for: ncu had the launch waiting on L1TEX for half its cycles.) The sums are added in
    // block order, as before: the same bits.
    const uint8_t* rows[1] = {row};
    const int nb = static_cast<int>(n_blocks);
    for (int ib0 = lane_id(); ib0 < nb; ib0 += kFusedAhead * kWarpSize) {
      SplitRaw<1> raw[kFusedAhead];
#pragma unroll
      for (int j = 0; j < kFusedAhead; ++j) {
        if (ib0 + j * kWarpSize < nb) fetch_split<T, 1>(rows, n_blocks, ib0 + j * kWarpSize, 1, raw[j]);
      }
#pragma unroll
      for (int j = 0; j < kFusedAhead; ++j) {
        if (ib0 + j * kWarpSize < nb) sum_split<T, 1, 1>(raw[j], 1, 1, span, ib0 + j * kWarpSize, acc);
      }
    }
  }
}

template <quant::Type T, quant::Type T2>
__global__ void __launch_bounds__((fused_threads(T, T2)), 1)
    matvec_fused_kernel(const MatSet set, int64_t n_blocks, int64_t n_in, const FusedArgs f) {
  constexpr int QK = SplitFormat<T>::kQk == 256 ? 256 : 32;
  __shared__ FusedTile tile;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarpSize);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + warp_id();
  int m = 0;
  grid_dependents_launch();
  grid_dependency_wait();
  // The warp's first rows (f.prefetch_rows, within what L2 holds) asked of L2 once the op's loads are out (asked
  // before them, or before the wait as the unfused kernels do, they held the op up by microseconds): DRAM streams
  // them while the op runs.
  fused_prologue<QK>(tile, f.op, n_in, [&] {
    for (int k = 0; k < f.prefetch_rows; ++k) {
      const WarpRows wr = fused_row(set, f, first + k * warps, &m);
      if (wr.n_rows <= 0) break;  // uniform across the warp
      const uint8_t* p = wr.w + wr.row0 * wr.nb1;
      for (int64_t off = static_cast<int64_t>(lane_id()) * 128; off < static_cast<int64_t>(wr.nb1);
           off += kWarpSize * 128) {
        prefetch_l2(p + off);
      }
    }
  });
  __syncthreads();
  trace_stamp(6);  // traced builds (bench/gpu-trace.sh POINTS=matvec_fused): block 0's op done; 3: the last row
  const ActSpan span{tile.q, tile.d, tile.s, 0, 0, 0};
  for (int64_t r = first; r < f.total_rows; r += warps) {
    const WarpRows wr = fused_row(set, f, r, &m);
    // The row's residual read before its sums (see early_residual): no round trip after them.
    float res_v = 0.0f;
    if (lane_id() == 0) {
      const float* res = m == 0 ? f.op.res[0] : m == 1 ? f.op.res[1] : f.op.res[2];
      if (res != nullptr) res_v = res[wr.row0];
    }
    float acc[1][1] = {{0.0f}};
    if (T2 != T && r >= f.second_row) {
      fused_row_sums<T2>(wr, n_blocks, span, acc);
    } else {
      fused_row_sums<T>(wr, n_blocks, span, acc);
    }
    const float s = warp_reduce_sum(acc[0][0]);
    if (lane_id() == 0) {
      wr.out[wr.row0] = s;
      float* sum = m == 0 ? f.op.sum[0] : m == 1 ? f.op.sum[1] : f.op.sum[2];
      if (sum != nullptr) sum[wr.row0] = res_v + s;
    }
  }
  trace_last_warp(3);
}

// The weight pairs one launch takes: a type alone, or Q4_K / Q5_K rows then Q6_K rows (Q4_K_M / Q5_K_M q / k / v).
bool fused_type(quant::Type t) {
  using quant::Type;
  switch (t) {
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0:
    case Type::Q5_1:
    case Type::Q8_0:
    case Type::IQ4_NL:
    case Type::Q4_K:
    case Type::Q5_K:
    case Type::Q6_K:
      return true;
    default:
      return false;
  }
}

// Weight bytes a launch asks L2 for after its wait, at most (the H100's L2 holds 50 MB).
constexpr int64_t kFusedPrefetchBytes = int64_t{24} << 20;

template <quant::Type T, quant::Type T2 = T>
void launch_fused(int n_sms, int warp_size, const MatSet& set, int64_t n_blocks, int64_t n_in, FusedArgs f,
                  gpuStream_t stream) {
  const int64_t warps = fused_threads(T, T2) / warp_size;
  const auto grid = static_cast<unsigned>(std::min<int64_t>(std::max(n_sms, 1), blocks_for(f.total_rows, warps)));
  size_t nb1 = 0;
  for (int i = 0; i < set.count; ++i) nb1 = std::max(nb1, set.nb1[i]);
  const int64_t all_warps = static_cast<int64_t>(grid) * warps;
  f.prefetch_rows = static_cast<int>(
      std::clamp<int64_t>(kFusedPrefetchBytes / std::max<int64_t>(1, all_warps * static_cast<int64_t>(nb1)), 1, 8));
  launch_kernel(matvec_fused_kernel<T, T2>, grid, fused_threads(T, T2), 0, stream, set, n_blocks, n_in, f);
}

std::atomic<int64_t> g_fused_launches{0};

}  // namespace

int64_t fused_matvec_launches() { return g_fused_launches.load(std::memory_order_relaxed); }

bool can_fuse_matvec(const WeightView* ws, int count, FusedPrologue op, int norm_warps, int warp_size) {
  const MatmulPolicy& policy = matmul_policy();
  if (count < 1 || count > kMaxMats || !fused_matvec_for(ws[0].type) || policy.split_rows == 2) return false;
  const int64_t n_in = ws[0].n_in;
  const int qk = int8_matvec_act_kind(ws[0].type);
  if (n_in > kFusedMaxIn || n_in % qk != 0) return false;
  if (op == FusedPrologue::kNorm && (n_in % 256 != 0 || norm_warps <= 0 || n_in / 256 > norm_warps ||
                                     norm_warps > fused_threads(ws[0].type, ws[count - 1].type) / warp_size)) {
    return false;
  }
  int n_first = 1;
  while (n_first < count && ws[n_first].type == ws[0].type) ++n_first;
  for (int i = 0; i < count; ++i) {
    if (!fused_type(ws[i].type) || ws[i].n_in != n_in || !split_rows_aligned(ws[i])) return false;
  }
  if (n_first < count) return mixed_launch_fits(ws, count, n_first, 1);
  // One warp per row, as the unfused launch of these weights has.
  return split_k_for(ws[0].type, total_rows(ws, count), n_in / split_layout(ws[0].type).qk, policy.split_k) == 1;
}

Status matvec_int8_fused(const WeightView* ws, float* const* outs, int count, const FusedOp& op, int n_sms,
                         int warp_size, gpuStream_t stream) {
  using quant::Type;
  if (!can_fuse_matvec(ws, count, op.prologue, op.norm_warps, warp_size)) {
    return Status::error("gpu matvec_int8_fused: these weights or this op do not fit the fused kernel");
  }
  MatSet set{};
  FusedArgs f{};
  f.op = op;
  f.second_row = INT64_MAX;
  int64_t rows = 0;
  for (int i = 0; i < count; ++i) {
    set.w[i] = static_cast<const uint8_t*>(ws[i].data);
    set.nb1[i] = ws[i].nb1;
    set.n_out[i] = ws[i].n_out;
    set.out[i] = outs[i];
    set.out_stride[i] = 1;
    f.first_row[i] = rows;
    if (ws[i].type != ws[0].type && f.second_row == INT64_MAX) f.second_row = rows;
    rows += ws[i].n_out;
  }
  set.count = count;
  f.total_rows = rows;
  if (rows == 0) return ok_status();
  const int64_t n_blocks = ws[0].n_in / split_layout(ws[0].type).qk;
  const int64_t n_in = ws[0].n_in;
  switch (ws[0].type) {
    case Type::Q4_0:
      launch_fused<Type::Q4_0>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::Q4_1:
      launch_fused<Type::Q4_1>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::Q5_0:
      launch_fused<Type::Q5_0>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::Q5_1:
      launch_fused<Type::Q5_1>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::Q8_0:
      launch_fused<Type::Q8_0>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::IQ4_NL:
      launch_fused<Type::IQ4_NL>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::Q4_K:
      f.second_row != INT64_MAX ? launch_fused<Type::Q4_K, Type::Q6_K>(n_sms, warp_size, set, n_blocks, n_in, f, stream)
                                : launch_fused<Type::Q4_K>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    case Type::Q5_K:
      f.second_row != INT64_MAX ? launch_fused<Type::Q5_K, Type::Q6_K>(n_sms, warp_size, set, n_blocks, n_in, f, stream)
                                : launch_fused<Type::Q5_K>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
    default:
      launch_fused<Type::Q6_K>(n_sms, warp_size, set, n_blocks, n_in, f, stream);
      break;
  }
  g_fused_launches.fetch_add(1, std::memory_order_relaxed);
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "matvec_int8_fused launch");
}

}  // namespace rf::gpu
