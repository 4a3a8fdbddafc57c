// Host launchers of the weight kernels (matmul.cu): activation rounding, matrix-vector and tiled matrix-matrix
// products for every weight type with a GPU decoder, the expert (MoE) product, and embedding row lookup.
//
// Numerics: like the CPU reference, activations are first rounded to the format the weight type pairs with
// (Q8_0 / Q8_1 / Q8_K blocks, F16, BF16 or F32: activation_type()), and the product is then computed in float
// from the decoded weight elements and the rounded activations (no integer dot products). The result equals the
// CPU's up to float summation order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/gpu/compat.h"
#include "core/status.h"
#include "quant/types.h"

namespace rf::gpu {

// A weight in GPU memory: n_mat matrices of n_out rows of n_in elements (rows nb1 bytes apart, matrices nb2).
struct WeightView {
  const void* data = nullptr;
  quant::Type type = quant::Type::F32;
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t n_mat = 1;
  size_t nb1 = 0;
  size_t nb2 = 0;
};

// Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS live on the GPU in
// "split rows" (GpuBackend::load_weight arranges them so, dequant.h split_rows). A GGUF block is cut into its body
// (the code bytes), its head (Q5_0 / Q5_1: qh, 4 bytes; K-quants: 16 bytes, Q4_K / Q5_K d, dmin and the 12 scale
// bytes, Q6_K the 16 sub-block scales; Q2_K: the 16 scale / min bytes; Q3_K: its 12 scale bytes; IQ4_XS: 8 bytes, d
// and the 6-bit sub-block scales) and its f16 scale (Q4_0 / Q5_0 / Q8_0 / IQ4_NL / Q3_K / Q6_K d; Q4_1 / Q5_1 d and
// m, Q2_K d and dmin); a row of nb blocks holds every block's body in block order, then every head, then every
// scale, and rows start 16 bytes apart at least (weight_row_pitch pads them). Bodies and heads are then 16-byte
// (Q3_K / IQ4_XS heads 4-byte) aligned, and a warp reading consecutive blocks reads consecutive bytes: the products
// load them with 16-byte loads straight from global memory. A split row is no longer than the GGUF row: body, head
// and scale are the whole block.
struct SplitLayout {
  int body_bytes = 0;   // 0: the type is not split
  int body_offset = 0;  // where the body starts in the GGUF block (it runs to body_offset + body_bytes)
  int head_offset = -1;   // where the head bytes start in the GGUF block (-1: none)
  int scale_offset = -1;  // where the f16 scale is in the GGUF block (-1: none)
  int block_bytes = 0;    // the GGUF block
  int qk = 0;             // elements per block
  int head_bytes = 16;    // the head's size when there is one: 16, or a multiple of 4 below it
  int scale_bytes = 2;    // the scale's size when there is one: 2 (d) or 4 (Q2_K: d and dmin)
};
constexpr SplitLayout split_layout(quant::Type t) {
  using quant::Type;
  switch (t) {
    case Type::Q4_0: return {16, 2, -1, 0, 18, 32};    // d, 16 nibble bytes
    case Type::Q8_0: return {32, 2, -1, 0, 34, 32};    // d, 32 codes
    case Type::Q4_1: return {16, 4, -1, 0, 20, 32, 16, 4};  // d, m, 16 nibble bytes
    case Type::Q5_0: return {16, 6, 2, 0, 22, 32, 4};       // d, qh (fifth bits), 16 nibble bytes
    case Type::Q5_1: return {16, 8, 4, 0, 24, 32, 4, 4};    // d, m, qh, 16 nibble bytes
    case Type::IQ4_NL: return {16, 2, -1, 0, 18, 32};  // d, 16 nibble bytes (level indices)
    case Type::Q4_K: return {128, 16, 0, -1, 144, 256};  // d, dmin, scales[12], qs[128]
    case Type::Q5_K: return {160, 16, 0, -1, 176, 256};  // d, dmin, scales[12], qh[32], qs[128]
    case Type::Q6_K: return {192, 0, 192, 208, 210, 256};  // ql[128], qh[64], scales[16], d
    case Type::Q2_K: return {64, 16, 0, 80, 84, 256, 16, 4};  // scales[16], qs[64], d, dmin
    case Type::Q3_K: return {96, 0, 96, 108, 110, 256, 12};  // hmask[32], qs[64], scales[12], d
    case Type::IQ4_XS: return {128, 8, 0, -1, 136, 256, 8};  // d, scales_h, scales_l[4], qs[128]
    default: return {};
  }
}
// The bytes of a block's body (0: not split), head (0, or a multiple of 4 up to 16) and scale (0, 2 or 4) in split
// rows.
constexpr int split_code_bytes(quant::Type t) { return split_layout(t).body_bytes; }
constexpr int split_head_bytes(quant::Type t) {
  return split_layout(t).head_offset >= 0 ? split_layout(t).head_bytes : 0;
}
constexpr int split_scale_bytes(quant::Type t) {
  return split_layout(t).scale_offset >= 0 ? split_layout(t).scale_bytes : 0;
}
// False for split rows that are not 16-byte aligned (not loaded by load_weight); true for any other type.
inline bool split_rows_aligned(const WeightView& w) {
  return split_code_bytes(w.type) == 0 || (w.nb1 % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0);
}

// True for the weight types the GPU kernels decode (those blocks.cuh's dispatch_block_type knows).
bool weight_type_supported(quant::Type t);
// Their names in GGUF id order, comma-separated ("F32, F16, Q4_0, ..."), for error messages.
std::string supported_weight_types();

// The activation rounding the CPU reference pairs with weight type t (Q8_0, Q8_1, Q8_K, F16, BF16 or F32).
quant::Type activation_type(quant::Type weight);

// Floats per row of rounded activations for rows of n_in (n_in rounded up to 8; the padding holds zeros).
int64_t act_row_stride(int64_t n_in);

// Rounds n_rows rows of n_in floats (x, rows x_stride floats apart) as act_type does, writing the rounded values
// as floats to out (rows act_row_stride(n_in) apart, 16-byte aligned). Block formats need n_in % block == 0.
Status round_activations(quant::Type act_type, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                         float* out, gpuStream_t stream);

// As round_activations, but the rounded values are stored as 16-bit rows (out_stride >= n_in elements apart) for
// the BLAS (blas.h): BF16 when act_type is BF16, else F16 (act_type Q8_0 / Q8_1 / Q8_K / F16; the Q8 values
// scale * code round to F16 once more).
Status round_activations_16bit(quant::Type act_type, const float* x, int64_t x_stride, int64_t n_in, int64_t n_rows,
                               uint16_t* out, int64_t out_stride, gpuStream_t stream);

// out[t * out_stride + r] = dot(weight row r, act row t) for t < n_tok, r < w.n_out (first matrix of w).
// act: rounded activations from round_activations (rows act_row_stride(w.n_in) apart). Small batches use the
// matrix-vector kernel (F16 / BF16: groups of 2 to 8 tokens staged through shared memory), larger ones the tiled
// kernel. warp_size: the device's (DeviceInfo::warp_size).
// per_token (batch-invariant backends): every batch size takes the matrix-vector kernels, whose sums for a token
// are the same steps whatever the batch (a token's bits do not depend on it; the tiles' would).
Status matmul(const WeightView& w, const float* act, int64_t n_tok, float* out, int64_t out_stride, int warp_size,
              gpuStream_t stream, bool per_token = false);

// Single-token products of count (1..3) F16 or BF16 weights of one type and row length with the same activation row
// x (q / k / v, gate / up) in one launch: x holds floats as the previous op wrote them, and the kernel rounds them
// to the weights' format as round_activations does, so out is what round_activations + matmul() give, without
// the rounding launch. has_float_matvec_multi: whether w and x fit it (F16 / BF16, n_in a multiple of 8, 16-byte
// aligned rows and x, MatmulPolicy::staged_matvec on). Weight i's row r lands in outs[i][r].
bool has_float_matvec_multi(const WeightView& w, const float* x, int64_t n_tok);
Status matvec_float_multi(const WeightView* ws, float* const* outs, int count, const float* x, int warp_size,
                          gpuStream_t stream);

// Tensor-core product (matmul_mma.cu) for batches: F16 MMAs over weights decoded to F16 in shared memory, for every
// GPU weight type except F32 and BF16. Tiles: kSmall 32 rows x 32 tokens (batched decode), kMid 128 x 64, kLarge
// 128 x 128 (long prompts). tensor_cores false runs the same tiles with FMA products (HIP always does).
// The rare formats (IQ2_*, IQ3_*, IQ1_*, TQ*_0, MXFP4: has_all_mma_tiles false) have the kMid tile only, which
// matmul_mma runs whatever tile is asked for (matmul() sends their kSmall batches to the float kernels instead),
// and on CUDA only with tensor cores (tensor_cores false is ignored for them).
enum class MmaTile { kSmall, kMid, kLarge };
bool has_mma_matmul(quant::Type weight);
bool has_all_mma_tiles(quant::Type weight);
// Fewest tokens for which matmul() takes matmul_mma for this weight type: MatmulPolicy::mma_min_tokens when set,
// else where the tiles overtake the matrix-vector kernels, which stream the weights once per launch of up to 8
// tokens and decode them to float. H100, gpu_matvec_bench, single launches, us, float / tiles, 4096 x 11008 then
// 11008 x 4096 (the tiles cost the same at any of these widths):
//   F16           4 tokens 83.9 / 84.7,  98.7 / 98.2;    5 tokens 108.6 / 105.1, 203.3 / 108.6   -> 5
//   Q2_K          6 tokens 110.5 / 114.8, 115.8 / 112.9; 7 tokens 119.7 / 114.9, 127.3 / 113.1  -> 7
//   Q3_K          6 tokens 130.4 / 140.0, 147.6 / 147.8; 7 tokens 137.9 / 141.0, 159.0 / 147.8  -> 7
//   Q4_1          8 tokens 144.7 / 171.6, 130.7 / 120.5; 9 tokens 173.0 / 171.2, 175.5 / 121.4  -> 9
//   Q5_1          8 tokens 143.3 / 182.9, 129.2 / 142.2; 9 tokens 173.1 / 182.5, 183.2 / 142.0  -> 9
//   IQ4_XS        8 tokens 131.4 / 179.4, 127.4 / 139.0; 9 tokens 186.7 / 179.1, 193.9 / 138.3  -> 9
// (a layer has two gate / up matrices per down matrix). Q5_0 behaves as Q5_1 (8 tokens 144.4 / 184.1). Other
// types reach matmul_mma only past the int8 and mmq kernels, or (the rare formats) from 33 tokens: 2.
int64_t mma_min_tokens_for(quant::Type weight);
Status matmul_mma(const WeightView& w, const float* act, int64_t n_tok, float* out, int64_t out_stride,
                  MmaTile tile, bool tensor_cores, gpuStream_t stream);

// How matmul() picks its kernel; process-wide, read once from the environment (ROCMFORGE_GPU_MMA_MIN_TOKENS,
// ROCMFORGE_GPU_INT8_MAX_TOKENS, ROCMFORGE_GPU_MMQ_MIN_TOKENS, ROCMFORGE_GPU_MMQ_MAX_TOKENS,
// ROCMFORGE_GPU_BLAS_MIN_TOKENS, ROCMFORGE_GPU_TENSOR_CORES=0|1) and adjustable by tests and benchmarks (not
// thread-safe: set it before use).
// GpuBackend::matmul tries the BLAS (blas.h), then matmul_mmq, then matvec_int8, then (F16 / BF16 batches)
// matmul_mmf, then matmul_mma, then the float kernels.
struct MatmulPolicy {
  // Batches of at least this many tokens take matmul_mma (when the type has it); 0 (the default): by weight type,
  // mma_min_tokens_for (ROCMFORGE_GPU_MMA_MIN_TOKENS).
  int64_t mma_min_tokens = 0;
  bool tensor_cores = true;    // false: matmul_mma's FMA variant (what HIP builds run)
  int force_tile = -1;         // >= 0: always this MmaTile (benchmarks)
  int64_t int8_max_tokens = 32;  // batches of up to this many tokens take matvec_int8 (when the type has it)
  // Batches in [mmq_min_tokens, mmq_max_tokens] take matmul_mmq (when it has the type); smaller ones matvec_int8,
  // which streams the weights once per launch while mmq's 64-row tiles do not fill the H100 at 2-4 tokens (7B decode
  // of 2 / 3 / 4 sequences, t/s, mmq -> matvec_int8: Q4_0 489 / 732 / 969 -> 664 / 827 / 985, Q8_0 355 / 529 / 701
  // -> 549 / 701 / 847, Q4_K_M 352 / 525 / 697 -> 594 / 726 / 857; 8 sequences within 1 %).
  int64_t mmq_min_tokens = 5;
  int64_t mmq_max_tokens = int64_t{1} << 40;
  // matmul_mmq splits K by the weight's shape (for small batches); launches whose unsplit grid has at least this many
  // blocks run unsplit, summing the splits apart in each block (the same bits); 0: never
  // (ROCMFORGE_GPU_MMQ_FUSE_BLOCKS).
  int64_t mmq_fuse_split_blocks = 256;
  // Single-token products of the common formats outside split rows (F16, BF16) with
  // 16-byte aligned rows staged in shared memory (faster on the H100): 0 never, else always (ROCMFORGE_GPU_STAGED).
  int staged_matvec = 1;
  int split_rows = 0;  // rows per warp of Q4_0 / Q8_0 matvec_int8: 0 by batch, else 1 or 2 (ROCMFORGE_GPU_SPLIT_ROWS)
  int split_k = 0;     // warps per row group of matvec_int8: 0 by shape, else 1 or 2 (ROCMFORGE_GPU_SPLIT_K)
  // matvec_int8 launches whose token groups (2, 4 or 8 tokens per launch block) hold at least this many tokens load
  // the activations through shared memory, once per block (not for Q8_0 weights, where it lost); 0 never
  // (ROCMFORGE_GPU_STAGE_TOKENS). The same bits either way.
  int stage_min_tokens = 4;
  // Batch-invariant backends (GpuBackend::set_batch_invariant) give each token of the int8 and F16 / BF16 types one
  // kernel in any batch, by its kind (GpuBackend::set_generated_by_matvec); invariant_matvec: the matrix-vector
  // kernels for every token (ROCMFORGE_GPU_INVARIANT_MATVEC=1; 7B Q4_0 on the H100: prefill 1.7k t/s against mmq's
  // 4.9k).
  bool invariant_matvec = false;
  // Batches of at least this many tokens go through the vendor BLAS (blas.h) when the build has one and the backend
  // is not batch-invariant; 0: never (ROCMFORGE_GPU_BLAS_MIN_TOKENS).
  int64_t blas_min_tokens = 128;
  // Single-token products of Q4_K / Q5_K and Q6_K weights over the same rows (q / k and v of Q4_K_M / Q5_K_M) run
  // as one launch; false: a launch per type (ROCMFORGE_GPU_MIXED_LAUNCH=0). The same bits either way.
  bool mixed_launches = true;
  // F16 / BF16 batches of 2 to this many tokens take matmul_mmf when the backend is not batch-invariant (when it is,
  // every F16 / BF16 product its kind routing gives the tensor-core kernel); 0: never (ROCMFORGE_GPU_MMF_MAX_TOKENS).
  int64_t mmf_max_tokens = 32;
  // Single-token int8 products take the op that makes their activations (norm, SiLU gate) into their own launch,
  // and the residual add after them (matvec_int8_fused): -1 (the default) by format (fused_matvec_for), 1 for all, 0
  // never (ROCMFORGE_GPU_FUSED_MATVEC=0 / 1). The same bits either way. On the H100, with the residual adds in the
  // products (below), 7B tg128: Q4_0 +6 %, Q4_1 / IQ4_NL / Q5_0 even, Q8_0 -7 %, Q4_K_M -2 % (PERF_NOTES_2,
  // session 22).
  int fused_matvec = -1;
  // Single-token int8 products of one weight take the residual add after them into their launch (ResidualAdd;
  // ROCMFORGE_GPU_RESIDUAL_ADD=0: off). The same bits either way; on the H100 7B Q4_0 / Q4_K_M tg128 gained 1-3 %
  // (PERF_NOTES_2, session 22).
  bool residual_add = true;
};
MatmulPolicy& matmul_policy();
// Whether MatmulPolicy::fused_matvec asks for the fused launches of this weight type.
bool fused_matvec_for(quant::Type weight);
// The tile matmul() uses for n_tok tokens and n_out rows under the current policy.
MmaTile pick_mma_tile(int64_t n_tok, int64_t n_out);

// Decode fast path (matvec_int8.cu) for Q4_0 / Q8_0 / IQ4_NL / Q4_K / Q5_K / Q6_K weights and 1 to
// MatmulPolicy::int8_max_tokens tokens: activations quantized to Q8_0 or Q8_K (int8 codes and block scales, as the
// CPU does) and integer dot products (dot4_i8), the CPU's arithmetic up to float summation order. Each weight block
// is read once for up to 8 tokens. A token's result is bitwise the same whatever the other tokens of the batch
// are (every token's sums take the same steps), so batched decode gives the text single decode gives.
bool has_int8_matvec(quant::Type weight, int64_t n_tok);
// The residual add after a single-token product of one weight, done by the product's launch as it stores each row
// (matvec_int8_rows' epilogue): sum = res + out[0] (sum may be res). The same bits as the add kernel.
struct ResidualAdd {
  const float* res = nullptr;
  float* sum = nullptr;
};
// Single-token launches with a ResidualAdd so far in this process (tests check that a path took one).
int64_t residual_add_launches();
// Bytes of scratch matvec_int8_multi needs for n_tok rows of n_in.
size_t int8_matvec_scratch_bytes(int64_t n_in, int64_t n_tok = 1);
// For count (1..3) weights of one row length and activation kind that multiply the same rows x (q / k / v, gate /
// up): one quantization and one launch (a launch per type where matvec_int8_rows cannot mix them). Token t (row
// x + t * x_stride) of weight i lands in outs[i] + t * out_strides[i].
// scratch: int8_matvec_scratch_bytes(n_in, n_tok), 16-byte aligned. quantize false: scratch already holds x
// quantized for a weight of the same int8_matvec_act_kind (a previous call with the same rows), so only the
// product runs.
Status matvec_int8_multi(const WeightView* ws, float* const* outs, const int64_t* out_strides, int count,
                         const float* x, int64_t x_stride, int64_t n_tok, void* scratch, int warp_size,
                         gpuStream_t stream, bool quantize = true, const ResidualAdd* add = nullptr);
// 256 for the weight types whose activations are Q8_K, 32 for Q8_0 (the quantized scratch is shared only within one).
int int8_matvec_act_kind(quant::Type weight);

// Quantized activation rows in int8_matvec scratch: row t's codes at q + t * q_stride (16-byte aligned), its block
// scales (Q8_0: one per 32, Q8_K: one per 256) at d + t * d_stride, the sums of its 32-code groups at s + t * s_stride.
struct Int8Rows {
  int8_t* q = nullptr;
  float* d = nullptr;
  int32_t* s = nullptr;
  int64_t q_stride = 0, d_stride = 0, s_stride = 0;
};
Int8Rows int8_rows_layout(void* scratch, int64_t n_in, int64_t n_tok);
// The rows of r from row `first` on.
inline Int8Rows rows_from(const Int8Rows& r, int64_t first) {
  Int8Rows s = r;
  s.q += first * r.q_stride;
  s.d += first * r.d_stride;
  s.s += first * r.s_stride;
  return s;
}
// matvec_int8_multi over activation rows quantized already (rows: int8_rows_layout, or rows_from of it). The
// weights of one call share their row length and activation kind (int8_matvec_act_kind); a call whose weights have
// two types runs as one launch where MatmulPolicy::mixed_launches allows it, else as a launch per type.
Status matvec_int8_rows(const WeightView* ws, float* const* outs, const int64_t* out_strides, int count,
                        const Int8Rows& rows, int64_t n_tok, int warp_size, gpuStream_t stream,
                        const ResidualAdd* add = nullptr);
// A single-token product fused with its activations' op (matvec_fused.cu): every launch block computes the op into
// shared memory, and its outputs, out (floats) and rows (int8 codes, int8_rows_layout of one row), are written
// as the op's own kernel would (elementwise.h rms_norm_quant / silu_mul_quant: the same bits). res[m] / sum[m]
// (when set): the residual add after weight m's product, sum[m] = res[m] + out[m] (sum may be res).
enum class FusedPrologue { kNorm, kSilu };
struct FusedOp {
  FusedPrologue prologue = FusedPrologue::kNorm;
  const float* x = nullptr;  // kNorm: the row to normalize; kSilu: the gate
  const float* y = nullptr;  // kNorm: the norm weight (nullptr: none); kSilu: up
  float* out = nullptr;      // the op's output row
  float eps = 0.0f;
  int norm_warps = 0;  // kNorm: norm_row_warps (elementwise.h) of the row
  Int8Rows rows;
  const float* res[3] = {};
  float* sum[3] = {};
};
// Whether count weights (one type, or Q4_K / Q5_K then Q6_K) fit the fused kernel with this op, for one token.
bool can_fuse_matvec(const WeightView* ws, int count, FusedPrologue op, int norm_warps, int warp_size);
// One launch of at most one block per SM (n_sms).
Status matvec_int8_fused(const WeightView* ws, float* const* outs, int count, const FusedOp& op, int n_sms,
                         int warp_size, gpuStream_t stream);
// matvec_int8_fused launches so far in this process (tests check that a path took it).
int64_t fused_matvec_launches();
// Quantizes n_tok rows of n_in floats (x_stride apart) to Q8_0 (kind 32) or Q8_K (kind 256) codes, as the CPU does.
Status quantize_int8_rows(int kind, const float* x, int64_t x_stride, int64_t n_in, int64_t n_tok,
                          const Int8Rows& rows, int warp_size, gpuStream_t stream);

// Integer tensor-core product (matmul_mmq.cu, CUDA sm_80+ only): Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K weights times
// quantized activation rows, int8 MMAs with exact int32 sums per block, scales applied in float. The K order and
// split of every output are fixed by the weight's shape alone, so a token's result is bitwise the same in any
// batch. has_mmq_matmul is false on HIP builds and for other types.
bool has_mmq_matmul(quant::Type weight);
Status matmul_mmq(const WeightView& w, const Int8Rows& act, int64_t n_tok, float* out, int64_t out_stride,
                  gpuStream_t stream);

// Tensor-core product of F16 / BF16 weights (matmul_mmf.cu, CUDA sm_80+ only): the weights streamed as stored into
// mma.sync; act holds the tokens' rows rounded to the weights' format (round_activations_16bit: F16 or BF16 bits,
// act_stride elements apart, a multiple of 8, 16-byte aligned). Splits over K come from the weight's shape alone,
// so a token's result is bitwise the same in any batch of any size: batch-invariant backends send every F16 / BF16
// product through it, the others batches of 2 to MatmulPolicy::mmf_max_tokens tokens (has_mmf_matmul). mmf_fits:
// the weight fits it (false on HIP builds and with mmf_max_tokens 0).
bool mmf_fits(const WeightView& w);
bool has_mmf_matmul(const WeightView& w, int64_t n_tok);
Status matmul_mmf(const WeightView& w, const uint16_t* act, int64_t act_stride, int64_t n_tok, float* out,
                  int64_t out_stride, gpuStream_t stream);

// Split-K support shared by the tiled products (matmul_mma.cu): a per-stream partial-sum buffer of at least
// `floats` floats (nullptr when it cannot grow; never call while capturing a graph, it may allocate), and
// out[tok][row] = the sum over splits, in split order, of partial[split][tok][row] (deterministic).
float* split_scratch(gpuStream_t stream, size_t floats);
Status reduce_splits(const float* partial, int splits, int64_t n_tok, int64_t n_out, float* out, int64_t out_stride,
                     gpuStream_t stream);

// Expert products: for token t < n_tok and slot j < n_used, out row (t * n_used + j) = matrix ids[t * ids_stride
// + j] of w applied to act row t (shared_act) or t * n_used + j.
Status moe_matmul(const WeightView& w, const float* act, bool shared_act, const int32_t* ids, int64_t ids_stride,
                  int n_used, int64_t n_tok, float* out, int64_t out_stride, int warp_size, gpuStream_t stream);

// out row i (out_stride floats apart) = row rows[i] of table (decoded to float), for i < n_rows.
Status embed_rows(const WeightView& table, const int32_t* rows, int64_t n_rows, float* out, int64_t out_stride,
                  gpuStream_t stream);

}  // namespace rf::gpu
