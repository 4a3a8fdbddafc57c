// Per-family entry points behind quant.h's dequantize / can_quantize / quantize.
// quant.cpp validates the arguments (known type, n >= 0 and a multiple of the block size, non-null pointers when
// n > 0) and then dispatches by type family to exactly one of these. Each function may assume that validation and
// returns an error Status for a type outside its family (an internal dispatch bug, never a crash).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "quant/types.h"

namespace rf::quant {

// Plain element types, one element per "block": F32 F16 BF16 F64 I8 I16 I32 I64 (float_types.cpp).
// Quantize supports F32, F16 and BF16 (round to nearest even).
Status dequantize_plain(Type t, const void* src, float* dst, int64_t n);
bool can_quantize_plain(Type t);
Status quantize_plain(Type t, const float* src, void* dst, int64_t n);

// Legacy 32-element blocks: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q8_1 (legacy.cpp).
Status dequantize_legacy(Type t, const void* src, float* dst, int64_t n);
bool can_quantize_legacy(Type t);
Status quantize_legacy(Type t, const float* src, void* dst, int64_t n);

// K-quant 256-element super-blocks: Q2_K Q3_K Q4_K Q5_K Q6_K Q8_K (kquant_dequant.cpp, kquant_quantize.cpp).
Status dequantize_kquant(Type t, const void* src, float* dst, int64_t n);
bool can_quantize_kquant(Type t);
Status quantize_kquant(Type t, const float* src, void* dst, int64_t n);

// Codebook / ternary / microscaling formats: IQ* TQ1_0 TQ2_0 MXFP4 (iq_*.cpp, ternary*.cpp, mxfp4*.cpp).
Status dequantize_iq(Type t, const void* src, float* dst, int64_t n);
bool can_quantize_iq(Type t);
Status quantize_iq(Type t, const float* src, void* dst, int64_t n);

}  // namespace rf::quant
