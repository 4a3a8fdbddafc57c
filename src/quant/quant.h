// Reference (scalar) conversions between the ggml block formats and F32.
// These are the bit-exact definitions every SIMD and GPU kernel is tested against.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "quant/types.h"

namespace rf::quant {

// Dequantizes n elements (a multiple of the type's block size) of type t at src into dst.
// Error for unsupported types or a bad n; never reads past row_bytes(t, n) bytes of src.
Status dequantize(Type t, const void* src, float* dst, int64_t n);

// True when quantize() supports t.
bool can_quantize(Type t);

// Quantizes n floats (a multiple of the block size) into row_bytes(t, n) bytes at dst.
Status quantize(Type t, const float* src, void* dst, int64_t n);

}  // namespace rf::quant
