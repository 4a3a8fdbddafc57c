// GPU dequantization kernels. Block layouts (ggml format constants, see src/quant/legacy.cpp):
//   Q4_0: 32 elements in 18 bytes: f16 scale d, then 16 bytes whose low nibble is element j and high nibble
//         element j + 16; x = d * (q - 8).
//   Q8_0: 32 elements in 34 bytes: f16 scale d, then 32 int8 quants; x = d * q.
// One thread per output element (per nibble byte for Q4_0), grid-stride loops, 64-bit indices.
// decode_rows_half decodes any block format through blocks.cuh, 8 elements per thread.
#include <algorithm>
#include <string>

#include "backend/gpu/blocks.cuh"
#include "backend/gpu/dequant.h"
#include "core/check.h"
#include "quant/types.h"

namespace rf::gpu {
namespace {

constexpr int kQ4_0BlockSize = 32;     // elements per Q4_0 block (format constant)
constexpr int kQ4_0BlockBytes = 18;    // 2-byte f16 scale + 16 nibble bytes
constexpr int kQ8_0BlockSize = 32;     // elements per Q8_0 block (format constant)
constexpr int kQ8_0BlockBytes = 34;    // 2-byte f16 scale + 32 int8 quants
constexpr int kThreadsPerBlock = 256;  // a multiple of both wavefront sizes
constexpr int64_t kMaxGridBlocks = int64_t{1} << 16;

// Block scales are read byte by byte: a block's start is only 2-byte aligned when the tensor's base is, and
// rows of a sub-tensor need not be.
RF_DEVICE float load_scale(const uint8_t* block) {
  return half_bits_to_float(static_cast<uint16_t>(block[0] | (block[1] << 8)));
}

RF_DEVICE int64_t global_thread() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
RF_DEVICE int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// One thread per nibble byte: writes elements j and j + 16 of its block.
__global__ void dequantize_q4_0_kernel(const uint8_t* __restrict__ src, float* __restrict__ dst, int64_t n_bytes) {
  pdl_prologue();
  constexpr int kHalf = kQ4_0BlockSize / 2;
  for (int64_t t = global_thread(); t < n_bytes; t += grid_threads()) {
    const int64_t ib = t / kHalf;
    const int j = static_cast<int>(t % kHalf);
    const uint8_t* block = src + ib * kQ4_0BlockBytes;
    const float d = load_scale(block);
    const int q = block[2 + j];
    float* out = dst + ib * kQ4_0BlockSize;
    out[j] = static_cast<float>((q & 0x0F) - 8) * d;
    out[j + kHalf] = static_cast<float>((q >> 4) - 8) * d;
  }
}

__global__ void dequantize_q8_0_kernel(const uint8_t* __restrict__ src, float* __restrict__ dst, int64_t n) {
  pdl_prologue();
  for (int64_t t = global_thread(); t < n; t += grid_threads()) {
    const int64_t ib = t / kQ8_0BlockSize;
    const int j = static_cast<int>(t % kQ8_0BlockSize);
    const uint8_t* block = src + ib * kQ8_0BlockBytes;
    const float d = load_scale(block);
    dst[t] = static_cast<float>(static_cast<int8_t>(block[2 + j])) * d;
  }
}

template <bool kIsBf16>
__global__ void dequantize_16bit_kernel(const uint16_t* __restrict__ src, float* __restrict__ dst, int64_t n) {
  pdl_prologue();
  for (int64_t t = global_thread(); t < n; t += grid_threads()) {
    dst[t] = kIsBf16 ? bf16_bits_to_float(src[t]) : half_bits_to_float(src[t]);
  }
}

// Rounds 8 floats to nearest F16 and packs them into 16 bytes.
RF_DEVICE uint4 pack_half8(const float (&v)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    w[j] = static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[2 * j]))) |
           (static_cast<uint32_t>(__half_as_ushort(__float2half_rn(v[2 * j + 1]))) << 16);
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// One thread per 8-element chunk of the weight (the rows' chunks one after another).
template <typename Block>
__global__ void decode_rows_half_kernel(const uint8_t* __restrict__ src, size_t nb1, int64_t n_in, int64_t n_out,
                                        uint4* __restrict__ dst) {
  pdl_prologue();
  const int64_t chunks = n_in / 8;
  for (int64_t t = global_thread(); t < chunks * n_out; t += grid_threads()) {
    const int64_t r = t / chunks, c = t % chunks;
    float v[8];
    Block::chunk(src + static_cast<size_t>(r) * nb1, c, n_in, v);
    dst[t] = pack_half8(v);
  }
}

