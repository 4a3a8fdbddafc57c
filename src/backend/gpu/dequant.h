// Dequantization of ggml block formats to F32 on the GPU, bit-exact with rf::quant::dequantize (the CPU
// reference): each element is the same single float multiplication of the same two operands.
#pragma once

#include <cstdint>

#include "backend/gpu/compat.h"
#include "core/status.h"
#include "quant/types.h"

namespace rf::gpu {

// True for the types dequantize() handles on the GPU: F32, F16, BF16, Q4_0, Q8_0.
bool can_dequantize(quant::Type t);

// Enqueues on `stream` the conversion of n elements of type t at device address src (row_bytes(t, n) bytes) to
// n floats at device address dst. n must be a multiple of the type's block size; F16/BF16 sources must be
// 2-byte aligned and F32 ones 4-byte aligned (block formats have no alignment need). Returns an error for
// unsupported types, a bad n or a failed launch; the work itself completes asynchronously.
Status dequantize(quant::Type t, const void* src, float* dst, int64_t n, gpuStream_t stream);

// Decodes the n_out x n_in weight at src (any type dispatch_block_type decodes, rows nb1 bytes apart) to IEEE half
// rows at dst (n_in halves apart, 16-byte aligned), each element the CPU reference's float value rounded to
// nearest. n_in must be a multiple of 8 (and of the type's block).
Status decode_rows_half(quant::Type t, const void* src, size_t nb1, int64_t n_in, int64_t n_out, uint16_t* dst,
                        gpuStream_t stream);

// Bytes between the rows of a loaded weight (split rows, matmul.h split_code_bytes: rounded up to 16; other types:
// the GGUF row size).
size_t weight_row_pitch(quant::Type t, size_t row_bytes);

// Enqueues the rearrangement of n_rows GGUF rows of n_in elements of split type t (device memory at src, src_pitch
// bytes apart, 2-byte aligned) into split rows at dst (dst_pitch apart, 16-byte aligned). src and dst must not
// overlap.
Status split_rows(quant::Type t, const void* src, size_t src_pitch, int64_t n_rows, int64_t n_in, void* dst,
                  size_t dst_pitch, gpuStream_t stream);

}  // namespace rf::gpu
