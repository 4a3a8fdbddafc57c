// Per-weight-type matmul kernels for the CPU backend, chosen ONCE at start-up (select_kernels) so that AVX2,
// AVX-512 and NEON versions can replace the scalar entries without touching any call site.
//
// A matmul row is computed as llama.cpp's CPU backend does numerically: the F32 activations are first converted to
// the weight type's `act_type` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32), then `dot` takes one weight row and one
// converted activation row. Types without a fused dot (`dot == nullptr`) fall back to dequantizing the weight row
// (rf::quant::dequantize) and a float dot with the converted activations, which is numerically the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "quant/types.h"

namespace rf::backend::cpu {

using ActQuantizeFn = void (*)(const float* x, void* out, int64_t n);
using DotFn = float (*)(int64_t n, const void* w, const void* act);
using ActDequantizeFn = void (*)(const void* act, float* out, int64_t n);
// Multi-row dot (prefill): out[a * out_stride + r] = dot(n, w + r * w_stride, act + a * act_stride) for r < n_w,
// a < n_act, BITWISE equal to the type's `dot` for every pair, decoding each weight block once for several
// activation rows.
using DotRowsFn = void (*)(int64_t n, const void* w, size_t w_stride, int64_t n_w, const void* act, size_t act_stride,
                           int64_t n_act, float* out, size_t out_stride);

struct TypeKernels {
  quant::Type act_type = quant::Type::F32;  // activation format the dot expects
  DotFn dot = nullptr;                      // fused dot; nullptr = dequantize-then-dot fallback
  DotRowsFn dot_rows = nullptr;             // optional multi-row form of `dot` (nullptr: loop over `dot`)
  bool dot_rows_blocks = false;             // dot_rows tiles for the caches itself: call it once per row range
};

struct ActKernels {
  ActQuantizeFn quantize = nullptr;
  ActDequantizeFn dequantize = nullptr;  // converted activation back to F32 (for the fallback path)
};

struct KernelTable {
  std::string isa = "scalar";
  TypeKernels weights[64];  // indexed by the quant::Type id
  ActKernels acts[64];
  float (*dot_f32)(int64_t n, const float* a, const float* b) = nullptr;
  void (*axpy_f32)(int64_t n, float a, const float* x, float* y) = nullptr;  // y += a * x

  const TypeKernels& for_weight(quant::Type t) const { return weights[static_cast<uint32_t>(t)]; }
  const ActKernels& for_act(quant::Type t) const { return acts[static_cast<uint32_t>(t)]; }
};

// The plain scalar table: the oracle every SIMD table is tested against.
const KernelTable& scalar_kernels();
// The best table for this CPU (detected once). Today the scalar table; SIMD tables register here.
const KernelTable& kernels();

// Activation format for a weight type (what llama.cpp pairs it with), and whether matmul supports the type.
quant::Type act_type_for(quant::Type weight);
bool matmul_supported(quant::Type weight);

// Scalar kernels, exposed for the kernel tests.
namespace scalar {
void quantize_q8_0(const float* x, void* out, int64_t n);
void quantize_q8_1(const float* x, void* out, int64_t n);
void quantize_q8_k(const float* x, void* out, int64_t n);
void quantize_f16(const float* x, void* out, int64_t n);
void quantize_bf16(const float* x, void* out, int64_t n);
void quantize_f32(const float* x, void* out, int64_t n);
void dequantize_q8_0(const void* a, float* out, int64_t n);
void dequantize_q8_1(const void* a, float* out, int64_t n);
void dequantize_q8_k(const void* a, float* out, int64_t n);
void dequantize_f16(const void* a, float* out, int64_t n);
void dequantize_bf16(const void* a, float* out, int64_t n);
void dequantize_f32(const void* a, float* out, int64_t n);

float dot_f32(int64_t n, const float* a, const float* b);
void axpy_f32(int64_t n, float a, const float* x, float* y);
float dot_f32_f32(int64_t n, const void* w, const void* x);
float dot_f16_f16(int64_t n, const void* w, const void* x);
float dot_bf16_bf16(int64_t n, const void* w, const void* x);
float dot_q4_0_q8_0(int64_t n, const void* w, const void* x);
float dot_q4_1_q8_1(int64_t n, const void* w, const void* x);
float dot_q5_0_q8_0(int64_t n, const void* w, const void* x);
float dot_q5_1_q8_1(int64_t n, const void* w, const void* x);
float dot_q8_0_q8_0(int64_t n, const void* w, const void* x);
float dot_iq4_nl_q8_0(int64_t n, const void* w, const void* x);
float dot_q2_k_q8_k(int64_t n, const void* w, const void* x);
float dot_q3_k_q8_k(int64_t n, const void* w, const void* x);
float dot_q4_k_q8_k(int64_t n, const void* w, const void* x);
float dot_q5_k_q8_k(int64_t n, const void* w, const void* x);
float dot_q6_k_q8_k(int64_t n, const void* w, const void* x);
float dot_iq4_xs_q8_k(int64_t n, const void* w, const void* x);
}  // namespace scalar

}  // namespace rf::backend::cpu