unsigned grid_for(int64_t work_items) {
  const int64_t blocks = (work_items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxGridBlocks));
}

bool aligned(const void* p, uintptr_t alignment) { return reinterpret_cast<uintptr_t>(p) % alignment == 0; }

// n16 runs of 16 bytes from a 2-byte aligned source to a 16-byte aligned destination.
RF_DEVICE void copy_runs16(const uint16_t* src, uint8_t* dst, int n16) {
  for (int k = 0; k < n16; ++k) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = src[8 * k + 2 * i] | (static_cast<uint32_t>(src[8 * k + 2 * i + 1]) << 16);
    reinterpret_cast<uint4*>(dst)[k] = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// One block of threads per row: block ib's body, head and scale (2-byte aligned in the GGUF row) go to their slots
// of the split row (matmul.h SplitLayout).
__global__ void split_rows_kernel(const uint8_t* __restrict__ src, size_t src_pitch, int64_t nb, SplitLayout l,
                                  uint8_t* __restrict__ dst, size_t dst_pitch) {
  pdl_prologue();
  const uint8_t* s = src + blockIdx.x * src_pitch;
  uint8_t* d = dst + blockIdx.x * dst_pitch;
  uint8_t* heads = d + nb * l.body_bytes;
  const int head_bytes = l.head_offset >= 0 ? l.head_bytes : 0;
  auto* scales = reinterpret_cast<uint16_t*>(heads + nb * head_bytes);  // scale_bytes / 2 words per block
  for (int64_t ib = threadIdx.x; ib < nb; ib += blockDim.x) {
    const auto* b = reinterpret_cast<const uint16_t*>(s + ib * l.block_bytes);
    copy_runs16(b + l.body_offset / 2, d + ib * l.body_bytes, l.body_bytes / 16);
    if (head_bytes == 16) {
      copy_runs16(b + l.head_offset / 2, heads + ib * 16, 1);
    } else if (head_bytes > 0) {  // 4-byte aligned words
      const uint16_t* h = b + l.head_offset / 2;
      auto* words = reinterpret_cast<uint32_t*>(heads + ib * head_bytes);
      for (int k = 0; k < head_bytes / 4; ++k) words[k] = h[2 * k] | (static_cast<uint32_t>(h[2 * k + 1]) << 16);
    }
    for (int k = 0; l.scale_offset >= 0 && k < l.scale_bytes / 2; ++k) {
      scales[ib * (l.scale_bytes / 2) + k] = b[l.scale_offset / 2 + k];
    }
  }
}

}  // namespace

size_t weight_row_pitch(quant::Type t, size_t row_bytes) {
  return split_code_bytes(t) > 0 ? (row_bytes + 15) / 16 * 16 : row_bytes;
}

Status split_rows(quant::Type t, const void* src, size_t src_pitch, int64_t n_rows, int64_t n_in, void* dst,
                  size_t dst_pitch, gpuStream_t stream) {
  const SplitLayout l = split_layout(t);
  // The layout table restates the GGUF block's size: it must agree with the format's own (quant/types.h).
  const bool known = l.body_bytes > 0 && l.qk == quant::traits(t).block_size &&
                     l.block_bytes == static_cast<int>(quant::traits(t).block_bytes) &&
                     l.body_bytes + split_head_bytes(t) + split_scale_bytes(t) <= l.block_bytes;
  if (!known || n_in % l.qk != 0 || !aligned(src, 2) || src_pitch % 2 != 0 || !aligned(dst, 16) ||
      dst_pitch % 16 != 0 || n_rows > 0x7FFFFFFF) {
    return Status::error("gpu split_rows: " + std::string(quant::type_name(t)) + " rows of " + std::to_string(n_in) +
                         " elements: not a split type, not whole blocks or misaligned");
  }
  if (n_rows <= 0) return ok_status();
  launch_kernel(split_rows_kernel, static_cast<unsigned>(n_rows), kThreadsPerBlock, 0, stream,
                static_cast<const uint8_t*>(src), src_pitch, n_in / l.qk, l, static_cast<uint8_t*>(dst), dst_pitch);
  GPU_RETURN_IF_ERROR(gpuGetLastError());
  return ok_status();
}

