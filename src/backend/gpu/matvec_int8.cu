// Decode (one token) matrix-vector products with integer dot products: the activation row is quantized once to int8
// codes plus block scales (Q8_0 for the 32-element formats, Q8_K for the K-quants and IQ4_XS, as the CPU reference
// does), then every lane multiplies 16-byte runs of weight codes with 16-byte runs of activation codes through
// dot4_i8 and applies the block / sub-block scales in float. Results equal the CPU's up to float summation order.
//
// Work split: the quantizer gives one warp 256 activations. Weights are in split rows (matmul.h SplitLayout). The
// K-quant products give each 256-element weight block to 8 lanes (16 bytes of codes each: kquant_block), a warp
// kWarpSize / 8 blocks of a row per pass; the 32-element formats give each lane whole blocks (split_block).
// (Block layouts: ggml format facts, see blocks.cuh and src/quant/kquant_layout.h.)
#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>

#include "backend/gpu/matvec_int8.cuh"

namespace rf::gpu {
namespace {

// What every launch of a matvec_int8_rows call passes its kernel.
struct Launch {
  unsigned grid;
  const MatSet& set;
  int64_t n_blocks;
  const ActRows& act;
  ResidualAdd add;
  gpuStream_t stream;
};

template <typename Kernel>
void launch(Kernel kernel, const Launch& l) {
  launch_kernel(kernel, l.grid, kThreads, 0, l.stream, l.set, l.n_blocks, l.act, l.add);
}

template <quant::Type T, int NT, bool kStage>
void launch_kquant(int split_k, const Launch& l) {
  split_k == 1 ? launch(matvec_kquant_kernel<T, NT, 1, kStage>, l) : launch(matvec_kquant_kernel<T, NT, 2, kStage>, l);
}

template <quant::Type kW, int NT, bool kStage>
void launch_split(int rows_per_warp, int split_k, const Launch& l) {
  constexpr int kR2 = kSplitRowsPerWarp;
  if (rows_per_warp == 1) {
    split_k == 1 ? launch(matvec_split_kernel<kW, 1, NT, 1, kStage>, l)
                 : launch(matvec_split_kernel<kW, 1, NT, 2, kStage>, l);
  } else {
    split_k == 1 ? launch(matvec_split_kernel<kW, kR2, NT, 1, kStage>, l)
                 : launch(matvec_split_kernel<kW, kR2, NT, 2, kStage>, l);
  }
}

void launch_mixed(quant::Type first, const Launch& l) {
  using quant::Type;
  first == Type::Q4_K ? launch(matvec_kquant_kernel<Type::Q4_K, 1, 1, false, Type::Q6_K>, l)
                      : launch(matvec_kquant_kernel<Type::Q5_K, 1, 1, false, Type::Q6_K>, l);
}

}  // namespace

bool has_int8_matvec(quant::Type weight, int64_t n_tok) {
  // Every split-row type has an int8 product (the kernel switch in matvec_int8_rows names each).
  return n_tok >= 1 && n_tok <= matmul_policy().int8_max_tokens && split_code_bytes(weight) > 0;
}

namespace {
// Scratch layout for n_tok rows of n_in: each row's codes (16-byte aligned rows), then each row's block scales
// (one float per 32 elements, enough for Q8_K's one per 256), then each row's sums of 32 codes.
int64_t codes_stride(int64_t n_in) { return (n_in + 15) / 16 * 16; }
int64_t scales_stride(int64_t n_in) { return n_in / 32 + 1; }
}  // namespace

size_t int8_matvec_scratch_bytes(int64_t n_in, int64_t n_tok) {
  return static_cast<size_t>(n_tok) * (static_cast<size_t>(codes_stride(n_in)) +
                                       static_cast<size_t>(scales_stride(n_in)) * (sizeof(float) + sizeof(int32_t)));
}

Int8Rows int8_rows_layout(void* scratch, int64_t n_in, int64_t n_tok) {
  Int8Rows r;
  r.q = static_cast<int8_t*>(scratch);
  r.q_stride = codes_stride(n_in);
  r.d = reinterpret_cast<float*>(r.q + n_tok * r.q_stride);
  r.d_stride = scales_stride(n_in);
  r.s = reinterpret_cast<int32_t*>(r.d + n_tok * r.d_stride);
  r.s_stride = scales_stride(n_in);
  return r;
}

Status quantize_int8_rows(int kind, const float* x, int64_t x_stride, int64_t n_in, int64_t n_tok,
                          const Int8Rows& rows, int warp_size, gpuStream_t stream) {
  if (n_in % kind != 0 || n_tok < 1 || n_tok > 65535) {
    return Status::error("gpu quantize_int8_rows: rows of " + std::to_string(n_in) + " are not whole blocks of " +
                         std::to_string(kind) + " or bad row count " + std::to_string(n_tok));
  }
  const dim3 grid(blocks_for((n_in + 255) / 256, kThreads / warp_size), static_cast<unsigned>(n_tok));
  if (kind == 256) {
    launch_kernel(quantize_act_kernel<256>, grid, kThreads, 0, stream, x, x_stride, n_in, rows);
  } else {
    launch_kernel(quantize_act_kernel<32>, grid, kThreads, 0, stream, x, x_stride, n_in, rows);
  }
  const gpuError_t err = gpuGetLastError();
  return err == gpuSuccess ? ok_status() : error_status(err, "quantize_int8_rows launch");
}

int int8_matvec_act_kind(quant::Type weight) {
  using quant::Type;
  return split_layout(weight).qk == 256 ? 256 : 32;  // Q8_K for the 256-element blocks, else Q8_0
}

Status matvec_int8_multi(const WeightView* ws, float* const* outs, const int64_t* out_strides, int count,
                         const float* x, int64_t x_stride, int64_t n_tok, void* scratch, int warp_size,
                         gpuStream_t stream, bool quantize, const ResidualAdd* add) {
  // matvec_int8_rows checks count and n_tok; the quantizer checks n_tok itself.
  if (count < 1) return Status::error("gpu matvec_int8: 1 to 3 weights per launch");
  const Int8Rows rows = int8_rows_layout(scratch, ws[0].n_in, n_tok);
  // quantize false: the caller's scratch already holds these activation rows.
  if (quantize && has_int8_matvec(ws[0].type, 1)) {
    const Status q = quantize_int8_rows(int8_matvec_act_kind(ws[0].type), x, x_stride, ws[0].n_in, n_tok, rows,
                                        warp_size, stream);
    if (!q.ok()) return q;
  }
  return matvec_int8_rows(ws, outs, out_strides, count, rows, n_tok, warp_size, stream, add);
}

namespace {
std::atomic<int64_t> g_residual_add_launches{0};
}  // namespace

int64_t residual_add_launches() { return g_residual_add_launches.load(std::memory_order_relaxed); }

Status matvec_int8_rows(const WeightView* ws, float* const* outs, const int64_t* out_strides, int count,
                        const Int8Rows& rows, int64_t n_tok, int warp_size, gpuStream_t stream,
                        const ResidualAdd* residual) {
  using quant::Type;
  if (count < 1 || count > kMaxMats) return Status::error("gpu matvec_int8: 1 to 3 weights per launch");
  const ResidualAdd add = residual != nullptr ? *residual : ResidualAdd{};
  if (add.sum != nullptr && (count != 1 || n_tok != 1 || add.res == nullptr)) {
    return Status::error("gpu matvec_int8: a residual add takes one weight and one token");
  }
  const WeightView& w = ws[0];
  int n_first = 1;  // the leading weights of w's type
  while (n_first < count && ws[n_first].type == w.type) ++n_first;
  for (int i = 1; i < count; ++i) {
    if (ws[i].n_in != w.n_in || int8_matvec_act_kind(ws[i].type) != int8_matvec_act_kind(w.type)) {
      return Status::error("gpu matvec_int8: weights of one launch need one row length and activation kind");
    }
  }
  // Weights of two types: one mixed launch where the kernel has the pair, else a launch per run of one type.
  const bool mixed = n_first < count && mixed_launch_fits(ws, count, n_first, n_tok);
  if (n_first < count && !mixed) {
    const Status first = matvec_int8_rows(ws, outs, out_strides, n_first, rows, n_tok, warp_size, stream);
    if (!first.ok()) return first;
    return matvec_int8_rows(ws + n_first, outs + n_first, out_strides + n_first, count - n_first, rows, n_tok,
                            warp_size, stream);
  }
  const bool k_quant = split_layout(w.type).qk == 256;
  const int64_t qk = k_quant ? 256 : 32;
  if (!has_int8_matvec(w.type, 1) || w.n_in % qk != 0) {
    return Status::error("gpu matvec_int8: needs Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / IQ4_NL / Q2_K / Q3_K / Q4_K / "
                         "Q5_K / Q6_K / IQ4_XS rows of whole blocks, got " +
                         std::string(quant::type_name(w.type)) + " x " + std::to_string(w.n_in));
  }
  if (n_tok < 1 || n_tok > 65535) return Status::error("gpu matvec_int8: 1 to 65535 tokens per launch");
  const int warps_per_block = kThreads / warp_size;
  // Tokens per launch block: a weight block decoded once serves NT tokens.
  const int nt = n_tok == 1 ? 1 : n_tok == 2 ? 2 : n_tok <= 4 ? 4 : 8;
  const ActRows act{rows.q,        rows.d, rows.s, rows.q_stride, rows.d_stride, rows.s_stride,
                    n_tok,         blocks_for(n_tok, nt), 0};
  const int64_t n_blocks = w.n_in / qk;
  for (int i = 0; i < count; ++i) {
    if (!split_rows_aligned(ws[i])) {
      return Status::error("gpu matvec_int8: " + std::string(quant::type_name(w.type)) +
                           " weight rows are not 16-byte aligned split rows");
    }
  }
  // Rows per warp: K-quants 1; split rows 1 for single tokens (twice the warps), else 2 (each activation block
  // read serves two rows). The sums are the same either way.
  const MatmulPolicy& policy = matmul_policy();
  const int rows_per_warp = k_quant                ? kKRowsPerWarp
                            : policy.split_rows > 0 ? policy.split_rows
                            : nt == 1              ? 1
                                                   : kSplitRowsPerWarp;
  // Warps per row group: from the weights' shape only (the sums depend on it; never on the batch).
  const int split_k = split_k_for(w.type, total_rows(ws, count), n_blocks, policy.split_k);
  const int64_t rows_per_block = static_cast<int64_t>(warps_per_block / split_k) * rows_per_warp;
  MatSet set{};
  unsigned row_blocks = 0;
  for (int i = 0; i < count; ++i) {
    set.w[i] = static_cast<const uint8_t*>(ws[i].data);
    set.nb1[i] = ws[i].nb1;
    set.n_out[i] = ws[i].n_out;
    set.out[i] = outs[i];
    set.out_stride[i] = out_strides[i];
    set.first_block[i] = row_blocks;
    row_blocks += blocks_for(ws[i].n_out, rows_per_block);
  }
  set.count = count;
  set.second_from = mixed ? set.first_block[n_first] : ~0u;
  if (row_blocks == 0) return ok_status();
  const Launch l{row_blocks * act.n_groups, set, n_blocks, act, add, stream};
  const auto typed = [&](auto nt_const, auto stage_const) {
    constexpr int NT = decltype(nt_const)::value;
    constexpr bool S = decltype(stage_const)::value;
    switch (w.type) {
      case Type::Q4_0:
        launch_split<Type::Q4_0, NT, S>(rows_per_warp, split_k, l);
        break;
      case Type::Q8_0:
        launch_split<Type::Q8_0, NT, S>(rows_per_warp, split_k, l);
        break;
      case Type::IQ4_NL:
        launch_split<Type::IQ4_NL, NT, S>(rows_per_warp, split_k, l);
        break;
      case Type::Q4_1:
        launch_split<Type::Q4_1, NT, S>(rows_per_warp, split_k, l);
        break;
      case Type::Q5_0:
        launch_split<Type::Q5_0, NT, S>(rows_per_warp, split_k, l);
        break;
      case Type::Q5_1:
        launch_split<Type::Q5_1, NT, S>(rows_per_warp, split_k, l);
        break;
      case Type::Q4_K:
        launch_kquant<Type::Q4_K, NT, S>(split_k, l);
        break;
      case Type::Q5_K:
        launch_kquant<Type::Q5_K, NT, S>(split_k, l);
        break;
      case Type::IQ4_XS:
        launch_kquant<Type::IQ4_XS, NT, S>(split_k, l);
        break;
      case Type::Q3_K:
        launch_kquant<Type::Q3_K, NT, S>(split_k, l);
        break;
      case Type::Q2_K:
        launch_kquant<Type::Q2_K, NT, S>(split_k, l);
        break;
      default:
        launch_kquant<Type::Q6_K, NT, S>(split_k, l);
        break;
    }
  };
  // Token groups of at least policy.stage_min_tokens stage their activations, except for Q8_0 weights, where it lost
  // (PERF_NOTES: H100, 8 tokens, 11008 x 4096 Q8_0 45.4 -> 61.0 us; Q4_0 46.2 -> 38.9, Q4_K 67.5 -> 46.8). Single
  // tokens never stage.
  const bool stage = policy.stage_min_tokens > 0 && nt >= policy.stage_min_tokens && w.type != Type::Q8_0;
  const auto run = [&](auto nt_const) {
    if constexpr (decltype(nt_const)::value == 1) {
      typed(nt_const, std::false_type{});
    } else {
      stage ? typed(nt_const, std::true_type{}) : typed(nt_const, std::false_type{});
    }
  };
  if (mixed) {
    launch_mixed(w.type, l);
  } else {
    switch (nt) {
      case 1: run(std::integral_constant<int, 1>{}); break;
      case 2: run(std::integral_constant<int, 2>{}); break;
      case 4: run(std::integral_constant<int, 4>{}); break;
      default: run(std::integral_constant<int, 8>{}); break;
    }
  }
  const gpuError_t err = gpuGetLastError();
  if (err != gpuSuccess) return error_status(err, "matvec_int8 launch");
  if (add.sum != nullptr) g_residual_add_launches.fetch_add(1, std::memory_order_relaxed);
  return ok_status();
}

}  // namespace rf::gpu