bool can_dequantize(quant::Type t) {
  switch (t) {
    case quant::Type::F32:
    case quant::Type::F16:
    case quant::Type::BF16:
    case quant::Type::Q4_0:
    case quant::Type::Q8_0:
      return true;
    default:
      return false;
  }
}

Status dequantize(quant::Type t, const void* src, float* dst, int64_t n, gpuStream_t stream) {
  const std::string name(quant::type_name(t));
  if (!can_dequantize(t)) {
    return Status::error("gpu dequantize: type " + name +
                         " is not supported on the GPU (supported: F32, F16, BF16, Q4_0, Q8_0)");
  }
  const int64_t block_size = quant::traits(t).block_size;
  if (n < 0 || n % block_size != 0) {
    return Status::error("gpu dequantize: " + name + ": element count " + std::to_string(n) +
                         " is not a non-negative multiple of the block size " + std::to_string(block_size));
  }
  if (n == 0) return ok_status();
  if ((t == quant::Type::F16 || t == quant::Type::BF16) && !aligned(src, 2)) {
    return Status::error("gpu dequantize: " + name + " source must be 2-byte aligned");
  }
  if (t == quant::Type::F32 && !aligned(src, 4)) {
    return Status::error("gpu dequantize: F32 source must be 4-byte aligned");
  }

  const auto* bytes = static_cast<const uint8_t*>(src);
  const auto* halves = static_cast<const uint16_t*>(src);
  switch (t) {
    case quant::Type::F32:
      GPU_RETURN_IF_ERROR(
          gpuMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float), gpuMemcpyDeviceToDevice, stream));
      return ok_status();
    case quant::Type::F16:
      launch_kernel(dequantize_16bit_kernel<false>, grid_for(n), kThreadsPerBlock, 0, stream, halves, dst, n);
      break;
    case quant::Type::BF16:
      launch_kernel(dequantize_16bit_kernel<true>, grid_for(n), kThreadsPerBlock, 0, stream, halves, dst, n);
      break;
    case quant::Type::Q4_0: {
      RF_CHECK(quant::traits(t).block_size == kQ4_0BlockSize && quant::traits(t).block_bytes == kQ4_0BlockBytes);
      const int64_t n_bytes = n / 2;  // one thread per nibble byte
      launch_kernel(dequantize_q4_0_kernel, grid_for(n_bytes), kThreadsPerBlock, 0, stream, bytes, dst, n_bytes);
      break;
    }
    case quant::Type::Q8_0:
      RF_CHECK(quant::traits(t).block_size == kQ8_0BlockSize && quant::traits(t).block_bytes == kQ8_0BlockBytes);
      launch_kernel(dequantize_q8_0_kernel, grid_for(n), kThreadsPerBlock, 0, stream, bytes, dst, n);
      break;
    default:
      break;  // excluded by can_dequantize above
  }
  GPU_RETURN_IF_ERROR(gpuGetLastError());
  return ok_status();
}

Status decode_rows_half(quant::Type t, const void* src, size_t nb1, int64_t n_in, int64_t n_out, uint16_t* dst,
                        gpuStream_t stream) {
  if (n_in % 8 != 0 || n_in % quant::traits(t).block_size != 0 || !aligned(dst, 16)) {
    return Status::error("gpu decode_rows_half: rows of " + std::to_string(n_in) + " " +
                         std::string(quant::type_name(t)) + " elements (need a multiple of 8 and of the block) or " +
                         "an unaligned destination");
  }
  if (n_in == 0 || n_out == 0) return ok_status();
  const bool known = dispatch_block_type(t, [&](auto block) {
    launch_kernel(decode_rows_half_kernel<decltype(block)>, grid_for(n_in / 8 * n_out), kThreadsPerBlock, 0, stream,
                  static_cast<const uint8_t*>(src), nb1, n_in, n_out, reinterpret_cast<uint4*>(dst));
  });
  if (!known) return Status::error("gpu decode_rows_half: no GPU decoder for " + std::string(quant::type_name(t)));
  GPU_RETURN_IF_ERROR(gpuGetLastError());
  return ok_status();
}

}  // namespace rf::gpu
